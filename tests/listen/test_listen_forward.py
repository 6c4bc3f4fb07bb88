"""`listen --forward-to URL`: each accepted message is relayed to a real local app, and the
app's own answer goes back to the sender (so IntelePeer's retries follow the app)."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from ipsms.errors import ExitCode
from ipsms.request import Request
from tests.conftest import run_ipsms
from tests.hostile import VALID, running_listener, status_of, stored_rows
from tests.procs import ListenerProcess
from tests.raw_http import read_request

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def app_server(handler: Handler) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """The developer's app on a free loopback port; yields its URL and what it received."""
    seen: list[dict[str, Any]] = []

    async def record(request: web.Request) -> web.StreamResponse:
        seen.append(
            {
                "method": request.method,
                "path": request.path_qs,
                "headers": list(request.headers.items()),
                "body": await request.read(),
            }
        )
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


Piece = bytes | float  # bytes written as one write, or a pause in seconds


@asynccontextmanager
async def raw_app(*answers: Sequence[Piece]) -> AsyncIterator[tuple[str, list[bytes]]]:
    """An app that answers its n-th request with the n-th of ``answers``, byte for byte: each
    piece one write (a float is a pause), then it closes the connection. Yields its URL and
    the request heads it read."""
    heads: list[bytes] = []
    tasks: set[asyncio.Task[Any]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            request = await read_request(reader)
            if request is not None:
                heads.append(request[0])
                for piece in answers[len(heads) - 1]:
                    if isinstance(piece, float):
                        await asyncio.sleep(piece)
                    else:
                        writer.write(piece)
                        await writer.drain()
        except ConnectionError:
            pass  # the listener gave up on this answer: what the test checks
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/sms", heads
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


@contextmanager
def stock_app() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """The app as Python's own ``http.server`` writes it (HTTP/1.0, no ``100 Continue``):
    answers 200 ``stored``. Yields its URL and the headers of each request it read."""
    seen: list[dict[str, str]] = []

    class App(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append({k.lower(): v for k, v in self.headers.items()})
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", "6")
            self.end_headers()
            self.wfile.write(b"stored")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), App)
    # shutdown() waits for this loop to look: every 50 ms, not the default 500.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/sms", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def split(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")[1:]
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status_of(answer), headers, body


def whole(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    """``split(answer)``, checking that its Content-Length is the number of bytes that came."""
    status, headers, body = split(answer)
    assert status != 0, f"the listener closed the connection without answering: {answer!r}"
    assert int(headers["content-length"]) == len(body), (headers, len(body))
    return status, headers, body


def agrees(db: Path, status: int, body: bytes) -> dict[str, Any]:
    """The stored row says what the poster got: its status and the start of its body."""
    [row] = stored_rows(db)
    assert row.status == status and row.forward is not None
    assert row.forward["status"] == status
    assert row.forward["body_preview"] == body[:200].decode("utf-8", "replace")
    return row.forward


BODY = json.dumps(VALID).encode()


async def test_the_app_gets_the_exact_message_and_its_answer_goes_back(tmp_path: Path) -> None:
    async def created(_: web.Request) -> web.Response:
        return web.Response(
            status=201,
            body=b"\x00stored\xff",
            headers={"X-App": "yes"},
            content_type="application/octet-stream",
        )

    db = tmp_path / "f.sqlite3"
    async with app_server(created) as (url, seen), running_listener(db, forward_to=url) as listener:
        answer = await listener.post(BODY, headers="Keep-Alive: timeout=5\r\nX-Trace: abc\r\n")
        events = [e for e in listener.events if isinstance(e, Request)]
    status, headers, body = split(answer)
    assert (status, headers["x-app"], body) == (201, "yes", b"\x00stored\xff")
    [got] = seen
    sent = {k.lower(): v for k, v in got["headers"]}
    assert got["body"] == BODY and got["method"] == "POST"
    assert sent["content-type"] == "application/json" and sent["x-trace"] == "abc"
    assert "keep-alive" not in sent  # hop-by-hop: never relayed
    assert sent.get("connection", "").lower() != "close"  # the poster's, not relayed
    assert sent["x-forwarded-for"] == "127.0.0.1"
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
    async with app_server(failing) as (url, _), running_listener(db, forward_to=url) as listener:
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

    async with (
        app_server(slow) as (url, _),
        running_listener(tmp_path / "s.sqlite3", forward_to=url, forward_timeout=0.2) as listener,
    ):
        status, _, body = split(await listener.post(BODY))
    assert status == 504 and json.loads(body)["error"] == "app_timeout"


async def test_compressed_answers_go_back_byte_for_byte(tmp_path: Path) -> None:
    packed = gzip.compress(b'{"ok": true}')

    async def zipped(_: web.Request) -> web.Response:
        return web.Response(
            body=packed, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
        )

    async with (
        app_server(zipped) as (url, _),
        running_listener(tmp_path / "z.sqlite3", forward_to=url) as listener,
    ):
        status, headers, body = split(await listener.post(BODY))
    assert (status, headers["content-encoding"], body) == (200, "gzip", packed)


async def test_requests_ipsms_rejects_are_not_relayed(tmp_path: Path) -> None:
    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async with (
        app_server(ok) as (url, seen),
        running_listener(tmp_path / "r.sqlite3", forward_to=url) as listener,
    ):
        assert status_of(await listener.post(b"{not json")) == 400
        assert (
            status_of(
                await listener.raw(b"GET /sms HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            )
            == 405
        )
    assert seen == []


async def test_simulate_retries_follow_what_the_app_does(tmp_path: Path) -> None:
    answers = iter([503, 500, 200])

    async def flaky(_: web.Request) -> web.Response:
        return web.Response(status=next(answers), text="app")

    async with (
        app_server(flaky) as (url, seen),
        running_listener(tmp_path / "sim.sqlite3", forward_to=url) as listener,
    ):
        result = await asyncio.to_thread(
            run_ipsms,
            "simulate",
            f"http://127.0.0.1:{listener.port}/",
            "--no-wait",
            "--format",
            "json",
        )
    assert result.returncode == 0, result.stderr
    attempts = [
        json.loads(line)
        for line in result.stdout.splitlines()
        if json.loads(line)["type"] == "attempt"
    ]
    assert [a["status"] for a in attempts] == [503, 500, 200]
    assert len(seen) == 3


def test_listen_says_where_it_forwards_and_checks_the_url(tmp_path: Path) -> None:
    bad = run_ipsms("listen", "--forward-to", "ftp://example.com/")
    assert bad.returncode == ExitCode.USAGE and "not an http:// or https:// URL" in bad.stderr
    listener = ListenerProcess("--forward-to", "http://127.0.0.1:9/sms", db=tmp_path / "p.sqlite3")
    try:
        assert listener.ready["forward_to"] == "http://127.0.0.1:9/sms"
        code, _, err = listener.stop()
    finally:
        listener.kill()
    assert code == 0 and "forwarding accepted messages to http://127.0.0.1:9/sms" in err


JSON_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"


@pytest.mark.parametrize(
    "answer",
    [
        [JSON_HEAD + b'Content-Length: 12\r\n\r\n{"ok":', 0.05, b" true}"],
        [
            JSON_HEAD + b'Transfer-Encoding: chunked\r\n\r\n6\r\n{"ok":\r\n',
            0.05,
            b"6\r\n true}\r\n0\r\n\r\n",
        ],
        [
            JSON_HEAD + b'\r\n{"ok":',
            0.05,
            b" true}",
        ],  # no length: the body ends with the connection
    ],
    ids=["content-length", "chunked", "until-close"],
)
async def test_an_answer_written_in_pieces_goes_back_whole(
    tmp_path: Path, answer: list[Piece]
) -> None:
    db = tmp_path / "p.sqlite3"
    async with raw_app(answer) as (url, _), running_listener(db, forward_to=url) as listener:
        status, headers, body = whole(await listener.post(BODY))
    assert (status, body, headers["content-type"]) == (200, b'{"ok": true}', "application/json")
    assert "transfer-encoding" not in headers
    assert agrees(db, 200, body)["error"] is None


async def test_an_answer_that_breaks_off_or_is_too_large_is_a_502(tmp_path: Path) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n"
    cut: list[Piece] = [head % 200_000, b"x" * 100_000]  # announces 200 KB, sends 100 KB and closes
    huge: list[Piece] = [head % 2**30, b"x" * 100_000]  # announces 1 GiB
    chunks: list[Piece] = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        *[b"100000\r\n" + b"x" * 0x100000 + b"\r\n"] * 11,
    ]  # 11 MiB, never ending
    got: list[tuple[int, str, str, str]] = []
    answers: list[list[Piece]] = [cut, huge, chunks]
    for answer in answers:
        db = tmp_path / f"{len(got)}.sqlite3"
        async with raw_app(answer) as (url, _), running_listener(db, forward_to=url) as listener:
            status, _, body = whole(await listener.post(BODY))
        forward = agrees(db, status, body)
        got.append((status, json.loads(body)["error"], forward["error"], forward["detail"]))
    assert got == [
        (
            502,
            "app_answer_invalid",
            "app_answer_invalid",
            "the app's answer broke off after 100000 bytes of the 200000 its Content-Length "
            "announced",
        ),
        (
            502,
            "app_answer_too_large",
            "app_answer_too_large",
            "the app announced a body of 1073741824 bytes, more than the limit of 10485760",
        ),
        (
            502,
            "app_answer_too_large",
            "app_answer_too_large",
            "the app answered more than 10485760 bytes",
        ),
    ]


async def test_an_app_that_stalls_mid_body_is_a_504_at_the_forward_timeout(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite3"
    stall: list[Piece] = [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 30.0]
    async with (
        raw_app(stall) as (url, _),
        running_listener(db, forward_to=url, forward_timeout=0.5) as listener,
    ):
        started = time.monotonic()
        status, _, body = whole(await listener.post(BODY))
        took = time.monotonic() - started
    assert status == 504 and json.loads(body)["error"] == "app_timeout"
    assert 0.5 <= took < 5
    assert agrees(db, 504, body)["detail"] == "the app did not answer within 0.5 s"


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        (
            b"a\x01b",
            "the app's X-Bad header holds a control character (\\u0001), which no HTTP "
            "answer may carry",
        ),
        (
            b"a\x7fb",
            "the app's X-Bad header holds a control character (\\u007f), which no HTTP "
            "answer may carry",
        ),
        (
            b"caf\xe9",
            "the app's X-Bad header is not UTF-8, and ipsms cannot relay it byte for byte",
        ),
        (b"a\rb", "the app's answer is not valid HTTP: Missing expected LF after header value"),
    ],
    ids=["soh", "del", "latin-1", "bare-cr"],
)
async def test_a_header_that_cannot_be_relayed_as_sent_is_a_502_and_the_row_says_so(
    tmp_path: Path, value: bytes, detail: str
) -> None:
    bad = [b"HTTP/1.1 200 OK\r\nX-Bad: " + value + b"\r\nContent-Length: 2\r\n\r\nok"]
    good = [b"HTTP/1.1 200 OK\r\nX-Name: caf\xc3\xa9\r\nContent-Length: 2\r\n\r\nok"]
    db = tmp_path / "h.sqlite3"
    async with raw_app(bad, good) as (url, _), running_listener(db, forward_to=url) as listener:
        refused = await listener.post(BODY)
        kept = await listener.post(BODY)  # UTF-8 goes back as it came
    status, _, body = whole(refused)
    assert (status, json.loads(body)) == (502, {"error": "app_answer_invalid", "detail": detail})
    first, second = stored_rows(db)
    assert (first.status, first.error, first.error_detail) == (502, "app_answer_invalid", detail)
    assert first.forward is not None and first.forward["detail"] == detail
    assert b"\r\nX-Name: caf\xc3\xa9\r\n" in kept and whole(kept)[0] == second.status == 200


@pytest.mark.parametrize(
    ("answer", "detail"),
    [
        (
            [
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"2\r\nok\r\n0\r\n\r\n"
            ],
            "the app's answer is not valid HTTP: Transfer-Encoding can't be present with "
            "Content-Length",
        ),
        (
            [
                b"HTTP/1.1 200 OK\r\n"
                + b"".join(b"X-H%d: v\r\n" % i for i in range(500))
                + b"Content-Length: 2\r\n\r\nok"
            ],
            "the app's answer is not valid HTTP: Too many headers received",
        ),
        (
            [
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\n\r\n"
            ],
            "the app's final answer was 101, an interim status (ipsms asked for no upgrade)",
        ),
        (
            [b"HTTP/1.1 999 Custom\r\nContent-Length: 2\r\n\r\nok"],
            "the app answered status 999, which is not an HTTP status (100 to 599)",
        ),
        (
            [b"HTTP/1.1 202 Que\x01ued\r\nContent-Length: 2\r\n\r\nok"],
            "the app's reason phrase cannot be relayed byte for byte: Que\\u0001ued",
        ),
        ([b"hello\r\n\r\n"], "the app's answer is not valid HTTP: Bad status line"),
        ([], "the app closed the connection without answering"),
    ],
    ids=["te-and-cl", "500-headers", "101", "999", "reason-soh", "not-http", "closed"],
)
async def test_an_answer_ipsms_cannot_relay_is_a_502_with_the_reason(
    tmp_path: Path, answer: list[Piece], detail: str
) -> None:
    db = tmp_path / "i.sqlite3"
    async with raw_app(answer) as (url, _), running_listener(db, forward_to=url) as listener:
        status, _, body = whole(await listener.post(BODY))
    assert (status, json.loads(body)) == (502, {"error": "app_answer_invalid", "detail": detail})
    assert agrees(db, 502, body)["error"] == "app_answer_invalid"


async def test_the_app_s_status_line_and_headers_come_back_with_nothing_added(
    tmp_path: Path,
) -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    final = (
        b"HTTP/1.1 202 Queued For Later\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
        b"Connection: X-Hop\r\nX-Hop: 1\r\nContent-Length: 2\r\n\r\nok"
    )
    db = tmp_path / "a.sqlite3"
    async with (
        raw_app([interim, 0.05, final]) as (url, _),
        running_listener(db, forward_to=url) as listener,
    ):
        answer = await listener.post(BODY)
    head = answer.partition(b"\r\n\r\n")[0].split(b"\r\n")
    # Only the final answer, its reason phrase, both cookies, no header the app did not send
    # (a Date, which a relay adds when the app sent none), nothing the app meant for one hop.
    assert head[0] == b"HTTP/1.1 202 Queued For Later"
    assert sorted(line.split(b":")[0] for line in head[1:]) == [
        b"Connection",
        b"Content-Length",
        b"Date",
        b"Set-Cookie",
        b"Set-Cookie",
    ]
    assert b"Set-Cookie: a=1" in head and b"Set-Cookie: b=2" in head
    assert whole(answer)[2] == b"ok" and agrees(db, 202, b"ok")["error"] is None


def _post_expecting_100(port: int) -> bytes:
    """A poster that waits for ``100 Continue`` before sending the body, as curl does."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /sms HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nExpect: 100-continue\r\nConnection: close\r\n"
            b"\r\n" % len(BODY)
        )
        assert sock.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(BODY)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


async def test_expect_100_continue_is_answered_by_ipsms_and_not_relayed(tmp_path: Path) -> None:
    db = tmp_path / "x.sqlite3"
    with stock_app() as (url, seen):
        async with running_listener(db, forward_to=url, forward_timeout=3.0) as listener:
            answer = await asyncio.to_thread(_post_expecting_100, listener.port)
    assert whole(answer)[::2] == (200, b"stored")
    [headers] = seen
    assert "expect" not in headers and headers["content-length"] == str(len(BODY))
    agrees(db, 200, b"stored")


async def test_x_forwarded_headers_say_what_ipsms_saw_never_what_the_poster_claims(
    tmp_path: Path,
) -> None:
    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    claims = (
        "X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\n"
        "X-Forwarded-Host: bank.example\r\nX-Forwarded-Port: 443\r\n"
        "Forwarded: for=203.0.113.9;proto=https\r\nX-Real-IP: 203.0.113.9\r\n"
    )
    async with (
        app_server(ok) as (url, seen),
        running_listener(tmp_path / "f.sqlite3", forward_to=url) as listener,
    ):
        assert status_of(await listener.post(BODY, headers=claims)) == 200
    [got] = seen
    sent = [
        (k.lower(), v)
        for k, v in got["headers"]
        if k.lower().startswith("x-") or k.lower() == "forwarded"
    ]
    assert sorted(sent) == [
        ("x-forwarded-for", "127.0.0.1"),
        ("x-forwarded-host", "x"),
        ("x-forwarded-proto", "http"),
    ]


async def test_a_sender_header_that_is_not_utf8_is_left_out_not_sent_altered(
    tmp_path: Path,
) -> None:
    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async with (
        app_server(ok) as (url, seen),
        running_listener(tmp_path / "u.sqlite3", forward_to=url) as listener,
    ):
        # post() sends header text as latin-1 bytes: \xe9 alone, then é as UTF-8's two bytes
        answer = await listener.post(BODY, headers="X-Latin: caf\xe9\r\nX-Utf8: caf\xc3\xa9\r\n")
    assert status_of(answer) == 200
    [got] = seen
    sent = {k.lower(): v for k, v in got["headers"]}
    assert "x-latin" not in sent and sent["x-utf8"] == "café"
