"""``listen --forward-to URL``: relay each accepted message to the developer's app and pass the
app's real answer back, so IntelePeer's retries follow what the app does.

To the app: the body bytes ipsms read and parsed, with the request's headers minus the
hop-by-hop ones (``Connection`` and those it names, ``Keep-Alive``, ``Transfer-Encoding``...),
minus ``Expect`` (ipsms already holds the whole body), minus ``Content-Encoding`` (ipsms has
decoded the body), minus every claim of the poster about where the request came from
(``X-Forwarded-*``, ``Forwarded``, ``X-Real-IP``: anyone can send them), plus ipsms's own
``X-Forwarded-For`` (its peer's address), ``-Proto`` (its own scheme) and ``-Host`` (the
``Host`` it was sent). A header of the poster's whose value is not UTF-8 is left out, not sent
altered (aiohttp's writer would drop its other bytes).

Back to the poster: the app's status and reason phrase, its headers (minus hop-by-hop ones;
no ``Content-Type`` or ``Server`` it did not send, a ``Date`` when it sent none) and its whole
body, read to the end however it was framed (``Content-Length``, chunked, or up to the close)
and never decompressed, with the ``Content-Length`` of those bytes. Interim answers (1xx before
the final one) are not passed on. What the poster gets is what is recorded. When the app's
answer cannot go back as it is, the poster gets ipsms's JSON error instead, never a cut answer
or a closed connection:

- 502 ``app_unreachable``: no connection to the app;
- 502 ``app_answer_invalid``: the app closed or reset the connection before its answer was
  whole, answered something that is not HTTP/1.x (aiohttp's parser refused it: a bare CR,
  ``Transfer-Encoding`` with ``Content-Length``, too many header lines or one too long...),
  a final status outside 200-599 (101 included: ipsms asks for no upgrade), or a header or
  reason phrase ipsms cannot pass on byte for byte (a control character other than tab, or
  bytes that are not UTF-8);
- 502 ``app_answer_too_large``: a body over ``MAX_APP_BODY``, announced or sent;
- 504 ``app_timeout``: the whole answer, body included, not in within the forward timeout.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import hdrs, web
from multidict import CIMultiDict

from ipsms.text import dumps, one_line, printable

PREVIEW_BYTES = 200  # of the app's body, shown and recorded
MAX_APP_BODY = 10 * 1024 * 1024  # an app's answer larger than this is a 502: IntelePeer reads none
# RFC 9110 7.6.1: headers meant for one connection only, never relayed.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Recomputed for the new message rather than relayed.
_RECOMPUTED = frozenset({"content-length", "host"})
# Of the poster's request, never passed to the app: ``Expect`` (ipsms answered it and holds the
# whole body; a relayed one makes many apps wait for a ``100 Continue`` that never comes),
# ``Content-Encoding`` (aiohttp decoded the body ipsms relays), and what the poster claims about
# where the request came from (replaced by what ipsms saw).
_NOT_TO_APP = frozenset({"expect", "content-encoding", "forwarded", "x-real-ip"})
_FORWARDED_PREFIX = "x-forwarded-"
# What aiohttp's writer refuses in a header (RFC 9110 5.5: CTLs other than HTAB), or drops
# silently (lone surrogates: the parser's stand-ins for bytes that are not UTF-8).
_UNRELAYABLE = re.compile("[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")
# Headers aiohttp adds to an answer that lacks them, which would say what the app did not.
_NOT_ADDED = (hdrs.CONTENT_TYPE, hdrs.SERVER)


@dataclass(slots=True)
class Relayed:
    """What the app answered (or why it did not): what the sender gets back."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    latency_ms: float
    error: str | None = None  # "app_unreachable", "app_answer_invalid", "app_timeout"...
    detail: str | None = None
    reason: str | None = None  # the app's reason phrase; None: the standard one

    def to_dict(self, url: str) -> dict[str, Any]:
        """The ``forward`` object of a request's JSON form."""
        return {
            "url": url,
            "status": self.status,
            "latency_ms": round(self.latency_ms, 3),
            "body_preview": self.body[:PREVIEW_BYTES].decode("utf-8", "replace"),
            "error": self.error,
            "detail": self.detail,
        }

    def response(self) -> web.Response:
        """The answer the sender gets: the app's as it came, or ipsms's own error."""
        if self.error is not None:
            return web.Response(
                status=self.status, body=self.body, headers=CIMultiDict(self.headers)
            )
        return _AsIs(
            status=self.status,
            reason=self.reason or None,
            body=self.body,
            headers=CIMultiDict(self.headers),
        )


class _AsIs(web.Response):
    """The app's answer without the ``Content-Type`` and ``Server`` aiohttp adds to one that has
    none (it still adds a ``Date``, as RFC 9110 6.6.1 asks of a relay)."""

    async def _prepare_headers(self) -> None:
        missing = [name for name in _NOT_ADDED if name not in self.headers]
        await super()._prepare_headers()
        for name in missing:
            self.headers.popall(name, None)


def _hop_free(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``pairs`` without the hop-by-hop headers (those named in ``Connection`` too) and those
    recomputed for the new message (``Content-Length``, ``Host``)."""
    named = {
        token.strip().lower()
        for name, value in pairs
        if name.lower() == "connection"
        for token in value.split(",")
    }
    return [
        (n, v)
        for n, v in pairs
        if n.lower() not in HOP_BY_HOP and n.lower() not in named and n.lower() not in _RECOMPUTED
    ]


def relayed_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The poster's headers the app gets: without the hop-by-hop ones, ``Expect``,
    ``Content-Encoding``, its own ``X-Forwarded-*``, ``Forwarded`` and ``X-Real-IP`` (ipsms
    cannot tell a proxy it should trust from a poster that lies, so it trusts none), and any
    whose bytes are not UTF-8: aiohttp would send them altered, so they are left out."""
    return [
        (n, v)
        for n, v in _hop_free(list(headers))
        if n.lower() not in _NOT_TO_APP
        and not n.lower().startswith(_FORWARDED_PREFIX)
        and _UNRELAYABLE.search(v) is None
    ]


def forwarded_for(
    headers: Mapping[str, str], remote: str | None, host: str | None, proto: str
) -> list[tuple[str, str]]:
    """ipsms's own ``X-Forwarded-For`` (its peer's address), ``-Proto`` (its scheme) and
    ``-Host`` (aiohttp's ``request.host``: the ``Host`` it was sent), each left out when
    unknown. The poster's ``headers`` are deliberately not read: what it says of itself is
    dropped (``relayed_headers``), never appended to."""
    added = [("X-Forwarded-For", remote)] if remote else []
    added.append(("X-Forwarded-Proto", proto))
    if host:
        added.append(("X-Forwarded-Host", host))
    return added


class _Unrelayable(Exception):
    """The app's answer cannot go back as it is: ``code`` and ``detail`` say why."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _answer_headers(resp: aiohttp.ClientResponse) -> list[tuple[str, str]]:
    """The app's headers as it sent them (names' case, order, repeats), minus hop-by-hop ones;
    ``_Unrelayable`` for one that aiohttp's writer would refuse or alter."""
    pairs: list[tuple[str, str]] = []
    for raw_name, raw_value in resp.raw_headers:
        try:
            name, value = raw_name.decode("utf-8"), raw_value.decode("utf-8")
        except UnicodeDecodeError:
            name = raw_name.decode("utf-8", "replace")
            raise _Unrelayable(
                "app_answer_invalid",
                f"the app's {one_line(name, 60)} header "
                "is not UTF-8, and ipsms cannot relay it byte for byte",
            ) from None
        bad = _UNRELAYABLE.search(name) or _UNRELAYABLE.search(value)
        if bad is not None:
            raise _Unrelayable(
                "app_answer_invalid",
                f"the app's {one_line(name, 60)} header "
                f"holds a control character ({printable(bad.group())}), which "
                "no HTTP answer may carry",
            )
        pairs.append((name, value))
    return _hop_free(pairs)


def _status(resp: aiohttp.ClientResponse) -> tuple[int, str | None]:
    """The app's final status and reason phrase, or ``_Unrelayable``."""
    if 100 <= resp.status <= 199:  # aiohttp reads past the others; 101 ends HTTP
        raise _Unrelayable(
            "app_answer_invalid",
            f"the app's final answer was {resp.status}, "
            "an interim status (ipsms asked for no upgrade)",
        )
    if not 200 <= resp.status <= 599:
        raise _Unrelayable(
            "app_answer_invalid",
            f"the app answered status {resp.status}, which is not an HTTP status (100 to 599)",
        )
    reason = resp.reason
    if reason and _UNRELAYABLE.search(reason):
        raise _Unrelayable(
            "app_answer_invalid",
            f"the app's reason phrase cannot be relayed byte for byte: {one_line(reason, 60)}",
        )
    return resp.status, reason


async def _body(resp: aiohttp.ClientResponse) -> bytes:
    """The app's whole body, however it came (Content-Length, chunked, to the close), up to
    ``MAX_APP_BODY``; ``_Unrelayable`` past it or when it broke off."""
    declared = resp.content_length
    if declared is not None and declared > MAX_APP_BODY:
        raise _Unrelayable(
            "app_answer_too_large",
            f"the app announced a body of {declared} bytes, more than the limit of {MAX_APP_BODY}",
        )
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := await resp.content.readany():
            size += len(chunk)
            if size > MAX_APP_BODY:
                raise _Unrelayable(
                    "app_answer_too_large", f"the app answered more than {MAX_APP_BODY} bytes"
                )
            chunks.append(chunk)
    except aiohttp.ClientPayloadError:
        if declared is not None:
            of = f" of the {declared} its Content-Length announced"
        elif "chunked" in resp.headers.get(hdrs.TRANSFER_ENCODING, "").lower():
            of = ", before its last chunk"
        else:
            of = ""
        raise _Unrelayable(
            "app_answer_invalid", f"the app's answer broke off after {size} bytes{of}"
        ) from None
    return b"".join(chunks)


def _first_line(exc: BaseException) -> str:
    """An aiohttp error in one short line (its parser errors quote the bytes below)."""
    text = exc.message if isinstance(exc, aiohttp.ClientResponseError) else str(exc)
    return one_line(str(text).split("\n", 1)[0].rstrip(":") or type(exc).__name__, 120)


class Forwarder:
    """One connection pool to the app for the listener's life: ``await start()``, ``relay``
    per message, ``await close()``."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            auto_decompress=False,  # the app's body goes back byte for byte
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            skip_auto_headers=("User-Agent", "Content-Type", "Accept", "Accept-Encoding"),
            headers={},
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def relay(self, method: str, headers: list[tuple[str, str]], body: bytes) -> Relayed:
        assert self._session is not None, "Forwarder.start() first"
        started = time.perf_counter()

        def done(status: int, error: str, detail: str) -> Relayed:
            return Relayed(
                status,
                [("Content-Type", "application/json; charset=utf-8")],
                dumps({"error": error, "detail": detail}).encode(),
                (time.perf_counter() - started) * 1000,
                error,
                detail,
            )

        try:
            # One deadline for all of it: connecting, sending, the head and the whole body.
            async with asyncio.timeout(self.timeout):
                async with self._session.request(
                    method, self.url, data=body, headers=headers, allow_redirects=False
                ) as resp:
                    try:
                        status, reason = _status(resp)
                        answer = _answer_headers(resp)
                        data = await _body(resp)
                    except BaseException:
                        resp.close()  # never reuse a connection whose answer was not read
                        raise
            return Relayed(
                status, answer, data, (time.perf_counter() - started) * 1000, reason=reason
            )
        except _Unrelayable as exc:
            return done(502, exc.code, exc.detail)
        except TimeoutError:
            return done(504, "app_timeout", f"the app did not answer within {self.timeout:g} s")
        except aiohttp.ClientConnectorError as exc:
            return done(
                502,
                "app_unreachable",
                f"the app at {self.url} could not be reached ({type(exc).__name__})",
            )
        except aiohttp.ClientResponseError as exc:  # the parser's: not HTTP ipsms can relay
            return done(
                502, "app_answer_invalid", f"the app's answer is not valid HTTP: {_first_line(exc)}"
            )
        except aiohttp.ServerDisconnectedError:
            return done(
                502, "app_answer_invalid", "the app closed the connection without answering"
            )
        except (aiohttp.ClientError, OSError) as exc:
            return done(
                502,
                "app_answer_invalid",
                "the app broke off the connection before "
                f"answering ({type(exc).__name__}: {_first_line(exc)})",
            )
