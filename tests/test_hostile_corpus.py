"""A hostile corpus against a real listener on a loopback port.

Every request gets a deliberate answer (never a 500, never a hang), the listener keeps working
after each one (a valid message is still answered 200), and what was answered 200 is on disk.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ipsms.listen.events import RejectedEvent
from ipsms.request import Request
from ipsms.text import dumps
from ipsms.ui.lines import ndjson_line
from tests.hostile import (
    REFID,
    SECRET,
    VALID,
    body_of,
    running_listener,
    status_of,
    stored_rows,
)


def msg(**changes: object) -> bytes:
    return json.dumps({**VALID, **changes}).encode()


def raw_json(text: str) -> bytes:
    """A body written by hand (escapes such as \\ud800 stay as sent)."""
    return text.encode("utf-8", "surrogatepass")


BASE = '"refid":"ABCDEF1234567890ABCDEF1234567890","from":"+13035550100","to":"+13038675309"'
SIG = f'"signature":"{SECRET}"'
DIGITS = "9" * 5000


def _head(
    extra: str = "", *, method: str = "POST", path: str = "/", length: int | None = 0
) -> bytes:
    cl = f"Content-Length: {length}\r\n" if length is not None else ""
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\n{cl}{extra}\r\n".encode()


# (case id, body or None, content type, extra header text, raw request or None, status)
POSTS: list[tuple[str, bytes, str, str, int]] = [
    (
        "lone high surrogate in message",
        raw_json(f'{{{BASE},"message":"a\\ud800",{SIG}}}'),
        "application/json",
        "",
        200,
    ),
    (
        "lone low surrogate in message",
        raw_json(f'{{{BASE},"message":"\\udc00b",{SIG}}}'),
        "application/json",
        "",
        200,
    ),
    (
        "reversed surrogate pair",
        raw_json(f'{{{BASE},"message":"\\ude00\\ud83d",{SIG}}}'),
        "application/json",
        "",
        200,
    ),
    (
        "surrogate in refid",
        raw_json(f'{{"refid":"A\\ud800","from":"+1","to":"+2","message":"m",{SIG}}}'),
        "application/json",
        "",
        200,
    ),
    (
        "surrogate in from and to",
        raw_json(f'{{"refid":"{REFID}","from":"\\ud801","to":"\\udfff","message":"m",{SIG}}}'),
        "application/json",
        "",
        200,
    ),
    (
        "surrogate in signature with a secret set",
        raw_json(f'{{{BASE},"message":"m","signature":"S3\\ud800"}}'),
        "application/json",
        "",
        403,
    ),
    (
        "surrogate in an extra field name",
        raw_json(f'{{{BASE},"message":"m",{SIG},"k\\ud800":1}}'),
        "application/json",
        "",
        200,
    ),
    (
        "surrogate encoded as its own UTF-8 bytes",
        raw_json(f'{{{BASE},"message":"a\ud800b",{SIG}}}'),
        "application/json",
        "",
        200,
    ),
    (
        "surrogate in a form body",
        f"refid={REFID}&from=%2B13035550100&to=%2B13038675309&message=a%ED%A0%80&"
        f"signature={SECRET}".encode(),
        "application/x-www-form-urlencoded",
        "",
        200,
    ),
    ("invalid UTF-8 body", b'{"refid":"\xff\xfe"}', "application/json", "", 400),
    ("invalid UTF-8 in a form body", b"refid=%FF", "application/x-www-form-urlencoded", "", 400),
    ("non-UTF-8 header bytes", msg(), "application/json", "X-Note: caf\xe9 \xff\r\n", 200),
    (
        "5000-digit integer in an extra field",
        raw_json(f'{{{BASE},"message":"m",{SIG},"n":{DIGITS}}}'),
        "application/json",
        "",
        200,
    ),
    (
        "5000-digit integer as the message",
        raw_json(f'{{{BASE},"message":{DIGITS},{SIG}}}'),
        "application/json",
        "",
        400,
    ),
    (
        "NaN in an extra field",
        raw_json(f'{{{BASE},"message":"m",{SIG},"x":NaN}}'),
        "application/json",
        "",
        200,
    ),
    (
        "Infinity and -Infinity in extra fields",
        raw_json(f'{{{BASE},"message":"m",{SIG},"x":[Infinity,-Infinity]}}'),
        "application/json",
        "",
        200,
    ),
    (
        "a float that overflows",
        raw_json(f'{{{BASE},"message":"m",{SIG},"x":1e400}}'),
        "application/json",
        "",
        200,
    ),
    (
        "NaN as the refid",
        raw_json('{"refid":NaN,"from":"+1","to":"+2","message":"m"}'),
        "application/json",
        "",
        400,
    ),
    (
        "JSON nested 100,000 deep",
        b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "application/json",
        "",
        400,
    ),
    (
        "JSON nested 100,000 deep in a form field",
        b"refid=" + b"%5B" * 30_000,
        "application/x-www-form-urlencoded",
        "",
        400,
    ),
    (
        "extra field nested 200 deep",
        raw_json(f'{{{BASE},"message":"m",{SIG},"x":' + "[" * 200 + "]" * 200 + "}"),
        "application/json",
        "",
        200,
    ),
    ("100,000 form fields", b"a=&" * 100_000, "application/x-www-form-urlencoded", "", 400),
    (
        "a 900 KB message of bidi controls",
        msg(message="\u202e\u200d\x1b" * 50_000),
        "application/json",
        "",
        200,
    ),
    ("empty body", b"", "application/json", "", 400),
    ("JSON array", b"[]", "application/json", "", 400),
    ("JSON string", b'"x"', "application/json", "", 400),
    ("wrong content type", msg(), "text/plain", "", 415),
    (
        "content type with a NUL-free odd charset",
        msg(),
        "application/json; charset=latin-9",
        "",
        200,
    ),
    (
        "bidi and control characters in the text",
        msg(message="\u202eevil\u2066 \x1b[31mred\x07 \u2028 \u061c"),
        "application/json",
        "",
        200,
    ),
    ("NUL inside the message", msg(message="a\u0000b"), "application/json", "", 200),
    ("100,000-character refid", msg(refid="R" * 100_000), "application/json", "", 200),
    ("wrong field types", msg(message=["a"], to=None), "application/json", "", 400),
    (
        "a wrong signature on a 1 MiB-ish message",
        msg(message="x" * 1_000_000, signature="f" * 64),
        "application/json",
        "",
        403,
    ),
    # A signed field twice with different values: the app behind may read the other one.
    (
        "duplicate keys",
        raw_json(f'{{{BASE},"message":"a","message":"b",{SIG}}}'),
        "application/json",
        "",
        403,
    ),
    (
        "duplicate keys with one value",
        raw_json(f'{{{BASE},"message":"a","message":"a",{SIG}}}'),
        "application/json",
        "",
        200,
    ),
    (
        "duplicate signatures",
        raw_json(f'{{{BASE},"message":"a",{SIG},"signature":"x"}}'),
        "application/json",
        "",
        403,
    ),
    (
        "duplicate keys nested in an extra field",
        raw_json(f'{{{BASE},"message":"a",{SIG},"x":{{"k":1,"k":[{{"j":1,"j":2}}]}}}}'),
        "application/json",
        "",
        200,
    ),
    (
        "an unsigned field twice",
        raw_json(f'{{{BASE},"message":"a",{SIG},"from":"+1"}}'),
        "application/json",
        "",
        200,
    ),
    (
        "30,000 keys each sent twice",
        raw_json(
            f'{{{BASE},"message":"m",{SIG},'
            + ",".join(f'"k{i}":0,"k{i}":1' for i in range(30_000))
            + "}"
        ),
        "application/json",
        "",
        200,
    ),
    (
        "form: message twice, one of them empty",
        f"refid={REFID}&from=%2B13035550100&to=%2B13038675309&message=&message=hi&"
        f"signature={SECRET}".encode(),
        "application/x-www-form-urlencoded",
        "",
        403,
    ),
    (
        "message as a number",
        raw_json(f'{{{BASE},"message":42,{SIG}}}'),
        "application/json",
        "",
        400,
    ),
    (
        "gzip-labelled body that is not compressed",
        msg(),
        "application/json",
        "Content-Encoding: gzip\r\n",
        415,
    ),
    ("deflate-labelled body", msg(), "application/json", "Content-Encoding: deflate\r\n", 415),
    ("br-labelled body", msg(), "application/json", "Content-Encoding: br\r\n", 415),
    (
        "stacked content codings",
        msg(),
        "application/json",
        "Content-Encoding: identity\r\nContent-Encoding: gzip, br\r\n",
        415,
    ),
    (
        "Content-Encoding: identity",
        msg(),
        "application/json",
        "Content-Encoding: identity\r\n",
        200,
    ),
    ("missing fields", b'{"refid":"x"}', "application/json", "", 400),
]

RAW: list[tuple[str, bytes, int]] = [
    ("GET", _head(method="GET"), 405),
    ("bad header line", b"POST / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n", 400),
    ("NUL in a header value", b"POST / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
    (
        "too many headers",
        b"POST / HTTP/1.1\r\n" + b"".join(f"X-H{i}: v\r\n".encode() for i in range(300)) + b"\r\n",
        400,
    ),
    ("a 20 KB header line", b"POST / HTTP/1.1\r\nX-Long: " + b"a" * 20_000 + b"\r\n\r\n", 400),
    ("a 20 KB request line", b"POST /" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n", 400),
    (
        "Content-Length and Transfer-Encoding (smuggling)",
        _head("Transfer-Encoding: chunked\r\n", length=5) + b"0\r\n\r\n",
        400,
    ),
    (
        "two different Content-Lengths",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        400,
    ),
    ("a negative Content-Length", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
    (
        "a 30-digit Content-Length",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"9" * 30 + b"\r\n\r\n",
        400,
    ),
    ("a bad chunk size", _head("Transfer-Encoding: chunked\r\n", length=None) + b"zz\r\n\r\n", 400),
    ("an obsolete line folding", b"POST / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400),
    ("a method with odd characters", b"P{ST / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("HTTP/0.9", b"GET /\r\n\r\n", 405),
    ("TLS on the plain port", bytes.fromhex("16030100a5010000a10303") + b"\x00" * 64, 400),
    (
        "a path with non-UTF-8 bytes and %00",
        b"POST /\xff%00/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(msg())).encode() + b"\r\nConnection: close\r\n\r\n" + msg(),
        400,
    ),
    (
        "a path with control characters and bidi (percent-encoded)",
        b"POST /%1b%5b31m/%e2%80%ae HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(msg())).encode() + b"\r\nConnection: close\r\n\r\n" + msg(),
        200,
    ),
    (
        "a chunked valid message",
        _head(
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n",
            length=None,
        )
        + f"{len(msg()):x}\r\n".encode()
        + msg()
        + b"\r\n0\r\n\r\n",
        200,
    ),
    (
        "Expect: 100-continue",
        _head(
            "Content-Type: application/json\r\nExpect: 100-continue\r\nConnection: close\r\n",
            length=len(msg()),
        )
        + msg(),
        100,
    ),
    (
        "an expectation other than 100-continue",
        _head(
            "Content-Type: application/json\r\nExpect: teapot\r\nConnection: close\r\n",
            length=len(msg()),
        )
        + msg(),
        417,
    ),
    (
        "Expect: 100-continue for a body over --max-body",
        _head("Content-Type: application/json\r\nExpect: 100-continue\r\n", length=5_000_000),
        413,
    ),
    (
        "a transfer coding besides chunked",
        _head(
            "Content-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\n"
            "Connection: close\r\n",
            length=None,
        )
        + f"{len(msg()):x}\r\n".encode()
        + msg()
        + b"\r\n0\r\n\r\n",
        501,
    ),
    (
        "a transfer coding after chunked",
        _head("Transfer-Encoding: chunked, gzip\r\n", length=None) + b"0\r\n\r\n",
        400,
    ),
    ("an HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
]

# Requests that wait for the read timeout: run against a listener whose timeout is short.
SILENT: list[tuple[str, bytes, int]] = [
    (
        "half a body, then silence (read timeout)",
        _head("Content-Type: application/json\r\n", length=500) + b'{"refid":',
        408,
    ),
    ("half a head, then silence (read timeout)", b"POST / HTTP/1.1\r\nHost: x\r\nX-A", 408),
]


@pytest.fixture
async def listener(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    read_timeout = getattr(request, "param", 2.0)  # a test may ask for another timeout
    async with running_listener(
        tmp_path / "store.sqlite3", secret=SECRET, read_timeout=read_timeout
    ) as running:
        yield running


@pytest.mark.parametrize(
    ("case", "body", "content_type", "headers", "status"), POSTS, ids=[c[0] for c in POSTS]
)
async def test_hostile_bodies_get_a_deliberate_answer(
    listener,
    case: str,
    body: bytes,
    content_type: str,
    headers: str,  # type: ignore[no-untyped-def]
    status: int,
) -> None:
    answer = await listener.post(body, content_type, headers)
    assert status_of(answer) == status, answer[:400]
    assert body_of(answer)  # a JSON answer, readable by the poster
    assert await listener.post_valid() == 200
    events = [e for e in listener.events if isinstance(e, Request)]
    assert events[0].status == status
    for event in listener.events:
        line = dumps(event.to_dict(bodies=False))
        line.encode("utf-8")  # strict: encodable, no lone surrogate left raw
        assert json.loads(line)["type"] in ("request", "rejected")


@pytest.mark.parametrize(("case", "request_bytes", "status"), RAW, ids=[c[0] for c in RAW])
async def test_hostile_requests_get_a_deliberate_answer(
    listener,
    case: str,
    request_bytes: bytes,
    status: int,  # type: ignore[no-untyped-def]
    capfd: pytest.CaptureFixture[str],
) -> None:
    await check_deliberate_answer(listener, request_bytes, status, capfd)


@pytest.mark.parametrize("listener", [0.5], indirect=True)  # --read-timeout 0.5
@pytest.mark.parametrize(("case", "request_bytes", "status"), SILENT, ids=[c[0] for c in SILENT])
async def test_requests_that_stop_midway_get_a_deliberate_answer(
    listener,
    case: str,
    request_bytes: bytes,
    status: int,  # type: ignore[no-untyped-def]
    capfd: pytest.CaptureFixture[str],
) -> None:
    await check_deliberate_answer(listener, request_bytes, status, capfd)


async def check_deliberate_answer(
    listener,
    request_bytes: bytes,
    status: int,  # type: ignore[no-untyped-def]
    capfd: pytest.CaptureFixture[str],
) -> None:
    answer = await listener.raw(request_bytes, timeout=8)
    assert status_of(answer) == status, answer[:400]
    assert status_of(answer) != 500
    if status >= 400:  # every error in the documented shape, aiohttp's own answers included
        head = answer.partition(b"\r\n\r\n")[0].lower()
        assert b"\r\ncontent-type: application/json" in head, answer[:400]
        assert set(body_of(answer)) == {"error", "detail"}
    assert await listener.post_valid() == 200
    rejected = [e for e in listener.events if isinstance(e, RejectedEvent)]
    if status == 400 and not any(
        isinstance(e, Request) and e.status == 400 for e in listener.events
    ):
        # aiohttp turned it away before the listener ran: one rejected event, no traceback
        assert len(rejected) == 1 and rejected[0].status == 400, listener.events
    assert "Traceback" not in capfd.readouterr().err


async def test_what_was_answered_200_is_on_disk_and_reads_back_the_same(
    listener, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    texts = ["a\ud800", "\udc00b", "\U0001f44d\U0001f3fd", "\u202e", "x\u0000y"]
    for text in texts:
        body = json.dumps({**VALID, "refid": f"R{len(text)}{ord(text[0])}", "message": text})
        answer = await listener.post(body.encode())
        assert status_of(answer) == 200
    rows = stored_rows(tmp_path / "store.sqlite3")
    stored = {row.message for row in rows}
    flagged = [row.refid for row in rows if any(f["code"] == "lone_surrogate" for f in row.flags)]
    assert set(texts) <= stored
    assert len(flagged) == 2


async def test_the_headers_of_a_rejected_request_are_kept_only_up_to_a_bound(
    listener, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    many = "".join(f"X-Junk-{i}: {'v' * 8000}\r\n" for i in range(60))
    answer = await listener.raw(f"GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n".encode())
    assert status_of(answer) == 405
    (row,) = stored_rows(tmp_path / "store.sqlite3")
    assert sum(len(n) + len(v) for n, v in row.headers) < 17 * 1024
    assert row.headers[-1][0] == "X-Ipsms-Cut"


async def test_non_utf8_header_bytes_are_recorded_and_shown_escaped(
    listener, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    answer = await listener.post(msg(), headers="X-Note: caf\xe9 \xff\r\n")
    assert status_of(answer) == 200
    (row,) = stored_rows(tmp_path / "store.sqlite3")
    (value,) = [v for n, v in row.headers if n == "X-Note"]
    assert value.encode("utf-8", "surrogateescape") == b"caf\xe9 \xff"  # lossless
    from ipsms.records import detail_dict

    line = dumps(detail_dict(row))
    assert "\\udce9" in line  # escaped, so the line is strict UTF-8


async def test_large_rejected_messages_cost_little_disk(listener, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    body = json.dumps(
        {
            **VALID,
            "message": "x" * 400_000,
            "signature": "wrong",
            "k" * 400_000: 1,
            "from": "+1" * 100_000,
        }
    ).encode()
    for _ in range(20):
        answer = await listener.post(body)
        assert status_of(answer) == 403
        assert len(answer) < 1000
    sizes = sum(p.stat().st_size for p in tmp_path.glob("store.sqlite3*"))
    assert sizes < 4 * 1024 * 1024  # 20 x 64 KiB of body (and WAL), not 20 x 2.4 MB twice
    rows = stored_rows(tmp_path / "store.sqlite3")
    assert rows[0].body_size == len(body) and len(rows[0].body) == 64 * 1024
    assert len(rows[0].message or "") < 600 and len(json.dumps(rows[0].flags)) < 1000
    assert rows[0].fields is not None and "ipsms_cut" in rows[0].fields
    lines = [ndjson_line(e) for e in listener.events]
    assert max(len(line) for line in lines) < 10_000  # NDJSON lines stay small too


def test_rejected_requests_are_recorded_at_a_bounded_rate() -> None:
    from ipsms.listen.app import JunkBudget

    budget = JunkBudget(rows=0, row_burst=2)
    assert [budget.row() for _ in range(4)] == [True, True, False, False]
    assert budget.unrecorded == 2
