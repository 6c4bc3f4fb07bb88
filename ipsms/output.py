"""Machine and plain-text output: NDJSON lines and one-line summaries, with no terminal code.

Everything printed from message content goes through ``printable`` first, so an SMS cannot
move the cursor, recolour the terminal or reorder text with bidi controls.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import json
import math
import os
import re
import threading
import unicodedata
from collections import deque
from collections.abc import Callable
from typing import Any, TextIO

from ipsms.events import ListenEvent, RejectedEvent, iso_time

# Characters that can move the cursor, recolour the terminal, reorder or hide text: C0 and C1
# controls, DEL, lone surrogates, and every Unicode format control (category Cf: bidi
# embeddings, overrides and isolates, U+061C, zero-width characters, tags...) plus the line and
# paragraph separators U+2028/U+2029. tests/test_text_safety.py checks this list against
# ``unicodedata`` so a new Unicode version cannot slip a format control past it.
_UNSAFE_CLASS = (
    "\x00-\x1f\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    "\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ud800-\udfff\ufeff"
    "\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
)
_UNSAFE = re.compile(f"[{_UNSAFE_CLASS}]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\e"}
_ZWJ = "\u200d"
_BLACK_FLAG = "\U0001f3f4"  # starts a tag sequence: England's, Scotland's, Wales's flags


def _emoji_side(ch: str) -> bool:
    """A character an emoji ZWJ sequence joins: a pictograph (category So), a skin-tone
    modifier, or the emoji presentation selector VS16."""
    return ch == "\ufe0f" or (ch >= "\u00a9" and unicodedata.category(ch) in ("So", "Sk"))


def _kept(text: str, i: int) -> bool:
    """The format controls that build emoji, and are kept: a ZWJ between two emoji parts
    (family, profession and flag sequences) and the tags of a subdivision flag."""
    ch = text[i]
    if ch == _ZWJ:
        return 0 < i < len(text) - 1 and _emoji_side(text[i - 1]) and _emoji_side(text[i + 1])
    if "\U000e0020" <= ch <= "\U000e007f" and i > 0:
        prev = text[i - 1]
        return prev == _BLACK_FLAG or "\U000e0020" <= prev <= "\U000e007e"
    return False


def _escape_for_display(m: re.Match[str]) -> str:
    ch = m.group()
    if _kept(m.string, m.start()):
        return ch
    return _NAMED.get(ch) or f"\\u{ord(ch):04x}"


def printable(text: str) -> str:
    """``'hi\\x1b[31m'`` -> ``'hi\\\\e[31m'``: control characters, lone surrogates and
    bidi/format controls shown as visible escapes; emoji sequences stay whole."""
    if not _UNSAFE.search(text):
        return text
    return _UNSAFE.sub(_escape_for_display, text)


def one_line(text: str, width: int) -> str:
    text = printable(text)
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def _escape_for_json(m: re.Match[str]) -> str:
    ch = m.group()
    if _kept(m.string, m.start()):
        return ch
    code = ord(ch)
    if code > 0xFFFF:  # JSON escapes name UTF-16 units: a surrogate pair
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


# Built once: hot path. ``allow_nan=False``: NDJSON is strict JSON (RFC 8259).
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def dumps(obj: dict[str, Any]) -> str:
    """Compact, strict JSON (one NDJSON line's worth). UTF-8 text is kept as is, but every
    character ``printable`` would escape is written as a ``\\uXXXX`` escape: the value is
    unchanged for a JSON reader, and ``cat`` of the output cannot drive the terminal. The
    result is always encodable as UTF-8 (lone surrogates are escaped too)."""
    try:
        text = _ENCODER.encode(obj)
    except ValueError:  # a NaN or an infinity: not JSON, written as its name in a string
        text = _ENCODER.encode(_finite(obj))
    if not _UNSAFE.search(text):
        return text
    return _UNSAFE.sub(_escape_for_json, text)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


DEFAULT_MAX_PENDING = 10_000  # output lines buffered for a slow reader before lines are dropped


class StreamSink:
    """Writes one line per event to ``stream`` without ever blocking the event loop.

    Lines go into a bounded buffer that one thread writes out: a burst of requests shares one
    write, and a reader that is slow or gone (a pipe nobody reads) costs memory up to the bound,
    never an answer. Past the bound, lines are dropped and counted; the count is written before
    the next line that fits (``drop_notice``) and kept in ``dropped`` for the exit summary.
    Only a real closed stdout (EPIPE, a closed descriptor or stream) counts as closed: it calls
    ``on_closed`` once, on the event loop. Any other write error (a full disk, an encoding
    problem) loses those lines, counted, and writing goes on."""

    def __init__(self, stream: TextIO, on_closed: Callable[[], None] | None = None,
                 max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self.stream = stream
        self.on_closed = on_closed
        self.max_pending = max_pending
        self.closed = False
        self.dropped = 0  # lines dropped in all
        self._dropped_unreported = 0
        self._fd = _fileno(stream)
        self._batch: list[str] = []  # lines of this event-loop iteration
        self._queued = 0  # lines handed to the thread and not yet written
        self._batches: deque[list[str]] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="ipsms-output", daemon=True)
        self._thread.start()

    def line(self, event: Any) -> str:
        raise NotImplementedError

    def drop_notice(self, count: int) -> str:
        return (f"ipsms: {count} line(s) dropped: stdout was not read fast enough "
                f"({self.dropped} in all; the store has every request)")

    def __call__(self, event: Any) -> None:
        self.write_line(self.line(event))

    def write_line(self, text: str) -> None:
        if self.closed:
            return
        if self._queued + len(self._batch) >= self.max_pending:
            with self._cond:
                self.dropped += 1
                self._dropped_unreported += 1
            return
        first = not self._batch
        if self._dropped_unreported:
            with self._cond:
                count, self._dropped_unreported = self._dropped_unreported, 0
            self._batch.append(self.drop_notice(count))
        self._batch.append(text)
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
        if not batch:
            return
        with self._cond:
            self._batches.append(batch)
            self._queued += len(batch)
            self._cond.notify()

    def close(self, timeout: float = 2.0) -> None:
        """Write what is buffered, waiting at most ``timeout`` seconds for the reader; lines
        still unwritten then are counted as dropped."""
        self._hand_off()
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout)
        if self._thread.is_alive():
            with self._cond:
                self.dropped += self._queued
                self._queued = 0
                self._batches.clear()

    # -- writer thread ------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._batches and not self._stopping:
                    self._cond.wait()
                if not self._batches:
                    return
                batches = list(self._batches)
                self._batches.clear()
            lines = [line for batch in batches for line in batch]
            try:
                if not self.closed:
                    self._write("".join(line + "\n" for line in lines))
            except Exception as exc:  # the thread outlives any write problem
                if _is_closed(exc):
                    self._closed()
                else:
                    with self._cond:
                        self.dropped += len(lines)
                        self._dropped_unreported += len(lines)
            finally:
                with self._cond:
                    self._queued -= len(lines)

    def _write(self, text: str) -> None:
        if self._fd is None:
            self.stream.write(text)
            self.stream.flush()
            return
        data = memoryview(text.encode("utf-8", "backslashreplace"))
        while data:
            written = os.write(self._fd, data)
            data = data[written:]

    def _closed(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.on_closed is None:
            return
        if self._loop is not None and threading.current_thread() is self._thread:
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                self._loop.call_soon_threadsafe(self.on_closed)
        else:
            self.on_closed()


def _fileno(stream: TextIO) -> int | None:
    """The descriptor to write to directly (bypassing the text layer, so no encoding error
    or half-flushed buffer is possible), or None for an in-memory stream."""
    try:
        fd = stream.fileno()
        stream.flush()
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return None
    return fd


def _is_closed(exc: Exception) -> bool:
    if isinstance(exc, BrokenPipeError):
        return True
    if isinstance(exc, OSError):
        return exc.errno in (errno.EPIPE, errno.EBADF)
    return isinstance(exc, ValueError) and "closed" in str(exc)  # a closed text stream


class NdjsonSink(StreamSink):
    """One JSON object per event (the signature masked)."""

    def line(self, event: ListenEvent) -> str:
        return dumps(event.to_dict())

    def drop_notice(self, count: int) -> str:
        return dumps({"type": "dropped", "lines": count, "total": self.dropped,
                      "reason": "stdout was not read fast enough; the store has every request"})


def plain_line(event: ListenEvent) -> str:
    clock = iso_time(event.received_at)[11:23]
    if isinstance(event, RejectedEvent):
        return f"{clock} {event.status} rejected {event.remote or '-'}: {printable(event.reason)}"
    if event.refid is None:
        return (f"{clock} {event.status} {event.method} {printable(event.path)} "
                f"{event.error}: {printable(event.error_detail or '')}")
    flags = f" flags={','.join(f['code'] for f in event.flags)}" if event.flags else ""
    return (f"{clock} {event.status} #{event.attempt} {printable(event.refid)} "
            f"{printable(event.from_number or '')} -> {printable(event.to_number or '')} "
            f"[{event.verdict}] {one_line(event.message or '', 80)!s}{flags}")


class PlainSink(StreamSink):
    """One readable line per event."""

    def line(self, event: ListenEvent) -> str:
        return plain_line(event)
