"""Limits on the listener's connections, for a listener exposed to the internet.

aiohttp bounds what one request may hold (header sizes, ``client_max_size``) but not how long a
client may take to send it, nor how many connections may be open at once. ``ConnectionGuard``
adds both around aiohttp's own protocol, using only the asyncio protocol interface:

- a cap on open connections: one over it is answered 503 and closed at once, so a flood of
  idle sockets can never exhaust the process's file descriptors;
- a deadline for every request head: a connection must deliver a complete request line and
  headers within ``read_timeout`` of opening (or of its previous answer), else it is answered
  408 and closed. The listener bounds the body with the same timeout while it reads it.

Deadlines are checked by one sweep a few times per timeout rather than a timer per request: on
the hot path a request only sets two attributes of its connection. A connection is so cut off
between ``read_timeout`` and ``read_timeout * (1 + 1/SWEEPS)`` after its deadline started.

A connection also bounds the bytes a chunked body takes on the wire while the listener reads
it (``Guarded.limit_body``): aiohttp's parser skips chunk extensions without counting them.

``ListenHttp`` is aiohttp's low-level server with the listener's two changes: a request its
parser refuses (a bad request line or header, a smuggling attempt) is answered in ipsms's JSON
error shape, as every other error is, and a body is never decompressed by the parser (that
would run on the event loop, before the listener could refuse it).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, cast

from aiohttp import StreamReader, web
from aiohttp.http_exceptions import HttpProcessingError

from ipsms import defaults
from ipsms.listen.events import RejectedEvent
from ipsms.text import dumps, one_line

DEFAULT_READ_TIMEOUT = defaults.READ_TIMEOUT
DEFAULT_MAX_CONNECTIONS = defaults.MAX_CONNECTIONS
SWEEPS = 4  # deadline checks per read timeout

JSON_TYPE = "application/json; charset=utf-8"


def json_answer(status: int, error: str, detail: str) -> bytes:
    """A whole HTTP/1.1 error answer in ipsms's shape, for a connection about to close."""
    body = dumps({"error": error, "detail": detail}).encode()
    return (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: {JSON_TYPE}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


_BUSY = json_answer(
    503, "too_many_connections", "the listener has too many open connections; retry later"
)


class ConnectionGuard:
    def __init__(
        self,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        on_drop: Callable[[RejectedEvent], None] | None = None,
    ) -> None:
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self.on_drop = on_drop
        self.open = 0
        self.over_cap = 0  # connections refused because the cap was reached
        self._guarded: dict[asyncio.BaseTransport, Guarded] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self.timeout_answer = json_answer(
            408,
            "read_timeout",
            f"request head not received within {read_timeout:g} s (the read timeout)",
        )

    def factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for ``loop.create_server`` that wraps aiohttp's ``inner``."""
        return lambda: Guarded(self, inner)

    def connection(self, transport: asyncio.BaseTransport | None) -> Guarded | None:
        """The guarded connection of a request: the handler sets ``busy`` while it runs (no
        head deadline meanwhile) and calls ``arm()`` when it has answered (the next request
        head has ``read_timeout`` to arrive). None for a connection the guard did not make
        (an app run by a test client)."""
        return self._guarded.get(transport)  # type: ignore[arg-type]

    def _track(self, guarded: Guarded, transport: asyncio.BaseTransport) -> None:
        self.open += 1
        self._guarded[transport] = guarded
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(
                self.read_timeout / SWEEPS, self._sweep
            )

    def _untrack(self, transport: asyncio.BaseTransport) -> None:
        self.open -= 1
        self._guarded.pop(transport, None)
        if not self._guarded and self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def _sweep(self) -> None:
        now = time.monotonic()
        for guarded in [g for g in self._guarded.values() if not g.busy and g.deadline <= now]:
            guarded.expire()
        self._sweeper = None
        if self._guarded:
            self._sweeper = asyncio.get_running_loop().call_later(
                self.read_timeout / SWEEPS, self._sweep
            )

    def _drop(self, guarded: Guarded, status: int, reason: str) -> None:
        if self.on_drop is not None:
            self.on_drop(RejectedEvent(time.time(), guarded.remote, status, reason))


class Guarded(asyncio.Protocol):
    """Forwards every protocol call to aiohttp's handler; holds the head deadline."""

    def __init__(self, guard: ConnectionGuard, inner: Callable[[], asyncio.Protocol]) -> None:
        self.guard = guard
        self._make_inner = inner
        self.inner: asyncio.Protocol | None = None
        self.transport: asyncio.Transport | None = None
        self.remote: str | None = None
        self.busy = False  # a handler runs: the body has its own timeout
        self.deadline = 0.0  # time.monotonic() by which the next request head must have arrived
        self._got_data = False
        # aiohttp's data_received, bound once: it is called for every chunk a client sends,
        # and uvloop caches the transport's protocol method, so the proxy itself must stay.
        self._forward: Callable[[bytes], None] = _ignore
        self.wire_left: int | None = None  # bytes a chunked body being read may still take
        self.overflowed = False  # it took more: the body was cut off and the connection ends
        self._body: StreamReader | None = None
        self._lost: asyncio.Future[None] | None = None  # set by connection_lost (``linger``)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A TCP server's transport is a stream transport on every loop, but uvloop's does not
        # subclass asyncio.Transport, so no isinstance check here.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.remote = str(peer[0]) if isinstance(peer, tuple) and peer else None
        guard = self.guard
        if guard.open >= guard.max_connections:
            guard.over_cap += 1
            transport.write(_BUSY)
            transport.close()
            if guard.over_cap == 1 or guard.over_cap % 1000 == 0:
                guard._drop(
                    self,
                    503,
                    f"{guard.over_cap} connection(s) refused: the limit of "
                    f"{guard.max_connections} open connections was reached",
                )
            return
        self.arm()
        guard._track(self, transport)
        self.inner = inner = self._make_inner()
        self._forward = inner.data_received
        inner.connection_made(transport)

    def arm(self) -> None:
        self.busy = False
        self._got_data = False
        self.deadline = time.monotonic() + self.guard.read_timeout

    def expire(self) -> None:
        transport = self.transport
        if transport is None:
            return
        if transport.is_closing() or transport.get_write_buffer_size():
            # A client that does not read what it was sent: close() would wait for it for
            # ever and keep the connection's slot; abort() frees it now.
            transport.abort()
            return
        if self._got_data:  # a request began but its head did not arrive in time
            transport.write(self.guard.timeout_answer)
            self.guard._drop(
                self,
                408,
                "request head not complete within "
                f"{self.guard.read_timeout:g} s (the read timeout)",
            )
        transport.close()

    def limit_body(self, budget: int | None, body: StreamReader | None = None) -> None:
        """Count what arrives against ``budget`` bytes while ``body`` (chunked) is read; None
        stops counting. Past the budget the body ends where it is, ``overflowed`` says so, and
        nothing more of the connection is read: its answer must close it."""
        self.wire_left = budget
        self._body = body
        if budget is not None:
            self.overflowed = False

    def data_received(self, data: bytes) -> None:
        self._got_data = True
        left = self.wire_left
        if left is not None:
            left -= len(data)
            self.wire_left = left
            if left < 0:
                self._overflow()
                return
        self._forward(data)

    def _overflow(self) -> None:
        self.overflowed = True
        self.wire_left = None
        if self._body is not None:
            self.cut_body(self._body)  # the handler's read returns now; it answers 413
            self._body = None

    def cut_body(self, body: StreamReader) -> None:
        """End ``body`` where it is, and read nothing more of this connection for aiohttp
        (what still arrives is dropped): the handler answers, and the connection closes then
        instead of aiohttp reading the rest of the body for up to 10 s. For a body that will
        not be read: too large, or never invited (``Expect: 100-continue`` refused)."""
        self._forward = _ignore
        if not body.is_eof():
            body.feed_eof()

    async def linger(self, seconds: float) -> None:
        """Once the answer to an overflowed body is written: end the sending side and drop
        what the client still sends, until it closes or ``seconds`` pass. Closing with its
        bytes unread would reset the connection, and the client could lose the answer."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if transport.can_write_eof():
            transport.write_eof()
        self._lost = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._lost), seconds)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.inner is not None:
            self.guard._untrack(self.transport)  # type: ignore[arg-type]
            self.inner.connection_lost(exc)
            self.inner = None
            self._forward = _ignore
        self.transport = None
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)


def _ignore(data: bytes) -> None:
    """Where a chunk goes on a connection without aiohttp's protocol (refused, or closed)."""


class ListenHttp(web.Server):
    """aiohttp's low-level server for the listener: the parser never decompresses a body (a
    ``Content-Encoding`` is refused by the listener, 415, before any of it is read), and what
    the parser refuses is answered in JSON (``JsonErrors``)."""

    def __init__(self, handler: Any, **kwargs: Any) -> None:
        kwargs["auto_decompress"] = False
        super().__init__(handler, **kwargs)
        # What web.Server passes to each connection's protocol (the rest is its own).
        self._protocol_args = {
            k: v
            for k, v in kwargs.items()
            if k not in ("request_factory", "handler_cancellation", "loop")
        }

    def __call__(self) -> web.RequestHandler:
        return JsonErrors(self, loop=asyncio.get_running_loop(), **self._protocol_args)


class JsonErrors(web.RequestHandler):
    """aiohttp's protocol, answering what its parser refuses as ``{"error", "detail"}``
    (aiohttp answers plain text). aiohttp still logs it, which the listener shows as one
    ``rejected`` event (``ipsms.listen.server``)."""

    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)  # logs; raises once answering
        if status == 400:
            error = "bad_request"
            text = message or (exc.message if isinstance(exc, HttpProcessingError) else "")
            detail = one_line(" ".join(str(text).split()), 300) or "the request cannot be parsed"
        else:  # not from the parser: the listener's own handler answers its errors itself
            error = "internal_error"
            detail = "retry later"
        answer = web.Response(
            status=status,
            body=dumps({"error": error, "detail": detail}).encode(),
            headers={"Content-Type": JSON_TYPE},
        )
        answer.force_close()
        return answer
