"""What the inspector sends: a recorded attempt again, byte for byte (replay), or edited and
signed again (resend), through the delivery engine, to a target it knows: the listener
itself (which records it like any other message), the app behind ``--forward-to``, the
``--to`` of ``ipsms inspect``, or any loopback URL. Nothing else: an inspector is not an open
relay."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ipsms.deliver.engine import Delivery, Outcome, Sender, open_connections, validate_url
from ipsms.deliver.outbound import MessageSpec, PayloadTemplate, Signing, new_refid
from ipsms.deliver.replay import delivery_from_record
from ipsms.deliver.retry import RetryPolicy
from ipsms.errors import UsageError, setting
from ipsms.hosts import is_loopback
from ipsms.inbound import FORM_TYPE
from ipsms.request import Request
from ipsms.signature import DEFAULT_VARIANT, Mode, Variant

SIGNED = ("refid", "message", "signature")


@dataclass(frozen=True)
class Targets:
    """Where a replay or resend may go, and where it goes when the page names none."""

    listener: str | None = None  # the listener's own URL (records what it receives)
    forward: str | None = None  # the app behind --forward-to
    to: str | None = None  # inspect --to
    # The listener's secret and scheme, to sign an edited message again.
    secret: str | None = None
    mode: Mode = Mode.PLAIN
    variant: Variant = DEFAULT_VARIANT

    @property
    def signing(self) -> Signing:
        return Signing(self.secret, self.mode, self.variant)

    @property
    def default(self) -> str | None:
        return self.listener or self.to or self.forward

    def check(self, url: str | None) -> str:
        """``url`` (or the default target) if the inspector may send there; else
        ``UsageError`` with the reason."""
        if url is None:
            if self.default is None:
                raise UsageError(
                    "there is no target to send to: give the inspector "
                    f"{setting('to')} URL, or open it from `ipsms listen`"
                )
            return self.default
        url = validate_url(url)
        if url in (self.listener, self.forward, self.to) or _loopback(url):
            return url
        raise UsageError(
            f"{url} is not a target of this inspector: it sends only to the "
            f"listener, the {setting('forward_to')} app, {setting('to')}, or a "
            "loopback address"
        )


def _loopback(url: str) -> bool:
    return is_loopback(urlsplit(url).hostname or "")


def replay_delivery(row: Request, url: str) -> Delivery:
    if row.refid is None:
        raise UsageError(
            f"attempt {row.id} is not a message (the listener could not read it): "
            "there is nothing to replay"
        )
    return delivery_from_record(row, url)


def resend_delivery(
    row: Request,
    url: str,
    changes: Mapping[str, Any],
    *,
    sign: bool,
    new_refid_: bool,
    signing: Signing,
) -> Delivery:
    """``row``'s fields with ``changes``, encoded as it came (JSON or form), signed again with
    the listener's secret when ``sign``, under a new refid when ``new_refid_``."""
    if row.fields is None:
        raise UsageError(
            f"attempt {row.id} has no fields to edit (the listener could not read its body)"
        )
    if any(not isinstance(k, str) for k in changes):
        raise UsageError("fields are named by strings")
    base = {**row.fields, **changes}
    refid = new_refid() if new_refid_ else str(base.get("refid") or new_refid())
    if sign and not signing.secret:
        raise UsageError(
            "there is no secret to sign with: start the listener with one, or "
            "resend without signing"
        )
    spec = MessageSpec(
        from_number=_text(base, "from"),
        to_number=_text(base, "to"),
        message=_text(base, "message"),
        refid=refid,
        base={k: v for k, v in base.items() if k != "signature" or not sign},
        form=(row.content_type or "").startswith(FORM_TYPE),
        allow_invalid=True,
        signing=signing if sign else Signing(),
    )
    message = PayloadTemplate(spec).render(refid)
    return Delivery(
        url,
        message.body,
        message.content_type,
        message.refid,
        message.signature,
        source=f"edit of request #{row.id}",
    )


def _text(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise UsageError(f"{name} must be text")
    return value


class Sends:
    """Deliveries running in the background for the page; each one's outcome is kept for
    ``GET``-ing back, and the listener records its attempts like any others."""

    def __init__(self) -> None:
        self.running: set[asyncio.Task[Outcome]] = set()

    def start(self, delivery: Delivery, *, retries: bool) -> None:
        policy = RetryPolicy() if retries else RetryPolicy(max_attempts=1)
        task = asyncio.ensure_future(_deliver(delivery, policy))
        self.running.add(task)
        task.add_done_callback(self.running.discard)

    async def close(self) -> None:
        for task in list(self.running):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _deliver(delivery: Delivery, policy: RetryPolicy) -> Outcome:
    async with open_connections(policy, limit=4) as connections:
        return await Sender(connections, policy).deliver(delivery)


def sent(delivery: Delivery, *, retries: bool) -> dict[str, Any]:
    """What the page is told of a delivery it started (its attempts then arrive in the live
    stream when they go through the listener)."""
    return {
        "refid": delivery.refid,
        "to": delivery.url,
        "retries": retries,
        "signed_fields": [f for f in SIGNED if f != "signature"],
        "signature": delivery.signature is not None,
    }
