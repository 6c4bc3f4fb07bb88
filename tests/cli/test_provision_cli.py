"""`ipsms provision` against the API emulator, and `ipsms api-emulator` itself as a real
process on a free port that the CLI (or any script) is pointed at."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ipsms.errors import ExitCode
from ipsms.intelepeer.client import AUTH_PATH, PROVISION_PATH
from ipsms.intelepeer.emulator import DEMO_PASSWORD, DEMO_USER, EmulatorThread, Fault
from tests.cli.test_set_webhook_cli import NO_SMS, NUMBER, assert_no_secrets, emu, ipsms, ndjson
from tests.conftest import ROOT, cli_env, run_ipsms

__all__ = ["emu"]  # the fixture, shared with the set-webhook tests


def test_provision_requested(emu: EmulatorThread) -> None:
    result = ipsms(emu, "provision", NO_SMS)
    assert result.returncode == 0, result.stderr
    assert ndjson(result.stdout) == [
        {"type": "provision", "number": NO_SMS, "status": 202, "state": "requested", "reason": None}
    ]
    [req] = emu.state.requests_to(PROVISION_PATH)
    assert (req.method, req.json) == ("POST", {"endpoints": [NO_SMS]})
    assert req.header("Authorization") == f"Bearer {next(iter(emu.state.tokens))}"
    assert req.header("Content-Type") == req.header("Accept") == "application/json"
    table = ipsms(emu, "provision", NUMBER, "--format", "table")  # already enabled: 400
    assert table.returncode == ExitCode.API and "already enabled for SMS" in table.stderr
    assert_no_secrets(emu, result, table)


def test_provision_in_progress_is_409(emu: EmulatorThread) -> None:
    assert ipsms(emu, "provision", NO_SMS).returncode == 0
    result = ipsms(emu, "provision", NO_SMS, "--format", "table")
    assert result.returncode == ExitCode.API
    assert f"{NO_SMS}: provisioning is already in progress" in result.stdout
    assert "409" in result.stderr and "wait for it to finish" in result.stderr
    assert len(emu.state.requests_to(AUTH_PATH)) == 1  # the cached token served both


def test_provision_not_in_account_is_400_with_reason(emu: EmulatorThread) -> None:
    result = ipsms(emu, "provision", "+19995550000")
    assert result.returncode == ExitCode.API
    assert "400 Bad Request: +19995550000 was not found in the account" in result.stderr


@pytest.mark.parametrize(
    ("number", "words"),
    [
        ("1-12345", "is a short code"),
        ("57-Hello8", "alphanumeric sender id"),
        ("303-867-5309", "not E.164"),
        ("303-8675309", "not a short code {countrycode}-{code}; write it in E.164: +13038675309"),
    ],
)
def test_provision_takes_one_e164_long_code(emu: EmulatorThread, number: str, words: str) -> None:
    result = ipsms(emu, "provision", number)
    assert result.returncode == ExitCode.USAGE and words in result.stderr
    assert emu.state.requests == []


def test_provision_with_a_refused_token_exits_8(emu: EmulatorThread) -> None:
    result = ipsms(emu, "provision", NO_SMS, creds=False, IPSMS_TOKEN="stale-tok-1234")
    assert result.returncode == ExitCode.AUTH
    assert "--token/IPSMS_TOKEN" in result.stderr and "stale-tok-1234" not in result.stderr
    [req] = emu.state.requests
    assert req.header("Authorization") == "Bearer stale-tok-1234"  # used as given
    assert emu.state.requests_to(AUTH_PATH) == []


def test_provision_dry_run(emu: EmulatorThread) -> None:
    result = ipsms(emu, "provision", NO_SMS, "--dry-run", creds=False)
    assert result.returncode == 0
    [shown] = ndjson(result.stdout)
    assert (shown["url"], shown["body"]) == (emu.api_base + PROVISION_PATH, {"endpoints": [NO_SMS]})
    assert emu.state.requests == []


class EmulatorProcess:
    """``ipsms api-emulator --port 0`` as a child process."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ipsms", "api-emulator", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=cli_env(),
        )
        assert self.proc.stdout is not None
        self.ready_text = self.proc.stdout.readline()
        self.ready: dict[str, Any] = (
            json.loads(self.ready_text) if self.ready_text.startswith("{") else {}
        )

    def control(self, path: str) -> Any:
        with urllib.request.urlopen(self.ready["api_base"] + path, timeout=5) as resp:
            return json.loads(resp.read())

    def stop(self) -> tuple[int, str, str]:
        self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=15)
        return self.proc.returncode, out, err


@pytest.fixture
def emulator_process() -> Iterator[EmulatorProcess]:
    process = EmulatorProcess(
        "--number",
        "+14155550100",
        "--number-no-sms",
        "+14155550199",
        "--user",
        "script-user:script-pw-55",
    )
    try:
        yield process
    finally:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.communicate()


def test_api_emulator_command_serves_the_cli(emulator_process: EmulatorProcess) -> None:
    ready = emulator_process.ready
    assert ready["type"] == "api_emulator" and ready["port"] > 0
    assert ready["api_base"] == f"http://127.0.0.1:{ready['port']}"
    assert ready["auth_url"] == ready["api_base"] + AUTH_PATH
    env = cli_env(
        IPSMS_API_BASE=ready["api_base"],
        IPSMS_AUTH_URL=ready["auth_url"],
        IPSMS_USERNAME="script-user",
        IPSMS_PASSWORD="script-pw-55",
    )
    result = run_ipsms("provision", "+14155550199", env=env)
    assert result.returncode == 0, result.stderr
    assert run_ipsms("provision", "+14155550199", env=env).returncode == ExitCode.API  # 409
    hook = run_ipsms("set-webhook", "+14155550100", "https://u:hook-pw-1@example.com/sms", env=env)
    assert hook.returncode == 0, hook.stderr
    requests = emulator_process.control("/_emulator/requests")["requests"]
    assert [(r["path"], r["status"]) for r in requests] == [
        (AUTH_PATH, 200),
        (PROVISION_PATH, 202),
        (PROVISION_PATH, 409),
        ("/_rest/v4/my/did/sms/webhook", 201),
    ]
    assert requests[1]["json"] == {"endpoints": ["+14155550199"]}
    assert requests[3]["json"]["webhook"] == "https://u:****@example.com/sms"
    numbers = emulator_process.control("/_emulator/numbers")["numbers"]
    assert {n["number"]: n["provisioning"] for n in numbers} == {
        "+14155550100": False,
        "+14155550199": True,
    }
    code, out, err = emulator_process.stop()
    assert code == 0 and "stopped" in err
    log = ndjson(out)
    assert [e["type"] for e in log] == ["emulator_request"] * 4
    text = out + err
    assert "script-pw-55" not in text and "hook-pw-1" not in text
    assert "Bearer ****" in text


def test_api_emulator_default_account_and_busy_port() -> None:
    process = EmulatorProcess()
    try:
        port = process.ready["port"]
        busy = run_ipsms("api-emulator", "--port", str(port))
        assert busy.returncode == ExitCode.NETWORK and "cannot listen" in busy.stderr
        env = cli_env(IPSMS_USERNAME=DEMO_USER, IPSMS_PASSWORD=DEMO_PASSWORD)
        result = run_ipsms(
            "set-webhook",
            "+13035550100",
            "https://example.com/sms",
            "--api-base",
            process.ready["api_base"],
            "--auth-url",
            process.ready["auth_url"],
            env=env,
        )
        assert result.returncode == 0, result.stderr
    finally:
        code, _, err = process.stop()
    assert code == 0
    assert "users: demo" in err
    # The banner gives lines that work when pasted, the demo password included.
    assert f"export IPSMS_USERNAME=demo IPSMS_PASSWORD={DEMO_PASSWORD}" in err
    assert f"export IPSMS_API_BASE={process.ready['api_base']} " in err


def free_port() -> int:
    with socket.socket() as sock:  # bound then closed: nothing listens on it afterwards
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sh(script: str, home: Path) -> subprocess.CompletedProcess[str]:
    """``script`` in a real POSIX shell, with ipsms on its PATH as ``ipsms``."""
    bin_dir = home / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    shim = bin_dir / "ipsms"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m ipsms "$@"\n')
    shim.chmod(0o755)
    env = {k: v for k, v in cli_env().items() if not k.startswith("IPSMS_")}
    env.update(
        IPSMS_HOME=str(home / "state"),
        PATH=f"{bin_dir}:{env.get('PATH', '')}",
        PYTHONPATH=str(ROOT),
    )
    return subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60
    )


def test_pasting_the_banner_lines_into_sh_points_ipsms_at_the_emulator(tmp_path: Path) -> None:
    process = EmulatorProcess("--format", "plain")  # stdout: the lines to paste, then the log
    try:
        assert process.proc.stdout is not None
        pasted = process.ready_text + process.proc.stdout.readline()
        assert pasted.startswith("export IPSMS_API_BASE=")
        result = _sh(
            pasted + "ipsms auth login --format plain && ipsms set-webhook --format plain "
            "+13035550100 https://example.com/sms",
            tmp_path,
        )
        assert result.returncode == 0, result.stderr
        assert "logged in as demo at http://127.0.0.1:" in result.stdout
        assert "+13035550100 set to https://example.com/sms" in result.stdout
    finally:
        code, out, _ = process.stop()
    assert code == 0 and "POST /_rest/v4/my/did/sms/webhook 201" in out


def test_eval_env_points_ipsms_at_a_running_emulator(tmp_path: Path) -> None:
    process = EmulatorProcess()
    try:
        port = process.ready["port"]
        result = _sh(
            f'eval "$(ipsms api-emulator --env --port {port})" && ipsms auth login '
            "&& ipsms set-webhook +13035550100 https://example.com/sms",
            tmp_path,
        )
        assert result.returncode == 0, result.stderr
        assert '"type":"webhook_set"' in result.stdout and '"ok":true' in result.stdout
        assert process.control("/_emulator/requests")["requests"][-1]["status"] == 201
    finally:
        process.stop()
    missing = run_ipsms("api-emulator", "--env", "--port", str(free_port()))
    assert missing.returncode == 0 and "nothing listens on 127.0.0.1:" in missing.stderr
    assert missing.stdout.startswith("export IPSMS_API_BASE=http://127.0.0.1:")
    zero = run_ipsms("api-emulator", "--env", "--port", "0")
    assert zero.returncode == ExitCode.USAGE and "--env needs the emulator's port" in zero.stderr


def test_provision_reply_text_is_printed_escaped(emu: EmulatorThread) -> None:
    hostile = "\\u001b[2J\\u202eevil \\ud800"
    emu.state.inject_fault(
        Fault(
            202, f'{{"provisioning": {{"state": "{hostile}"}}}}', "application/json", PROVISION_PATH
        )
    )
    plain = ipsms(emu, "provision", NO_SMS, "--format", "plain")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == f"{NO_SMS} provisioning \\e[2J\\u202eevil \\ud800 (202)\n"
    emu.state.inject_fault(
        Fault(409, f'{{"code": 409, "message": "{hostile}"}}', "application/json", PROVISION_PATH)
    )
    table = ipsms(emu, "provision", NO_SMS, "--format", "table")
    assert table.returncode == ExitCode.API
    assert "\\e[2J\\u202eevil \\ud800" in table.stdout and "\\e[2J" in table.stderr
    for text in (plain.stdout, table.stdout, table.stderr):
        assert "\x1b" not in text and "\u202e" not in text and "\ud800" not in text


def test_provision_unreadable_reply_exits_7(emu: EmulatorThread) -> None:
    emu.state.inject_fault(Fault(202, "[" * 100_000, "application/json", PROVISION_PATH))
    result = ipsms(emu, "provision", NO_SMS)
    assert result.returncode == ExitCode.API
    assert "answered 202 Accepted while enabling SMS on" in result.stderr
    assert "not readable JSON" in result.stderr and "internal error" not in result.stderr


def test_api_emulator_keeps_answering_when_its_stdout_reader_goes_away() -> None:
    """`ipsms api-emulator --port 0 | head -1`: the log stops, the answers do not."""
    process = EmulatorProcess()
    try:
        assert process.proc.stdout is not None
        process.proc.stdout.close()  # what `head -1` does after the first line
        for _ in range(3):
            req = urllib.request.Request(
                process.ready["auth_url"],
                data=json.dumps({"username": DEMO_USER, "password": DEMO_PASSWORD}).encode(),
                method="POST",
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(req, timeout=5) as resp:
                assert resp.status == 200
    finally:
        process.proc.send_signal(signal.SIGINT)
        _, err = process.proc.communicate(timeout=15)
    assert process.proc.returncode == 0
    assert "Traceback" not in err and "Broken pipe" not in err


def test_the_demo_account_has_the_example_number_so_the_readme_works_offline() -> None:
    """`ipsms set-webhook +13038675309 URL`, the README's own example, against the emulator's
    demo account, with nothing else set up."""
    from ipsms.intelepeer.emulator import DEMO_PASSWORD, DEMO_USER, EmulatorThread, build_state

    with EmulatorThread(build_state({}, [], [])) as emu:
        env = cli_env(
            IPSMS_API_BASE=emu.api_base,
            IPSMS_AUTH_URL=emu.auth_url,
            IPSMS_USERNAME=DEMO_USER,
            IPSMS_PASSWORD=DEMO_PASSWORD,
        )
        result = run_ipsms(
            "set-webhook", "+13038675309", "https://example.com/sms", "--format", "json", env=env
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["url"] == "https://example.com/sms"
        assert emu.state.numbers["+13038675309"].webhook == "https://example.com/sms"
