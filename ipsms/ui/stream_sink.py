"""Line output that never blocks the event loop, whoever reads it (or doesn't).

The listener writes a line per request to stdout. A reader that is slow or gone (a pipe nobody
reads) must never delay an answer, so lines go through a bounded buffer: past
``max_pending`` unwritten lines, new ones are dropped and counted, and the count is written
before the next line that fits (``drop_notice``) and kept in ``dropped`` for the exit summary.
Only a really closed stdout (EPIPE, a closed descriptor or stream) counts as closed: it calls
``on_closed`` once, on the event loop. Any other write error (a full disk) loses those lines,
counted, and writing goes on. Lines are encoded here as UTF-8 with backslash escapes for
whatever cannot be encoded, so no encoding error is possible either.

How the bytes leave depends on what stdout is, so that the common cases cost no thread:
- a pipe or socket: non-blocking writes from the event loop; what the reader does not take
  waits in the buffer and is written when the descriptor is writable again;
- a regular file, ``/dev/null``, an in-memory stream: plain writes (they do not wait on a
  reader);
- a terminal, or a pipe that stderr shares (``2>&1``): a writer thread, since a terminal can
  block (Ctrl-S) and either descriptor is shared, so it cannot be made non-blocking.
A burst of requests in one event-loop iteration shares one write.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import logging
import os
import select
import stat
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TextIO

logger = logging.getLogger("ipsms.output")
DEFAULT_MAX_PENDING = 10_000  # output lines buffered for a slow reader before lines are dropped


class _Line(str):
    """A line already formatted (``write_line``, a drop notice); anything else in a batch is
    an event, formatted at hand-off."""

    __slots__ = ()


class StreamSink:
    def __init__(
        self,
        stream: TextIO,
        on_closed: Callable[[], None] | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        self.stream = stream
        self.on_closed = on_closed
        self.max_pending = max_pending
        self.closed = False
        self.dropped = 0  # lines dropped in all
        self._unreported = 0  # dropped since the last notice
        self._lock = threading.Lock()  # the counters are also updated by the writer thread
        self._batch: list[Any] = []  # lines and events (formatted at hand-off) of this
        # event-loop iteration
        self._loop: asyncio.AbstractEventLoop | None = None
        self._out = _output_for(stream, self)

    def line(self, event: Any) -> str:
        raise NotImplementedError

    def drop_notice(self, count: int) -> str:
        return (
            f"ipsms: {count} line(s) dropped: stdout was not read fast enough "
            f"({self.dropped} in all; the store has every request)"
        )

    def __call__(self, event: Any) -> None:
        # Formatted at hand-off, with the rest of this iteration's events: one tight loop
        # over a batch runs several times faster than the same formatting between requests
        # (bench/bench_listen.py --breakdown: the NDJSON line's share of a request).
        self._add(event)

    def write_line(self, text: str) -> None:
        self._add(_Line(text))

    def _add(self, item: Any) -> None:
        if self.closed:
            return
        if self._out.pending + len(self._batch) >= self.max_pending:
            self.lost(1)
            return
        first = not self._batch
        if self._unreported:
            with self._lock:
                count, self._unreported = self._unreported, 0
            self._batch.append(_Line(self.drop_notice(count)))
        self._batch.append(item)
        if not first:
            return  # a hand-off is already scheduled
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._hand_off()
            return
        self._loop.call_soon(self._hand_off)

    def _hand_off(self) -> None:
        batch, self._batch = self._batch, []
        if batch and not self.closed:
            lines = [item if item.__class__ is _Line else self._format(item) for item in batch]
            self._out.submit([line for line in lines if line is not None])

    def _format(self, event: Any) -> str | None:
        """The line of ``event``; None (logged, the other lines go on) if formatting fails."""
        try:
            return self.line(event)
        except Exception:
            logger.error(
                "ipsms: an output line could not be formatted",
                exc_info=logger.isEnabledFor(logging.DEBUG),
            )
            return None

    def close(self, timeout: float = 2.0) -> None:
        """Write what is buffered, waiting at most ``timeout`` seconds for the reader; lines
        still unwritten then are counted as dropped."""
        self._hand_off()
        self._out.close(timeout)

    # -- called by the outputs ----------------------------------------------------------------
    def lost(self, lines: int) -> None:
        with self._lock:
            self.dropped += lines
            self._unreported += lines

    def failed(self, exc: BaseException, lines: int) -> None:
        if _is_closed(exc):
            self._closed()
        else:
            self.lost(lines)

    def _closed(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.on_closed is None:
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if self._loop is not None and running is not self._loop:  # the writer thread
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                self._loop.call_soon_threadsafe(self.on_closed)
        else:
            self.on_closed()


def _text(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


def _encode(lines: list[str]) -> bytes:
    return _text(lines).encode("utf-8", "backslashreplace")


def _fileno(stream: TextIO) -> int | None:
    """The descriptor to write to directly (bypassing the text layer, so no encoding error
    or half-flushed buffer is possible), or None for an in-memory stream."""
    try:
        fd = stream.fileno()
        stream.flush()
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return None
    return fd


def _is_closed(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in (errno.EPIPE, errno.EBADF)
    return isinstance(exc, ValueError) and "closed" in str(exc)  # a closed text stream


def _output_for(stream: TextIO, sink: StreamSink) -> _Output:
    fd = _fileno(stream)
    if fd is None:
        return _Plain(sink, stream, None)
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return _Plain(sink, stream, fd)
    if os.isatty(fd):
        return _Threaded(sink, fd)
    if (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)) and not _shared(fd):
        return _NonBlocking(sink, fd)
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        return _Threaded(sink, fd)
    return _Plain(sink, stream, fd)


def _shared(fd: int) -> bool:
    """Whether stdin, stdout or stderr (other than ``fd``) is the same pipe (``2>&1``): a
    non-blocking mode would apply to it too, and its writers do not expect EAGAIN."""
    this = os.fstat(fd)
    for other in (0, 1, 2):
        if other == fd:
            continue
        try:
            st = os.fstat(other)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (this.st_dev, this.st_ino):
            return True
    return False


class _Output:
    pending = 0  # lines handed over and not yet written

    def submit(self, lines: list[str]) -> None:
        raise NotImplementedError

    def close(self, timeout: float) -> None:
        pass


class _Plain(_Output):
    """Writes at once: a file, ``/dev/null`` or an in-memory stream never waits on a reader."""

    def __init__(self, sink: StreamSink, stream: TextIO, fd: int | None) -> None:
        self.sink = sink
        self.stream = stream
        self.fd = fd

    def submit(self, lines: list[str]) -> None:
        try:
            if self.fd is None:
                self.stream.write(_text(lines))
                self.stream.flush()
            else:
                _write_all(self.fd, _encode(lines))
        except (OSError, ValueError) as exc:
            self.sink.failed(exc, len(lines))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _NonBlocking(_Output):
    """A pipe or socket: written from the event loop without ever waiting for the reader."""

    def __init__(self, sink: StreamSink, fd: int) -> None:
        self.sink = sink
        self.fd = fd
        self._chunks: deque[tuple[memoryview, int]] = deque()  # unwritten bytes, their lines
        self._watching: asyncio.AbstractEventLoop | None = None
        self._was_blocking = os.get_blocking(fd)
        os.set_blocking(fd, False)

    def submit(self, lines: list[str]) -> None:
        self._chunks.append((memoryview(_encode(lines)), len(lines)))
        self.pending += len(lines)
        if self._watching is None:
            self._drain()

    def _drain(self) -> None:
        try:
            while self._chunks:
                view, lines = self._chunks[0]
                written = os.write(self.fd, view)
                if written < len(view):
                    self._chunks[0] = (view[written:], lines)
                    break
                self._chunks.popleft()
                self.pending -= lines
        except BlockingIOError:
            pass
        except OSError as exc:
            lost = self.pending
            self._chunks.clear()
            self.pending = 0
            self.sink.failed(exc, lost)
        self._watch(bool(self._chunks))

    def _watch(self, on: bool) -> None:
        if on and self._watching is None:
            with contextlib.suppress(RuntimeError):  # no running loop: close() drains
                self._watching = asyncio.get_running_loop()
                self._watching.add_writer(self.fd, self._drain)
        elif not on and self._watching is not None:
            self._watching.remove_writer(self.fd)
            self._watching = None

    def close(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        self._watch(False)
        while self._chunks and not self.sink.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            with contextlib.suppress(OSError, ValueError):
                select.select([], [self.fd], [], left)
            self._drain()
            self._watch(False)
        if self.pending:
            self.sink.lost(self.pending)
            self._chunks.clear()
            self.pending = 0
        with contextlib.suppress(OSError):
            os.set_blocking(self.fd, self._was_blocking)


class _Threaded(_Output):
    """A terminal: a thread does the writes, which may block."""

    def __init__(self, sink: StreamSink, fd: int) -> None:
        self.sink = sink
        self.fd = fd
        self._batches: deque[list[str]] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="ipsms-output", daemon=True)
        self._thread.start()

    def submit(self, lines: list[str]) -> None:
        with self._cond:
            self._batches.append(lines)
            self.pending += len(lines)
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._batches and not self._stopping:
                    self._cond.wait()
                if not self._batches:
                    return
                lines = [line for batch in self._batches for line in batch]
                self._batches.clear()
            try:
                if not self.sink.closed:
                    _write_all(self.fd, _encode(lines))
            except Exception as exc:  # the thread outlives any write problem
                self.sink.failed(exc, len(lines))
            finally:
                with self._cond:
                    self.pending -= len(lines)

    def close(self, timeout: float) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout)
        if self._thread.is_alive():  # the terminal is not taking output (Ctrl-S)
            with self._cond:
                self.sink.lost(self.pending)  # queued lines and the batch being written
                self._batches.clear()
                self.pending = 0


READER_POLL = 0.2  # seconds between looks at whether stdout's reader went away


def is_pipe(stream: object) -> bool:
    """Whether ``stream`` is a pipe or a socket: a reader that can go away."""
    try:
        mode = os.fstat(stream.fileno()).st_mode  # type: ignore[attr-defined]
    except (OSError, ValueError, AttributeError):  # an in-memory stream (tests)
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


async def watch_reader(lines: StreamSink) -> None:
    """Stop as soon as the stream's reader goes away (``ipsms listen | head -1`` once head
    has its line), not at the next write: until then the port would stay bound by a listener
    nobody reads. Linux reports POLLERR (POLLHUP for a socket) on such a stream."""
    fd = lines.stream.fileno()
    poller = select.poll()
    poller.register(fd, 0)  # no events asked: only errors and hang-ups are reported
    while not lines.closed:
        await asyncio.sleep(READER_POLL)
        if any(event & (select.POLLERR | select.POLLHUP) for _, event in poller.poll(0)):
            # As a write would have found it: the sink stops and calls its on_closed.
            lines.failed(BrokenPipeError(errno.EPIPE, "stdout's reader went away"), 0)
