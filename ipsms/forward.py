"""``listen --forward-to URL``: relay each accepted message to the developer's app and pass the
app's real answer back, so IntelePeer's retries follow what the app does.

The exact body bytes and content type go to the app with the request's headers, minus the
hop-by-hop ones, plus ``X-Forwarded-For``, ``-Proto`` and ``-Host``. The app's status, headers
(minus hop-by-hop ones) and body bytes (never decompressed) come back unchanged. An app that
cannot be reached gives 502, one that does not answer within the timeout 504.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from ipsms.text import dumps

PREVIEW_BYTES = 200  # of the app's body, shown and recorded
MAX_APP_BODY = 10 * 1024 * 1024  # an app's answer larger than this is a 502: IntelePeer reads none
# RFC 9110 7.6.1: headers meant for one connection only, never relayed.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                        "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"})
# Recomputed for the new message rather than relayed.
_RECOMPUTED = frozenset({"content-length", "host"})


@dataclass(slots=True)
class Relayed:
    """What the app answered (or why it did not): what the sender gets back."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    latency_ms: float
    error: str | None = None  # "app_unreachable", "app_timeout", "app_answer_too_large"
    detail: str | None = None

    def to_dict(self, url: str) -> dict[str, Any]:
        """The ``forward`` object of a request's JSON form."""
        return {"url": url, "status": self.status, "latency_ms": round(self.latency_ms, 3),
                "body_preview": self.body[:PREVIEW_BYTES].decode("utf-8", "replace"),
                "error": self.error, "detail": self.detail}


def relayed_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """``headers`` without the hop-by-hop ones (those named in ``Connection`` too)."""
    pairs = list(headers)
    named = {token.strip().lower() for name, value in pairs if name.lower() == "connection"
             for token in value.split(",")}
    return [(n, v) for n, v in pairs
            if n.lower() not in HOP_BY_HOP and n.lower() not in named
            and n.lower() not in _RECOMPUTED]


def forwarded_for(headers: Mapping[str, str], remote: str | None, host: str | None,
                  proto: str) -> list[tuple[str, str]]:
    """The ``X-Forwarded-*`` headers: ``For`` appended to what a proxy in front (a tunnel)
    already said, ``Proto`` and ``Host`` kept from it when present."""
    seen = headers.get("X-Forwarded-For")
    added = [("X-Forwarded-For", f"{seen}, {remote}" if seen and remote else seen or remote
              or "unknown"),
             ("X-Forwarded-Proto", headers.get("X-Forwarded-Proto") or proto)]
    if host or headers.get("X-Forwarded-Host"):
        added.append(("X-Forwarded-Host", headers.get("X-Forwarded-Host") or host or ""))
    return added


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
            headers={})

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def relay(self, method: str, headers: list[tuple[str, str]], body: bytes
                    ) -> Relayed:
        assert self._session is not None, "Forwarder.start() first"
        started = time.perf_counter()

        def done(status: int, error: str, detail: str) -> Relayed:
            return Relayed(status, [("Content-Type", "application/json; charset=utf-8")],
                           dumps({"error": error, "detail": detail}).encode(),
                           (time.perf_counter() - started) * 1000, error, detail)

        try:
            async with self._session.request(method, self.url, data=body,
                                             headers=headers, allow_redirects=False) as resp:
                data = await resp.content.read(MAX_APP_BODY + 1)
                if len(data) > MAX_APP_BODY:
                    return done(502, "app_answer_too_large",
                                f"the app answered more than {MAX_APP_BODY} bytes")
                return Relayed(resp.status, relayed_headers(resp.headers.items()), data,
                               (time.perf_counter() - started) * 1000)
        except TimeoutError:
            return done(504, "app_timeout", f"the app did not answer within {self.timeout:g} s")
        except (aiohttp.ClientError, OSError) as exc:
            reason = type(exc).__name__
            return done(502, "app_unreachable", f"the app at {self.url} could not be reached "
                        f"({reason})")

