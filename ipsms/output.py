"""Machine and plain-text output: NDJSON lines and one-line summaries, with no terminal code.

Everything printed from message content goes through ``printable`` first, so an SMS cannot
move the cursor, recolour the terminal or reorder text with bidi controls.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any, TextIO

from ipsms.events import RequestEvent, iso_time

# C0 and C1 controls, DEL, and the Unicode bidi / zero-width controls that reorder or hide text.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\e"}


def printable(text: str) -> str:
    """``'hi\\x1b[31m'`` -> ``'hi\\\\e[31m'``: control characters shown as visible escapes."""
    if not _UNSAFE.search(text):
        return text
    return _UNSAFE.sub(lambda m: _NAMED.get(m.group(), f"\\u{ord(m.group()):04x}"), text)


def one_line(text: str, width: int) -> str:
    text = printable(text)
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # built once: hot path


def dumps(obj: dict[str, Any]) -> str:
    """Compact JSON, UTF-8 text kept as is (one NDJSON line's worth)."""
    return _ENCODER.encode(obj)


class StreamSink:
    """Writes one line per event to ``stream``, flushed before the event loop next waits: at
    once for a reader, but a burst of requests shares one write to the pipe. When the reader
    goes away (``| head -1``) it stops writing and calls ``on_closed`` once; it never raises
    into the listener, which has already recorded the message and must still answer."""

    def __init__(self, stream: TextIO, on_closed: Callable[[], None] | None = None) -> None:
        self.stream = stream
        self.on_closed = on_closed
        self.closed = False
        self._flush_pending = False

    def line(self, event: RequestEvent) -> str:
        raise NotImplementedError

    def __call__(self, event: RequestEvent) -> None:
        self.write_line(self.line(event))

    def write_line(self, text: str) -> None:
        if self.closed:
            return
        try:
            self.stream.write(text + "\n")
        except (OSError, ValueError):  # broken pipe, or the stream was closed
            self._closed()
            return
        if self._flush_pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._flush()
            return
        self._flush_pending = True
        loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        if self.closed:
            return
        try:
            self.stream.flush()
        except (OSError, ValueError):
            self._closed()

    def _closed(self) -> None:
        if not self.closed:
            self.closed = True
            if self.on_closed is not None:
                self.on_closed()


class NdjsonSink(StreamSink):
    """One JSON object per event (the signature masked)."""

    def line(self, event: RequestEvent) -> str:
        return dumps(event.to_dict())


def plain_line(event: RequestEvent) -> str:
    clock = iso_time(event.received_at)[11:23]
    if event.refid is None:
        return (f"{clock} {event.status} {event.method} {printable(event.path)} "
                f"{event.error}: {printable(event.error_detail or '')}")
    flags = f" flags={','.join(f['code'] for f in event.flags)}" if event.flags else ""
    return (f"{clock} {event.status} #{event.attempt} {printable(event.refid)} "
            f"{printable(event.from_number or '')} -> {printable(event.to_number or '')} "
            f"[{event.verdict}] {one_line(event.message or '', 80)!s}{flags}")


class PlainSink(StreamSink):
    """One readable line per event."""

    def line(self, event: RequestEvent) -> str:
        return plain_line(event)
