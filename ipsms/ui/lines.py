"""Machine and plain-text output: NDJSON lines and one-line summaries, with no terminal code.

Everything printed from message content goes through ``printable`` first, so an SMS cannot
move the cursor, recolour the terminal or reorder text with bidi controls.
"""

from __future__ import annotations

from ipsms.events import ListenEvent, RejectedEvent
from ipsms.stream_sink import StreamSink
from ipsms.text import dumps, iso_time, printable


def ndjson_line(event: ListenEvent) -> str:
    """The ``listen --format json`` line of ``event`` (the signature masked)."""
    if isinstance(event, RejectedEvent):
        return dumps(event.to_dict())
    # No body: it can be a megabyte per request; the store has it (`messages show`).
    return dumps(event.to_dict(bodies=False))


class NdjsonSink(StreamSink):
    """One JSON object per event (the signature masked)."""

    def line(self, event: ListenEvent) -> str:
        return ndjson_line(event)

    def drop_notice(self, count: int) -> str:
        return dumps({"type": "dropped", "lines": count, "total": self.dropped,
                      "reason": "stdout was not read fast enough; the store has every request"})


def plain_line(event: ListenEvent, *, date: bool = False) -> str:
    """One whole request on one line, for grep and cut: the message in full (its control
    characters and line breaks escaped), then its flags and what the app answered. ``date``:
    the full ISO time (``messages list``), not just the clock (a live ``listen``)."""
    clock = iso_time(event.received_at) if date else iso_time(event.received_at)[11:23]
    if isinstance(event, RejectedEvent):
        return f"{clock} {event.status} rejected {event.remote or '-'}: {printable(event.reason)}"
    if event.refid is None:
        return (f"{clock} {event.status} {event.method} {printable(event.path)} "
                f"{event.error}: {printable(event.error_detail or '')}")
    flags = f" flags={','.join(f['code'] for f in event.flags)}" if event.flags else ""
    forward = ""
    if event.forward is not None:
        forward = (f" app={event.forward['status']} {event.forward['latency_ms']:.0f}ms"
                   + (f" {event.forward['error']}" if event.forward.get("error") else ""))
    return (f"{clock} {event.status} #{event.attempt} {printable(event.refid)} "
            f"{printable(event.from_number or '')} -> {printable(event.to_number or '')} "
            f"[{event.verdict_label}] {printable(event.message or '')}{flags}{forward}")


class PlainSink(StreamSink):
    """One readable line per event."""

    def line(self, event: ListenEvent) -> str:
        return plain_line(event)
