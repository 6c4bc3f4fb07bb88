"""Async client for IntelePeer's configuration API (intelepeer.md section 2).

Authenticate, set a number's inbound webhook, enable SMS on a number. Every reply is parsed
leniently (only the status codes are documented) and the server's own reason text is kept for
the error. Network failures, timeouts and unreadable bodies become ``NetworkError`` /
``ApiError``; refused credentials ``AuthError``. Tokens and passwords never reach a message:
requests are shown through ``PreparedRequest.shown()`` and reasons are scrubbed of both.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any, NoReturn
from urllib.parse import urlsplit

import aiohttp

from ipsms import __version__
from ipsms.api.credentials import (
    LOGIN_HINT,
    TOKEN_LIFETIME,
    AuthSource,
    CachedToken,
    CredentialStore,
    PasswordAuth,
    StaticToken,
)
from ipsms.errors import ApiError, AuthError, NetworkError, NotFoundError, UsageError
from ipsms.redact import MASK, mask_headers, mask_url

AUTH_URL = "https://customer.intelepeer.com/_rest/v4/authenticate"
AUTH_PATH = "/_rest/v4/authenticate"
WEBHOOK_PATH = "/_rest/v4/my/did/sms/webhook"
PROVISION_PATH = "/_rest/v4/my/did/sms/provision"
JSON_TYPE = "application/json"
DEFAULT_TIMEOUT = 30.0


class Region(StrEnum):
    us = "us"
    eu = "eu"


REGION_BASES = {Region.us: "https://api.intelepeer.com", Region.eu: "https://eu.api.intelepeer.com"}


class AuthScheme(StrEnum):
    bearer = "bearer"  # Authorization: Bearer <token> (most SMS pages, real client code)
    raw = "raw"  # Authorization: <token> (one SMS page, the portal APIs)


@dataclass(frozen=True)
class EndpointResult:
    number: str
    status: int  # 0 when the server's answer gave no status for this number
    reason: str | None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


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


# -- lenient parsing: only the status codes are documented, so accept the likely shapes --

_REASON_KEYS = ("message", "error_description", "error", "reason", "detail", "description",
                "errors", "msg", "status")
_NUMBER_KEYS = ("endpoint", "number", "tn", "did", "telephoneNumber", "phoneNumber")
_STATUS_KEYS = ("code", "status", "statusCode", "status_code", "httpStatus", "http_status")
_LIST_KEYS = ("results", "endpoints", "data", "items", "responses", "statuses")
_OK_WORDS = frozenset({"ok", "success", "succeeded", "updated", "created", "set"})


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def server_reason(body: Any, text: str = "") -> str | None:
    """The server's own words: a message/error field, a string body, or the raw text."""
    if isinstance(body, dict):
        for key in _REASON_KEYS:
            value = body.get(key)
            if isinstance(value, list):  # e.g. {"errors": [{"message": ...}, "text"]}
                value = "; ".join(p for v in value if (
                    p := server_reason(v) if isinstance(v, dict) else str(v)))
            elif isinstance(value, dict):
                value = server_reason(value)
            if isinstance(value, str) and value.strip() and not (
                    key == "status" and value.strip().isdigit()):
                return _one_line(value)
        return None
    if isinstance(body, str) and body.strip():
        return _one_line(body)
    if body is None and text.strip():
        return _one_line(text, 200)
    return None


def extract_token(body: Any) -> str | None:
    if isinstance(body, dict):
        for key in ("token", "access_token", "accessToken", "authToken"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                value = value.strip()
                return value[7:].strip() if value.lower().startswith("bearer ") else value
        for key in ("data", "result"):
            if isinstance(body.get(key), dict):
                return extract_token(body[key])
    return None


def provision_state(body: Any) -> str:
    if isinstance(body, dict):
        prov = body.get("provisioning")
        if isinstance(prov, dict) and isinstance(prov.get("state"), str):
            return str(prov["state"])
        if isinstance(body.get("state"), str):
            return str(body["state"])
    return "requested"


def _item_status(item: Any) -> int:
    if isinstance(item, bool):
        return 201 if item else 0
    if isinstance(item, int):
        return item
    if not isinstance(item, dict):
        return 0
    for key in _STATUS_KEYS:
        value = item.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().isdigit():
            return int(value.strip())
        if isinstance(value, str) and value.strip().lower() in _OK_WORDS:
            return 201
    if item.get("success") is True or item.get("ok") is True:
        return 201
    return 0


def _item_number(item: Any) -> str | None:
    found = [item[k] for k in _NUMBER_KEYS if isinstance(item, dict) and isinstance(
        item.get(k), str)]
    return str(found[0]) if found else None


def parse_multi_status(body: Any, endpoints: Sequence[str]) -> list[EndpointResult] | None:
    """One result per requested number, matched by the number an item names, else by order
    (the doc says the list is in request order). None when no list can be found."""
    items = body if isinstance(body, list) else None
    if isinstance(body, dict):
        for key in _LIST_KEYS:
            if isinstance(body.get(key), list):
                items = body[key]
                break
    if items is None:
        return None
    named = {n: item for item in items if (n := _item_number(item)) is not None}
    results = []
    for index, number in enumerate(endpoints):
        item = named.get(number) if named else (items[index] if index < len(items) else None)
        if item is None:
            results.append(EndpointResult(number, 0, "the answer has no result for this number"))
            continue
        status = _item_status(item)
        reason = server_reason(item) if isinstance(item, dict) else None
        if status == 0 and reason is None:
            reason = "the answer gives no status for this number"
        results.append(EndpointResult(number, status, reason))
    return results


def _check_url(value: str, option: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{option} {mask_url(value)!r} is not an absolute http(s) URL",
                         hint=f"e.g. {option} https://api.intelepeer.com")


@dataclass(frozen=True)
class ApiSettings:
    """Where and how to call: region or explicit base URLs, header scheme, timeout."""

    region: Region = Region.us
    api_base: str | None = None  # overrides the region's base URL (staging, the emulator)
    auth_url: str | None = None  # overrides the authenticate URL
    scheme: AuthScheme = AuthScheme.bearer
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        if self.api_base is not None:
            _check_url(self.api_base, "--api-base")
        if self.auth_url is not None:
            _check_url(self.auth_url, "--auth-url")
        if not self.timeout > 0:
            raise UsageError(f"timeout {self.timeout} must be more than 0 seconds")

    @property
    def base_url(self) -> str:
        return (self.api_base or REGION_BASES[self.region]).rstrip("/")

    @property
    def authenticate_url(self) -> str:
        return self.auth_url or AUTH_URL

    def url(self, path: str) -> str:
        return self.base_url + path


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
        return {"method": self.method, "url": mask_url(self.url),
                "headers": dict(mask_headers(self.headers)), "body": body}


def prepare(settings: ApiSettings, url: str, body: dict[str, Any],
            token: str | None) -> PreparedRequest:
    headers = [("Accept", JSON_TYPE), ("Content-Type", JSON_TYPE),
               ("User-Agent", f"ipsms/{__version__}")]
    if token is not None:
        headers.append(("Authorization", auth_header(settings.scheme, token)))
    return PreparedRequest("POST", url, tuple(headers), body)


def webhook_request(settings: ApiSettings, endpoints: Sequence[str], webhook: str,
                    token: str | None = None) -> PreparedRequest:
    body = {"endpoints": list(endpoints), "webhook": webhook}
    return prepare(settings, settings.url(WEBHOOK_PATH), body, token)


def provision_request(settings: ApiSettings, number: str,
                      token: str | None = None) -> PreparedRequest:
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

    def __init__(self, settings: ApiSettings, auth: AuthSource | None = None, *,
                 store: CredentialStore | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.auth = auth
        self.store = store
        self.clock = clock
        self.auth_count = 0
        self._token: CachedToken | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> IntelePeerClient:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout))
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- tokens -------------------------------------------------------------------------

    async def authenticate(self) -> CachedToken:
        """Exchange the username and password for a new token (and cache it)."""
        auth = self.auth
        if not isinstance(auth, PasswordAuth):
            raise AuthError("a username and password are needed to authenticate",
                            hint=LOGIN_HINT)
        url = self.settings.authenticate_url
        request = prepare(self.settings, url, {"username": auth.username,
                                               "password": auth.password}, None)
        reply = await self._send(request, f"authenticating as {auth.username!r}")
        self.auth_count += 1
        if reply.status == 401:
            raise AuthError(
                f"IntelePeer refused the username {auth.username!r} and its password "
                f"({self._explain(reply)})",
                hint="check them (`ipsms auth login`); the Customer Portal user needs "
                "Access = API")
        if reply.status != 200:
            self._fail(reply, f"authenticating as {auth.username!r}", ())
        token = extract_token(reply.body)
        if token is None:
            raise ApiError(f"{mask_url(url)} answered {reply.status_line} without a token "
                           f"({self._explain(reply)})",
                           hint="check --auth-url: it must be IntelePeer's authenticate URL")
        now = self.clock()
        self._token = CachedToken(token, auth.username, url, now, now + TOKEN_LIFETIME)
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
                cached = self.store.load_token(self.settings.authenticate_url, auth.username,
                                               now)
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
                raise AuthError(f"IntelePeer refused a freshly issued token for {what} "
                                f"({self._explain(reply)})",
                                hint="the API may expect the other header form: try "
                                f"--auth-scheme {self._other_scheme()}")
        elif reply.status == 401:
            raise AuthError(f"IntelePeer refused the token from "
                            f"{getattr(self.auth, 'source', 'the token')} for {what} "
                            f"({self._explain(reply)})",
                            hint="tokens live 24 hours: get a new one, or use a username and "
                            "password (`ipsms auth login`) so ipsms renews it; if the token is "
                            f"fresh, try --auth-scheme {self._other_scheme()}")
        return reply

    # -- operations ---------------------------------------------------------------------

    async def set_webhook(self, endpoints: Sequence[str], webhook: str) -> WebhookReply:
        """201 -> every number updated; 207 -> one result per number; anything else raises."""
        numbers = tuple(endpoints)
        what = f"setting the webhook of {', '.join(numbers)}"
        reply = await self.call(
            lambda tok: webhook_request(self.settings, numbers, webhook, tok), what)
        if reply.status in (200, 201):
            return WebhookReply(reply.status, tuple(
                EndpointResult(n, reply.status, None) for n in numbers))
        if reply.status == 207:
            results = parse_multi_status(reply.body, numbers)
            if results is None:
                raise ApiError(f"IntelePeer answered {reply.status_line} for {what} but the "
                               f"per-number results cannot be read ({self._explain(reply)})",
                               hint="check the numbers in the Customer Portal")
            return WebhookReply(207, tuple(
                EndpointResult(r.number, r.status, self._scrub(r.reason)) for r in results))
        self._fail(reply, what, numbers, "numbers must be E.164 (+13038675309) or short codes "
                   "(1-1234) and enabled for SMS (`ipsms provision TN`); the webhook must be "
                   "an absolute http(s) URL")

    async def provision(self, number: str) -> ProvisionReply:
        """202 -> requested; 409 -> already in progress (returned, not raised); else raises."""
        what = f"enabling SMS on {number}"
        reply = await self.call(
            lambda tok: provision_request(self.settings, number, tok), what)
        if reply.status in (200, 201, 202):
            return ProvisionReply(number, reply.status, provision_state(reply.body), None)
        if reply.status == 409:
            return ProvisionReply(number, 409, "in_progress", self._reason(reply))
        self._fail(reply, what, (number,), "provision takes one E.164 long code of this "
                   "account that is not yet enabled for SMS")

    # -- transport and errors -----------------------------------------------------------

    async def _send(self, request: PreparedRequest, what: str) -> Reply:
        if self._session is None:
            raise RuntimeError("use IntelePeerClient inside `async with`")
        host = urlsplit(request.url).netloc.rpartition("@")[2]
        try:
            async with self._session.request(request.method, request.url,
                                             headers=list(request.headers),
                                             data=request.payload(),
                                             allow_redirects=False) as resp:
                raw = await resp.read()
                status, phrase = resp.status, resp.reason or ""
        except TimeoutError:
            raise NetworkError(f"no answer from {host} within {self.settings.timeout:g} s "
                               f"while {what}",
                               hint="check your network, or raise --timeout") from None
        except aiohttp.ClientConnectorError as exc:
            cause = exc.os_error.strerror if exc.os_error and exc.os_error.strerror else exc
            raise NetworkError(f"cannot connect to {host} while {what}: {cause}",
                               hint="check your network, --region, --api-base and --auth-url"
                               ) from None
        except aiohttp.ClientError as exc:
            raise NetworkError(f"the connection to {host} failed while {what}: "
                               f"{type(exc).__name__}: {self._scrub(str(exc))}",
                               hint="try again; check --api-base and --auth-url") from None
        text = raw.decode("utf-8", errors="replace")
        try:
            body: Any = json.loads(text) if text.strip() else None
        except ValueError:
            body = None
        return Reply(status, phrase, body, text)

    def _reason(self, reply: Reply) -> str:
        return self._scrub(server_reason(reply.body, reply.text)) or "no reason given"

    def _explain(self, reply: Reply) -> str:
        """``404 Not Found: +1303... was not found``; says so when the body is not JSON."""
        reason = self._reason(reply)
        if reply.body is None and reply.text.strip():
            return f"{reply.status_line}, body is not JSON: {reason}"
        return reply.status_line if reason in (reply.phrase, "no reason given") else (
            f"{reply.status_line}: {reason}")

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

    def _fail(self, reply: Reply, what: str, numbers: Sequence[str],
              bad_request_hint: str = "") -> NoReturn:
        message = f"IntelePeer refused {what} ({self._explain(reply)})"
        if reply.status == 400:
            raise ApiError(message, hint=bad_request_hint or "read the reason above")
        if reply.status == 404:
            raise NotFoundError(message, hint="check that "
                                f"{' and '.join(numbers) or 'the number'} belongs to this "
                                "IntelePeer account and region (EU numbers need --region eu)")
        if reply.status == 401:
            raise AuthError(message, hint=LOGIN_HINT)
        if reply.status >= 500:
            raise ApiError(message, hint="IntelePeer had a problem: try again in a few minutes")
        raise ApiError(message, hint="check --api-base/--region; this status is not "
                       "documented for this call")
