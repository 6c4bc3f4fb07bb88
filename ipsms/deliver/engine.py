"""The delivery engine: post one message the way IntelePeer does, retrying by a ``RetryPolicy``.

Every attempt sends the same bytes, content type and headers (through ``ipsms.deliver.http1`` for an
``http://`` URL, through aiohttp for ``https://``; the app sees the same request either way), and
emits one ``AttemptEvent``; the run ends with one ``Outcome``. ``fail_first`` counts the first N
attempts as failed whatever the reply (the request is really sent, so the app sees it: this is
how a 200 lost on the way back looks to IntelePeer). Sleep and clocks are injected, so tests
never wait for a retry delay.

An attempt is a request the app could have received: a request written to a kept-alive
connection the server had already closed is sent again on a new connection and is not an
attempt (see ``Sender.deliver``), so the attempts shown always match what the app saw.
"""

from __future__ import annotations

import asyncio
import errno
import sys
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
import aiohttp.connector
import aiohttp.tracing

from ipsms import __version__
from ipsms.deliver import http1
from ipsms.deliver.retry import RetryPolicy
from ipsms.errors import NotDeliveredError, UsageError, setting
from ipsms.redact import mask_secret, mask_url
from ipsms.text import iso_time

# Settings named in errors; the CLI words them as its flags.
_FAIL_FIRST = setting("fail_first")

PREVIEW_BYTES = 200  # how much of each response body is kept and shown
MAX_DRAIN = 1024 * 1024  # read at most this much of a response; past it the connection closes
USER_AGENT = f"ipsms/{__version__} (simulate)"

Sleep = Callable[[float], Awaitable[Any]]
Clock = Callable[[], float]

# Error kinds of an attempt that got no HTTP status.
CONNECT_ERROR = "connect_error"  # refused, unreachable, DNS, TLS handshake
TIMEOUT = "timeout"  # no complete answer within the per-attempt timeout
DISCONNECTED = "disconnected"  # the server closed the connection before answering
HTTP_ERROR = "http_error"  # an answer that is not valid HTTP

# How a kept-alive connection the server already closed fails a request written to it: a reset
# (the server's kernel answers data sent to a closed socket, or left unread at close, with RST),
# a broken pipe, or aiohttp refusing to write to a transport it has just seen closing.
_RESET_ERRNOS = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED})


def validate_url(url: str) -> str:
    """An ``http(s)://host[:port]/path`` URL, or a ``UsageError`` that says what is wrong."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UsageError(
            f"cannot read the URL {mask_url(url)!r}: {exc}",
            hint="use http://HOST:PORT/PATH, e.g. http://127.0.0.1:8765/",
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"{mask_url(url)!r} is not an http:// or https:// URL",
            hint="use http://HOST:PORT/PATH, e.g. http://127.0.0.1:8765/",
        )
    if port == 0:
        raise UsageError(f"{mask_url(url)!r} has port 0", hint="give the port the app listens on")
    return url


@dataclass(frozen=True, slots=True)
class Delivery:
    """What to post, identical on every attempt. ``signature`` is only kept for display."""

    url: str
    body: bytes
    content_type: str | None  # None: send no Content-Type header at all
    refid: str | None = None
    signature: str | None = None
    source: str = "simulate"  # or "replay of request #12"

    def headers(self) -> dict[str, str]:
        return {"Content-Type": self.content_type} if self.content_type is not None else {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "refid": self.refid,
            "url": mask_url(self.url),
            "content_type": self.content_type,
            "size": len(self.body),
            "signature": mask_secret(self.signature),
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class AttemptEvent:
    """One POST of a message and what came back."""

    refid: str | None
    number: int  # 1-based
    started_at: float  # unix time
    status: int | None  # HTTP status, None when there was no answer
    error: str | None  # CONNECT_ERROR, TIMEOUT, ... when there was no answer
    error_detail: str | None
    latency: float  # seconds from sending to the end of the answer (or the error)
    response: str  # the first PREVIEW_BYTES of the response body, decoded leniently
    succeeded: bool  # counted as delivered
    forced_failure: bool  # the reply was a success but --fail-first counted it as failed
    wait: float | None  # seconds waited before the next attempt; None if there is none
    # The request was first written to a kept-alive connection the server had already closed
    # and was sent again on a new connection: only that second request is this attempt.
    reconnected: bool = False

    @property
    def result(self) -> str:
        """``'200'``, ``'503'`` or the error kind."""
        return str(self.status) if self.status is not None else (self.error or "?")

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "attempt",
            "refid": self.refid,
            "attempt": self.number,
            "started_at": iso_time(self.started_at),
            "status": self.status,
            "error": self.error,
            "error_detail": self.error_detail,
            "latency_ms": round(self.latency * 1000, 3),
            "response": self.response,
            "ok": self.succeeded,
            "forced_failure": self.forced_failure,
            "wait_s": None if self.wait is None else round(self.wait, 6),
            "reconnected": self.reconnected,
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a message's delivery ended."""

    delivery: Delivery
    delivered: bool
    attempts: int
    elapsed: float  # seconds from the first attempt to the end, waits included
    last_result: str  # result of the last attempt: '200', '503', 'timeout', ...
    last_forced: bool = False  # the last reply was a success that --fail-first counted failed
    last_response: str = ""  # the start of the last answer's body
    last_detail: str = ""  # why the last attempt got no answer (connect error, timeout...)

    @property
    def delivered_on(self) -> int | None:
        return self.attempts if self.delivered else None

    def describe(self) -> str:
        if self.delivered:
            return f"delivered on attempt {self.attempts}"
        forced = " counted as failed on purpose" if self.last_forced else ""
        return (
            f"gave up after {self.attempts} attempt{'s' if self.attempts != 1 else ''} "
            f"(last: {self.last_result}{forced})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "outcome",
            **self.delivery.to_dict(),
            "delivered": self.delivered,
            "attempts": self.attempts,
            "delivered_on": self.delivered_on,
            "last_result": self.last_result,
            "elapsed_s": round(self.elapsed, 6),
            "summary": self.describe(),
        }


AttemptCallback = Callable[[AttemptEvent], None]


@dataclass(frozen=True, slots=True)
class Connections:
    """The clients a run's attempts go through (owned by ``open_connections``).

    ``pooled`` keeps connections alive and carries the first attempt of every message (load mode
    and ``replay --all`` reuse them); ``fresh`` opens a new connection for every request and
    carries retries and the resend after a stale kept-alive connection. Plain ``http://`` URLs
    go through ``plain`` instead (``ipsms.deliver.http1``: same bytes, same rules, a fraction of
    aiohttp's CPU per request); ``https://`` ones through the two aiohttp sessions.
    """

    pooled: aiohttp.ClientSession
    fresh: aiohttp.ClientSession
    plain: http1.Client | None = None


@asynccontextmanager
async def open_connections(policy: RetryPolicy, limit: int = 100) -> AsyncIterator[Connections]:
    """The sessions of one run, at most ``limit`` sockets each, closed at the end."""
    plain = http1.Client(USER_AGENT, limit)
    async with (
        _session(policy, limit, keep_alive=True) as pooled,
        _session(policy, limit, keep_alive=False) as fresh,
    ):
        try:
            yield Connections(pooled, fresh, plain)
        finally:
            await plain.close()


# CPython before 3.12.8 (and 3.13.0) can keep a closed TLS transport alive when the server never
# answers the TLS close; ``enable_cleanup_closed`` has aiohttp abort those (the ``fresh``
# session closes a connection per request). Later versions fixed it and aiohttp warns if asked.
_CLEANUP_CLOSED = sys.version_info < (3, 12, 8) or (3, 13, 0) <= sys.version_info < (3, 13, 1)


def _session(policy: RetryPolicy, limit: int, *, keep_alive: bool) -> aiohttp.ClientSession:
    options: dict[str, Any] = {
        "limit": limit,
        "force_close": not keep_alive,
        "enable_cleanup_closed": _CLEANUP_CLOSED,
    }
    return aiohttp.ClientSession(
        connector=_ReuseConnector(**options) if keep_alive else aiohttp.TCPConnector(**options),
        timeout=aiohttp.ClientTimeout(total=policy.timeout),
        headers={"User-Agent": USER_AGENT},
    )


class _RequestTrace:
    """What one request learned about its connection (set by ``_ReuseConnector``)."""

    __slots__ = ("answered", "reused")

    def __init__(self) -> None:
        self.reused = False  # it went out on a pooled connection that had carried a request
        self.answered = False  # status line and headers arrived


# The request being sent by this task (``Sender._post``), for the connector to mark.
_CURRENT: ContextVar[_RequestTrace | None] = ContextVar("ipsms_request", default=None)


class _ReuseConnector(aiohttp.TCPConnector):
    """Marks a request whose connection has already carried one (it can be stale).

    A connector hook rather than aiohttp's request tracing: a trace config makes every request
    await all of aiohttp's trace signals, every time, for nothing a delivery needs.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._carried: weakref.WeakSet[Any] = weakref.WeakSet()  # protocols that carried one

    async def connect(
        self,
        req: aiohttp.ClientRequest,
        traces: list[aiohttp.tracing.Trace],
        timeout: aiohttp.ClientTimeout,
    ) -> aiohttp.connector.Connection:
        connection = await super().connect(req, traces, timeout)
        protocol = connection.protocol
        if protocol is not None:
            trace = _CURRENT.get()
            if trace is not None and protocol in self._carried:
                trace.reused = True
            self._carried.add(protocol)
        return connection


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int | None
    error: str | None = None
    detail: str | None = None
    preview: bytes = b""
    stale: bool = False  # failed on a kept-alive connection the server had already closed


class Sender:
    """Delivers messages through the sessions of ``open_connections`` (owned by the caller).

    Attempts count requests the app could have read, never writes into a dead connection:

    * A stale connection is one the server closed after answering on it, without having sent
      ``Connection: close`` (frameworks do this after an error reply, or on an idle timeout).
      aiohttp's pool drops a connection once the event loop has seen the close, but a request
      sent right after the answer (``--no-wait``, load mode) is written before that: it fails
      with a clean close or a reset before any byte of an answer, and the app never read it.
      aiohttp only replays idempotent methods on a reused connection (RFC 9112 9.3.1), never
      this POST, so the engine does it: a request that went out on a reused connection (a
      connector hook tells) and failed that way (``_Reply.stale``) is sent again once on a new
      connection; only that request is the attempt, and no event is emitted for the dead write.
    * On the wire, an app that reads a request and then closes the connection without answering
      looks exactly the same (clean close, no byte of an answer). That is a real DISCONNECTED
      attempt, so retries never reuse a connection: they go out on the ``fresh`` session, where
      any failure counts. The ambiguity is left only for a message's first attempt on a pooled
      connection (load mode, ``replay --all``), where it is resolved as stale: such an app sees
      that message twice, and the attempt is marked ``reconnected`` so the output says so.
    * A partial answer (some of the status line or headers) means the app read the request: it
      counts. aiohttp's C parser reports that through ``ServerDisconnectedError.message``; with
      its pure-Python parser (``AIOHTTP_NO_EXTENSIONS``) it looks like no answer at all.
    """

    def __init__(
        self,
        connections: Connections,
        policy: RetryPolicy,
        *,
        fail_first: int = 0,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.perf_counter,
        now: Clock = time.time,
    ) -> None:
        if fail_first < 0:
            raise UsageError(f"{_FAIL_FIRST} must be 0 or more, not {fail_first}")
        self.connections = connections
        self.policy = policy
        self.fail_first = fail_first
        self.sleep = sleep
        self.clock = clock
        self.now = now
        self._timeout = aiohttp.ClientTimeout(total=policy.timeout)

    async def deliver(
        self, delivery: Delivery, on_attempt: AttemptCallback | None = None
    ) -> Outcome:
        policy, clock = self.policy, self.clock
        headers = delivery.headers()
        skip = None if delivery.content_type is not None else ("Content-Type",)
        begin = clock()
        number = 0
        while True:
            number += 1
            started_at = self.now()
            t0 = clock()
            # A retry always goes out on a new connection (see ``Sender``).
            reply = await self._send(delivery, headers, skip, fresh=number > 1)
            reconnected = reply.stale
            if reply.stale:  # never an attempt: send it again on a new connection, silently
                started_at = self.now()
                t0 = clock()
                reply = await self._send(delivery, headers, skip, fresh=True)
            latency = clock() - t0
            status = reply.status
            reply_ok = status is not None and policy.is_success(status)
            forced = reply_ok and number <= self.fail_first
            succeeded = reply_ok and not forced
            wait = None if succeeded else policy.wait_after(number)
            if on_attempt is not None:
                on_attempt(
                    AttemptEvent(
                        delivery.refid,
                        number,
                        started_at,
                        status,
                        reply.error,
                        reply.detail,
                        latency,
                        reply.preview.decode("utf-8", "replace"),
                        succeeded,
                        forced,
                        wait,
                        reconnected,
                    )
                )
            if wait is None:
                result = str(status) if status is not None else (reply.error or "?")
                return Outcome(
                    delivery,
                    succeeded,
                    number,
                    clock() - begin,
                    result,
                    forced,
                    reply.preview.decode("utf-8", "replace"),
                    reply.detail or "",
                )
            if wait > 0:
                await self.sleep(wait)

    async def _send(
        self,
        delivery: Delivery,
        headers: dict[str, str],
        skip: tuple[str, ...] | None,
        *,
        fresh: bool,
    ) -> _Reply:
        plain = self.connections.plain
        # An unusual content type (a replayed one with non-ASCII or control characters) keeps
        # aiohttp's own rules for header values.
        if plain is not None and (
            delivery.content_type is None or _plain_header(delivery.content_type)
        ):
            where = plain.target(delivery.url)
            if where is not None:
                return await self._post_plain(plain, where, delivery, fresh)
        session = self.connections.fresh if fresh else self.connections.pooled
        return await self._post(session, delivery, headers, skip)

    async def _post_plain(
        self, plain: http1.Client, where: http1.Target, delivery: Delivery, fresh: bool
    ) -> _Reply:
        """``_post`` through ``ipsms.deliver.http1``: the same results and wording."""
        content_type = delivery.content_type
        try:
            answer = await plain.post(
                where,
                delivery.body,
                None if content_type is None else content_type.encode(),
                fresh=fresh,
                timeout=self.policy.timeout,
                preview=PREVIEW_BYTES,
                drain_limit=MAX_DRAIN,
            )
        except TimeoutError:
            return _Reply(None, TIMEOUT, f"no answer within {self.policy.timeout:g}s")
        except http1.ConnectFailed as exc:
            return _Reply(None, CONNECT_ERROR, exc.detail)
        except http1.Disconnected as exc:
            return _Reply(None, DISCONNECTED, _reason(exc), stale=exc.stale)
        except http1.InvalidAnswer as exc:
            return _Reply(None, HTTP_ERROR, _reason(exc))
        except OSError as exc:  # a socket error outside the connection's own callbacks
            return _Reply(None, DISCONNECTED, _reason(exc))
        return _Reply(answer.status, preview=answer.preview)

    async def _post(
        self,
        session: aiohttp.ClientSession,
        delivery: Delivery,
        headers: dict[str, str],
        skip: tuple[str, ...] | None,
    ) -> _Reply:
        trace = _RequestTrace()
        token = _CURRENT.set(trace)
        try:
            async with session.post(
                delivery.url,
                data=delivery.body,
                headers=headers,
                skip_auto_headers=skip,
                allow_redirects=False,
                timeout=self._timeout,
            ) as resp:
                trace.answered = True
                return _Reply(resp.status, preview=await _read_preview(resp))
        except TimeoutError:
            return _Reply(None, TIMEOUT, f"no answer within {self.policy.timeout:g}s")
        except aiohttp.ClientConnectorError as exc:
            return _Reply(None, CONNECT_ERROR, _connect_reason(exc))
        except aiohttp.ServerDisconnectedError as exc:
            # aiohttp passes the partly parsed answer instead of a text when some of the status
            # line or headers had arrived (with its C parser; the pure-Python one cannot tell).
            nothing = isinstance(exc.message, str)
            return _Reply(
                None,
                DISCONNECTED,
                "the server closed the connection without answering",
                stale=trace.reused and not trace.answered and nothing,
            )
        except aiohttp.ClientOSError as exc:
            return _Reply(
                None,
                DISCONNECTED,
                _reason(exc),
                stale=(trace.reused and not trace.answered and exc.errno in _RESET_ERRNOS),
            )
        except aiohttp.ClientPayloadError as exc:
            return _Reply(None, DISCONNECTED, _reason(exc))
        except aiohttp.ClientError as exc:
            if isinstance(exc, ConnectionResetError):  # written to a transport already closing
                return _Reply(
                    None, DISCONNECTED, _reason(exc), stale=trace.reused and not trace.answered
                )
            return _Reply(None, HTTP_ERROR, _reason(exc))
        except (ValueError, UnicodeError) as exc:  # a header aiohttp refuses to write
            return _Reply(None, HTTP_ERROR, f"the request could not be sent: {_reason(exc)}")
        finally:
            _CURRENT.reset(token)


def _plain_header(value: str) -> bool:
    """Printable ASCII: a header value ``ipsms.deliver.http1`` writes as it is."""
    return value.isascii() and value.isprintable()


async def _read_preview(resp: aiohttp.ClientResponse) -> bytes:
    """Read the answer (so the connection can be reused) and keep its first bytes."""
    length = resp.content_length
    if length is not None and length <= MAX_DRAIN:
        return (await resp.read())[:PREVIEW_BYTES]
    head = b""
    total = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        if len(head) < PREVIEW_BYTES:
            head += chunk[: PREVIEW_BYTES - len(head)]
        total += len(chunk)
        if total > MAX_DRAIN:
            break  # release() then closes the connection instead of reading on
    return head


def _connect_reason(exc: aiohttp.ClientConnectorError) -> str:
    """``connection refused by 127.0.0.1:8851`` rather than aiohttp's ``ssl:default [...]``."""
    return f"{http1.connect_cause(exc.os_error)} ({exc.host}:{exc.port})"


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:299] + "…"


class DeliveryObserver(Protocol):
    """What a renderer implements: the live timeline, NDJSON, plain lines."""

    def start(self, delivery: Delivery) -> None: ...

    def attempt(self, event: AttemptEvent) -> None: ...

    def outcome(self, outcome: Outcome) -> None: ...


@dataclass
class Tally:
    delivered: int = 0
    gave_up: int = 0
    last_failure: Outcome | None = None

    @property
    def total(self) -> int:
        return self.delivered + self.gave_up


async def deliver_each(
    deliveries: Iterable[Delivery],
    policy: RetryPolicy,
    observer: DeliveryObserver,
    *,
    fail_first: int = 0,
    sleep: Sleep = asyncio.sleep,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> Tally:
    """Deliver messages one after the other (each with its own retry sequence)."""
    tally = Tally()
    async with open_connections(policy) as connections:
        sender = Sender(connections, policy, fail_first=fail_first, sleep=sleep)
        for delivery in deliveries:
            observer.start(delivery)
            outcome = await sender.deliver(delivery, observer.attempt)
            observer.outcome(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
            if outcome.delivered:
                tally.delivered += 1
            else:
                tally.gave_up += 1
                tally.last_failure = outcome
    return tally


def check_delivered(
    failed: int, total: int, last_failure: Outcome | None, policy: RetryPolicy, fail_first: int = 0
) -> None:
    """Raise ``NotDeliveredError`` (exit 5) when any message was not delivered."""
    if failed == 0:
        return
    if total == 1 and last_failure is not None:
        what = (
            f"message {last_failure.delivery.refid or '(no refid)'} was not delivered: "
            f"{last_failure.describe()}"
        )
    else:
        what = f"{failed:,} of {total:,} messages were not delivered"
    if fail_first >= policy.max_attempts:
        hint = (
            f"{_FAIL_FIRST} {fail_first} counts all {policy.max_attempts} attempts as "
            f"failed; use a smaller {_FAIL_FIRST} to see a delivery"
        )
    elif last_failure is not None and last_failure.last_result == CONNECT_ERROR:
        url = mask_url(last_failure.delivery.url)
        if last_failure.last_detail.startswith(http1.NAME_NOT_FOUND):
            host = urlsplit(last_failure.delivery.url).hostname
            hint = (
                f"the host name {host} in {url} was not found: check it for a typo, or "
                "use an address (http://127.0.0.1:PORT/...)"
            )
        else:
            hint = (
                f"nothing answered at {url}: start your app (or `ipsms listen`) there, or "
                "pass the right URL"
            )
    elif last_failure is not None and last_failure.last_result in ("401", "403"):
        hint = _refused_hint(last_failure)
    else:
        hint = (
            f"the app must answer HTTP {'200' if policy.success.value == '200' else '2xx'} "
            f"within {policy.timeout:g}s; see the attempts above"
        )
    raise NotDeliveredError(what, hint=hint)


def _refused_hint(outcome: Outcome) -> str:
    """What to change when the app refused the message (401/403): most often the signature."""
    sign_like = (
        f"sign as it expects: the same {setting('secret')} (or IPSMS_SECRET), "
        f"{setting('signature_mode')} plain or hmac, and for hmac the "
        f"{setting('hmac_variant')} variant it checks"
    )
    if "signature_" in outcome.last_response or "signature" in outcome.last_response.lower():
        return (
            f"the app rejected the signature ({outcome.last_result}); {sign_like}; "
            "`ipsms messages show REFID` where `ipsms listen` runs says what differed"
        )
    if outcome.last_result == "401":
        return (
            "the app asks for credentials (401): put them in the URL, "
            "https://USER:PASS@host/path, as the webhook URL IntelePeer calls would"
        )
    return f"the app refused the message (403); if it checks the signature, {sign_like}"
