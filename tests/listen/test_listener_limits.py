"""Slow and abusive clients, a stdout nobody reads, a store write that fails, and the files'
permissions: the listener stays responsive and loses nothing it answered 200."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
import time
from pathlib import Path

import pytest

from ipsms import store
from ipsms.errors import StateError
from ipsms.listen.events import RejectedEvent
from ipsms.request import Request
from ipsms.store.recorder import Recorder
from ipsms.ui.lines import NdjsonSink
from tests.hostile import (
    VALID,
    body_of,
    running_listener,
    status_of,
    stored_rows,
    wait_closed,
    wait_until,
)
from tests.procs import ListenerProcess, post_valid_messages


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_slowloris_connections_are_cut_off_and_never_starve_a_real_post(
    tmp_path: Path,
) -> None:
    async with running_listener(tmp_path / "s.sqlite3", read_timeout=1.0) as listener:
        before = open_fds()
        slow: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        for i in range(300):  # half-open: a request head that never completes
            reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
            writer.write(b"POST / HTTP/1.1\r\nHost: x\r\n" if i % 2 else b"")
            slow.append((reader, writer))
        await wait_until(lambda: listener.open_connections == 300, what="300 connections")
        started = time.monotonic()
        assert await listener.post_valid() == 200
        assert time.monotonic() - started < 1.0
        # ... answered while every slow connection still held its slot: none was cut yet
        assert listener.open_connections == 300
        assert not [e for e in listener.events if isinstance(e, RejectedEvent)]
        # Every slow connection is closed by the listener after the read timeout; those that
        # had begun a request are told so with a 408.
        answers = await asyncio.wait_for(
            asyncio.gather(*(reader.read() for reader, _ in slow)), timeout=10
        )
        assert {status_of(a) for a in answers[1::2]} == {408}
        assert set(answers[0::2]) == {b""}
        for _, writer in slow:
            writer.close()
        await asyncio.gather(*(wait_closed(writer) for _, writer in slow))
        await wait_until(lambda: listener.open_connections == 0, what="all closed")
        assert open_fds() <= before + 5
        timeouts = [e for e in listener.events if isinstance(e, RejectedEvent)]
        assert len(timeouts) == 150 and {e.status for e in timeouts} == {408}


async def test_a_body_sent_slowly_is_cut_off_with_408_and_recorded(tmp_path: Path) -> None:
    async with running_listener(tmp_path / "s.sqlite3", read_timeout=0.4) as listener:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )

        async def trickle() -> None:
            # A byte every 0.1 s, a quarter of the timeout: never a stall long enough for a
            # socket timeout, and the 99 bytes would take 10 s.
            while not writer.is_closing():
                await asyncio.sleep(0.1)
                writer.write(b" ")

        sending = asyncio.create_task(trickle())
        started = time.monotonic()
        try:
            answer = await asyncio.wait_for(reader.read(), 5)
        finally:
            sending.cancel()
        assert time.monotonic() - started >= 0.4  # cut off by the timeout, not before it
        writer.close()
        assert status_of(answer) == 408
        (event,) = [e for e in listener.events if isinstance(e, Request)]
        assert event.error == "read_timeout"


async def test_connections_over_the_cap_get_503_and_the_cap_frees_up(tmp_path: Path) -> None:
    async with running_listener(tmp_path / "s.sqlite3", max_connections=5) as listener:
        idle = [await asyncio.open_connection("127.0.0.1", listener.port) for _ in range(5)]
        await wait_until(lambda: listener.open_connections == 5, what="5 connections")
        answer = await listener.post(json.dumps(VALID).encode())
        assert status_of(answer) == 503
        assert body_of(answer)["error"] == "too_many_connections"  # the documented shape
        for _, writer in idle:
            writer.close()
        await wait_until(lambda: listener.open_connections == 0, what="the cap freeing up")
        assert await listener.post_valid() == 200
        refused = [e for e in listener.events if isinstance(e, RejectedEvent)]
        assert refused and refused[0].status == 503
        assert "limit of 5 open connections" in refused[0].reason


async def test_a_failing_store_write_answers_503_and_the_writer_keeps_serving(
    tmp_path: Path,
) -> None:
    recorder = Recorder(tmp_path / "s.sqlite3")
    async with recorder:
        good = Request(time.time(), "POST", "/", None, [], None, b"{}", 200, refid="A")
        # A failure that is not sqlite3.Error: a header value that cannot be written as JSON.
        poisoned = Request(
            time.time(),
            "POST",
            "/",
            None,
            [("X", object())],
            None,
            b"{}",
            200,  # type: ignore[list-item]
            refid="B",
        )
        results = await asyncio.gather(
            recorder.record(good),
            recorder.record(poisoned),
            recorder.record(good),
            return_exceptions=True,
        )
        assert isinstance(results[1], StateError)
        assert "TypeError" in results[1].message
        assert [r.attempt for r in results if not isinstance(r, BaseException)] == [1, 2]
        later = await recorder.record(good)  # the writer thread is alive
        assert later.attempt == 3
    assert [r.refid for r in stored_rows(tmp_path / "s.sqlite3")] == ["A", "A", "A"]


async def test_an_unread_pipe_never_stalls_the_event_loop_and_drops_are_counted() -> None:
    read_fd, write_fd = os.pipe()
    with os.fdopen(write_fd, "w") as stream:
        sink = NdjsonSink(stream, max_pending=100)
        started = time.monotonic()
        for i in range(5000):  # ~800 KB: a pipe holds 64 KiB
            sink.write_line(json.dumps({"i": i, "pad": "x" * 150}))
            if i % 50 == 0:
                await asyncio.sleep(0)  # let each burst go to the writer thread
        assert time.monotonic() - started < 2.0
        assert sink.dropped > 0
        data = b""
        os.set_blocking(read_fd, False)
        kept = 5000 - sink.dropped
        deadline = time.monotonic() + 5
        while data.count(b'"i": ') < kept:  # now read: every line that was kept arrives
            assert time.monotonic() < deadline, f"{data.count(b'{')} of {kept} lines arrived"
            try:
                data += os.read(read_fd, 1 << 16)
            except BlockingIOError:
                await asyncio.sleep(0.005)
        sink.write_line('{"last": 1}')
        sink.close()
    os.set_blocking(read_fd, True)
    data += os.read(read_fd, 1 << 20)
    os.close(read_fd)
    lines = [json.loads(line) for line in data.decode().splitlines()]
    notices = [line for line in lines if line.get("type") == "dropped"]
    assert notices and sum(n["lines"] for n in notices) == sink.dropped
    assert not sink.closed  # a slow reader is not a closed one


def test_listen_answers_with_nobody_reading_stdout(tmp_path: Path) -> None:
    listener = ListenerProcess(db=tmp_path / "s.sqlite3")  # stdout is a pipe we do not read
    try:
        started = time.monotonic()
        # ~250 KB of NDJSON: the pipe would be full after ~100
        assert post_valid_messages(listener.url, 400) == [200] * 400
        assert time.monotonic() - started < 60
    finally:
        code, out, err = listener.stop()
    assert code == 0
    assert len(out.splitlines()) == 400  # all kept: the buffer holds 10,000 lines
    assert "Traceback" not in err


def test_store_files_are_private_and_a_shared_directory_is_warned_about(
    tmp_path: Path, ipsms_home: Path
) -> None:
    old = os.umask(0o022)
    try:
        db = ipsms_home / "ipsms.sqlite3"
        conn = store.connect(db)
        conn.execute("CREATE TABLE IF NOT EXISTS t (x)")
        conn.execute("INSERT INTO t VALUES (1)")
        for suffix in ("", "-wal", "-shm"):
            path = Path(f"{db}{suffix}")
            assert path.exists() and stat.S_IMODE(path.stat().st_mode) == 0o600, path
        conn.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(ipsms_home.stat().st_mode) == 0o700
    assert store.shared_dir_warning(db) is None
    ipsms_home.chmod(0o755)  # made by something else: tightened when next used
    store.connect(db).close()
    assert stat.S_IMODE(ipsms_home.stat().st_mode) == 0o700
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    warning = store.shared_dir_warning(shared / "db.sqlite3")
    assert warning is not None and "everyone" in warning


@pytest.mark.parametrize("mode", [0o770, 0o1777])
def test_group_or_sticky_world_writable_directories_are_warned_about(
    tmp_path: Path, mode: int
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    assert store.shared_dir_warning(shared / "db.sqlite3") is not None


def test_rejected_bodies_share_a_byte_budget_but_always_keep_their_first_kib() -> None:
    from ipsms.listen.app import JunkBudget

    budget = JunkBudget(rate=0, burst=100_000)
    assert budget.allow(500) == 500
    assert budget.allow(900_000) == 64 * 1024  # one body keeps at most 64 KiB
    assert budget.allow(900_000) == 1024 + (100_000 - (64 * 1024 - 1024))
    assert budget.allow(900_000) == 1024  # the budget is spent: the first KiB still kept


async def test_a_full_disk_loses_lines_counted_but_never_counts_as_closed() -> None:
    with open("/dev/full", "w") as full:  # every write fails with ENOSPC
        closed: list[bool] = []
        sink = NdjsonSink(full, on_closed=lambda: closed.append(True))
        for i in range(10):
            sink.write_line(json.dumps({"i": i}))
            await asyncio.sleep(0)
        sink.close()
    assert sink.dropped >= 10 and not sink.closed and not closed


async def test_an_event_that_cannot_be_formatted_costs_only_its_own_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Lines are formatted in a batch at hand-off: one event whose line fails must neither
    lose the others of its batch nor stop the output."""

    class Picky(NdjsonSink):
        def line(self, event: object) -> str:
            if event == "boom":
                raise ValueError("cannot format this one")
            return f"event {event}"

    out = tmp_path / "out.txt"
    with out.open("w") as stream:
        sink = Picky(stream)
        for event in (1, "boom", 3):  # one event-loop iteration: one batch
            sink(event)
        await asyncio.sleep(0)
        sink(4)
        sink.close()
    assert out.read_text() == "event 1\nevent 3\nevent 4\n"
    assert "could not be formatted" in caplog.text


async def test_a_terminal_that_stops_reading_never_stalls_the_event_loop() -> None:
    master, slave = os.openpty()  # nobody reads the master side: like a terminal after Ctrl-S
    try:
        with os.fdopen(slave, "w", closefd=False) as tty:
            sink = NdjsonSink(tty, max_pending=50)
            started = time.monotonic()
            for i in range(3000):
                sink.write_line(json.dumps({"i": i, "pad": "x" * 100}))
                if i % 20 == 0:
                    await asyncio.sleep(0)
            assert time.monotonic() - started < 2.0
            sink.close(timeout=0.1)  # the terminal never reads: this wait always runs out
        assert sink.dropped > 0 and not sink.closed
    finally:
        os.close(master)
        os.close(slave)


async def test_a_commit_that_hangs_is_answered_with_an_error_not_never(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite3"
    store.connect(db).close()
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # the writer waits for the lock (busy_timeout 5 s)
    try:
        async with Recorder(db, write_timeout=0.25) as recorder:
            record = Request(time.time(), "POST", "/", None, [], None, b"{}", 200)
            started = time.monotonic()
            with pytest.raises(StateError, match=r"did not commit within 0\.25 s"):
                await recorder.record(record)
            assert time.monotonic() - started < 2.5  # not the lock's own 5 s busy timeout
            blocker.execute("ROLLBACK")
            assert (await recorder.record(record)).id >= 1  # and the writer carries on
    finally:
        blocker.close()


def test_listen_with_stderr_on_the_same_unread_pipe_still_answers(tmp_path: Path) -> None:
    """``ipsms listen 2>&1 | slow``: stdout and stderr share a pipe nobody reads."""
    import subprocess
    import sys

    from tests.conftest import ROOT, cli_env

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ipsms",
            "listen",
            "--port",
            "0",
            "--format",
            "json",
            "--db",
            str(tmp_path / "s.sqlite3"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env=cli_env(),
    )
    assert proc.stdout is not None
    try:
        line = b""
        while not line.startswith(b"{"):  # the banner on stderr comes first, on the same pipe
            line = proc.stdout.readline()
            assert line, "the listener did not start"
        url = json.loads(line)["url"]
        assert post_valid_messages(url, 300) == [200] * 300
        proc.send_signal(2)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert b"Traceback" not in out and b"stopped." in out


def test_stdout_shared_with_stderr_is_never_made_non_blocking() -> None:
    import subprocess
    import sys

    from tests.conftest import ROOT

    script = (
        "import os, sys\n"
        "from ipsms.ui.lines import NdjsonSink\n"
        "sink = NdjsonSink(sys.stdout)\n"
        "sys.stderr.write(f'blocking={os.get_blocking(2)}\\n')\n"
    )
    shared = subprocess.run(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        timeout=30,
    )
    assert b"blocking=True" in shared.stdout
    apart = subprocess.run(
        [sys.executable, "-c", script.replace("(2)", "(1)")],
        capture_output=True,
        cwd=ROOT,
        timeout=30,
    )
    assert b"blocking=False" in apart.stderr  # a pipe of its own: written without waiting


async def test_clients_that_never_read_their_answers_lose_their_slots(tmp_path: Path) -> None:
    import socket

    async with running_listener(
        tmp_path / "s.sqlite3", max_connections=4, read_timeout=0.5
    ) as listener:
        # Each pipelines 400 requests answered 415 with an 8 KB echo: MBs of answers that
        # are never read, more than the kernel's buffers hold.
        request = (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: x/"
            + b"a" * 8000
            + b"\r\nContent-Length: 1\r\n\r\nx"
        )
        hogs = []
        for _ in range(4):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", listener.port))
            sock.setblocking(False)
            for _ in range(400):
                try:
                    sock.send(request)
                except BlockingIOError:
                    break
            hogs.append(sock)
        await wait_until(lambda: listener.open_connections == 4, what="4 connections")
        assert await listener.post_valid() == 503  # the cap is full
        deadline = time.monotonic() + 8
        while await listener.post_valid() != 200:  # until the hogs' deadlines pass
            assert time.monotonic() < deadline, "slots never freed"
            await asyncio.sleep(0.05)
        for sock in hogs:
            sock.close()
