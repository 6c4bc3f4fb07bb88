"""The emulated send API (intelepeer.md 2.5): an app's replies are answered 202 CREATED and
kept, their status read back through the MDR call, and listed on ``/_emulator/sent``; bad
requests get a 4xx that says why and keep nothing."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from ipsms.intelepeer.emulator import (
    DEMO_PASSWORD,
    DEMO_USER,
    MDR_PATH,
    SEND_PATH,
    EmulatorThread,
    build_state,
)


def call(
    url: str, body: Any = None, *, method: str = "POST", token: str | None = None
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


@pytest.fixture
def emu() -> Any:
    with EmulatorThread(build_state()) as running:
        yield running


def login(emu: EmulatorThread) -> str:
    status, body = call(emu.auth_url, {"username": DEMO_USER, "password": DEMO_PASSWORD})
    assert status == 200
    return str(body["token"])


def test_a_reply_is_created_kept_and_its_status_read(emu: EmulatorThread) -> None:
    token = login(emu)
    status, body = call(
        emu.api_base + SEND_PATH,
        {
            "from": "+13038675309",
            "to": "+13035550100",
            "text": "thanks!",
            "guid": "g-1",
            "dlr": True,
            "media": ["https://example.com/a.png"],
        },
        token=token,
    )
    assert status == 202 and body["state"] == "CREATED" and len(body["refid"]) == 32
    [sent] = emu.state.sent
    assert (sent.from_number, sent.to_number, sent.text, sent.guid, sent.dlr, sent.media) == (
        "+13038675309",
        "+13035550100",
        "thanks!",
        "g-1",
        True,
        ("https://example.com/a.png",),
    )
    status, mdr = call(f"{emu.api_base}{MDR_PATH}?refid={body['refid']}", method="GET", token=token)
    assert status == 200 and mdr["RCC_en"] == "DLR:Delivered" and mdr["text"] == "thanks!"
    status, listed = call(f"{emu.api_base}/_emulator/sent?to=%2B13035550100", method="GET")
    assert status == 200 and [m["refid"] for m in listed["messages"]] == [body["refid"]]
    assert call(f"{emu.api_base}/_emulator/sent?to=%2B19995550000", method="GET")[1] == {
        "messages": []
    }
    assert call(f"{emu.api_base}/_emulator/sent", method="DELETE")[1] == {"cleared": 1}
    assert emu.state.sent == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"from": "3038675309", "to": "+13035550100", "text": "x"}, "from must be"),
        ({"from": "57-Hello8", "to": "57-Hello8", "text": "x"}, "to must be"),
        ({"from": "1-12345", "to": "+13035550100"}, "text or media is required"),
        ({"from": "+13038675309", "to": "+13035550100", "text": 5}, "text must be"),
        ({"from": "+13038675309", "to": "+13035550100", "text": "x", "dlr": "yes"}, "dlr must"),
        ({"from": "+13038675309", "to": "+13035550100", "media": ["ftp://x/y"]}, "media must"),
        (["not", "an", "object"], "JSON object"),
    ],
)
def test_a_bad_send_is_400_with_the_reason_and_keeps_nothing(
    emu: EmulatorThread, body: Any, reason: str
) -> None:
    status, answer = call(emu.api_base + SEND_PATH, body, token=login(emu))
    assert status == 400 and reason in answer["message"]
    assert emu.state.sent == []


def test_send_and_mdr_need_a_token_and_the_right_method(emu: EmulatorThread) -> None:
    body = {"from": "+13038675309", "to": "+13035550100", "text": "hi"}
    assert call(emu.api_base + SEND_PATH, body)[0] == 401
    assert call(emu.api_base + SEND_PATH, body, token="emu-wrong")[0] == 401
    assert call(emu.api_base + MDR_PATH + "?refid=X", method="GET")[0] == 401
    token = login(emu)
    assert call(emu.api_base + MDR_PATH, body, token=token)[0] == 405
    assert call(emu.api_base + SEND_PATH, method="GET", token=token)[0] == 405
    assert call(emu.api_base + MDR_PATH, method="GET", token=token)[0] == 400
    assert call(emu.api_base + MDR_PATH + "?refid=NOPE", method="GET", token=token)[0] == 404
    assert emu.state.sent == []
