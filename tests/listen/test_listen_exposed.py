"""Safe when exposed: `listen --basic-auth USER:PASS` answers 401 without the credentials,
`--random-path` answers 404 off its unguessable path, and the webhook URL ipsms sets carries
both while everything it prints masks the password."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from ipsms.intelepeer.emulator import EmulatorThread
from ipsms.listen.app import ListenConfig
from ipsms.listen.session import public_address
from tests.hostile import VALID, running_listener, status_of, stored_rows
from tests.listen.test_listen_webhook import NUMBER, PUBLIC, emu, env  # noqa: F401 (fixture)
from tests.procs import ListenerProcess

BODY = json.dumps(VALID).encode()


def basic(user: str, password: str) -> str:
    return (
        "Authorization: Basic " + base64.b64encode(f"{user}:{password}".encode()).decode() + "\r\n"
    )


async def test_basic_auth_is_required_and_recorded_masked(tmp_path: Path) -> None:
    db = tmp_path / "b.sqlite3"
    async with running_listener(db, basic_auth=("hook", "s3cr3t-pw")) as listener:
        missing = await listener.post(BODY)
        wrong = await listener.post(BODY, headers=basic("hook", "nope"))
        right = await listener.post(BODY, headers=basic("hook", "s3cr3t-pw"))
    assert [status_of(a) for a in (missing, wrong, right)] == [401, 401, 200]
    assert b'WWW-Authenticate: Basic realm="ipsms"' in missing
    rows = stored_rows(db)
    assert [(r.status, r.error) for r in rows] == [
        (401, "unauthorized"),
        (401, "unauthorized"),
        (200, None),
    ]
    stored = json.dumps([r.headers for r in rows])
    assert "s3cr3t-pw" not in stored and "bm9wZQ" not in stored  # Authorization masked


async def test_a_random_path_serves_nothing_elsewhere(tmp_path: Path) -> None:
    async with running_listener(tmp_path / "p.sqlite3", path_prefix="/Zq9x") as listener:
        elsewhere = await listener.post(BODY)  # to /sms
        inside = await listener.raw(
            b"POST /Zq9x/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(BODY)}\r\nConnection: close\r\n\r\n".encode()
            + BODY
        )
    assert (status_of(elsewhere), status_of(inside)) == (404, 200)


def test_the_public_address_carries_the_path_and_the_credentials() -> None:
    both = ListenConfig(basic_auth=("hook", "p@ss:word"), path_prefix="/R4nd")
    assert (
        public_address("https://t.ngrok.app", both)
        == "https://hook:p%40ss%3Aword@t.ngrok.app/R4nd/"
    )
    assert (
        public_address("https://x.example.com/hook", ListenConfig()) == "https://x.example.com/hook"
    )


def test_the_webhook_set_carries_them_and_nothing_prints_the_password(
    emu: EmulatorThread,  # noqa: F811
    ipsms_home: Path,
    tmp_path: Path,
) -> None:
    listener = ListenerProcess(
        "--set-webhook",
        NUMBER,
        "--public-url",
        PUBLIC,
        "--basic-auth",
        "hook:pw-9Zt",
        "--random-path",
        "--keep-webhook",
        db=tmp_path / "w.sqlite3",
        env=env(emu, ipsms_home),
    )
    try:
        listener.next_event()
        set_to = emu.state.numbers[NUMBER].webhook
        code, out, err = listener.stop()
    finally:
        listener.kill()
    assert code == 0
    assert (
        set_to.startswith("https://hook:pw-9Zt@tunnel.example.com/hook/")
        and set_to.endswith("/")
        and len(set_to) > len(PUBLIC) + 20
    )
    assert "pw-9Zt" not in out + err + json.dumps(listener.ready)
    assert listener.ready["url"].endswith(set_to.rsplit("/", 2)[-2] + "/")
