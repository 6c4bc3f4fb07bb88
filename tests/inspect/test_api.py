"""The inspector's local API and its guard, over a real store, through real HTTP on loopback."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from ipsms.inspect.app import create_inspector, serve
from ipsms.request import Request
from ipsms.store.recorder import Recorder

TOKEN = "t0ken-for-tests"


def request(refid: str | None, message: str = "hi", status: int = 200) -> Request:
    fields = {"refid": refid, "from": "+13035550100", "to": "+13038675309", "message": message}
    body = json.dumps(fields).encode()
    return Request(
        time.time(),
        "POST",
        "/sms",
        "127.0.0.1",
        [("Host", "x")],
        "application/json",
        body,
        status,
        refid=refid,
        from_number="+13035550100",
        to_number="+13038675309",
        message=message,
        fields=fields,
    )  # type: ignore[arg-type]


@dataclass
class Inspector:
    base: str
    port: int
    recorder: Recorder
    session: aiohttp.ClientSession

    async def get(self, path: str, **kwargs: object) -> aiohttp.ClientResponse:
        headers = {"Authorization": f"Bearer {TOKEN}", **kwargs.pop("headers", {})}  # type: ignore[dict-item]
        return await self.session.get(self.base + path, headers=headers, **kwargs)  # type: ignore[arg-type]

    async def json(self, path: str) -> dict[str, object]:
        async with await self.get(path) as answer:
            assert answer.status == 200, await answer.text()
            return await answer.json()  # type: ignore[no-any-return]


@pytest.fixture
async def inspector(tmp_path: Path) -> AsyncIterator[Inspector]:
    db = tmp_path / "s.sqlite3"
    async with Recorder(db) as recorder:
        runner, bound = await serve(create_inspector(db, TOKEN), "127.0.0.1", 0, fall_back=False)
        # A browser keeps cookies of 127.0.0.1; aiohttp's jar does so only when asked.
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            try:
                yield Inspector(f"http://127.0.0.1:{bound.port}", bound.port, recorder, session)
            finally:
                await runner.cleanup()


async def test_no_token_no_data_and_a_wrong_one_neither(inspector: Inspector) -> None:
    for path in ("/", "/api/messages", "/api/events", "/static/app.js"):
        async with inspector.session.get(inspector.base + path) as answer:
            assert answer.status == 401, path
            assert (await answer.json())["error"] == "unauthorized"
    async with inspector.session.get(
        inspector.base + "/api/messages", headers={"Authorization": "Bearer nope"}
    ) as answer:
        assert answer.status == 401
    async with inspector.session.get(
        inspector.base + "/?token=nope", allow_redirects=False
    ) as answer:
        assert answer.status == 401


async def test_the_token_in_the_url_becomes_a_strict_cookie_and_leaves_the_url(
    inspector: Inspector,
) -> None:
    async with inspector.session.get(
        inspector.base + "/?token=" + TOKEN, allow_redirects=False
    ) as answer:
        assert answer.status == 302
        assert answer.headers["Location"] == "/"
        cookie = answer.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    async with inspector.session.get(inspector.base + "/api/messages") as answer:
        assert answer.status == 200  # the cookie jar sends it now


async def test_a_foreign_host_is_refused_even_with_the_token(inspector: Inspector) -> None:
    for host in (f"evil.example:{inspector.port}", "127.0.0.1:1", "localhost"):
        async with await inspector.get("/api/messages", headers={"Host": host}) as answer:
            assert answer.status == 403, host
            assert (await answer.json())["error"] == "foreign_host"
    async with await inspector.get(
        "/api/messages", headers={"Host": f"localhost:{inspector.port}"}
    ) as answer:
        assert answer.status == 200


async def test_a_change_needs_json_and_the_inspector_s_own_origin(inspector: Inspector) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for headers in (
        {},
        {"Origin": "http://evil.example", "Content-Type": "application/json"},
        {"Origin": inspector.base, "Content-Type": "text/plain"},
    ):
        async with inspector.session.post(
            inspector.base + "/api/messages", data="{}", headers={**auth, **headers}
        ) as answer:
            assert answer.status == 403, headers
            assert (await answer.json())["error"] == "cross_origin"


async def test_every_answer_carries_the_strict_headers(inspector: Inspector) -> None:
    async with await inspector.get("/api/messages") as answer:
        assert "default-src 'self'" in answer.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Referrer-Policy"] == "no-referrer"


async def test_the_list_is_newest_first_paged_and_filtered(inspector: Inspector) -> None:
    for i in range(7):
        await inspector.recorder.record(request(f"R{i % 3}", f"text {i}"))
    await inspector.recorder.record(request(None, "junk", status=400))
    page = await inspector.json("/api/messages?limit=5")
    items = page["items"]
    assert isinstance(items, list) and len(items) == 5
    ids = [item["id"] for item in items]
    assert ids == sorted(ids, reverse=True)
    assert items[0]["status"] == 400 and items[0]["refid"] is None
    older = await inspector.json(f"/api/messages?limit=5&before={page['next_before']}")
    assert [i["id"] for i in older["items"]] == [3, 2, 1] and older["next_before"] is None
    found = await inspector.json("/api/messages?q=TEXT%205")
    assert [i["message"] for i in found["items"]] == ["text 5"]
    retries = await inspector.json("/api/messages?refid=R1")
    assert [i["attempt"] for i in retries["items"]] == [2, 1]
    assert (await inspector.json("/api/messages?status=4xx"))["items"][0]["message"] == "junk"
    async with await inspector.get("/api/messages?status=nope") as answer:
        assert answer.status == 400 and (await answer.json())["error"] == "bad_query"


async def test_one_attempt_whole_with_its_exact_bytes_and_its_segments(
    inspector: Inspector,
) -> None:
    text = "é" * 71  # GSM-7 has é: one segment; UCS-2 would need two
    stored = await inspector.recorder.record(request("A" * 32, text))
    one = await inspector.json(f"/api/messages/{stored.id}")
    assert base64.b64decode(one["body_base64"]) == request("A" * 32, text).body  # type: ignore[arg-type]
    assert one["sms"] == {"chars": 71, "segments": 1, "encoding": "GSM-7"}
    group = await inspector.json("/api/refids/" + "A" * 32)
    assert [a["id"] for a in group["attempts"]] == [stored.id]  # type: ignore[union-attr]
    async with await inspector.get("/api/messages/999") as answer:
        assert answer.status == 404


async def read_events(answer: aiohttp.ClientResponse, count: int) -> list[tuple[str, dict]]:
    events: list[tuple[str, dict]] = []
    kind, data = "", ""
    while len(events) < count:
        line = (await asyncio.wait_for(answer.content.readline(), 10)).decode().rstrip("\n")
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and kind:
            events.append((kind, json.loads(data)))
            kind = ""
    return events


async def test_new_attempts_stream_live_and_a_reconnect_misses_nothing(
    inspector: Inspector,
) -> None:
    first = await inspector.recorder.record(request("S1"))
    async with await inspector.get("/api/events") as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        started = time.monotonic()
        await inspector.recorder.record(request("S2"))
        ((kind, item),) = await read_events(stream, 1)
        assert kind == "request" and item["refid"] == "S2"
        assert time.monotonic() - started < 1.0
    for name in ("S3", "S4"):  # while nobody listens
        await inspector.recorder.record(request(name))
    async with await inspector.get(
        "/api/events", headers={"Last-Event-ID": str(first.id)}
    ) as stream:
        got = await read_events(stream, 3)
        assert [item["refid"] for _, item in got] == ["S2", "S3", "S4"]
        await inspector.recorder.record(request("S5"))
        ((_, item),) = await read_events(stream, 1)
        assert item["refid"] == "S5"  # once: the catch-up and the live stream do not overlap


async def test_shutdown_with_a_tab_open_is_prompt(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite3"
    runner, bound = await serve(create_inspector(db, TOKEN), "127.0.0.1", 0, fall_back=False)
    async with aiohttp.ClientSession() as session:
        stream = await session.get(
            f"http://127.0.0.1:{bound.port}/api/events",
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        await stream.content.readline()
        started = time.monotonic()
        await runner.cleanup()
        assert time.monotonic() - started < 2.0
        stream.close()


async def test_a_busy_port_falls_back_to_a_free_one_when_asked(tmp_path: Path) -> None:
    runner, bound = await serve(
        create_inspector(tmp_path / "s.sqlite3", TOKEN), "127.0.0.1", 0, fall_back=False
    )
    try:
        other, second = await serve(
            create_inspector(tmp_path / "s.sqlite3", TOKEN), "127.0.0.1", bound.port, fall_back=True
        )
        assert second.fell_back and second.port != bound.port
        await other.cleanup()
        from ipsms.errors import BindError

        with pytest.raises(BindError, match="cannot serve the inspector"):
            await serve(
                create_inspector(tmp_path / "s.sqlite3", TOKEN),
                "127.0.0.1",
                bound.port,
                fall_back=False,
            )
    finally:
        await runner.cleanup()


async def test_a_page_that_resumes_after_a_clear_gets_the_new_rows(
    inspector: Inspector, tmp_path: Path
) -> None:
    from ipsms import store

    for name in ("C1", "C2", "C3"):
        await inspector.recorder.record(request(name))
    with store.opened(tmp_path / "s.sqlite3") as conn:
        store.clear(conn)
    await inspector.recorder.record(request("NEW"))  # id 1 again
    async with await inspector.get("/api/events", headers={"Last-Event-ID": "3"}) as stream:
        got = await read_events(stream, 2)
    assert [kind for kind, _ in got] == ["cleared", "request"]
    assert got[1][1]["refid"] == "NEW"


async def test_every_attempt_of_a_refid_no_url_can_carry(inspector: Inspector) -> None:
    first = await inspector.recorder.record(request(".."))
    await inspector.recorder.record(request(".."))
    group = await inspector.json(f"/api/messages/{first.id}/attempts?bodies=0")
    assert group["refid"] == ".." and [a["attempt"] for a in group["attempts"]] == [1, 2]  # type: ignore[index,union-attr]
    assert group["attempts"][0]["body_base64"] is None  # type: ignore[index]


async def test_a_flood_is_streamed_as_its_newest_attempts_and_a_gap(inspector: Inspector) -> None:
    from ipsms.inspect.stream import LIVE_MAX

    async with await inspector.get("/api/events") as stream:
        await asyncio.gather(
            *(inspector.recorder.record(request(f"F{i:04d}")) for i in range(LIVE_MAX * 3))
        )
        events = await read_events(stream, 1)
        while events[-1][0] != "gap":  # the first poll may catch the flood's start whole
            events += await read_events(stream, 1)
        _, gap = events[-1]
        assert gap["count"] > 0 and gap["after"] < gap["before"]
        rest = await read_events(stream, LIVE_MAX)
        ids = [item["id"] for _, item in rest]
        assert ids == sorted(ids) and ids[0] == gap["before"]
        assert ids[-1] == LIVE_MAX * 3  # the newest is shown


async def test_a_page_back_after_long_gets_the_newest_thousand_and_a_gap(
    inspector: Inspector,
) -> None:
    from ipsms.inspect.app import CATCH_UP_MAX

    await asyncio.gather(
        *(inspector.recorder.record(request(f"G{i:04d}")) for i in range(CATCH_UP_MAX + 50))
    )
    async with await inspector.get("/api/events", headers={"Last-Event-ID": "0"}) as stream:
        ((kind, gap),) = await read_events(stream, 1)
        assert kind == "gap" and gap == {"after": 0, "before": 51, "count": 50}
        got = await read_events(stream, CATCH_UP_MAX)
        assert [item["id"] for _, item in got] == list(range(51, CATCH_UP_MAX + 51))
