"""A text as SMS: the encoding and the segment count at every boundary."""

from __future__ import annotations

import pytest

from ipsms.segments import segments


@pytest.mark.parametrize(
    ("text", "encoding", "count"),
    [
        ("", "GSM-7", 1),
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("a" * 306, "GSM-7", 2),
        ("a" * 307, "GSM-7", 3),
        ("€" * 80, "GSM-7", 1),  # an extension character takes two septets
        ("€" * 81, "GSM-7", 2),
        ("a" * 152 + "€" + "a" * 152, "GSM-7", 3),  # 306 septets, but the pair is not split
        ("é" * 160, "GSM-7", 1),
        ("ж" * 70, "UCS-2", 1),
        ("ж" * 71, "UCS-2", 2),
        ("ж" * 134, "UCS-2", 2),
        ("ж" * 135, "UCS-2", 3),
        ("👍" * 35, "UCS-2", 1),  # a surrogate pair is two units
        ("👍" * 36, "UCS-2", 2),
        ("a" * 66 + "👍", "UCS-2", 1),
        ("a" * 69 + "👍", "UCS-2", 2),  # 71 units
        ("\ud83d", "UCS-2", 1),  # a lone surrogate, as a split segment delivers it
    ],
)
def test_encoding_and_segments_at_the_boundaries(text: str, encoding: str, count: int) -> None:
    got = segments(text)
    assert (got.encoding, got.segments, got.chars) == (encoding, count, len(text))
