"""`ipsms api-emulator` as a real process, fed every kind of bad input over a real socket.

Each row sends one bad request and asserts the exact 4xx it gets; then a valid authenticate and
set-webhook must still succeed, and the control views must still answer strict JSON. The same
process serves every row, so damage that lingers (a stored fault, a record that cannot be
shown, a crashed request log) fails the rows after it. Its stdout is strict UTF-8
(``PYTHONIOENCODING``), so a lone surrogate reaching the request log would show up too."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from ipsms.intelepeer.client import AUTH_PATH, PROVISION_PATH, WEBHOOK_PATH
from ipsms.intelepeer.strict_json import parse_json
from tests.conftest import ROOT

USER, PASSWORD = "api-user", "pw-Inputs-77"
NUMBER, NO_SMS = "+13035550101", "+13035550199"
JSON = "application/json"
FAULTS, NUMBERS = "/_emulator/faults", "/_emulator/numbers"
HOOK = '"webhook": "https://example.com/sms"'


class EmulatorProcess:
    """The emulator on a free port; a thread keeps reading its stdout (the request log)."""

    def __init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("IPSMS_", "PYTEST_"))}
        env.update(PYTHONIOENCODING="utf-8", PYTHONUNBUFFERED="1")  # strict: no escape hatch
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ipsms",
                "api-emulator",
                "--port",
                "0",
                "--format",
                "json",
                "--user",
                f"{USER}:{PASSWORD}",
                "--number",
                NUMBER,
                "--number-no-sms",
                NO_SMS,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env=env,
        )
        assert self.proc.stdout is not None
        self.ready = json.loads(self.proc.stdout.readline())
        self.port = int(self.ready["port"])
        self.log: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log.append(line)

    def send(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: tuple[tuple[str, str | bytes], ...] = (),
    ) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.putrequest(method, path)
            for name, value in headers:
                conn.putheader(name, value)
            conn.putheader("Content-Length", str(len(body or b"")))
            conn.endheaders(body)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        return resp.status, parse_json(raw) if raw.strip() else None

    def token(self) -> str:
        status, body = self.send(
            "POST",
            AUTH_PATH,
            json.dumps({"username": USER, "password": PASSWORD}).encode(),
            (("Content-Type", JSON),),
        )
        assert status == 200, body
        return str(body["token"])

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=15)
        self._reader.join(timeout=5)
        return self.proc.returncode, err.decode("utf-8", "replace")


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorProcess]:
    process = EmulatorProcess()
    try:
        yield process
    finally:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.communicate()


@dataclass(frozen=True)
class Bad:
    path: str
    body: bytes
    status: int
    content_type: str | None = JSON
    token: bool = False  # send a valid token (so the body, not the token, is what is wrong)
    headers: tuple[tuple[str, bytes], ...] = ()  # raw header values


def deep(opening: bytes, depth: int, closing: bytes = b"") -> bytes:
    return opening * depth + closing * depth


def auth_body(username: str = f'"{USER}"', password: str = '"x"') -> bytes:
    return f'{{"username": {username}, "password": {password}}}'.encode()


def hook_body(
    endpoints: str = f'["{NUMBER}"]', webhook: str = '"https://example.com/sms"'
) -> bytes:
    return f'{{"endpoints": {endpoints}, "webhook": {webhook}}}'.encode()


def fault(**fields: str) -> bytes:
    return ("{" + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}").encode()


CASES = {
    # -- the body itself, at the authenticate URL --------------------------------------
    "array nested 100,000 deep": Bad(AUTH_PATH, deep(b"[", 100_000), 400),
    "object nested 100,000 deep": Bad(AUTH_PATH, deep(b'{"a":', 100_000), 400),
    "well-formed but 500 deep": Bad(AUTH_PATH, deep(b"[", 500, b"]"), 400),
    "invalid UTF-8": Bad(AUTH_PATH, b'{"username": "api-user", "password": "caf\xe9"}', 400),
    "UTF-8 bytes of a surrogate": Bad(AUTH_PATH, b'{"username": "\xed\xa0\x80"}', 400),
    "5,000-digit integer": Bad(AUTH_PATH, b'{"username": "u", "n": ' + b"9" * 5000 + b"}", 400),
    "NaN": Bad(AUTH_PATH, auth_body(password="NaN"), 400),
    "Infinity": Bad(AUTH_PATH, auth_body(password="-Infinity"), 400),
    "1e999": Bad(AUTH_PATH, auth_body(password="1e999"), 400),
    "truncated JSON": Bad(AUTH_PATH, b'{"username": "api-user", "pass', 400),
    "empty body": Bad(AUTH_PATH, b"", 400),
    "whitespace body": Bad(AUTH_PATH, b" \r\n\t ", 400),
    "a JSON array": Bad(AUTH_PATH, b"[]", 400),
    "text/plain": Bad(AUTH_PATH, auth_body(password=f'"{PASSWORD}"'), 415, "text/plain"),
    "form content type": Bad(
        AUTH_PATH, b"username=api-user&password=x", 415, "application/x-www-form-urlencoded"
    ),
    # -- fields: lone surrogates and wrong types --------------------------------------
    "lone surrogate in username": Bad(AUTH_PATH, auth_body(username='"\\ud800"'), 400),
    "lone surrogate in password": Bad(AUTH_PATH, auth_body(password='"pw\\udfff"'), 400),
    "lone surrogate in a name": Bad(AUTH_PATH, b'{"\\ud800": 1, "username": "u"}', 400),
    "username is a number": Bad(AUTH_PATH, auth_body(username="5"), 400),
    "username is null": Bad(AUTH_PATH, auth_body(username="null"), 400),
    "password is a list": Bad(AUTH_PATH, auth_body(password='["x"]'), 400),
    "password is an object": Bad(AUTH_PATH, auth_body(password='{"x": 1}'), 400),
    "endpoints hold a number": Bad(WEBHOOK_PATH, hook_body("[13035550101]"), 400, token=True),
    "endpoints hold null": Bad(WEBHOOK_PATH, hook_body("[null]"), 400, token=True),
    "endpoints is a string": Bad(WEBHOOK_PATH, hook_body(f'"{NUMBER}"'), 400, token=True),
    "endpoints is empty": Bad(WEBHOOK_PATH, hook_body("[]"), 400, token=True),
    "lone surrogate in an endpoint": Bad(
        WEBHOOK_PATH, hook_body('["+1303\\ud800"]'), 400, token=True
    ),
    "webhook is a number": Bad(WEBHOOK_PATH, hook_body(webhook="5"), 400, token=True),
    "webhook is null": Bad(WEBHOOK_PATH, hook_body(webhook="null"), 400, token=True),
    "webhook is a list": Bad(
        WEBHOOK_PATH, hook_body(webhook='["https://a.example/"]'), 400, token=True
    ),
    "webhook is an object": Bad(WEBHOOK_PATH, hook_body(webhook="{}"), 400, token=True),
    "lone surrogate in webhook": Bad(
        WEBHOOK_PATH, hook_body(webhook='"https://a.example/\\ud800"'), 400, token=True
    ),
    "ANSI escape in webhook": Bad(
        WEBHOOK_PATH, hook_body(webhook='"https://a.example/\\u001b[31m"'), 400, token=True
    ),
    "U+202E in webhook": Bad(
        WEBHOOK_PATH, hook_body(webhook='"https://a.example/\\u202e"'), 400, token=True
    ),
    "provision endpoint is an object": Bad(PROVISION_PATH, b'{"endpoints": [{}]}', 400, token=True),
    "provision endpoint is a list": Bad(
        PROVISION_PATH, f'{{"endpoints": [["{NO_SMS}"]]}}'.encode(), 400, token=True
    ),
    "provision body nested 100,000 deep": Bad(PROVISION_PATH, deep(b"[", 100_000), 400, token=True),
    # -- headers ------------------------------------------------------------------------
    "Authorization with invalid UTF-8": Bad(
        WEBHOOK_PATH, hook_body(), 401, headers=(("Authorization", b"Bearer \xff\xfe"),)
    ),
    "Authorization with U+202E": Bad(
        WEBHOOK_PATH, hook_body(), 401, headers=(("Authorization", "Bearer \u202e".encode()),)
    ),
    "a logged header with invalid UTF-8": Bad(
        WEBHOOK_PATH, hook_body(), 401, headers=(("X-Note", b"caf\xe9 \xff"),)
    ),
    "a logged header with U+202E": Bad(
        WEBHOOK_PATH, hook_body(), 401, headers=(("User-Agent", "evil\u202eexe.txt".encode()),)
    ),
    # -- fault controls -----------------------------------------------------------------
    "fault delay NaN": Bad(FAULTS, fault(delay="NaN"), 400),
    "fault delay 'NaN' as a string": Bad(FAULTS, fault(delay='"NaN"'), 400),
    "fault delay Infinity": Bad(FAULTS, fault(delay="Infinity"), 400),
    "fault delay 1e999": Bad(FAULTS, fault(delay="1e999"), 400),
    "fault delay 1e308": Bad(FAULTS, fault(delay="1e308"), 400),
    "fault delay negative": Bad(FAULTS, fault(delay="-1"), 400),
    "fault delay over 60 s": Bad(FAULTS, fault(delay="60.5"), 400),
    "fault delay true": Bad(FAULTS, fault(delay="true"), 400),
    "fault status 99": Bad(FAULTS, fault(status="99"), 400),
    "fault status 600": Bad(FAULTS, fault(status="600"), 400),
    "fault status 0": Bad(FAULTS, fault(status="0"), 400),
    "fault status as a string": Bad(FAULTS, fault(status='"503"'), 400),
    "fault status 503.5": Bad(FAULTS, fault(status="503.5"), 400),
    "fault status 10**30": Bad(FAULTS, fault(status="1" + "0" * 30), 400),
    "fault status of 5,000 digits": Bad(FAULTS, fault(status="5" * 5000), 400),
    "fault times 0": Bad(FAULTS, fault(times="0"), 400),
    "fault body is a number": Bad(FAULTS, fault(body="5"), 400),
    "fault body lone surrogate": Bad(FAULTS, fault(body='"\\ud800"'), 400),
    "fault content_type is a list": Bad(FAULTS, fault(content_type='["text/html"]'), 400),
    "fault content_type with CRLF": Bad(
        FAULTS, fault(content_type='"text/html\\r\\nX-Evil: 1"'), 400
    ),
    "fault path is a number": Bad(FAULTS, fault(path="5"), 400),
    "fault unknown field": Bad(FAULTS, fault(stauts="500"), 400),
    "fault invalid UTF-8": Bad(FAULTS, b'{"body": "\xff"}', 400),
    "fault nested 100,000 deep": Bad(FAULTS, deep(b'{"a":', 100_000), 400),
    "fault text/plain": Bad(FAULTS, fault(status="500"), 415, "text/plain"),
    "fault empty body": Bad(FAULTS, b"", 400),
    # -- number controls ----------------------------------------------------------------
    "number is a number": Bad(NUMBERS, b'{"number": 13035550111}', 400),
    "number lone surrogate": Bad(NUMBERS, b'{"number": "+1303555\\ud800"}', 400),
    "number not a number": Bad(NUMBERS, b'{"number": "not-a-number"}', 400),
    "sms_enabled is a string": Bad(
        NUMBERS, b'{"number": "+13035550111", "sms_enabled": "no"}', 400
    ),
    "number webhook is a list": Bad(NUMBERS, b'{"number": "+13035550111", "webhook": [1]}', 400),
    "number webhook not http": Bad(
        NUMBERS, b'{"number": "+13035550111", "webhook": "javascript:alert(1)"}', 400
    ),
    "numbers nested 100,000 deep": Bad(NUMBERS, deep(b"[", 100_000), 400),
}


def assert_still_serving(emulator: EmulatorProcess) -> None:
    assert emulator.proc.poll() is None, "the emulator exited"
    token = emulator.token()
    status, body = emulator.send(
        "POST",
        WEBHOOK_PATH,
        hook_body(),
        (("Content-Type", JSON), ("Authorization", f"Bearer {token}")),
    )
    assert (status, body) == (201, {"code": 201, "message": "Webhook updated"})
    for path in ("/_emulator/requests", NUMBERS):
        status, view = emulator.send("GET", path)  # strict JSON: no NaN, no surrogates
        assert status == 200 and isinstance(view, dict)
    status, numbers = emulator.send("GET", NUMBERS)
    assert {n["number"] for n in numbers["numbers"]} == {NUMBER, NO_SMS}  # none added


@pytest.mark.parametrize("bad", list(CASES.values()), ids=list(CASES))
def test_bad_input_gets_its_4xx_and_the_emulator_keeps_working(
    emulator: EmulatorProcess, bad: Bad
) -> None:
    headers: list[tuple[str, str | bytes]] = []
    if bad.content_type is not None:
        headers.append(("Content-Type", bad.content_type))
    if bad.token:
        headers.append(("Authorization", f"Bearer {emulator.token()}"))
    headers.extend(bad.headers)
    status, body = emulator.send("POST", bad.path, bad.body, tuple(headers))
    assert status == bad.status, body
    assert isinstance(body, dict)
    reason = body.get("message") or body.get("error")  # control calls: {"error": why}
    assert isinstance(reason, str) and reason  # says why
    assert_still_serving(emulator)


def test_the_table_covers_the_brief() -> None:
    assert len(CASES) >= 15
    assert {c.status for c in CASES.values()} == {400, 401, 415}


def test_after_all_of_it_the_log_is_clean_and_the_emulator_stops_with_0(
    emulator: EmulatorProcess,
) -> None:
    assert_still_serving(emulator)
    code, err = emulator.stop()
    assert code == 0 and "Traceback" not in err and "stopped" in err
    entries = [json.loads(line.decode("utf-8")) for line in emulator.log]
    assert entries and all(e["type"] == "emulator_request" for e in entries)
    assert {e["status"] for e in entries} >= {200, 201, 400, 401, 415}
    assert 500 not in {e["status"] for e in entries}
    text = b"".join(emulator.log).decode("utf-8")  # strict: the log is valid UTF-8
    assert PASSWORD not in text and "\x1b" not in text
