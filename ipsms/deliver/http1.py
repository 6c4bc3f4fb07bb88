"""A small HTTP/1.1 client for plain ``http://`` deliveries (load mode's hot path).

aiohttp's client costs more CPU per request than the server it is measuring when both share
a machine (bench/bench_simulate.py: load mode against a bare aiohttp client and hey). This one
does only what a delivery needs: POST prebuilt bytes on a kept-alive connection (one request in
flight per connection, no pipelining), parse the status line and headers, and read the body
(``Content-Length``, chunked, or up to the close) keeping its first bytes. The request bytes
are exactly those aiohttp sends for a delivery (same header order and values), so the app sees
no difference; ``https://`` stays on aiohttp.

Failures are exceptions the delivery engine turns into attempt results: ``ConnectFailed``,
``Disconnected`` (``stale`` when a reused connection closed before any byte of an answer, the
engine's rule for a write into a connection the server had already closed), ``InvalidAnswer``
and ``TimeoutError``.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import ipaddress
import os
import socket
import zlib
from dataclasses import dataclass
from typing import cast

from yarl import URL

MAX_HEAD = 64 * 1024  # a status line and headers longer than this are an invalid answer
MAX_TARGETS = 256  # URLs whose request parts are kept (load mode uses one)
KEEPALIVE = 15.0  # seconds an idle connection is kept (aiohttp's default keepalive_timeout)
# How a connection the server closed fails a request written to it (as in ipsms.deliver.engine).
RESET_ERRNOS = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED})

# What aiohttp says about a body cut short, so both clients word it the same.
_SHORT_BODY = (
    "Response payload is not completed: <ContentLengthError: 400, message='Not "
    "enough data to satisfy content length header (received {} of {} bytes).'>"
)
_SHORT_CHUNKED = (
    "Response payload is not completed: <TransferEncodingError: 400, "
    "message='Not enough data to satisfy transfer length header.'>"
)
NOT_ANSWERED = "the server closed the connection without answering"


class ConnectFailed(Exception):
    """No connection: ``detail`` reads like ``connection refused (127.0.0.1:8851)``."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Disconnected(Exception):
    """The connection ended before the whole answer. ``stale``: it was a reused connection
    that closed (or reset) before any byte of an answer, so the server never read the
    request."""

    def __init__(self, detail: str, stale: bool) -> None:
        super().__init__(detail)
        self.detail = detail
        self.stale = stale


class InvalidAnswer(Exception):
    """Bytes that are not an HTTP/1.x answer (or a header block over ``MAX_HEAD``)."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    preview: bytes  # the first ``preview`` bytes of the body, decoded if gzip/deflate


@dataclass(frozen=True, slots=True)
class Target:
    """A URL's connection key and the fixed parts of its request, built once per URL."""

    host: str  # to connect to (no brackets around IPv6)
    port: int
    head: bytes  # request line, Host, User-Agent
    auth: bytes  # the Authorization line, or b""
    literal: bool  # host is an IP address: no name lookup

    def request(self, body: bytes, content_type: bytes | None, close: bool) -> bytes:
        """The request, header for header what aiohttp writes for ``session.post``."""
        return b"".join(
            (
                self.head,
                b"Content-Type: " + content_type + b"\r\n" if content_type is not None else b"",
                b"Accept: */*\r\nAccept-Encoding: gzip, deflate\r\n",
                self.auth,
                b"Content-Length: %d\r\n" % len(body),
                b"Connection: close\r\n\r\n" if close else b"\r\n",
                body,
            )
        )


def target(url: str, user_agent: str) -> Target | None:
    """The ``Target`` of an ``http://`` URL; None for any other (``https://`` stays on aiohttp).

    The request line and Host come from yarl, as in aiohttp, so both normalise the URL alike.
    """
    parsed = URL(url)
    if parsed.scheme != "http" or parsed.raw_host is None or parsed.port is None:
        return None
    host_port = parsed.host_port_subcomponent
    head = (
        f"POST {parsed.raw_path_qs} HTTP/1.1\r\nHost: {host_port}\r\nUser-Agent: {user_agent}\r\n"
    ).encode()
    auth = b""
    if parsed.user is not None:
        token = f"{parsed.user}:{parsed.password or ''}".encode("latin1")
        auth = b"Authorization: Basic " + base64.b64encode(token) + b"\r\n"
    try:
        ipaddress.ip_address(parsed.raw_host)
        literal = True
    except ValueError:
        literal = False
    return Target(parsed.raw_host, parsed.port, head, auth, literal)


# Parser states of a connection.
_IDLE, _HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _TO_EOF = range(8)


class _Connection(asyncio.Protocol):
    """One socket: at most one request in flight; parses the answer as bytes arrive."""

    def __init__(self, loop: asyncio.AbstractEventLoop, registry: set[_Connection]) -> None:
        self.loop = loop
        self.registry = registry  # the client's open connections, closed with it
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False  # it carried a request before the one in flight
        self.waiter: asyncio.Future[Answer] | None = None
        self.pool: dict[_Connection, None] | None = None  # the idle set it waits in
        self.idle_since = 0.0
        self._reset_request(0)

    def _reset_request(self, preview: int) -> None:
        self.state = _IDLE
        self.buf = b""
        self.got_bytes = False  # any byte of an answer
        self.status = 0
        self.keep_alive = True
        self.remaining = 0
        self.length = 0  # Content-Length of the body being read
        self.preview_limit = preview
        self.preview = b""
        self.drained = 0
        self.drain_limit = 0
        self.decoder: zlib._Decompress | None = None

    # -- asyncio callbacks -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.registry.add(self)

    def data_received(self, data: bytes) -> None:
        if self.state == _IDLE:  # nothing asked: the connection cannot be trusted any more
            self._drop()
            return
        self.got_bytes = True
        try:
            self._feed(data)
        except InvalidAnswer as exc:
            self._fail(exc)

    def eof_received(self) -> bool:
        if self.state == _IDLE:
            self.closed = True  # closed while idle: never handed out again
        return False  # close our side too; connection_lost finishes or fails the answer

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.registry.discard(self)
        if self.pool is not None:
            self.pool.pop(self, None)
            self.pool = None
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self.state == _TO_EOF:
            self._finish()
            return
        if self.state == _LENGTH:
            detail = _SHORT_BODY.format(self.length - self.remaining, self.length)
        elif self.state in (_CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER):
            detail = _SHORT_CHUNKED
        else:
            detail = ""
        stale = False
        if detail:  # in the body: the payload message, and what ended the connection
            if exc is not None:
                detail = f"{detail}. {exc!r}"
        elif isinstance(exc, OSError):
            detail = str(exc) or type(exc).__name__
            stale = self.reused and not self.got_bytes and exc.errno in RESET_ERRNOS
        else:
            detail, stale = NOT_ANSWERED, self.reused and not self.got_bytes
        waiter.set_exception(Disconnected(detail, stale))

    # -- requests ----------------------------------------------------------------------------

    def send(self, request: bytes, preview: int, drain_limit: int) -> asyncio.Future[Answer]:
        self._reset_request(preview)
        self.drain_limit = drain_limit
        self.state = _HEAD
        self.waiter = waiter = self.loop.create_future()
        assert self.transport is not None
        self.transport.write(request)
        return waiter

    def close(self) -> None:
        """Close an idle connection (after its answer) cleanly."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.state = _IDLE
        self.waiter = None
        self._drop()

    def _drop(self) -> None:
        self.closed = True
        if self.pool is not None:
            self.pool.pop(self, None)
            self.pool = None
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, exc: Exception) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.state = _IDLE
        self._drop()

    def _finish(self) -> None:
        waiter = self.waiter
        self.state = _IDLE
        if self.decoder is not None:
            self.preview = self.preview[: self.preview_limit]
        if waiter is not None and not waiter.done():
            waiter.set_result(Answer(self.status, self.preview))

    # -- parsing -----------------------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        self.buf = b""
        while buf:
            state = self.state
            if state == _HEAD:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD:
                        raise InvalidAnswer(
                            f"the answer's status line and headers are over {MAX_HEAD} bytes"
                        )
                    self.buf = buf
                    return
                if end > MAX_HEAD:
                    raise InvalidAnswer(
                        f"the answer's status line and headers are over {MAX_HEAD} bytes"
                    )
                head, buf = buf[:end], buf[end + 4 :]
                self._head(head)
                if self.state == _IDLE:  # an answer without a body
                    self._done(buf)
                    return
            elif state == _LENGTH:
                take = buf[: self.remaining]
                buf = buf[len(take) :]
                self._body(take)
                self.remaining -= len(take)
                if self.remaining == 0:
                    self.state = _IDLE
                    self._done(buf)
                    return
            elif state == _TO_EOF:
                self._body(buf)
                return
            elif state == _CHUNK_SIZE:
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > 1024:
                        raise InvalidAnswer("invalid chunk size line")
                    self.buf = buf
                    return
                line, buf = buf[:end], buf[end + 2 :]
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise InvalidAnswer(f"invalid chunk size {line[:40]!r}") from None
                if size < 0:
                    raise InvalidAnswer(f"invalid chunk size {line[:40]!r}")
                self.remaining = size
                self.state = _CHUNK_DATA if size else _TRAILER
            elif state == _CHUNK_DATA:
                take = buf[: self.remaining]
                buf = buf[len(take) :]
                self._body(take)
                self.remaining -= len(take)
                if self.remaining == 0:
                    self.state = _CHUNK_END
            elif state == _CHUNK_END:
                if len(buf) < 2:
                    self.buf = buf
                    return
                if buf[:2] != b"\r\n":
                    raise InvalidAnswer("a chunk does not end with CRLF")
                buf = buf[2:]
                self.state = _CHUNK_SIZE
            elif state == _TRAILER:
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD:
                        raise InvalidAnswer("the answer's trailers are too long")
                    self.buf = buf
                    return
                line, buf = buf[:end], buf[end + 2 :]
                if not line:
                    self.state = _IDLE
                    self._done(buf)
                    return
            else:  # _IDLE: bytes after a complete answer
                self.keep_alive = False
                return
            if self.waiter is None or self.waiter.done():
                return  # finished early (drain limit)

    def _head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        status_line = lines[0]
        if (
            len(status_line) < 12
            or not status_line.startswith(b"HTTP/1.")
            or status_line[8:9] != b" "
            or not status_line[9:12].isdigit()
            or status_line[12:13] not in (b"", b" ")
        ):
            raise InvalidAnswer(f"invalid HTTP status line {status_line[:100]!r}")
        status = int(status_line[9:12])
        if 100 <= status < 200 and status != 101:
            return  # informational: the real answer follows (state stays _HEAD)
        keep_alive = status_line[7:8] == b"1"  # HTTP/1.1 keeps alive unless told otherwise
        length: int | None = None
        chunked = False
        encoding = b""
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise InvalidAnswer(f"invalid header line {line[:100]!r}")
            name = name.strip().lower()
            if name == b"content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    raise InvalidAnswer(f"invalid Content-Length {value.strip()[:40]!r}") from None
                if length < 0:
                    raise InvalidAnswer(f"invalid Content-Length {value.strip()[:40]!r}")
            elif name == b"transfer-encoding":
                chunked = value.strip().lower().endswith(b"chunked")
            elif name == b"connection":
                tokens = value.lower()
                if b"close" in tokens:
                    keep_alive = False
                elif b"keep-alive" in tokens:
                    keep_alive = True
            elif name == b"content-encoding":
                encoding = value.strip().lower()
        self.status = status
        self.keep_alive = keep_alive
        if encoding in (b"gzip", b"x-gzip"):
            self.decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == b"deflate":
            self.decoder = zlib.decompressobj()
        if status in (101, 204, 304):
            self.state = _IDLE
            self.keep_alive = keep_alive and status != 101
        elif chunked:
            self.state = _CHUNK_SIZE
        elif length is not None:
            self.remaining = self.length = length
            self.state = _LENGTH if length else _IDLE
        else:
            self.state = _TO_EOF
            self.keep_alive = False

    def _body(self, data: bytes) -> None:
        if len(self.preview) < self.preview_limit:
            if self.decoder is None:
                self.preview += data[: self.preview_limit - len(self.preview)]
            else:
                try:
                    self.preview += self.decoder.decompress(
                        data, self.preview_limit - len(self.preview)
                    )
                except zlib.error:
                    self.decoder = None  # shown as it came, like a body that says nothing
                    self.preview += data[: self.preview_limit - len(self.preview)]
        self.drained += len(data)
        if self.drained > self.drain_limit:  # enough: answer now, never read the rest
            self.keep_alive = False
            self._finish()
            self._drop()

    def _done(self, rest: bytes) -> None:
        if rest:
            self.keep_alive = False  # bytes nobody asked for: never reuse this connection
        self._finish()
        if not self.keep_alive:
            self._drop()


class Client:
    """Keep-alive connections per (host, port), at most ``limit`` idle ones each."""

    def __init__(self, user_agent: str, limit: int = 100) -> None:
        self.user_agent = user_agent
        self.limit = limit
        self._targets: dict[str, Target | None] = {}
        self._idle: dict[tuple[str, int], dict[_Connection, None]] = {}
        self._all: set[_Connection] = set()

    def target(self, url: str) -> Target | None:
        """The cached ``Target`` of a URL; None unless it is ``http://``."""
        try:
            return self._targets[url]
        except KeyError:
            if len(self._targets) >= MAX_TARGETS:  # `replay --all` of many URLs: stay bounded
                self._targets.clear()
            found = self._targets[url] = target(url, self.user_agent)
            return found

    async def post(
        self,
        where: Target,
        body: bytes,
        content_type: bytes | None,
        *,
        fresh: bool,
        timeout: float,
        preview: int,
        drain_limit: int,
    ) -> Answer:
        """POST ``body`` and read the answer. ``fresh``: on a new connection, with
        ``Connection: close`` (retries and resends, as the engine's ``fresh`` session)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        conn = None if fresh else self._take((where.host, where.port), deadline - timeout)
        if conn is None:
            conn = await self._connect(loop, where, deadline)
        timer = loop.call_at(deadline, _time_out, conn)
        try:
            answer = await conn.send(where.request(body, content_type, fresh), preview, drain_limit)
        except BaseException:
            if not conn.closed:
                conn.abort()
            raise
        finally:
            timer.cancel()
        if fresh:
            conn.close()
        elif not conn.closed:
            self._give_back((where.host, where.port), conn, loop.time())
        return answer

    def _take(self, key: tuple[str, int], now: float) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            conn, _ = idle.popitem()  # the most recently used one (LIFO, as aiohttp)
            conn.pool = None
            if conn.closed or conn.transport is None or conn.transport.is_closing():
                continue
            if now - conn.idle_since > KEEPALIVE:  # as aiohttp: too old to trust, close it
                conn.close()
                continue
            conn.reused = True
            return conn
        return None

    def _give_back(self, key: tuple[str, int], conn: _Connection, now: float) -> None:
        idle = self._idle.setdefault(key, {})
        if len(idle) >= self.limit:
            conn.close()
            return
        idle[conn] = None
        conn.pool = idle
        conn.idle_since = now

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, where: Target, deadline: float
    ) -> _Connection:
        async with asyncio.timeout_at(deadline):
            if where.literal:
                addresses = [(where.host, where.port)]
            else:
                try:
                    infos = await loop.getaddrinfo(where.host, where.port, type=socket.SOCK_STREAM)
                except socket.gaierror as exc:
                    raise ConnectFailed(_connect_detail(exc, where)) from None
                addresses = [(str(info[4][0]), int(info[4][1])) for info in infos]
            last: OSError | None = None
            for host, port in addresses:  # each in turn, the last error is the one shown
                try:
                    _, conn = await loop.create_connection(
                        lambda: _Connection(loop, self._all), host, port
                    )
                except OSError as exc:
                    last = exc
                    continue
                return conn
            assert last is not None
            raise ConnectFailed(_connect_detail(last, where))

    async def close(self) -> None:
        for conn in list(self._all):
            conn.close()
        self._all.clear()
        self._idle.clear()
        await asyncio.sleep(0)  # the transports finish closing (no 'unclosed transport')


def _time_out(conn: _Connection) -> None:
    waiter = conn.waiter
    if waiter is not None and not waiter.done():
        waiter.set_exception(TimeoutError())
    conn.abort()


def _connect_detail(err: OSError, where: Target) -> str:
    """Worded as the engine words aiohttp's connect errors: ``connection refused (host:port)``."""
    return f"{connect_cause(err)} ({where.host}:{where.port})"


NAME_NOT_FOUND = "host name not found"


def connect_cause(err: OSError) -> str:
    """Why a connection could not be made, in words: ``connection refused``, or for a failed
    name lookup ``host name not found: name or service not known`` (its errno is a resolver
    code, which ``os.strerror`` calls ``unknown error -2``)."""
    if isinstance(err, socket.gaierror):
        return f"{NAME_NOT_FOUND}: {(err.strerror or 'lookup failed').lower()}"
    cause = os.strerror(err.errno) if err.errno else (err.strerror or type(err).__name__)
    return cause.lower()
