"""What the store says was answered is what was answered: a writer process killed, stalled or
slow, a store removed or replaced under a running recorder, and the memory that waits for the
writer. Real writer processes, real SQLite files; the faults are real signals and real locks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import pytest

from ipsms import store
from ipsms.errors import StateError
from ipsms.request import Request
from ipsms.store.recorder import Recorded, Recorder


def request(refid: str | None = "A", body: bytes = b"{}") -> Request:
    return Request(
        time.time(),
        "POST",
        "/sms",
        "127.0.0.1",
        [("Host", "x")],
        "application/json",
        body,
        200,
        refid=refid,
    )


def stored(db: Path) -> list[tuple[int, str, int, str | None]]:
    """(id, refid, status, error) of every row, through a new connection as a reader has."""
    with store.opened(db) as conn:
        return [(r.id, r.refid, r.status, r.error) for r in store.iter_all(conn)]  # type: ignore[misc]


async def settle(
    futures: list[asyncio.Future[Recorded]],
) -> tuple[list[Recorded], list[BaseException]]:
    done = await asyncio.gather(*futures, return_exceptions=True)
    ok = [d for d in done if isinstance(d, Recorded)]
    failed = [d for d in done if isinstance(d, BaseException)]
    assert all(isinstance(f, StateError) for f in failed), failed
    return ok, failed


async def test_writers_killed_under_load_lose_nothing_answered_and_write_nothing_twice(
    tmp_path: Path,
) -> None:
    """kill -9 of the writer at random moments, some of them between a commit and its
    answer: every request answered as recorded is in the store exactly once."""
    db = tmp_path / "s.sqlite3"
    rng = random.Random(7)
    async with Recorder(db, respawn_after=0.0) as recorder:
        pending: list[asyncio.Future[Recorded]] = []
        for i in range(3000):
            pending.append(recorder.record(request(f"R{i}")))  # type: ignore[arg-type]
            if i % 100 == 0:
                await asyncio.sleep(0)
            if i % 700 == 350:
                await asyncio.sleep(rng.uniform(0, 0.02))
                writer = recorder._writer
                if writer is not None:
                    os.kill(writer.proc.pid, signal.SIGKILL)
        ok, failed = await settle(pending)
    assert failed == []  # every request got its row, from one writer or the next
    rows = stored(db)
    assert sorted(r.id for r in ok) == [r[0] for r in rows]
    assert len({r[1] for r in rows}) == len(rows) == 3000


async def test_a_row_written_after_its_request_was_answered_503_says_503(tmp_path: Path) -> None:
    """The disk holds the writer up past the request's timeout (here another process holds
    the store's write lock); the row is committed later, and the store says what the request
    was answered."""
    db = tmp_path / "s.sqlite3"
    notices: list[str] = []
    recorder = Recorder(
        db, write_timeout=0.3, stall_notice=0.2, kill_after=30, notice=notices.append
    )
    async with recorder:
        await recorder.record(request("warm"))
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        late = recorder.record(request("late"))
        with pytest.raises(StateError, match=r"did not commit within 0\.3 s"):
            await asyncio.wait_for(late, 5)
        await asyncio.sleep(0.3)
        blocker.execute("COMMIT")
        blocker.close()
        after = await asyncio.wait_for(recorder.record(request("after")), 10)
        assert after.attempt == 1
        # the mark goes to the writer before the next batch: one more round trip
        await asyncio.wait_for(recorder.record(request("flush")), 10)
    rows = {refid: (status, error) for _, refid, status, error in stored(db)}
    assert rows["late"][0] == 503 and rows["late"][1] == "store_failed"
    assert rows["warm"] == (200, None) and rows["after"] == (200, None)
    assert any("has not finished a write" in n and "stalled disk" in n for n in notices), notices


async def test_a_stalled_writer_is_reported_killed_and_replaced(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite3"
    notices: list[str] = []
    async with Recorder(
        db, write_timeout=0.5, stall_notice=0.2, respawn_after=0.0, notice=notices.append
    ) as recorder:
        await recorder.record(request("before"))
        stalled = recorder._writer
        assert stalled is not None
        os.kill(stalled.proc.pid, signal.SIGSTOP)
        try:
            waiting = [recorder.record(request(f"S{i}")) for i in range(5)]
            ok, failed = await settle(waiting)  # type: ignore[arg-type]
            assert ok == [] and len(failed) == 5  # answered 503 after 0.5 s, not never
            later = await asyncio.wait_for(recorder.record(request("later")), 10)
            assert later.attempt == 1
            assert recorder._writer is not stalled
        finally:
            with contextlib.suppress(ProcessLookupError):  # killed, as it should be
                os.kill(stalled.proc.pid, signal.SIGCONT)
    refids = [refid for _, refid, status, _ in stored(db) if status == 200]
    assert refids == ["before", "later"]
    assert any("stopping it and starting a new one" in n for n in notices), notices


async def test_what_waits_for_a_stalled_writer_is_bounded_in_bytes(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite3"
    notices: list[str] = []
    mib = 1024 * 1024
    async with Recorder(
        db, max_pending=8 * mib, stall_notice=0.3, notice=notices.append
    ) as recorder:
        await recorder.record(request("warm"))
        writer = recorder._writer
        assert writer is not None
        os.kill(writer.proc.pid, signal.SIGSTOP)
        try:
            first = recorder.record(request("first", os.urandom(mib)))
            await asyncio.sleep(0.4)  # the writer is now behind
            big = [first, *(recorder.record(request(f"B{i}", os.urandom(mib))) for i in range(20))]
            await asyncio.sleep(0.05)
            refused = [f for f in big if f.done()]  # type: ignore[attr-defined]
            assert len(refused) >= 12  # at once, not after a timeout
            assert recorder._pending <= 8 * mib + 64 * 1024
            with pytest.raises(StateError, match="writer is behind"):
                await refused[0]
        finally:
            os.kill(writer.proc.pid, signal.SIGCONT)
        ok, _ = await settle(big)  # type: ignore[arg-type]
        assert 1 <= len(ok) <= 8
    assert any("writer is behind" in n for n in notices), notices
    assert recorder._pending == 0


async def test_a_store_removed_under_the_recorder_is_made_again_where_readers_look(
    tmp_path: Path,
) -> None:
    db = tmp_path / "s.sqlite3"
    notices: list[str] = []
    async with Recorder(db, notice=notices.append) as recorder:
        await recorder.record(request("old"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        new = await asyncio.wait_for(recorder.record(request("new")), 10)
        assert [r[1] for r in stored(db)] == ["new"]  # readable while the recorder runs
        assert new.id == stored(db)[0][0]
        more = await asyncio.wait_for(recorder.record(request("more")), 10)
        assert more.attempt == 1
    assert [r[1] for r in stored(db)] == ["new", "more"]
    assert oct(db.stat().st_mode & 0o777) == "0o600"
    assert any(f"{db} was removed while listening" in n for n in notices), notices


async def test_a_store_removed_with_its_directory_is_made_again(tmp_path: Path) -> None:
    db = tmp_path / "gone" / "s.sqlite3"
    async with Recorder(db) as recorder:
        await recorder.record(request("old"))
        for child in db.parent.iterdir():
            child.unlink()
        db.parent.rmdir()
        await asyncio.wait_for(recorder.record(request("new")), 10)
    assert [r[1] for r in stored(db)] == ["new"]
    assert oct(db.parent.stat().st_mode & 0o777) == "0o700"


async def test_a_store_replaced_by_another_store_is_written_into_and_not_corrupted(
    tmp_path: Path,
) -> None:
    db = tmp_path / "s.sqlite3"
    other = tmp_path / "other.sqlite3"
    notices: list[str] = []
    async with Recorder(db, notice=notices.append) as recorder:
        for i in range(50):
            await recorder.record(request(f"old{i}"))
        conn = store.connect(other)
        store.insert_batch(conn, [store.wire_row(request("theirs"))], "elsewhere")
        conn.close()
        os.replace(other, db)  # the -wal and -shm next to it are still the old store's
        await asyncio.wait_for(recorder.record(request("new")), 10)
        assert [r[1] for r in stored(db)] == ["theirs", "new"]
    with store.opened(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert [r[1] for r in stored(db)] == ["theirs", "new"]
    assert any("was replaced while listening" in n for n in notices), notices


async def test_a_file_that_is_not_a_store_put_in_its_place_is_never_written(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite3"
    foreign = tmp_path / "app.sqlite3"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.commit()
    conn.close()
    async with Recorder(db) as recorder:
        await recorder.record(request("old"))
        os.replace(foreign, db)
        with pytest.raises(StateError, match="not an ipsms message store"):
            await asyncio.wait_for(recorder.record(request("new")), 10)
    conn = sqlite3.connect(db)
    assert [n for (n,) in conn.execute("SELECT name FROM sqlite_master")] == ["users"]
    conn.close()


async def test_a_removed_wal_is_written_back_and_readers_read_on(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite3"
    notices: list[str] = []
    async with Recorder(db, notice=notices.append) as recorder:
        for i in range(20):
            await recorder.record(request(f"before{i}"))
        Path(f"{db}-wal").unlink()
        await asyncio.wait_for(recorder.record(request("after")), 10)
        assert len(stored(db)) == 21
        await asyncio.wait_for(recorder.record(request("later")), 10)
    assert len(stored(db)) == 22
    assert any("-wal or -shm file" in n for n in notices), notices


async def test_marshal_unfriendly_values_still_travel_after_a_writer_died(tmp_path: Path) -> None:
    class Label(str):
        pass

    db = tmp_path / "s.sqlite3"
    async with Recorder(db, respawn_after=0.0) as recorder:
        await recorder.record(request())
        writer = recorder._writer
        assert writer is not None
        os.kill(writer.proc.pid, signal.SIGKILL)
        got = await asyncio.wait_for(recorder.record(replace(request(), refid=Label("A"))), 10)
        assert got.attempt == 2


async def test_a_removed_wal_is_put_back_between_messages_and_readers_wait_for_it(
    tmp_path: Path,
) -> None:
    """No message needs to arrive: the writer checks the store's files while idle, and a
    reader meanwhile retries instead of failing with "disk I/O error"."""
    db = tmp_path / "s.sqlite3"
    notices: list[str] = []
    async with Recorder(db, notice=notices.append) as recorder:
        for i in range(20):
            await recorder.record(request(f"before{i}"))
        Path(f"{db}-wal").unlink()
        count = await asyncio.get_running_loop().run_in_executor(None, lambda: len(stored(db)))
        assert count == 20
        for _ in range(100):
            if notices:
                break
            await asyncio.sleep(0.05)
    assert any("-wal or -shm file" in n for n in notices), notices


async def test_a_store_removed_between_messages_is_there_again_for_readers(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite3"
    async with Recorder(db) as recorder:
        await recorder.record(request("old"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        for _ in range(100):
            if db.exists():
                break
            await asyncio.sleep(0.05)
        assert stored(db) == []  # an empty store, not "no messages recorded yet"


async def test_a_burst_the_writer_keeps_up_with_is_not_refused_for_its_size(tmp_path: Path) -> None:
    mib = 1024 * 1024
    async with Recorder(tmp_path / "s.sqlite3", max_pending=4 * mib) as recorder:
        ok, failed = await settle(
            [
                recorder.record(request(f"B{i}", os.urandom(mib // 2)))  # type: ignore[misc]
                for i in range(40)
            ]
        )
        # Nothing of a written row stays in memory, though the watchdog keeps its entry.
        kept = [entry for bucket in [*recorder._ages, recorder._young] for entry in bucket]
        assert len(kept) == 40 and all(entry.row is None for entry in kept)
    assert failed == [] and len(ok) == 40
