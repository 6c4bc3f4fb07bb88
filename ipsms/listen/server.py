"""Running the listener: bind, report the bound address, stop cleanly on a signal.

Kept apart from the application (``ipsms.listen.app``) the way uvicorn keeps ``Server`` apart
from the app: this module owns sockets, signals and lifecycle, nothing about messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ipsms.errors import BindError, setting
from ipsms.listen.app import (
    GUARD,
    HANDLER,
    IN_FLIGHT,
    SINKS,
    EventSink,
    ListenConfig,
    create_app,
    emit,
)
from ipsms.listen.events import ListenStats, RejectedEvent
from ipsms.listen.limits import ListenHttp
from ipsms.store.recorder import Recorder
from ipsms.text import printable

SHUTDOWN_GRACE = 5.0  # seconds given to requests in flight on shutdown


@dataclass(frozen=True)
class Bound:
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"


class ListenServer:
    """Owns a running listener. ``await start()``, then ``await wait()``/``stop()``."""

    def __init__(
        self,
        config: ListenConfig,
        db_path: Path,
        host: str,
        port: int,
        sinks: list[EventSink] | None = None,
        stats: ListenStats | None = None,
        notice: Callable[[str], None] | None = None,
    ) -> None:
        """``notice`` receives what the user should be told while it runs (the store's writer
        stalled or was replaced, the store was removed under it)."""
        self.config = config
        self.host = host
        self.port = port
        self.stats = stats if stats is not None else ListenStats()
        self.recorder = Recorder(db_path, notice=notice)
        self.app = create_app(config, self.recorder, [self.stats.observe, *(sinks or [])])
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self._http: ListenHttp | None = None
        self._log_handler = _RejectionLog(self.app[SINKS])
        self._stop = asyncio.Event()
        self.bound: Bound | None = None

    async def start(self) -> Bound:
        self.recorder.open()  # fail on a bad store before binding anything
        guard = self.app[GUARD]
        guard.max_connections = fit_connection_limit(guard.max_connections)
        self._runner = web.AppRunner(
            self.app, handle_signals=False, access_log=None, shutdown_timeout=SHUTDOWN_GRACE
        )
        await self._runner.setup()  # the app's start-up: the store writer, the forwarder
        loop = asyncio.get_running_loop()
        # Every path goes to the one handler: it is served directly, without the app's router
        # (a route lookup and a ``web.Request`` less per message). The runner keeps the app's
        # start-up and clean-up.
        max_body = self.config.max_body
        self._http = ListenHttp(
            self.app[HANDLER],
            access_log=None,
            request_factory=lambda message, payload, protocol, writer, task: web.BaseRequest(
                message, payload, protocol, writer, task, loop, client_max_size=max_body
            ),
        )
        try:
            # Bound here rather than through a TCPSite, so that every connection goes through
            # the guard: a connection cap and a deadline for each request head.
            self._server = await loop.create_server(
                guard.factory(self._http), self.host, self.port, reuse_address=True, backlog=128
            )
        except OSError as exc:
            await self._runner.cleanup()
            raise _bind_error(self.host, self.port, exc) from None
        self._log_handler.install()
        sockname = self._server.sockets[0].getsockname()
        self.bound = Bound(str(sockname[0]), int(sockname[1]))
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
            if self._server is not None:
                self._server.close()
            await self.app[IN_FLIGHT].wait_idle(SHUTDOWN_GRACE)
            if self._http is not None:
                await self._http.shutdown(SHUTDOWN_GRACE)  # closes what is left
            await self._runner.cleanup()  # runs cleanup_ctx: closes the recorder
            self._runner = None
            self._log_handler.remove()


def fit_connection_limit(wanted: int, reserve: int = 64) -> int:
    """The connection cap the process can honour: raises the soft open-files limit towards
    the hard one if needed, and keeps ``reserve`` descriptors for the store and the output,
    so "Too many open files" cannot happen however many clients connect."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = wanted + reserve
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - reserve))


class _RejectionLog(logging.Handler):
    """aiohttp answers a request it cannot parse (a bad header line, too many headers, a
    smuggling attempt) itself, before the listener runs, and logs a traceback. While the
    listener runs, those records become one ``RejectedEvent`` each instead."""

    LOGGER = "aiohttp.server"

    def __init__(self, sinks: list[EventSink]) -> None:
        super().__init__(logging.DEBUG)
        self.sinks = sinks
        self._saved: tuple[int, bool] | None = None

    def install(self) -> None:
        log = logging.getLogger(self.LOGGER)
        self._saved = (log.level, log.propagate)
        log.addHandler(self)
        log.setLevel(logging.DEBUG)  # aiohttp logs a bad first request line at debug level
        log.propagate = False

    def remove(self) -> None:
        if self._saved is not None:
            log = logging.getLogger(self.LOGGER)
            log.removeHandler(self)
            log.setLevel(self._saved[0])
            log.propagate = self._saved[1]
            self._saved = None

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        if record.levelno < logging.ERROR and exc is None:
            return  # aiohttp's own debug chatter
        if isinstance(exc, HttpProcessingError):
            status = exc.code or 400
            reason = f"{type(exc).__name__}: {exc.message}"
        else:
            status = 500
            reason = record.getMessage() + (f": {type(exc).__name__}: {exc}" if exc else "")
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else None
        event = RejectedEvent(
            time.time(),
            str(remote) if remote else None,
            status,
            printable(" ".join(reason.split()))[:300],
        )
        emit(self.sinks, event)


def _bind_error(host: str, port: int, exc: OSError) -> BindError:
    if exc.errno == errno.EADDRINUSE:
        return BindError(
            f"port {port} on {host} is already in use",
            hint=f"stop the other program, choose another {setting('port')}, or use "
            f"{setting('port')} 0 for a free one",
        )
    if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or isinstance(exc, socket.gaierror):
        return BindError(
            f"cannot listen on host {host!r}: {exc.strerror or exc}",
            hint="use an address of this machine, e.g. 127.0.0.1 or 0.0.0.0",
        )
    if exc.errno == errno.EACCES:
        return BindError(
            f"not allowed to listen on port {port}",
            hint=f"ports below 1024 need privileges: choose {setting('port')} 8765",
        )
    return BindError(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def handle_signals(handler: Callable[[], None]) -> list[signal.Signals]:
    """Call ``handler`` on SIGINT, SIGTERM and SIGHUP (SIGHUP too: a closed terminal must
    still close the tunnel and put the webhook back); returns the ones installed (none off
    the main thread), for ``loop.remove_signal_handler``."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in STOP_SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, handler)
            installed.append(sig)
    return installed


async def run_listener(
    server: ListenServer, on_ready: Callable[[Bound], Awaitable[None] | None] | None = None
) -> ListenStats:
    """Start ``server``, call ``on_ready``, serve until ``server.request_stop()``, stop cleanly.
    The stop signals are the caller's (``handle_signals``): the session keeps them handled
    until everything it started has stopped."""
    bound = await server.start()
    try:
        if on_ready is not None:
            result = on_ready(bound)
            if asyncio.iscoroutine(result):
                await result
        await server.wait()
    finally:
        await server.stop()
    return server.stats
