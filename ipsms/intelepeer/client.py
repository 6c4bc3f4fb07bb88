"""Async client for IntelePeer's configuration API (intelepeer.md section 2).

Authenticate, set a number's inbound webhook, enable SMS on a number. Every reply is parsed
leniently (only the status codes are documented; ``ipsms.intelepeer.replies``) and the server's own
reason text is kept for the error, made printable. Network failures and timeouts become
``NetworkError``; a reply that claims to be JSON but cannot be read (malformed, nested 100,000
deep, a 5,000-digit number, NaN, invalid UTF-8) or is larger than 1 MiB becomes ``ApiError``;
refused credentials ``AuthError``. Stored credentials are only sent to their own authenticate
URL. Tokens and passwords never reach a message: requests are shown through
``PreparedRequest.shown()`` and reasons are scrubbed of both.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NoReturn
from urllib.parse import urlsplit

import aiohttp

from ipsms import __version__, defaults
from ipsms.errors import ApiError, AuthError, NetworkError, NotFoundError, setting
from ipsms.intelepeer.credentials import (
    DEFAULT_AUTH_URL,
    LOGIN_HINT,
    TOKEN_LIFETIME,
    AuthSource,
    CachedToken,
    CredentialStore,
    PasswordAuth,
    StaticToken,
    check_auth_url,
)
from ipsms.intelepeer.replies import (
    EndpointResult,
    extract_token,
    one_line,
    parse_multi_status,
    provision_state,
    server_reason,
    shown,
)
from ipsms.intelepeer.settings import ApiSettings, AuthScheme, Region
from ipsms.intelepeer.strict_json import JsonProblem, is_json_type, parse_json
from ipsms.redact import MASK, mask_headers, mask_url

# Settings named in errors; the CLI words them as its flags.
_API_BASE = setting("api_base")
_AUTH_SCHEME = setting("auth_scheme")
_AUTH_URL = setting("auth_url")
_REGION = setting("region")
_TIMEOUT = setting("timeout")
_TOKEN = setting("token")

__all__ = [
    "AUTH_URL",
    "ApiSettings",
    "AuthScheme",
    "EndpointResult",
    "IntelePeerClient",
    "ProvisionReply",
    "Region",
    "WebhookReply",
    "extract_token",
    "parse_multi_status",
    "provision_request",
    "server_reason",
    "webhook_request",
]

AUTH_URL = DEFAULT_AUTH_URL
AUTH_PATH = "/_rest/v4/authenticate"
WEBHOOK_PATH = "/_rest/v4/my/did/sms/webhook"
PROVISION_PATH = "/_rest/v4/my/did/sms/provision"
JSON_TYPE = "application/json"
DEFAULT_TIMEOUT = defaults.API_TIMEOUT
MAX_REPLY_BYTES = 1024 * 1024  # IntelePeer's replies are a few hundred bytes


@dataclass(frozen=True)
class WebhookReply:
    status: int  # 201 (all updated) or 207 (see results)
    results: tuple[EndpointResult, ...]


@dataclass(frozen=True)
class ProvisionReply:
    number: str
    status: int  # 202, or 409 when (de)provisioning is already in progress
    state: str  # "requested" (or what the server said), "in_progress" for 409
    reason: str | None

    @property
    def in_progress(self) -> bool:
        return self.status == 409


def auth_header(scheme: AuthScheme, token: str) -> str:
    return f"Bearer {token}" if scheme is AuthScheme.bearer else token


@dataclass(frozen=True)
class PreparedRequest:
    """One request exactly as it will be sent (``--dry-run`` prints ``shown()``)."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: dict[str, Any]

    def payload(self) -> bytes:
        return json.dumps(self.body, ensure_ascii=False).encode()

    def shown(self) -> dict[str, Any]:
        """The request with the token, password and webhook credentials masked."""
        body = dict(self.body)
        if isinstance(body.get("webhook"), str):
            body["webhook"] = mask_url(body["webhook"])
        if "password" in body:
            body["password"] = MASK
        return {
            "method": self.method,
            "url": mask_url(self.url),
            "headers": dict(mask_headers(self.headers)),
            "body": body,
        }


def prepare(
    settings: ApiSettings, url: str, body: dict[str, Any], token: str | None
) -> PreparedRequest:
    headers = [
        ("Accept", JSON_TYPE),
        ("Content-Type", JSON_TYPE),
        ("User-Agent", f"ipsms/{__version__}"),
    ]
    if token is not None:
        headers.append(("Authorization", auth_header(settings.scheme, token)))
    return PreparedRequest("POST", url, tuple(headers), body)


def webhook_request(
    settings: ApiSettings, endpoints: Sequence[str], webhook: str, token: str | None = None
) -> PreparedRequest:
    body = {"endpoints": list(endpoints), "webhook": webhook}
    return prepare(settings, settings.url(WEBHOOK_PATH), body, token)


def provision_request(
    settings: ApiSettings, number: str, token: str | None = None
) -> PreparedRequest:
    return prepare(settings, settings.url(PROVISION_PATH), {"endpoints": [number]}, token)


@dataclass(frozen=True)
class Reply:
    status: int
    phrase: str  # the HTTP reason phrase, e.g. "Not Found"
    body: Any  # parsed JSON, or None when the body is not JSON
    text: str

    @property
    def status_line(self) -> str:
        return f"{self.status} {self.phrase}".strip()


class IntelePeerClient:
    """``async with IntelePeerClient(settings, auth, store=...) as api: await api.provision(n)``.

    ``auth_count`` counts the authenticate calls this client made (cache hits make none)."""

    def __init__(
        self,
        settings: ApiSettings,
        auth: AuthSource | None = None,
        *,
        store: CredentialStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.auth = auth
        self.store = store
        self.clock = clock
        self.auth_count = 0
        self._token: CachedToken | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> IntelePeerClient:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout)
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- tokens -------------------------------------------------------------------------

    async def authenticate(self) -> CachedToken:
        """Exchange the username and password for a new token (and cache it)."""
        auth = self.auth
        if not isinstance(auth, PasswordAuth):
            raise AuthError("a username and password are needed to authenticate", hint=LOGIN_HINT)
        url = self.settings.authenticate_url
        check_auth_url(auth, url)  # before anything is sent
        request = prepare(
            self.settings, url, {"username": auth.username, "password": auth.password}, None
        )
        reply = await self._send(request, f"authenticating as {auth.username!r}")
        self.auth_count += 1
        if reply.status == 401:
            raise AuthError(
                f"IntelePeer refused the username {auth.username!r} and its password "
                f"({self._explain(reply)})",
                hint="check them (`ipsms auth login`); the Customer Portal user needs Access = API",
            )
        if reply.status != 200:
            self._fail(reply, f"authenticating as {auth.username!r}", ())
        token = extract_token(reply.body)
        if token is None:
            raise ApiError(
                f"{shown(mask_url(url))} answered {reply.status_line} without a "
                f"token ({self._explain(reply)})",
                hint=f"check {_AUTH_URL}: it must be IntelePeer's authenticate URL",
            )
        if not (token.isascii() and token.isprintable()):  # it goes into a header line
            raise ApiError(
                f"{shown(mask_url(url))} answered {reply.status_line} with a token "
                "that cannot be sent in an HTTP header (control or non-ASCII "
                "characters)",
                hint=f"check {_AUTH_URL}: it must be IntelePeer's authenticate URL",
            )
        now = self.clock()
        self._token = CachedToken(
            token, auth.username, url, now, now + TOKEN_LIFETIME, self.settings.base_url
        )
        if self.store is not None:
            self.store.save_token(self._token)
        return self._token

    async def token(self, *, fresh: bool = False) -> str:
        """A token to call with: given, remembered, cached on disk, or newly fetched."""
        auth = self.auth
        if isinstance(auth, StaticToken):
            return auth.token
        if auth is None:
            raise AuthError("no IntelePeer credentials", hint=LOGIN_HINT)
        now = self.clock()
        if not fresh:
            if self._token is not None and self._token.valid(now):
                return self._token.token
            if self.store is not None:
                cached = self.store.load_token(
                    self.settings.authenticate_url, self.settings.base_url, auth.username, now
                )
                if cached is not None:
                    self._token = cached
                    return cached.token
        return (await self.authenticate()).token

    async def call(self, request_for: Callable[[str], PreparedRequest], what: str) -> Reply:
        """Send with a token; on 401 fetch a new token once and send again."""
        reply = await self._send(request_for(await self.token()), what)
        if reply.status == 401 and isinstance(self.auth, PasswordAuth):
            reply = await self._send(request_for(await self.token(fresh=True)), what)
            if reply.status == 401:
                raise AuthError(
                    f"IntelePeer refused a freshly issued token for {what} "
                    f"({self._explain(reply)})",
                    hint="the API may expect the other header form: try "
                    f"{_AUTH_SCHEME} {self._other_scheme()}",
                )
        elif reply.status == 401:
            raise AuthError(
                f"IntelePeer refused the token from {_TOKEN}/IPSMS_TOKEN for {what} "
                f"({self._explain(reply)})",
                hint="tokens live 24 hours: get a new one, or use a username and "
                "password (`ipsms auth login`) so ipsms renews it; if the token is "
                f"fresh, try {_AUTH_SCHEME} {self._other_scheme()}",
            )
        return reply

    # -- operations ---------------------------------------------------------------------

    async def set_webhook(self, endpoints: Sequence[str], webhook: str) -> WebhookReply:
        """201 -> every number updated; 207 -> one result per number; anything else raises."""
        numbers = tuple(endpoints)
        what = f"setting the webhook of {', '.join(numbers)}"
        reply = await self.call(
            lambda tok: webhook_request(self.settings, numbers, webhook, tok), what
        )
        if reply.status in (200, 201):
            return WebhookReply(
                reply.status, tuple(EndpointResult(n, reply.status, None) for n in numbers)
            )
        if reply.status == 207:
            results = parse_multi_status(reply.body, numbers)
            if results is None:
                raise ApiError(
                    f"IntelePeer answered {reply.status_line} for {what} but the "
                    f"per-number results cannot be read ({self._explain(reply)})",
                    hint="check the numbers in the Customer Portal",
                )
            return WebhookReply(
                207,
                tuple(EndpointResult(r.number, r.status, self._shown(r.reason)) for r in results),
            )
        self._fail(
            reply,
            what,
            numbers,
            "numbers must be E.164 (+13038675309) or short codes "
            "(1-1234) and enabled for SMS (`ipsms provision TN`); the webhook must be "
            "an absolute http(s) URL",
        )

    async def provision(self, number: str) -> ProvisionReply:
        """202 -> requested; 409 -> already in progress (returned, not raised); else raises."""
        what = f"enabling SMS on {number}"
        reply = await self.call(lambda tok: provision_request(self.settings, number, tok), what)
        if reply.status in (200, 201, 202):
            return ProvisionReply(number, reply.status, provision_state(reply.body), None)
        if reply.status == 409:
            return ProvisionReply(number, 409, "in_progress", self._reason(reply))
        self._fail(
            reply,
            what,
            (number,),
            "provision takes one E.164 long code of this account that is not yet enabled for SMS",
        )

    # -- transport and errors -----------------------------------------------------------

    async def _send(self, request: PreparedRequest, what: str) -> Reply:
        if self._session is None:
            raise RuntimeError("use IntelePeerClient inside `async with`")
        host = shown(urlsplit(request.url).netloc.rpartition("@")[2])
        try:
            async with self._session.request(
                request.method,
                request.url,
                headers=list(request.headers),
                data=request.payload(),
                allow_redirects=False,
            ) as resp:
                status, phrase = resp.status, shown(one_line(resp.reason or "", 80))
                raw = await _read_limited(resp, f"{host} answered {status} {phrase} while {what}")
                json_type = is_json_type(resp.headers.get("Content-Type", ""))
        except TimeoutError:
            raise NetworkError(
                f"no answer from {host} within {self.settings.timeout:g} s while {what}",
                hint=f"check your network, or raise {_TIMEOUT}",
            ) from None
        except aiohttp.ClientConnectorError as exc:
            cause = exc.os_error.strerror if exc.os_error and exc.os_error.strerror else exc
            raise NetworkError(
                f"cannot connect to {host} while {what}: {cause}",
                hint=f"check your network, {_REGION}, {_API_BASE} and {_AUTH_URL}",
            ) from None
        except aiohttp.ClientError as exc:
            raise NetworkError(
                f"the connection to {host} failed while {what}: "
                f"{type(exc).__name__}: {self._shown(one_line(str(exc)))}",
                hint=f"try again; check {_API_BASE} and {_AUTH_URL}",
            ) from None
        text = raw.decode("utf-8", errors="replace")
        body: Any = None
        if text.strip():
            try:
                body = parse_json(raw, allow_surrogates=True)
            except JsonProblem as exc:
                if json_type or text.lstrip()[:1] in ("{", "["):  # meant to be JSON
                    raise self._unreadable(status, phrase, host, what, str(exc), text) from None
                # plain text or HTML: kept as text, shown as the reason
        return Reply(status, phrase, body, text)

    def _unreadable(
        self, status: int, phrase: str, host: str, what: str, problem: str, text: str
    ) -> ApiError:
        excerpt = self._shown(one_line(text, 60))
        return ApiError(
            f"{host} answered {status} {phrase}".rstrip() + f" while {what}, but "
            f"the reply was not readable JSON ({problem}), starting {excerpt}",
            hint="IntelePeer had a problem: try again in a few minutes"
            if status >= 500
            else f"check {_API_BASE} and {_AUTH_URL}: they must "
            "point at IntelePeer's API (or `ipsms api-emulator`)",
        )

    def _reason(self, reply: Reply) -> str:
        return self._shown(server_reason(reply.body, reply.text)) or "no reason given"

    def _explain(self, reply: Reply) -> str:
        """``404 Not Found: +1303... was not found``; says so when the body is not JSON."""
        reason = self._reason(reply)
        if reply.body is None and reply.text.strip():
            return f"{reply.status_line}, body is not JSON: {reason}"
        return (
            reply.status_line
            if reason in (reply.phrase, "no reason given")
            else (f"{reply.status_line}: {reason}")
        )

    def _shown(self, text: str | None) -> str | None:
        """Server text as it may be printed: secrets removed, then controls escaped."""
        scrubbed = self._scrub(text)
        return shown(scrubbed) if scrubbed else scrubbed

    def _scrub(self, text: str | None) -> str | None:
        """Remove any secret the server may have echoed back."""
        if not text:
            return text
        secrets = []
        if isinstance(self.auth, PasswordAuth):
            secrets.append(self.auth.password)
        if isinstance(self.auth, StaticToken):
            secrets.append(self.auth.token)
        if self._token is not None:
            secrets.append(self._token.token)
        for secret in secrets:
            if len(secret) >= 3:
                text = text.replace(secret, MASK)
        return text

    def _other_scheme(self) -> str:
        return "raw" if self.settings.scheme is AuthScheme.bearer else "bearer"

    def _fail(
        self, reply: Reply, what: str, numbers: Sequence[str], bad_request_hint: str = ""
    ) -> NoReturn:
        message = f"IntelePeer refused {what} ({self._explain(reply)})"
        if reply.status == 400:
            raise ApiError(message, hint=bad_request_hint or "read the reason above")
        if reply.status == 404:
            raise NotFoundError(
                message,
                hint="check that "
                f"{' and '.join(numbers) or 'the number'} belongs to this "
                f"IntelePeer account and region (EU numbers need {_REGION} eu)",
            )
        if reply.status == 401:
            raise AuthError(message, hint=LOGIN_HINT)
        if reply.status >= 500:
            raise ApiError(message, hint="IntelePeer had a problem: try again in a few minutes")
        raise ApiError(
            message,
            hint=f"check {_API_BASE}/{_REGION}; this status is not documented for this call",
        )


async def _read_limited(resp: aiohttp.ClientResponse, answered: str) -> bytes:
    """The whole body, or ``ApiError`` once it passes ``MAX_REPLY_BYTES`` (a server that never
    stops sending must not fill the memory before the timeout)."""
    chunks, size = [], 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_REPLY_BYTES:
            raise ApiError(
                f"{answered}, with a reply larger than {MAX_REPLY_BYTES} bytes",
                hint=f"check {_API_BASE} and {_AUTH_URL}: they must point at "
                "IntelePeer's API (or `ipsms api-emulator`)",
            )
        chunks.append(chunk)
    return b"".join(chunks)
