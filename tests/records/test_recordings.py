"""The core of `ipsms messages`: queries over a store written by the real Recorder, masking
for `show`, redaction for `export --redact`, durations for `--since`."""

from __future__ import annotations

import json
import re
import unicodedata
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipsms import records
from ipsms.errors import NotFoundError
from ipsms.redact import mask_secret, redact_number
from ipsms.request import Request
from ipsms.store.recorder import Recorder

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
REFID = "0123456789ABCDEF0123456789ABCDEF"


def record(
    received_at: float,
    body: bytes,
    content_type: str = "application/json",
    refid: str | None = REFID,
    status: int = 200,
    *,
    sender: str | None = None,
    to: str | None = None,
    message: str | None = None,
) -> Request:
    parsed = body.decode() if content_type == "application/json" and refid else None
    return Request(
        received_at=received_at,
        method="POST",
        path="/",
        remote="127.0.0.1",
        headers=[("Content-Type", content_type)],
        content_type=content_type,
        body=body,
        status=status,
        refid=refid,
        fields_json=parsed,
        fields=None if parsed is None else json.loads(parsed),
        from_number=sender,
        to_number=to,
        message=message,
        verdict="unchecked" if refid else None,
        error=None if refid else "invalid_json",
        error_detail=None if refid else "broken",
    )


async def fill(db: Path, records: list[Request]) -> None:
    async with Recorder(db) as rec:
        for r in records:
            await rec.record(r)


def msg_body(message: str, signature: str | None = None, **extra: object) -> bytes:
    data: dict[str, object] = {
        "refid": REFID,
        "from": "+13038675309",
        "to": "+12161112222",
        "message": message,
    }
    if signature is not None:
        data["signature"] = signature
    data.update(extra)
    return json.dumps(data).encode()


async def test_queries_over_a_recorded_store(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite3"
    await fill(
        db,
        [
            record(NOW - 3600, msg_body("one")),
            record(NOW - 60, msg_body("two")),
            record(NOW - 30, b"{broken", refid=None, status=400),
            record(NOW - 10, msg_body("three")),
        ],
    )
    with records.opened(db) as conn:
        recent = records.list_recent(conn, records.ListQuery(db, limit=3))
        assert [r.id for r in recent] == [4, 3, 2]
        since = records.list_recent(conn, records.ListQuery(db, since=NOW - 120))
        assert [r.id for r in since] == [4, 3, 2]
        assert [r.attempt for r in records.attempts(conn, REFID)] == [1, 2, 3]
        assert [
            r.id for r in records.export_rows(conn, records.ExportOptions(db, since=NOW - 45))
        ] == [3, 4]
        with pytest.raises(NotFoundError, match="no recorded message"):
            records.attempts(conn, "missing")
        assert records.clear_all(conn) == 4
        assert records.count_all(conn) == 0


def test_missing_store_is_not_found_and_not_created(tmp_path: Path) -> None:
    db = tmp_path / "none.sqlite3"
    with pytest.raises(NotFoundError, match="no messages recorded yet"), records.opened(db):
        pass
    assert not db.exists()


@pytest.mark.parametrize("secret", ['quote"and\\slash/é', "plain & simple+code=1"])
async def test_show_masks_the_signature_inside_the_body(tmp_path: Path, secret: str) -> None:
    db = tmp_path / "s.sqlite3"
    json_body = msg_body("hi", signature=secret)
    form_body = urlencode(
        {
            "refid": REFID,
            "from": "+13038675309",
            "to": "+12161112222",
            "message": "hi",
            "signature": secret,
        }
    ).encode()
    await fill(db, [record(NOW, json_body)])
    form = Request(
        received_at=NOW,
        method="POST",
        path="/",
        remote=None,
        headers=[],
        content_type="application/x-www-form-urlencoded",
        body=form_body,
        status=200,
        refid=REFID,
        fields_json=json.dumps({"signature": secret}),
    )
    await fill(db, [form])
    with records.opened(db) as conn:
        doc = records.show_document(REFID, records.attempts(conn, REFID))
    text = json.dumps(doc, ensure_ascii=False)
    assert secret not in text
    assert json.dumps(secret)[1:-1] not in text and urlencode({"s": secret})[2:] not in text
    first, second = doc["attempts"]
    masked = mask_secret(secret)
    assert first["signature"] == second["signature"] == masked
    assert json.loads(first["body"])["signature"] == masked  # the body is still readable
    assert parse_qs(second["body"]) == {
        "refid": [REFID],
        "from": ["+13038675309"],
        "to": ["+12161112222"],
        "message": ["hi"],
        "signature": [masked],
    }


def test_redact_json_body_with_extra_fields() -> None:
    body = msg_body(
        "call me on +447700900123 ☎",
        signature="s3cret-value",
        contact={"phone": "+33612345678", "note": "ok"},
        count=3,
    )
    out = records.redact_body(body, "application/json; charset=utf-8")
    data = json.loads(out)
    assert data["refid"] == REFID and data["count"] == 3
    assert data["from"] == "+1********09" and data["to"] == "+1********22"
    assert data["message"] == "[redacted 26 chars]"
    assert data["signature"] == "****(12)"
    assert data["contact"] == {"phone": "+3********78", "note": "ok"}
    for leak in ("3038675309", "2161112222", "447700900123", "612345678", "call me", "s3cret"):
        assert leak not in out


def test_redact_form_body() -> None:
    body = urlencode(
        {
            "refid": REFID,
            "from": "1-12345",
            "to": "+12161112222",
            "message": "secret plans",
            "signature": "abc",
        }
    ).encode()
    fields = parse_qs(records.redact_body(body, "application/x-www-form-urlencoded"))
    assert fields["refid"] == [REFID] and fields["from"] == ["1****45"]
    assert fields["message"] == ["[redacted 12 chars]"] and fields["signature"] == ["****(3)"]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"message": "secret plans", "from": "+13038675309"', "application/json"),
        (b'["+13038675309", "secret plans"]', "application/json"),
        (b"from +13038675309: secret plans", "application/x-www-form-urlencoded"),
        (b"<xml>+13038675309 secret plans</xml>", "text/xml"),
        (b"\xff\xfe+13038675309", None),
    ],
)
def test_unreadable_bodies_are_replaced_whole(body: bytes, content_type: str | None) -> None:
    assert records.redact_body(body, content_type) == f"[redacted {len(body)} bytes]"


async def test_export_dicts_plain_and_redacted(tmp_path: Path) -> None:
    db = tmp_path / "e.sqlite3"
    await fill(
        db,
        [
            record(
                NOW,
                msg_body("hello there", "sig"),
                sender="+13038675309",
                to="+12161112222",
                message="hello there",
            )
        ],
    )
    with records.opened(db) as conn:
        [row] = list(records.export_rows(conn, records.ExportOptions(db)))
    plain = records.export_dict(row)
    assert plain["body"].encode() == msg_body("hello there", "sig")
    assert plain["redacted"] is False and plain["received_at"] == "2026-01-01T00:00:00.000Z"
    assert plain["signature_masked"] is False and plain["signature"] == "sig"
    red = records.export_dict(row, redact=True)
    assert red["redacted"] is True and red["message"] == "[redacted 11 chars]"
    assert red["signature_masked"] is True and red["signature"] == "****(3)"
    assert red.keys() == plain.keys()  # one shape: redaction replaces values, never keys
    assert red["fields"]["message"] == "[redacted 11 chars]"
    assert "hello" not in json.dumps(red) and "3038675309" not in json.dumps(red)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"refid":"' + REFID.encode() + b'","signature" : "a\\/b\\u0020c"}', "application/json"),
        (
            b"refid=" + REFID.encode() + b"&signature=a%2fb%20c&message=hi",
            "application/x-www-form-urlencoded",
        ),
    ],
)
async def test_show_masks_signatures_however_they_are_escaped(
    tmp_path: Path, body: bytes, content_type: str
) -> None:
    db = tmp_path / "esc.sqlite3"
    await fill(
        db,
        [
            Request(
                received_at=NOW,
                method="POST",
                path="/",
                remote=None,
                headers=[],
                content_type=content_type,
                body=body,
                status=200,
                refid=REFID,
                fields_json=json.dumps({"signature": "a/b c"}),
            )
        ],
    )
    with records.opened(db) as conn:
        [attempt] = records.show_document(REFID, records.attempts(conn, REFID))["attempts"]
    assert attempt["signature"] == "****(5)"
    assert "a/b" not in attempt["body"] and "a\\/b" not in attempt["body"]
    assert "a%2fb" not in attempt["body"] and "****(5)" in attempt["body"]


# -- messages export --redact: nothing of the numbers or the text survives, anywhere -----------
# The numbers and text go everywhere a sender or ipsms can put them: the body, an extra field
# (as a value and as a name), the query string, a path segment, a header, the app's answer and
# the flags ipsms writes (which quote a number and suggest a corrected one). The refid and the
# text's alphabet are disjoint from the line's own words, so a hit is a leak.
_TEXT_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZÀÉÎÕÜßŁ !?☎0123456789"
_SEPARATORS = ["", " ", "-", ".", ") ", "(", "/", "_", " - ", "  "]


@st.composite
def phone_numbers(draw: st.DrawFn) -> str:
    digits = draw(st.text("0123456789", min_size=7, max_size=15).filter(lambda d: d[0] != "0"))
    style = draw(st.sampled_from(["e164", "bare", "grouped"]))
    if style == "e164":
        return "+" + digits
    if style == "bare":
        return digits
    cuts = sorted(draw(st.sets(st.integers(1, len(digits) - 1), max_size=3)))
    groups = [digits[a:b] for a, b in zip([0, *cuts], [*cuts, len(digits)], strict=True)]
    seps = [draw(st.sampled_from(_SEPARATORS)) for _ in groups[1:]]
    plus = draw(st.sampled_from(["", "+"]))
    return plus + groups[0] + "".join(s + g for s, g in zip(seps, groups[1:], strict=True))


def _leaks(line: str, numbers: list[str], text: str) -> list[str]:
    """Every 6-digit window of a number's digits found in ``line`` (read without separators:
    ``redact_number`` keeps one leading digit and the last two, so any 6 in a row is a leak),
    and the text or any of its words of 6 or more characters."""
    squeezed = re.sub(r"[\s.()\-/_]", "", line)
    found = []
    for number in numbers:
        digits = re.sub(r"\D", "", number)
        found += [
            digits[i : i + 6] for i in range(len(digits) - 5) if digits[i : i + 6] in squeezed
        ]
    words = [text] if len(text.strip()) >= 4 else []
    words += [w for w in re.split(r"[\s!?]+", text) if len(w) >= 6]
    return found + [w for w in words if w in line]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sender=phone_numbers(),
    to=phone_numbers(),
    other=phone_numbers(),
    text=st.text(_TEXT_ALPHABET, min_size=1, max_size=40),
    form=st.booleans(),
    with_number_in_text=st.booleans(),
)
def test_redacted_export_leaves_no_digit_run_of_the_numbers(
    sender: str, to: str, other: str, text: str, form: bool, with_number_in_text: bool
) -> None:
    from urllib.parse import quote

    from ipsms.inbound import parse_message
    from ipsms.text import dumps

    if with_number_in_text:
        text = f"{text} call {other}"
    fields = {
        "refid": "z" * 32,
        "from": sender,
        "to": to,
        "message": text,
        "note": f"{text} / {to} / {other}",
        sender: "key",
        "signature": "SeCrEtSiGnAtUrE",
    }
    body = urlencode(fields).encode() if form else json.dumps(fields).encode()
    ctype = "application/x-www-form-urlencoded" if form else "application/json"
    msg = parse_message(body, ctype)
    row = Request(
        received_at=NOW,
        method="POST",
        remote="127.0.0.1",
        path=f"/hook/{quote(sender)}?from={quote(sender)}&text={quote(text)}&n={other}",
        headers=[("X-Caller", sender), ("X-Subject", text)],
        content_type=ctype,
        body=body,
        status=200,
        refid=msg.refid,
        from_number=msg.from_,
        to_number=msg.to,
        message=msg.message,
        fields=msg.fields,
        fields_json=msg.fields_json,
        verdict="unchecked",
        flags=[{"code": f.code, "detail": f.detail} for f in msg.flags],
        forward={
            "url": f"http://app.test/in?to={quote(to)}",
            "status": 502,
            "latency_ms": 1.0,
            "body_preview": f"echo {text} {sender}",
            "error": "app_unreachable",
            "detail": f"failed for {sender}: {text}",
        },
    )
    red = records.export_dict(row, redact=True)
    del red["received_at"]  # a time is digits the numbers may share by chance
    del red["method"]  # "POST" is HTTP's word, not the texter's (a text "POST" is no leak)
    line = dumps(red)
    assert _leaks(line, [sender, to, other], text) == [], line
    assert "SeCrEtSiGnAtUrE" not in line
    plain = dumps(records.export_dict(row))
    assert _leaks(plain, [sender], "") != []  # the check finds them when they are there


# -- every string the store can hold --------------------------------------------------------
_BASE = {"refid": REFID, "from": "+13035550100", "to": "+13038675309"}
_LONE = [  # bodies `listen` accepts and records, each with a lone UTF-16 surrogate somewhere
    json.dumps({**_BASE, "message": "hello \ud83d world"}).encode(),
    json.dumps({**_BASE, "message": "\ud83d\ud83d\ud83d"}).encode(),
    json.dumps(
        {
            **_BASE,
            "message": "ok",
            "note": "call \udc00 +13035550100",
            "x\ud800y": "\udfff\udfff\udfff",
        }
    ).encode(),
    json.dumps(
        {**_BASE, "message": "ok", "list": ["\ud83d" * 4, {"from": "\ud800+1303"}]}
    ).encode(),
    b'{"refid":"' + REFID.encode() + b'","from":"+13035550100","to":"+13038675309",'
    b'"message":"ab\xed\xa0\xbdcd raw bytes"}',
]
_LONE_FORM = (
    b"refid=" + REFID.encode() + b"&from=%2B13035550100&to=%2B13038675309"
    b"&message=ab%ED%A0%BDcd+escaped&n%ED%B0%80=%ED%A0%BD%ED%A0%BD%ED%A0%BD"
)


def test_export_redact_handles_every_lone_surrogate_listen_records(tmp_path: Path) -> None:
    """Bodies with lone surrogates (JSON escapes, raw bytes, form escapes, in the text, an
    extra field's name and value, a list) and a header of raw bytes: `listen` answers 200 and
    records each; `export --redact` writes every one of them, redacted."""
    import http.client
    from urllib.parse import urlsplit

    from tests.conftest import run_ipsms
    from tests.procs import ListenerProcess

    db = tmp_path / "lone.sqlite3"
    listener = ListenerProcess(db=db)
    try:
        target = urlsplit(listener.url)
        sent = [(body, "application/json") for body in _LONE]
        sent.append((_LONE_FORM, "application/x-www-form-urlencoded"))
        for body, content_type in sent * 3:
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
            # http.client writes header values as latin-1: bytes that are no UTF-8.
            conn.request(
                "POST",
                "/sms",
                body=body,
                headers={
                    "Content-Type": content_type,
                    "X-Note": "caf\xe9 +1303\xff5550100 \xed\xa0\xbd",
                },
            )
            assert conn.getresponse().status == 200, body
            conn.close()
        code, _, _ = listener.stop()
    finally:
        listener.kill()
    assert code == 0
    result = run_ipsms("messages", "export", "--redact", "--db", str(db))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == len(sent) * 3 and all(r["redacted"] for r in rows)
    for row in rows:
        assert row["message"].startswith("[redacted ") and row["refid"] == REFID
        assert row["body"] is not None and not row["body"].startswith("[redacted ")
        assert "3035550100" not in result.stdout and "5550100" not in result.stdout
    assert "hello" not in result.stdout and "raw bytes" not in result.stdout
    assert rows[2]["fields"]["note"] == "call \udc00 +1********00"


# Text as the store can hold it: any code point, lone surrogates included (the default
# st.text() leaves them out, and among all code points they are too rare to be drawn: they
# get a strategy of their own), digits and separators near numbers, and bodies of any bytes.
ANY_CHAR = (
    st.characters(exclude_categories=())
    | st.integers(0xD800, 0xDFFF).map(chr)
    | st.sampled_from("0123456789 +-./%\u2013\u200b\ufe0f")
)
ANY_TEXT = st.text(ANY_CHAR, max_size=30)
ANY_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY_TEXT, inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(
    texts=st.lists(ANY_TEXT, min_size=10, max_size=10),
    extra=st.dictionaries(ANY_TEXT, ANY_VALUE, max_size=4),
    raw=st.binary(max_size=60),
    kind=st.sampled_from(["json", "form", "raw"]),
    content_type=st.sampled_from(
        ["application/json", "application/x-www-form-urlencoded", None, "text/plain"]
    ),
)
def test_redaction_takes_any_string_the_store_can_hold(
    texts: list[str], extra: dict[str, Any], raw: bytes, kind: str, content_type: str | None
) -> None:
    from ipsms.text import dumps

    number = "+13035550100"
    sender, to, message, path, header, detail, flag, url, content, key = texts
    fields: dict[str, Any] = {
        **extra,
        "refid": REFID,
        "from": sender + number,
        "to": to,
        "message": message,
        key: f"{key} {number} {message}",
    }
    if kind == "json":
        body = json.dumps(fields).encode()  # lone surrogates as \\u escapes
    elif kind == "form":
        body = urlencode({k: str(v) for k, v in fields.items()}, errors="surrogatepass").encode()
    else:
        body = raw + number.encode() + message.encode("utf-8", "surrogatepass")
    row = Request(
        received_at=NOW,
        method="POST",
        path=f"/{path}?q={path}&n={number}",
        remote="127.0.0.1",
        headers=[(header, f"{header} {number}")],
        content_type=content_type or content or None,
        body=body,
        status=200,
        refid=REFID,
        from_number=sender + number,
        to_number=to,
        message=message,
        fields=fields,
        fields_json=None,
        verdict="unchecked",
        verdict_detail=detail,
        flags=[{"code": "x", "detail": f"{flag} {number}"}],
        error_detail=detail,
        forward={
            "url": f"http://app.test/{url}?to={number}",
            "status": 1,
            "body_preview": message,
            "detail": f"{detail}{number}",
        },
    )
    line = dumps(records.export_dict(row, redact=True))
    line.encode("utf-8")  # strict: nothing unencodable reaches the output
    assert "3035550100" not in line and "5550100" not in line, line


# -- a number however it is written ------------------------------------------------------------
DISGUISED = [  # +1 303 555 0100 as a sender, a proxy or an app may write it, in free text
    "303/555/0100",
    "303_555_0100",
    "303\u20135550100",
    "303\u2014555\u20140100",
    "303\u2212555\u22120100",
    "303\u2011555\u20100100",
    "3\u200b0\u200b3\u200b5\u200b5\u200b5\u200b0\u200b1\u200b0\u200b0",
    "303\u00a0555\u00a00100",
    "303\u202f555\u30000100",
    "(303)\u2009555\u20110100",
    "３０３－５５５－０１００",
    "303．555．0100",
    "303·555·0100",
    "303 - 555 - 0100",
    "+1 - (303) - 555 - 0100",
    "303\u00ad555\u00ad0100",
    "303ー555ー0100",
    "3\u20e30\u20e33\u20e35\u20e35\u20e35\u20e30\u20e31\u20e30\u20e30\u20e3",
    "³⁰³⁵⁵⁵⁰¹⁰⁰",
    "٣٠٣٥٥٥٠١٠٠",
    "303\ufe0f555\U000e01000100",
    "303\u2800555\u31640100",
    "303\x00555\x1b0100",
    "303\udcff555\ud83d0100",
    "303|555|0100",
    "303~555~0100",
    "303+555+0100",
    "303\\555\\0100",
    "303      555      0100",
    "303%20555%2D0100",
]


def _digits_of(value: str) -> str:
    """What a reader takes for digits in ``value`` (URL escapes read, any script's digits
    as ASCII), letters as breaks, everything else left out."""
    from urllib.parse import unquote

    for _ in range(4):
        value = unquote(value, errors="surrogateescape")
    return "".join(
        str(unicodedata.digit(c))
        if unicodedata.digit(c, None) is not None
        else "x"
        if c.isalpha()
        else ""
        for c in value
    )


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def _number_leaks(red: dict[str, Any], digits: str = "3035550100") -> list[str]:
    windows = {digits[i : i + 6] for i in range(len(digits) - 5)}
    return [s for s in _strings(red) if any(w in _digits_of(s) for w in windows)]


@pytest.mark.parametrize("written", DISGUISED)
def test_export_redact_masks_a_number_however_it_is_written(written: str) -> None:
    from urllib.parse import quote

    def escaped(text: str) -> str:
        return quote(text, errors="surrogatepass")

    fields = {**_BASE, "message": "hi", "note": f"call {written} now", f"n {written}": "1"}
    body = json.dumps(fields).encode()
    row = Request(
        received_at=NOW,
        method="POST",
        remote="127.0.0.1",
        path=f"/sms/{escaped(written)}/{escaped(escaped(written))}?n={escaped(written)}",
        headers=[("X-Callback", written)],
        content_type=f"application/json; cb={written}",
        body=body,
        status=200,
        refid=REFID,
        from_number=_BASE["from"],
        to_number=_BASE["to"],
        message="hi",
        fields=fields,
        fields_json=body.decode(),
        verdict="unchecked",
        forward={
            "url": f"http://127.0.0.1:3000/in/{escaped(written)}",
            "status": 502,
            "detail": f"the app said {written}",
        },
    )
    red = records.export_dict(row, redact=True)
    assert _number_leaks(red) == []
    assert _number_leaks(records.export_dict(row)) != []  # the check sees it unredacted


MASKED = redact_number("+1 303 555 0100")  # '+1***********00'


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/sms/%2B1%20303%20555%200100", f"/sms/{MASKED}"),  # what the escapes spell, masked
        ("/sms/%252B1%2520303%2520555%25200100", f"/sms/{MASKED}"),  # escaped twice
        ("/sms/%2B1%252D303%252D555%252D0100", f"/sms/{redact_number('+1-303-555-0100')}"),
        (
            "/sms/+1-303-555-0100?to=%2B1%20303%20555%200100",
            f"/sms/{redact_number('+1-303-555-0100')}?to=%2B1***********00",
        ),
        (
            "/sms/%E2%80%8B3%E2%80%8B03/555%E2%80%930100",  # a ZWSP inside is left out, an en dash
            f"/sms/%E2%80%8B{redact_number('303/555-0100')}",
        ),
        ("/v1/hooks/abc/12345", "/v1/hooks/abc/12345"),  # too short to be a number
        ("/hook/caf%C3%A9/%ED%A0%BD/%FF?a=b", "/hook/caf%C3%A9/%ED%A0%BD/%FF?a=b"),  # as sent
    ],
)
def test_a_number_in_a_percent_encoded_path_is_masked(path: str, shown: str) -> None:
    row = Request(
        received_at=NOW,
        method="POST",
        path=path,
        remote=None,
        headers=[],
        content_type=None,
        body=b"",
        status=404,
    )
    assert records.export_dict(row, redact=True)["path"] == shown


def test_export_redact_masks_json_numbers_that_are_phone_numbers() -> None:
    fields = {
        **_BASE,
        "message": "hi",
        "callback": 13035550100,
        "alt": 3.035550100e9,
        "nested": {"fax": [13035550100]},
        "count": 3,
        "port": 8765,
        "ratio": 0.5,
        "flag": True,
        "size": 123456,
    }
    body = json.dumps(fields).encode()
    row = Request(
        received_at=NOW,
        method="POST",
        path="/",
        remote=None,
        headers=[],
        content_type="application/json",
        body=body,
        status=200,
        refid=REFID,
        fields=fields,
        fields_json=body.decode(),
    )
    red = records.export_dict(row, redact=True)
    for shown in (red["fields"], json.loads(red["body"])):
        assert shown["callback"] == redact_number("13035550100") == "1********00"
        assert shown["nested"] == {"fax": ["1********00"]}
        assert shown["alt"] == redact_number("3035550100.0")
        # What is no phone number keeps its value and its type.
        assert (shown["count"], shown["port"], shown["ratio"], shown["flag"], shown["size"]) == (
            3,
            8765,
            0.5,
            True,
            123456,
        )
    assert _number_leaks(red) == []


def test_export_redact_keeps_what_is_no_phone_number() -> None:
    """The refid, times, amounts, addresses with their port, short numbers and codes."""
    text = (
        "at 12:30:45.250 on Mon, 07 Dec 2026, 1,250,000 items, 127.0.0.1:8080, "
        "port 8765, 5 attempts, id 123456, HTTP/1.1 502, ERR_NGROK_105"
    )
    fields = {**_BASE, "message": "hi", "note": text}
    body = json.dumps(fields).encode()
    row = Request(
        received_at=NOW,
        method="POST",
        path="/sms/123456?attempt=2",
        remote="10.0.0.1",
        headers=[("Date", "Mon, 07 Dec 2026 22:52:23 GMT"), ("X-Note", text)],
        content_type="application/json",
        body=body,
        status=200,
        refid=REFID,
        fields=fields,
        fields_json=body.decode(),
        attempt=2,
        verdict_detail=text,
    )
    red = records.export_dict(row, redact=True)
    assert red["refid"] == REFID and red["remote"] == "10.0.0.1" and red["attempt"] == 2
    assert red["received_at"] == "2026-01-01T00:00:00.000Z" and red["status"] == 200
    assert red["fields"]["note"] == text and red["verdict_detail"] == text
    assert red["headers"] == [["Date", "Mon, 07 Dec 2026 22:52:23 GMT"], ["X-Note", text]] or red[
        "headers"
    ] == [("Date", "Mon, 07 Dec 2026 22:52:23 GMT"), ("X-Note", text)]
    assert red["path"] == "/sms/123456?attempt=2"


def test_a_number_past_pythons_digit_limit_is_read_back_by_every_command(tmp_path: Path) -> None:
    """`listen` accepts a body with an integer of 5,000 digits (kept as its text); every
    reader of the store reads that row back instead of failing on it."""
    from tests.conftest import run_ipsms
    from tests.procs import ListenerProcess

    huge = "1" * 5000
    body = (
        b'{"refid":"' + REFID.encode() + b'","from":"+13035550100","to":"+13038675309",'
        b'"message":"hi","n":' + huge.encode() + b"}"
    )
    db = tmp_path / "huge.sqlite3"
    listener = ListenerProcess(db=db)
    try:
        request = urllib.request.Request(
            listener.url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200
        code, _, _ = listener.stop()
    finally:
        listener.kill()
    assert code == 0
    outputs = {}
    for args in (
        ["list", "--format", "json"],
        ["show", REFID, "--format", "json"],
        ["export"],
        ["export", "--redact"],
    ):
        result = run_ipsms("messages", *args, "--db", str(db))
        assert result.returncode == 0, (args, result.stderr)
        outputs[" ".join(args[:2])] = result.stdout
    assert json.loads(outputs["export"])["fields"]["n"] == huge  # its text, as listen saw it
    assert huge[:12] not in outputs["export --redact"]
