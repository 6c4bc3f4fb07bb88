"""What keeps the inspector private on a laptop that receives texts from strangers: the token
(exchanged once for a cookie, or a bearer header for scripts), the Host allowlist against DNS
rebinding, the Origin check against cross-site requests, and the headers every answer
carries."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

COOKIE = "ipsms_inspect"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def refused(status: int, error: str, detail: str) -> web.Response:
    return web.json_response(
        {"error": error, "detail": detail}, status=status, headers=SECURITY_HEADERS
    )


def bound_port(request: web.Request) -> int | None:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return int(sockname[1]) if sockname else None


def allowed_host(request: web.Request, allow_remote: bool) -> bool:
    """The ``Host`` a browser sends for a loopback URL of this port, and nothing else: a page
    on another site whose name was rebound to 127.0.0.1 sends its own name."""
    if allow_remote:
        return True
    port = bound_port(request)
    return request.headers.get("Host", "") in {f"{host}:{port}" for host in LOCAL_HOSTS}


def has_token(request: web.Request, token: str) -> bool:
    given = request.cookies.get(COOKIE) or ""
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        given = auth[len("Bearer ") :]
    return hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), token.encode("utf-8", "surrogateescape")
    )


def same_origin(request: web.Request) -> bool:
    """A state-changing call: a POST with a JSON body whose ``Origin`` is the inspector's."""
    origin = request.headers.get("Origin")
    return (
        request.content_type == "application/json"
        and origin == f"http://{request.headers.get('Host', '')}"
    )


def guard(token: str, *, allow_remote: bool = False) -> Any:
    """The middleware that answers 403 to a foreign Host or Origin, 401 without the token,
    and turns ``/?token=`` into a cookie and a redirect that drops the token from the URL."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not allowed_host(request, allow_remote):
            return refused(
                403,
                "foreign_host",
                "this inspector answers only at 127.0.0.1, localhost or [::1] with its own port",
            )
        given = request.query.get("token")
        if given is not None and request.method == "GET":
            if not hmac.compare_digest(
                given.encode("utf-8", "surrogateescape"), token.encode("utf-8", "surrogateescape")
            ):
                return refused(
                    401,
                    "unauthorized",
                    "the token is wrong: use the URL ipsms printed when it started",
                )
            query = {k: v for k, v in request.query.items() if k != "token"}
            target = request.rel_url.with_query(query or None)
            answer = web.Response(status=302, headers={**SECURITY_HEADERS, "Location": str(target)})
            answer.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/")
            return answer
        if not has_token(request, token):
            return refused(
                401,
                "unauthorized",
                "open the URL with the token that ipsms "
                "printed when it started, or send Authorization: Bearer TOKEN",
            )
        if request.method not in ("GET", "HEAD") and not same_origin(request):
            return refused(
                403, "cross_origin", "a change needs a JSON body and this inspector's own Origin"
            )
        response = await handler(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    return middleware
