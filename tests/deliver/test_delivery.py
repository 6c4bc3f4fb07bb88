"""The sender against real loopback servers with scripted replies: what the server really
received, the attempt events, the outcome. Waits go through a recording fake sleep."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ipsms.deliver import http1
from ipsms.deliver.engine import (
    CONNECT_ERROR,
    PREVIEW_BYTES,
    TIMEOUT,
    AttemptEvent,
    Connections,
    Delivery,
    Outcome,
    Sender,
    check_delivered,
    open_connections,
    validate_url,
)
from ipsms.deliver.retry import RetryPolicy, SuccessRule
from ipsms.errors import ExitCode, NotDeliveredError, UsageError

BODY = b'{"refid": "ABCDEF1234567890ABCDEF1234567890", "message": "Hello World!"}'


@dataclass(frozen=True)
class Received:
    body: bytes
    content_type: str | None
    headers: dict[str, str]
    path: str


@dataclass
class Step:
    """One scripted reply: ``status`` after ``delay`` seconds, with ``body``."""

    status: int = 200
    delay: float = 0.0
    body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


Script = Callable[[int, bytes], Step]


def replies(*statuses: int | Step, then: int | Step = 200) -> Script:
    """Answer the n-th request with the n-th entry, then with ``then`` forever."""
    steps = [s if isinstance(s, Step) else Step(s) for s in statuses]
    last = then if isinstance(then, Step) else Step(then)
    return lambda n, _body: steps[n - 1] if n <= len(steps) else last


class ScriptedServer:
    """A real aiohttp server on 127.0.0.1 that records every request and answers by script."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.received: list[Received] = []
        self.in_flight = 0
        self.max_in_flight = 0
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.server = TestServer(app, host="127.0.0.1")

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append(
            Received(
                body, request.headers.get("Content-Type"), dict(request.headers), request.path_qs
            )
        )
        n = len(self.received)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            step = self.script(n, body)
            if step.delay:
                await asyncio.sleep(step.delay)
            text = step.body if step.body is not None else f"reply {n}"
            return web.Response(status=step.status, text=text, headers=step.headers)
        finally:
            self.in_flight -= 1

    def url(self, path: str = "/hook") -> str:
        return str(self.server.make_url(path))

    async def __aenter__(self) -> ScriptedServer:
        await self.server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.close()


class FakeSleep:
    """Records the waits instead of sleeping."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        await asyncio.sleep(0)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def session() -> AsyncIterator[Connections]:
    async with open_connections(RetryPolicy()) as connections:
        yield connections


async def deliver(
    session: Connections,
    url: str,
    policy: RetryPolicy | None = None,
    *,
    fail_first: int = 0,
    content_type: str | None = "application/json",
    body: bytes = BODY,
) -> tuple[list[AttemptEvent], FakeSleep, Outcome]:
    events: list[AttemptEvent] = []
    sleep = FakeSleep()
    sender = Sender(session, policy or RetryPolicy(), fail_first=fail_first, sleep=sleep)
    outcome = await sender.deliver(
        Delivery(url, body, content_type, "ABCDEF1234567890ABCDEF1234567890", "secret-code"),
        events.append,
    )
    return events, sleep, outcome


async def test_500_500_200_is_delivered_on_the_third_attempt_with_the_same_bytes(
    session: Connections,
) -> None:
    async with ScriptedServer(replies(500, 500, 200)) as server:
        events, sleep, outcome = await deliver(session, server.url())
    assert [r.body for r in server.received] == [BODY] * 3
    assert {r.content_type for r in server.received} == {"application/json"}
    assert {r.path for r in server.received} == {"/hook"}
    assert [(e.number, e.status, e.succeeded, e.wait) for e in events] == [
        (1, 500, False, 1.0),
        (2, 500, False, 2.0),
        (3, 200, True, None),
    ]
    assert [e.response for e in events] == ["reply 1", "reply 2", "reply 3"]
    assert all(e.latency > 0 and e.error is None for e in events)
    assert events[0].started_at <= events[1].started_at <= events[2].started_at
    assert sleep.calls == [1.0, 2.0]
    assert outcome.delivered and outcome.attempts == 3
    assert outcome.describe() == "delivered on attempt 3"


async def test_always_503_gives_up_after_five_attempts(session: Connections) -> None:
    async with ScriptedServer(replies(then=503)) as server:
        events, sleep, outcome = await deliver(session, server.url())
    assert len(server.received) == 5
    assert len({r.body for r in server.received}) == 1
    assert [e.status for e in events] == [503] * 5
    assert [e.wait for e in events] == [1.0, 2.0, 4.0, 8.0, None]
    assert sleep.calls == [1.0, 2.0, 4.0, 8.0]
    assert not outcome.delivered
    assert outcome.describe() == "gave up after 5 attempts (last: 503)"
    with pytest.raises(NotDeliveredError) as info:
        check_delivered(1, 1, outcome, RetryPolicy())
    assert info.value.exit_code is ExitCode.NOT_DELIVERED
    assert "gave up after 5 attempts" in str(info.value)


async def test_a_reply_slower_than_the_timeout_is_a_failed_attempt(session: Connections) -> None:
    policy = RetryPolicy(timeout=0.2, no_wait=True)
    async with ScriptedServer(replies(Step(200, delay=1.0), 200)) as server:
        events, sleep, outcome = await deliver(session, server.url(), policy)
    assert len(server.received) == 2  # the slow request did arrive
    first, second = events
    assert (first.status, first.error, first.succeeded) == (None, TIMEOUT, False)
    assert 0.15 < first.latency < 0.9
    assert "0.2s" in (first.error_detail or "")
    assert (second.status, second.succeeded) == (200, True)
    assert sleep.calls == []  # --no-wait: retried at once
    assert outcome.attempts == 2


async def test_a_closed_port_is_a_connect_error_on_every_attempt(session: Connections) -> None:
    url = f"http://127.0.0.1:{closed_port()}/"
    events, sleep, outcome = await deliver(session, url, RetryPolicy(max_attempts=3))
    assert [(e.status, e.error) for e in events] == [(None, CONNECT_ERROR)] * 3
    assert all(e.error_detail for e in events)
    assert sleep.calls == [1.0, 2.0]
    assert outcome.describe() == "gave up after 3 attempts (last: connect_error)"


async def test_fail_first_counts_real_200s_as_failed(session: Connections) -> None:
    async with ScriptedServer(replies(then=200)) as server:
        events, _, outcome = await deliver(session, server.url(), fail_first=3)
    assert len(server.received) == 4  # the app really received all four
    assert [(e.status, e.forced_failure, e.succeeded) for e in events] == [
        (200, True, False),
        (200, True, False),
        (200, True, False),
        (200, False, True),
    ]
    assert outcome.attempts == 4 and outcome.delivered


async def test_fail_first_5_or_more_ends_in_giving_up(session: Connections) -> None:
    async with ScriptedServer(replies(then=200)) as server:
        events, _, outcome = await deliver(session, server.url(), fail_first=7)
    assert len(server.received) == 5
    assert all(e.forced_failure for e in events)
    assert outcome.describe() == (
        "gave up after 5 attempts (last: 200 counted as failed on purpose)"
    )
    with pytest.raises(NotDeliveredError) as info:
        check_delivered(1, 1, outcome, RetryPolicy(), fail_first=7)
    assert info.value.settings == ("fail_first", "fail_first")
    assert "use a smaller --fail-first" in info.value.worded(lambda s: "--" + s.replace("_", "-"))


async def test_a_real_failure_during_fail_first_is_not_marked_forced(session: Connections) -> None:
    async with ScriptedServer(replies(500, then=200)) as server:
        events, _, _ = await deliver(session, server.url(), fail_first=2)
    assert [(e.status, e.forced_failure) for e in events] == [
        (500, False),
        (200, True),
        (200, False),
    ]


async def test_204_fails_by_default_and_counts_with_2xx(session: Connections) -> None:
    async with ScriptedServer(replies(then=Step(204, body=""))) as server:
        strict, _, _ = await deliver(session, server.url(), RetryPolicy(max_attempts=2))
        wide, _, _ = await deliver(session, server.url(), RetryPolicy(success=SuccessRule.ANY_2XX))
    assert [e.succeeded for e in strict] == [False, False]
    assert [(e.status, e.succeeded) for e in wide] == [(204, True)]


async def test_redirects_are_not_followed(session: Connections) -> None:
    async with ScriptedServer(
        replies(then=Step(302, headers={"Location": "/elsewhere"}))
    ) as server:
        events, _, _ = await deliver(session, server.url(), RetryPolicy(max_attempts=2))
    assert [e.status for e in events] == [302, 302]
    assert {r.path for r in server.received} == {"/hook"}


async def test_only_the_first_bytes_of_the_answer_are_kept(session: Connections) -> None:
    async with ScriptedServer(replies(then=Step(200, body="x" * 5000))) as server:
        events, _, _ = await deliver(session, server.url())
    assert events[0].response == "x" * PREVIEW_BYTES


async def test_no_content_type_is_sent_when_there_is_none(session: Connections) -> None:
    async with ScriptedServer(replies(then=200)) as server:
        await deliver(session, server.url(), content_type=None, body=b"refid=A&from=B")
    assert server.received[0].content_type is None
    assert server.received[0].body == b"refid=A&from=B"


async def test_basic_auth_in_the_url_is_sent_and_masked_in_the_output(session: Connections) -> None:
    async with ScriptedServer(replies(then=200)) as server:
        url = server.url().replace("http://", "http://user:hunter2@")
        _, _, outcome = await deliver(session, url)
    assert server.received[0].headers["Authorization"].startswith("Basic ")
    shown = outcome.to_dict()
    assert "hunter2" not in str(shown)
    assert shown["url"].startswith("http://user:****@127.0.0.1:")
    assert shown["signature"] == "****(11)"


async def test_speed_divides_the_waits(session: Connections) -> None:
    async with ScriptedServer(replies(then=503)) as server:
        _, sleep, _ = await deliver(session, server.url(), RetryPolicy(speed=4))
    assert sleep.calls == [0.25, 0.5, 1.0, 2.0]


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/", "127.0.0.1:8765", "http://", "http://h:x/", "http://127.0.0.1:0/"]
)
def test_bad_urls_are_usage_errors(url: str) -> None:
    with pytest.raises(UsageError):
        validate_url(url)


def test_good_urls_pass() -> None:
    for url in ("http://127.0.0.1:8765/", "https://user:pw@example.test/sms?x=1"):
        assert validate_url(url) == url


def test_a_host_name_that_is_not_found_is_said_as_such_not_as_unknown_error_2() -> None:
    """A failed lookup's errno is a resolver code (-2), which ``os.strerror`` words as
    ``Unknown error -2``; and "start your app there" is the wrong advice for a typo."""
    lookup = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert http1.connect_cause(lookup) == "host name not found: name or service not known"
    assert http1.connect_cause(ConnectionRefusedError(111, "refused")) == "connection refused"
    url = "http://no-such-host.invalid:8080/sms"
    typo = Outcome(
        Delivery(url, b"{}", "application/json", "R"),
        False,
        5,
        15.0,
        CONNECT_ERROR,
        last_detail="host name not found: name or service not known (no-such-host.invalid:8080)",
    )
    with pytest.raises(NotDeliveredError) as info:
        check_delivered(1, 1, typo, RetryPolicy())
    assert info.value.hint is not None
    assert (
        "host name no-such-host.invalid in http://no-such-host.invalid:8080/sms was not "
        "found" in info.value.hint
    )
    refused = Outcome(
        Delivery(url, b"{}", "application/json", "R"),
        False,
        5,
        15.0,
        CONNECT_ERROR,
        last_detail="connection refused (127.0.0.1:8080)",
    )
    with pytest.raises(NotDeliveredError) as info:
        check_delivered(1, 1, refused, RetryPolicy())
    assert info.value.hint is not None and info.value.hint.startswith("nothing answered at")
