"""An HTTP/1.1 answer written in one piece: the listener's answer to an accepted message.

aiohttp's ``web.Response`` builds every answer through its general machinery: a header
multidict, its checks for compression, chunking, cookies and empty bodies, then serialising
and writing. For the one answer the listener gives thousands of times a second (200, a short
JSON body, on a keep-alive HTTP/1.1 connection) that general path was a large share of the
event loop's time per request (bench/bench_listen.py: its event-loop CPU per request).
``WholeResponse`` builds the same status line, the same headers (the same names, values and
order as aiohttp's) and the body as one piece, which ``aiohttp_writer.OneWrite`` writes with
one transport write.

Only the case it was built for takes it (``fits`` says which); anything else gets
aiohttp's own response: HTTP/1.0, a ``HEAD`` request, a status other than 200.
"""

from __future__ import annotations

import time

from aiohttp import HttpVersion11, web
from aiohttp.http import SERVER_SOFTWARE
from multidict import CIMultiDict

from ipsms.listen.aiohttp_writer import OneWrite

JSON_TYPE = "application/json; charset=utf-8"
_HEAD = f"HTTP/1.1 200 OK\r\nContent-Type: {JSON_TYPE}\r\nContent-Length: ".encode("ascii")
_SERVER = f"\r\nServer: {SERVER_SOFTWARE}\r\n".encode("ascii")
_CLOSE = b"Connection: close\r\n"
# aiohttp copies a CIMultiDict faster than it reads a dict (the listener answers with it too)
JSON_HEADERS = CIMultiDict({"Content-Type": JSON_TYPE})

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # English whatever the locale
_MONTHS = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_date: list[object] = [None, b""]  # the second last formatted, and its Date header value


def http_date(now: float) -> bytes:
    """``Date``'s value for unix time ``now`` (RFC 9110's IMF-fixdate, as aiohttp writes it),
    kept while the second lasts."""
    second = int(now)
    if second != _date[0]:
        t = time.gmtime(second)
        _date[1] = (
            f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon]} {t.tm_year:04d} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
        ).encode("ascii")
        _date[0] = second
    return _date[1]  # type: ignore[return-value]


class WholeResponse(OneWrite):
    """200 with a JSON ``body``, written whole when aiohttp prepares it."""

    def __init__(self, body: bytes) -> None:
        # Its Content-Type; Content-Length, Date and Server are added as it is written (as
        # aiohttp adds them when it prepares a response).
        super().__init__(headers=JSON_HEADERS)
        self._whole = body

    @property
    def body(self) -> bytes:
        return self._whole

    def whole(self, keep_alive: bool) -> tuple[bytes, int]:
        # A client gone before this is written gets ConnectionResetError, as from aiohttp's
        # own writer: the message is on disk; IntelePeer retries one it got no 200 for.
        body = self._whole
        return b"".join(
            (
                _HEAD,
                b"%d" % len(body),
                b"\r\nDate: ",
                http_date(time.time()),
                _SERVER,
                b"" if keep_alive else _CLOSE,
                b"\r\n",
                body,
            )
        ), len(body)


def fits(request: web.BaseRequest) -> bool:
    """Whether ``WholeResponse`` may answer ``request``: an HTTP/1.1 ``POST`` (HTTP/1.0 has
    its own keep-alive rules, and ``HEAD`` no body; aiohttp answers those)."""
    return request.version == HttpVersion11 and request.method == "POST"
