"""Stale kept-alive connections: a request written to a connection the server had already
closed is sent again on a new connection and is never an attempt, while a request the app read
and then dropped is one. Run against a raw asyncio HTTP server that misbehaves on purpose
(answers without ``Connection: close``, then closes anyway), counting what it really read."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from aiohttp.http import HttpResponseParser

from ipsms.deliver.engine import (
    CONNECT_ERROR,
    DISCONNECTED,
    AttemptEvent,
    Connections,
    Delivery,
    Outcome,
    Sender,
    open_connections,
)
from ipsms.deliver.load import LoadPlan, run_load
from ipsms.deliver.retry import RetryPolicy
from tests.raw_http import read_request

CLOSE_AFTER = 2.0  # at the latest; a server closes at once when the next request arrives


@dataclass(frozen=True)
class Act:
    """What the server does with the n-th request it read completely.

    ``status`` None: close without answering. ``close_after``: after answering (without having
    said ``Connection: close``), close as soon as the client sends more, which is never read, or
    after that many seconds; None keeps the connection open. ``reset``: close with an RST
    instead of a FIN. ``partial``: write these bytes of an answer, then close.
    """

    status: int | None = 200
    close_after: float | None = CLOSE_AFTER
    reset: bool = False
    partial: bytes | None = None


Script = Callable[[int], Act]


def acts(*items: int | Act, then: int | Act = 200) -> Script:
    listed = [i if isinstance(i, Act) else Act(i) for i in items]
    last = then if isinstance(then, Act) else Act(then)
    return lambda n: listed[n - 1] if n <= len(listed) else last


class RawServer:
    """HTTP/1.1 on 127.0.0.1:0 by hand. ``received`` holds the body of every request it read
    to the end; bytes it never parsed (a request that reached a connection it was about to
    close) are not requests it received."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.received: list[bytes] = []
        self.connections = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._closing = asyncio.Event()
        self._server: asyncio.Server | None = None
        self.port = 0

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        reset = False
        try:
            while True:
                request = await read_request(reader)
                if request is None:
                    return
                _, body = request
                self.received.append(body)
                act = self.script(len(self.received))
                reset = act.reset
                if act.partial is not None:
                    writer.write(act.partial)
                    await writer.drain()
                    return
                if act.status is None:
                    return
                text = f"reply {len(self.received)}".encode()
                writer.write(
                    f"HTTP/1.1 {act.status} Scripted\r\nContent-Type: text/plain\r\n"
                    f"Content-Length: {len(text)}\r\n\r\n".encode()
                    + text
                )
                await writer.drain()
                if act.close_after is not None:
                    await self._linger(reader, act.close_after)
                    return
        finally:
            if reset and not writer.is_closing():
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.close()
            self._writers.discard(writer)
            self._tasks.discard(task)

    async def _linger(self, reader: asyncio.StreamReader, seconds: float) -> None:
        """Until the client writes again (the stale race, made certain), the server stops, or
        ``seconds`` pass."""
        waits = [asyncio.ensure_future(reader.read(1)), asyncio.ensure_future(self._closing.wait())]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    def stop_listening(self) -> None:
        """Refuse new connections; open ones carry on with their script."""
        assert self._server is not None
        self._server.close()

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self._closing.set()  # wakes handlers waiting to close; closing wakes those reading
        for writer in list(self._writers):
            writer.close()
        await asyncio.gather(*self._tasks)
        await self._server.wait_closed()


@pytest.fixture
async def connections() -> AsyncIterator[Connections]:
    async with open_connections(RetryPolicy()) as c:
        yield c


async def send(
    connections: Connections,
    url: str,
    policy: RetryPolicy,
    refid: str = "R" * 32,
    *,
    fail_first: int = 0,
) -> tuple[list[AttemptEvent], Outcome]:
    events: list[AttemptEvent] = []
    sender = Sender(connections, policy, fail_first=fail_first)
    outcome = await sender.deliver(
        Delivery(url, b'{"refid": "%s"}' % refid.encode(), "application/json", refid), events.append
    )
    return events, outcome


def summary(events: list[AttemptEvent]) -> list[tuple[int, str, bool]]:
    return [(e.number, e.result, e.reconnected) for e in events]


NO_WAIT = RetryPolicy(no_wait=True)


async def test_retries_after_error_replies_match_what_the_server_received(
    connections: Connections,
) -> None:
    async with RawServer(acts(then=500)) as server:
        events, outcome = await send(connections, server.url(), NO_WAIT)
    assert summary(events) == [(n, "500", False) for n in range(1, 6)]
    assert outcome.describe() == "gave up after 5 attempts (last: 500)"
    assert len(server.received) == outcome.attempts == 5


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
async def test_a_stale_kept_alive_connection_is_resent_and_not_counted(
    connections: Connections, reset: bool
) -> None:
    """Message 2 goes out on message 1's pooled connection, which the server closes (without
    reading on) after its answer: the engine resends it on a new connection, one attempt."""
    async with RawServer(acts(then=Act(200, reset=reset))) as server:
        first, _ = await send(connections, server.url(), NO_WAIT, "A" * 32)
        second, outcome = await send(connections, server.url(), NO_WAIT, "B" * 32)
    assert summary(first) == [(1, "200", False)]
    assert summary(second) == [(1, "200", True)]
    assert outcome.delivered and outcome.attempts == 1
    assert server.received == [b'{"refid": "%s"}' % (c * 32).encode() for c in "AB"]
    assert server.connections == 2  # the stale write went to the first one, never to the app


async def test_only_the_new_connection_after_a_stale_one_can_fail_an_attempt(
    connections: Connections,
) -> None:
    async with RawServer(acts(then=200)) as server:
        await send(connections, server.url(), NO_WAIT, "A" * 32)
        server.stop_listening()  # the pooled connection is still open, and about to close
        events, outcome = await send(
            connections, server.url(), RetryPolicy(no_wait=True, max_attempts=2), "B" * 32
        )
    assert summary(events) == [(1, CONNECT_ERROR, True), (2, CONNECT_ERROR, False)]
    assert not outcome.delivered and len(server.received) == 1


async def test_a_request_the_app_read_and_dropped_is_a_failed_attempt(
    connections: Connections,
) -> None:
    """500 on a kept-alive connection, then the app reads the retry and closes without an
    answer: a real DISCONNECTED attempt (retries go out on new connections, so this is never
    mistaken for a stale one)."""
    async with RawServer(acts(Act(500, close_after=None), Act(None), then=200)) as server:
        events, outcome = await send(connections, server.url(), NO_WAIT)
    assert summary(events) == [(1, "500", False), (2, DISCONNECTED, False), (3, "200", False)]
    assert len(server.received) == outcome.attempts == 3


@pytest.mark.skipif(
    HttpResponseParser.__module__ != "aiohttp._http_parser",
    reason="only aiohttp's C parser reports a partly received answer",
)
async def test_part_of_an_answer_on_a_reused_connection_is_a_failed_attempt(
    connections: Connections,
) -> None:
    partial = Act(partial=b"HTTP/1.1 200 OK\r\nContent-Le")
    async with RawServer(acts(Act(200, close_after=None), partial, then=200)) as server:
        await send(connections, server.url(), NO_WAIT, "A" * 32)
        events, _ = await send(connections, server.url(), NO_WAIT, "B" * 32)
    assert summary(events) == [(1, DISCONNECTED, False), (2, "200", False)]
    assert len(server.received) == 3


async def test_known_limit_a_request_dropped_on_a_kept_alive_connection_looks_stale(
    connections: Connections,
) -> None:
    """Pins the documented trade-off: on a reused connection, an app that reads a request and
    closes without a byte of answer cannot be told from a stale connection, so a message's first
    attempt is resent (and marked ``reconnected``); the app saw that message twice."""
    async with RawServer(acts(Act(200, close_after=None), Act(None), then=200)) as server:
        await send(connections, server.url(), NO_WAIT, "A" * 32)
        events, _ = await send(connections, server.url(), NO_WAIT, "B" * 32)
    assert summary(events) == [(1, "200", True)]
    assert len(server.received) == 3


async def test_load_mode_never_counts_a_stale_connection_as_a_failure() -> None:
    """Every pooled connection is closed after one answer, and load mode reuses them at once."""
    async with RawServer(acts(then=200)) as server:
        stats = await run_load(
            LoadPlan(20, 2),
            lambda i: Delivery(server.url(), b'{"n": %d}' % i, "application/json", f"{i:032d}"),
            NO_WAIT,
        )
    assert (stats.delivered, stats.gave_up, stats.attempts) == (20, 0, 20)
    assert stats.results == {"200": 20}
    assert len(server.received) == 20
    assert stats.reconnects > 0
    assert stats.to_dict()["reconnects"] == stats.reconnects
