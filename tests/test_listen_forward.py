"""`listen --forward-to URL`: each accepted message is relayed to a real local app, and the
app's own answer goes back to the sender (so IntelePeer's retries follow the app)."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web

from ipsms.errors import ExitCode
from ipsms.request import Request
from tests.conftest import run_ipsms
from tests.hostile import VALID, running_listener, status_of, stored_rows
from tests.procs import ListenerProcess

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def app_server(handler: Handler) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """The developer's app on a free loopback port; yields its URL and what it received."""
    seen: list[dict[str, Any]] = []

    async def record(request: web.Request) -> web.StreamResponse:
        seen.append({"method": request.method, "path": request.path_qs,
                     "headers": list(request.headers.items()), "body": await request.read()})
        return await handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/sms", seen
    finally:
        await runner.cleanup()


def split(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")[1:]
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status_of(answer), headers, body


BODY = json.dumps(VALID).encode()


async def test_the_app_gets_the_exact_message_and_its_answer_goes_back(tmp_path: Path) -> None:
    async def created(_: web.Request) -> web.Response:
        return web.Response(status=201, body=b"\x00stored\xff", headers={"X-App": "yes"},
                            content_type="application/octet-stream")

    db = tmp_path / "f.sqlite3"
    async with app_server(created) as (url, seen), \
            running_listener(db, forward_to=url) as listener:
        answer = await listener.post(BODY, headers="Keep-Alive: timeout=5\r\nX-Trace: abc\r\n"
                                     "X-Forwarded-For: 203.0.113.9\r\n")
        events = [e for e in listener.events if isinstance(e, Request)]
    status, headers, body = split(answer)
    assert (status, headers["x-app"], body) == (201, "yes", b"\x00stored\xff")
    [got] = seen
    sent = {k.lower(): v for k, v in got["headers"]}
    assert got["body"] == BODY and got["method"] == "POST"
    assert sent["content-type"] == "application/json" and sent["x-trace"] == "abc"
    assert "keep-alive" not in sent  # hop-by-hop: never relayed
    assert sent.get("connection", "").lower() != "close"  # the poster's, not relayed
    assert sent["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    assert sent["x-forwarded-proto"] == "http" and sent["x-forwarded-host"] == "x"
    [event] = events
    assert event.status == 201 and event.forward is not None
    assert event.forward["status"] == 201 and event.forward["error"] is None
    assert event.forward["body_preview"] == "\x00stored\ufffd"
    [row] = stored_rows(db)  # recorded before the answer, with the app's answer
    assert row.status == 201 and row.forward == event.forward and row.body == BODY


async def test_the_app_s_failure_is_the_sender_s_failure(tmp_path: Path) -> None:
    async def failing(_: web.Request) -> web.Response:
        return web.json_response({"error": "db down"}, status=500)

    db = tmp_path / "e.sqlite3"
    async with app_server(failing) as (url, _), \
            running_listener(db, forward_to=url) as listener:
        status, _, body = split(await listener.post(BODY))
    assert status == 500 and json.loads(body) == {"error": "db down"}
    [row] = stored_rows(db)
    assert row.status == 500 and row.message == VALID["message"] and not row.body_truncated


async def test_an_app_that_is_down_is_a_502_and_the_message_is_recorded(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = tmp_path / "d.sqlite3"
    async with running_listener(db, forward_to=f"http://127.0.0.1:{port}/sms") as listener:
        status, _, body = split(await listener.post(BODY))
    assert status == 502 and json.loads(body)["error"] == "app_unreachable"
    [row] = stored_rows(db)
    assert (row.status, row.error) == (502, "app_unreachable")
    assert row.forward is not None and "could not be reached" in row.forward["detail"]


async def test_a_slow_app_is_a_504_after_the_forward_timeout(tmp_path: Path) -> None:
    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(0.6)
        return web.Response(text="late")

    async with app_server(slow) as (url, _), \
            running_listener(tmp_path / "s.sqlite3", forward_to=url,
                             forward_timeout=0.2) as listener:
        status, _, body = split(await listener.post(BODY))
    assert status == 504 and json.loads(body)["error"] == "app_timeout"


async def test_compressed_answers_go_back_byte_for_byte(tmp_path: Path) -> None:
    packed = gzip.compress(b'{"ok": true}')

    async def zipped(_: web.Request) -> web.Response:
        return web.Response(body=packed, headers={"Content-Encoding": "gzip",
                                                  "Content-Type": "application/json"})

    async with app_server(zipped) as (url, _), \
            running_listener(tmp_path / "z.sqlite3", forward_to=url) as listener:
        status, headers, body = split(await listener.post(BODY))
    assert (status, headers["content-encoding"], body) == (200, "gzip", packed)


async def test_requests_ipsms_rejects_are_not_relayed(tmp_path: Path) -> None:
    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async with app_server(ok) as (url, seen), \
            running_listener(tmp_path / "r.sqlite3", forward_to=url) as listener:
        assert status_of(await listener.post(b"{not json")) == 400
        assert status_of(await listener.raw(b"GET /sms HTTP/1.1\r\nHost: x\r\n"
                                            b"Connection: close\r\n\r\n")) == 405
    assert seen == []


async def test_simulate_retries_follow_what_the_app_does(tmp_path: Path) -> None:
    answers = iter([503, 500, 200])

    async def flaky(_: web.Request) -> web.Response:
        return web.Response(status=next(answers), text="app")

    async with app_server(flaky) as (url, seen), \
            running_listener(tmp_path / "sim.sqlite3", forward_to=url) as listener:
        result = await asyncio.to_thread(
            run_ipsms, "simulate", f"http://127.0.0.1:{listener.port}/", "--no-wait",
            "--format", "json")
    assert result.returncode == 0, result.stderr
    attempts = [json.loads(line) for line in result.stdout.splitlines()
                if json.loads(line)["type"] == "attempt"]
    assert [a["status"] for a in attempts] == [503, 500, 200]
    assert len(seen) == 3


def test_listen_says_where_it_forwards_and_checks_the_url(tmp_path: Path) -> None:
    bad = run_ipsms("listen", "--forward-to", "ftp://example.com/")
    assert bad.returncode == ExitCode.USAGE and "not an http:// or https:// URL" in bad.stderr
    listener = ListenerProcess("--forward-to", "http://127.0.0.1:9/sms",
                               db=tmp_path / "p.sqlite3")
    try:
        assert listener.ready["forward_to"] == "http://127.0.0.1:9/sms"
        code, _, err = listener.stop()
    finally:
        listener.kill()
    assert code == 0 and "forwarding accepted messages to http://127.0.0.1:9/sms" in err
