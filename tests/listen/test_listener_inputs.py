"""What `ipsms listen` accepts, against a real listener on a loopback port: bodies that send a
field twice, bodies with a content or transfer coding, ``Expect: 100-continue`` with a body
the listener will not take, chunk extensions, and the JSON shape of every error answer."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
import zlib
from pathlib import Path
from urllib.parse import urlencode

import pytest

from ipsms.request import Request
from ipsms.signature import Mode, compute_hmac
from tests.conftest import run_ipsms
from tests.hostile import (
    REFID,
    SECRET,
    VALID,
    body_of,
    running_listener,
    status_of,
    stored_rows,
    wait_closed,
)

HMAC = compute_hmac(SECRET, REFID, "hi")
SIGNED = {
    "refid": REFID,
    "from": "+13035550100",
    "to": "+13038675309",
    "message": "hi",
    "signature": HMAC,
}
FORM = "application/x-www-form-urlencoded"


def head_of(answer: bytes) -> str:
    return answer.partition(b"\r\n\r\n")[0].decode("latin-1")


def requests(listener) -> list[Request]:  # type: ignore[no-untyped-def]
    return [e for e in listener.events if isinstance(e, Request)]


# -- a field sent twice ---------------------------------------------------------------------
# A captured signed body with a second value added: the listener checks one value, and an app
# behind --forward-to may read the other (Django, PHP and Rails read a form's last value; a
# JSON parser may keep the first of two keys).
REPLAYED = [
    (
        "form, a second message after the signed one",
        FORM,
        urlencode(SIGNED).encode() + b"&message=evil",
        "first",
    ),
    (
        "form, an empty message after the signed one",
        FORM,
        urlencode(SIGNED).encode() + b"&message=",
        "first",
    ),
    (
        "JSON, a message key before the signed fields",
        "application/json",
        b'{"message":"evil",' + json.dumps(SIGNED).encode()[1:],
        "last",
    ),
    (
        "JSON, the key spelled with an escape",
        "application/json",
        b'{"messag\\u0065":"evil",' + json.dumps(SIGNED).encode()[1:],
        "last",
    ),
]


@pytest.mark.parametrize(
    ("case", "content_type", "body", "read"), REPLAYED, ids=[c[0] for c in REPLAYED]
)
async def test_a_signed_body_with_a_second_value_is_not_valid_and_verify_agrees(
    tmp_path: Path, case: str, content_type: str, body: bytes, read: str
) -> None:
    async with running_listener(
        tmp_path / "s.sqlite3", secret=SECRET, signature_mode=Mode.HMAC
    ) as listener:
        answer = await listener.post(body, content_type)
        assert status_of(answer) == 403, answer
        assert body_of(answer) == {"error": "signature_invalid", "detail": "signature invalid"}
    (row,) = stored_rows(tmp_path / "s.sqlite3")
    assert row.message == "hi"  # the signed value is the one read, and shown
    assert row.verdict == "invalid" and row.verdict_label == "invalid (duplicate field)"
    detail = row.verdict_detail or ""
    assert f"message (2 times) sent with different values (ipsms checked the {read}" in detail
    assert "the value checked matches hmac-sha256" in detail
    (flag,) = [f for f in row.flags or [] if f["code"] == "duplicate_fields"]
    assert flag["detail"].startswith("sent more than once: message (2 values, differing)")

    payload = tmp_path / "payload"
    payload.write_bytes(body)
    result = run_ipsms(
        "verify", str(payload), "--secret", SECRET, "--signature-mode", "hmac", "--format", "json"
    )
    assert result.returncode != 0
    line = json.loads(result.stdout)
    assert (line["verdict"], line["reason"]) == ("invalid", "duplicate field")
    assert line["explanation"] == row.verdict_detail


async def test_a_field_twice_is_flagged_and_shown_as_read_when_nothing_is_checked(
    tmp_path: Path,
) -> None:
    async with running_listener(tmp_path / "s.sqlite3") as listener:
        form = urlencode({**VALID, "message": "first"}).encode() + b"&message=second&to=%2B1"
        assert status_of(await listener.post(form, FORM)) == 200
        nested = (
            b'{"refid":"' + REFID.encode() + b'","from":"+13035550100","to":'
            b'"+13038675309","message":"m","media":{"url":"a","url":"b"},'
            b'"parts":[{"id":1,"id":1}],"message":"m"}'
        )
        assert status_of(await listener.post(nested)) == 200
    form_row, json_row = stored_rows(tmp_path / "s.sqlite3")
    assert (form_row.message, form_row.to_number, form_row.verdict) == (
        "first",
        "+13038675309",
        "unchecked",
    )
    (flag,) = [f for f in form_row.flags or [] if f["code"] == "duplicate_fields"]
    assert flag["detail"] == (
        "sent more than once: to (2 values, differing), message (2 values, differing); ipsms "
        "shows and checks the first value, as Flask and Go do; Django, PHP and Rails read "
        "the last"
    )
    (flag,) = [f for f in json_row.flags or [] if f["code"] == "duplicate_fields"]
    assert flag["detail"].startswith(
        "sent more than once: message (2 values, all the same), media.url (2 values, "
        "differing), parts[].id (2 values, all the same); ipsms shows and checks the last"
    )


async def test_a_signed_field_repeated_with_the_same_value_stays_valid_and_flagged(
    tmp_path: Path,
) -> None:
    body = urlencode(SIGNED).encode() + b"&message=hi&signature=" + HMAC.encode()
    async with running_listener(tmp_path / "s.sqlite3", secret=SECRET) as listener:
        assert status_of(await listener.post(body, FORM)) == 200
        (event,) = requests(listener)
    assert event.verdict_label == "valid (hmac-sha256)"
    assert [f["code"] for f in event.flags or []] == ["duplicate_fields"]


async def test_accept_bad_signature_answers_an_ambiguous_body_200_with_its_warning(
    tmp_path: Path,
) -> None:
    body = urlencode(SIGNED).encode() + b"&signature=other"
    async with running_listener(
        tmp_path / "s.sqlite3", secret=SECRET, accept_bad_signature=True
    ) as listener:
        answer = await listener.post(body, FORM)
    assert status_of(answer) == 200
    assert "signature invalid" in body_of(answer)["warning"]
    (row,) = stored_rows(tmp_path / "s.sqlite3")
    assert row.verdict_label == "invalid (duplicate field)"
    assert "signature (2 times) sent with different values" in (row.verdict_detail or "")


# -- content and transfer codings -----------------------------------------------------------
PLAIN = json.dumps(VALID).encode()
CODED = [
    ("gzip, really compressed", "gzip", gzip.compress(PLAIN)),
    ("gzip, not compressed", "gzip", PLAIN),
    ("deflate", "deflate", zlib.compress(PLAIN)),
    ("br", "br", PLAIN),
    ("zstd", "zstd", PLAIN),
    ("upper case", "GZIP", gzip.compress(PLAIN)),
    ("stacked", "identity, gzip", gzip.compress(PLAIN)),
    ("unknown", "x-custom", PLAIN),
]


@pytest.mark.parametrize(("case", "coding", "body"), CODED, ids=[c[0] for c in CODED])
async def test_a_body_with_a_content_coding_is_refused_415_and_recorded_as_sent(
    tmp_path: Path, case: str, coding: str, body: bytes
) -> None:
    async with running_listener(tmp_path / "s.sqlite3", secret=SECRET) as listener:
        answer = await listener.post(body, headers=f"Content-Encoding: {coding}\r\n")
        assert status_of(answer) == 415, answer
        assert "\r\nAccept-Encoding: identity\r\n" in head_of(answer)
        error = body_of(answer)
        assert error["error"] == "unsupported_content_encoding"
        assert "send the body uncompressed" in error["detail"]
        assert await listener.post_valid() == 200
    rejected, _ = stored_rows(tmp_path / "s.sqlite3")
    assert (rejected.status, rejected.error) == (415, "unsupported_content_encoding")
    assert rejected.body == body  # the bytes as sent, as the stored headers say
    assert ("Content-Encoding", coding) in rejected.headers


@pytest.mark.parametrize("coding", ["identity", "Identity, identity", ""])
async def test_identity_is_no_coding_and_is_accepted(tmp_path: Path, coding: str) -> None:
    async with running_listener(tmp_path / "s.sqlite3", secret=SECRET) as listener:
        answer = await listener.post(PLAIN, headers=f"Content-Encoding: {coding}\r\n")
    assert status_of(answer) == 200


async def test_a_gzip_bomb_is_refused_unopened(tmp_path: Path) -> None:
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)  # 64 MiB in 64 KiB
    async with running_listener(tmp_path / "s.sqlite3", secret=SECRET) as listener:
        started = time.monotonic()
        answers = await asyncio.gather(
            listener.post(bomb, headers="Content-Encoding: gzip\r\n"), listener.post(PLAIN)
        )
        elapsed = time.monotonic() - started
    assert [status_of(a) for a in answers] == [415, 200]
    assert elapsed < 1.0  # a bomb decompressed on the event loop stalls every other request
    (rejected,) = [r for r in stored_rows(tmp_path / "s.sqlite3") if r.status == 415]
    assert rejected.size == len(bomb) and rejected.error == "unsupported_content_encoding"


async def test_a_transfer_coding_other_than_chunked_is_refused_501(tmp_path: Path) -> None:
    body = gzip.compress(PLAIN)
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    async with running_listener(tmp_path / "s.sqlite3", secret=SECRET) as listener:
        answer = await listener.raw(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n" + chunked
        )
        assert status_of(answer) == 501
        assert body_of(answer)["error"] == "unsupported_transfer_encoding"
        assert await listener.post_valid() == 200
        assert requests(listener)[0].body == body


# -- Expect: 100-continue --------------------------------------------------------------------
async def first_answer(port: int, head: bytes) -> tuple[bytes, bool]:
    """The first answer to ``head`` (sent without its body), and whether the listener then
    closed the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        length = next(
            (
                int(line.split(":")[1])
                for line in answer.decode().split("\r\n")
                if line.lower().startswith("content-length:")
            ),
            0,
        )
        answer += await asyncio.wait_for(reader.readexactly(length), 5)
        closed = await asyncio.wait_for(reader.read(), 5) == b""
        return answer, closed
    finally:
        writer.close()
        await wait_closed(writer)


@pytest.mark.parametrize(
    ("case", "headers", "status", "error"),
    [
        ("a declared body over --max-body", "Content-Length: 5000000\r\n", 413, "body_too_large"),
        (
            "a content coding",
            "Content-Length: 10\r\nContent-Encoding: gzip\r\n",
            415,
            "unsupported_content_encoding",
        ),
        (
            "an expectation other than 100-continue",
            "Content-Length: 10\r\n",
            417,
            "expectation_failed",
        ),
    ],
)
async def test_a_body_refused_from_the_head_is_never_invited(
    tmp_path: Path, case: str, headers: str, status: int, error: str
) -> None:
    expect = "teapot" if status == 417 else "100-continue"
    head = (
        f"POST /sms HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{headers}"
        f"Expect: {expect}\r\n\r\n"
    ).encode()
    async with running_listener(tmp_path / "s.sqlite3", max_body=4096) as listener:
        answer, closed = await first_answer(listener.port, head)
        assert status_of(answer) == status, answer  # not "100 Continue"
        assert body_of(answer)["error"] == error
        assert closed  # the body never came: the connection cannot carry another request
        assert await listener.post_valid() == 200
    (row, _) = stored_rows(tmp_path / "s.sqlite3")
    assert (row.status, row.error) == (status, error)
    if status == 413:
        assert row.size == 5000000  # what the head declared


async def test_a_body_within_the_limit_is_still_invited(tmp_path: Path) -> None:
    async with running_listener(tmp_path / "s.sqlite3", max_body=4096) as listener:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(
            f"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(PLAIN)}\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(PLAIN)
        assert status_of(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)) == 200
        writer.close()
        await wait_closed(writer)


# -- chunk extensions ------------------------------------------------------------------------
async def test_huge_chunk_extensions_count_against_max_body(tmp_path: Path) -> None:
    async with running_listener(tmp_path / "s.sqlite3", max_body=64 * 1024) as listener:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n1;ext="
        )
        sent = 0

        async def send() -> None:  # 50 MiB of one chunk extension, then a 1-byte chunk
            nonlocal sent
            for _ in range(50):
                writer.write(b"a" * (1024 * 1024))
                await writer.drain()
                sent += 1024 * 1024
            writer.write(b"\r\n{\r\n0\r\n\r\n")

        sending = asyncio.create_task(send())
        started = time.monotonic()
        answer = await asyncio.wait_for(reader.read(), 10)
        elapsed = time.monotonic() - started
        sending.cancel()
        writer.close()
        await wait_closed(writer)
        assert status_of(answer) == 413, answer[:300]
        assert body_of(answer)["error"] == "body_too_large"
        assert elapsed < 3
        assert await listener.post_valid() == 200
        (event, _) = requests(listener)
        assert event.error == "body_too_large"
        assert "on the wire (chunk sizes and their extensions count)" in (event.error_detail or "")


async def test_a_chunked_body_in_many_small_chunks_is_still_accepted(tmp_path: Path) -> None:
    async with running_listener(tmp_path / "s.sqlite3", max_body=4096) as listener:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        await asyncio.sleep(0.05)  # the listener reads this body as it arrives, counting it
        for i in range(len(PLAIN)):  # 1-byte chunks: five bytes of framing to each
            writer.write(b"1;x=y\r\n" + PLAIN[i : i + 1] + b"\r\n")
        writer.write(b"0\r\n\r\n")
        answer = await asyncio.wait_for(reader.readuntil(b"}"), 5)
        writer.close()
        await wait_closed(writer)
    assert status_of(answer) == 200
