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
from tests.conftest import run_ipsms
from tests.hostile import VALID, running_listener, status_of

# Any code point, lone surrogates included: the default st.text() leaves them out, and among
# all code points they are too rare to be drawn, so they get a strategy of their own.
ANY_TEXT = st.text(
    st.characters(exclude_categories=()) | st.integers(0xD800, 0xDFFF).map(chr), max_size=40
)


def test_every_format_control_and_separator_is_unsafe() -> None:
    for code in range(sys.maxunicode + 1):
        ch = chr(code)
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            assert _UNSAFE.fullmatch(ch), f"U+{code:04X} {unicodedata.name(ch, '')}"


def test_printable_escapes_bidi_and_separators_but_keeps_emoji_whole() -> None:
    assert printable("a\u061cb\u2028c\u2029d\u202ee\u2066f") == (
        "a\\u061cb\\u2028c\\u2029d\\u202ee\\u2066f"
    )
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
        if _UNSAFE.fullmatch(ch):  # only the joiners and selectors that build an emoji remain
            assert ch in ("\u200d", "\ufe0e", "\ufe0f"), (text, shown, i)


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


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(message=ANY_TEXT, refid=ANY_TEXT)
async def test_any_text_is_answered_200_recorded_losslessly_and_shown_escaped(
    tmp_path: Path, message: str, refid: str
) -> None:
    db = tmp_path / f"s{abs(hash((message, refid)))}.sqlite3"
    # What a JSON reader gets: two lone surrogates that happen to form a pair are one character.
    message, refid = json.loads(json.dumps(message)), json.loads(json.dumps(refid))
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


# -- invisible characters that are not format controls ----------------------------------------
# Each shows nothing (or a blank) on a terminal; a run of variation selectors after one
# character can carry any bytes. Every output escapes them as it escapes a format control.
INVISIBLE = [
    "\u034f",
    "\u115f",
    "\u1160",
    "\u17b4",
    "\u180b",
    "\u180c",
    "\u180d",
    "\u180f",
    "\u2065",
    "\u2800",
    "\u3164",
    "\ufe00",
    "\ufe0e",
    "\ufe0f",
    "\uffa0",
    "\ufff0",
    "\U00016fe4",
    "\U000e0000",
    "\U000e0041",
    "\U000e007f",
    "\U000e0100",
    "\U000e01ef",
    "\U000e0fff",
]
SMUGGLED = "😀" + "".join(chr(0xE0100 + b) for b in b"hidden payload")  # bytes in selectors
EMOJI_KEPT = "❤️ 1️⃣ ☎︎ 🏳️‍🌈"


def _escape(ch: str) -> str:
    return f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}"


def test_invisible_characters_are_escaped_everywhere_but_emoji_keep_their_selector() -> None:
    from ipsms.ui.cells import cell_text

    for ch in INVISIBLE:
        text = f"a{ch}b"
        assert printable(text) == f"a{_escape(ch)}b"
        line = dumps({"m": text})
        assert ch not in line and json.loads(line)["m"] == text
        assert ch not in cell_text(text)
    assert printable(SMUGGLED) == "😀" + "".join(f"\\U{0xE0100 + b:08x}" for b in b"hidden payload")
    # One presentation selector after a character with an emoji form is part of the emoji.
    assert printable(EMOJI_KEPT) == EMOJI_KEPT
    assert json.loads(dumps({"m": EMOJI_KEPT}))["m"] == EMOJI_KEPT
    assert "\ufe0f" in dumps({"m": EMOJI_KEPT})
    assert printable("❤️\ufe0f") == "❤️\\ufe0f"  # a second one carries nothing an emoji needs
    assert printable("\x01\ufe0f") == "\\u0001\\ufe0f"  # after an escape's digit, too
    assert cell_text("❤️ 1️⃣") == "❤ 1"  # the live table folds them to the base, as before


def _hidden_body() -> bytes:
    text = "x".join(["hi", *INVISIBLE, SMUGGLED, EMOJI_KEPT])
    return json.dumps({**VALID, "message": text, "note": text}).encode()


def _leaked(output: str) -> list[str]:
    """The invisible characters ``output`` holds as they are (a selector of an emoji aside)."""
    found = [ch for ch in INVISIBLE if ch not in ("\ufe0e", "\ufe0f") and ch in output]
    return found + [f"x{vs}" for vs in ("\ufe0e", "\ufe0f") if f"x{vs}" in output]


def test_invisible_characters_reach_no_output_unescaped(tmp_path: Path) -> None:
    """listen's NDJSON and plain lines, messages list/show (every format) and export (plain and
    redacted) of a message whose text and extra field hide characters."""
    import signal
    import subprocess
    import urllib.request

    from tests.conftest import ROOT, cli_env, run_ipsms
    from tests.procs import ListenerProcess

    def post(url: str) -> None:
        request = urllib.request.Request(
            url, data=_hidden_body(), method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200

    db = tmp_path / "hidden.sqlite3"
    listener = ListenerProcess(db=db)
    try:
        post(listener.url)
        assert listener.proc.stdout is not None
        ndjson_line = listener.proc.stdout.readline()  # as printed, not as parsed
        code, _, _ = listener.stop()
    finally:
        listener.kill()
    assert code == 0
    plain = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ipsms",
            "listen",
            "--port",
            "0",
            "--format",
            "plain",
            "--db",
            str(tmp_path / "plain.sqlite3"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    try:
        assert plain.stderr is not None and plain.stdout is not None
        post(plain.stderr.readline().split("listening on ")[1].split()[0])
        plain_line = plain.stdout.readline()
    finally:
        plain.send_signal(signal.SIGINT)
        plain.communicate(timeout=15)
    assert json.loads(ndjson_line)["message"] == json.loads(_hidden_body())["message"]
    outputs = {"listen json": ndjson_line, "listen plain": plain_line}
    refid = VALID["refid"]
    for name, args, tty in [
        ("list table", ["list"], True),
        ("list plain", ["list", "--format", "plain"], False),
        ("list json", ["list", "--format", "json"], False),
        ("show table", ["show", refid], True),
        ("show plain", ["show", refid, "--format", "plain"], False),
        ("show json", ["show", refid, "--format", "json"], False),
        ("export", ["export"], False),
        ("export --redact", ["export", "--redact"], False),
    ]:
        result = run_ipsms("messages", *args, "--db", str(db), tty=tty, columns=200)
        assert result.returncode == 0, (name, result.stderr)
        outputs[name] = result.stdout
    assert "x\\u3164x" in outputs["show json"] and "\\udb40\\udd00" in outputs["export"]
    assert "❤️" in outputs["listen plain"] and "❤️" in outputs["show plain"]
    assert {name: _leaked(text) for name, text in outputs.items()} == {name: [] for name in outputs}


async def test_a_header_holding_the_secret_is_masked_in_the_store_and_every_view(
    tmp_path: Path,
) -> None:
    """A poster (or a proxy) that copies the shared code into a header: the store keeps the
    header masked, and the views mask a header holding the signature as the field is."""
    import sqlite3

    secret = "s3cret-shared-code"
    db = tmp_path / "s.sqlite3"
    body = json.dumps({**VALID, "signature": secret}).encode()
    async with running_listener(db, secret=secret) as listener:
        answer = await listener.post(
            body, headers=(f"X-Signature: {secret}\r\nX-Forwarded-Auth: token={secret};v=1\r\n")
        )
        assert status_of(answer) == 200, answer
        # no secret configured: the views still mask a header holding the signature
    async with running_listener(db) as listener:
        answer = await listener.post(body, headers=f"X-Signature: {secret}\r\n")
        assert status_of(answer) == 200, answer
    with sqlite3.connect(db) as conn:
        stored = [h for (h,) in conn.execute("SELECT headers FROM requests ORDER BY id")]
    assert secret not in stored[0] and "X-Signature" in stored[0]
    for command in (
        ["messages", "list", "--format", "json"],
        ["messages", "show", VALID["refid"], "--format", "json"],
    ):
        result = run_ipsms(*command, "--db", str(db))
        assert result.returncode == 0, result.stderr
        assert secret not in result.stdout, command
        assert "X-Signature" in result.stdout
