"""An HTTP/1.1 answer written in one piece: the listener's answer to an accepted message.

aiohttp's ``web.Response`` builds every answer through its general machinery: a header
multidict, its checks for compression, chunking, cookies and empty bodies, then serialising
and writing. For the one answer the listener gives thousands of times a second (200, a short
JSON body, on a keep-alive HTTP/1.1 connection) that general path was a large share of the
event loop's time per request (bench/bench_listen.py: its event-loop CPU per request).
``WholeResponse`` writes the same status line, the same headers (the same names, values and
order as aiohttp's) and the body with one transport write.

Only the case it was built for takes it (``fits`` says which); anything else gets
aiohttp's own response: HTTP/1.0, a ``HEAD`` request, a status other than 200.
"""

from __future__ import annotations

import time

from aiohttp import HttpVersion11, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import SERVER_SOFTWARE
from multidict import CIMultiDict

JSON_TYPE = "application/json; charset=utf-8"
_HEAD = f"HTTP/1.1 200 OK\r\nContent-Type: {JSON_TYPE}\r\nContent-Length: ".encode("ascii")
_SERVER = f"\r\nServer: {SERVER_SOFTWARE}\r\n".encode("ascii")
_CLOSE = b"Connection: close\r\n"
# aiohttp copies a CIMultiDict faster than it reads a dict (the listener answers with it too)
JSON_HEADERS = CIMultiDict({"Content-Type": JSON_TYPE})

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # English whatever the locale
_MONTHS = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
           "Dec")
_date: list[object] = [None, b""]  # the second last formatted, and its Date header value


def http_date(now: float) -> bytes:
    """``Date``'s value for unix time ``now`` (RFC 9110's IMF-fixdate, as aiohttp writes it),
    kept while the second lasts."""
    second = int(now)
    if second != _date[0]:
        t = time.gmtime(second)
        _date[1] = (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon]} {t.tm_year:04d} "
                    f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT").encode("ascii")
        _date[0] = second
    return _date[1]  # type: ignore[return-value]


class WholeResponse(web.StreamResponse):
    """200 with a JSON ``body``, written whole when aiohttp prepares it."""

    def __init__(self, body: bytes) -> None:
        # Its Content-Type; Content-Length, Date and Server are added as it is written (as
        # aiohttp adds them when it prepares a response).
        super().__init__(headers=JSON_HEADERS)
        self._whole = body

    @property
    def body(self) -> bytes:
        return self._whole

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self._eof_sent:
            return None
        transport = request.transport
        if transport is None or transport.is_closing():
            # What aiohttp's own writer raises: the client left while its message was being
            # recorded. The message is on disk; IntelePeer retries one it got no 200 for.
            raise ConnectionResetError("Cannot write to closing transport")
        keep_alive = request.keep_alive
        body = self._whole
        transport.write(b"".join((
            _HEAD, b"%d" % len(body), b"\r\nDate: ", http_date(time.time()), _SERVER,
            b"" if keep_alive else _CLOSE, b"\r\n", body)))
        self._keep_alive = keep_alive
        self._eof_sent = True
        self._body_length = len(body)
        if transport.get_write_buffer_size():  # a client that is not reading: wait for it,
            await request.writer.drain()  # as aiohttp's writer does past its high-water mark
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None  # all of it went with prepare()


def fits(request: web.BaseRequest) -> bool:
    """Whether ``WholeResponse`` may answer ``request``: an HTTP/1.1 ``POST`` (HTTP/1.0 has
    its own keep-alive rules, and ``HEAD`` no body; aiohttp answers those)."""
    return request.version == HttpVersion11 and request.method == "POST"
