"""The listener: an aiohttp application factory that receives IntelePeer webhooks.

``create_app`` returns the application without running it (tests drive it with
``aiohttp_client``; ``ipsms.server`` binds it). Every request, accepted or not, is parsed,
verified, recorded (committed before the answer) and emitted as one ``RequestEvent``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ipsms.errors import StateError
from ipsms.events import RequestEvent
from ipsms.message import BodyError, InboundMessage, parse_message
from ipsms.output import dumps
from ipsms.recorder import Recorded, Recorder
from ipsms.redact import mask_headers
from ipsms.signature import DEFAULT_VARIANT, Mode, Variant, Verdict, Verification, Verifier
from ipsms.store import RequestRecord

logger = logging.getLogger("ipsms.listener")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_MAX_BODY = 1024 * 1024

EventSink = Callable[[RequestEvent], None]


@dataclass(frozen=True)
class ListenConfig:
    secret: str | None = None
    signature_mode: Mode = Mode.AUTO
    hmac_variant: Variant = DEFAULT_VARIANT
    max_body: int = DEFAULT_MAX_BODY
    accept_bad_signature: bool = False


class InFlight:
    """Counts requests being handled, so shutdown can wait for them to finish."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.count += 1
        self._idle.clear()

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True


IN_FLIGHT: web.AppKey[InFlight] = web.AppKey("in_flight", InFlight)


def create_app(config: ListenConfig, recorder: Recorder,
               sinks: list[EventSink] | None = None) -> web.Application:
    """Build the listener app. ``recorder`` must be started by the caller (or ``cleanup_ctx``
    of the returned app, which starts and closes it)."""
    # Bodies are read by the handler with its own limit so oversized ones are recorded too.
    app = web.Application(client_max_size=config.max_body)
    app[IN_FLIGHT] = InFlight()
    handler = _Handler(config, recorder, list(sinks or []), app[IN_FLIGHT])
    app.router.add_route("*", "/{tail:.*}", handler.handle)

    async def recorder_ctx(_: web.Application) -> Any:
        await recorder.start()
        yield
        await recorder.close()

    app.cleanup_ctx.append(recorder_ctx)
    return app


class _Handler:
    def __init__(self, config: ListenConfig, recorder: Recorder, sinks: list[EventSink],
                 in_flight: InFlight) -> None:
        self.in_flight = in_flight
        self.config = config
        self.recorder = recorder
        self.sinks = sinks
        self.verifier = Verifier(config.secret, config.signature_mode, config.hmac_variant)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.in_flight.enter()
        try:
            return await self._handle(request)
        finally:
            self.in_flight.leave()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        received_at = time.time()
        raw = b""
        msg: InboundMessage | None = None
        verification: Verification | None = None
        error: tuple[str, str] | None = None
        status = 200
        content_type = request.headers.get("Content-Type")
        if request.method != "POST":
            status = 405
            error = ("method_not_allowed",
                     f"{request.method} is not accepted: IntelePeer delivers with POST")
        else:
            try:
                raw = await request.read()
            except web.HTTPRequestEntityTooLarge:
                status = 413
                error = ("body_too_large",
                         f"body is larger than the {self.config.max_body}-byte limit "
                         "(--max-body)")
            if error is None:
                try:
                    msg = parse_message(raw, content_type)
                except BodyError as exc:
                    status, error = exc.status, (exc.code, exc.detail)
            if msg is not None:
                verification = self.verifier.verify(msg.refid, msg.message, msg.signature)
                if not verification.ok and not self.config.accept_bad_signature:
                    status = 403
                    error = (f"signature_{verification.verdict.value}",
                             verification.explanation or verification.verdict.value)

        record = _record(request, received_at, raw, content_type, status, msg, verification,
                         error)
        try:
            stored: Recorded | None = await self.recorder.record(record)
        except StateError as exc:
            # Never answer 200 for a message that is not on disk: 503 makes IntelePeer retry.
            stored, status = None, 503
            error = ("store_failed", exc.message)
        event = _event(record, stored, msg, verification, status, error)
        for sink in self.sinks:
            try:
                sink(event)
            except Exception:  # a display problem must not turn a recorded message into a 500
                logger.exception("ipsms: an output of the listener failed")
        return _response(event)


def _record(request: web.Request, received_at: float, raw: bytes, content_type: str | None,
            status: int, msg: InboundMessage | None, verification: Verification | None,
            error: tuple[str, str] | None) -> RequestRecord:
    peer = request.remote
    return RequestRecord(
        received_at=received_at,
        method=request.method,
        path=request.raw_path,  # the request target exactly as sent, query string included
        remote=peer,
        headers=mask_headers(request.headers.items()),
        content_type=content_type,
        body=raw,
        status=status,
        refid=msg.refid if msg else None,
        from_number=msg.from_ if msg else None,
        to_number=msg.to if msg else None,
        message=msg.message if msg else None,
        fields_json=msg.fields_json if msg else None,
        verdict=verification.verdict.value if verification else None,
        verdict_detail=(verification.matched or verification.explanation)
        if verification else None,
        flags=[{"code": f.code, "detail": f.detail} for f in msg.flags] if msg else None,
        error=f"{error[0]}: {error[1]}" if error else None,
    )


def _event(record: RequestRecord, stored: Recorded | None, msg: InboundMessage | None,
           verification: Verification | None, status: int,
           error: tuple[str, str] | None) -> RequestEvent:
    return RequestEvent(
        id=stored.id if stored else None,
        received_at=record.received_at,
        method=record.method,
        path=record.path,
        remote=record.remote,
        content_type=record.content_type,
        size=len(record.body),
        status=status,
        refid=record.refid,
        from_number=record.from_number,
        to_number=record.to_number,
        message=record.message,
        signature=msg.signature if msg else None,
        extra=msg.extra if msg else {},
        attempt=stored.attempt if stored else None,
        verdict=verification.label if verification else None,
        verdict_detail=record.verdict_detail,
        flags=tuple(record.flags or ()),
        error=error[0] if error else None,
        error_detail=error[1] if error else None,
    )


_JSON = {"Content-Type": "application/json; charset=utf-8"}
_JSON_405 = {**_JSON, "Allow": "POST"}


def _response(event: RequestEvent) -> web.Response:
    if event.status == 200:
        body: dict[str, Any] = {"status": "received", "refid": event.refid,
                                "attempt": event.attempt}
        if event.verdict in (Verdict.INVALID.value, Verdict.MISSING.value):
            body["warning"] = f"signature {event.verdict} (accepted: --accept-bad-signature)"
        return web.Response(body=dumps(body).encode(), headers=_JSON)
    headers = _JSON_405 if event.status == 405 else _JSON
    return web.Response(body=dumps({"error": event.error, "detail": event.error_detail}).encode(),
                        status=event.status, headers=headers)
