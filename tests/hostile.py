"""Helpers for the hostile-input tests: a real in-process listener on a loopback port and a raw
socket client that can send bytes no HTTP library would."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

from ipsms import store
from ipsms.listen.app import GUARD, ListenConfig
from ipsms.listen.events import ListenEvent
from ipsms.listen.server import ListenServer
from ipsms.request import Request

REFID = "ABCDEF1234567890ABCDEF1234567890"
SECRET = "S3CRET"
VALID = {
    "refid": REFID,
    "from": "+13035550100",
    "to": "+13038675309",
    "message": "Hello World!",
    "signature": SECRET,
}


class Running:
    def __init__(self, server: ListenServer, events: list[ListenEvent]) -> None:
        self.server = server
        self.events = events
        assert server.bound is not None
        self.port = server.bound.port

    @property
    def open_connections(self) -> int:
        """Connections the listener has accepted and not yet closed."""
        return self.server.app[GUARD].open

    async def raw(self, data: bytes, *, timeout: float = 5.0, half_close: bool = False) -> bytes:
        """Send ``data`` on a new connection and read until the server closes or answers."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(data)
            await writer.drain()
            if half_close and writer.can_write_eof():
                writer.write_eof()
            return await asyncio.wait_for(_read_answer(reader), timeout)
        finally:
            writer.close()
            await wait_closed(writer)

    async def post(
        self, body: bytes, content_type: str = "application/json", headers: str = ""
    ) -> bytes:
        head = (
            f"POST /sms HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n{headers}Connection: close\r\n\r\n"
        )
        return await self.raw(head.encode("latin-1") + body)  # header bytes as given

    async def post_valid(self) -> int:
        return status_of(await self.post(json.dumps(VALID).encode()))


async def _read_answer(reader: asyncio.StreamReader) -> bytes:
    data = b""
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            return data
        data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length" and len(body) >= int(value):
                    return data


async def wait_closed(writer: asyncio.StreamWriter) -> None:
    with suppress(ConnectionError, OSError):
        await writer.wait_closed()


async def wait_until(
    condition: Callable[[], bool], timeout: float = 10.0, what: str = "the condition"
) -> None:
    """Poll ``condition`` until it holds: a wait on what the test observes, not a guess at
    how long it takes. Fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:g} s"
        await asyncio.sleep(0.005)


def status_of(answer: bytes) -> int:
    """The status code of a raw HTTP answer; 0 when the server closed without answering."""
    if not answer.startswith(b"HTTP/"):
        return 0
    return int(answer.split(b" ", 2)[1])


def body_of(answer: bytes) -> Any:
    return json.loads(answer.partition(b"\r\n\r\n")[2])


@asynccontextmanager
async def running_listener(db: Path, **config: Any) -> AsyncIterator[Running]:
    events: list[ListenEvent] = []
    server = ListenServer(ListenConfig(**config), db, "127.0.0.1", 0, sinks=[events.append])
    await server.start()
    try:
        yield Running(server, events)
    finally:
        await server.stop()


def stored_rows(db: Path) -> list[Request]:
    """Every request recorded in the store at ``db``, oldest first."""
    conn = store.connect(db, create=False)
    try:
        return list(store.iter_all(conn))
    finally:
        conn.close()
