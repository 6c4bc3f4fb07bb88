"""Replay, edit and resend, and export from the inspector: real deliveries to a real listener
on loopback, recorded in the store like any other message."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from ipsms import store
from ipsms.inspect.actions import Targets
from ipsms.inspect.app import create_inspector, serve
from ipsms.listen.app import ListenConfig
from ipsms.listen.server import ListenServer
from ipsms.signature import Mode
from tests.inspect.test_api import TOKEN

SECRET = "s3cret"


def payload(refid: str, message: str) -> str:
    return json.dumps(
        {
            "refid": refid,
            "from": "+13035550100",
            "to": "+13038675309",
            "message": message,
            "signature": SECRET,
        }
    )


@dataclass
class Setup:
    base: str
    listener_url: str
    db: Path
    session: aiohttp.ClientSession

    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {TOKEN}",
            "Origin": self.base,
            "Content-Type": "application/json",
        }

    async def post(self, path: str, body: object) -> tuple[int, dict]:
        async with self.session.post(
            self.base + path, data=json.dumps(body), headers=self.headers()
        ) as answer:
            return answer.status, await answer.json()

    def rows(self) -> list:
        with store.opened(self.db) as conn:
            return list(store.iter_all(conn))

    async def wait_rows(self, count: int) -> list:
        for _ in range(100):
            rows = self.rows()
            if len(rows) >= count:
                return rows
            await asyncio.sleep(0.05)
        raise AssertionError(f"{len(self.rows())} rows, wanted {count}")


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    db = tmp_path / "s.sqlite3"
    server = ListenServer(ListenConfig(secret=SECRET), db, "127.0.0.1", 0)
    bound = await server.start()
    targets = Targets(listener=bound.url, secret=SECRET, mode=Mode.PLAIN)
    runner, inspector = await serve(
        create_inspector(db, TOKEN, targets=targets), "127.0.0.1", 0, fall_back=False
    )
    try:
        async with aiohttp.ClientSession() as session:
            yield Setup(f"http://127.0.0.1:{inspector.port}", bound.url, db, session)
    finally:
        await runner.cleanup()
        await server.stop()


async def test_replay_posts_the_same_bytes_again_and_it_is_recorded(setup: Setup) -> None:
    async with setup.session.post(
        setup.listener_url + "sms",
        data=payload("R" * 32, "hello"),
        headers={"Content-Type": "application/json"},
    ) as answer:
        assert answer.status == 200
    (first,) = await setup.wait_rows(1)
    status, sent = await setup.post(f"/api/messages/{first.id}/replay", {})
    assert status == 202 and sent["refid"] == "R" * 32
    rows = await setup.wait_rows(2)
    assert rows[1].body == first.body and rows[1].attempt == 2 and rows[1].status == 200


async def test_edit_and_resend_changes_the_text_and_signs_it_again(setup: Setup) -> None:
    async with setup.session.post(
        setup.listener_url + "sms",
        data=payload("E" * 32, "before"),
        headers={"Content-Type": "application/json"},
    ) as answer:
        assert answer.status == 200
    (first,) = await setup.wait_rows(1)
    status, sent = await setup.post(
        "/api/resend",
        {"id": first.id, "fields": {"message": "after ✓"}, "sign": True, "new_refid": True},
    )
    assert status == 202 and sent["refid"] != "E" * 32
    rows = await setup.wait_rows(2)
    assert rows[1].message == "after ✓" and rows[1].refid == sent["refid"]
    assert rows[1].verdict == "valid" and rows[1].attempt == 1  # the listener checked it


async def test_no_open_relay_and_clear_refusals(setup: Setup) -> None:
    async with setup.session.post(
        setup.listener_url + "sms",
        data=payload("X" * 32, "m"),
        headers={"Content-Type": "application/json"},
    ) as answer:
        assert answer.status == 200
    (first,) = await setup.wait_rows(1)
    status, why = await setup.post(
        f"/api/messages/{first.id}/replay", {"to": "https://example.com/sms"}
    )
    assert status == 400 and "not a target of this inspector" in why["detail"]
    status, why = await setup.post("/api/resend", {"id": 999})
    assert status == 404
    status, why = await setup.post("/api/resend", {"id": "1"})
    assert status == 400 and "whole number" in why["detail"]
    status, why = await setup.post("/api/resend", {"id": first.id, "fields": ["x"]})
    assert status == 400
    assert len(setup.rows()) == 1  # nothing was sent


async def test_export_as_ndjson_and_har(setup: Setup) -> None:
    for message in ("one", "two"):
        async with setup.session.post(
            setup.listener_url + "sms",
            data=payload(message.upper() * 8, message),
            headers={"Content-Type": "application/json"},
        ) as answer:
            assert answer.status == 200
    await setup.wait_rows(2)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with setup.session.get(setup.base + "/api/export?q=two", headers=auth) as answer:
        lines = [json.loads(line) for line in (await answer.text()).splitlines()]
    assert [line["message"] for line in lines] == ["two"]
    async with setup.session.get(
        setup.base + "/api/export?format=har&redact=1", headers=auth
    ) as answer:
        har = await answer.json()
    entries = har["log"]["entries"]
    assert har["log"]["version"] == "1.2" and len(entries) == 2
    assert entries[0]["request"]["method"] == "POST"
    assert "+13035550100" not in json.dumps(har)  # redacted: no number, no text
    assert '"one"' not in json.dumps(har)


async def test_a_saved_fixture_is_replayed_byte_for_byte_by_the_pytest_plugin(
    setup: Setup, tmp_path: Path
) -> None:
    from ipsms.testing.deliver import Deliverer, load_fixture

    body = payload("F" * 32, "fixture 🙂 \ud83d").encode("utf-8", "surrogatepass")
    async with setup.session.post(
        setup.listener_url + "sms", data=body, headers={"Content-Type": "application/json"}
    ) as answer:
        assert answer.status == 200
    (first,) = await setup.wait_rows(1)
    async with setup.session.get(
        f"{setup.base}/api/messages/{first.id}/fixture",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as answer:
        assert answer.status == 200
        assert "attachment" in answer.headers["Content-Disposition"]
        saved = tmp_path / "fixture.json"
        saved.write_bytes(await answer.read())
    result = await Deliverer().replay_async(setup.listener_url + "sms", saved)
    assert result.delivered and result.refid == "F" * 32
    rows = await setup.wait_rows(2)
    assert rows[1].body == body and rows[1].attempt == 2
    with pytest.raises(ValueError, match="not an ipsms fixture"):
        load_fixture({"type": "message"})
    with pytest.raises(ValueError, match="redacted"):
        load_fixture({**load_fixture(saved), "redacted": True})
