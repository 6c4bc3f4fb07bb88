"""The live stream: one poller follows the store (a ``PRAGMA data_version`` every 100 ms, in
the inspector's own thread) and hands each newly committed attempt to every open page. A page
that falls behind is dropped rather than buffered without bound; its browser reconnects with
``Last-Event-ID`` and catches up from the store, so nothing is missed either way."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ipsms import store
from ipsms.request import Request

POLL = 0.1  # seconds between looks at the store
QUEUE = 2000  # attempts a page may have waiting before it is dropped
# Attempts sent per poll at most (500 a second): past that a `gap` event says how many were
# left out, and the page offers to load the newest. Encoding every attempt of a flood costs
# the listener a share of its rate (bench/bench_inspector.py) for rows nobody reads as they
# pass; the store has them all.
LIVE_MAX = 50


def event(kind: str, data: Any, event_id: int | None = None) -> bytes:
    """One Server-Sent Event."""
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"))
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {text}\n\n".encode()


class Hub:
    """Follows the store at ``db`` and fans new attempts out to subscribers. ``summary`` turns
    a row into what the page receives."""

    def __init__(
        self, db: Path, executor: ThreadPoolExecutor, summary: Callable[[Request], dict[str, Any]]
    ) -> None:
        self.db = db
        self.executor = executor
        self.summary = summary
        self.subscribers: set[asyncio.Queue[bytes | None]] = set()
        self.mark: tuple[int, float | None] = (0, None)  # the newest row seen
        self._version: int | None = None
        self._conn: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.mark = await loop.run_in_executor(self.executor, self._top)
        self._task = asyncio.ensure_future(self._run())

    async def close(self) -> None:
        """End every stream now (shutdown must not wait for open tabs)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for queue in list(self.subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        await asyncio.get_running_loop().run_in_executor(self.executor, self._close_conn)

    def subscribe(self) -> asyncio.Queue[bytes | None]:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE)
        self.subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[bytes | None]) -> None:
        self.subscribers.discard(queue)

    # -- in the inspector's thread --------------------------------------------------------------
    def _connection(self) -> Any:
        if self._conn is None:
            if not self.db.exists():
                return None
            self._conn = store.connect(self.db, create=False)
        return self._conn

    def _close_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _top(self) -> tuple[int, float | None]:
        conn = self._connection()
        return (0, None) if conn is None else store.last_row(conn)

    def _poll(self) -> tuple[list[bytes], bool]:
        """New events since the mark, and whether the store was cleared."""
        try:
            conn = self._connection()
            if conn is None:
                return [], False
            version = store.data_version(conn)
            if version == self._version:
                return [], False
            mark_id, mark_time = self.mark
            cleared = bool(mark_id) and store.received_at_of(conn, mark_id) != mark_time
            if cleared:
                mark_id = 0
            top = store.last_row(conn)
            if not self.subscribers:  # nobody to tell: the mark follows, nothing is read
                self._version, self.mark = version, top
                return [], False
            gap = None
            if top[0] - mark_id > LIVE_MAX:  # faster than a page can show: the newest only
                gap = {
                    "after": mark_id,
                    "before": top[0] - LIVE_MAX + 1,
                    "count": top[0] - LIVE_MAX - mark_id,
                }
                mark_id = top[0] - LIVE_MAX
            rows = store.after(conn, mark_id, top[0], LIVE_MAX)
            self._version = version
            self.mark = top
        except Exception:  # a store replaced or removed: start again from it
            self._close_conn()
            self._version = None
            return [], False
        # id 0: a browser that reconnects after it resumes from the first row again.
        out = [event("cleared", {}, 0)] if cleared else []
        if gap is not None:
            out.append(event("gap", gap, gap["before"] - 1))
        out += [event("request", self.summary(row), row.id) for row in rows]
        return out, cleared

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            events, _ = await loop.run_in_executor(self.executor, self._poll)
            for queue in list(self.subscribers):
                for data in events:
                    try:
                        queue.put_nowait(data)
                    except asyncio.QueueFull:  # a page that does not keep up: it reconnects
                        self.subscribers.discard(queue)
                        while not queue.empty():
                            queue.get_nowait()
                        queue.put_nowait(None)  # its stream ends; Last-Event-ID resumes it
                        break
            await asyncio.sleep(POLL)
