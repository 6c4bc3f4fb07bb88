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
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import cast

from ipsms import defaults
from ipsms.events import RejectedEvent

DEFAULT_READ_TIMEOUT = defaults.READ_TIMEOUT
DEFAULT_MAX_CONNECTIONS = defaults.MAX_CONNECTIONS
SWEEPS = 4  # deadline checks per read timeout

_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class ConnectionGuard:
    def __init__(self, read_timeout: float = DEFAULT_READ_TIMEOUT,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 on_drop: Callable[[RejectedEvent], None] | None = None) -> None:
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self.on_drop = on_drop
        self.open = 0
        self.over_cap = 0  # connections refused because the cap was reached
        self._guarded: dict[asyncio.BaseTransport, _Guarded] = {}
        self._sweeper: asyncio.TimerHandle | None = None

    def factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for ``loop.create_server`` that wraps aiohttp's ``inner``."""
        return lambda: _Guarded(self, inner)

    def connection(self, transport: asyncio.BaseTransport | None) -> _Guarded | None:
        """The guarded connection of a request: the handler sets ``busy`` while it runs (no
        head deadline meanwhile) and calls ``arm()`` when it has answered (the next request
        head has ``read_timeout`` to arrive). None for a connection the guard did not make
        (an app run by a test client)."""
        return self._guarded.get(transport)  # type: ignore[arg-type]

    def _track(self, guarded: _Guarded, transport: asyncio.BaseTransport) -> None:
        self.open += 1
        self._guarded[transport] = guarded
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(
                self.read_timeout / SWEEPS, self._sweep)

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
                self.read_timeout / SWEEPS, self._sweep)

    def _drop(self, guarded: _Guarded, status: int, reason: str) -> None:
        if self.on_drop is not None:
            self.on_drop(RejectedEvent(time.time(), guarded.remote, status, reason))


class _Guarded(asyncio.Protocol):
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
                guard._drop(self, 503, f"{guard.over_cap} connection(s) refused: the limit of "
                            f"{guard.max_connections} open connections was reached")
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
            transport.write(_TIMEOUT)
            self.guard._drop(self, 408, "request head not complete within "
                             f"{self.guard.read_timeout:g} s (the read timeout)")
        transport.close()

    def data_received(self, data: bytes) -> None:
        self._got_data = True
        self._forward(data)

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


def _ignore(data: bytes) -> None:
    """Where a chunk goes on a connection without aiohttp's protocol (refused, or closed)."""
