"""Text for narrow fixed-width table cells: a "display form" every terminal measures alike.

Terminals disagree about the width of some text: an emoji with a skin-tone modifier (2 or 4
cells), ZWJ sequences (a family: 2, 4 or 6), regional-indicator flags, VS16 sequences (❤️: 1
or 2), pictographs in the emoji blocks without Emoji_Presentation, spacing marks of Indic
scripts, conjoining Hangul jamo. When a terminal draws a cell wider than the table measured
it, the row wraps and the live table's redraw leaves stale copies behind. They agree about
ASCII, Latin, Greek, Cyrillic, CJK wide characters (2) and plain combining marks (0).

``cell_text`` keeps what they agree on and replaces every grapheme cluster they do not by a
stand-in whose width they do agree on:

- an emoji with skin tone, VS16 or ZWJ parts -> its first emoji alone (👍🏽 -> 👍,
  👨‍👩‍👧 -> 👨); a narrow symbol with VS16 -> the symbol alone (❤️ -> ❤, 1 cell);
- a regional-indicator flag -> its two ASCII letters (🇫🇷 -> ``FR``);
- a pictograph of the emoji blocks that has no emoji presentation (🌡, 🕉), or a lone
  skin-tone modifier -> ``�`` (U+FFFD, 1 cell);
- combining marks: NFC-folded into their letter where Unicode has one; at most
  ``MAX_MARKS`` kept on a letter, the rest dropped; a mark with no letter to sit on is escaped;
  enclosing marks (the keycap of 1️⃣) and an emoji's presentation selector are dropped (the
  base keeps its own width; ``printable`` has escaped every other variation selector);
- characters whose width is not reliable (spacing marks, conjoining jamo, private use,
  unassigned, and everything ``printable`` escapes) -> a ``\\uXXXX`` escape.

East Asian "ambiguous" characters count 1 (the width in every non-CJK locale; rich's own
ellipsis is one of them). The full text is always in the store (``ipsms messages show``);
this form is only for table cells. Pure and core-side: no rich here (tests/ui/test_cells.py checks
every kept character against rich's own measure).
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from ipsms.text import printable

PLACEHOLDER = "\ufffd"  # for a visible character whose width terminals disagree on
MAX_MARKS = 2  # combining marks kept on one letter (terminals cap what one cell holds)
ZWJ = "\u200d"
_SKIN_TONES = range(0x1F3FB, 0x1F400)
_REGIONAL = range(0x1F1E6, 0x1F200)
# Code points whose width depends on the terminal even alone: conjoining Hangul jamo (0 in
# most wcwidth tables, 1 by their East Asian width), the Hangul fillers, and the I Ching /
# Tai Xuan Jing / counting-rod symbols (narrow before Unicode 16, wide after).
_UNRELIABLE = (
    (0x1160, 0x11FF),
    (0x2630, 0x2637),
    (0x268A, 0x268F),
    (0x3164, 0x3164),
    (0x4DC0, 0x4DFF),
    (0xD7B0, 0xD7FF),
    (0xFFA0, 0xFFA0),
    (0x1D300, 0x1D37F),
)
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Mc"})
_EMOJI_BLOCKS = (0x1F000, 0x1FAFF)


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _is_variation_selector(code: int) -> bool:
    return 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF


@lru_cache(maxsize=8192)
def char_width(ch: str) -> int | None:
    """The width every terminal gives ``ch`` standing alone (0, 1 or 2), or None when they
    disagree or it cannot stand in a cell (controls, unassigned, private use...)."""
    code = ord(ch)
    category = unicodedata.category(ch)
    if category in _ESCAPED_CATEGORIES or any(a <= code <= b for a, b in _UNRELIABLE):
        return None
    if code in _SKIN_TONES or code in _REGIONAL or _is_variation_selector(code):
        return None
    if category in ("Mn", "Me"):
        return 0
    wide = unicodedata.east_asian_width(ch) in ("W", "F")
    if not wide and _EMOJI_BLOCKS[0] <= code <= _EMOJI_BLOCKS[1]:
        return None  # a pictograph without emoji presentation: 1 or 2 cells
    return 2 if wide else 1


def _is_emoji(ch: str) -> bool:
    return _EMOJI_BLOCKS[0] <= ord(ch) <= _EMOJI_BLOCKS[1] or (0x2000 <= ord(ch) <= 0x2BFF)


def cell_text(text: str) -> str:
    """``text`` as it can safely stand in a fixed-width cell (see the module doc): escaped
    like ``printable``, and every character of the result has a width all terminals agree
    on. ``'thanks 👍🏽'`` -> ``'thanks 👍'``."""
    if text.isascii():
        return printable(text)
    return _fold(text)


@lru_cache(maxsize=4096)
def _fold(text: str) -> str:
    text = unicodedata.normalize("NFC", printable(text))
    out: list[str] = []
    base: str | None = None  # the last kept character a mark or modifier can attach to
    marks = 0
    skip_part = False  # after a ZWJ: the next emoji part is folded into the first one
    for ch in text:
        code = ord(ch)
        if ch == ZWJ:  # ``printable`` keeps a ZWJ only between two emoji parts
            skip_part = True
            continue
        if _is_variation_selector(code) or unicodedata.category(ch) == "Me":
            continue  # presentation only: the base keeps its own, agreed width
        if code in _SKIN_TONES:
            if base is None or not _is_emoji(base):
                out.append(PLACEHOLDER)
                base, marks = None, 0
            continue
        if skip_part:
            skip_part = False
            if base is not None and _is_emoji(base) and _is_emoji(ch):
                continue
        if code in _REGIONAL:
            out.append(chr(ord("A") + code - _REGIONAL.start))
            base, marks = None, 0
            continue
        width = char_width(ch)
        if width == 0:  # a combining mark
            if base is not None and not _is_emoji(base) and marks < MAX_MARKS:
                out.append(ch)
                marks += 1
            elif base is None:
                out.append(_escape(ch))
            continue
        if width is None:
            out.append(
                PLACEHOLDER if _is_emoji(ch) and unicodedata.category(ch) == "So" else _escape(ch)
            )
            base, marks = None, 0
            continue
        out.append(ch)
        base, marks = ch, 0
    return "".join(out)
