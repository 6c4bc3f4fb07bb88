"""Events the listener emits; renderers (live table, NDJSON, plain lines) consume them.

A request it read is emitted as the one request model, ``ipsms.request.Request`` (after it
was recorded and answered); what it could not read as a request is a ``RejectedEvent``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ipsms.request import Request
from ipsms.text import iso_time


@dataclass(slots=True)
class RejectedEvent:
    """A connection or request turned away before the listener could read it as a request:
    a request aiohttp could not parse (bad header line, too many headers, smuggling
    attempts), a request head that did not arrive in time, a connection over the cap."""

    received_at: float
    remote: str | None
    status: int  # the HTTP status answered (400, 408, 503...)
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "rejected",
            "received_at": iso_time(self.received_at),
            "remote": self.remote,
            "status": self.status,
            "reason": self.reason,
        }


ListenEvent = Request | RejectedEvent


@dataclass
class ListenStats:
    """Running counts shown in the live header and the exit summary."""

    received: int = 0
    accepted: int = 0
    rejected: int = 0
    bad_signatures: int = 0
    retries: int = 0
    dropped_lines: int = 0  # output lines dropped because stdout was not read fast enough
    unrecorded: int = 0  # rejected requests not recorded: over the junk budget

    def observe(self, event: ListenEvent) -> None:
        self.received += 1
        if isinstance(event, RejectedEvent):
            self.rejected += 1
            return
        if event.accepted:
            self.accepted += 1
        else:
            self.rejected += 1
            if event.id is None and event.error != "store_failed":
                self.unrecorded += 1
        if event.verdict in ("invalid", "missing"):
            self.bad_signatures += 1
        if event.attempt is not None and event.attempt > 1:
            self.retries += 1

    def summary(self) -> str:
        text = (
            f"{self.received} received, {self.accepted} accepted, {self.rejected} rejected, "
            f"{self.bad_signatures} bad signature{'' if self.bad_signatures == 1 else 's'}, "
            f"{self.retries} {'retry' if self.retries == 1 else 'retries'}"
        )
        if self.unrecorded:
            text += f"; {self.unrecorded} rejected requests not recorded (more than 200 a second)"
        if self.dropped_lines:
            text += (
                f"; {self.dropped_lines} output lines dropped (stdout was not read fast "
                "enough; the store has every request)"
            )
        return text
