"""A local, faithful IntelePeer configuration API (intelepeer.md section 2) for tests and
offline scripts: authenticate (200 token / 401), set-webhook (201 / 207 per endpoint in request
order / 400 / 404 / 401) and provision (202 requested / 409 in progress / 400 / 401) on one port,
and the send API an app replies through (202 CREATED; every message kept in ``state.sent``) with
its status call (MDR).

Answers follow the request and ``EmulatorState`` (users, the account's numbers, which are SMS
enabled, tokens that expire; ``ipsms.intelepeer.emulator_state``). Every API request is recorded
exactly in ``state.requests``; ``/_emulator/...`` control endpoints serve a masked view and let
scripts expire tokens, add numbers and inject faults. Bearer and bare-token headers are both
accepted. IntelePeer documents no bodies beyond the status; the emulator's are
``{"code", "error", "message"}`` objects.

It is safe to point anything at: every body is read with ``strict_json`` (UTF-8, no NaN, no
5,000-digit numbers, no lone surrogates, at most 64 levels deep) and every field's type is
checked, so a bad request gets a 4xx that says why (415 for a declared non-JSON content type)
and the next request is answered as if it never happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import signal
import threading
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from ipsms import defaults
from ipsms.errors import BindError, setting
from ipsms.intelepeer.client import AUTH_PATH, PROVISION_PATH, WEBHOOK_PATH
from ipsms.intelepeer.emulator_state import (
    PROVISION_SECONDS,
    TOKEN_LIFETIME,
    EmulatedNumber,
    EmulatorState,
    Fault,
    RecordedRequest,
    SentMessage,
)
from ipsms.intelepeer.settings import MultiStatus
from ipsms.intelepeer.strict_json import JsonProblem, is_json_type, parse_json
from ipsms.numbers import E164_RE, SHORT_CODE_RE
from ipsms.redact import mask_url

# Settings named in errors; the CLI words them as its flags.
_PORT = setting("port")

__all__ = [
    "DEFAULT_PORT",
    "DEMO_NUMBERS",
    "DEMO_NUMBERS_NO_SMS",
    "DEMO_PASSWORD",
    "DEMO_USER",
    "MDR_PATH",
    "PROVISION_SECONDS",
    "SEND_PATH",
    "TOKEN_LIFETIME",
    "EmulatedNumber",
    "EmulatorServer",
    "EmulatorState",
    "EmulatorThread",
    "Fault",
    "MultiStatus",
    "RecordedRequest",
    "SentMessage",
    "build_state",
    "create_app",
    "serve",
]

DEFAULT_PORT = defaults.EMULATOR_PORT
DEMO_USER = "demo"
DEMO_PASSWORD = "demo-password"  # documented in docs/api-emulator.md and in its banner
DEMO_NUMBERS = ("+13038675309", "+13035550100", "+13035550101", "+13035550102", "1-12345")
DEMO_NUMBERS_NO_SMS = ("+13035550199",)
# The send API an app replies through (intelepeer.md 2.5), and a sent message's status.
SEND_PATH = "/_rest/v4/app/sms/send"
MDR_PATH = "/_rest/v4/app/sms/mdr"
MAX_TEXT = 10_000  # characters of a sent text; IntelePeer documents none, a bound is kept
MAX_MEDIA = 10
_SENDER_ID = re.compile(r"^[1-9][0-9]{0,2}-[A-Za-z0-9]{1,11}$")  # alphanumeric, send-only


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
    if not isinstance(value, str) or not value.isprintable() or any(c.isspace() for c in value):
        return False
    try:
        parts = urlsplit(value)
        _ = parts.port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def read_body(request: web.Request, raw: bytes) -> tuple[Any, Answer | None]:
    """``(parsed body, None)``, or ``(None, the 415/400 answer that says why not)``. A request
    without a Content-Type is read as JSON; one that declares another type is refused."""
    declared = request.headers.get("Content-Type")
    if declared is not None and not is_json_type(declared):
        return None, _error(
            415, f"Content-Type {declared[:60]!r} is not JSON: send application/json"
        )
    try:
        return parse_json(raw), None
    except JsonProblem as exc:
        return None, _error(400, f"the body is not valid JSON: {exc}")


class _Api:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.routes: dict[str, Callable[[web.Request, Any], Answer]] = {
            AUTH_PATH: self.authenticate,
            WEBHOOK_PATH: self.set_webhook,
            PROVISION_PATH: self.provision,
            SEND_PATH: self.send,
            MDR_PATH: self.mdr,
        }
        self.methods = {MDR_PATH: "GET"}  # every other call is a POST

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()  # aiohttp answers 413 itself beyond client_max_size (1 MiB)
        text = raw.decode("utf-8", errors="replace")
        body, problem = read_body(request, raw)
        fault = self.state.take_fault(request.path)
        response: web.StreamResponse
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            response = web.Response(
                status=fault.status,
                body=fault.body.encode(),
                headers={"Content-Type": fault.content_type},
            )
        else:
            route = self.routes.get(request.path)
            method = self.methods.get(request.path, "POST")
            if route is None:
                status, answer = _error(404, f"no such API path: {request.path}")
            elif request.method != method:
                status, answer = _error(405, f"{request.method} is not allowed: use {method}")
            elif method == "GET":
                status, answer = route(request, None)
            elif problem is not None:
                status, answer = problem
            else:
                status, answer = route(request, body)
            response = web.json_response(answer, status=status)
        record = RecordedRequest(
            self.state.clock(),
            request.method,
            request.path_qs,
            tuple(request.headers.items()),
            text,
            body,
            response.status,
        )
        self.state.requests.append(record)
        for observer in self.state.observers:
            observer(record)
        return response

    def _user(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "").strip()
        token = header[7:].strip() if header[:7].lower() == "bearer " else header
        return self.state.token_user(token) if token else None

    def authenticate(self, request: web.Request, body: Any) -> Answer:
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("username"), str)
            or not isinstance(body.get("password"), str)
        ):
            return _error(400, "username and password are required")
        expected = self.state.users.get(body["username"])
        if expected is None or not secrets.compare_digest(
            expected.encode(), body["password"].encode()
        ):
            return UNAUTHORIZED
        return 200, {"token": self.state.issue_token(body["username"])}

    def set_webhook(self, request: web.Request, body: Any) -> Answer:
        if self._user(request) is None:
            return UNAUTHORIZED
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object with endpoints and webhook")
        endpoints = body.get("endpoints")
        if (
            not isinstance(endpoints, list)
            or not endpoints
            or not all(isinstance(e, str) for e in endpoints)
        ):
            return _error(400, "endpoints must be a non-empty list of numbers")
        webhook = body.get("webhook")
        if not _valid_url(webhook):
            return _error(400, "webhook must be an absolute http or https URL")
        results = [self._set_one(e, str(webhook)) for e in endpoints]
        if len(results) == 1:
            return results[0]
        if self.state.multi_status is MultiStatus.mixed and all(s == 201 for s, _ in results):
            return 201, {"code": 201, "message": f"Webhook updated for {len(results)} endpoints"}
        return 207, [
            {"endpoint": e, **item} for e, (_, item) in zip(endpoints, results, strict=True)
        ]

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
        if (
            not isinstance(endpoints, list)
            or len(endpoints) != 1
            or not isinstance(endpoints[0], str)
        ):
            return _error(400, "endpoints must hold exactly one E.164 long code")
        number = endpoints[0]
        if not E164_RE.match(number):
            return _error(400, f"{number} is not an E.164 long code")
        entry = self.state.number(number)
        if entry is None:
            return _error(400, f"{number} was not found in the account")
        if entry.provisioning_until is not None:
            return _error(409, f"provisioning or deprovisioning of {number} is already in progress")
        if entry.sms_enabled:
            return _error(400, f"{number} is already enabled for SMS")
        if self.state.provision_seconds > 0:
            entry.provisioning_until = self.state.clock() + self.state.provision_seconds
        else:
            entry.sms_enabled = True
        return 202, {"code": 202, "provisioning": {"state": "requested"}}

    def send(self, request: web.Request, body: Any) -> Answer:
        """An app's outbound message: ``202 {"state": "CREATED", "refid": ...}``, kept in
        ``state.sent`` (nothing is delivered anywhere)."""
        if self._user(request) is None:
            return UNAUTHORIZED
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object with from, to and text")
        sender, to, text = body.get("from"), body.get("to"), body.get("text", "")
        media = body.get("media", [])
        if not isinstance(sender, str) or not (
            E164_RE.match(sender) or SHORT_CODE_RE.match(sender) or _SENDER_ID.match(sender)
        ):
            return _error(
                400,
                "from must be an E.164 number, a short code or an "
                "alphanumeric sender id such as 57-Hello8",
            )
        if not isinstance(to, str) or not (E164_RE.match(to) or SHORT_CODE_RE.match(to)):
            return _error(400, "to must be an E.164 number or a short code")
        if not isinstance(text, str) or len(text) > MAX_TEXT:
            return _error(400, f"text must be a string of at most {MAX_TEXT} characters")
        if (
            not isinstance(media, list)
            or len(media) > MAX_MEDIA
            or not all(isinstance(m, str) and _valid_media(m) for m in media)
        ):
            return _error(
                400, f"media must be a list of at most {MAX_MEDIA} http, https or cpaasmedia URLs"
            )
        if not text and not media:
            return _error(400, "text or media is required")
        guid, dlr = body.get("guid"), body.get("dlr", False)
        if guid is not None and not isinstance(guid, str):
            return _error(400, "guid must be a string")
        if not isinstance(dlr, bool):
            return _error(400, "dlr must be true or false")
        refid = secrets.token_hex(16).upper()
        self.state.record_sent(
            SentMessage(refid, self.state.clock(), sender, to, text, guid, dlr, tuple(media))
        )
        return 202, {"state": "CREATED", "refid": refid}

    def mdr(self, request: web.Request, _: Any) -> Answer:
        """A sent message's record: ``GET ...?refid=`` (the emulator delivers at once)."""
        if self._user(request) is None:
            return UNAUTHORIZED
        refid = request.query.get("refid")
        if not refid:
            return _error(400, "refid is required: GET ...?refid=REFID")
        message = self.state.sent_message(refid)
        if message is None:
            return _error(404, f"no message with refid {refid[:40]} was sent")
        return 200, message.to_dict()


def _valid_media(value: str) -> bool:
    if value.startswith("cpaasmedia://"):
        return value.isprintable() and len(value) > len("cpaasmedia://")
    return _valid_url(value)


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

    async def numbers(request: web.Request) -> web.Response:
        if request.method == "POST":
            data = await control_body(request, {"number", "sms_enabled", "webhook", "provisioning"})
            number, webhook = data.get("number"), data.get("webhook")
            if not isinstance(number, str) or not (
                E164_RE.match(number) or SHORT_CODE_RE.match(number)
            ):
                raise bad("number must be an E.164 number or a short code such as 1-12345")
            if webhook is not None and not _valid_url(webhook):
                raise bad("webhook must be an absolute http or https URL, or null")
            flags = {k: data.get(k, k == "sms_enabled") for k in ("sms_enabled", "provisioning")}
            if not all(isinstance(v, bool) for v in flags.values()):
                raise bad("sms_enabled and provisioning must be true or false")
            state.add_number(
                number,
                sms_enabled=flags["sms_enabled"],
                webhook=webhook,
                provisioning=flags["provisioning"],
            )
        return web.json_response(
            {
                "numbers": [
                    {
                        "number": n.number,
                        "sms_enabled": n.sms_enabled,
                        "webhook": mask_url(n.webhook) if n.webhook else None,
                        "provisioning": n.provisioning_until is not None,
                    }
                    for n in (state.number(k) for k in list(state.numbers))
                    if n is not None
                ]
            }
        )

    async def sent(request: web.Request) -> web.Response:
        if request.method == "DELETE":
            return web.json_response({"cleared": state.clear_sent()})
        to = request.query.get("to")
        messages = state.sent if to is None else state.sent_to(to)
        return web.json_response({"messages": [m.to_dict() for m in messages]})

    async def expire(_: web.Request) -> web.Response:
        return web.json_response({"expired": state.expire_tokens()})

    async def finish(_: web.Request) -> web.Response:
        return web.json_response({"finished": state.finish_provisioning()})

    async def faults(request: web.Request) -> web.Response:
        data = await control_body(
            request, {"status", "body", "content_type", "path", "times", "delay"}
        )
        try:
            fault = Fault(**data)
        except ValueError as exc:  # Fault checks every field (emulator_state.fault_problem)
            raise bad(str(exc)) from None
        state.inject_fault(fault)
        return web.json_response({"faults": len(state.faults)})

    for method, path, handler in (
        ("GET", "requests", requests),
        ("DELETE", "requests", requests),
        ("GET", "numbers", numbers),
        ("POST", "numbers", numbers),
        ("GET", "sent", sent),
        ("DELETE", "sent", sent),
    ):
        app.router.add_route(method, f"/_emulator/{path}", handler)
    app.router.add_post("/_emulator/tokens/expire", expire)
    app.router.add_post("/_emulator/provisioning/finish", finish)
    app.router.add_post("/_emulator/faults", faults)


def bad(message: str, status: int = 400) -> web.HTTPException:
    error = web.HTTPUnsupportedMediaType if status == 415 else web.HTTPBadRequest
    return error(text=json.dumps({"error": message}), content_type="application/json")


async def control_body(request: web.Request, fields: set[str]) -> dict[str, Any]:
    """A control call's JSON object, read as strictly as the API's; unknown fields refused."""
    data, problem = read_body(request, await request.read())
    if problem is not None:
        raise bad(problem[1]["message"], problem[0])
    if not isinstance(data, dict):
        raise bad("the body must be a JSON object")
    unknown = sorted(set(data) - fields)
    if unknown:
        raise bad(f"unknown field {unknown[0][:40]!r}: use {', '.join(sorted(fields))}")
    return data


# -- running it ---------------------------------------------------------------------------


class EmulatorServer:
    """The emulator bound to a port: ``await start()`` (port 0 picks a free one), ``stop()``."""

    def __init__(
        self, state: EmulatorState | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
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
        self._runner = web.AppRunner(
            create_app(self.state), handle_signals=False, access_log=None, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise BindError(
                f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}",
                hint=f"choose another {_PORT}, or {_PORT} 0 for a free one",
            ) from None
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
        try:
            await server.stop()  # signals stay handled here: another one cannot cut it short
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)


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
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="ipsms-emulator", daemon=True
        )

    def __enter__(self) -> EmulatorThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(timeout=10)
        self.api_base, self.auth_url = self.server.api_base, self.server.auth_url
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()


def build_state(
    users: Mapping[str, str] | None = None,
    numbers: Iterable[str] = (),
    numbers_without_sms: Iterable[str] = (),
    **settings: Any,
) -> EmulatorState:
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
