"""The listener application over real loopback sockets (aiohttp_client), store on disk."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipsms import store
from ipsms.listen.app import ListenConfig, create_app
from ipsms.request import Request
from ipsms.signature import Mode, compute_hmac
from ipsms.store.recorder import Recorder
from tests.hostile import stored_rows

REFID = "ABCDEF1234567890ABCDEF1234567890"
SEED = {
    "refid": REFID,
    "from": "+7708675309",
    "to": "+13038675309",
    "message": "Hello World!",
    "signature": "SECRET CODE",
}

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store.sqlite3"


@pytest.fixture
def events() -> list[Request]:
    return []


@pytest.fixture
def listen(
    aiohttp_client: MakeClient, db_path: Path, events: list[Request]
) -> Callable[..., Awaitable[TestClient[Any, Any]]]:
    async def start(**config: Any) -> TestClient[Any, Any]:
        app = create_app(ListenConfig(**config), Recorder(db_path), [events.append])
        return await aiohttp_client(app)

    return start


rows = stored_rows


async def test_seed_message_is_recorded_before_the_200(
    listen: Any, db_path: Path, events: list[Request]
) -> None:
    client = await listen(secret="SECRET CODE")
    body = json.dumps(SEED).encode()
    resp = await client.post(
        "/any/path?x=1",
        data=body,
        headers={"Content-Type": "application/json", "Authorization": "Basic dXNlcjpwYXNz"},
    )
    assert resp.status == 200
    assert (await resp.json())["attempt"] == 1
    # Committed before the answer: another connection sees it right away.
    [row] = rows(db_path)
    assert row.body == body
    assert row.refid == REFID and row.attempt == 1 and row.status == 200
    assert row.path == "/any/path?x=1"
    assert row.verdict == "valid" and row.verdict_detail == "plain"
    assert ("Authorization", "Basic ****") in row.headers
    assert [f["code"] for f in row.flags] == ["from_format"]
    [event] = events
    assert event.verdict_label == "valid (plain)" and event.id == row.id
    assert event.to_dict(bodies=False)["signature"] == "****(11)"


async def test_retries_of_a_refid_count_attempts(listen: Any, db_path: Path) -> None:
    client = await listen()
    for expected in (1, 2, 3):
        resp = await client.post("/", json=SEED)
        assert resp.status == 200
        assert (await resp.json())["attempt"] == expected
    assert [r.attempt for r in rows(db_path)] == [1, 2, 3]


async def test_attempts_continue_across_listener_restarts(
    aiohttp_client: MakeClient, db_path: Path
) -> None:
    for expected in (1, 2):
        client = await aiohttp_client(create_app(ListenConfig(), Recorder(db_path)))
        resp = await client.post("/", json=SEED)
        assert (await resp.json())["attempt"] == expected
        await client.close()


@pytest.mark.parametrize(
    ("kwargs", "status", "error"),
    [
        ({"data": b"{oops", "headers": {"Content-Type": "application/json"}}, 400, "invalid_json"),
        (
            {"data": b'"text"', "headers": {"Content-Type": "application/json"}},
            400,
            "not_an_object",
        ),
        ({"json": {"refid": REFID, "from": "+13035550100"}}, 400, "missing_fields"),
        ({"json": {**SEED, "message": 42}}, 400, "wrong_field_types"),
        (
            {"data": b"<sms/>", "headers": {"Content-Type": "text/xml"}},
            415,
            "unsupported_content_type",
        ),
    ],
)
async def test_bad_bodies_get_a_json_reason_and_are_recorded(
    listen: Any, db_path: Path, kwargs: dict[str, Any], status: int, error: str
) -> None:
    client = await listen()
    resp = await client.post("/hook", **kwargs)
    assert resp.status == status
    payload = await resp.json()
    assert payload["error"] == error and payload["detail"]
    [row] = rows(db_path)
    assert row.status == status and row.error is not None and row.error.startswith(error)


async def test_oversized_body_gets_413_and_is_recorded(listen: Any, db_path: Path) -> None:
    client = await listen(max_body=1000)
    resp = await client.post("/", data=b"x" * 5000, headers={"Content-Type": "application/json"})
    assert resp.status == 413
    assert (await resp.json())["error"] == "body_too_large"
    ok = await client.post("/", json=SEED)  # the listener keeps serving
    assert ok.status == 200
    assert [r.status for r in rows(db_path)] == [413, 200]


async def test_other_methods_get_405_with_allow(listen: Any, db_path: Path) -> None:
    client = await listen()
    resp = await client.get("/favicon.ico")
    assert resp.status == 405
    assert resp.headers["Allow"] == "POST"
    assert rows(db_path)[0].method == "GET"


async def test_bad_signature_is_403_and_only_the_local_user_gets_the_explanation(
    listen: Any, db_path: Path, events: list[Request]
) -> None:
    client = await listen(secret="the-real-secret")
    near_miss = {**SEED, "signature": "THE-REAL-SECRET"}  # matches except for letter case
    resp = await client.post("/", json=near_miss)
    assert resp.status == 403
    # The poster learns nothing about the secret: no length, fingerprint or near-miss hint.
    assert await resp.json() == {"error": "signature_invalid", "detail": "signature invalid"}
    missing = await client.post("/", json={k: v for k, v in SEED.items() if k != "signature"})
    assert missing.status == 403
    assert await missing.json() == {"error": "signature_missing", "detail": "signature missing"}
    assert [r.verdict for r in rows(db_path)] == ["invalid", "missing"]
    # The local user sees why, in the event (table, NDJSON) and in the store.
    assert "sha256:" in (events[0].error_detail or "")
    assert "letter case" in (events[0].error_detail or "")
    assert "letter case" in (rows(db_path)[0].verdict_detail or "")


async def test_accept_bad_signature_answers_200_flagged(listen: Any, events: list[Request]) -> None:
    client = await listen(secret="other", accept_bad_signature=True)
    resp = await client.post("/", json=SEED)
    assert resp.status == 200
    assert "signature invalid" in (await resp.json())["warning"]
    assert events[0].verdict == "invalid"


async def test_hmac_mode_and_form_bodies(listen: Any) -> None:
    client = await listen(secret="s3cret", signature_mode=Mode.HMAC)
    sig = compute_hmac("s3cret", REFID, "hi there")
    form = {
        "refid": REFID,
        "from": "+13035550100",
        "to": "+13038675309",
        "message": "hi there",
        "signature": sig,
    }
    resp = await client.post("/", data=form)
    assert resp.status == 200


async def test_store_failure_answers_503_never_200(
    listen: Any, db_path: Path, events: list[Request]
) -> None:
    client = await listen()
    assert (await client.post("/", json=SEED)).status == 200
    other = store.connect(db_path)
    other.execute("DROP TABLE requests")  # the disk went away under the listener
    other.close()
    resp = await client.post("/", json=SEED)
    assert resp.status == 503
    assert (await resp.json())["error"] == "store_failed"
    assert events[-1].status == 503 and events[-1].id is None


async def test_concurrent_requests_are_all_committed(listen: Any, db_path: Path) -> None:
    import asyncio

    client = await listen()
    bodies = [{**SEED, "refid": f"{i:032d}"} for i in range(200)]
    responses = await asyncio.gather(*(client.post("/", json=b) for b in bodies))
    assert all(r.status == 200 for r in responses)
    assert len(rows(db_path)) == 200


async def test_a_failing_output_never_turns_a_recorded_message_into_an_error(
    aiohttp_client: MakeClient, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: Request) -> None:
        raise RuntimeError("display exploded")

    client = await aiohttp_client(create_app(ListenConfig(), Recorder(db_path), [broken]))
    resp = await client.post("/", json=SEED)
    assert resp.status == 200
    assert len(rows(db_path)) == 1
    assert "an output of the listener failed" in caplog.text


BODIES = st.one_of(
    st.binary(max_size=300),
    st.dictionaries(
        st.sampled_from(["refid", "from", "to", "message", "signature", "x"]),
        st.one_of(
            st.text(max_size=40), st.integers(), st.none(), st.lists(st.integers(), max_size=3)
        ),
        max_size=6,
    ).map(lambda d: json.dumps(d).encode()),
)
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/x-www-form-urlencoded",
        "text/plain",
        "",
        "application/json; charset=latin-1",
    ]
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=BODIES, content_type=CONTENT_TYPES)
async def test_any_input_gets_a_deliberate_answer_never_a_500(
    listen: Any, body: bytes, content_type: str
) -> None:
    client = await listen(secret="s")
    headers = {"Content-Type": content_type} if content_type else {}
    resp = await client.post("/", data=body, headers=headers)
    assert resp.status in (200, 400, 403, 415)
    if resp.status != 200:
        assert (await resp.json())["detail"]
    await client.close()
