"""Running the listener: bind, report the bound address, stop cleanly on a signal.

Kept apart from the application (``ipsms.listener``) the way uvicorn keeps ``Server`` apart
from the app: this module owns sockets, signals and lifecycle, nothing about messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from ipsms.errors import BindError
from ipsms.events import ListenStats
from ipsms.listener import IN_FLIGHT, EventSink, ListenConfig, create_app
from ipsms.recorder import Recorder

SHUTDOWN_GRACE = 5.0  # seconds given to requests in flight on shutdown


@dataclass(frozen=True)
class Bound:
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ListenServer:
    """Owns a running listener. ``await start()``, then ``await wait()``/``stop()``."""

    def __init__(self, config: ListenConfig, db_path: Path, host: str, port: int,
                 sinks: list[EventSink] | None = None, stats: ListenStats | None = None
                 ) -> None:
        self.config = config
        self.host = host
        self.port = port
        self.stats = stats if stats is not None else ListenStats()
        self.recorder = Recorder(db_path)
        self.app = create_app(config, self.recorder, [self.stats.observe, *(sinks or [])])
        self._runner: web.AppRunner | None = None
        self._stop = asyncio.Event()
        self.bound: Bound | None = None

    async def start(self) -> Bound:
        self.recorder.open()  # fail on a bad store before binding anything
        self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None,
                                     shutdown_timeout=SHUTDOWN_GRACE)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise _bind_error(self.host, self.port, exc) from None
        sockets = list(self._runner.addresses or [])
        host, port = (sockets[0][0], sockets[0][1]) if sockets else (self.host, self.port)
        self.bound = Bound(str(host), int(port))
        return self.bound

    def request_stop(self) -> None:
        self._stop.set()

    async def wait(self) -> None:
        await self._stop.wait()

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish, flush the store."""
        if self._runner is not None:
            # aiohttp's own graceful shutdown stops reading from open connections, so a request
            # whose body is still arriving would be lost: stop accepting first and wait for the
            # handlers ourselves, then let aiohttp close what is left.
            for site in list(self._runner.sites):
                await site.stop()
            await self.app[IN_FLIGHT].wait_idle(SHUTDOWN_GRACE)
            await self._runner.cleanup()  # runs cleanup_ctx: closes the recorder
            self._runner = None


def _bind_error(host: str, port: int, exc: OSError) -> BindError:
    if exc.errno == errno.EADDRINUSE:
        return BindError(f"port {port} on {host} is already in use",
                         hint="stop the other program, choose another --port, or use --port 0 "
                         "for a free one")
    if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or isinstance(exc, socket.gaierror):
        return BindError(f"cannot listen on host {host!r}: {exc.strerror or exc}",
                         hint="use an address of this machine, e.g. 127.0.0.1 or 0.0.0.0")
    if exc.errno == errno.EACCES:
        return BindError(f"not allowed to listen on port {port}",
                         hint="ports below 1024 need privileges: choose --port 8765")
    return BindError(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


async def run_listener(server: ListenServer,
                       on_ready: Callable[[Bound], Awaitable[None] | None] | None = None
                       ) -> ListenStats:
    """Start ``server``, call ``on_ready``, serve until SIGINT/SIGTERM, stop cleanly."""
    loop = asyncio.get_running_loop()
    bound = await server.start()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, server.request_stop)
            installed.append(sig)
    try:
        if on_ready is not None:
            result = on_ready(bound)
            if asyncio.iscoroutine(result):
                await result
        await server.wait()
    finally:
        try:
            await server.stop()  # signals stay handled here: a second Ctrl-C cannot cut it short
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
    return server.stats

