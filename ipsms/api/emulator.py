"""A local, faithful IntelePeer configuration API (intelepeer.md section 2) for tests and
offline scripts: authenticate (200 token / 401), set-webhook (201 / 207 per endpoint in request
order / 400 / 404 / 401) and provision (202 requested / 409 in progress / 400 / 401) on one port.

Answers follow the request and ``EmulatorState`` (users, the account's numbers, which are SMS
enabled, tokens that expire). Every API request is recorded exactly in ``state.requests``;
``/_emulator/...`` control endpoints serve a masked view and let scripts expire tokens, add
numbers and inject faults. Bearer and bare-token headers are both accepted. IntelePeer documents
no bodies beyond the status; the emulator's are ``{"code", "error", "message"}`` objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from http import HTTPStatus
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from ipsms.api.client import AUTH_PATH, PROVISION_PATH, WEBHOOK_PATH
from ipsms.errors import BindError
from ipsms.numbers import E164_RE, SHORT_CODE_RE
from ipsms.redact import MASK, mask_headers, mask_url

DEFAULT_PORT = 8766
DEMO_USER = "demo"
DEMO_PASSWORD = "demo-password"  # documented in docs/api-emulator.md; never printed
DEMO_NUMBERS = ("+13035550100", "+13035550101", "+13035550102", "1-12345")
DEMO_NUMBERS_NO_SMS = ("+13035550199",)
TOKEN_LIFETIME = 24 * 3600.0
PROVISION_SECONDS = 60.0


class MultiStatus(StrEnum):
    always = "always"  # several endpoints -> 207, as the doc describes
    mixed = "mixed"  # several endpoints -> 201 when all succeed, 207 otherwise


@dataclass
class EmulatedNumber:
    number: str
    sms_enabled: bool = True
    webhook: str | None = None
    provisioning_until: float | None = None  # SMS provisioning in progress until this time


@dataclass(frozen=True)
class RecordedRequest:
    """One API request exactly as received, and the status the emulator answered."""

    time: float
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    text: str
    json: Any  # the parsed body; None when it is not JSON
    status: int

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def to_dict(self) -> dict[str, Any]:
        """The masked view served by ``GET /_emulator/requests``."""
        body = self.json
        if isinstance(body, dict):
            body = dict(body)
            if "password" in body:
                body["password"] = MASK
            if isinstance(body.get("webhook"), str):
                body["webhook"] = mask_url(body["webhook"])
        return {"time": self.time, "method": self.method, "path": self.path,
                "headers": dict(mask_headers(self.headers)), "json": body,
                "status": self.status}


@dataclass(frozen=True)
class Fault:
    """A canned answer for the next ``times`` API requests (to ``path``, or any)."""

    status: int = 503
    body: str = "<html><body>Service Unavailable</body></html>"
    content_type: str = "text/html"
    path: str | None = None
    times: int = 1
    delay: float = 0.0  # seconds to wait before answering (client timeouts)


@dataclass
class EmulatorState:
    """Everything the emulator knows. Tests change it between requests."""

    users: dict[str, str] = field(default_factory=dict)
    numbers: dict[str, EmulatedNumber] = field(default_factory=dict)
    token_lifetime: float = TOKEN_LIFETIME
    provision_seconds: float = PROVISION_SECONDS
    multi_status: MultiStatus = MultiStatus.always
    clock: Callable[[], float] = time.time
    requests: list[RecordedRequest] = field(default_factory=list)
    tokens: dict[str, tuple[str, float]] = field(default_factory=dict)  # token -> user, expiry
    faults: list[Fault] = field(default_factory=list)
    observers: list[Callable[[RecordedRequest], None]] = field(default_factory=list)

    # -- set-up ---------------------------------------------------------------------------

    def add_user(self, username: str, password: str) -> None:
        self.users[username] = password

    def add_number(self, number: str, *, sms_enabled: bool = True, webhook: str | None = None,
                   provisioning: bool = False) -> EmulatedNumber:
        until = self.clock() + self.provision_seconds if provisioning else None
        entry = EmulatedNumber(number, sms_enabled and not provisioning, webhook, until)
        self.numbers[number] = entry
        return entry

    def number(self, number: str) -> EmulatedNumber | None:
        entry = self.numbers.get(number)
        if entry is not None and entry.provisioning_until is not None \
                and self.clock() >= entry.provisioning_until:
            entry.provisioning_until, entry.sms_enabled = None, True
        return entry

    def inject_fault(self, fault: Fault) -> None:
        self.faults.append(fault)

    # -- tokens ---------------------------------------------------------------------------

    def issue_token(self, username: str) -> str:
        token = "emu-" + secrets.token_urlsafe(24)
        self.tokens[token] = (username, self.clock() + self.token_lifetime)
        return token

    def token_user(self, token: str) -> str | None:
        entry = self.tokens.get(token)
        if entry is None:
            return None
        if self.clock() >= entry[1]:
            del self.tokens[token]
            return None
        return entry[0]

    def expire_tokens(self) -> int:
        """Every token issued so far stops working (as after 24 hours)."""
        count = len(self.tokens)
        self.tokens.clear()
        return count

    def revoke_token(self, token: str) -> bool:
        return self.tokens.pop(token, None) is not None

    def finish_provisioning(self) -> int:
        """Complete every provisioning in progress now."""
        done = [n for n in self.numbers.values() if n.provisioning_until is not None]
        for entry in done:
            entry.provisioning_until, entry.sms_enabled = None, True
        return len(done)

    # -- the record -----------------------------------------------------------------------

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.split("?")[0] == path]

    def clear_requests(self) -> int:
        count = len(self.requests)
        self.requests.clear()
        return count

    def take_fault(self, path: str) -> Fault | None:
        for index, fault in enumerate(self.faults):
            if fault.path in (None, path):
                if fault.times <= 1:
                    del self.faults[index]
                else:
                    self.faults[index] = replace(fault, times=fault.times - 1)
                return fault
        return None


# -- the application --------------------------------------------------------------------

STATE: web.AppKey[EmulatorState] = web.AppKey("emulator_state", EmulatorState)
Answer = tuple[int, Any]
UNAUTHORIZED: Answer = (401, {"code": 401, "error": "Unauthorized"})  # intelepeer.md 2.1


def _error(status: int, message: str | None = None) -> Answer:
    body: dict[str, Any] = {"code": status, "error": HTTPStatus(status).phrase}
    if message:
        body["message"] = message
    return status, body


def _valid_url(value: Any) -> bool:
    if not isinstance(value, str) or any(c.isspace() for c in value):
        return False
    try:
        parts = urlsplit(value)
        _ = parts.port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


class _Api:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.routes: dict[str, Callable[[web.Request, Any], Answer]] = {
            AUTH_PATH: self.authenticate, WEBHOOK_PATH: self.set_webhook,
            PROVISION_PATH: self.provision}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        text = raw.decode("utf-8", errors="replace")
        try:
            body: Any = json.loads(text) if text.strip() else None
        except ValueError:
            body = None
        fault = self.state.take_fault(request.path)
        response: web.StreamResponse
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            response = web.Response(status=fault.status, text=fault.body,
                                    content_type=fault.content_type)
        else:
            route = self.routes.get(request.path)
            if route is None:
                status, answer = _error(404, f"no such API path: {request.path}")
            elif request.method != "POST":
                status, answer = _error(405, f"{request.method} is not allowed: use POST")
            else:
                status, answer = route(request, body)
            response = web.json_response(answer, status=status)
        record = RecordedRequest(self.state.clock(), request.method, request.path_qs,
                                 tuple(request.headers.items()), text, body, response.status)
        self.state.requests.append(record)
        for observer in self.state.observers:
            observer(record)
        return response

    def _user(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "").strip()
        token = header[7:].strip() if header[:7].lower() == "bearer " else header
        return self.state.token_user(token) if token else None

    def authenticate(self, request: web.Request, body: Any) -> Answer:
        if not isinstance(body, dict) or not isinstance(body.get("username"), str) \
                or not isinstance(body.get("password"), str):
            return _error(400, "username and password are required")
        expected = self.state.users.get(body["username"])
        if expected is None or not secrets.compare_digest(expected.encode(),
                                                          body["password"].encode()):
            return UNAUTHORIZED
        return 200, {"token": self.state.issue_token(body["username"])}

    def set_webhook(self, request: web.Request, body: Any) -> Answer:
        if self._user(request) is None:
            return UNAUTHORIZED
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object with endpoints and webhook")
        endpoints = body.get("endpoints")
        if not isinstance(endpoints, list) or not endpoints \
                or not all(isinstance(e, str) for e in endpoints):
            return _error(400, "endpoints must be a non-empty list of numbers")
        webhook = body.get("webhook")
        if not _valid_url(webhook):
            return _error(400, "webhook must be an absolute http or https URL")
        results = [self._set_one(e, str(webhook)) for e in endpoints]
        if len(results) == 1:
            return results[0]
        if self.state.multi_status is MultiStatus.mixed and all(s == 201 for s, _ in results):
            return 201, {"code": 201, "message": f"Webhook updated for {len(results)} endpoints"}
        return 207, [{"endpoint": e, **item} for e, (_, item) in zip(endpoints, results,
                                                                       strict=True)]

    def _set_one(self, endpoint: str, webhook: str) -> Answer:
        if not (E164_RE.match(endpoint) or SHORT_CODE_RE.match(endpoint)):
            return _error(400, f"{endpoint} is not an E.164 number or a short code")
        entry = self.state.number(endpoint)
        if entry is None:
            return _error(404, f"{endpoint} was not found in the account")
        if not entry.sms_enabled:
            return _error(400, f"{endpoint} is not enabled for SMS")
        entry.webhook = webhook
        return 201, {"code": 201, "message": "Webhook updated"}

    def provision(self, request: web.Request, body: Any) -> Answer:
        if self._user(request) is None:
            return UNAUTHORIZED
        endpoints = body.get("endpoints") if isinstance(body, dict) else None
        if not isinstance(endpoints, list) or len(endpoints) != 1 \
                or not isinstance(endpoints[0], str):
            return _error(400, "endpoints must hold exactly one E.164 long code")
        number = endpoints[0]
        if not E164_RE.match(number):
            return _error(400, f"{number} is not an E.164 long code")
        entry = self.state.number(number)
        if entry is None:
            return _error(400, f"{number} was not found in the account")
        if entry.provisioning_until is not None:
            return _error(409, f"provisioning or deprovisioning of {number} is already in "
                          "progress")
        if entry.sms_enabled:
            return _error(400, f"{number} is already enabled for SMS")
        if self.state.provision_seconds > 0:
            entry.provisioning_until = self.state.clock() + self.state.provision_seconds
        else:
            entry.sms_enabled = True
        return 202, {"code": 202, "provisioning": {"state": "requested"}}


def create_app(state: EmulatorState | None = None) -> web.Application:
    """The emulator application (not running): serve it, or hand it to ``aiohttp_client``."""
    app = web.Application()
    app[STATE] = state if state is not None else build_state()
    api = _Api(app[STATE])
    _add_control_routes(app, app[STATE])
    app.router.add_route("*", "/{tail:.*}", api.handle)
    return app


def _add_control_routes(app: web.Application, state: EmulatorState) -> None:
    async def requests(request: web.Request) -> web.Response:
        if request.method == "DELETE":
            return web.json_response({"cleared": state.clear_requests()})
        return web.json_response({"requests": [r.to_dict() for r in state.requests]})

    def bad(message: str) -> web.HTTPBadRequest:
        return web.HTTPBadRequest(text=json.dumps({"error": message}),
                                  content_type="application/json")

    async def control_body(request: web.Request) -> dict[str, Any]:
        try:
            data = await request.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise bad("the body must be a JSON object")
        return data

    async def numbers(request: web.Request) -> web.Response:
        if request.method == "POST":
            data = await control_body(request)
            if not isinstance(data.get("number"), str):
                raise bad("number is required")
            state.add_number(data["number"], sms_enabled=bool(data.get("sms_enabled", True)),
                             webhook=data.get("webhook"),
                             provisioning=bool(data.get("provisioning", False)))
        return web.json_response({"numbers": [
            {"number": n.number, "sms_enabled": n.sms_enabled,
             "webhook": mask_url(n.webhook) if n.webhook else None,
             "provisioning": n.provisioning_until is not None}
            for n in (state.number(k) for k in list(state.numbers)) if n is not None]})

    async def expire(_: web.Request) -> web.Response:
        return web.json_response({"expired": state.expire_tokens()})

    async def finish(_: web.Request) -> web.Response:
        return web.json_response({"finished": state.finish_provisioning()})

    async def faults(request: web.Request) -> web.Response:
        data = await control_body(request)
        path = data.get("path")
        try:
            fault = Fault(status=int(data.get("status", Fault.status)),
                          body=str(data.get("body", Fault.body)),
                          content_type=str(data.get("content_type", Fault.content_type)),
                          path=path if isinstance(path, str) else None,
                          times=int(data.get("times", 1)), delay=float(data.get("delay", 0)))
        except (TypeError, ValueError):
            raise bad("status, times and delay must be numbers") from None
        state.inject_fault(fault)
        return web.json_response({"faults": len(state.faults)})

    for method, path, handler in (("GET", "requests", requests), ("DELETE", "requests", requests),
                                  ("GET", "numbers", numbers), ("POST", "numbers", numbers)):
        app.router.add_route(method, f"/_emulator/{path}", handler)
    app.router.add_post("/_emulator/tokens/expire", expire)
    app.router.add_post("/_emulator/provisioning/finish", finish)
    app.router.add_post("/_emulator/faults", faults)


# -- running it ---------------------------------------------------------------------------

class EmulatorServer:
    """The emulator bound to a port: ``await start()`` (port 0 picks a free one), ``stop()``."""

    def __init__(self, state: EmulatorState | None = None, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.state = state if state is not None else build_state()
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def api_base(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def auth_url(self) -> str:
        return self.api_base + AUTH_PATH

    async def start(self) -> EmulatorServer:
        self._runner = web.AppRunner(create_app(self.state), handle_signals=False,
                                     access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise BindError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}",
                            hint="choose another --port, or --port 0 for a free one") from None
        self.port = int(next(iter(self._runner.addresses or [(None, self.port)]))[1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def serve(server: EmulatorServer, on_ready: Callable[[EmulatorServer], None]) -> None:
    """Start ``server``, call ``on_ready``, serve until SIGINT/SIGTERM, then stop cleanly."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    await server.start()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        on_ready(server)
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await server.stop()


class EmulatorThread:
    """The emulator on its own event loop in a background thread, for synchronous tests::

        with EmulatorThread(state) as emu:
            subprocess.run(["ipsms", "provision", "+13035550199",
                            "--api-base", emu.api_base, "--auth-url", emu.auth_url])

    Change ``emu.state`` only between requests (the emulator runs in the other thread)."""

    def __init__(self, state: EmulatorState | None = None, port: int = 0) -> None:
        self.server = EmulatorServer(state, port=port)
        self.state = self.server.state
        self.api_base = self.auth_url = ""  # known once started
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ipsms-emulator",
                                        daemon=True)

    def __enter__(self) -> EmulatorThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(timeout=10)
        self.api_base, self.auth_url = self.server.api_base, self.server.auth_url
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()


def build_state(users: Mapping[str, str] | None = None, numbers: Iterable[str] = (),
                numbers_without_sms: Iterable[str] = (), **settings: Any) -> EmulatorState:
    """A state from CLI-style lists; the demo account when neither users nor numbers given."""
    numbers, without = list(numbers), list(numbers_without_sms)
    if not users and not numbers and not without:
        users, numbers, without = {}, list(DEMO_NUMBERS), list(DEMO_NUMBERS_NO_SMS)
    state = EmulatorState(**settings)
    for name, password in (users or {DEMO_USER: DEMO_PASSWORD}).items():
        state.add_user(name, password)
    for number in numbers:
        state.add_number(number)
    for number in without:
        state.add_number(number, sms_enabled=False)
    return state
