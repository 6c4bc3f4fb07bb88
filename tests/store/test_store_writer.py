"""The store's writer process: its pipe protocol, and what the listener's recorder does when
the process misbehaves (killed, a store it cannot open, values marshal cannot write)."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipsms import store
from ipsms.errors import StateError
from ipsms.request import Request
from ipsms.store.recorder import Recorder
from ipsms.store.writer import Frames, frame

ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=30)  # lone surrogates too
VALUE = (
    st.none()
    | ANY_TEXT
    | st.binary(max_size=30)
    | st.integers()
    | st.booleans()
    | st.floats(allow_nan=False)
)
ROWS = st.lists(st.tuples(VALUE, VALUE, VALUE), max_size=5)


@settings(max_examples=200, deadline=None)
@given(batches=st.lists(ROWS, max_size=6), cuts=st.lists(st.integers(0, 10_000), max_size=8))
def test_frames_come_back_whole_however_the_pipe_splits_them(
    batches: list[list[tuple[object, ...]]], cuts: list[int]
) -> None:
    stream = b"".join(frame(batch) for batch in batches)
    points = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    frames = Frames()
    got = []
    for start, end in itertools.pairwise(points):
        got += frames.feed(stream[start:end])
    assert got == batches


def request(refid: str | None = "A", **fields: object) -> Request:
    return Request(
        time.time(),
        "POST",
        "/sms",
        "127.0.0.1",
        [("Host", "x")],
        "application/json",
        b"{}",
        200,
        refid=refid,
        **fields,
    )  # type: ignore[arg-type]


def rows(db: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT refid, attempt, message FROM requests ORDER BY id").fetchall()
    finally:
        conn.close()


async def test_a_killed_writer_process_is_replaced_and_its_requests_still_answered(
    tmp_path: Path,
) -> None:
    db = tmp_path / "s.sqlite3"
    notices: list[str] = []
    async with Recorder(db, respawn_after=0.2, notice=notices.append) as recorder:
        assert (await recorder.record(request())).attempt == 1
        writer = recorder._writer
        assert writer is not None
        os.kill(writer.proc.pid, signal.SIGKILL)
        await asyncio.sleep(0.1)
        # Nobody is answered 503 for it: the next writer takes the rows.
        later = await asyncio.wait_for(recorder.record(request()), 10)
        assert later.attempt == 2
        assert recorder._writer is not writer
    assert writer.proc.returncode is not None  # reaped at close, no zombie
    assert [r[:2] for r in rows(db)] == [("A", 1), ("A", 2)]
    assert any(
        "writer process stopped (killed by SIGKILL); a new one takes over" in n for n in notices
    ), notices


async def test_a_store_the_writer_cannot_use_is_the_reason_each_request_gets(
    tmp_path: Path,
) -> None:
    """Between start-up's check and the writer opening it, a newer ipsms took the store over:
    each request fails with what is wrong, and nothing hangs."""
    db = tmp_path / "s.sqlite3"
    recorder = Recorder(db)
    recorder.open()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    async with recorder:
        with pytest.raises(StateError, match="schema version 99, newer than this ipsms"):
            await asyncio.wait_for(recorder.record(request()), 10)


async def test_text_of_str_subclasses_and_lone_surrogates_is_stored_as_sent(tmp_path: Path) -> None:
    class Label(str):
        pass

    db = tmp_path / "s.sqlite3"
    async with Recorder(db) as recorder:
        first = recorder.record(request(Label("B"), message=Label("sub\ud800class")))
        second = recorder.record(request("B", message="plain"))
        assert [(await first).attempt, (await second).attempt] == [1, 2]
    assert [r[:2] for r in rows(db)] == [("B", 1), ("B", 2)]
    conn = store.connect(db, create=False)
    assert [r.message for r in store.attempts_for(conn, "B")] == ["sub\ud800class", "plain"]
    conn.close()


async def test_close_writes_everything_sent_before_the_process_exits(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite3"
    async with Recorder(db) as recorder:
        pending = [
            recorder.record(request(f"R{i % 50}", message="x" * (i % 300))) for i in range(2000)
        ]
        writer = recorder._writer
    assert writer is not None and writer.proc.returncode == 0
    results = await asyncio.gather(*pending)
    assert len({r.id for r in results}) == 2000
    assert max(r.attempt or 0 for r in results) == 40
    assert len(rows(db)) == 2000


async def test_an_ipsms_package_in_the_current_directory_is_never_what_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``python -m`` imports from the current directory first: a listener started in a
    directory holding some other ``ipsms/`` must still run its own writer."""
    (tmp_path / "ipsms").mkdir()
    (tmp_path / "ipsms" / "__init__.py").write_text("raise SystemExit('the wrong ipsms')\n")
    monkeypatch.chdir(tmp_path)
    async with Recorder(tmp_path / "s.sqlite3") as recorder:
        assert (await asyncio.wait_for(recorder.record(request()), 10)).attempt == 1


async def test_a_closed_recorder_refuses_records_rather_than_start_a_writer_nobody_stops(
    tmp_path: Path,
) -> None:
    async with Recorder(tmp_path / "s.sqlite3") as recorder:
        await recorder.record(request())
    with pytest.raises(RuntimeError, match="start"):
        recorder.record(request())
    assert recorder._writer is None


async def test_batches_far_larger_than_a_read_of_the_pipe_are_written_whole(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite3"
    bodies = [os.urandom(3_000_000 + i) for i in range(4)]  # one batch of 12 MB, read in parts
    async with Recorder(db) as recorder:
        pending = [
            recorder.record(replace(request(f"R{i}"), body=body)) for i, body in enumerate(bodies)
        ]
        results = await asyncio.gather(*pending)
    assert [r.attempt for r in results] == [1, 1, 1, 1]
    conn = store.connect(db, create=False)
    try:
        assert [r.body for r in store.iter_all(conn)] == bodies
    finally:
        conn.close()
