"""`ipsms messages list|show|export|clear` as real processes, over a store filled by a real
`ipsms listen` subprocess that receives real HTTP requests on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import time
import urllib.error
import urllib.request
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ipsms import store
from ipsms.errors import ExitCode
from ipsms.request import Request
from ipsms.store.recorder import Recorder
from ipsms.ui.cells import char_width
from tests.conftest import cli_env, run_ipsms
from tests.procs import ListenerProcess

SECRET = "tr0ub4dor&3-shared"
REFID_A = "ABCDEF1234567890ABCDEF1234567890"
REFID_B = "B" * 16 + "0123456789ABCDEF"
REFID_C = "C" * 32
REFID_D = "D" * 32
FROM = "+13038675309"
TO = "+12161112222"
# Markup and an ANSI escape: both must reach the terminal as literal text.
TEXT_A = "Hi [bold red]there[/bold red] \x1b[31mred\x1b[0m"
TEXT_B = "Form body: café & more"
# hmac-sha256 hex over refid + message with SECRET (openssl dgst -sha256 -hmac).
HMAC_HELLO = "574ae8d0824d2780e9273eea6bc9cd13cc70db6bb72619023f05ead3d4736986"
TEXT_HELLO = "Hello from ipsms"


def body_a() -> bytes:
    return json.dumps(
        {"refid": REFID_A, "from": FROM, "to": TO, "message": TEXT_A, "signature": SECRET}
    ).encode()


def body_b() -> bytes:
    from urllib.parse import urlencode

    return urlencode(
        {"refid": REFID_B, "from": FROM, "to": TO, "message": TEXT_B, "signature": SECRET}
    ).encode()


BODY_C = json.dumps(
    {"refid": REFID_C, "from": FROM, "to": TO, "message": "tampered", "signature": HMAC_HELLO}
).encode()
BODY_D = json.dumps({"refid": REFID_D, "from": FROM, "to": TO, "message": "unsigned"}).encode()
BODY_BAD = b'{"refid": "X", "from": "+13038675309"'


def post(
    url: str,
    body: bytes,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> int:
    req = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": content_type, **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@dataclass(frozen=True)
class Recorded:
    db: Path
    listen_lines: list[dict[str, Any]]  # what `listen --format json` printed per request


def record_with_listener(tmp: Path) -> Recorded:
    """Six requests through a real listener (secret SECRET, auto mode): A twice (plain, with
    an Authorization header), B form-encoded, C a wrong HMAC (403), a broken body (400), D
    unsigned (403)."""
    env = {k: v for k, v in cli_env().items() if not k.startswith("IPSMS_")}
    env["IPSMS_HOME"] = str(tmp / "home")
    db = tmp / "messages.sqlite3"
    listener = ListenerProcess("--secret", SECRET, db=db, env=env)
    try:
        auth = {"Authorization": "Bearer tok-SUPERSECRET-123"}
        assert post(listener.url + "hook", body_a(), headers=auth) == 200
        assert post(listener.url + "hook", body_a(), headers=auth) == 200
        assert post(listener.url, body_b(), "application/x-www-form-urlencoded") == 200
        assert post(listener.url, BODY_C) == 403
        assert post(listener.url, BODY_BAD) == 400
        assert post(listener.url, BODY_D) == 403
        code, out, _ = listener.stop()
    finally:
        listener.kill()
    assert code == 0
    return Recorded(db, [json.loads(line) for line in out.splitlines() if line.strip()])


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    return record_with_listener(tmp_path_factory.mktemp("listened"))


@pytest.fixture
def recorded_copy(recorded: Recorded, tmp_path: Path) -> Recorded:
    """A private copy of the listener's store, for a test that changes it (one listener run
    per module, not one per test)."""
    db = tmp_path / recorded.db.name
    with closing(sqlite3.connect(recorded.db)) as source, closing(sqlite3.connect(db)) as copy:
        source.backup(copy)
    return Recorded(db, recorded.listen_lines)


def ndjson(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def messages(*args: str, db: Path) -> Any:
    return run_ipsms("messages", *args, "--db", str(db))


def test_list_is_newest_first_with_rejected_requests(recorded: Recorded) -> None:
    result = messages("list", db=recorded.db)  # stdout is a pipe: NDJSON by default
    assert result.returncode == 0, result.stderr
    rows = ndjson(result.stdout)
    assert [(r["refid"], r["attempt"], r["status"]) for r in rows] == [
        (REFID_D, 1, 403),
        (None, None, 400),
        (REFID_C, 1, 403),
        (REFID_B, 1, 200),
        (REFID_A, 2, 200),
        (REFID_A, 1, 200),
    ]
    assert all(r["type"] == "request" for r in rows)
    assert rows[1]["error"] == "invalid_json"
    assert rows[1]["error_detail"].startswith("body is not valid JSON")
    assert rows[2]["verdict"] == "invalid" and rows[0]["verdict"] == "missing"
    assert rows[-1]["message"] == TEXT_A and rows[-1]["from"] == FROM
    assert rows[-1]["verdict"] == "valid" and rows[-1]["verdict_detail"] == "plain"
    assert rows[3]["verdict_detail"] == "plain" and rows[3]["message"] == TEXT_B


def test_list_limit_and_db_from_environment(recorded: Recorded) -> None:
    result = run_ipsms("messages", "list", "--limit", "2", env=cli_env(IPSMS_DB=str(recorded.db)))
    assert result.returncode == 0, result.stderr
    assert [r["refid"] for r in ndjson(result.stdout)] == [REFID_D, None]


def test_list_table_keeps_markup_and_escapes_literal(recorded: Recorded) -> None:
    result = run_ipsms(
        "messages",
        "list",
        "--format",
        "table",
        "--db",
        str(recorded.db),
        env=cli_env(COLUMNS="200"),
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "\x1b" not in out  # neither the SMS's escape nor colours on a pipe
    assert "Hi [bold red]there[/bold red] \\e[31mred\\e[0m" in out
    lines = out.splitlines()
    assert lines[0].split() == ["time", "refid", "#", "from", "to", "message", "verdict", "status"]
    assert REFID_A in lines[-1] and lines[-1].rstrip().endswith("200")
    assert "invalid_json" in out and "valid (plain)" in out


def test_list_table_fits_an_80_column_terminal(recorded: Recorded) -> None:
    result = run_ipsms(
        "messages", "list", "--format", "table", "--db", str(recorded.db), env=cli_env(COLUMNS="80")
    )
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert lines[0].split()[-1] == "status"  # no column cropped off the right
    assert [line.split()[-1] for line in lines[2:]] == ["403", "400", "403", "200", "200", "200"]


@pytest.mark.parametrize("columns", [80, 160])
def test_list_table_with_emoji_and_cjk_never_outgrows_the_terminal(
    tmp_path: Path, columns: int
) -> None:
    """Skin tones, ZWJ families, flags and CJK: every cell is in the display form all
    terminals measure alike (as in the live table), so no row wraps."""
    db = tmp_path / "s.sqlite3"
    conn = store.connect(db)
    store.begin_batch(conn)
    texts = [
        "thanks 👍🏽 family 👨‍👩‍👧‍👦 flag 🇯🇵 中文字符测试 " + "long text " * 6,
        "👋🏿" * 40,
        "plain",
    ]
    store.insert_batch(
        conn,
        [
            store.wire_row(
                Request(
                    received_at=time.time(),
                    method="POST",
                    path="/sms",
                    remote="127.0.0.1",
                    headers=[],
                    content_type="application/json",
                    body=b"{}",
                    status=200,
                    refid=f"R{i}",
                    from_number="+13035550100",
                    to_number="+13038675309",
                    message=text,
                    verdict="valid",
                    verdict_detail="plain",
                )
            )
            for i, text in enumerate(texts)
        ],
        "s",
    )
    store.commit(conn)
    conn.close()
    result = run_ipsms(
        "messages", "list", "--format", "table", "--db", str(db), env=cli_env(COLUMNS=str(columns))
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for line in lines:
        widths = [char_width(ch) for ch in line]
        assert None not in widths, line  # no character terminals disagree on
        assert sum(w for w in widths if w is not None) <= columns, line
    assert [line.split()[-1] for line in lines[2:]] == ["200", "200", "200"]


def test_show_every_attempt_with_credentials_masked(recorded: Recorded) -> None:
    result = messages("show", REFID_A, "--format", "json", db=recorded.db)
    assert result.returncode == 0, result.stderr
    [doc] = ndjson(result.stdout)
    assert doc["type"] == "message" and doc["refid"] == REFID_A
    assert [a["attempt"] for a in doc["attempts"]] == [1, 2]
    first = doc["attempts"][0]
    assert ["Authorization", "Bearer ****"] in first["headers"]
    assert first["path"] == "/hook" and first["status"] == 200
    assert first["verdict"] == "valid" and first["verdict_detail"] == "plain"
    # The raw body, with the signature (here: the shared secret itself) masked.
    assert first["body"] == body_a().decode().replace(SECRET, first["signature"])
    assert first["signature"] == f"****({len(SECRET)})" and first["message"] == TEXT_A
    assert "SUPERSECRET" not in result.stdout and SECRET not in result.stdout


def test_show_table_on_a_terminal_form(recorded: Recorded) -> None:
    result = messages("show", REFID_B, "--format", "table", db=recorded.db)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "1 attempt recorded" in out and "application/x-www-form-urlencoded" in out
    assert "refid=" + REFID_B in out and "caf%C3%A9" in out  # the raw form body
    assert SECRET not in out and "tr0ub4dor%263" not in out  # nor form-encoded


def test_show_invalid_attempt_explains_without_secret(recorded: Recorded) -> None:
    result = messages("show", REFID_C, "--format", "json", db=recorded.db)
    [doc] = ndjson(result.stdout)
    attempt = doc["attempts"][0]
    assert attempt["status"] == 403 and attempt["verdict"] == "invalid"
    assert "sha256:" in attempt["verdict_detail"]  # the secret's fingerprint
    assert SECRET not in result.stdout


def test_show_unknown_refid_is_not_found(recorded: Recorded) -> None:
    result = messages("show", "NOPE" * 8, db=recorded.db)
    assert result.returncode == ExitCode.NOT_FOUND
    assert result.stdout == ""
    assert "no recorded message with refid 'NOPENOPE" in result.stderr
    assert "ipsms messages list" in result.stderr


def test_show_takes_a_unique_refid_prefix(recorded: Recorded) -> None:
    result = messages("show", REFID_A[:8], "--format", "json", db=recorded.db)
    assert result.returncode == 0, result.stderr
    [doc] = ndjson(result.stdout)
    assert doc["refid"] == REFID_A and doc["attempt_count"] == 2
    table = messages("show", REFID_C[:8], "--format", "table", db=recorded.db)
    assert "refid " + REFID_C in table.stdout
    assert "invalid (different secret)" in table.stdout  # the short reason, then the detail


def test_an_ambiguous_refid_prefix_lists_candidates(recorded_copy: Recorded) -> None:
    other = REFID_A[:6] + "99" + REFID_A[8:]
    with closing(sqlite3.connect(recorded_copy.db)) as conn, conn:
        conn.execute("UPDATE requests SET refid = ? WHERE refid = ?", (other, REFID_C))
    result = messages("show", "ABCDEF", db=recorded_copy.db)
    assert result.returncode == ExitCode.USAGE
    assert "ambiguous" in result.stderr and REFID_A in result.stderr and other in result.stderr
    assert "give more characters" in result.stderr
    assert messages("show", "ABCDEF1", db=recorded_copy.db).returncode == 0
    assert messages("show", "abcdef1", db=recorded_copy.db).returncode == ExitCode.NOT_FOUND
    assert messages("show", "ABCDEF*", db=recorded_copy.db).returncode == ExitCode.NOT_FOUND


@pytest.mark.parametrize("command", [["list"], ["show", REFID_A], ["export"], ["clear", "--yes"]])
def test_missing_store_says_nothing_recorded_yet(tmp_path: Path, command: list[str]) -> None:
    db = tmp_path / "never.sqlite3"
    result = messages(*command, db=db)
    assert result.returncode == ExitCode.NOT_FOUND
    assert "no messages recorded yet" in result.stderr and "ipsms listen" in result.stderr
    assert not db.exists()  # reading never creates a store


def test_export_oldest_first_with_exact_bodies(recorded: Recorded) -> None:
    result = messages("export", db=recorded.db)
    assert result.returncode == 0, result.stderr
    rows = ndjson(result.stdout)
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows) and len(rows) == 6
    assert [r["body"].encode() for r in rows] == [
        body_a(),
        body_a(),
        body_b(),
        BODY_C,
        BODY_BAD,
        BODY_D,
    ]
    assert rows[0]["fields"]["signature"] == SECRET  # export keeps what arrived
    assert ["Authorization", "Bearer ****"] in rows[0]["headers"]
    assert rows[4]["refid"] is None and rows[4]["error"].startswith("invalid_json")


def test_export_redacted_leaves_no_numbers_text_or_secret(recorded: Recorded) -> None:
    result = messages("export", "--redact", db=recorded.db)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for leak in (
        FROM,
        TO,
        FROM[1:],
        TO[1:],
        "3038675309",
        "2161112222",
        "bold red",
        "there",
        "café",
        "caf%C3%A9",
        "tampered",
        "unsigned",
        SECRET,
        "tr0ub4dor%263",
    ):
        assert leak not in out, leak
    rows = ndjson(out)
    assert all(r["redacted"] for r in rows)
    first = rows[0]
    assert first["from"] == "+1********09" and first["to"] == "+1********22"
    assert first["message"] == f"[redacted {len(TEXT_A)} chars]"
    assert json.loads(first["body"])["message"] == f"[redacted {len(TEXT_A)} chars]"
    assert first["refid"] == REFID_A  # the key stays, so rows can still be matched
    assert rows[4]["body"] == f"[redacted {len(BODY_BAD)} bytes]"  # unparseable: whole


async def test_export_since_and_non_utf8_body_as_base64(tmp_path: Path) -> None:
    now = time.time()
    db = tmp_path / "s.sqlite3"
    raw = b"\xff\xfe not utf-8"
    async with Recorder(db) as recorder:
        for received_at, body in ((now - 7200, b"old"), (now - 60, raw)):
            await recorder.record(
                Request(
                    received_at=received_at,
                    method="POST",
                    path="/",
                    remote="127.0.0.1",
                    headers=[],
                    content_type="application/json",
                    body=body,
                    status=400,
                    error="invalid_encoding",
                    error_detail="body is not valid UTF-8",
                )
            )
    result = messages("export", "--since", "10m", db=db)
    assert result.returncode == 0, result.stderr
    [row] = ndjson(result.stdout)
    assert row["body"] is None and base64.b64decode(row["body_base64"]) == raw
    assert len(ndjson(messages("export", "--since", "3h", db=db).stdout)) == 2
    bad = messages("export", "--since", "yesterday", db=db)
    assert bad.returncode == ExitCode.USAGE and "cannot read the duration" in bad.stderr


def test_clear_refuses_without_a_terminal_then_clears_with_yes(recorded_copy: Recorded) -> None:
    recorded = recorded_copy
    assert b"Hi [bold red]" in recorded.db.read_bytes()  # the copy holds the text
    refused = messages("clear", db=recorded.db)
    assert refused.returncode == ExitCode.USAGE
    assert "refusing to delete 6 recorded requests" in refused.stderr
    assert "--yes" in refused.stderr
    assert len(ndjson(messages("list", db=recorded.db).stdout)) == 6  # nothing removed

    cleared = messages("clear", "--yes", "--format", "json", db=recorded.db)
    assert cleared.returncode == 0, cleared.stderr
    assert ndjson(cleared.stdout) == [{"type": "cleared", "removed": 6, "db": str(recorded.db)}]
    assert messages("list", db=recorded.db).stdout == ""
    human = messages("clear", "-y", "--format", "table", db=recorded.db)
    assert human.stdout.strip() == f"removed 0 recorded requests from {recorded.db}"
    # The deleted text is gone from the file too, not just unlinked from the table.
    assert b"Hi [bold red]" not in recorded.db.read_bytes()


def run_with_terminal_stdin(args: list[str], answer: bytes) -> tuple[int, str, str]:
    """Run ipsms with a pseudo-terminal on stdin (so it may ask), typing ``answer``."""
    import os
    import pty
    import subprocess
    import sys

    from tests.conftest import ROOT

    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ipsms", *args],
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(),
            cwd=ROOT,
        )
        os.write(master, answer)
        out, err = proc.communicate(timeout=30)
    finally:
        os.close(slave)
        os.close(master)
    return proc.returncode, out, err


@pytest.mark.parametrize(("answer", "left"), [(b"n\n", 6), (b"\n", 6), (b"y\n", 0)])
def test_clear_asks_on_a_terminal(recorded_copy: Recorded, answer: bytes, left: int) -> None:
    recorded = recorded_copy
    code, out, err = run_with_terminal_stdin(
        ["messages", "clear", "--db", str(recorded.db), "--format", "json"], answer
    )
    assert code == 0, err
    assert f"Delete all 6 recorded requests from {recorded.db}? [y/N]" in err
    assert len(ndjson(messages("list", db=recorded.db).stdout)) == left
    if left:
        assert out == "" and "nothing deleted" in err
    else:
        assert ndjson(out)[0]["removed"] == 6


def test_export_redacted_masks_numbers_in_flags_query_headers_and_extra_fields(
    tmp_path: Path,
) -> None:
    """A regression case: the flag of "+7708675309" quotes it and suggests +17708675309. Every
    digit run of the original numbers is searched for in the whole export."""
    env = {k: v for k, v in cli_env().items() if not k.startswith("IPSMS_")}
    env["IPSMS_HOME"] = str(tmp_path / "home")
    db = tmp_path / "m.sqlite3"
    sender, to, text = "+7708675309", "+1 (720) 964-1387", "Meet me at the Blue Door"
    body = json.dumps(
        {
            "refid": REFID_D,
            "from": sender,
            "to": to,
            "message": text,
            "callback": "720.964.1387",
            "echo": text,
        }
    ).encode()
    listener = ListenerProcess(db=db, env=env)
    try:
        assert (
            post(
                listener.url + "hook?caller=%2B7708675309&say=Blue+Door",
                body,
                headers={"X-Caller": "720-964-1387"},
            )
            == 200
        )
        assert listener.stop()[0] == 0
    finally:
        listener.kill()
    plain = messages("export", db=db).stdout
    assert "has 10 digits" in plain and "+17708675309" in plain  # the flag quotes both
    result = messages("export", "--redact", db=db)
    assert result.returncode == 0, result.stderr
    port = listener.url.split(":")[2].strip("/")
    out = result.stdout.replace(port, "PORT")  # the Host header's port is not a number's
    # Nor is the time it arrived: its milliseconds are "964" or "720" one run in 500.
    out = re.sub(r'"received_at":"[^"]*"', '"received_at":"TIME"', out)
    for leak in (
        "7708675309",
        "17708675309",
        "7209641387",
        "720",
        "964",
        "1387",
        "Blue",
        "Door",
        "Meet",
    ):
        assert leak not in out, leak
    [row] = ndjson(out)
    assert row["from"] == "+7*******09" and row["message"] == f"[redacted {len(text)} chars]"
    flag = next(f["detail"] for f in row["flags"] if f["code"] == "from_format")
    assert flag.startswith("from: '+7*******09' has 10 digits") and "try +1********09)" in flag
    assert row["path"] == "/hook?caller=%2B7*******09&say=****+****"  # still readable


def test_verify_and_replay_take_the_prefix_the_live_table_shows(recorded: Recorded) -> None:
    """The compact live table shows `ABCDEF12…`; every command that takes a refid accepts it."""
    verified = run_ipsms(
        "verify",
        "--refid",
        REFID_A[:8],
        "--db",
        str(recorded.db),
        "--format",
        "json",
        env=cli_env(IPSMS_SECRET=SECRET),
    )
    assert verified.returncode == 0, verified.stderr
    assert [json.loads(line)["refid"] for line in verified.stdout.splitlines()] == [REFID_A] * 2
    replayed = run_ipsms(
        "replay",
        REFID_A[:8],
        "--db",
        str(recorded.db),
        "--to",
        "http://127.0.0.1:1/",
        "--max-attempts",
        "1",
        "--format",
        "json",
    )
    assert replayed.returncode == ExitCode.NOT_DELIVERED  # nothing listens there: it was tried
    assert json.loads(replayed.stdout.splitlines()[0])["refid"] == REFID_A
    empty = run_ipsms("replay", "", "--db", str(recorded.db), "--to", "http://127.0.0.1:1/")
    assert empty.returncode == ExitCode.NOT_FOUND  # an empty refid is no prefix of all


def test_list_says_on_stderr_when_the_limit_left_requests_out(recorded: Recorded) -> None:
    """Six recorded: `--limit 2` shows two and says how to see the rest; when every request
    was shown, nothing is said; --quiet hides it."""
    result = messages("list", "--limit", "2", db=recorded.db)
    assert result.returncode == 0 and len(ndjson(result.stdout)) == 2
    assert result.stderr == (
        "ipsms messages list: showed the newest 2 of 6 recorded requests; "
        "--limit N shows more, --limit 0 all of them\n"
    )
    result = messages("list", "--verdict", "invalid,missing", "--limit", "1", db=recorded.db)
    assert "showed the newest 1 of 2 matching requests" in result.stderr
    for args in (
        ["list"],
        ["list", "--limit", "6"],
        ["list", "--limit", "2", "--quiet"],
        ["list", "--verdict", "invalid,missing", "--limit", "2"],
    ):
        result = messages(*args, db=recorded.db)
        assert result.returncode == 0 and result.stderr == "", args
    result = messages("list", "--format", "table", "--limit", "3", db=recorded.db)
    assert "showed the newest 3 of 6" in result.stderr and "of 6" not in result.stdout


def test_list_limit_0_shows_every_request(recorded: Recorded) -> None:
    result = messages("list", "--limit", "0", db=recorded.db)
    assert result.returncode == 0 and result.stderr == ""
    assert len(ndjson(result.stdout)) == 6


def fill_store(db: Path, count: int, *, invalid: int) -> None:
    """``count`` requests, the ``invalid`` oldest ones with a bad signature (403)."""
    conn = store.connect(db)
    store.begin_batch(conn)
    store.insert_batch(
        conn,
        [
            store.wire_row(
                Request(
                    received_at=time.time() - count + i,
                    method="POST",
                    path="/sms",
                    remote="127.0.0.1",
                    headers=[],
                    content_type="application/json",
                    body=b"{}",
                    status=403 if i < invalid else 200,
                    refid=f"{i:032d}",
                    from_number=FROM,
                    to_number=TO,
                    message=f"message {i}",
                    verdict="invalid" if i < invalid else "valid",
                    verdict_detail="differs from the secret" if i < invalid else "plain",
                )
            )
            for i in range(count)
        ],
        "s",
    )
    store.commit(conn)
    conn.close()


def test_the_docs_grep_example_finds_the_bad_signatures(tmp_path: Path) -> None:
    """docs/messages.md's `messages list ... | grep` line, run as written in a shell, finds the
    403s even when 60 newer requests were recorded after them."""
    import re
    import shlex
    import subprocess
    import sys

    from tests.conftest import ROOT

    page = (ROOT / "docs" / "messages.md").read_text()
    found = re.search(r"^(ipsms messages list [^\n#]*\| grep [^\n#]*?)\s*#", page, re.M)
    assert found is not None, "docs/messages.md has no `messages list | grep` example"
    db = tmp_path / "s.sqlite3"
    fill_store(db, 63, invalid=3)
    ipsms = f"{shlex.quote(sys.executable)} -m ipsms"
    line = found.group(1).replace("ipsms ", ipsms + " ", 1)
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", line],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
        env=cli_env(IPSMS_DB=str(db)),
    )
    assert result.returncode == 0, result.stderr
    shown = result.stdout.splitlines()
    assert len(shown) == 3 and all(" 403 " in s and "[invalid" in s for s in shown), shown


@pytest.mark.parametrize("columns", [80, 100, 160])
def test_list_table_never_cuts_the_verdict_word(recorded: Recorded, columns: int) -> None:
    """`invalid` whole, with its reason where that fits, never `invali…` or the reason cut."""
    result = run_ipsms(
        "messages",
        "list",
        "--format",
        "table",
        "--db",
        str(recorded.db),
        env=cli_env(COLUMNS=str(columns)),
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    invalid = next(line for line in out.splitlines() if REFID_C[:8] in line)
    assert re.search(r" invalid(  | \(different secret\)  )", invalid), out
    assert " missing " in next(line for line in out.splitlines() if REFID_D[:8] in line)
    assert not re.search(r"\b(in)?vali…|\(\w[^)]*…", out), out  # nothing of a verdict cut
    if columns >= 160:
        assert "invalid (different secret)" in invalid
