"""The listener: an aiohttp application factory that receives IntelePeer webhooks.

``create_app`` returns the application without running it (tests drive it with
``aiohttp_client``; ``ipsms.listen.server`` binds it). Every request, accepted or not, is parsed,
verified, recorded (committed before the answer) and emitted as one ``ipsms.request.Request``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from json.encoder import encode_basestring
from typing import Any

import aiohttp
import aiohttp.http_exceptions
from aiohttp import web

from ipsms import defaults
from ipsms.errors import StateError
from ipsms.inbound import BodyError, InboundMessage, content_coding_problem, parse_message
from ipsms.listen.answers import JSON_HEADERS, JSON_TYPE, WholeResponse, fits
from ipsms.listen.events import ListenEvent
from ipsms.listen.faults import FaultInjector, Faults
from ipsms.listen.forward import Forwarder, Relayed, forwarded_for, relayed_headers
from ipsms.listen.limits import (
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_READ_TIMEOUT,
    ConnectionGuard,
    Guarded,
)
from ipsms.redact import mask_headers
from ipsms.request import Request
from ipsms.signature import DEFAULT_VARIANT, Mode, Variant, Verdict, Verification, Verifier
from ipsms.store import REJECTED_BODY_KEEP
from ipsms.store.recorder import Recorded, Recorder
from ipsms.text import dumps, printable

logger = logging.getLogger("ipsms.listen.app")

DEFAULT_HOST = defaults.LISTEN_HOST
DEFAULT_PORT = defaults.LISTEN_PORT
DEFAULT_MAX_BODY = defaults.MAX_BODY

EventSink = Callable[[ListenEvent], None]


@dataclass(frozen=True)
class ListenConfig:
    secret: str | None = None
    signature_mode: Mode = Mode.AUTO
    hmac_variant: Variant = DEFAULT_VARIANT
    max_body: int = DEFAULT_MAX_BODY
    accept_bad_signature: bool = False
    read_timeout: float = DEFAULT_READ_TIMEOUT  # seconds for a request head, and for its body
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    faults: Faults = field(default_factory=Faults)  # answer like a failing app
    forward_to: str | None = None  # relay accepted messages to this app, answer with its reply
    forward_timeout: float = defaults.FORWARD_TIMEOUT
    basic_auth: tuple[str, str] | None = None  # (user, password) every request must carry
    path_prefix: str | None = None  # "/<random>": requests to any other path get 404


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
GUARD: web.AppKey[ConnectionGuard] = web.AppKey("guard", ConnectionGuard)
SINKS: web.AppKey[list[EventSink]] = web.AppKey("sinks", list)
# The request handler itself: ``ListenServer`` serves it without the app's router (every path
# goes to it anyway), which saves a route lookup and a Request per message.
HANDLER: web.AppKey[Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]] = web.AppKey(
    "handler"
)


def create_app(
    config: ListenConfig, recorder: Recorder, sinks: list[EventSink] | None = None
) -> web.Application:
    """Build the listener app. ``recorder`` must be started by the caller (or ``cleanup_ctx``
    of the returned app, which starts and closes it)."""
    # Bodies are read by the handler with its own limit so oversized ones are recorded too,
    # and never decompressed by aiohttp's parser (see ``ipsms.listen.limits.ListenHttp``, what
    # ``ipsms.listen.server`` serves this app's handler with).
    app = web.Application(client_max_size=config.max_body, handler_args={"auto_decompress": False})
    app[IN_FLIGHT] = InFlight()
    sinks = list(sinks or [])
    app[SINKS] = sinks
    app[GUARD] = ConnectionGuard(
        config.read_timeout, config.max_connections, on_drop=lambda event: emit(sinks, event)
    )
    forwarder = Forwarder(config.forward_to, config.forward_timeout) if config.forward_to else None
    handler = _Handler(config, recorder, sinks, app[IN_FLIGHT], app[GUARD], forwarder)
    app.router.add_route("*", "/{tail:.*}", handler.handle)
    app[HANDLER] = handler.handle

    if forwarder is not None:

        async def forwarder_ctx(_: web.Application) -> Any:
            await forwarder.start()
            yield
            await forwarder.close()

        app.cleanup_ctx.append(forwarder_ctx)

    async def recorder_ctx(_: web.Application) -> Any:
        await recorder.start()
        yield
        await recorder.close()

    app.cleanup_ctx.append(recorder_ctx)
    return app


def emit(sinks: list[EventSink], event: ListenEvent) -> None:
    """Give ``event`` to every output; one that fails is logged and never stops the others
    (a display problem must not turn a recorded message into a 500)."""
    for sink in sinks:
        try:
            sink(event)
        except Exception:
            logger.error(
                "ipsms: an output of the listener failed",
                exc_info=logger.isEnabledFor(logging.DEBUG),
            )


class _Handler:
    def __init__(
        self,
        config: ListenConfig,
        recorder: Recorder,
        sinks: list[EventSink],
        in_flight: InFlight,
        guard: ConnectionGuard,
        forwarder: Forwarder | None = None,
    ) -> None:
        self.forwarder = forwarder
        self.in_flight = in_flight
        self.guard = guard
        self.config = config
        self.recorder = recorder
        self.sinks = sinks
        self.verifier = Verifier(config.secret, config.signature_mode, config.hmac_variant)
        self.junk = JunkBudget()
        self.faults = FaultInjector(config.faults) if config.faults.active else None
        self.authorization = (
            None
            if config.basic_auth is None
            else ("Basic " + base64.b64encode(":".join(config.basic_auth).encode()).decode())
        )

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        self.in_flight.enter()
        # The connection's head deadline is off while its handler runs (hot path: inline).
        guarded = self.guard.connection(request.transport)
        if guarded is not None:
            guarded.busy = True
        try:
            return await self._handle(request, guarded)
        except Exception as exc:  # a bug: say so in one line, and let IntelePeer retry
            logger.error(
                "ipsms: internal error while handling %s %s: %s: %s",
                request.method,
                printable(request.raw_path),
                type(exc).__name__,
                exc,
                exc_info=logger.isEnabledFor(logging.DEBUG),
            )
            return web.Response(
                body=dumps({"error": "internal_error", "detail": "retry later"}).encode(),
                status=503,
                headers=_JSON,
            )
        finally:
            if guarded is not None:
                guarded.arm()  # the next request head has --read-timeout to arrive
            self.in_flight.leave()

    def _refused(self, request: web.BaseRequest) -> tuple[int, tuple[str, str]] | None:
        """404 off the random path, 401 without the basic-auth credentials (checked in
        constant time), or None."""
        prefix = self.config.path_prefix
        if prefix is not None and not (
            request.path == prefix or request.path.startswith(prefix + "/")
        ):
            return 404, ("wrong_path", "nothing is served at this path")
        if self.authorization is not None and not hmac.compare_digest(
            request.headers.get("Authorization", "").encode(), self.authorization.encode()
        ):
            return 401, ("unauthorized", "basic-auth credentials missing or wrong")
        return None

    def _too_large(self) -> tuple[str, str]:
        return (
            "body_too_large",
            f"body is larger than the listener's limit of {self.config.max_body} bytes",
        )

    def _from_head(
        self,
        request: web.BaseRequest,
        waits: bool,
        expect: str | None,
        encoding: str | None,
        transfer: str | None,
    ) -> tuple[int, tuple[str, str]] | None:
        """What the request's head alone refuses, before any of its body is read (or, when
        the client ``waits`` for ``100 Continue``, invited): an expectation other than
        ``100-continue``, a transfer coding other than chunked (aiohttp's parser removes the
        chunking and nothing else), a content coding, a declared body over --max-body."""
        if waits and expect is not None and expect.lower() != "100-continue":
            return 417, (
                "expectation_failed",
                f"Expect {printable(expect)[:100]!r} is not supported: send "
                "Expect: 100-continue, or no Expect header",
            )
        if transfer is not None and transfer.strip().lower() != "chunked":
            return (
                501,
                (
                    "unsupported_transfer_encoding",  # RFC 9112 section 6.1
                    f"Transfer-Encoding {printable(transfer)[:100]!r} is not supported: "
                    "send the body with a Content-Length, or chunked alone",
                ),
            )
        if encoding is not None:
            problem = content_coding_problem(request.headers.getall("Content-Encoding"))
            if problem is not None:
                return problem.status, (problem.code, problem.detail)
        if waits and (request.content_length or 0) > self.config.max_body:
            return 413, self._too_large()
        return None

    async def _read(
        self, request: web.BaseRequest, guarded: Guarded | None = None, transfer: str | None = None
    ) -> tuple[bytes, int | None, tuple[str, str] | None]:
        """A body still arriving: read within --read-timeout. Returns the body, the size a
        413 announced, and the error that stopped the read. A chunked body is also bounded
        on the wire: its chunk-size lines (extensions and all) count, see ``wire_budget``."""
        counted = guarded if transfer is not None else None  # a chunked body
        if counted is not None:
            counted.limit_body(self.wire_budget, request.content)
        try:
            async with asyncio.timeout(self.config.read_timeout):
                raw = await request.read()
            if counted is not None and counted.overflowed:  # what came is kept, as a start
                return (
                    raw,
                    None,
                    (
                        "body_too_large",
                        (
                            f"chunked body took more than {self.wire_budget} bytes on the wire "
                            "(chunk sizes and their extensions count): over twice the listener's "
                            f"limit of {self.config.max_body} bytes"
                        ),
                    ),
                )
            return raw, None, None
        except web.HTTPRequestEntityTooLarge:
            return b"", request.content_length, self._too_large()
        except TimeoutError:
            return (
                b"",
                request.content_length,
                (
                    "read_timeout",
                    f"body not received within {self.config.read_timeout:g} s (the read timeout)",
                ),
            )
        except (
            ConnectionError,
            web.HTTPException,
            aiohttp.ClientError,
            aiohttp.http_exceptions.HttpProcessingError,
        ) as exc:
            return (
                b"",
                request.content_length,
                ("body_unreadable", f"body could not be read: {type(exc).__name__} {exc}".strip()),
            )
        finally:
            if counted is not None:
                counted.limit_body(None)

    @property
    def wire_budget(self) -> int:
        """Bytes a chunked body may take on the wire: the body itself is bounded by --max-body
        once it is decoded, but the chunk-size lines around it, extensions included, are not
        (aiohttp's parser skips them without counting). Twice the limit leaves room for any
        sane framing."""
        return 2 * self.config.max_body + WIRE_SLACK

    async def _handle(
        self, request: web.BaseRequest, guarded: Guarded | None = None
    ) -> web.StreamResponse:
        received_at = time.time()
        raw = b""
        size: int | None = None
        msg: InboundMessage | None = None
        verification: Verification | None = None
        error: tuple[str, str] | None = None
        status = 200
        content_type = request.headers.get("Content-Type")
        expect = request.headers.get("Expect")
        # A client that sent Expect waits for "100 Continue" before its body (HTTP/1.1; 1.0
        # has no such answer): a request refused from its head alone is answered without
        # inviting its body, and its connection closed.
        waiting = expect is not None and request.version == aiohttp.HttpVersion11
        refused = self._refused(request)
        if refused is not None:
            status, error = refused
        elif request.method != "POST":
            status = 405
            error = (
                "method_not_allowed",
                f"{request.method} is not accepted: IntelePeer delivers with POST",
            )
        else:
            encoding = request.headers.get("Content-Encoding")
            transfer = request.headers.get("Transfer-Encoding")
            early = (
                None
                if expect is None and encoding is None and transfer is None
                else self._from_head(request, waiting, expect, encoding, transfer)
            )
            if early is not None:
                status, error = early
                if not waiting:  # the body is on its way anyway: read it, so it is recorded
                    raw, size, _ = await self._read(request, guarded, transfer)
                elif status == 413:
                    size = request.content_length  # the size the head announced
            else:
                if waiting:
                    await _continue(request)
                    waiting = False
                if request.content.is_eof():  # the usual case: the body came with the head
                    try:
                        raw = await request.read()
                    except web.HTTPRequestEntityTooLarge:
                        size, error = request.content_length, self._too_large()
                else:
                    raw, size, error = await self._read(request, guarded, transfer)
                if error is not None:
                    status = _READ_STATUS[error[0]]
                else:
                    try:
                        msg = parse_message(raw, content_type)
                    except BodyError as exc:
                        status, error = exc.status, (exc.code, exc.detail)
            if msg is not None:
                verification = self.verifier.verify(
                    msg.refid, msg.message, msg.signature, msg.ambiguity
                )
                if not verification.ok and not self.config.accept_bad_signature:
                    status = 403
                    error = (
                        f"signature_{verification.verdict.value}",
                        verification.explanation or verification.verdict.value,
                    )

        injected = False
        if status == 200 and self.faults is not None:
            override = self.faults.override(msg.refid if msg else None)
            if override is not None:
                status, error, injected = override[0], ("fault_injected", override[1]), True
        relayed: Relayed | None = None
        if status == 200 and self.forwarder is not None:
            relayed = await self._forward(request, raw)
            status = relayed.status
            if relayed.error is not None:
                error = (relayed.error, relayed.detail or relayed.error)
        # A message answered 200, with an injected fault or with the app's answer is a real
        # message: kept whole and always recorded. Anything else is junk, on a budget.
        message = status == 200 or injected or relayed is not None
        keep = len(raw) if message else self.junk.allow(len(raw))
        record = _record(
            request,
            received_at,
            raw,
            keep,
            size,
            content_type,
            status,
            msg,
            verification,
            error,
            self.config.secret,
        )
        if relayed is not None:
            record.forward = relayed.to_dict(self.forwarder.url)  # type: ignore[union-attr]
        if not message:
            _trim_rejected(record)
        if message or self.junk.row():
            try:
                stored: Recorded = await self.recorder.record(record)
            except StateError as exc:
                # Never answer 200 for a message that is not on disk: 503 makes IntelePeer
                # retry. A copy, so the record answered 503 is a new event of its own.
                record = replace(record, status=503, error="store_failed", error_detail=exc.message)
            else:
                record.id = stored.id
                record.attempt = stored.attempt
                if stored.flags is not None:  # its refid's history added flags
                    record.flags = stored.flags
        if self.faults is not None and self.faults.faults.delay:
            await asyncio.sleep(self.faults.faults.delay)
        emit(self.sinks, record)
        if relayed is not None and record.error != "store_failed":
            return relayed.response()
        answer = _response(record, request)
        if waiting or (guarded is not None and guarded.overflowed):
            answer.force_close()  # its body was not read whole: the connection cannot go on
            if waiting and guarded is not None:
                guarded.cut_body(request.content)  # it never comes: close once answered
        if guarded is not None and guarded.overflowed:
            with contextlib.suppress(ConnectionError):  # a client gone is no error of ours
                await answer.prepare(request)
                await answer.write_eof()
                await guarded.linger(min(LINGER, self.config.read_timeout))
        return answer

    async def _forward(self, request: web.BaseRequest, raw: bytes) -> Relayed:
        assert self.forwarder is not None
        headers = relayed_headers(request.headers.items())
        headers += forwarded_for(request.headers, request.remote, request.host, request.scheme)
        return await self.forwarder.relay(request.method, headers, raw)


async def _continue(request: web.BaseRequest) -> None:
    """Invite the body of a request sent with ``Expect: 100-continue`` (the listener is served
    without aiohttp's router, which would do it), once nothing in its head refuses it."""
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0  # the answer's size counts from here


_READ_STATUS = {"body_too_large": 413, "read_timeout": 408, "body_unreadable": 400}
WIRE_SLACK = 64 * 1024  # bytes of chunk framing a chunked body may take besides twice its limit
LINGER = 1.0  # seconds a cut-off body's client has to read its 413 before the connection ends


class _Bucket:
    """A token bucket: ``rate`` tokens a second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last = time.monotonic()

    def _refill(self) -> float:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        return self._tokens

    def take(self, wanted: float) -> float:
        """Take up to ``wanted`` tokens; returns how many were taken."""
        taken = min(wanted, self._refill())
        self._tokens -= taken
        return taken

    def take_one(self) -> bool:
        """Take a whole token if there is one."""
        if self._refill() < 1:
            return False
        self._tokens -= 1
        return True


class JunkBudget:
    """What is kept of requests answered anything but 200, so junk posted at a public listener
    cannot fill the disk fast. Each body keeps at most its first ``REJECTED_BODY_KEEP`` bytes
    (with its full size and SHA-256); past the first 1 KiB of each, they share ``rate`` bytes a
    second after a ``burst``. Rejected requests are recorded at most ``rows`` a second after
    ``row_burst``; the others are still answered and shown, and counted (``unrecorded``)."""

    ALWAYS = 1024

    def __init__(
        self,
        rate: float = 1024 * 1024,
        burst: float = 16 * 1024 * 1024,
        rows: float = 200,
        row_burst: float = 2000,
    ) -> None:
        self._bytes = _Bucket(rate, burst)
        self._rows = _Bucket(rows, row_burst)
        self.unrecorded = 0

    def row(self) -> bool:
        """Whether this rejected request may be recorded."""
        if self._rows.take_one():
            return True
        self.unrecorded += 1
        return False

    def allow(self, size: int) -> int:
        wanted = min(size, REJECTED_BODY_KEEP)
        if wanted <= self.ALWAYS:
            return wanted
        return self.ALWAYS + int(self._bytes.take(wanted - self.ALWAYS))


def _record(
    request: web.BaseRequest,
    received_at: float,
    raw: bytes,
    keep: int,
    size: int | None,
    content_type: str | None,
    status: int,
    msg: InboundMessage | None,
    verification: Verification | None,
    error: tuple[str, str] | None,
    secret: str | None = None,
) -> Request:
    peer = request.remote
    digest = None
    if keep < len(raw):  # a rejected body: keep its start, its size and its hash
        size, digest = len(raw), hashlib.sha256(raw).hexdigest()
        raw = raw[:keep]
    # Positional, in the field order of ``Request``: cheaper than keywords, and paid once per
    # request (ipsms/request.py lists the fields with their meaning).
    return Request(
        received_at,
        request.method,
        request.raw_path,  # path: the request target exactly as sent, query string included
        peer,
        mask_headers(request.headers.items(), secret)
        if status == 200
        else _rejected_headers(request, secret),
        content_type,
        raw,
        status,
        msg.refid if msg else None,
        msg.from_ if msg else None,
        msg.to if msg else None,
        msg.message if msg else None,
        msg.fields if msg else None,
        msg.fields_json if msg else None,
        verification.verdict.value if verification else None,
        (verification.matched or verification.explanation) if verification else None,
        ([{"code": f.code, "detail": f.detail} for f in msg.flags] if msg.flags else [])
        if msg
        else None,
        error[0] if error else None,
        error[1] if error else None,
        size,  # body_size
        digest,  # body_sha256
    )


REJECTED_HEADERS_KEEP = 4 * 1024  # characters of header names and values kept when not 200
REJECTED_TEXT_KEEP = 512  # characters kept of each text field of a rejected request
REJECTED_FIELDS_KEEP = 2048  # characters of its fields JSON kept whole; longer is rebuilt small


def _cut(text: str | None, limit: int = REJECTED_TEXT_KEEP) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return f"{text[:limit]}…(cut: {len(text)} characters)"


def _trim_rejected(record: Request) -> None:
    """Bound every text column of a rejected request (its body is bounded by the budget): a
    1 MB message with a wrong signature must not cost 2 MB of disk."""
    record.path = _cut(record.path) or ""
    record.refid = _cut(record.refid, 128)
    record.from_number = _cut(record.from_number, 128)
    record.to_number = _cut(record.to_number, 128)
    record.message = _cut(record.message)
    record.error_detail = _cut(record.error_detail)
    if record.fields_json is not None and len(record.fields_json) > REJECTED_FIELDS_KEEP:
        # Cutting JSON would break it: keep the known fields, cut, and say so.
        record.fields = {
            "refid": record.refid,
            "from": record.from_number,
            "to": record.to_number,
            "message": record.message,
            "ipsms_cut": f"fields of {len(record.fields_json)} characters not kept",
        }
        record.fields_json = dumps(record.fields)
    if record.flags:
        record.flags = [
            {"code": f["code"][:64], "detail": _cut(f["detail"], 300) or ""}
            for f in record.flags[:10]
        ]


def _rejected_headers(request: web.BaseRequest, secret: str | None) -> list[tuple[str, str]]:
    headers = mask_headers(request.headers.items(), secret)
    kept: list[tuple[str, str]] = []
    budget = REJECTED_HEADERS_KEEP
    for name, value in headers:
        budget -= len(name) + len(value)
        if budget < 0:
            kept.append(("X-Ipsms-Cut", f"{len(headers) - len(kept)} more headers not kept"))
            break
        kept.append((name, value))
    return kept


_JSON = {"Content-Type": JSON_TYPE}
_WARNED = (Verdict.INVALID.value, Verdict.MISSING.value)  # a 200 that says the signature failed
_JSON_405 = {**_JSON, "Allow": "POST"}
_JSON_415_CODING = {**_JSON, "Accept-Encoding": "identity"}  # RFC 9110 15.5.16
_JSON_401 = {**_JSON, "WWW-Authenticate": 'Basic realm="ipsms", charset="UTF-8"'}


def _received(refid: str | None, attempt: int | None) -> bytes | None:
    """``dumps({"status": "received", "refid": ..., "attempt": ...})`` of the common case (an
    ASCII refid nothing needs escaping in), joined from prebuilt parts: the hot path's answer.
    None for anything else."""
    if refid is None or not refid.isascii() or "\x7f" in refid:
        return None
    return b"".join(
        (
            b'{"status":"received","refid":',
            encode_basestring(refid).encode(),
            b',"attempt":',
            b"null" if attempt is None else b"%d" % attempt,
            b"}",
        )
    )


def _response(event: Request, request: web.BaseRequest) -> web.StreamResponse:
    if event.status == 200:
        if event.verdict not in _WARNED:
            answer = _received(event.refid, event.attempt)
            if answer is not None:
                if fits(request):  # the hot path's answer, in one write
                    return WholeResponse(answer)
                return web.Response(body=answer, headers=JSON_HEADERS)
        body: dict[str, Any] = {
            "status": "received",
            "refid": event.refid,
            "attempt": event.attempt,
        }
        if event.verdict in _WARNED:
            body["warning"] = (
                f"signature {event.verdict} (accepted: the listener accepts bad signatures)"
            )
        return web.Response(body=dumps(body).encode(), headers=_JSON)
    headers = (
        _JSON_405
        if event.status == 405
        else _JSON_401
        if event.status == 401 and event.error == "unauthorized"
        else _JSON_415_CODING
        if event.error == "unsupported_content_encoding"
        else _JSON
    )
    detail = event.error_detail
    if event.status == 403 and event.verdict is not None:
        # The poster learns only that the signature failed: the secret's length, fingerprint
        # or "matches except for letter case" would make the answer an oracle. The
        # explanation goes to the local user (table, NDJSON, store, `ipsms verify`).
        detail = f"signature {event.verdict}"
    elif event.status == 503 and event.error == "store_failed":
        detail = "the message could not be recorded; retry later"
    if event.status in (204, 304):  # no body allowed
        return web.Response(status=event.status)
    return web.Response(
        body=dumps({"error": event.error, "detail": detail}).encode(),
        status=event.status,
        headers=headers,
    )
