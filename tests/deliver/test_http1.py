"""The plain-HTTP client (``ipsms.deliver.http1``) behind ``Sender`` for ``http://`` URLs: the same
request bytes as the aiohttp path, the same attempt results and wording, against a raw asyncio
server on 127.0.0.1 that records every request exactly as it arrived."""

from __future__ import annotations

import asyncio
import gzip
import socket
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import pytest

from ipsms.deliver.engine import (
    CONNECT_ERROR,
    DISCONNECTED,
    HTTP_ERROR,
    TIMEOUT,
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

NO_WAIT = RetryPolicy(no_wait=True)

# What the server does with the n-th request: answer bytes to write, then keep the connection
# (True) or close it (False). None: close without answering. "reset": close with an RST.
Answer = tuple[bytes, bool] | None | str
Script = Callable[[int], Answer]


def ok(body: bytes = b"ok", status: str = "200 OK", extra: bytes = b"") -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n".encode() + extra + b"\r\n" + body


class RecordingServer:
    """Reads each request (head and Content-Length body) byte for byte and answers by script."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.raw: list[bytes] = []  # every request, exactly as it arrived
        self.connections = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            while True:
                request = await read_request(reader)
                if request is None:
                    return
                head, body = request
                self.raw.append(head + body)
                act = self.script(len(self.raw))
                if act is None:
                    return
                if act == "reset":
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                assert isinstance(act, tuple)
                data, keep = act
                writer.write(data)
                await writer.drain()
                if not keep:
                    return
        finally:
            writer.close()
            self._writers.discard(writer)

    async def __aenter__(self) -> RecordingServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()


@pytest.fixture
async def both() -> AsyncIterator[tuple[Connections, Connections]]:
    """(through ipsms.deliver.http1, through aiohttp only) for the same policy."""
    async with open_connections(NO_WAIT) as c:
        assert c.plain is not None
        yield c, replace(c, plain=None)


async def send(
    connections: Connections, delivery: Delivery, policy: RetryPolicy = NO_WAIT
) -> tuple[list[AttemptEvent], Outcome]:
    events: list[AttemptEvent] = []
    outcome = await Sender(connections, policy).deliver(delivery, events.append)
    return events, outcome


def shown(events: list[AttemptEvent]) -> list[tuple[object, ...]]:
    """What a user sees of each attempt (no timings)."""
    return [
        (e.number, e.status, e.error, e.error_detail, e.response, e.succeeded, e.reconnected)
        for e in events
    ]


@pytest.mark.parametrize(
    ("path", "content_type", "userinfo"),
    [
        ("/hook?a=1&b=c d", "application/json", ""),
        ("", None, "us%40er:p%3Ass@"),
        ("/x/../sms/./in", "application/x-www-form-urlencoded; charset=utf-8", "user@"),
    ],
)
async def test_the_request_bytes_are_those_aiohttp_sends(
    both: tuple[Connections, Connections], path: str, content_type: str | None, userinfo: str
) -> None:
    """First attempts (pooled, kept alive) and retries (new connection, Connection: close)."""
    plain, aio = both
    body = '{"refid": "R", "message": "héllo"}'.encode()
    async with RecordingServer(lambda n: (ok(status="500 No"), True)) as server:
        url = server.url(path).replace("http://", f"http://{userinfo}")
        policy = RetryPolicy(no_wait=True, max_attempts=2)
        for connections in (plain, aio):
            await send(connections, Delivery(url, body, content_type, "R"), policy)
    assert len(server.raw) == 4
    assert server.raw[:2] == server.raw[2:]  # http1, then aiohttp: the same two requests
    first, retry = server.raw[:2]
    assert first.endswith(b"\r\n\r\n" + body)
    assert b"Connection: close\r\n" in retry and b"Connection:" not in first
    assert (b"Content-Type: " in first) == (content_type is not None)
    assert (b"Authorization: Basic " in first) == bool(userinfo)


@pytest.mark.parametrize(
    ("answer", "status", "preview", "reused"),
    [
        pytest.param(ok(b"fine"), 200, "fine", True, id="200"),
        pytest.param(ok(b"broken", "500 Internal Server Error"), 500, "broken", True, id="500"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nX-Trailer: t\r\n\r\n",
            200,
            "abcdefg",
            True,
            id="chunked",
        ),
        pytest.param(ok(b"bye", extra=b"Connection: close\r\n"), 200, "bye", False, id="close"),
        pytest.param(
            b"HTTP/1.0 200 OK\r\n\r\nto the end", 200, "to the end", False, id="no-length"
        ),
        pytest.param(
            b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"after 100"),
            200,
            "after 100",
            True,
            id="100-continue",
        ),
        pytest.param(
            ok(gzip.compress(b"zipped " * 50, mtime=0), extra=b"Content-Encoding: gzip\r\n"),
            200,
            ("zipped " * 50)[:200],
            True,
            id="gzip",
        ),
        pytest.param(b"HTTP/1.1 204 No Content\r\n\r\n", 204, "", True, id="204"),
    ],
)
async def test_answers_read_as_aiohttp_reads_them(
    both: tuple[Connections, Connections], answer: bytes, status: int, preview: str, reused: bool
) -> None:
    """Two messages each way; the second reuses the first's connection unless the answer
    ended it (Connection: close, or a body read to the end of the connection, which the
    server then closes)."""
    plain, aio = both
    results = []
    for connections in (plain, aio):
        async with RecordingServer(lambda n: (answer, reused)) as server:
            events = []
            for refid in ("A", "B"):
                got, _ = await send(
                    connections,
                    Delivery(server.url(), b"{}", None, refid),
                    RetryPolicy(no_wait=True, max_attempts=1),
                )
                events += got
        results.append((shown(events), server.connections))
    assert results[0] == results[1]
    events, connections_opened = results[0]
    assert [(e[1], e[4]) for e in events] == [(status, preview)] * 2
    assert connections_opened == (1 if reused else 2)


async def test_a_long_body_keeps_its_start_and_is_never_read_past_the_drain_limit(
    both: tuple[Connections, Connections],
) -> None:
    plain, _ = both
    huge = b"x" * (3 * 1024 * 1024)
    async with RecordingServer(lambda n: (ok(huge), True)) as server:
        events, outcome = await send(plain, Delivery(server.url(), b"{}", None))
    assert outcome.delivered and events[0].response == "x" * 200


async def test_a_refused_port_and_a_slow_server_read_as_on_aiohttp(
    both: tuple[Connections, Connections],
) -> None:
    plain, aio = both
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    policy = RetryPolicy(no_wait=True, max_attempts=2, timeout=0.2)
    for host in ("127.0.0.1", "localhost"):  # an address, and a name to look up first
        refused = [
            shown((await send(c, Delivery(f"http://{host}:{port}/", b"{}", None), policy))[0])
            for c in (plain, aio)
        ]
        assert refused[0] == refused[1]
        assert refused[0][0][2:4] == (CONNECT_ERROR, f"connection refused ({host}:{port})")

    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # reads, never answers; the client gives up and closes
        writer.close()

    server = await asyncio.start_server(never, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    async with server:
        slow = [shown((await send(c, Delivery(url, b"{}", None), policy))[0]) for c in (plain, aio)]
    assert slow[0] == slow[1]
    assert slow[0][0][2:4] == (TIMEOUT, "no answer within 0.2s")


async def test_a_reset_and_a_dropped_request_read_as_on_aiohttp(
    both: tuple[Connections, Connections],
) -> None:
    plain, aio = both

    def script(n: int) -> Answer:  # reset, then read and close without a word, then 200
        return "reset" if n % 3 == 1 else None if n % 3 == 2 else (ok(), True)

    seen = []
    for connections in (plain, aio):
        async with RecordingServer(script) as server:
            events, outcome = await send(connections, Delivery(server.url(), b"{}", None))
        seen.append(shown(events))
        assert outcome.delivered and len(server.raw) == 3
    assert seen[0] == seen[1]
    assert [e[2] for e in seen[0]] == [DISCONNECTED, DISCONNECTED, None]
    assert "Connection reset by peer" in str(seen[0][0][3])
    assert seen[0][1][3] == "the server closed the connection without answering"


async def test_an_oversized_header_block_is_an_error_not_a_hang(
    both: tuple[Connections, Connections],
) -> None:
    plain, _ = both
    endless = b"HTTP/1.1 200 OK\r\n" + b"X-Filler: " + b"y" * 100_000 + b"\r\n\r\n"
    async with RecordingServer(lambda n: (endless, True)) as server:
        events, outcome = await send(
            plain,
            Delivery(server.url(), b"{}", None),
            RetryPolicy(no_wait=True, max_attempts=1, timeout=30),
        )
    assert events[0].error == HTTP_ERROR and "over 65536 bytes" in (events[0].error_detail or "")
    assert events[0].latency < 5
    assert not outcome.delivered


async def test_an_answer_that_is_not_http_is_an_http_error(
    both: tuple[Connections, Connections],
) -> None:
    plain, _ = both
    async with RecordingServer(lambda n: (b"SMTP ready\r\n\r\n", True)) as server:
        events, _ = await send(
            plain, Delivery(server.url(), b"{}", None), RetryPolicy(no_wait=True, max_attempts=1)
        )
    assert events[0].error == HTTP_ERROR and "status line" in (events[0].error_detail or "")


async def test_a_body_cut_short_is_disconnected_as_on_aiohttp(
    both: tuple[Connections, Connections],
) -> None:
    plain, aio = both
    short = b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nonly this"
    seen = []
    for connections in (plain, aio):
        async with RecordingServer(lambda n: (short, False)) as server:
            events, _ = await send(
                connections,
                Delivery(server.url(), b"{}", None),
                RetryPolicy(no_wait=True, max_attempts=1),
            )
        seen.append(shown(events))
    assert seen[0] == seen[1]
    assert seen[0][0][2] == DISCONNECTED


async def test_load_mode_against_a_server_closing_idle_connections_sends_each_message_once() -> (
    None
):
    """Connections are closed by the server after every second answer, and after 2 ms without
    a next request: whatever races with that, the server reads exactly --count requests, each
    message is one attempt, and every stale write was resent silently."""
    count = 300
    served: dict[int, int] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = 0
        try:
            while True:
                try:
                    # keep-alive timeout: between requests, never before the first one
                    head = await asyncio.wait_for(
                        reader.readuntil(b"\r\n\r\n"), 0.002 if n else None
                    )
                    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                    body = await reader.readexactly(length)
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    return  # idle too long: close without a word, as servers do
                served[int(body)] = served.get(int(body), 0) + 1
                n += 1
                writer.write(ok())  # never says Connection: close
                await writer.drain()
                if n == 2:
                    return
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    async with server:
        stats = await run_load(
            LoadPlan(count, 8, rate=3000), lambda i: Delivery(url, b"%d" % i, None), NO_WAIT
        )
    assert stats.results == {"200": count}
    assert (stats.delivered, stats.gave_up, stats.attempts) == (count, 0, count)
    assert sorted(served) == list(range(count)) and set(served.values()) == {1}
    assert stats.reconnects > 0


@pytest.mark.parametrize(
    "content_type", ["application/json\r\nX-Injected: 1", "application/json; name=\udcff"]
)
async def test_an_odd_content_type_never_injects_a_header(
    both: tuple[Connections, Connections], content_type: str
) -> None:
    """A replayed request can carry any content type: one http1 would write verbatim (a CR/LF
    or a byte that is not ASCII) goes through aiohttp's rules instead, with the same result."""
    plain, aio = both
    async with RecordingServer(lambda n: (ok(), True)) as server:
        results = [
            shown((await send(c, Delivery(server.url(), b"{}", content_type, "R")))[0])
            for c in (plain, aio)
        ]
    assert results[0] == results[1]
    assert not any(b"X-Injected" in raw for raw in server.raw)
    if "\r" in content_type:  # refused before anything is sent, and said so
        assert results[0][0][2] == HTTP_ERROR
        assert "could not be sent" in str(results[0][0][3])
