"""Deliver an IntelePeer-shaped, signed message to an app, with the engine ``ipsms simulate`` uses
(``ipsms.deliver.engine.Sender``): the same bytes on every attempt, retried until HTTP 200, and
``fail_first`` to count the first N answers as failed whatever they were (the app then sees
the same refid N+1 times, as after a 200 lost on the way back to IntelePeer).

The defaults are for fast tests, not IntelePeer's pace: no wait between attempts and 5 s per
attempt. IntelePeer makes 5 attempts with undocumented spacing (``ipsms simulate`` waits 1, 2,
4, 8 s and 10 s per attempt by default); pass ``retry_delays`` and ``timeout`` to rehearse it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ipsms import defaults
from ipsms.deliver.engine import (
    AttemptEvent,
    Delivery,
    Outcome,
    Sender,
    open_connections,
    validate_url,
)
from ipsms.deliver.outbound import MessageSpec, PayloadTemplate, Signing
from ipsms.deliver.retry import RetryPolicy, SuccessRule
from ipsms.request import is_request_line, line_body
from ipsms.signature import DEFAULT_VARIANT, Mode, parse_variant
from ipsms.testing.loop import refuse_inside_loop

if TYPE_CHECKING:
    from yarl import URL

TEST_DELAYS: tuple[float, ...] = (0.0,)  # no wait between attempts
TEST_TIMEOUT = 5.0  # seconds an attempt may take
_UNSET: Any = object()  # "the fixture's secret", as opposed to None: "do not sign"


@dataclass(frozen=True)
class DeliveryResult:
    """What happened: every attempt (status, latency, the start of the answer...) and how
    the delivery ended."""

    refid: str
    fields: dict[str, Any]  # what was posted, signature included
    body: bytes
    attempts: tuple[AttemptEvent, ...]
    outcome: Outcome

    @property
    def delivered(self) -> bool:
        return self.outcome.delivered

    @property
    def statuses(self) -> list[int | None]:
        """The HTTP status of every attempt (None when there was no answer)."""
        return [a.status for a in self.attempts]

    def __str__(self) -> str:
        tried = ", ".join(
            f"#{a.number} {a.result}{' (counted failed)' if a.forced_failure else ''}"
            for a in self.attempts
        )
        return f"refid {self.refid}: {self.outcome.describe()} [{tried}]"


class Deliverer:
    """Posts messages; ``secret`` signs them unless a call passes its own (None: unsigned).

    Call it from a plain test; from an async test ``await deliverer.deliver_async(...)``
    (same arguments), so your app can keep running on the test's event loop."""

    def __init__(self, secret: str | None = None) -> None:
        self.secret = secret

    def __call__(
        self,
        url: str | URL,
        message: str = defaults.MESSAGE_TEXT,
        *,
        from_: str = defaults.FROM_NUMBER,
        to: str = defaults.TO_NUMBER,
        refid: str | None = None,
        secret: str | None = _UNSET,
        signature_mode: str = "plain",
        hmac_variant: str | None = None,
        form: bool = False,
        extra: Mapping[str, Any] | None = None,
        allow_invalid: bool = False,
        fail_first: int = 0,
        max_attempts: int = defaults.MAX_ATTEMPTS,
        retry_delays: Sequence[float] = TEST_DELAYS,
        timeout: float = TEST_TIMEOUT,
        success: str = "200",
    ) -> DeliveryResult:
        """Deliver one message and return its attempts and outcome. Blocks until done."""
        refuse_inside_loop("ipsms_deliver.deliver_async(...)")
        return asyncio.run(
            self.deliver_async(
                url,
                message,
                from_=from_,
                to=to,
                refid=refid,
                secret=secret,
                signature_mode=signature_mode,
                hmac_variant=hmac_variant,
                form=form,
                extra=extra,
                allow_invalid=allow_invalid,
                fail_first=fail_first,
                max_attempts=max_attempts,
                retry_delays=retry_delays,
                timeout=timeout,
                success=success,
            )
        )

    async def deliver_async(
        self,
        url: str | URL,
        message: str = defaults.MESSAGE_TEXT,
        *,
        from_: str = defaults.FROM_NUMBER,
        to: str = defaults.TO_NUMBER,
        refid: str | None = None,
        secret: str | None = _UNSET,
        signature_mode: str = "plain",
        hmac_variant: str | None = None,
        form: bool = False,
        extra: Mapping[str, Any] | None = None,
        allow_invalid: bool = False,
        fail_first: int = 0,
        max_attempts: int = defaults.MAX_ATTEMPTS,
        retry_delays: Sequence[float] = TEST_DELAYS,
        timeout: float = TEST_TIMEOUT,
        success: str = "200",
    ) -> DeliveryResult:
        """``__call__`` for async tests."""
        signing = Signing(
            self.secret if secret is _UNSET else secret,
            Mode(signature_mode),
            parse_variant(hmac_variant) if hmac_variant else DEFAULT_VARIANT,
        )
        spec = MessageSpec(
            from_, to, message, refid, dict(extra or {}), form, allow_invalid, signing
        )
        built = PayloadTemplate(spec).render()
        delivery = built.delivery(validate_url(str(url)))
        attempts, outcome = await _send(
            delivery, fail_first, max_attempts, retry_delays, timeout, success
        )
        return DeliveryResult(built.refid, built.fields, built.body, attempts, outcome)

    def replay(
        self,
        url: str | URL,
        fixture: str | Path | Mapping[str, Any],
        *,
        fail_first: int = 0,
        max_attempts: int = defaults.MAX_ATTEMPTS,
        retry_delays: Sequence[float] = TEST_DELAYS,
        timeout: float = TEST_TIMEOUT,
        success: str = "200",
    ) -> DeliveryResult:
        """Deliver a recorded message again, byte for byte: ``fixture`` is a file the
        inspector saved ("Save as fixture"), a line of ``ipsms messages export``, or that
        line as a dict. Its body, content type and signature are sent as recorded."""
        refuse_inside_loop("ipsms_deliver.replay_async(...)")
        return asyncio.run(
            self.replay_async(
                url,
                fixture,
                fail_first=fail_first,
                max_attempts=max_attempts,
                retry_delays=retry_delays,
                timeout=timeout,
                success=success,
            )
        )

    async def replay_async(
        self,
        url: str | URL,
        fixture: str | Path | Mapping[str, Any],
        *,
        fail_first: int = 0,
        max_attempts: int = defaults.MAX_ATTEMPTS,
        retry_delays: Sequence[float] = TEST_DELAYS,
        timeout: float = TEST_TIMEOUT,
        success: str = "200",
    ) -> DeliveryResult:
        """``replay`` for async tests."""
        doc = load_fixture(fixture)
        body = line_body(doc)
        fields = doc.get("fields") if isinstance(doc.get("fields"), dict) else {}
        signature = fields.get("signature") if fields else None
        refid = doc.get("refid") if isinstance(doc.get("refid"), str) else None
        delivery = Delivery(
            validate_url(str(url)),
            body or b"",
            doc.get("content_type"),
            refid,
            signature if isinstance(signature, str) else None,
            source="fixture",
        )
        attempts, outcome = await _send(
            delivery, fail_first, max_attempts, retry_delays, timeout, success
        )
        return DeliveryResult(refid or "", dict(fields or {}), delivery.body, attempts, outcome)


async def _send(
    delivery: Delivery,
    fail_first: int,
    max_attempts: int,
    retry_delays: Sequence[float],
    timeout: float,
    success: str,
) -> tuple[tuple[AttemptEvent, ...], Outcome]:
    """One delivery with the test-speed retry rule: its attempts and its outcome."""
    policy = RetryPolicy(
        max_attempts=max_attempts,
        success=SuccessRule(success),
        timeout=timeout,
        delays=tuple(retry_delays) or TEST_DELAYS,
    )
    attempts: list[AttemptEvent] = []
    async with open_connections(policy, limit=1) as connections:
        sender = Sender(connections, policy, fail_first=fail_first)
        outcome = await sender.deliver(delivery, attempts.append)
    return tuple(attempts), outcome


def load_fixture(fixture: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """A fixture's JSON: the recorded request line, with its exact body (``body``, or
    ``body_base64`` when it is not UTF-8). ``ValueError`` says what is wrong with a file that
    is not one."""
    if isinstance(fixture, Mapping):
        doc = dict(fixture)
    else:
        text = Path(fixture).read_text(encoding="utf-8", errors="surrogateescape")
        doc = json.loads(text)
    if not isinstance(doc, dict) or not is_request_line(doc):
        raise ValueError(
            f"{fixture!s:.80} is not an ipsms fixture: save one from the "
            "inspector, or use a line of `ipsms messages export`"
        )
    if doc.get("redacted"):
        raise ValueError(
            "a redacted export line has no body to send: save the fixture without redaction"
        )
    if line_body(doc) is None:
        raise ValueError(
            "this request line carries no body: save it from the inspector, or "
            "use `ipsms messages export` (messages list lines have none)"
        )
    return doc
