"""How a text travels as SMS: its encoding (GSM-7 when every character is in the GSM 03.38
alphabet or its extension table, else UCS-2) and how many segments it takes (one of 160
septets or 70 UTF-16 units; concatenated, 153 septets or 67 units each, a character never
split between two segments)."""

from __future__ import annotations

from dataclasses import dataclass

# GSM 03.38's default alphabet (one septet each; ESC, 0x1B, introduces the extension table).
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENDED = frozenset("\f^{}\\[~]|€")  # two septets each: ESC and the character
SINGLE = {"GSM-7": 160, "UCS-2": 70}
CONCATENATED = {"GSM-7": 153, "UCS-2": 67}


@dataclass(frozen=True)
class Segments:
    chars: int  # code points, as a person counts characters (a lone surrogate is one)
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int
    encoding: str  # "GSM-7" or "UCS-2"

    def to_dict(self) -> dict[str, object]:
        return {"chars": self.chars, "segments": self.segments, "encoding": self.encoding}


def segments(text: str) -> Segments:
    """``text`` as SMS: its encoding and segment count. An empty text is one segment."""
    if all(c in GSM_BASIC or c in GSM_EXTENDED for c in text):
        sizes = [2 if c in GSM_EXTENDED else 1 for c in text]
        encoding = "GSM-7"
    else:
        sizes = [2 if ord(c) > 0xFFFF else 1 for c in text]
        encoding = "UCS-2"
    units = sum(sizes)
    if units <= SINGLE[encoding]:
        return Segments(len(text), units, 1, encoding)
    room = CONCATENATED[encoding]
    count, used = 1, 0
    for size in sizes:  # greedy, never splitting a character (an escape pair, a surrogate pair)
        if used + size > room:
            count, used = count + 1, 0
        used += size
    return Segments(len(text), units, count, encoding)
