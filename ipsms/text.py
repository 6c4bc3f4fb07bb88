"""Text that reaches a terminal or a file: escaping for display, and strict NDJSON.

An SMS, a header or a server's reply can carry characters that move the cursor, recolour the
terminal, reorder text (bidi controls) or hide it (zero-width characters, tags). ``printable``
shows each as a visible escape; ``dumps`` writes them as JSON ``\\uXXXX`` escapes, which keep
the value. Both cost a C-speed pass over the text (``str.translate`` and one regex with a
constant replacement), whatever the text holds: a body full of controls must not stall the
listener.

Invisible characters that are not format controls are escaped too: every Unicode
"default ignorable" code point (variation selectors, the Mongolian free variation selectors,
the combining grapheme joiner, the whole tag and variation-selector supplement planes, and
reserved ones) and the blanks that are letters or symbols (the Hangul fillers U+115F, U+1160,
U+3164, U+FFA0, the braille blank U+2800, the Khitan filler U+16FE4). A run of variation
selectors after one character can carry any bytes unseen.

The joiners that build emoji are kept: a ZWJ between two emoji parts (families, professions,
the rainbow flag), one presentation selector (VS16 U+FE0F, or VS15 U+FE0E) right after a
character that has an emoji form (❤️, the keycap 1️⃣, ☎︎), and the skin-tone modifiers (which
are not controls). Any other selector is escaped: a second one, one after a letter, and every
one of U+FE00-FE0D and U+E0100-E01EF. Tag characters are always escaped, subdivision flags
included: they are invisible, and a run of them can hide text.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from functools import cache
from typing import Any

from ipsms.errors import UsageError

# Characters that can move the cursor, recolour the terminal, reorder or hide text: C0 and C1
# controls, DEL, lone surrogates, and every Unicode format control (category Cf: bidi
# embeddings, overrides and isolates, U+061C, zero-width characters, tags...) plus the line and
# paragraph separators U+2028/U+2029; and what shows nothing though it is no control: every
# Default_Ignorable_Code_Point of Unicode's DerivedCoreProperties.txt (U+034F, U+115F-1160,
# U+17B4-17B5, U+180B-180F, U+2065, U+3164, U+FE00-FE0F, U+FFA0, U+FFF0-FFF8, U+E0000-E0FFF)
# and the blanks U+2800 and U+16FE4. tests/test_text_safety.py checks this list against
# ``unicodedata`` so a new Unicode version cannot slip a format control past it.
_RANGES = (
    (0x00, 0x1F),
    (0x7F, 0x9F),
    (0xAD, 0xAD),
    (0x34F, 0x34F),
    (0x600, 0x605),
    (0x61C, 0x61C),
    (0x6DD, 0x6DD),
    (0x70F, 0x70F),
    (0x890, 0x891),
    (0x8E2, 0x8E2),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x2028, 0x202E),
    (0x2060, 0x206F),
    (0x2800, 0x2800),
    (0x3164, 0x3164),
    (0xD800, 0xDFFF),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x16FE4, 0x16FE4),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
_UNSAFE = re.compile(
    "["
    + "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in _RANGES
    )
    + "]"
)
ZWJ = 0x200D
PRESENTATION = (0xFE0E, 0xFE0F)  # VS15 (text) and VS16 (emoji): kept after an emoji base
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\e"}

# The parts an emoji ZWJ sequence joins: pictographs, skin tones and VS16 (U+FE0F).
_EMOJI = (
    "[\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u2199\u21a9\u21aa\u231a-\u23ff"
    "\u24c2\u25aa-\u27bf\u2934\u2935\u2b05-\u2b55\u3030\u303d\u3297\u3299\ufe0f"
    "\U0001f000-\U0001faff]"
)
_LONE_ZWJ = re.compile(f"(?<!{_EMOJI})\u200d|\u200d(?!{_EMOJI})")
# A presentation selector that follows no character with an emoji form (keycap bases
# included), or follows an escape this module wrote (``\\u0001`` ends in a digit), or another
# selector: escaped. The one after ❤ or 1 (of 1️⃣) stays.
_VS_BASE = _EMOJI.replace("\ufe0f", "")[:-1] + "#*0-9]"
_AFTER_ESCAPE = r"(?<=\\u[0-9a-f]{4})|(?<=\\U[0-9a-f]{8})"
_LONE_VS15 = re.compile(f"(?:(?<!{_VS_BASE})|{_AFTER_ESCAPE})\ufe0e")
_LONE_VS16 = re.compile(f"(?:(?<!{_VS_BASE})|{_AFTER_ESCAPE})\ufe0f")
# Texts longer than this that hold anything to escape are escaped whole, every non-ASCII
# character included: one C-speed pass (emoji then show as escapes too). Shorter ones, which
# is every real SMS, keep their emoji and other text readable.
CAREFUL_LIMIT = 4096


def _code_points() -> list[int]:
    return [c for a, b in _RANGES for c in range(a, b + 1) if c != ZWJ and c not in PRESENTATION]


def _emoji_parts(text: str) -> str:
    """``text`` (already translated) with the joiners and selectors no emoji uses escaped."""
    if "\ufe0f" in text:
        text = _LONE_VS16.sub(r"\\ufe0f", text)
    if "\ufe0e" in text:
        text = _LONE_VS15.sub(r"\\ufe0e", text)
    return _LONE_ZWJ.sub(r"\\u200d", text) if "\u200d" in text else text


@cache
def _display_table() -> dict[int, str]:
    table = {}
    for code in _code_points():
        ch = chr(code)
        table[code] = _NAMED.get(ch) or (f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
    return table


@cache
def _json_table() -> dict[int, str]:
    table = {}
    for code in _code_points():
        if code <= 0xFFFF:
            table[code] = f"\\u{code:04x}"
        else:  # JSON escapes name UTF-16 units: a surrogate pair
            low = code - 0x10000
            table[code] = f"\\u{0xD800 + (low >> 10):04x}\\u{0xDC00 + (low & 0x3FF):04x}"
    return table


def printable(text: str) -> str:
    """``'hi\\x1b[31m'`` -> ``'hi\\\\e[31m'``: control characters, lone surrogates and
    bidi/format controls shown as visible escapes (``\\u202e``, ``\\U000e0041``); emoji
    sequences stay whole."""
    if not _UNSAFE.search(text):
        return text
    if len(text) > CAREFUL_LIMIT:  # bounded cost: every non-ASCII character escaped, in C
        return text.encode("unicode_escape").decode("ascii")
    return _emoji_parts(text.translate(_display_table()))


_PARTIAL_ESCAPE = re.compile(r"\\(?:u[0-9a-f]{0,3}|U[0-9a-f]{0,7})?$")


def one_line(text: str, width: int) -> str:
    """``printable(text)`` in at most ``width`` characters, ``…`` where it was cut; only the
    start of a long text is escaped, and an escape is never cut in half."""
    shown = printable(text[: width + 1])
    if len(shown) <= width and len(text) <= width:
        return shown
    cut = shown[: max(width - 1, 0)]
    partial = _PARTIAL_ESCAPE.search(cut)
    return (cut[: partial.start()] if partial else cut) + "…"


# Built once: hot path. ``allow_nan=False``: NDJSON is strict JSON (RFC 8259).
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_ASCII_ENCODER = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":"))


def prebuilt_encoder(item_separator: str = ",", key_separator: str = ":") -> Callable[[Any], str]:
    """``json.dumps(value, ensure_ascii=False, allow_nan=False, separators=...)`` for hot
    paths: its C encoder built once (``JSONEncoder.encode`` builds it again on every call),
    and no cycle check, so only for plain values (parsed JSON, string pairs). Unlike
    ``dumps``, nothing ``printable`` would escape is escaped: callers check the result."""
    encode = json.encoder.c_make_encoder(  # type: ignore[attr-defined]
        None,
        _ENCODER.default,
        json.encoder.encode_basestring,
        None,
        key_separator,
        item_separator,
        False,
        False,
        False,
    )

    def encoded(value: Any) -> str:
        return "".join(encode(value, 0))

    return encoded


def dumps(obj: dict[str, Any]) -> str:
    """Compact, strict JSON (one NDJSON line's worth). UTF-8 text is kept as is, but every
    character ``printable`` would escape is written as a ``\\uXXXX`` escape: the value is
    unchanged for a JSON reader, and ``cat`` of the output cannot drive the terminal. The
    result is always encodable as UTF-8 (lone surrogates are escaped too)."""
    try:
        text = _ENCODER.encode(obj)
    except ValueError:  # a NaN or an infinity: not JSON, written as its name in a string
        obj = _finite(obj)
        text = _ENCODER.encode(obj)
    if text.isascii():  # the common case: JSON already escaped every ASCII control but DEL
        return text if "\x7f" not in text else text.replace("\x7f", "\\u007f")
    if not _UNSAFE.search(text):
        return text
    if len(text) > CAREFUL_LIMIT:  # bounded cost: every non-ASCII character escaped, in C
        return _ASCII_ENCODER.encode(obj)
    # Inside a JSON document these characters can only stand in strings, so escaping them
    # in the whole line is exact.
    return _emoji_parts(text.translate(_json_table()))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def iso_time(ts: float) -> str:
    """``2026-11-25T08:33:41.550Z`` (UTC, milliseconds)."""
    whole, ms = divmod(round(ts * 1000), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{ms:03d}Z"


_DURATION_RE = re.compile(
    r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d|w)?\s*$", re.IGNORECASE | re.ASCII
)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
MAX_DURATION = 10 * 365.25 * 86400  # ten years: past it a wait or a window means nothing


def parse_duration(text: str) -> float:
    """Seconds in ``text``: ``'500ms'`` -> 0.5, ``'10s'``, ``'5m'``, ``'2h'``, ``'1d'``,
    ``'1w'`` -> 604800.0, and a bare number is seconds (``'2'`` -> 2.0). The one grammar of
    every duration ipsms reads (windows, timeouts, retry waits)."""
    m = _DURATION_RE.match(text)
    if not m:
        raise UsageError(
            f"cannot read the duration {printable(text)!r}",
            hint="use a number and a unit: 500ms, 10s, 5m, 2h, 1d, 1w",
        )
    seconds = float(m.group(1)) * _UNIT_SECONDS[(m.group(2) or "s").lower()]
    if seconds > MAX_DURATION:
        raise UsageError(f"the duration {text.strip()!r} is longer than ten years")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact form in the grammar of ``parse_duration``: 600 -> ``'10m'``,
    0.5 -> ``'500ms'``, 90 -> ``'90s'``."""
    for unit in ("w", "d", "h", "m", "s"):
        count = seconds / _UNIT_SECONDS[unit]
        if count >= 1 and count == int(count):
            return f"{int(count)}{unit}"
    if seconds == 0:
        return "0s"
    ms = seconds * 1000
    return f"{ms:g}ms" if ms == int(ms) else f"{seconds:g}s"
