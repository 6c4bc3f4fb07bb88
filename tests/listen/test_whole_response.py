"""The listener's answer to an accepted message, written in one piece (``ipsms.listen.answers``):
byte for byte what aiohttp would have sent, on every kind of connection a poster may use."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import socket
import struct
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from ipsms.listen.answers import http_date
from ipsms.listen.app import GUARD
from ipsms.listen.faults import Faults
from tests.hostile import (
    REFID,
    SECRET,
    VALID,
    running_listener,
    stored_rows,
    wait_closed,
    wait_until,
)


def message(refid: str) -> bytes:
    return json.dumps({**VALID, "refid": refid}).encode()


def request(body: bytes, *, version: str = "1.1", connection: str | None = None) -> bytes:
    head = (
        f"POST /sms HTTP/{version}\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
    )
    if connection is not None:
        head += f"Connection: {connection}\r\n"
    return head.encode() + b"\r\n" + body


async def read_answer(reader: asyncio.StreamReader) -> tuple[str, list[tuple[str, str]], bytes]:
    """One answer off a keep-alive connection: status line, headers in order, body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.decode("latin-1").split("\r\n")[:-2]
    headers = [
        (name, value.strip()) for name, _, value in (line.partition(":") for line in lines[1:])
    ]
    length = int(next(value for name, value in headers if name.lower() == "content-length"))
    return lines[0], headers, await reader.readexactly(length)


@asynccontextmanager
async def aiohttp_answering(body: bytes) -> AsyncIterator[int]:
    """A plain aiohttp server answering every request as the listener used to: the reference
    the one-piece answer must match."""

    async def answer(_: web.Request) -> web.Response:
        return web.Response(body=body, headers={"Content-Type": "application/json; charset=utf-8"})

    app = web.Application()
    app.router.add_post("/sms", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def exchange(port: int, data: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        return await read_answer(reader)
    finally:
        writer.close()
        await wait_closed(writer)


def without_date(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(name, "(date)" if name == "Date" else value) for name, value in headers]


async def test_the_answer_is_what_aiohttp_would_have_sent(tmp_path: Path) -> None:
    async with running_listener(tmp_path / "s.sqlite3", secret=SECRET) as listener:
        for connection in (None, "keep-alive", "close"):
            refid = f"{connection or 'none':<32}".replace(" ", "0")
            ours = await exchange(listener.port, request(message(refid), connection=connection))
            assert json.loads(ours[2]) == {"status": "received", "refid": refid, "attempt": 1}
            async with aiohttp_answering(ours[2]) as port:
                theirs = await exchange(port, request(message(refid), connection=connection))
            assert ours[0] == theirs[0] == "HTTP/1.1 200 OK"
            assert without_date(ours[1]) == without_date(theirs[1]), connection
            assert ours[2] == theirs[2]
            date = email.utils.parsedate_to_datetime(dict(ours[1])["Date"])
            assert abs(date.timestamp() - time.time()) < 5
        assert ("Connection", "close") in ours[1]


async def test_a_keep_alive_connection_carries_pipelined_messages_and_stays_open(
    tmp_path: Path,
) -> None:
    db = tmp_path / "s.sqlite3"
    async with running_listener(db, secret=SECRET) as listener:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(b"".join(request(message(REFID)) for _ in range(3)))
        attempts = [json.loads((await read_answer(reader))[2])["attempt"] for _ in range(3)]
        assert attempts == [1, 2, 3]
        await asyncio.sleep(0.2)  # still open: a later message on it is answered too
        writer.write(request(message(REFID)))
        assert json.loads((await read_answer(reader))[2])["attempt"] == 4
        writer.close()
        await wait_closed(writer)
    assert [r.attempt for r in stored_rows(db)] == [1, 2, 3, 4]


async def test_connection_close_and_http_1_0_end_the_connection_after_the_answer(
    tmp_path: Path,
) -> None:
    async with running_listener(tmp_path / "s.sqlite3", secret=SECRET) as listener:
        for data in (
            request(message(REFID), connection="close"),
            request(message(REFID), version="1.0"),
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
            writer.write(data)
            status, _, body = await read_answer(reader)
            assert status.endswith(" 200 OK") and json.loads(body)["status"] == "received"
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the listener
            writer.close()
            await wait_closed(writer)


async def test_a_client_that_pipelines_without_reading_holds_up_only_itself(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite3"
    count = 2000  # about 380 KB of answers: far more than the small buffers below hold
    async with running_listener(db, secret=SECRET) as listener:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", listener.port))
        reader, writer = await asyncio.open_connection(sock=sock)
        # Small socket buffers at both ends, so the listener's own buffer is reached soon.
        await wait_until(lambda: listener.open_connections == 1, what="the connection")
        server_side = next(iter(listener.server.app[GUARD]._guarded))
        server_side.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        writer.write(b"".join(request(message(f"{i:032d}")) for i in range(count)))
        # It reads nothing. The listener stops answering it once its buffer for that
        # connection passes aiohttp's high-water mark (64 KiB), rather than hold every answer.
        await wait_until(lambda: server_side.get_write_buffer_size() > 0, what="a full buffer")
        await asyncio.sleep(1.0)
        assert 0 < server_side.get_write_buffer_size() <= 80 * 1024
        # Another poster is answered at once meanwhile.
        started = time.monotonic()
        status, _, _ = await exchange(listener.port, request(message(REFID)))
        assert status == "HTTP/1.1 200 OK" and time.monotonic() - started < 2
        answers = [await read_answer(reader) for _ in range(count)]
        assert [json.loads(a[2])["refid"] for a in answers] == [f"{i:032d}" for i in range(count)]
        writer.close()
        await wait_closed(writer)
    assert len(stored_rows(db)) == count + 1


async def test_a_poster_gone_before_its_answer_costs_nothing_but_that_answer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "s.sqlite3"
    async with running_listener(db, secret=SECRET, faults=Faults(delay=0.5)) as listener:
        sock = socket.socket()
        sock.connect(("127.0.0.1", listener.port))
        sock.sendall(request(message(REFID)))
        await wait_until(lambda: len(stored_rows(db)) == 1, what="the message recorded")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a reset while the answer waits (the delay fault)
        await wait_until(lambda: len(listener.events) == 1, what="the answer")
        status, _, body = await exchange(listener.port, request(message("1" * 32)))
        assert status == "HTTP/1.1 200 OK" and json.loads(body)["attempt"] == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.refid for r in stored_rows(db)] == [REFID, "1" * 32]


@given(st.integers(min_value=0, max_value=253_402_300_799))  # to the end of year 9999
def test_the_date_header_is_rfc_9110s_imf_fixdate(now: int) -> None:
    assert http_date(now).decode() == email.utils.formatdate(now, usegmt=True)
