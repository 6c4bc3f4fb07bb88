"""Machine and plain-text output: NDJSON lines and one-line summaries, with no terminal code.

Everything printed from message content goes through ``printable`` first, so an SMS cannot
move the cursor, recolour the terminal or reorder text with bidi controls.
"""

from __future__ import annotations

import asyncio
import json
import re
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


class NdjsonSink:
    """One JSON object per event on ``stream``, flushed before the event loop next waits: at
    once for a reader, but a burst of requests shares one write to the pipe."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._flush_pending = False

    def __call__(self, event: RequestEvent) -> None:
        self.stream.write(dumps(event.to_dict()) + "\n")
        if self._flush_pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.stream.flush()
            return
        self._flush_pending = True
        loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        self.stream.flush()


def plain_line(event: RequestEvent) -> str:
    clock = iso_time(event.received_at)[11:23]
    if event.refid is None:
        return (f"{clock} {event.status} {event.method} {printable(event.path)} "
                f"{event.error}: {printable(event.error_detail or '')}")
    flags = f" flags={','.join(f['code'] for f in event.flags)}" if event.flags else ""
    return (f"{clock} {event.status} #{event.attempt} {printable(event.refid)} "
            f"{printable(event.from_number or '')} -> {printable(event.to_number or '')} "
            f"[{event.verdict}] {one_line(event.message or '', 80)!s}{flags}")


class PlainSink:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, event: RequestEvent) -> None:
        self.stream.write(plain_line(event) + "\n")
        self.stream.flush()
