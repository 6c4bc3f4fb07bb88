"""The NDJSON line of a request is written from its values on the listener's hot path; it must
be the documented line (``dumps(request.to_dict(bodies=False))``) character for character,
whatever the request holds."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import pytest

from ipsms.inbound import NumberText
from ipsms.request import Request
from ipsms.text import dumps
from ipsms.ui.lines import ndjson_line

HMAC = "40f3" + "a" * 60


def request(**changes: Any) -> Request:
    fields = {
        "refid": "R1",
        "from": "+13035550100",
        "to": "+13038675309",
        "message": "Hello",
        "signature": "bench-secret",
    }
    values: dict[str, Any] = dict(
        received_at=1764254812.5085,
        method="POST",
        path="/sms",
        remote="127.0.0.1",
        headers=[("Host", "127.0.0.1:8080"), ("Content-Type", "application/json")],
        content_type="application/json",
        body=json.dumps(fields).encode(),
        status=200,
        refid="R1",
        from_number="+13035550100",
        to_number="+13038675309",
        message="Hello",
        fields=fields,
        fields_json=json.dumps(fields),
        verdict="valid",
        verdict_detail="plain",
        flags=[],
        id=7,
        attempt=1,
    )
    values.update(changes)
    return Request(**values)


CASES: dict[str, dict[str, Any]] = {
    "ordinary": {},
    "not yet recorded": {"id": None, "attempt": None},
    "store failed": {"status": 503, "error": "store_failed", "error_detail": "disk full"},
    "hmac signature": {"fields": {"refid": "R1", "signature": HMAC}},
    "no signature": {
        "fields": {"refid": "R1", "message": "x"},
        "verdict": "missing",
        "verdict_detail": None,
    },
    "empty signature": {"fields": {"refid": "R1", "signature": ""}},
    "numeric signature": {"fields": {"refid": "R1", "signature": 12}},
    "no fields": {
        "fields": None,
        "fields_json": None,
        "refid": None,
        "from_number": None,
        "to_number": None,
        "message": None,
        "verdict": None,
        "verdict_detail": None,
        "status": 400,
        "error": "invalid_json",
        "error_detail": "body is not JSON",
    },
    "rejected": {
        "status": 403,
        "error": "signature_invalid",
        "verdict": "invalid",
        "verdict_detail": "expected the plain secret",
        "remote": None,
        "content_type": None,
    },
    "unicode message": {"message": "Grüße 😀 你好"},
    "right-to-left override": {"message": "abc\u202edef"},
    "control characters": {"message": "a\x1b[31mred\x07\nline\ttab", "path": "/s\x1bms"},
    "delete character": {"message": "a\x7fb", "refid": "R\x7f"},
    "lone surrogate": {"message": "x\ud800y", "fields": {"message": "x\ud800y"}},
    "nested fields": {
        "fields": {
            "a": [1, 2.5, None, True, {"b": "c"}],
            "n": NumberText("1e400"),
            "signature": "s",
        }
    },
    "nan in fields": {"fields": {"x": math.nan, "y": -math.inf}},
    "header needing escapes": {"headers": [("X-Note", 'caf\udce9 "q" \\')]},
    "flags": {"flags": [{"code": "refid_reused", "detail": "text differs"}], "attempt": 2},
    "cut body": {"body": b"x" * 10, "body_size": 70000, "body_sha256": "ab" * 32},
    "forwarded": {
        "forward": {
            "url": "http://127.0.0.1:3000/",
            "status": 200,
            "latency_ms": 1.5,
            "body_preview": "ok",
            "error": None,
            "detail": None,
        }
    },
    "non-UTF-8 body": {"body": b"\xff\xfe"},
    "method and time": {"method": "PUT", "received_at": 0.9995},
    "large ids": {"id": 2**40, "attempt": 10**6, "status": 599},
}


@pytest.mark.parametrize("changes", CASES.values(), ids=CASES.keys())
def test_the_line_is_the_documented_one(changes: dict[str, Any]) -> None:
    event = request(**changes)
    line = ndjson_line(event)
    assert line == dumps(event.to_dict(bodies=False))
    assert json.loads(line)["type"] == "request"
    line.encode("utf-8")  # strict UTF-8, whatever the request held


def test_the_clock_part_follows_every_second() -> None:
    """The date and clock are kept while a second lasts: each line still has its own time."""
    now = time.time()
    for ts in (now, now + 0.0004, now + 1, now + 0.9996, now + 86400.5, now):
        event = request(received_at=ts)
        assert ndjson_line(event) == dumps(event.to_dict(bodies=False))


@pytest.mark.parametrize(
    ("refid", "attempt"),
    [
        ("R1", 1),
        (None, None),
        ('a"b\\c\x01', 2),
        ("R\x7f", 3),
        ("Grüße", 1),
        ("x\ud800", 4),
        ("00000000000000000000000001234567", 10**9),
    ],
)
def test_the_answer_of_an_accepted_message_is_the_documented_one(
    refid: str | None, attempt: int | None
) -> None:
    """The 200 answer is joined from prebuilt parts on the hot path; it is the same JSON."""
    from aiohttp.test_utils import make_mocked_request

    from ipsms.listen.app import _response

    event = request(refid=refid, attempt=attempt)
    answer = _response(event, make_mocked_request("POST", "/sms"))
    assert answer.body == dumps({"status": "received", "refid": refid, "attempt": attempt}).encode()
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/json; charset=utf-8"
