"""Machine and plain-text output: NDJSON lines and one-line summaries, with no terminal code.

Everything printed from message content goes through ``printable`` first, so an SMS cannot
move the cursor, recolour the terminal or reorder text with bidi controls.
"""

from __future__ import annotations

import time
from functools import lru_cache
from json.encoder import encode_basestring
from typing import Any

from ipsms.listen.events import ListenEvent, RejectedEvent
from ipsms.redact import mask_secret
from ipsms.request import Request
from ipsms.text import dumps, iso_time, prebuilt_encoder, printable
from ipsms.ui.stream_sink import StreamSink


def ndjson_line(event: ListenEvent) -> str:
    """The ``listen --format json`` line of ``event`` (the signature masked)."""
    if isinstance(event, RejectedEvent):
        return dumps(event.to_dict())
    line = _request_line(event)
    if line is not None:
        return line
    # No body: it can be a megabyte per request; the store has it (`messages show`).
    return dumps(event.to_dict(bodies=False))


# The line of an ordinary request is written straight from its values: building the 29-key
# dict of ``Request.to_dict`` and encoding it was the largest share of the listener's own
# per-request work (bench/bench_listen.py --breakdown). Anything unusual (flags, a relay, a
# cut body, a character ``dumps`` would escape) takes the general path, so both give the same
# line, character for character (tests/ui/test_ndjson_fast.py holds them to it).
_masked = lru_cache(maxsize=64)(mask_secret)  # a plain signature repeats on every request
# ``dumps``'s JSON (compact, strict, UTF-8 kept) without its per-call encoder: the values come
# from parsed JSON, and the line is checked for what ``dumps`` would escape below.
_json = prebuilt_encoder()


_second: list[Any] = [None, ""]  # the last whole second formatted, and its text


def _iso_time(ts: float) -> str:
    """``text.iso_time``, with the date and clock part kept while the second lasts."""
    whole, ms = divmod(round(ts * 1000), 1000)
    if whole != _second[0]:
        _second[0], _second[1] = whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{_second[1]}.{ms:03d}Z"


def _s(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)


def _request_line(e: Request) -> str | None:
    if e.flags or e.forward is not None or e.body_size is not None or e.body_sha256 is not None:
        return None
    fields = e.fields
    sig = e.signature
    if sig and any(sig in value for _, value in e.headers):  # masked there too: the long way
        return None
    shown = sig
    if sig is not None:
        shown = _masked(sig)
        if fields is not None:
            fields = {**fields, "signature": shown}
    try:
        line = "".join(
            (
                '{"type":"request","id":',
                "null" if e.id is None else int.__repr__(e.id),
                ',"received_at":"',
                _iso_time(e.received_at),
                '","method":',
                encode_basestring(e.method),
                ',"path":',
                encode_basestring(e.path),
                ',"remote":',
                _s(e.remote),
                ',"headers":',
                _json(e.headers),
                ',"content_type":',
                _s(e.content_type),
                ',"size":',
                int.__repr__(len(e.body)),
                ',"body_truncated":false,"body_sha256":null,"body":null,"body_base64":null,'
                '"refid":',
                _s(e.refid),
                ',"attempt":',
                "null" if e.attempt is None else int.__repr__(e.attempt),
                ',"from":',
                _s(e.from_number),
                ',"to":',
                _s(e.to_number),
                ',"message":',
                _s(e.message),
                ',"fields":',
                "null" if fields is None else _json(fields),
                ',"signature":',
                _s(shown),
                ',"signature_masked":true,"verdict":',
                _s(e.verdict),
                ',"verdict_detail":',
                _s(e.verdict_detail),
                ',"flags":[],"status":',
                int.__repr__(e.status),
                ',"error":',
                _s(e.error),
                ',"error_detail":',
                _s(e.error_detail),
                ',"forward":null,"redacted":false}',
            )
        )
    except (TypeError, ValueError):  # a value of an odd type, a NaN: the general path says
        return None
    # What ``dumps`` would change (a control character, DEL, any non-ASCII text) is left to it.
    return line if line.isascii() and "\x7f" not in line else None


class NdjsonSink(StreamSink):
    """One JSON object per event (the signature masked)."""

    def line(self, event: ListenEvent) -> str:
        return ndjson_line(event)

    def drop_notice(self, count: int) -> str:
        return dumps(
            {
                "type": "dropped",
                "lines": count,
                "total": self.dropped,
                "reason": "stdout was not read fast enough; the store has every request",
            }
        )


def plain_line(event: ListenEvent, *, date: bool = False) -> str:
    """One whole request on one line, for grep and cut: the message in full (its control
    characters and line breaks escaped), then its flags and what the app answered. ``date``:
    the full ISO time (``messages list``), not just the clock (a live ``listen``)."""
    clock = iso_time(event.received_at) if date else iso_time(event.received_at)[11:23]
    if isinstance(event, RejectedEvent):
        return f"{clock} {event.status} rejected {event.remote or '-'}: {printable(event.reason)}"
    if event.refid is None:
        return (
            f"{clock} {event.status} {event.method} {printable(event.path)} "
            f"{event.error}: {printable(event.error_detail or '')}"
        )
    flags = f" flags={','.join(f['code'] for f in event.flags)}" if event.flags else ""
    forward = ""
    if event.forward is not None:
        forward = f" app={event.forward['status']} {event.forward['latency_ms']:.0f}ms" + (
            f" {event.forward['error']}" if event.forward.get("error") else ""
        )
    return (
        f"{clock} {event.status} #{event.attempt} {printable(event.refid)} "
        f"{printable(event.from_number or '')} -> {printable(event.to_number or '')} "
        f"[{event.verdict_label}] {printable(event.message or '')}{flags}{forward}"
    )


class PlainSink(StreamSink):
    """One readable line per event."""

    def line(self, event: ListenEvent) -> str:
        return plain_line(event)
