"""Hostile or broken replies to the IntelePeer client, from real servers on loopback: a reply
that claims to be JSON but cannot be read is a clear ``ApiError`` (exit 7) naming the status,
never an internal error; every piece of server text that reaches a message is printable."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ipsms.cli.options import flag
from ipsms.errors import ApiError, AuthError, ExitCode
from ipsms.intelepeer.client import (
    AUTH_PATH,
    MAX_REPLY_BYTES,
    PROVISION_PATH,
    WEBHOOK_PATH,
    ApiSettings,
    IntelePeerClient,
)
from ipsms.intelepeer.credentials import DEFAULT_AUTH_URL, PasswordAuth, StaticToken, same_url

MakeServer = Callable[..., Awaitable[TestServer]]
NUMBERS = ("+13035550101", "+13035550102")
# ANSI colour, a right-to-left override, and a lone surrogate, as JSON escapes
HOSTILE = "\\u001b[31mred\\u001b[0m \\u202eevil\\u202c \\ud800 end"
RAW_CONTROLS = ("\x1b", "\u202e", "\u202c", "\ud800")


@dataclass
class Canned:
    status: int
    body: bytes
    content_type: str = "application/json"


class RecordingServer:
    """Answers every request with ``canned`` (per path) and records what arrived."""

    def __init__(self) -> None:
        self.canned: dict[str, Canned] = {}
        self.received: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(request.path)
        answer = self.canned.get(request.path, Canned(201, b'{"code":201}'))
        return web.Response(
            status=answer.status, body=answer.body, headers={"Content-Type": answer.content_type}
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


@pytest.fixture
async def server(aiohttp_server: MakeServer) -> AsyncIterator[tuple[RecordingServer, str]]:
    recorder = RecordingServer()
    test_server = await aiohttp_server(recorder.app())
    yield recorder, str(test_server.make_url("")).rstrip("/")


def settings_for(base: str) -> ApiSettings:
    return ApiSettings(api_base=base, auth_url=base + AUTH_PATH, timeout=5)


async def set_hook(base: str, numbers: tuple[str, ...] = NUMBERS[:1]) -> Any:
    async with IntelePeerClient(settings_for(base), StaticToken("tok-123456")) as api:
        return await api.set_webhook(numbers, "https://example.com/sms")


def assert_printable(text: str) -> None:
    for raw in RAW_CONTROLS:
        assert raw not in text, ascii(text)


# -- 3. a reply that claims to be JSON but cannot be read ---------------------------------


@pytest.mark.parametrize(
    ("status", "body", "content_type", "words"),
    [
        (400, b"[" * 100_000, "application/json", "nested more than 64 levels deep"),
        (201, b'{"a":' * 100_000, "application/json", "nested more than 64 levels deep"),
        (400, b"[" * 500 + b"]" * 500, "application/json", "nested more than 64 levels deep"),
        (400, b'{"code": 4' + b"0" * 5000 + b"}", "application/json", "a number with 5001 digits"),
        (400, b'{"message": "caf\xe9 \xff"}', "application/json", "invalid UTF-8 at byte 16"),
        (400, b'{"code": NaN, "message": "x"}', "application/json", "NaN is not JSON"),
        (201, b'{"code": Infinity}', "text/plain", "Infinity is not JSON"),
        (201, b'{"code": 1e999}', "application/json", "too large for a float"),
        (404, b'{"code": 404, "message": "gone"', "application/problem+json", "Expecting"),
        (502, b"<html>Bad Gateway</html>", "application/json", "Expecting value"),
    ],
)
async def test_unreadable_json_is_an_api_error_naming_the_status(
    server: tuple[RecordingServer, str], status: int, body: bytes, content_type: str, words: str
) -> None:
    recorder, base = server
    recorder.canned[WEBHOOK_PATH] = Canned(status, body, content_type)
    with pytest.raises(ApiError) as info:
        await set_hook(base)
    error = info.value
    assert type(error) is ApiError and error.exit_code == ExitCode.API
    text = error.worded(flag)  # as the CLI prints it
    assert f"answered {status} " in text and "the reply was not readable JSON" in text
    assert words in text
    assert len(text) < 600 and "\n" not in text  # one line, however big the body
    assert ("try again in a few minutes" if status >= 500 else "check --api-base") in text


async def test_unreadable_json_from_the_authenticate_url(
    server: tuple[RecordingServer, str],
) -> None:
    recorder, base = server
    recorder.canned[AUTH_PATH] = Canned(200, b'{"token": ' + b"[" * 100_000)
    async with IntelePeerClient(settings_for(base), PasswordAuth("u", "pw-123")) as api:
        with pytest.raises(ApiError) as info:
            await api.provision(NUMBERS[0])
    assert "answered 200 OK while authenticating as 'u'" in info.value.worded(flag)
    assert "not readable JSON" in str(info.value)
    assert recorder.received == [AUTH_PATH]


async def test_a_token_that_cannot_be_a_header_is_an_api_error(
    server: tuple[RecordingServer, str],
) -> None:
    recorder, base = server
    recorder.canned[AUTH_PATH] = Canned(200, b'{"token": "tok\\r\\nX-Evil: 1"}')
    async with IntelePeerClient(settings_for(base), PasswordAuth("u", "pw-123")) as api:
        with pytest.raises(ApiError) as info:
            await api.provision(NUMBERS[0])
    assert "with a token that cannot be sent in an HTTP header" in str(info.value)
    assert recorder.received == [AUTH_PATH]  # the token was not sent anywhere


async def test_a_reply_larger_than_the_limit_is_refused(
    server: tuple[RecordingServer, str],
) -> None:
    recorder, base = server
    recorder.canned[WEBHOOK_PATH] = Canned(201, b" " * (MAX_REPLY_BYTES + 1), "text/plain")
    with pytest.raises(ApiError) as info:
        await set_hook(base)
    assert f"with a reply larger than {MAX_REPLY_BYTES} bytes" in str(info.value)


async def test_plain_text_and_html_bodies_stay_lenient(server: tuple[RecordingServer, str]) -> None:
    recorder, base = server
    recorder.canned[WEBHOOK_PATH] = Canned(201, b"Created \xff", "text/plain")
    reply = await set_hook(base)
    assert reply.status == 201 and reply.results[0].ok
    recorder.canned[WEBHOOK_PATH] = Canned(503, b"<html>down \xff</html>", "text/html")
    with pytest.raises(ApiError) as info:
        await set_hook(base)
    assert "503 Service Unavailable, body is not JSON: <html>down \ufffd</html>" in str(info.value)


# -- 2. server text is made printable before it is shown -----------------------------------


async def test_error_reason_controls_are_shown_escaped(server: tuple[RecordingServer, str]) -> None:
    recorder, base = server
    recorder.canned[WEBHOOK_PATH] = Canned(400, f'{{"code": 400, "message": "{HOSTILE}"}}'.encode())
    with pytest.raises(ApiError) as info:
        await set_hook(base)
    text = str(info.value)
    assert "400 Bad Request: \\e[31mred\\e[0m \\u202eevil\\u202c \\ud800 end" in text
    assert_printable(text)
    text.encode("utf-8")  # a lone surrogate would make this raise


async def test_207_reasons_and_provision_state_are_shown_escaped(
    server: tuple[RecordingServer, str],
) -> None:
    recorder, base = server
    recorder.canned[WEBHOOK_PATH] = Canned(
        207,
        (
            f'[{{"endpoint": "{NUMBERS[0]}", "code": 201}},'
            f' {{"endpoint": "{NUMBERS[1]}", "code": 400, "message": "{HOSTILE}"}}]'
        ).encode(),
    )
    reply = await set_hook(base, NUMBERS)
    reason = reply.results[1].reason
    assert reason == "\\e[31mred\\e[0m \\u202eevil\\u202c \\ud800 end"
    recorder.canned[PROVISION_PATH] = Canned(
        202, f'{{"provisioning": {{"state": "{HOSTILE}"}}}}'.encode()
    )
    async with IntelePeerClient(settings_for(base), StaticToken("tok-123456")) as api:
        provisioned = await api.provision(NUMBERS[0])
        recorder.canned[PROVISION_PATH] = Canned(409, f'{{"message": "{HOSTILE}"}}'.encode())
        busy = await api.provision(NUMBERS[0])
    assert_printable(provisioned.state)
    assert provisioned.state.startswith("\\e[31mred")
    assert busy.reason is not None and busy.reason.startswith("\\e[31mred")
    assert_printable(busy.reason)


async def test_the_http_reason_phrase_is_shown_escaped() -> None:
    """A raw server, because aiohttp would not send such a status line."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 400 Bad \x1b[31mRed\xe2\x80\xae\xff\r\nContent-Type: "
            b"text/plain\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope"
        )
        await writer.drain()
        writer.close()

    raw = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        port = raw.sockets[0].getsockname()[1]
        with pytest.raises(ApiError) as info:
            await set_hook(f"http://127.0.0.1:{port}")
    finally:
        raw.close()
        await raw.wait_closed()
    text = str(info.value)
    assert "400 Bad \\e[31mRed\\u202e\\udcff, body is not JSON: nope" in text
    assert_printable(text)
    assert "\udcff" not in text


# -- 4. multi-status items name numbers with or without the + ------------------------------


@pytest.mark.parametrize(
    "named",
    [
        ('"13035550102"', '"13035550101"'),  # no + (the order is reversed on purpose)
        ("13035550102", "13035550101"),  # JSON numbers
        ('"+13035550102"', '"13035550101"'),  # mixed
    ],
)
async def test_207_items_match_numbers_with_and_without_plus(
    server: tuple[RecordingServer, str], named: tuple[str, str]
) -> None:
    recorder, base = server
    recorder.canned[WEBHOOK_PATH] = Canned(
        207,
        (
            f'{{"results": [{{"endpoint": {named[0]}, "code": 404, "message": "not here"}},'
            f' {{"endpoint": {named[1]}, "code": 201}}]}}'
        ).encode(),
    )
    reply = await set_hook(base, NUMBERS)
    assert [(r.number, r.status, r.reason) for r in reply.results] == [
        ("+13035550101", 201, None),
        ("+13035550102", 404, "not here"),
    ]


# -- 1. stored credentials only go to their own authenticate URL ----------------------------


async def test_bound_credentials_are_refused_before_anything_is_sent(
    server: tuple[RecordingServer, str],
) -> None:
    recorder, base = server
    bound = PasswordAuth("api-user", "pw-Zx81-secret", "stored", "http://127.0.0.1:1/auth")
    async with IntelePeerClient(settings_for(base), bound) as api:
        with pytest.raises(AuthError) as info:
            await api.set_webhook(NUMBERS[:1], "https://example.com/sms")
    assert info.value.exit_code == ExitCode.AUTH
    assert "belong to http://127.0.0.1:1/auth, not to " + base + AUTH_PATH in str(info.value)
    assert f"ipsms auth login --auth-url {base}{AUTH_PATH}" in info.value.worded(flag)
    assert "pw-Zx81-secret" not in str(info.value)
    assert recorder.received == []
    # the same credentials at their own URL are sent
    mine = PasswordAuth("api-user", "pw", "stored", "HTTP" + base[4:] + AUTH_PATH)
    recorder.canned[AUTH_PATH] = Canned(200, b'{"token": "tok-abcdef"}')
    async with IntelePeerClient(settings_for(base), mine) as api:
        assert (await api.set_webhook(NUMBERS[:1], "https://example.com/sms")).status == 201
    assert recorder.received == [AUTH_PATH, WEBHOOK_PATH]


def test_same_url_ignores_only_case_and_default_ports() -> None:
    assert same_url(DEFAULT_AUTH_URL, "HTTPS://Customer.IntelePeer.com:443/_rest/v4/authenticate")
    assert same_url("http://127.0.0.1:80/a", "http://127.0.0.1/a")
    assert not same_url(DEFAULT_AUTH_URL, DEFAULT_AUTH_URL.replace("https", "http"))
    assert not same_url("http://127.0.0.1:8766/a", "http://127.0.0.1:8767/a")
    assert not same_url("http://h/_rest/v4/authenticate", "http://h/_REST/v4/authenticate")
    assert not same_url("http://u:p@h/a", "http://h/a")
    assert not same_url("http://h:bad/a", "http://h/a")
