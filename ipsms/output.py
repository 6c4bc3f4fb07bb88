"""Machine and plain-text output: NDJSON lines and one-line summaries, with no terminal code.

Everything printed from message content goes through ``printable`` first, so an SMS cannot
move the cursor, recolour the terminal or reorder text with bidi controls.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from typing import Any

from ipsms.events import ListenEvent, RejectedEvent, iso_time
from ipsms.stream_sink import StreamSink

# Characters that can move the cursor, recolour the terminal, reorder or hide text: C0 and C1
# controls, DEL, lone surrogates, and every Unicode format control (category Cf: bidi
# embeddings, overrides and isolates, U+061C, zero-width characters, tags...) plus the line and
# paragraph separators U+2028/U+2029. tests/test_text_safety.py checks this list against
# ``unicodedata`` so a new Unicode version cannot slip a format control past it.
_UNSAFE_CLASS = (
    "\x00-\x1f\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    "\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ud800-\udfff\ufeff"
    "\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
)
_UNSAFE = re.compile(f"[{_UNSAFE_CLASS}]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\e"}
_ZWJ = "\u200d"
_BLACK_FLAG = "\U0001f3f4"  # starts a tag sequence: England's, Scotland's, Wales's flags


def _emoji_side(ch: str) -> bool:
    """A character an emoji ZWJ sequence joins: a pictograph (category So), a skin-tone
    modifier, or the emoji presentation selector VS16."""
    return ch == "\ufe0f" or (ch >= "\u00a9" and unicodedata.category(ch) in ("So", "Sk"))


def _kept(text: str, i: int) -> bool:
    """The format controls that build emoji, and are kept: a ZWJ between two emoji parts
    (family, profession and flag sequences) and the tags of a subdivision flag."""
    ch = text[i]
    if ch == _ZWJ:
        return 0 < i < len(text) - 1 and _emoji_side(text[i - 1]) and _emoji_side(text[i + 1])
    if "\U000e0020" <= ch <= "\U000e007f" and i > 0:
        prev = text[i - 1]
        return prev == _BLACK_FLAG or "\U000e0020" <= prev <= "\U000e007e"
    return False


def _escape_for_display(m: re.Match[str]) -> str:
    ch = m.group()
    if _kept(m.string, m.start()):
        return ch
    return _NAMED.get(ch) or f"\\u{ord(ch):04x}"


def printable(text: str) -> str:
    """``'hi\\x1b[31m'`` -> ``'hi\\\\e[31m'``: control characters, lone surrogates and
    bidi/format controls shown as visible escapes; emoji sequences stay whole."""
    if not _UNSAFE.search(text):
        return text
    return _UNSAFE.sub(_escape_for_display, text)


def one_line(text: str, width: int) -> str:
    text = printable(text)
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def _escape_for_json(m: re.Match[str]) -> str:
    ch = m.group()
    if _kept(m.string, m.start()):
        return ch
    code = ord(ch)
    if code > 0xFFFF:  # JSON escapes name UTF-16 units: a surrogate pair
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


# Built once: hot path. ``allow_nan=False``: NDJSON is strict JSON (RFC 8259).
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def dumps(obj: dict[str, Any]) -> str:
    """Compact, strict JSON (one NDJSON line's worth). UTF-8 text is kept as is, but every
    character ``printable`` would escape is written as a ``\\uXXXX`` escape: the value is
    unchanged for a JSON reader, and ``cat`` of the output cannot drive the terminal. The
    result is always encodable as UTF-8 (lone surrogates are escaped too)."""
    try:
        text = _ENCODER.encode(obj)
    except ValueError:  # a NaN or an infinity: not JSON, written as its name in a string
        text = _ENCODER.encode(_finite(obj))
    if text.isascii():  # the common case: JSON already escaped every ASCII control but DEL
        return text if "\x7f" not in text else text.replace("\x7f", "\\u007f")
    if not _UNSAFE.search(text):
        return text
    return _UNSAFE.sub(_escape_for_json, text)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


class NdjsonSink(StreamSink):
    """One JSON object per event (the signature masked)."""

    def line(self, event: ListenEvent) -> str:
        return dumps(event.to_dict())

    def drop_notice(self, count: int) -> str:
        return dumps({"type": "dropped", "lines": count, "total": self.dropped,
                      "reason": "stdout was not read fast enough; the store has every request"})


def plain_line(event: ListenEvent) -> str:
    clock = iso_time(event.received_at)[11:23]
    if isinstance(event, RejectedEvent):
        return f"{clock} {event.status} rejected {event.remote or '-'}: {printable(event.reason)}"
    if event.refid is None:
        return (f"{clock} {event.status} {event.method} {printable(event.path)} "
                f"{event.error}: {printable(event.error_detail or '')}")
    flags = f" flags={','.join(f['code'] for f in event.flags)}" if event.flags else ""
    return (f"{clock} {event.status} #{event.attempt} {printable(event.refid)} "
            f"{printable(event.from_number or '')} -> {printable(event.to_number or '')} "
            f"[{event.verdict}] {one_line(event.message or '', 80)!s}{flags}")


class PlainSink(StreamSink):
    """One readable line per event."""

    def line(self, event: ListenEvent) -> str:
        return plain_line(event)
