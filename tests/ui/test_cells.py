"""The display form of table cells: every character it keeps has one width on every terminal,
and that width is rich's (so a table rich lays out is the table the terminal draws)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len, get_character_cell_size

from ipsms.ui.cells import PLACEHOLDER, cell_text, char_width

# Pieces terminals disagree on, and pieces they agree on, to build hostile cells from.
PIECES = [
    "👍",
    "\U0001f3fd",
    "\u200d",
    "\ufe0f",
    "\ufe0e",
    "👨",
    "👩",
    "👧",
    "🚀",
    "❤",
    "🇫",
    "🇷",
    "\u0301",
    "\u0323",
    "\u20e3",
    "e",
    "1",
    " ",
    "中",
    "文",
    "\u093e",
    "क",
    "\u1100",
    "\u1161",
    "\u11a8",
    "🌡",
    "\U000e0067",
    "\U000e007f",
    "🏴",
    "\ud800",
    "\udfff",
    "\x1b",
    "\u202e",
    "…",
    "\ue000",
    "\U0001fae0",
]
TEXT = st.lists(
    st.sampled_from(PIECES) | st.characters(codec=None, exclude_categories=()), max_size=40
).map("".join)


def worst_case_width(text: str) -> int:
    """The width of ``text`` on the terminal that draws it widest: only defined for text made
    of characters whose width all terminals agree on."""
    widths = [char_width(ch) for ch in text]
    assert None not in widths, f"{text!r} holds a character terminals disagree on"
    return sum(w for w in widths if w is not None)


@settings(max_examples=600, deadline=None)
@given(TEXT)
def test_the_display_form_measures_the_same_everywhere(text: str) -> None:
    shown = cell_text(text)
    assert worst_case_width(shown) == cell_len(shown)
    assert "\u200d" not in shown and "\ufe0f" not in shown
    shown.encode("utf-8")  # no lone surrogate reaches the terminal


def test_every_kept_character_is_measured_as_rich_measures_it() -> None:
    disagree = [
        hex(code)
        for code in range(0x110000)
        if (w := char_width.__wrapped__(chr(code))) is not None  # type: ignore[attr-defined]
        and get_character_cell_size(chr(code)) != w
    ]
    assert disagree == []


def test_stand_ins_for_what_terminals_disagree_on() -> None:
    assert cell_text("thanks 👍🏽") == "thanks 👍"
    assert cell_text("skin 👋🏽") == "skin 👋"
    assert cell_text("family 👨\u200d👩\u200d👧 ok") == "family 👨 ok"
    assert cell_text("astronaut 👩🏽\u200d🚀") == "astronaut 👩"
    assert cell_text("flag 🇫🇷") == "flag FR"
    assert cell_text("love ❤️") == "love ❤"
    assert cell_text("keycap 1\ufe0f\u20e3") == "keycap 1"
    assert cell_text("thermo 🌡") == "thermo " + PLACEHOLDER
    assert cell_text("lone \U0001f3fd") == "lone " + PLACEHOLDER


def test_what_terminals_agree_on_is_kept() -> None:
    assert cell_text("plain ASCII") == "plain ASCII"
    assert cell_text("中文 日本語 한국어") == "中文 日本語 한국어"
    assert cell_text("Привет, Ελλάδα, café") == "Привет, Ελλάδα, café"
    assert cell_text("cafe\u0301") == "café"  # NFC-folded
    assert cell_text("q\u0323\u0307") == "q\u0323\u0307"  # no precomposed form: kept
    # marks beyond MAX_MARKS are dropped, a mark with nothing to sit on is escaped
    assert cell_text("a" + "\u0300\u0301\u0302\u0303") == "\u00e0\u0301\u0302"
    assert cell_text("\u0301x") == "\\u0301x"


def test_unreliable_characters_are_escaped_like_printable_does() -> None:
    assert cell_text("a\x1b[2J") == "a\\e[2J"
    assert cell_text("ना") == "न\\u093e"  # a spacing mark: 0 or 1 cell
    assert cell_text("\ue000") == "\\ue000"  # private use: icon fonts draw it 2 wide
