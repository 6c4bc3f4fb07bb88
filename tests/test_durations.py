"""One grammar for every duration ipsms reads: ``500ms``, ``10s``, ``5m``, ``2h``, ``1d``,
``1w``, or bare seconds; and the shortest exact form it prints them in."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipsms.errors import ExitCode, UsageError
from ipsms.text import MAX_DURATION, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("10s", 10),
        ("5m", 300),
        ("2h", 7200),
        ("1d", 86400),
        ("1w", 604800),
        ("90", 90),
        (".25", 0.25),
        ("1.5h", 5400),
        (" 1W ", 604800),
        ("0", 0),
        ("0ms", 0),
    ],
)
def test_the_grammar(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        "",
        "m",
        "-5m",
        "10 minutes",
        "1y",
        "1e3",
        "2026-01-01",
        "1,5",
        "NaN",
        "inf",
        "٣s",
        "\ud800",
        "5\x00s",
        "1" * 400 + "w",
        "522w",
    ],
)
def test_anything_else_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_duration(text)
    assert info.value.exit_code is ExitCode.USAGE


@given(st.text())
def test_no_text_crashes_the_parser(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except UsageError:
        return
    assert 0 <= seconds <= MAX_DURATION


@given(st.integers(min_value=0, max_value=3650), st.sampled_from(["ms", "s", "m", "h", "d"]))
def test_what_is_printed_reads_back_the_same(count: int, unit: str) -> None:
    seconds = parse_duration(f"{count}{unit}")
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


def test_printed_forms_are_the_shortest_exact_ones() -> None:
    assert [format_duration(s) for s in (0, 0.5, 90, 600, 3600, 86400, 604800, 1.5)] == [
        "0s",
        "500ms",
        "90s",
        "10m",
        "1h",
        "1d",
        "1w",
        "1500ms",
    ]
