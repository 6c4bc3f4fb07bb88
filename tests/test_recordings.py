"""The core of `ipsms messages`: queries over a store written by the real Recorder, masking
for `show`, redaction for `export --redact`, durations for `--since`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipsms import recordings
from ipsms.errors import NotFoundError
from ipsms.recorder import Recorder
from ipsms.redact import mask_secret
from ipsms.request import Request

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
REFID = "0123456789ABCDEF0123456789ABCDEF"


def record(received_at: float, body: bytes, content_type: str = "application/json",
           refid: str | None = REFID, status: int = 200, *, sender: str | None = None,
           to: str | None = None, message: str | None = None) -> Request:
    parsed = body.decode() if content_type == "application/json" and refid else None
    return Request(
        received_at=received_at, method="POST", path="/", remote="127.0.0.1",
        headers=[("Content-Type", content_type)], content_type=content_type, body=body,
        status=status, refid=refid, fields_json=parsed,
        fields=None if parsed is None else json.loads(parsed),
        from_number=sender, to_number=to, message=message, verdict="unchecked" if refid else None,
        error=None if refid else "invalid_json", error_detail=None if refid else "broken")


async def fill(db: Path, records: list[Request]) -> None:
    async with Recorder(db) as rec:
        for r in records:
            await rec.record(r)


def msg_body(message: str, signature: str | None = None, **extra: object) -> bytes:
    data: dict[str, object] = {"refid": REFID, "from": "+13038675309", "to": "+12161112222",
                               "message": message}
    if signature is not None:
        data["signature"] = signature
    data.update(extra)
    return json.dumps(data).encode()


async def test_queries_over_a_recorded_store(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite3"
    await fill(db, [
        record(NOW - 3600, msg_body("one")),
        record(NOW - 60, msg_body("two")),
        record(NOW - 30, b"{broken", refid=None, status=400),
        record(NOW - 10, msg_body("three")),
    ])
    with recordings.opened(db) as conn:
        recent = recordings.list_recent(conn, recordings.ListQuery(db, limit=3))
        assert [r.id for r in recent] == [4, 3, 2]
        since = recordings.list_recent(conn, recordings.ListQuery(db, since=NOW - 120))
        assert [r.id for r in since] == [4, 3, 2]
        assert [r.attempt for r in recordings.attempts(conn, REFID)] == [1, 2, 3]
        assert [r.id for r in recordings.export_rows(
            conn, recordings.ExportOptions(db, since=NOW - 45))] == [3, 4]
        with pytest.raises(NotFoundError, match="no recorded message"):
            recordings.attempts(conn, "missing")
        assert recordings.clear_all(conn) == 4
        assert recordings.count_all(conn) == 0


def test_missing_store_is_not_found_and_not_created(tmp_path: Path) -> None:
    db = tmp_path / "none.sqlite3"
    with pytest.raises(NotFoundError, match="no messages recorded yet"), recordings.opened(db):
        pass
    assert not db.exists()


@pytest.mark.parametrize("secret", ['quote"and\\slash/é', "plain & simple+code=1"])
async def test_show_masks_the_signature_inside_the_body(tmp_path: Path, secret: str) -> None:
    db = tmp_path / "s.sqlite3"
    json_body = msg_body("hi", signature=secret)
    form_body = urlencode({"refid": REFID, "from": "+13038675309", "to": "+12161112222",
                           "message": "hi", "signature": secret}).encode()
    await fill(db, [record(NOW, json_body)])
    form = Request(received_at=NOW, method="POST", path="/", remote=None, headers=[],
                         content_type="application/x-www-form-urlencoded", body=form_body,
                         status=200, refid=REFID,
                         fields_json=json.dumps({"signature": secret}))
    await fill(db, [form])
    with recordings.opened(db) as conn:
        doc = recordings.show_document(REFID, recordings.attempts(conn, REFID))
    text = json.dumps(doc, ensure_ascii=False)
    assert secret not in text
    assert json.dumps(secret)[1:-1] not in text and urlencode({"s": secret})[2:] not in text
    first, second = doc["attempts"]
    masked = mask_secret(secret)
    assert first["signature"] == second["signature"] == masked
    assert json.loads(first["body"])["signature"] == masked  # the body is still readable
    assert parse_qs(second["body"]) == {"refid": [REFID], "from": ["+13038675309"],
                                        "to": ["+12161112222"], "message": ["hi"],
                                        "signature": [masked]}


def test_redact_json_body_with_extra_fields() -> None:
    body = msg_body("call me on +447700900123 ☎", signature="s3cret-value",
                    contact={"phone": "+33612345678", "note": "ok"}, count=3)
    out = recordings.redact_body(body, "application/json; charset=utf-8")
    data = json.loads(out)
    assert data["refid"] == REFID and data["count"] == 3
    assert data["from"] == "+1********09" and data["to"] == "+1********22"
    assert data["message"] == "[redacted 26 chars]"
    assert data["signature"] == "****(12)"
    assert data["contact"] == {"phone": "+3********78", "note": "ok"}
    for leak in ("3038675309", "2161112222", "447700900123", "612345678", "call me", "s3cret"):
        assert leak not in out


def test_redact_form_body() -> None:
    body = urlencode({"refid": REFID, "from": "1-12345", "to": "+12161112222",
                      "message": "secret plans", "signature": "abc"}).encode()
    fields = parse_qs(recordings.redact_body(body, "application/x-www-form-urlencoded"))
    assert fields["refid"] == [REFID] and fields["from"] == ["1****45"]
    assert fields["message"] == ["[redacted 12 chars]"] and fields["signature"] == ["****(3)"]


@pytest.mark.parametrize(("body", "content_type"), [
    (b'{"message": "secret plans", "from": "+13038675309"', "application/json"),
    (b'["+13038675309", "secret plans"]', "application/json"),
    (b"from +13038675309: secret plans", "application/x-www-form-urlencoded"),
    (b"<xml>+13038675309 secret plans</xml>", "text/xml"),
    (b"\xff\xfe+13038675309", None),
])
def test_unreadable_bodies_are_replaced_whole(body: bytes, content_type: str | None) -> None:
    assert recordings.redact_body(body, content_type) == f"[redacted {len(body)} bytes]"


async def test_export_dicts_plain_and_redacted(tmp_path: Path) -> None:
    db = tmp_path / "e.sqlite3"
    await fill(db, [record(NOW, msg_body("hello there", "sig"), sender="+13038675309",
                           to="+12161112222", message="hello there")])
    with recordings.opened(db) as conn:
        [row] = list(recordings.export_rows(conn, recordings.ExportOptions(db)))
    plain = recordings.export_dict(row)
    assert plain["body"].encode() == msg_body("hello there", "sig")
    assert plain["redacted"] is False and plain["received_at"] == "2026-01-01T00:00:00.000Z"
    assert plain["signature_masked"] is False and plain["signature"] == "sig"
    red = recordings.export_dict(row, redact=True)
    assert red["redacted"] is True and red["message"] == "[redacted 11 chars]"
    assert red["signature_masked"] is True and red["signature"] == "****(3)"
    assert red.keys() == plain.keys()  # one shape: redaction replaces values, never keys
    assert red["fields"]["message"] == "[redacted 11 chars]"
    assert "hello" not in json.dumps(red) and "3038675309" not in json.dumps(red)


@pytest.mark.parametrize(("body", "content_type"), [
    (b'{"refid":"' + REFID.encode() + b'","signature" : "a\\/b\\u0020c"}', "application/json"),
    (b"refid=" + REFID.encode() + b"&signature=a%2fb%20c&message=hi",
     "application/x-www-form-urlencoded"),
])
async def test_show_masks_signatures_however_they_are_escaped(tmp_path: Path, body: bytes,
                                                              content_type: str) -> None:
    db = tmp_path / "esc.sqlite3"
    await fill(db, [Request(received_at=NOW, method="POST", path="/", remote=None,
                                  headers=[], content_type=content_type, body=body, status=200,
                                  refid=REFID, fields_json=json.dumps({"signature": "a/b c"}))])
    with recordings.opened(db) as conn:
        [attempt] = recordings.show_document(REFID, recordings.attempts(conn, REFID))["attempts"]
    assert attempt["signature"] == "****(5)"
    assert "a/b" not in attempt["body"] and "a\\/b" not in attempt["body"]
    assert "a%2fb" not in attempt["body"] and "****(5)" in attempt["body"]


# -- messages export --redact: nothing of the numbers or the text survives, anywhere -----------
# The numbers and text go everywhere a sender or ipsms can put them: the body, an extra field
# (as a value and as a name), the query string, a path segment, a header, the app's answer and
# the flags ipsms writes (which quote a number and suggest a corrected one). The refid and the
# text's alphabet are disjoint from the line's own words, so a hit is a leak.
_TEXT_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZÀÉÎÕÜßŁ !?☎0123456789"
_SEPARATORS = ["", " ", "-", ".", ") ", "("]


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
    squeezed = re.sub(r"[\s.()\-]", "", line)
    found = []
    for number in numbers:
        digits = re.sub(r"\D", "", number)
        found += [digits[i:i + 6] for i in range(len(digits) - 5)
                  if digits[i:i + 6] in squeezed]
    words = [text] if len(text.strip()) >= 4 else []
    words += [w for w in re.split(r"[\s!?]+", text) if len(w) >= 6]
    return found + [w for w in words if w in line]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sender=phone_numbers(), to=phone_numbers(), other=phone_numbers(),
       text=st.text(_TEXT_ALPHABET, min_size=1, max_size=40),
       form=st.booleans(), with_number_in_text=st.booleans())
def test_redacted_export_leaves_no_digit_run_of_the_numbers(
        sender: str, to: str, other: str, text: str, form: bool,
        with_number_in_text: bool) -> None:
    from urllib.parse import quote

    from ipsms.inbound import parse_message
    from ipsms.text import dumps

    if with_number_in_text:
        text = f"{text} call {other}"
    fields = {"refid": "z" * 32, "from": sender, "to": to, "message": text,
              "note": f"{text} / {to} / {other}", sender: "key", "signature": "SeCrEtSiGnAtUrE"}
    body = urlencode(fields).encode() if form else json.dumps(fields).encode()
    ctype = "application/x-www-form-urlencoded" if form else "application/json"
    msg = parse_message(body, ctype)
    row = Request(
        received_at=NOW, method="POST", remote="127.0.0.1",
        path=f"/hook/{quote(sender)}?from={quote(sender)}&text={quote(text)}&n={other}",
        headers=[("X-Caller", sender), ("X-Subject", text)], content_type=ctype, body=body,
        status=200, refid=msg.refid, from_number=msg.from_, to_number=msg.to,
        message=msg.message, fields=msg.fields, fields_json=msg.fields_json,
        verdict="unchecked", flags=[{"code": f.code, "detail": f.detail} for f in msg.flags],
        forward={"url": f"http://app.test/in?to={quote(to)}", "status": 502,
                 "latency_ms": 1.0, "body_preview": f"echo {text} {sender}",
                 "error": "app_unreachable", "detail": f"failed for {sender}: {text}"})
    red = recordings.export_dict(row, redact=True)
    del red["received_at"]  # a time is digits the numbers may share by chance
    del red["method"]  # "POST" is HTTP's word, not the texter's (a text "POST" is no leak)
    line = dumps(red)
    assert _leaks(line, [sender, to, other], text) == [], line
    assert "SeCrEtSiGnAtUrE" not in line
    plain = dumps(recordings.export_dict(row))
    assert _leaks(plain, [sender], "") != []  # the check finds them when they are there
