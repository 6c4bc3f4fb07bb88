"""Group commit for the listener: records are durable before the listener answers 200.

Handlers ``await recorder.record(rec)``. Rows go down a pipe to the store's writer process
(``ipsms.store_writer``) in batches, one in flight: the writer writes a batch in one
transaction, commits (fsync with ``synchronous=FULL``) and sends back each row's id and
attempt; the waiting handlers then answer, and what arrived meanwhile goes as the next batch.
Under load many requests share one fsync, and the event loop never waits for SQLite or for
the GIL a writer thread would hold.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ipsms
from ipsms import store
from ipsms.errors import StateError
from ipsms.refid_history import Flags, new_session
from ipsms.request import Request
from ipsms.store_writer import Frames, failure, frame


@dataclass(slots=True)
class Recorded:
    id: int
    attempt: int | None
    # Every flag of the row when its refid's history added some (``ipsms.refid_history``);
    # None when the request's own flags are all it has (the common case).
    flags: Flags | None = None


WRITE_TIMEOUT = 30.0  # seconds a request waits for its commit before it is answered 503
RESPAWN_AFTER = 1.0  # seconds between starts of a writer process that keeps dying


class Recorder:
    """Async front of the store. Use ``async with Recorder(path) as rec: await rec.record(r)``.
    One recorder is one listener session: its rows carry ``session``, so a refid first seen in
    an earlier run is flagged as such."""

    def __init__(self, path: Path, write_timeout: float = WRITE_TIMEOUT,
                 session: str | None = None, respawn_after: float = RESPAWN_AFTER) -> None:
        self.path = path
        self.session = session or new_session()
        self.write_timeout = write_timeout
        self.respawn_after = respawn_after
        # The watchdog's period: a second, or the timeout itself when that is shorter (tests);
        # never below 10 ms, so a timeout of 0 cannot make it spin.
        self._tick = max(0.01, min(1.0, write_timeout))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opened = False
        self._writer: _Writer | None = None  # between start() and close()
        self._retired: list[_Writer] = []  # writers that died, to reap at close
        self._last_spawn = -respawn_after
        self._young: list[asyncio.Future[Recorded]] = []  # recorded within the last tick
        self._ages: collections.deque[list[asyncio.Future[Recorded]]] = collections.deque()
        self._watchdog: asyncio.TimerHandle | None = None

    def open(self) -> None:
        """Open (create or migrate) the store in the caller's thread, so errors surface at
        start-up."""
        store.connect(self.path).close()
        self._opened = True

    async def start(self) -> None:
        """Start the writer process. A recorder has one owner: starting it twice is a bug (two
        writers would share one session), so a second ``start()`` raises ``RuntimeError``."""
        if self._loop is not None:
            raise RuntimeError("Recorder.start() called twice: a recorder has one owner")
        if not self._opened:
            self.open()
        self._loop = asyncio.get_running_loop()
        self._writer = self._spawn()
        self._watchdog = self._loop.call_later(self._tick, self._watch)

    def _spawn(self) -> _Writer:
        assert self._loop is not None
        self._last_spawn = time.monotonic()
        try:
            return _Writer(self._loop, self.path, self.session)
        except OSError as exc:  # no processes or file descriptors left
            raise StateError(f"cannot start the message store's writer process: {exc}",
                             hint="free some processes or open files, then retry") from None

    def record(self, rec: Request) -> Awaitable[Recorded]:
        """Write ``rec``: ``await recorder.record(rec)`` returns once it is committed, or raises
        ``StateError``. The future itself, not a coroutine around it: one frame less per
        request on the listener's hot path."""
        writer = self._writer
        if self._loop is None or writer is None:
            raise RuntimeError("Recorder.start() was not awaited")
        fut: asyncio.Future[Recorded] = self._loop.create_future()
        self._young.append(fut)
        if writer.error is not None:
            if time.monotonic() - self._last_spawn < self.respawn_after:
                fut.set_exception(writer.error)
                return fut
            try:
                fresh = self._spawn()  # the last one died: a new one
            except StateError as exc:
                fut.set_exception(exc)
                return fut
            self._retired.append(writer)
            writer = self._writer = fresh
        try:
            row = store.wire_row(rec)
        except Exception as exc:  # a header value that is not text: this request alone fails
            fut.set_exception(StateError(failure(self.path, exc)))
            return fut
        writer.submit(row, fut)
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
        """Write everything sent, then stop the writer process."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        for writer in [*self._retired, *filter(None, [self._writer])]:
            await writer.close()
        self._retired.clear()
        self._writer = None

    async def __aenter__(self) -> Recorder:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _Writer:
    """One writer process and the event loop's end of its pipes. One batch is in flight:
    the rows submitted while the process writes go as the next frame, sent as soon as the
    last one is answered. Outcomes come back in the order rows were sent."""

    def __init__(self, loop: asyncio.AbstractEventLoop, path: Path, session: str) -> None:
        self.loop = loop
        self.path = path
        self.error: StateError | None = None  # set once the process is gone
        self._rows: list[Any] = []  # not yet sent
        self._unanswered = 0  # rows sent whose outcome has not come back
        self._waiting: collections.deque[asyncio.Future[Recorded]] = collections.deque()
        self._out = bytearray()  # frames the pipe did not take yet
        self._frames = Frames()
        self._fatal: str | None = None
        self._gone: asyncio.Future[None] = loop.create_future()  # set by _ended
        self._reaped: asyncio.Future[int] | None = None
        package_root = str(Path(ipsms.__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root,
                                                          env.get("PYTHONPATH")]))
        # Its own session: a Ctrl-C or a signal to the terminal's process group reaches the
        # listener only, which stops taking requests before it closes the pipe. -S: it needs
        # the standard library and ipsms only (found through PYTHONPATH), and starts faster.
        # -P: never the current directory's `ipsms`, which -m would otherwise import first.
        self.proc = subprocess.Popen(
            [sys.executable, "-S", "-P", "-m", "ipsms.store_writer", str(path), session],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=env, start_new_session=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._wfd = self.proc.stdin.fileno()
        self._rfd = self.proc.stdout.fileno()
        os.set_blocking(self._wfd, False)
        os.set_blocking(self._rfd, False)
        loop.add_reader(self._rfd, self._on_readable)

    def submit(self, row: Any, fut: asyncio.Future[Recorded]) -> None:
        if not self._rows:
            self.loop.call_soon(self._flush)
        self._rows.append(row)
        self._waiting.append(fut)

    def _flush(self, *, now: bool = False) -> None:
        """Send the rows waiting, unless the process is still writing the last ones (``now``
        sends them anyway): one batch in flight, so what arrives during a commit goes as one
        batch, one transaction and one fsync once it is done."""
        if self._unanswered and not now:
            return
        rows, self._rows = self._rows, []
        if not rows or self.error is not None:
            return
        try:
            data = frame(rows)
        except ValueError:  # a str or int subclass somewhere: marshal takes exact types only
            rows = self._plain(rows)
            data = frame(rows)
        self._out += data
        self._unanswered += len(rows)
        self._send()

    def _plain(self, rows: list[Any]) -> list[Any]:
        """``rows`` with every value of a str, int or float subclass made exact; a row still
        not writable fails alone (its future leaves the queue)."""
        out = []
        unsent = list(self._waiting)[-len(rows):]
        for row, fut in zip(rows, unsent, strict=True):
            plain = tuple(_exact(value) for value in row)
            try:
                frame(plain)
            except ValueError as exc:
                self._waiting.remove(fut)
                if not fut.done():
                    fut.set_exception(StateError(failure(self.path, exc)))
                continue
            out.append(plain)
        return out

    def _send(self) -> None:
        try:
            sent = os.write(self._wfd, self._out)
        except BlockingIOError:
            sent = 0
        except OSError:  # the process is gone: its end of the other pipe says so
            self._out.clear()
            return
        del self._out[:sent]
        if self._out:
            self.loop.add_writer(self._wfd, self._on_writable)

    def _on_writable(self) -> None:
        self.loop.remove_writer(self._wfd)
        self._send()

    def _on_readable(self) -> None:
        try:
            data = os.read(self._rfd, 65536)  # answers are small; a longer one comes in parts
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._ended()
            return
        for kind, payload in self._frames.feed(data):
            if kind == "fatal":
                self._fatal = payload
                continue
            self._unanswered -= len(payload)
            for outcome in payload:
                fut = self._waiting.popleft()
                if fut.done():  # the handler gave up (client gone, or the watchdog)
                    continue
                if isinstance(outcome, str):
                    fut.set_exception(StateError(outcome))
                else:
                    fut.set_result(Recorded(*outcome))
        if not self._unanswered and self._rows:
            self._flush()  # what arrived while the process wrote

    def _ended(self) -> None:
        """The process closed its end: every row not answered fails, and so does any sent
        to this writer from now on."""
        self.loop.remove_reader(self._rfd)
        self.error = StateError(self._fatal or (
            f"cannot write to the message store {self.path}: its writer process stopped"))
        for fut in self._waiting:
            if not fut.done():
                fut.set_exception(self.error)
        self._waiting.clear()
        self._rows.clear()
        self._out.clear()
        self._close_input()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self._reaped = self.loop.run_in_executor(None, self.proc.wait)
        self._gone.set_result(None)

    def _close_input(self) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.loop.remove_writer(self._wfd)
            self.proc.stdin.close()

    async def close(self) -> None:
        """Send what is left, close the pipe, and wait for the process to write it and exit
        (within the event loop, where the listener still handles a second signal)."""
        self._flush(now=True)
        while self._out and self.error is None:
            await asyncio.sleep(0.005)
        self._close_input()  # the process writes what it has, answers and exits
        await self._gone
        assert self._reaped is not None
        await self._reaped


def _exact(value: Any) -> Any:
    for kind in (str, int, float):
        if isinstance(value, kind) and type(value) is not kind and not isinstance(value, bool):
            return kind(value)
    return value
