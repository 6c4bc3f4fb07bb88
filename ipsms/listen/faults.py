"""Fault injection on the receiving side: ``listen`` answering like a failing app, to rehearse
IntelePeer's retry rule (and ``ipsms simulate``) from the other end.

Only messages that would be answered 200 are affected: a malformed or badly signed request
keeps its real answer, which says more. Every message is still recorded, before the answer,
with the status it was actually given.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from ipsms.text import format_duration

REFIDS_REMEMBERED = 100_000  # refids whose attempts fail_first counts (oldest forgotten first)


@dataclass(frozen=True)
class Faults:
    fail_first: int = 0  # for each refid, the first N attempts are answered 500
    status: int | None = None  # every message is answered this status
    delay: float = 0.0  # seconds to wait before answering (after recording)

    @property
    def active(self) -> bool:
        return bool(self.fail_first or self.status is not None or self.delay)

    def describe(self) -> str:
        """``'answering 500 to the first 2 attempts of each refid, 3s late'``."""
        parts = []
        if self.status is not None:
            parts.append(f"answering {self.status} to every message")
        elif self.fail_first:
            parts.append(
                f"answering 500 to the first {self.fail_first} attempt"
                f"{'s' if self.fail_first != 1 else ''} of each refid"
            )
        if self.delay:
            parts.append(f"answering {format_duration(self.delay)} late")
        return ", ".join(parts) or "none"

    def to_dict(self) -> dict[str, Any]:
        return {"fail_first": self.fail_first, "status": self.status, "delay": self.delay}


class FaultInjector:
    """Decides, message by message, whether to answer something else than 200. Attempts are
    counted per refid in this listener's memory (a restart starts counting again)."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._attempts: OrderedDict[str, int] = OrderedDict()

    def override(self, refid: str | None) -> tuple[int, str] | None:
        """The status to answer instead of 200 and why, or None to answer normally."""
        faults = self.faults
        if faults.status is not None:
            return faults.status, f"fault injection: every message is answered {faults.status}"
        if not faults.fail_first or refid is None:
            return None
        attempt = self._attempts.pop(refid, 0) + 1
        self._attempts[refid] = attempt
        if len(self._attempts) > REFIDS_REMEMBERED:
            self._attempts.popitem(last=False)
        if attempt > faults.fail_first:
            return None
        return 500, (
            f"fault injection: attempt {attempt} of this refid answered 500 (the "
            f"first {faults.fail_first} are)"
        )
