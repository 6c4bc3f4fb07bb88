"""The async IntelePeer client against the emulator on a real loopback socket: exact requests,
token cache and renewal, lenient parsing, and every failure turned into a clear ipsms error."""

from __future__ import annotations

import socket
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from ipsms.cli.options import flag
from ipsms.errors import ApiError, AuthError, ExitCode, NetworkError, NotFoundError, UsageError
from ipsms.intelepeer.client import (
    AUTH_PATH,
    AUTH_URL,
    PROVISION_PATH,
    WEBHOOK_PATH,
    ApiSettings,
    AuthScheme,
    IntelePeerClient,
    Region,
    extract_token,
    parse_multi_status,
    server_reason,
    webhook_request,
)
from ipsms.intelepeer.credentials import CredentialStore, PasswordAuth, StaticToken, resolve_auth
from ipsms.intelepeer.emulator import EmulatorState, Fault, create_app

MakeServer = Callable[..., Awaitable[TestServer]]
PASSWORD = "pw-Zx81-secret"
DAY = 24 * 3600


class Clock:
    def __init__(self) -> None:
        self.now = 2_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def state() -> EmulatorState:
    st = EmulatorState(provision_seconds=60)
    st.add_user("api-user", PASSWORD)
    st.add_number("+13038675309")
    st.add_number("+13038675399", sms_enabled=False)
    return st


@pytest.fixture
async def settings(aiohttp_server: MakeServer, state: EmulatorState) -> ApiSettings:
    server = await aiohttp_server(create_app(state))
    base = str(server.make_url("")).rstrip("/")
    return ApiSettings(api_base=base, auth_url=base + AUTH_PATH, timeout=5)


@pytest.fixture
def store(ipsms_home: Path) -> CredentialStore:
    return CredentialStore(ipsms_home)


def password_auth(password: str = PASSWORD) -> PasswordAuth:
    return PasswordAuth("api-user", password, "env")


async def set_hook(
    settings: ApiSettings,
    auth: Any,
    store: CredentialStore | None = None,
    clock: Callable[[], float] | None = None,
    numbers: tuple[str, ...] = ("+13038675309",),
) -> Any:
    kwargs: dict[str, Any] = {"store": store}
    if clock is not None:
        kwargs["clock"] = clock
    async with IntelePeerClient(settings, auth, **kwargs) as api:
        return await api.set_webhook(numbers, "https://user:hook-pw@example.com/sms"), api


async def test_exact_requests_reach_the_api(
    settings: ApiSettings, state: EmulatorState, store: CredentialStore
) -> None:
    reply, api = await set_hook(settings, password_auth(), store)
    assert reply.status == 201 and [r.number for r in reply.results] == ["+13038675309"]
    auth, hook = state.requests
    assert (auth.method, auth.path) == ("POST", AUTH_PATH)
    assert auth.json == {"username": "api-user", "password": PASSWORD}
    assert auth.header("Authorization") is None
    token = next(iter(state.tokens))
    assert (hook.method, hook.path) == ("POST", WEBHOOK_PATH)
    assert hook.json == {
        "endpoints": ["+13038675309"],
        "webhook": "https://user:hook-pw@example.com/sms",
    }
    for rec in (auth, hook):
        assert rec.header("Accept") == "application/json"
        assert rec.header("Content-Type") == "application/json"
    assert hook.header("Authorization") == f"Bearer {token}"
    assert api.auth_count == 1


async def test_raw_scheme_sends_the_bare_token(settings: ApiSettings, state: EmulatorState) -> None:
    raw = ApiSettings(api_base=settings.api_base, auth_url=settings.auth_url, scheme=AuthScheme.raw)
    await set_hook(raw, password_auth())
    assert state.requests[-1].header("Authorization") == next(iter(state.tokens))


async def test_token_is_cached_0600_and_reused_by_the_next_client(
    settings: ApiSettings, state: EmulatorState, store: CredentialStore
) -> None:
    clock = Clock()
    await set_hook(settings, password_auth(), store, clock)
    assert stat.S_IMODE(store.tokens_path.stat().st_mode) == 0o600
    cached = store.load_token(settings.authenticate_url, settings.base_url, "api-user", clock.now)
    assert cached is not None and cached.expires_at == clock.now + DAY
    _, api = await set_hook(settings, password_auth(), store, clock)
    assert api.auth_count == 0
    assert len(state.requests_to(AUTH_PATH)) == 1
    # a token cached for another authenticate URL, or another API, is not used there
    other = ApiSettings(api_base=settings.api_base, auth_url=settings.base_url + "/other/auth")
    assert (
        store.load_token(other.authenticate_url, settings.base_url, "api-user", clock.now) is None
    )
    assert (
        store.load_token(
            settings.authenticate_url, "https://api.intelepeer.com", "api-user", clock.now
        )
        is None
    )


async def test_cached_token_is_renewed_after_24_hours(
    settings: ApiSettings, state: EmulatorState, store: CredentialStore
) -> None:
    clock = Clock()
    await set_hook(settings, password_auth(), store, clock)
    clock.now += DAY - 120
    _, api = await set_hook(settings, password_auth(), store, clock)
    assert api.auth_count == 0
    clock.now += 119  # inside the renewal margin of the 24-hour expiry
    _, api = await set_hook(settings, password_auth(), store, clock)
    assert api.auth_count == 1
    assert len(state.requests_to(AUTH_PATH)) == 2
    assert all(r.status == 201 for r in state.requests_to(WEBHOOK_PATH))


async def test_a_401_fetches_a_new_token_exactly_once(
    settings: ApiSettings, state: EmulatorState, store: CredentialStore
) -> None:
    await set_hook(settings, password_auth(), store)
    state.expire_tokens()  # the cached token is now refused, as after 24 hours server-side
    reply, api = await set_hook(settings, password_auth(), store)
    assert reply.status == 201 and api.auth_count == 1
    assert [r.status for r in state.requests_to(WEBHOOK_PATH)] == [201, 401, 201]
    assert len(state.requests_to(AUTH_PATH)) == 2


async def test_a_second_401_is_an_auth_error_suggesting_the_other_scheme(
    settings: ApiSettings, state: EmulatorState
) -> None:
    state.inject_fault(
        Fault(401, '{"code":401,"error":"Unauthorized"}', "application/json", WEBHOOK_PATH, times=2)
    )
    with pytest.raises(AuthError) as info:
        await set_hook(settings, password_auth())
    assert "--auth-scheme raw" in info.value.worded(flag)
    assert len(state.requests_to(AUTH_PATH)) == 2
    assert len(state.requests_to(WEBHOOK_PATH)) == 2


async def test_a_given_token_is_not_renewed(settings: ApiSettings, state: EmulatorState) -> None:
    with pytest.raises(AuthError) as info:
        await set_hook(settings, StaticToken("stale-token-123"))
    assert info.value.exit_code == ExitCode.AUTH
    assert "stale-token-123" not in str(info.value) and "24 hours" in str(info.value)
    assert state.requests_to(AUTH_PATH) == []


async def test_wrong_password_is_an_auth_error_without_the_password(
    settings: ApiSettings, state: EmulatorState
) -> None:
    with pytest.raises(AuthError) as info:
        await set_hook(settings, password_auth("wrong-pw-123"))
    text = str(info.value)
    assert "api-user" in text and "401 Unauthorized" in text and "Access = API" in text
    assert "wrong-pw-123" not in text
    assert state.requests_to(WEBHOOK_PATH) == []


async def test_207_results_in_request_order(settings: ApiSettings) -> None:
    reply, _ = await set_hook(
        settings, password_auth(), numbers=("+13038675399", "+13038675309", "+19995550000")
    )
    assert reply.status == 207
    assert [(r.number, r.status, r.ok) for r in reply.results] == [
        ("+13038675399", 400, False),
        ("+13038675309", 201, True),
        ("+19995550000", 404, False),
    ]
    assert "not enabled for SMS" in (reply.results[0].reason or "")


async def test_404_and_400_carry_the_server_reason(settings: ApiSettings) -> None:
    with pytest.raises(NotFoundError) as nf:
        await set_hook(settings, password_auth(), numbers=("+19995550000",))
    assert "+19995550000 was not found in the account" in str(nf.value)
    assert "--region eu" in nf.value.worded(flag)
    with pytest.raises(ApiError) as bad:
        await set_hook(settings, password_auth(), numbers=("+13038675399",))
    assert "400 Bad Request: +13038675399 is not enabled for SMS" in str(bad.value)


async def test_provision_requested_then_in_progress(
    settings: ApiSettings, state: EmulatorState
) -> None:
    async with IntelePeerClient(settings, password_auth()) as api:
        first = await api.provision("+13038675399")
        second = await api.provision("+13038675399")
    assert (first.status, first.state, first.in_progress) == (202, "requested", False)
    assert (second.status, second.in_progress) == (409, True)
    assert "already in progress" in (second.reason or "")
    assert state.requests_to(PROVISION_PATH)[0].json == {"endpoints": ["+13038675399"]}


async def test_non_json_error_body_is_shown_as_text(
    settings: ApiSettings, state: EmulatorState
) -> None:
    state.inject_fault(Fault(502, "<html><h1>Bad Gateway</h1></html>", "text/html", WEBHOOK_PATH))
    with pytest.raises(ApiError) as info:
        await set_hook(settings, password_auth())
    assert "502 Bad Gateway, body is not JSON: <html><h1>Bad Gateway</h1></html>" in str(info.value)
    assert "try again" in str(info.value)


async def test_non_json_success_body_still_counts(
    settings: ApiSettings, state: EmulatorState
) -> None:
    state.inject_fault(Fault(201, "OK", "text/plain", WEBHOOK_PATH))
    reply, _ = await set_hook(settings, password_auth())
    assert reply.status == 201 and reply.results[0].ok


async def test_authenticate_without_token_and_echoed_password(
    settings: ApiSettings, state: EmulatorState
) -> None:
    state.inject_fault(Fault(200, f"<p>hello {PASSWORD}</p>", "text/html", AUTH_PATH))
    with pytest.raises(ApiError) as info:
        await set_hook(settings, password_auth())
    assert "without a token" in str(info.value) and PASSWORD not in str(info.value)
    assert "hello ****" in str(info.value)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_server_down_is_a_network_error() -> None:
    base = f"http://127.0.0.1:{closed_port()}"
    settings = ApiSettings(api_base=base, auth_url=base + AUTH_PATH, timeout=5)
    with pytest.raises(NetworkError) as info:
        await set_hook(settings, password_auth())
    assert info.value.exit_code == ExitCode.NETWORK
    assert f"cannot connect to 127.0.0.1:{base.rsplit(':', 1)[1]}" in str(info.value)


async def test_timeout_is_a_network_error(settings: ApiSettings, state: EmulatorState) -> None:
    state.inject_fault(Fault(201, "{}", "application/json", WEBHOOK_PATH, delay=5))
    quick = ApiSettings(api_base=settings.api_base, auth_url=settings.auth_url, timeout=0.3)
    with pytest.raises(NetworkError) as info:
        await set_hook(quick, password_auth())
    assert "no answer from" in str(info.value) and "0.3 s" in str(info.value)


def test_settings_regions_and_overrides() -> None:
    assert ApiSettings().url(WEBHOOK_PATH) == "https://api.intelepeer.com" + WEBHOOK_PATH
    assert ApiSettings(region=Region.eu).base_url == "https://eu.api.intelepeer.com"
    assert ApiSettings().authenticate_url == (
        "https://customer.intelepeer.com/_rest/v4/authenticate"
    )
    over = ApiSettings(
        region=Region.eu, api_base="http://127.0.0.1:9/", auth_url="http://127.0.0.1:9/a"
    )
    assert (over.base_url, over.authenticate_url) == ("http://127.0.0.1:9", "http://127.0.0.1:9/a")
    with pytest.raises(UsageError):
        ApiSettings(api_base="api.intelepeer.com")


def test_shown_request_masks_token_and_webhook_password() -> None:
    req = webhook_request(
        ApiSettings(), ["+13038675309"], "https://u:hook-pw@x.example/", "tok-abc-123"
    )
    shown = req.shown()
    assert shown["headers"]["Authorization"] == "Bearer ****"
    assert shown["body"]["webhook"] == "https://u:****@x.example/"
    assert "tok-abc-123" not in str(shown) and "hook-pw" not in str(shown)
    assert dict(req.headers)["Authorization"] == "Bearer tok-abc-123"  # what is really sent


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            [{"endpoint": "+2", "code": 404, "message": "gone"}, {"endpoint": "+1", "code": 201}],
            [("+1", 201, None), ("+2", 404, "gone")],
        ),
        (
            {"results": [{"status": "201"}, {"statusCode": 400, "error": "Bad"}]},
            [("+1", 201, None), ("+2", 400, "Bad")],
        ),
        ([201, 404], [("+1", 201, None), ("+2", 404, None)]),
        (
            [{"endpoint": "2", "code": 404}, {"endpoint": 1, "code": "201"}],  # no +, or a number
            [("+1", 201, None), ("+2", 404, None)],
        ),
        (
            [
                {"endpoint": "+1", "code": "9" * 5000},
                {"endpoint": "+2", "code": "²"},
            ],  # not statuses
            [
                ("+1", 0, "the answer gives no status for this number"),
                ("+2", 0, "the answer gives no status for this number"),
            ],
        ),
        (
            [{"number": "+1", "status": "updated"}],
            [("+1", 201, "updated"), ("+2", 0, "the answer has no result for this number")],
        ),
    ],
)
def test_lenient_multi_status(body: Any, expected: list[tuple[str, int, str | None]]) -> None:
    results = parse_multi_status(body, ["+1", "+2"])
    assert results is not None
    assert [(r.number, r.status, r.reason) for r in results] == expected
    assert parse_multi_status({"nothing": 1}, ["+1"]) is None


def test_lenient_reason_and_token() -> None:
    assert server_reason({"code": 400, "error": "Bad Request", "message": "why"}) == "why"
    assert server_reason({"errors": [{"message": "a"}, "b"]}) == "a; b"
    assert server_reason(None, "<html>\n oops </html>") == "<html> oops </html>"
    assert extract_token({"token": "Bearer abc"}) == "abc"
    assert extract_token({"data": {"access_token": "xyz"}}) == "xyz"
    assert extract_token({"token": ""}) is None
    nested: Any = {"message": "deep"}
    for _ in range(60):  # parseable (under 64 levels) but not searched past a few
        nested = {"error": nested, "data": nested}
    assert server_reason(nested) is None and extract_token(nested) is None
    many = server_reason({"errors": [str(i) for i in range(5000)]})
    assert many == "; ".join(str(i) for i in range(10))  # the first ten


def test_credentials_lookup_order(store: CredentialStore) -> None:
    from ipsms.intelepeer.credentials import StoredCredentials

    with pytest.raises(AuthError) as info:
        resolve_auth(store)
    assert "ipsms auth login" in str(info.value)
    store.save_credentials(StoredCredentials("stored-user", "stored-pw"))
    assert stat.S_IMODE(store.credentials_path.stat().st_mode) == 0o600
    assert resolve_auth(store, token="t0k") == StaticToken("t0k")
    assert resolve_auth(store, username="env-user", password="env-pw") == PasswordAuth(
        "env-user", "env-pw", "env"
    )
    # stored without a URL (as before credentials recorded one): IntelePeer's own URL
    assert resolve_auth(store) == PasswordAuth("stored-user", "stored-pw", "stored", AUTH_URL)
    # the user's own password is not bound to the stored URL
    assert resolve_auth(store, password="env-pw") == PasswordAuth("stored-user", "env-pw", "env")
    with pytest.raises(AuthError):
        resolve_auth(store, username="someone-else")
    assert "stored-pw" not in repr(resolve_auth(store))


def test_token_cache_file_is_rewritten_atomically(store: CredentialStore, ipsms_home: Path) -> None:
    from ipsms.intelepeer.credentials import CachedToken

    store.save_token(CachedToken("t1", "u", "http://a", 0, 4e9, "http://api"))
    store.save_token(CachedToken("t2", "u", "http://a", 0, 4e9, "http://api"))
    store.save_token(CachedToken("t3", "v", "http://a", 0, 4e9, "http://api"))
    store.save_token(CachedToken("t4", "u", "http://a", 0, 4e9, "http://other-api"))
    assert [t.token for t in store.tokens_for()] == ["t2", "t3", "t4"]
    assert sorted(p.name for p in ipsms_home.iterdir()) == ["api-tokens.json"]  # no temp left
    store.tokens_path.write_text("{not json")
    assert store.load_token("http://a", "http://api", "u") is None  # damaged cache: a miss
