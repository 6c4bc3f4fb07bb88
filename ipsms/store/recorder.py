"""Group commit for the listener: records are durable before the listener answers 200.

Handlers ``await recorder.record(rec)``. Rows go down a pipe to the store's writer process
(``ipsms.store.writer``) in batches, one in flight: the writer writes a batch in one
transaction, commits (fsync with ``synchronous=FULL``) and sends back each row's id and
attempt; the waiting handlers then answer, and what arrived meanwhile goes as the next batch.
Under load many requests share one fsync, and the event loop never waits for SQLite or for
the GIL a writer thread would hold.

What the store says was answered is what was answered:
- A writer process that dies is replaced at once. The rows it had not answered go to the new
  one, which writes those it does not find (each row carries this run's number for it,
  ``seq``), so a writer killed after its commit but before its answer costs no 503 and no
  duplicate.
- A request that waited ``write_timeout`` for its commit is answered 503. If its row reaches
  the store after all, the store is told it was answered 503. A writer that has not finished a
  batch for that long is killed and replaced; one slower than ``STALL_NOTICE`` is reported.
- What waits for a writer that is behind is bounded in bytes (``max_pending``): past it, a
  request is answered 503 at once instead of being held in memory, and a request answered 503
  before its row was sent is dropped.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ipsms
from ipsms import store
from ipsms.errors import StateError
from ipsms.request import Request
from ipsms.store.history import Flags, new_session
from ipsms.store.writer import MAX_BATCH, Frames, failure, frame


@dataclass(slots=True)
class Recorded:
    id: int
    attempt: int | None
    # Every flag of the row when its refid's history added some (``ipsms.store.history``);
    # None when the request's own flags are all it has (the common case).
    flags: Flags | None = None


WRITE_TIMEOUT = 30.0  # seconds a request waits for its commit before it is answered 503
RESPAWN_AFTER = 1.0  # seconds between starts of a writer process that cannot open the store
STALL_NOTICE = 5.0  # seconds a batch may take before the listener says the writer is slow
MAX_PENDING = 256 * 1024 * 1024  # bytes of rows that may wait for a writer that is behind
MAX_FRAME = 32 * 1024 * 1024  # bytes of rows in one batch (a larger row goes alone)
STORE_FAILED = "store_failed"  # the error of a request answered 503 for the store


@dataclass(slots=True, eq=False)
class _Entry:
    """A row on its way to the store, and the request waiting for it."""

    seq: int
    row: store.Row | None  # None once nobody needs it (answered 503 before it was written)
    fut: asyncio.Future[Recorded]
    size: int  # counted in the recorder's pending bytes until released
    sent: bool = False  # a writer had it: it may be committed, whatever happened next
    floor: int = 0  # the highest row id answered when it was sent: its own id is above
    gave_up: bool = False  # answered 503 while the writer still had it


class Recorder:
    """Async front of the store. Use ``async with Recorder(path) as rec: await rec.record(r)``.
    One recorder is one listener session: its rows carry ``session``, so a refid first seen in
    an earlier run is flagged as such. ``notice`` receives what the listener should tell its
    user (a writer that stalled or died, a store removed under it)."""

    def __init__(
        self,
        path: Path,
        write_timeout: float = WRITE_TIMEOUT,
        session: str | None = None,
        respawn_after: float = RESPAWN_AFTER,
        max_pending: int = MAX_PENDING,
        stall_notice: float = STALL_NOTICE,
        kill_after: float | None = None,
        notice: Callable[[str], None] | None = None,
    ) -> None:
        self.path = path
        self.session = session or new_session()
        self.write_timeout = write_timeout
        self.respawn_after = respawn_after
        self.max_pending = max_pending
        self.stall_notice = stall_notice
        # A writer busy with one batch this long is killed and replaced (default: as long as
        # a request waits for its commit).
        self.kill_after = write_timeout if kill_after is None else kill_after
        self.notice = notice
        # The watchdog's period: a second, or the timeout itself when that is shorter (tests);
        # never below 10 ms, so a timeout of 0 cannot make it spin.
        self._tick = max(0.01, min(1.0, write_timeout, stall_notice))
        self._lag = min(1.0, stall_notice)  # a batch this old: the writer is behind
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opened = False
        self._closed = False
        self._writer: _Writer | None = None
        self._retired: list[_Writer] = []  # writers that ended, to reap at close
        self._respawn: asyncio.TimerHandle | None = None
        self._broken: StateError | None = None  # why the last writer could not open the store
        self._last_spawn = -respawn_after
        self._queue: collections.deque[_Entry] = collections.deque()  # not sent yet
        self._marks: list[_Entry] = []  # answered 503, and a writer may have committed them
        self._pending = 0  # bytes of the rows queued or in flight
        self._behind = False  # said that the writer is behind, until it catches up
        self._floor = 0  # the highest row id a writer answered: a lost commit lies above it
        self._seq = 0
        self._kicked = False
        self._young: list[_Entry] = []  # recorded within the last tick
        self._ages: collections.deque[list[_Entry]] = collections.deque()
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
            return _Writer(self._loop, self.path, self.session, self._answered, self._ended)
        except OSError as exc:  # no processes or file descriptors left
            raise StateError(
                f"cannot start the message store's writer process: {exc}",
                hint="free some processes or open files, then retry",
            ) from None

    def record(self, rec: Request) -> Awaitable[Recorded]:
        """Write ``rec``: ``await recorder.record(rec)`` returns once it is committed, or raises
        ``StateError``. The future itself, not a coroutine around it: one frame less per
        request on the listener's hot path."""
        if self._loop is None or self._closed:
            raise RuntimeError("Recorder.start() was not awaited")
        fut: asyncio.Future[Recorded] = self._loop.create_future()
        if self._writer is None and self._respawn is None:
            # The last writer could not open the store: a new one tries again, at most once
            # every ``respawn_after``, rather than one process per request.
            if (
                self._broken is not None
                and time.monotonic() - self._last_spawn < self.respawn_after
            ):
                fut.set_exception(self._broken)
                return fut
            try:
                self._writer = self._spawn()
            except StateError as exc:
                fut.set_exception(exc)
                return fut
        self._seq += 1
        try:
            row = store.wire_row(rec, self._seq)
        except Exception as exc:  # a header value that is not text: this request alone fails
            fut.set_exception(StateError(failure(self.path, exc)))
            return fut
        size = _size(row)
        if self._pending and self._pending + size > self.max_pending and self._lagging():
            fut.set_exception(
                StateError(
                    f"the message store's writer is behind: {self._pending >> 20} MiB of messages "
                    f"wait for it (the limit is {self.max_pending >> 20} MiB)"
                )
            )
            if not self._behind:
                self._behind = True
                self._say(
                    f"the message store's writer is behind ({self._pending >> 20} MiB "
                    "waiting); new messages are answered 503 until it catches up"
                )
            return fut
        entry = _Entry(self._seq, row, fut, size)
        self._pending += size
        self._queue.append(entry)
        self._young.append(entry)
        self._kick()
        return fut

    def _lagging(self) -> bool:
        """Whether the writer is behind: missing, or still on a batch sent a while ago. A
        burst that a writer keeps up with is not refused for its size alone, nor one whose
        answer waits for a busy event loop to read it."""
        writer = self._writer
        if writer is None:
            return True
        return (
            writer.since is not None
            and time.monotonic() - writer.since >= self._lag
            and not writer.answer_waiting()
        )

    # -- sending -----------------------------------------------------------------------------
    def _kick(self) -> None:
        if not self._kicked:
            self._kicked = True
            assert self._loop is not None
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Send the next batch, unless the writer is still writing the last one: one batch in
        flight, so what arrives during a commit goes as one batch, one transaction and one
        fsync once it is done. Marks of requests answered 503 go first."""
        self._kicked = False
        writer = self._writer
        if writer is None or writer.flight is not None or writer.ended:
            return
        if self._marks:
            marks, self._marks = self._marks, []
            floor = min(entry.floor for entry in marks)
            writer.send(
                frame(
                    (
                        "answered",
                        floor,
                        [entry.seq for entry in marks],
                        503,
                        f"{STORE_FAILED}: the listener answered 503: this row was "
                        "written after it stopped waiting",
                    )
                ),
                ("answered", marks),
            )
            return
        batch: list[_Entry] = []
        size = 0
        queue = self._queue
        while queue and len(batch) < MAX_BATCH:
            entry = queue[0]
            if entry.row is None:  # answered 503 before it was sent: nothing to write
                queue.popleft()
                continue
            if batch and (size + entry.size > MAX_FRAME or entry.sent != batch[0].sent):
                break
            queue.popleft()
            batch.append(entry)
            size += entry.size
        if not batch:
            return
        rows = [entry.row for entry in batch]
        try:
            data = frame(rows)
        except ValueError:  # a str or int subclass somewhere: marshal takes exact types only
            batch = self._plain(batch)
            if not batch:
                return
            rows = [entry.row for entry in batch]
            data = frame(rows)
        if batch[0].sent:  # a writer that ended had them: the next writes those it lacks
            data = frame(("again", min(entry.floor for entry in batch), rows))
        else:
            for entry in batch:
                entry.sent = True
                entry.floor = self._floor
        writer.send(data, ("rows", batch))

    def _plain(self, batch: list[_Entry]) -> list[_Entry]:
        """``batch`` with every value of a str, int or float subclass made exact; a row still
        not writable fails alone."""
        out = []
        for entry in batch:
            assert entry.row is not None
            plain = tuple(_exact(value) for value in entry.row)
            try:
                frame(plain)
            except ValueError as exc:
                self._fail(entry, StateError(failure(self.path, exc)))
                continue
            entry.row = plain
            out.append(entry)
        return out

    # -- what the writer answers -------------------------------------------------------------
    def _answered(self, writer: _Writer, kind: str, payload: Any) -> None:
        if kind == "notice":
            self._say(payload)
            return
        flight, writer.flight = writer.flight, None
        writer.since = None
        writer.slow = False
        if kind == "ok" and flight is not None and flight[0] == "rows":
            for entry, outcome in zip(flight[1], payload, strict=True):
                self._outcome(entry, outcome)
        if self._behind and self._pending < self.max_pending // 2:
            self._behind = False
        self._kick()

    def _outcome(self, entry: _Entry, outcome: Any) -> None:
        self._release(entry)
        entry.row = None  # the watchdog keeps the entry a while: not its body
        fut = entry.fut
        if isinstance(outcome, str):  # not written
            if not fut.done():
                fut.set_exception(StateError(outcome))
            return
        self._floor = max(self._floor, outcome[0])
        if not fut.done():
            fut.set_result(Recorded(*outcome))
        elif entry.gave_up:  # written after its request was answered 503: say so in the store
            self._marks.append(entry)

    def _ended(self, writer: _Writer) -> None:
        """A writer process closed its end of the pipe."""
        if writer is self._writer:
            self._writer = None
        self._retired.append(writer)
        flight, writer.flight = writer.flight, None
        if writer.fatal is not None:  # it could not open the store: nothing was written
            self._broken = StateError(writer.fatal)
            lost = [*(flight[1] if flight and flight[0] == "rows" else []), *self._queue]
            self._queue.clear()
            for entry in lost:
                self._fail(entry, self._broken)
            return
        # Killed or crashed: what it had may or may not be committed. Its rows go to the next
        # writer, which writes those it does not find; marks are sent again.
        if flight is not None and flight[0] == "answered":
            self._marks.extend(flight[1])
        elif flight is not None:
            for entry in reversed(flight[1]):
                if entry.gave_up:
                    self._release(entry)
                    self._marks.append(entry)
                elif not entry.fut.done():
                    self._queue.appendleft(entry)
        if self._closed and not self._queue and not self._marks:
            return
        if not writer.killed:
            writer.when_reaped(
                lambda how: self._say(
                    f"the message store's writer process stopped ({how}); a new one takes over"
                )
            )
        assert self._loop is not None
        # One that keeps dying at once is restarted at most once every ``respawn_after``; one
        # stopped for stalling is replaced at once.
        wait = (
            0.0
            if writer.killed
            else max(0.0, self._last_spawn + self.respawn_after - time.monotonic())
        )
        self._respawn = self._loop.call_later(wait, self._replace)

    def _replace(self) -> None:
        self._respawn = None
        if self._writer is not None:
            return
        try:
            self._writer = self._spawn()
        except StateError as exc:
            self._broken = exc
            self._say(exc.message)
            while self._queue:
                self._fail(self._queue.popleft(), exc)
            return
        self._kick()

    # -- time --------------------------------------------------------------------------------
    def _watch(self) -> None:
        """Once a tick: fail requests whose commit has waited over ``write_timeout`` (a
        stalled disk), so they are answered 503 rather than never, and report or replace a
        writer that takes too long. Requests are kept in one-tick buckets, so the hot path
        only appends to a list."""
        assert self._loop is not None
        self._ages.append(self._young)
        self._young = []
        if len(self._ages) * self._tick > self.write_timeout:
            timeout = StateError(
                f"the message store {self.path} did not commit within "
                f"{self.write_timeout:g} s (a stalled disk?)"
            )
            for entry in self._ages.popleft():
                if entry.fut.done():
                    continue
                entry.fut.set_exception(timeout)
                if entry.sent:
                    entry.gave_up = True  # a writer has it: its outcome decides
                else:
                    self._release(entry)  # dropped: skipped when the queue is sent
                    entry.row = None
        writer = self._writer
        if writer is not None and writer.since is not None:
            busy = time.monotonic() - writer.since
            if busy >= self.kill_after:
                self._say(
                    f"the message store's writer has not finished a write for {busy:.0f}"
                    " s; stopping it and starting a new one"
                )
                writer.kill()
            elif busy >= self.stall_notice and not writer.slow:
                writer.slow = True
                self._say(
                    f"the message store's writer has not finished a write for {busy:.0f}"
                    f" s (a stalled disk?); messages wait up to {self.write_timeout:g} s "
                    "for it, then are answered 503"
                )
        self._watchdog = self._loop.call_later(self._tick, self._watch)

    # -- bookkeeping -------------------------------------------------------------------------
    def _release(self, entry: _Entry) -> None:
        self._pending -= entry.size
        entry.size = 0

    def _fail(self, entry: _Entry, error: StateError) -> None:
        self._release(entry)
        entry.row = None
        if not entry.fut.done():
            entry.fut.set_exception(error)

    def _say(self, text: str) -> None:
        if self.notice is not None:
            self.notice(text)

    def _busy(self) -> bool:
        writer = self._writer
        waiting = any(entry.row is not None for entry in self._queue) or bool(self._marks)
        in_flight = writer is not None and writer.flight is not None
        return (waiting or in_flight) and (writer is not None or self._respawn is not None)

    async def close(self) -> None:
        """Write everything recorded (each request still waits at most ``write_timeout``),
        then stop the writer process."""
        if self._loop is None:
            return
        deadline = time.monotonic() + self.write_timeout + 1  # a disk that never comes back
        while self._busy() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._respawn is not None:
            self._respawn.cancel()
            self._respawn = None
        writers = [*self._retired, *filter(None, [self._writer])]
        self._writer = None
        for writer in writers:
            await writer.close()
        self._retired.clear()

    async def __aenter__(self) -> Recorder:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _Writer:
    """One writer process and the event loop's end of its pipes. ``flight`` is what it was
    sent and has not answered (one frame at a time); answers come back in order."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        path: Path,
        session: str,
        answered: Callable[[_Writer, str, Any], None],
        ended: Callable[[_Writer], None],
    ) -> None:
        self.loop = loop
        self.path = path
        self.flight: tuple[str, Any] | None = None
        self.since: float | None = None  # when ``flight`` was sent
        self.slow = False  # said that this flight takes long
        self.ended = False
        self.killed = False
        self.fatal: str | None = None  # why it could not open the store
        self._answered = answered
        self._on_end = ended
        self._out = bytearray()  # the frame the pipe did not take yet
        self._frames = Frames()
        self._gone: asyncio.Future[None] = loop.create_future()  # set by _end
        self._reaped: asyncio.Future[int] | None = None
        package_root = str(Path(ipsms.__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        # Its own session: a Ctrl-C or a signal to the terminal's process group reaches the
        # listener only, which stops taking requests before it closes the pipe. -S: it needs
        # the standard library and ipsms only (found through PYTHONPATH), and starts faster.
        # -P: never the current directory's `ipsms`, which -m would otherwise import first.
        self.proc = subprocess.Popen(
            [sys.executable, "-S", "-P", "-m", "ipsms.store.writer", str(path), session],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._wfd = self.proc.stdin.fileno()
        self._rfd = self.proc.stdout.fileno()
        os.set_blocking(self._wfd, False)
        os.set_blocking(self._rfd, False)
        loop.add_reader(self._rfd, self._on_readable)

    def send(self, data: bytes, flight: tuple[str, Any]) -> None:
        """Send one frame and remember what it holds as in flight."""
        self.flight = flight
        self.since = time.monotonic()
        self._out += data
        self._send()

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
            self._end()
            return
        for kind, payload in self._frames.feed(data):
            if kind == "fatal":
                self.fatal = payload
            else:
                self._answered(self, kind, payload)

    def answer_waiting(self) -> bool:
        """Whether an answer sits in the pipe, unread."""
        try:
            return bool(select.select([self._rfd], [], [], 0)[0])
        except (OSError, ValueError):
            return False

    def kill(self) -> None:
        """End a writer that stopped answering; its end of the pipe then says so."""
        self.killed = True
        with contextlib.suppress(OSError):
            os.kill(self.proc.pid, signal.SIGKILL)

    def when_reaped(self, then: Callable[[str], None]) -> None:
        """Call ``then`` with how the process ended, once it is reaped."""

        def done(reaped: asyncio.Future[int]) -> None:
            code = reaped.result()
            how = f"exit code {code}"
            if code < 0:
                with contextlib.suppress(ValueError):
                    how = f"killed by {signal.Signals(-code).name}"
            then(how)

        assert self._reaped is not None
        self._reaped.add_done_callback(done)

    def _end(self) -> None:
        self.ended = True
        self.loop.remove_reader(self._rfd)
        self._out.clear()
        self._close_input()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self._reaped = self.loop.run_in_executor(None, self.proc.wait)
        self._gone.set_result(None)
        self._on_end(self)

    def _close_input(self) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.loop.remove_writer(self._wfd)
            self.proc.stdin.close()

    async def close(self) -> None:
        """Close the pipe and wait for the process to write what it has and exit (within the
        event loop, where the listener still handles a second signal)."""
        self._close_input()
        await self._gone
        assert self._reaped is not None
        await self._reaped


def _size(row: store.Row) -> int:
    """About what ``row`` holds in memory: its body, headers and fields (the rest is small)."""
    fields = row[11]
    return len(row[6]) + len(row[4]) + (2 * len(fields) if fields else 0) + 256


def _exact(value: Any) -> Any:
    for kind in (str, int, float):
        if isinstance(value, kind) and type(value) is not kind and not isinstance(value, bool):
            return kind(value)
    return value
