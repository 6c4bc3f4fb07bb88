"""What ``ipsms.listen.aiohttp_writer`` relies on in aiohttp still holds, on a real aiohttp
server and raw connections: the response's private state is what its public properties read,
aiohttp's handler sends nothing but the one write, keeps the connection when told it may,
closes it when told not to, and its access logger sees the response as written."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from ipsms.listen.aiohttp_writer import OneWrite
from tests.hostile import wait_closed

BODY = b'{"ok":true}'
logged: list[tuple[bool, bool | None, int]] = []  # (prepared, keep_alive, body_length) logged


class Canned(OneWrite):
    def whole(self, keep_alive: bool) -> tuple[bytes, int]:
        return answer(keep_alive), len(BODY)


def answer(keep_alive: bool) -> bytes:
    close = b"" if keep_alive else b"Connection: close\r\n"
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(BODY), close, BODY)


class Seen(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        logged.append((response.prepared, response.keep_alive, response.body_length))


@asynccontextmanager
async def serving() -> AsyncIterator[int]:
    async def handler(_: web.Request) -> web.StreamResponse:
        return Canned()

    app = web.Application()
    app.router.add_post("/", handler)
    runner = web.AppRunner(app, access_log_class=Seen)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    logged.clear()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def post(connection: str | None = None) -> bytes:
    extra = f"Connection: {connection}\r\n" if connection else ""
    return (f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n{extra}\r\n{{}}").encode()


async def nothing_more(reader: asyncio.StreamReader) -> bool:
    """Whether the connection stays open with nothing more sent on it for a moment."""
    try:
        await asyncio.wait_for(reader.read(1), 0.3)  # a byte, or b"" when it closes
    except TimeoutError:
        return True
    return False


def test_the_private_state_is_what_the_public_properties_read() -> None:
    response: Any = web.StreamResponse()
    assert (response.prepared, response.keep_alive, response.body_length) == (False, None, 0)
    response._eof_sent = True
    response._keep_alive = True
    response._body_length = 5
    assert (response.prepared, response.keep_alive, response.body_length) == (True, True, 5)


async def test_a_kept_alive_connection_gets_exactly_the_bytes_and_stays_open() -> None:
    async with serving() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(post() + post("keep-alive"))  # pipelined
            expected = answer(True) * 2
            assert await asyncio.wait_for(reader.readexactly(len(expected)), 5) == expected
            assert await nothing_more(reader)  # no byte of aiohttp's own, and still open
            writer.write(post())
            assert await asyncio.wait_for(reader.readexactly(len(answer(True))), 5) == answer(True)
        finally:
            writer.close()
            await wait_closed(writer)
    assert logged == [(True, True, len(BODY))] * 3


async def test_a_connection_told_to_close_is_closed_after_the_answer() -> None:
    async with serving() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(post("close"))
            assert await asyncio.wait_for(reader.read(), 5) == answer(False)  # then EOF
        finally:
            writer.close()
            await wait_closed(writer)
    assert logged == [(True, False, len(BODY))]
