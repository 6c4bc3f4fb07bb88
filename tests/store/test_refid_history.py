"""Flags from a refid's history, as a user sees them: the NDJSON line of the request just
received, the plain line, and ``messages show``. Real listeners on port 0; a restart is a new
listener process on the same store."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from ipsms import store
from ipsms.listen.app import ListenConfig, create_app
from ipsms.store import history as refid_history
from ipsms.store.recorder import Recorder
from tests.cli.test_listen_cli import banner_url, post, spawn_listener
from tests.conftest import ROOT, cli_env, run_ipsms
from tests.procs import ListenerProcess

REFID = "ABCDEF1234567890ABCDEF1234567890"
SEED = {
    "refid": REFID,
    "from": "+13035550100",
    "to": "+13038675309",
    "message": "Hello World!",
    "signature": "SECRET CODE",
}
HISTORY = {"too_many_attempts", "refid_reused", "earlier_session"}


def body(**changes: str) -> bytes:
    return json.dumps({**SEED, **changes}).encode()


def codes(request: dict[str, Any]) -> list[str]:
    """The history flags of one request line, in order."""
    return [f["code"] for f in request["flags"] if f["code"] in HISTORY]


def flag(request: dict[str, Any], code: str) -> str:
    [detail] = [f["detail"] for f in request["flags"] if f["code"] == code]
    return str(detail)


def shown(db: Path, refid: str = REFID) -> list[dict[str, Any]]:
    """``messages show REFID --format json``: every attempt, as stored."""
    result = run_ipsms("messages", "show", refid, "--format", "json", "--db", str(db))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["attempts"]  # type: ignore[no-any-return]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "m.sqlite3"


@pytest.fixture
def listener(db: Path) -> Iterator[ListenerProcess]:
    proc = ListenerProcess(db=db)
    yield proc
    proc.kill()


def test_a_sixth_attempt_is_flagged_beyond_intelepeers_five(
    listener: ListenerProcess, db: Path
) -> None:
    lines = []
    for _ in range(6):  # IntelePeer's own doc's number: the message has a flag of its own
        assert post(listener.url, body(**{"from": "+7708675309"}))[0] == 200
        lines.append(listener.next_event())
    assert [line["attempt"] for line in lines] == [1, 2, 3, 4, 5, 6]
    # IntelePeer's own retries (attempts 2 to 5 of the same message) are not anomalies.
    assert [codes(line) for line in lines] == [[], [], [], [], [], ["too_many_attempts"]]
    assert "gives up after 5 attempts" in flag(lines[5], "too_many_attempts")
    assert "attempt 6" in flag(lines[5], "too_many_attempts")
    listener.stop()
    attempts = shown(db)
    assert [codes(a) for a in attempts] == [[], [], [], [], [], ["too_many_attempts"]]
    # The flag the message has on its own is kept beside it, on the line and in the store.
    assert [f["code"] for f in lines[5]["flags"]] == ["from_format", "too_many_attempts"]
    assert attempts[5]["flags"] == lines[5]["flags"]
    # The list table marks the attempt and says where the reason is.
    table = run_ipsms(
        "messages", "list", "--format", "table", "--db", str(db), env=cli_env(COLUMNS="120")
    )
    assert table.returncode == 0, table.stderr
    rows = [line.split() for line in table.stdout.splitlines() if REFID in line]
    assert [row[3] for row in rows] == ["6!", "5", "4", "3", "2", "1"]  # newest first
    assert "`ipsms messages show REFID` says why" in table.stdout


def test_a_refid_reused_with_another_text_or_sender(listener: ListenerProcess, db: Path) -> None:
    other_text = "Completely different words, and a secret code 4711 nobody should see twice"
    assert post(listener.url, body())[0] == 200
    assert post(listener.url, body(message=other_text))[0] == 200
    assert post(listener.url, body(**{"from": "+17205550123"}))[0] == 200
    assert post(listener.url, body())[0] == 200  # the first text and sender again
    first, texted, sent, same = (listener.next_event() for _ in range(4))
    assert [codes(line) for line in (first, texted, sent, same)] == [
        [],
        ["refid_reused"],
        ["refid_reused"],
        [],
    ]
    detail = flag(texted, "refid_reused")
    assert "text differs from attempt 1" in detail
    assert f"12 then {len(other_text)} characters" in detail
    assert "first difference at character 1" in detail
    assert other_text not in detail and "4711" not in detail  # says what, never dumps it
    assert "sender" not in detail
    detail = flag(sent, "refid_reused")
    assert "sender +13035550100 on attempt 1, now +17205550123" in detail
    assert "text" not in detail
    listener.stop()
    assert [codes(a) for a in shown(db)] == [[], ["refid_reused"], ["refid_reused"], []]


def test_a_message_first_cut_as_rejected_then_accepted_whole_is_not_reused(db: Path) -> None:
    """A rejected request keeps only the start of its text; its accepted retry with the whole
    text is the same message, not a reused refid."""
    long_text = "x" * 2000
    listener = ListenerProcess("--secret", "SECRET CODE", db=db)
    try:
        assert post(listener.url, body(message=long_text, signature="wrong"))[0] == 403
        assert post(listener.url, body(message=long_text))[0] == 200
        assert post(listener.url, body(message=long_text[:-1] + "y"))[0] == 200
        rejected, accepted, changed = (listener.next_event() for _ in range(3))
    finally:
        listener.kill()
    assert "cut" in rejected["message"]
    assert [accepted["attempt"], codes(accepted)] == [2, []]
    assert codes(changed) == ["refid_reused"]
    # Compared with the first attempt kept whole: the difference past the cut is seen.
    assert (
        "text differs from attempt 2 (2000 then 2000 characters, first difference at "
        "character 2000)" in flag(changed, "refid_reused")
    )


def test_a_new_listener_session_explains_attempt_3(db: Path) -> None:
    """docs/listen.md's curl example, sent again after a restart, is #3: the line says the refid
    was first seen in an earlier session, when, and how many attempts came before."""
    first = ListenerProcess(db=db)
    try:
        assert post(first.url, body())[0] == 200
        assert post(first.url, body())[0] == 200
        seen = [first.next_event(), first.next_event()]
        first.stop()
    finally:
        first.kill()
    assert [codes(line) for line in seen] == [[], []]

    again = ListenerProcess(db=db)
    try:
        assert post(again.url, body())[0] == 200
        assert post(again.url, body())[0] == 200
        third, fourth = again.next_event(), again.next_event()
        again.stop()
    finally:
        again.kill()
    assert (third["attempt"], codes(third)) == (3, ["earlier_session"])
    detail = flag(third, "earlier_session")
    assert f"first seen {seen[0]['received_at']} in an earlier listener session" in detail
    assert "2 attempts recorded before this one" in detail
    assert "3 attempts recorded before this one" in flag(fourth, "earlier_session")
    # A new refid in the new session has no history.
    assert [codes(a) for a in shown(db)] == [[], [], ["earlier_session"], ["earlier_session"]]

    # --format plain shows the flag codes on the request's own line.
    proc = spawn_listener("plain", db)
    try:
        assert proc.stderr is not None and proc.stdout is not None
        url = banner_url(proc.stderr.readline())
        assert post(url, body())[0] == 200
        line = proc.stdout.readline()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=15)
    assert f" 200 #5 {REFID} " in line and "flags=earlier_session" in line


def v3_store(path: Path, received_at: float) -> None:
    """A store as ipsms wrote it before sessions: the schema statements of versions 1 to 3
    and one accepted message of ``REFID``, inserted with the columns version 3 had."""
    with closing(sqlite3.connect(path)) as conn:
        for version in (1, 2, 3):
            conn.executescript(store._MIGRATIONS[version])
        conn.execute("PRAGMA user_version = 3")
        conn.execute(
            "INSERT INTO requests (received_at, method, path, remote, headers, content_type, "
            "body, refid, from_number, to_number, message, fields, attempt, verdict, flags, "
            "status) VALUES (?, 'POST', '/', '127.0.0.1', '[]', 'application/json', ?, ?, ?, ?, "
            "?, ?, 1, 'unchecked', NULL, 200)",
            (
                received_at,
                body(),
                REFID,
                SEED["from"],
                SEED["to"],
                SEED["message"],
                body().decode(),
            ),
        )
        conn.commit()


def test_a_schema_3_store_is_migrated_and_its_rows_are_an_earlier_session(db: Path) -> None:
    v3_store(db, 1767225600.0)  # 2026-01-01T00:00:00Z
    listener = ListenerProcess(db=db)
    try:
        assert post(listener.url, body())[0] == 200
        line = listener.next_event()
        listener.stop()
    finally:
        listener.kill()
    assert (line["attempt"], codes(line)) == (2, ["earlier_session"])
    assert (
        "first seen 2026-01-01T00:00:00.000Z in an earlier listener session; 1 attempt "
        "recorded before this one" in flag(line, "earlier_session")
    )
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION >= 4
        sessions = [s for (s,) in conn.execute("SELECT session FROM requests ORDER BY id")]
    assert sessions[0] is None and sessions[1]  # old rows: an unknown earlier session
    attempts = shown(db)
    assert [(a["attempt"], codes(a)) for a in attempts] == [(1, []), (2, ["earlier_session"])]
    assert attempts[0]["message"] == "Hello World!"


async def test_concurrent_retries_in_one_batch_are_counted_and_flagged_once_each(
    aiohttp_client: Any, db: Path
) -> None:
    """Requests committed together (group commit) see each other: attempts 1 to 8, and only
    those past 5 flagged, none as an earlier session."""
    events: list[Any] = []
    client: TestClient[Any, Any] = await aiohttp_client(
        create_app(ListenConfig(), Recorder(db), [events.append])
    )
    answers = await asyncio.gather(
        *(
            client.post("/", data=body(), headers={"Content-Type": "application/json"})
            for _ in range(8)
        )
    )
    assert [a.status for a in answers] == [200] * 8
    by_attempt = {
        e.attempt: [f["code"] for f in e.flags or [] if f["code"] in HISTORY] for e in events
    }
    assert by_attempt == {
        1: [],
        2: [],
        3: [],
        4: [],
        5: [],
        6: ["too_many_attempts"],
        7: ["too_many_attempts"],
        8: ["too_many_attempts"],
    }
    await client.close()
    # What was shown is what was stored.
    assert [codes(a) for a in shown(db)] == [by_attempt[n] for n in range(1, 9)]


def test_every_history_flag_code_is_documented() -> None:
    for doc in (ROOT / "docs" / "ndjson.md", ROOT / "docs" / "listen.md"):
        text = doc.read_text()
        missing = [code for code in refid_history.CODES if f"`{code}`" not in text]
        assert not missing, f"{doc.name} does not name {missing}"
