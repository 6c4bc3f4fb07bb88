"""Reading HTTP/1.1 requests off a raw asyncio stream, for the test servers that must see (and
answer) each request byte for byte instead of through aiohttp."""

from __future__ import annotations

import asyncio


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    """The next request's head (up to and with its blank line) and its Content-Length body;
    None once the client closed or reset the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        return head, await reader.readexactly(length)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
