"""Text from the outside world, over the full Unicode range (lone surrogates included: the
default ``st.text()`` leaves them out), reaching the store, NDJSON and the terminal."""

from __future__ import annotations

import json
import sys
import unicodedata
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipsms import store
from ipsms.request import Request
from ipsms.text import _UNSAFE, dumps, printable
from tests.hostile import VALID, running_listener, status_of

ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)  # Cs included


def test_every_format_control_and_separator_is_unsafe() -> None:
    for code in range(sys.maxunicode + 1):
        ch = chr(code)
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            assert _UNSAFE.fullmatch(ch), f"U+{code:04X} {unicodedata.name(ch, '')}"


def test_printable_escapes_bidi_and_separators_but_keeps_emoji_whole() -> None:
    assert printable("a\u061cb\u2028c\u2029d\u202ee\u2066f") == (
        "a\\u061cb\\u2028c\\u2029d\\u202ee\\u2066f")
    assert printable("x\ud800y") == "x\\ud800y"
    for emoji in ("👨‍👩‍👧", "👍🏽", "👩🏽‍💻", "🏳️‍🌈", "❤️‍🔥", "🇫🇷", "👁️‍🗨️", "漢字", "é"):
        assert printable(emoji) == emoji
    assert printable("a\u200db") == "a\\u200db"  # a ZWJ outside an emoji hides a join
    assert printable("\u202e\u200d😀") == "\\u202e\\u200d😀"
    # Tags are invisible and can smuggle text: always escaped, in the unambiguous long form.
    assert printable("hi\U000e0041\U000e0042") == "hi\\U000e0041\\U000e0042"


def test_escaping_costs_a_c_speed_pass_whatever_the_text_holds() -> None:
    import time

    from ipsms.text import one_line

    hostile = "\u202e\u200d\ud800\x1b\U000e0041" * 200_000  # 1 M characters of controls
    started = time.perf_counter()
    printable(hostile)
    dumps({"m": hostile})
    one_line(hostile, 80)
    assert time.perf_counter() - started < 0.5  # was 1.1 s per MiB with a callback per char


def test_one_line_never_cuts_an_escape_in_half() -> None:
    from ipsms.text import one_line

    for width in range(1, 30):
        shown = one_line("ab\ud800cd\U000e0041" * 3, width)
        assert len(shown) <= width
        body = shown.rstrip("…")
        assert not body.endswith("\\") and "\\ud8…" not in shown
        if "\\U" in body:
            assert len(body.rsplit("\\U", 1)[1]) >= 8


@given(ANY_TEXT)
def test_printable_output_is_safe_for_any_text(text: str) -> None:
    shown = printable(text)
    shown.encode("utf-8")  # no lone surrogate survives
    for i, ch in enumerate(shown):
        if _UNSAFE.fullmatch(ch):  # only the joiners and tags that build an emoji remain
            assert ch == "\u200d" or "\U000e0020" <= ch <= "\U000e007f", (text, shown, i)


@given(ANY_TEXT)
def test_ndjson_is_strict_json_that_keeps_the_value(text: str) -> None:
    line = dumps({"message": text, "n": float("nan")})
    line.encode("utf-8")
    decoded = json.loads(line, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    assert decoded["message"] == text or _reencoded_pair(text, decoded["message"])
    assert "\u202e" not in line and "\x1b" not in line and "\u2028" not in line


def _reencoded_pair(sent: str, back: str) -> bool:
    """Two lone surrogates that happen to form a pair decode as the character they pair to."""
    return sent.encode("utf-16", "surrogatepass") == back.encode("utf-16", "surrogatepass")


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message=ANY_TEXT, refid=ANY_TEXT)
async def test_any_text_is_answered_200_recorded_losslessly_and_shown_escaped(
        tmp_path: Path, message: str, refid: str) -> None:
    db = tmp_path / f"s{abs(hash((message, refid)))}.sqlite3"
    async with running_listener(db, secret="S3CRET") as listener:
        body = json.dumps({**VALID, "refid": refid, "message": message})  # escapes surrogates
        answer = await listener.post(body.encode())
        assert status_of(answer) == 200, answer
        event = listener.events[0]
        assert isinstance(event, Request)
        assert event.message == message and event.refid == refid
        json.loads(dumps(event.to_dict(bodies=False)))
    conn = store.connect(db, create=False)
    try:
        (row,) = store.iter_all(conn)
        assert (row.message, row.refid) == (message, refid)
        assert row.body == body.encode()
        assert store.attempts_for(conn, refid) == [row]
    finally:
        conn.close()
    db.unlink()
