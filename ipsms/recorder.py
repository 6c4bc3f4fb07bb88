"""Group commit for the listener: records are durable before the listener answers 200.

Handlers ``await recorder.record(rec)``; one writer thread drains everything queued, inserts it
in one transaction, commits (fsync with ``synchronous=FULL``) and then wakes every waiter with
one callback. Under load many requests share one fsync, so durability does not cost throughput.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path

from ipsms import store
from ipsms.errors import StateError
from ipsms.refid_history import Flags, new_session
from ipsms.request import Request

MAX_BATCH = 1024


@dataclass(slots=True)
class Recorded:
    id: int
    attempt: int | None
    # Every flag of the row when its refid's history added some (``ipsms.refid_history``);
    # None when the request's own flags are all it has (the common case).
    flags: Flags | None = None


_Item = tuple[Request, "asyncio.Future[Recorded]"]
_Outcome = Recorded | BaseException
WRITE_TIMEOUT = 30.0  # seconds a request waits for its commit before it is answered 503


class Recorder:
    """Async front of the store. Use ``async with Recorder(path) as rec: await rec.record(r)``.
    One recorder is one listener session: its rows carry ``session``, so a refid first seen in
    an earlier run is flagged as such."""

    def __init__(self, path: Path, write_timeout: float = WRITE_TIMEOUT,
                 session: str | None = None) -> None:
        self.path = path
        self.session = session or new_session()
        self.write_timeout = write_timeout
        # The watchdog's period: a second, or the timeout itself when that is shorter (tests);
        # never below 10 ms, so a timeout of 0 cannot make it spin.
        self._tick = max(0.01, min(1.0, write_timeout))
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: sqlite3.Connection | None = None
        self._young: list[asyncio.Future[Recorded]] = []  # recorded within the last tick
        self._ages: deque[list[asyncio.Future[Recorded]]] = deque()  # older, a tick each
        self._watchdog: asyncio.TimerHandle | None = None

    def open(self) -> None:
        """Open the database in the caller's thread, so errors surface at start-up."""
        self._conn = store.connect(self.path)

    async def start(self) -> None:
        """Start the writer thread. A recorder has one owner: starting it twice is a bug (two
        threads would write one store), so a second ``start()`` raises ``RuntimeError``."""
        if self._thread is not None:
            raise RuntimeError("Recorder.start() called twice: a recorder has one owner")
        if self._conn is None:
            self.open()
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="ipsms-recorder", daemon=True)
        self._thread.start()
        self._watchdog = self._loop.call_later(self._tick, self._watch)

    def record(self, rec: Request) -> Awaitable[Recorded]:
        """Write ``rec``: ``await recorder.record(rec)`` returns once it is committed, or raises
        ``StateError``. The future itself, not a coroutine around it: one frame less per
        request on the listener's hot path."""
        if self._loop is None or self._thread is None:
            raise RuntimeError("Recorder.start() was not awaited")
        fut: asyncio.Future[Recorded] = self._loop.create_future()
        self._young.append(fut)
        self._queue.put((rec, fut))
        return fut

    def _watch(self) -> None:
        """Once a tick: fail requests whose commit has waited over ``write_timeout`` (a
        stalled disk), so they are answered 503 rather than never. Requests are kept in
        one-tick buckets, so the hot path only appends to a list."""
        assert self._loop is not None
        self._ages.append(self._young)
        self._young = []
        if len(self._ages) * self._tick > self.write_timeout:
            for fut in self._ages.popleft():
                if not fut.done():
                    fut.set_exception(StateError(
                        f"the message store {self.path} did not commit within "
                        f"{self.write_timeout:g} s (a stalled disk?)"))
        self._watchdog = self._loop.call_later(self._tick, self._watch)

    async def close(self) -> None:
        """Write everything queued, then stop the thread and close the database."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def __aenter__(self) -> Recorder:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- writer thread ------------------------------------------------------------------------
    def _run(self) -> None:
        assert self._conn is not None and self._loop is not None
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            try:
                outcomes = self._write_isolating(self._conn, batch)
            except BaseException as exc:  # the thread must outlive anything a batch does
                outcomes = [self._failure(exc)] * len(batch)
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                self._loop.call_soon_threadsafe(_resolve, batch, outcomes)

    def _write_isolating(self, conn: sqlite3.Connection, batch: list[_Item]) -> list[_Outcome]:
        """Write ``batch`` in one transaction. If that fails, write each record in its own, so
        one record that cannot be written fails alone instead of taking its batch with it."""
        outcome = self._write(conn, [rec for rec, _ in batch])
        if not isinstance(outcome, BaseException):
            return list(outcome)
        if len(batch) == 1:
            return [outcome]
        results: list[_Outcome] = []
        for rec, _ in batch:
            one = self._write(conn, [rec])
            results.append(one if isinstance(one, BaseException) else one[0])
        return results

    def _write(self, conn: sqlite3.Connection, records: list[Request]
               ) -> list[Recorded] | BaseException:
        """One transaction; any failure rolls it back and is returned, never raised."""
        try:
            store.begin_batch(conn)
            results = [Recorded(row_id, attempt, flags) for row_id, attempt, flags
                       in store.insert_batch(conn, records, self.session)]
            store.commit(conn)
        except Exception as exc:  # not only sqlite3.Error: a record that cannot be encoded too
            store.rollback(conn)
            return self._failure(exc)
        return results

    def _failure(self, exc: BaseException) -> StateError:
        if isinstance(exc, sqlite3.Error):
            return StateError(f"cannot write to the message store {self.path}: {exc}")
        return StateError(f"cannot write this request to the message store {self.path}: "
                          f"{type(exc).__name__}: {exc}")


def _resolve(batch: list[_Item], outcomes: list[_Outcome]) -> None:
    for (_, fut), outcome in zip(batch, outcomes, strict=True):
        if fut.done():  # the waiting handler was cancelled (client went away)
            continue
        if isinstance(outcome, BaseException):
            fut.set_exception(outcome)
        else:
            fut.set_result(outcome)
