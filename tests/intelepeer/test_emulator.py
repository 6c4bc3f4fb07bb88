"""The IntelePeer API emulator, spoken to over a real loopback socket (``aiohttp_client``).

Each test checks an answer of intelepeer.md section 2: status, body, the effect on the
emulated account, and what the emulator recorded."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from ipsms.intelepeer.client import AUTH_PATH, PROVISION_PATH, WEBHOOK_PATH
from ipsms.intelepeer.emulator import (
    DEMO_NUMBERS,
    DEMO_PASSWORD,
    DEMO_USER,
    EmulatorState,
    EmulatorThread,
    Fault,
    MultiStatus,
    build_state,
    create_app,
)

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(clock: Clock) -> EmulatorState:
    st = EmulatorState(clock=clock, provision_seconds=120)
    st.add_user("api-user", "s3cret-pw")
    st.add_number("+13038675309")
    st.add_number("+13038675310")
    st.add_number("1-12345")
    st.add_number("+13038675399", sms_enabled=False)
    return st


@pytest.fixture
async def client(aiohttp_client: MakeClient, state: EmulatorState) -> Client:
    return await aiohttp_client(create_app(state))


async def token_for(client: Client) -> str:
    resp = await client.post(AUTH_PATH, json={"username": "api-user", "password": "s3cret-pw"})
    assert resp.status == 200
    return str((await resp.json())["token"])


async def post(
    client: Client, path: str, body: Any, token: str | None, bearer: bool = True
) -> tuple[int, Any]:
    headers = {"Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}" if bearer else token
    resp = await client.post(path, json=body, headers=headers)
    return resp.status, await resp.json()


async def test_authenticate_gives_a_token_and_refuses_a_wrong_password(client: Client) -> None:
    assert (await token_for(client)).startswith("emu-")
    status, body = await post(client, AUTH_PATH, {"username": "api-user", "password": "nope"}, None)
    assert (status, body) == (401, {"code": 401, "error": "Unauthorized"})
    status, body = await post(client, AUTH_PATH, {"username": "api-user"}, None)
    assert status == 400 and "password" in body["message"]


async def test_set_webhook_201_accepts_bearer_and_bare_token(
    client: Client, state: EmulatorState
) -> None:
    token = await token_for(client)
    status, body = await post(
        client,
        WEBHOOK_PATH,
        {"endpoints": ["+13038675309"], "webhook": "https://a.example/sms"},
        token,
    )
    assert status == 201 and body["code"] == 201
    status, _ = await post(
        client,
        WEBHOOK_PATH,
        {"endpoints": ["1-12345"], "webhook": "https://b.example/sms"},
        token,
        bearer=False,
    )
    assert status == 201
    assert state.numbers["+13038675309"].webhook == "https://a.example/sms"
    assert state.numbers["1-12345"].webhook == "https://b.example/sms"


@pytest.mark.parametrize(
    ("endpoint", "webhook", "status", "words"),
    [
        ("+13038675399", "https://a.example/", 400, "not enabled for SMS"),
        ("3038675309", "https://a.example/", 400, "not an E.164"),
        ("57-Hello8", "https://a.example/", 400, "not an E.164"),
        ("+13038675309", "ftp://a.example/", 400, "http or https URL"),
        ("+13038675309", "/relative", 400, "http or https URL"),
        ("+19995550000", "https://a.example/", 404, "not found in the account"),
    ],
)
async def test_set_webhook_errors_say_why(
    client: Client, state: EmulatorState, endpoint: str, webhook: str, status: int, words: str
) -> None:
    token = await token_for(client)
    got, body = await post(
        client, WEBHOOK_PATH, {"endpoints": [endpoint], "webhook": webhook}, token
    )
    assert got == status and body["code"] == status and words in body["message"]
    assert state.numbers["+13038675309"].webhook is None


async def test_207_lists_one_result_per_endpoint_in_request_order(
    client: Client, state: EmulatorState
) -> None:
    token = await token_for(client)
    endpoints = ["+19995550000", "+13038675309", "+13038675399"]
    status, body = await post(
        client, WEBHOOK_PATH, {"endpoints": endpoints, "webhook": "https://a.example/"}, token
    )
    assert status == 207
    assert [(i["endpoint"], i["code"]) for i in body] == [
        ("+19995550000", 404),
        ("+13038675309", 201),
        ("+13038675399", 400),
    ]
    assert state.numbers["+13038675309"].webhook == "https://a.example/"  # partial success


async def test_multi_status_mixed_answers_201_when_all_succeed(
    aiohttp_client: MakeClient, state: EmulatorState
) -> None:
    state.multi_status = MultiStatus.mixed
    client = await aiohttp_client(create_app(state))
    token = await token_for(client)
    status, _ = await post(
        client,
        WEBHOOK_PATH,
        {"endpoints": ["+13038675309", "1-12345"], "webhook": "https://a.example/"},
        token,
    )
    assert status == 201


async def test_tokens_expire_and_can_be_expired_or_revoked(
    client: Client, state: EmulatorState, clock: Clock
) -> None:
    body = {"endpoints": ["+13038675309"], "webhook": "https://a.example/"}
    assert (await post(client, WEBHOOK_PATH, body, None))[0] == 401
    assert (await post(client, WEBHOOK_PATH, body, "made-up"))[0] == 401
    token = await token_for(client)
    clock.now += 24 * 3600 - 1
    assert (await post(client, WEBHOOK_PATH, body, token))[0] == 201
    clock.now += 1
    assert await post(client, WEBHOOK_PATH, body, token) == (
        401,
        {"code": 401, "error": "Unauthorized"},
    )
    token = await token_for(client)
    assert state.expire_tokens() == 1
    assert (await post(client, WEBHOOK_PATH, body, token))[0] == 401
    token = await token_for(client)
    assert state.revoke_token(token)
    assert (await post(client, WEBHOOK_PATH, body, token))[0] == 401


async def test_provision_202_then_409_until_done(
    client: Client, state: EmulatorState, clock: Clock
) -> None:
    token = await token_for(client)
    body = {"endpoints": ["+13038675399"]}
    assert await post(client, PROVISION_PATH, body, token) == (
        202,
        {"code": 202, "provisioning": {"state": "requested"}},
    )
    status, answer = await post(client, PROVISION_PATH, body, token)
    assert status == 409 and "already in progress" in answer["message"]
    hook = {"endpoints": ["+13038675399"], "webhook": "https://a.example/"}
    assert (await post(client, WEBHOOK_PATH, hook, token))[0] == 400  # not enabled yet
    clock.now += 120
    assert (await post(client, WEBHOOK_PATH, hook, token))[0] == 201
    assert (await post(client, PROVISION_PATH, body, token))[0] == 400  # already enabled


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"endpoints": ["1-12345"]}, "not an E.164 long code"),
        ({"endpoints": ["+13038675399", "+13038675309"]}, "exactly one"),
        ({"endpoints": []}, "exactly one"),
        ({"endpoints": ["+19995550000"]}, "not found in the account"),
        ({"endpoints": ["+13038675309"]}, "already enabled"),
    ],
)
async def test_provision_400s(client: Client, body: dict[str, Any], words: str) -> None:
    token = await token_for(client)
    status, answer = await post(client, PROVISION_PATH, body, token)
    assert status == 400 and words in answer["message"]


async def test_provision_needs_a_token(client: Client) -> None:
    assert await post(client, PROVISION_PATH, {"endpoints": ["+13038675399"]}, None) == (
        401,
        {"code": 401, "error": "Unauthorized"},
    )


async def test_every_request_is_recorded_exactly(client: Client, state: EmulatorState) -> None:
    token = await token_for(client)
    await post(
        client,
        WEBHOOK_PATH,
        {"endpoints": ["+13038675309"], "webhook": "https://u:pw@a.example/"},
        token,
    )
    await client.get("/nowhere")
    auth, hook, other = state.requests
    assert (auth.method, auth.path, auth.status) == ("POST", AUTH_PATH, 200)
    assert auth.json == {"username": "api-user", "password": "s3cret-pw"}
    assert (hook.method, hook.path, hook.status) == ("POST", WEBHOOK_PATH, 201)
    assert hook.header("authorization") == f"Bearer {token}"
    assert hook.header("Accept") == "application/json"
    assert hook.json == {"endpoints": ["+13038675309"], "webhook": "https://u:pw@a.example/"}
    assert (other.method, other.path, other.status) == ("GET", "/nowhere", 404)
    # the HTTP view of the record masks the password, the token and the webhook's credentials
    view = await (await client.get("/_emulator/requests")).json()
    text = str(view)
    assert "s3cret-pw" not in text and token not in text and ":pw@" not in text
    assert view["requests"][1]["headers"]["Authorization"] == "Bearer ****"
    assert len(state.requests) == 3  # control calls are not recorded
    assert (await (await client.delete("/_emulator/requests")).json()) == {"cleared": 3}


async def test_non_json_body_and_wrong_method(client: Client) -> None:
    token = await token_for(client)
    resp = await client.post(
        WEBHOOK_PATH,
        data=b"endpoints=+13038675309",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert resp.status == 400 and "not valid JSON" in (await resp.json())["message"]
    resp = await client.post(
        WEBHOOK_PATH, data=b"endpoints=+13038675309", headers={"Authorization": f"Bearer {token}"}
    )  # octet-stream
    assert resp.status == 415 and "application/json" in (await resp.json())["message"]
    resp = await client.post(
        WEBHOOK_PATH, json=["+13038675309"], headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status == 400 and "JSON object" in (await resp.json())["message"]
    resp = await client.get(WEBHOOK_PATH)
    assert resp.status == 405


async def test_injected_faults_answer_first_then_normal_service(
    client: Client, state: EmulatorState
) -> None:
    resp = await client.post(
        "/_emulator/faults",
        json={"status": 502, "body": "<h1>bad</h1>", "path": AUTH_PATH, "times": 2},
    )
    assert resp.status == 200
    for _ in range(2):
        resp = await client.post(AUTH_PATH, json={"username": "api-user", "password": "s3cret-pw"})
        assert (resp.status, await resp.text()) == (502, "<h1>bad</h1>")
        assert resp.content_type == "text/html"
    assert await token_for(client)
    state.inject_fault(Fault(status=503))
    assert (await client.post(PROVISION_PATH, json={})).status == 503


async def test_control_endpoints_expire_tokens_add_numbers_finish_provisioning(
    client: Client, state: EmulatorState
) -> None:
    token = await token_for(client)
    assert await (await client.post("/_emulator/tokens/expire")).json() == {"expired": 1}
    assert (await post(client, PROVISION_PATH, {"endpoints": ["+13038675399"]}, token))[0] == 401
    resp = await client.post(
        "/_emulator/numbers", json={"number": "+14155550100", "sms_enabled": False}
    )
    numbers = {n["number"]: n for n in (await resp.json())["numbers"]}
    assert numbers["+14155550100"]["sms_enabled"] is False
    token = await token_for(client)
    assert (await post(client, PROVISION_PATH, {"endpoints": ["+14155550100"]}, token))[0] == 202
    assert await (await client.post("/_emulator/provisioning/finish")).json() == {"finished": 1}
    assert state.numbers["+14155550100"].sms_enabled
    assert (await client.post("/_emulator/numbers", data=b"nope")).status == 415
    assert (
        await client.post(
            "/_emulator/numbers", data=b"nope", headers={"Content-Type": "application/json"}
        )
    ).status == 400


async def test_demo_account(aiohttp_client: MakeClient) -> None:
    client = await aiohttp_client(create_app(build_state()))
    resp = await client.post(AUTH_PATH, json={"username": DEMO_USER, "password": DEMO_PASSWORD})
    token = (await resp.json())["token"]
    status, _ = await post(
        client,
        WEBHOOK_PATH,
        {"endpoints": list(DEMO_NUMBERS), "webhook": "https://a.example/"},
        token,
    )
    assert status == 207


def test_emulator_thread_serves_on_loopback_for_synchronous_code() -> None:
    import json
    import urllib.request

    with EmulatorThread(build_state({"u": "p"}, ["+13038675309"])) as emu:
        assert emu.api_base.startswith("http://127.0.0.1:")
        req = urllib.request.Request(
            emu.auth_url,
            data=json.dumps({"username": "u", "password": "p"}).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 200 and "token" in json.loads(resp.read())
        assert emu.state.requests_to(AUTH_PATH)[0].status == 200


@pytest.mark.parametrize(
    "fields",
    [
        {"status": 99},
        {"status": 600},
        {"status": True},
        {"delay": float("nan")},
        {"delay": float("inf")},
        {"delay": -0.1},
        {"delay": 60.5},
        {"times": 0},
        {"content_type": "text/html\r\nX-Evil: 1"},
        {"content_type": "html"},
        {"body": "\ud800"},
        {"path": "relative/path"},
    ],
)
def test_a_fault_is_checked_when_it_is_made(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Fault(**fields)


async def test_a_fault_content_type_may_carry_a_charset(client: Client) -> None:
    resp = await client.post(
        "/_emulator/faults",
        json={
            "status": 599,
            "body": "déjà vu",
            "content_type": "text/plain; charset=utf-8",
            "path": AUTH_PATH,
            "delay": 0.01,
        },
    )
    assert resp.status == 200
    resp = await client.post(AUTH_PATH, json={"username": "api-user", "password": "s3cret-pw"})
    assert resp.status == 599 and await resp.text() == "déjà vu"
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert await token_for(client)  # the fault was used up; normal service again
