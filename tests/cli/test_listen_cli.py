"""`ipsms listen` as a real process: NDJSON out, store on disk, signals, start-up errors."""

from __future__ import annotations

import json
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipsms import store
from tests.conftest import ROOT, cli_env, run_ipsms
from tests.procs import ListenerProcess

SEED = (
    b'{"refid": "ABCDEF1234567890ABCDEF1234567890", "from": "+7708675309", '
    b'"to": "+13038675309", "message": "Hello World!", "signature": "SECRET CODE"}'
)


def post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
    req = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[ListenerProcess]:
    proc = ListenerProcess("--secret", "SECRET CODE", db=tmp_path / "m.sqlite3")
    yield proc
    proc.kill()


def test_seed_message_end_to_end(listener: ListenerProcess, tmp_path: Path) -> None:
    status, _ = post(listener.url + "inbound", SEED)
    assert status == 200
    event = listener.next_event()
    assert event["type"] == "request"
    assert event["refid"] == "ABCDEF1234567890ABCDEF1234567890"
    assert event["verdict"] == "valid" and event["verdict_detail"] == "plain"
    assert event["signature"] == "****(11)"  # masked, never the secret
    assert event["flags"][0]["code"] == "from_format"
    assert post(listener.url, SEED)[0] == 200
    assert listener.next_event()["attempt"] == 2
    code, out, err = listener.stop()
    assert code == 0
    assert "SECRET CODE" not in out
    assert "2 received, 2 accepted, 0 rejected, 0 bad signatures, 1 retry" in err
    conn = store.connect(tmp_path / "m.sqlite3", create=False)
    rows = store.attempts_for(conn, "ABCDEF1234567890ABCDEF1234567890")
    assert [r.attempt for r in rows] == [1, 2]
    assert rows[0].body == SEED


def test_bad_input_is_answered_shown_and_the_listener_survives(listener: ListenerProcess) -> None:
    cases = [
        (b"{", "application/json", 400),
        (b"x", "text/plain", 415),
        (SEED.replace(b"SECRET CODE", b"nope"), "application/json", 403),
    ]
    for body, ctype, expected in cases:
        status, reply = post(listener.url, body, ctype)
        assert status == expected
        assert json.loads(reply)["detail"]
        assert listener.next_event()["status"] == expected
    assert post(listener.url, SEED)[0] == 200
    code, _, err = listener.stop(signal.SIGTERM)
    assert code == 0
    assert "4 received, 1 accepted, 3 rejected, 1 bad signature," in err


def test_request_in_flight_finishes_on_sigterm(listener: ListenerProcess, tmp_path: Path) -> None:
    sock = socket.create_connection(("127.0.0.1", listener.port), timeout=10)
    # Expect: 100-continue makes the start of the handler observable: the listener answers
    # "100 Continue" as it hands the request to its handler.
    head = (
        f"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(SEED)}\r\nExpect: 100-continue\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    sock.sendall(head)
    interim = b""
    while b"\r\n\r\n" not in interim:
        chunk = sock.recv(4096)
        assert chunk, "the listener closed the connection"
        interim += chunk
    assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    sock.sendall(SEED[:20])  # the handler is now waiting for the rest of the body
    listener.proc.send_signal(signal.SIGTERM)
    wait_until_refused(listener.port)  # shutting down: no longer accepting
    sock.sendall(SEED[20:])
    reply = interim[len(b"HTTP/1.1 100 Continue\r\n\r\n") :] + sock.recv(4096)
    sock.close()
    assert reply.startswith(b"HTTP/1.1 200")
    # The SIGTERM above stops it; a second one, once the listener has stopped serving and put
    # the default action back, would end its clean-up (-15) on a busy machine.
    _, err = listener.proc.communicate(timeout=15)
    assert listener.proc.returncode == 0, err
    conn = sqlite3.connect(tmp_path / "m.sqlite3")
    assert conn.execute("SELECT COUNT(*) FROM requests WHERE status = 200").fetchone()[0] == 1


def wait_until_refused(port: int, timeout: float = 10) -> None:
    """Connect until the port refuses: the listener has stopped accepting."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except (ConnectionRefusedError, ConnectionResetError):
            # Refused, or reset: a connection that reached the backlog as the listening
            # socket closed (seen in CI under load). Either way, no longer accepting.
            return
        assert time.monotonic() < deadline, f"port {port} still accepts connections"
        time.sleep(0.01)  # the pace of the poll, not a guess at when it happens


def spawn_listener(fmt: str, db: Path) -> subprocess.Popen[str]:
    """A listener whose stdout is not NDJSON: its URL is read from the stderr banner."""
    return subprocess.Popen(
        [sys.executable, "-m", "ipsms", "listen", "--port", "0", "--format", fmt, "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )


def banner_url(line: str) -> str:
    return line.split("listening on ")[1].split()[0]


def test_plain_format_prints_one_line_per_request(tmp_path: Path) -> None:
    proc = spawn_listener("plain", tmp_path / "p.db")
    try:
        assert proc.stderr is not None and proc.stdout is not None
        url = banner_url(proc.stderr.readline())
        assert post(url, SEED)[0] == 200
        line = proc.stdout.readline()
        assert "200 #1 ABCDEF1234567890ABCDEF1234567890 +7708675309 -> +13038675309" in line
        assert "[unchecked] Hello World!" in line
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=15)
    assert proc.returncode == 0


def test_busy_port_is_a_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_ipsms("listen", "--port", str(port), "--format", "json")
    assert result.returncode == 4
    assert result.stderr.strip().splitlines()[-1] == (
        f"ipsms: error: port {port} on 127.0.0.1 is already in use; stop the other program, "
        "choose another --port, or use --port 0 for a free one"
    )
    assert result.stdout == ""


def test_bad_host_is_a_clear_error() -> None:
    result = run_ipsms("listen", "--host", "192.0.2.1", "--port", "0", "--format", "json")
    assert result.returncode == 4
    assert "ipsms: error: cannot listen on host '192.0.2.1'" in result.stderr


def test_unwritable_state_home_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = run_ipsms("listen", "--port", "0", env=cli_env(IPSMS_HOME=str(blocker / "home")))
    assert result.returncode == 3
    assert "ipsms: error: cannot create the state directory" in result.stderr
    assert "set IPSMS_HOME to a writable directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_usage_errors_exit_2() -> None:
    assert run_ipsms("listen", "--port", "99999").returncode == 2
    result = run_ipsms("listen", "--max-body", "lots")
    assert result.returncode == 2
    assert "cannot read the size 'lots'" in result.stderr


def test_non_loopback_bind_warns(tmp_path: Path) -> None:
    proc = ListenerProcess("--host", "0.0.0.0", db=tmp_path / "w.db")
    code, _, err = proc.stop()
    assert code == 0
    assert "warning: listening on 0.0.0.0, reachable from other machines" in err
    assert "without a secret" in err


def test_settings_come_from_the_environment(tmp_path: Path) -> None:
    env = cli_env(IPSMS_SECRET="from-env", IPSMS_DB=str(tmp_path / "env.db"))
    proc = ListenerProcess(env=env)
    try:
        status, _ = post(proc.url, SEED)
        assert status == 403  # the env secret is in force
        assert proc.ready["db"] == str(tmp_path / "env.db")
    finally:
        code, _, err = proc.stop()
    assert code == 0 and "from-env" not in err


def test_table_format_on_a_pipe_falls_back_to_plain_lines(tmp_path: Path) -> None:
    proc = spawn_listener("table", tmp_path / "t.db")
    try:
        assert proc.stderr is not None and proc.stdout is not None
        warning = proc.stderr.readline()
        assert "--format table needs a terminal; printing plain lines" in warning
        url = banner_url(proc.stderr.readline())
        assert post(url, SEED)[0] == 200
        assert "#1 ABCDEF1234567890ABCDEF1234567890" in proc.stdout.readline()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=15)
    assert proc.returncode == 0


def test_closed_stdout_stops_the_listener_without_losing_the_message(tmp_path: Path) -> None:
    proc = ListenerProcess(db=tmp_path / "c.db")
    assert proc.proc.stdout is not None
    proc.proc.stdout.close()  # like `ipsms listen | head -1` after its first line
    status, _ = post(proc.url, SEED)
    assert status == 200  # the message is recorded, so it is still answered 200
    _, err = proc.proc.communicate(timeout=15)
    assert proc.proc.returncode == 0
    assert "stdout was closed; stopping" in err
    assert "Traceback" not in err and "BrokenPipe" not in err
    conn = store.connect(tmp_path / "c.db", create=False)
    assert sum(r.status == 200 for r in store.iter_all(conn)) == 1


def children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody reaped, as under a container's init, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def test_every_200_survives_a_kill_9_of_the_listener(tmp_path: Path) -> None:
    """Nothing lost: a message answered 200 was committed first, even if the listener is
    killed outright while other requests are still arriving."""
    import asyncio

    import aiohttp

    proc = ListenerProcess(db=tmp_path / "k.db")
    answered: list[str] = []

    async def send(session: aiohttp.ClientSession, i: int) -> None:
        refid = f"{i:032d}"
        body = SEED.replace(b"ABCDEF1234567890ABCDEF1234567890", refid.encode())
        try:
            async with session.post(
                proc.url, data=body, headers={"Content-Type": "application/json"}
            ) as resp:
                if resp.status == 200:
                    answered.append(refid)
        except aiohttp.ClientError:
            pass  # in flight when the listener died: not answered, so not promised

    async with aiohttp.ClientSession() as session:
        tasks = [asyncio.create_task(send(session, i)) for i in range(400)]
        while len(answered) < 100:
            await asyncio.sleep(0.005)
        writers = children(proc.proc.pid)  # the store's writer process
        proc.proc.kill()  # SIGKILL: no shutdown, no flush
        await asyncio.gather(*tasks)
    proc.proc.communicate(timeout=15)
    # The writer writes what it was sent, then sees its pipe end and exits: no orphan.
    assert writers
    deadline = time.monotonic() + 15
    while any(running(pid) for pid in writers):
        assert time.monotonic() < deadline, "the store writer outlived the listener"
        await asyncio.sleep(0.05)
    conn = store.connect(tmp_path / "k.db", create=False)
    stored = {r[0] for r in conn.execute("SELECT refid FROM requests WHERE status = 200")}
    assert len(answered) >= 100
    assert set(answered) <= stored


def test_a_lone_surrogate_neither_stops_the_listener_nor_is_rejected(
    listener: ListenerProcess, tmp_path: Path
) -> None:
    """A regression case: a lone surrogate used to kill the store's writer thread, and every
    later request hung."""
    odd = SEED.replace(b"Hello World!", b"a\\ud800")
    assert post(listener.url, odd)[0] == 200
    first = listener.next_event()
    assert first["message"] == "a\ud800"
    assert "lone_surrogate" in [f["code"] for f in first["flags"]]
    assert post(listener.url, SEED)[0] == 200
    assert listener.next_event()["attempt"] == 2
    # A request aiohttp rejects before the listener runs: one `rejected` line, no traceback.
    with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n")
        assert sock.recv(100).split(b" ")[1] == b"400"
    rejected = listener.next_event()
    assert rejected["type"] == "rejected" and rejected["status"] == 400
    code, _, err = listener.stop()
    assert code == 0 and "Traceback" not in err
    show = run_ipsms(
        "messages", "show", first["refid"], "--db", str(tmp_path / "m.sqlite3"), "--format", "json"
    )
    shown = json.loads(show.stdout)
    assert shown["attempts"][0]["message"] == "a\ud800"
    assert "lone_surrogate" in [f["code"] for f in shown["attempts"][0]["flags"]]
    assert (
        "\\ud800"
        in run_ipsms(
            "messages",
            "show",
            first["refid"],
            "--db",
            str(tmp_path / "m.sqlite3"),
            "--format",
            "plain",
        ).stdout
    )


def test_junk_is_stored_cut_to_64_kib_with_its_size_and_hash(
    listener: ListenerProcess, tmp_path: Path
) -> None:
    junk = b"\x00" * 900_000
    assert post(listener.url, junk)[0] == 400
    event = listener.next_event()
    assert event["size"] == 900_000
    listener.stop()
    conn = store.connect(tmp_path / "m.sqlite3", create=False)
    (row,) = store.iter_all(conn)
    assert len(row.body) == 64 * 1024 and row.body_size == 900_000 and row.body_truncated
    import hashlib

    assert row.body_sha256 == hashlib.sha256(junk).hexdigest()


@pytest.mark.parametrize("own_db", [False, True], ids=["default store", "--db"])
def test_the_summary_names_the_store_and_the_command_that_reads_it(
    tmp_path: Path, ipsms_home: Path, own_db: bool
) -> None:
    """The exit summary says where the requests went, and its command, run as printed,
    lists them (with --db when the store is not the default one)."""
    import shlex

    db = tmp_path / "my store.sqlite3" if own_db else None
    proc = ListenerProcess("--secret", "SECRET CODE", db=db)
    try:
        assert post(proc.url, SEED.replace(b"SECRET CODE", b"secret code"))[0] == 403
        code, _, err = proc.stop()
    finally:
        proc.kill()
    assert code == 0
    assert "1 received, 0 accepted, 1 rejected, 1 bad signature, 0 retries" in err
    path = db or ipsms_home / "ipsms.sqlite3"
    found = re.search(
        r"^ipsms listen: the requests are recorded in (.+); `(.+)` shows them$", err, re.MULTILINE
    )
    assert found is not None, err
    assert found.group(1) == str(path)
    command = shlex.split(found.group(2))
    assert command[:3] == ["ipsms", "messages", "list"]
    assert ("--db" in command) is own_db
    listed = run_ipsms(*command[1:], "--format", "plain")
    assert listed.returncode == 0, listed.stderr
    assert "403 #1 ABCDEF1234567890ABCDEF1234567890" in listed.stdout


def test_a_reader_that_goes_away_stops_the_listener_without_a_request(tmp_path: Path) -> None:
    """`ipsms listen | head -1`: once head has its line and exits, the listener notices at
    once (no request needed to find the pipe closed), stops cleanly, frees its port and
    exits 0."""
    import os
    import shlex

    line = (
        f"{shlex.quote(sys.executable)} -m ipsms listen --port 0 --db "
        f"{shlex.quote(str(tmp_path / 'h.db'))} | head -1"
    )
    proc = subprocess.Popen(
        ["bash", "-o", "pipefail", "-c", line],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=cli_env(),
        start_new_session=True,
    )
    started = time.monotonic()
    try:
        out, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError("the listener was still running 10 s after head exited") from None
    assert time.monotonic() - started < 5
    assert proc.returncode == 0, err  # the listener's exit status, through pipefail
    ready = json.loads(out)
    assert ready["type"] == "listening"
    assert "stdout was closed; stopping" in err and "ipsms listen: stopped. 0 received" in err
    assert "Traceback" not in err and "BrokenPipe" not in err
    with socket.socket() as sock:  # the port is free again
        sock.bind(("127.0.0.1", ready["port"]))
