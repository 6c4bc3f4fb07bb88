"""`ipsms auth login|status|logout` as real processes against the API emulator: credentials
verified and stored 0600, hidden prompts only on a terminal, no secret ever printed, and stored
credentials never sent to any authenticate URL but their own."""

from __future__ import annotations

import json
import os
import pty
import select
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipsms.errors import ExitCode
from ipsms.intelepeer.client import AUTH_PATH, WEBHOOK_PATH
from ipsms.intelepeer.emulator import EmulatorThread
from tests.cli.test_set_webhook_cli import (
    NUMBER,
    PASSWORD,
    assert_no_secrets,
    emu,
    make_state,
    ndjson,
)
from tests.conftest import ROOT, cli_env, run_ipsms

__all__ = ["emu"]  # the fixture, shared with the set-webhook tests


def login(
    emu: EmulatorThread, *args: str, input: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    return run_ipsms(
        "auth",
        "login",
        "--auth-url",
        emu.auth_url,
        "--api-base",
        emu.api_base,
        *args,
        input=input,
        env=cli_env(**env),
    )


def test_login_verifies_and_stores_credentials_0600(emu: EmulatorThread, ipsms_home: Path) -> None:
    result = login(emu, "--username", "api-user", IPSMS_PASSWORD=PASSWORD)
    assert result.returncode == 0, result.stderr
    [info] = ndjson(result.stdout)
    assert info["type"] == "auth_login" and info["username"] == "api-user"
    assert info["auth_url"] == emu.auth_url and info["token_expires_at"].endswith("Z")
    assert info["api_base"] == emu.api_base
    [auth] = emu.state.requests
    assert (auth.method, auth.path, auth.json) == (
        "POST",
        AUTH_PATH,
        {"username": "api-user", "password": PASSWORD},
    )
    creds = ipsms_home / "credentials.json"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert stat.S_IMODE((ipsms_home / "api-tokens.json").stat().st_mode) == 0o600
    assert json.loads(creds.read_text())["username"] == "api-user"
    assert json.loads(creds.read_text())["auth_url"] == emu.auth_url
    assert_no_secrets(emu, result)

    # the stored credentials and cached token serve the next command: no new authentication
    hook = run_ipsms(
        "set-webhook",
        NUMBER,
        "https://example.com/sms",
        "--api-base",
        emu.api_base,
        "--auth-url",
        emu.auth_url,
    )
    assert hook.returncode == 0, hook.stderr
    assert len(emu.state.requests_to(AUTH_PATH)) == 1
    assert len(emu.state.requests_to(WEBHOOK_PATH)) == 1


def test_wrong_password_exits_8_and_stores_nothing(emu: EmulatorThread, ipsms_home: Path) -> None:
    result = login(emu, "--username", "api-user", IPSMS_PASSWORD="wrong-pw-4242")
    assert result.returncode == ExitCode.AUTH
    assert result.stderr.startswith("ipsms: error: IntelePeer refused the username 'api-user'")
    assert "Access = API" in result.stderr
    assert "wrong-pw-4242" not in result.stdout + result.stderr
    assert not (ipsms_home / "credentials.json").exists()


def test_password_from_stdin(emu: EmulatorThread) -> None:
    result = login(
        emu,
        "--username",
        "api-user",
        "--password-stdin",
        "--format",
        "plain",
        input=PASSWORD + "\n",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        f"logged in as api-user at {emu.auth_url}; credentials stored in "
    )
    assert_no_secrets(emu, result)


def test_no_terminal_means_no_prompt_but_a_usage_error(emu: EmulatorThread) -> None:
    no_password = login(emu, "--username", "api-user", input="")
    assert no_password.returncode == ExitCode.USAGE
    assert "no terminal to ask for it" in no_password.stderr
    assert "IPSMS_PASSWORD" in no_password.stderr
    no_user = login(emu, IPSMS_PASSWORD=PASSWORD, input="")
    assert no_user.returncode == ExitCode.USAGE and "--username" in no_user.stderr
    assert emu.state.requests == []


def test_prompts_on_a_terminal_with_the_password_hidden(
    emu: EmulatorThread, ipsms_home: Path
) -> None:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ipsms",
            "auth",
            "login",
            "--auth-url",
            emu.auth_url,
            "--format",
            "json",
        ],
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=slave,
        cwd=ROOT,
        env=cli_env(),
        start_new_session=True,
        text=True,
    )  # no controlling tty: prompts use pty
    os.close(slave)
    seen = b""
    answers = [(b"username", b"api-user\n"), (b"Password", PASSWORD.encode() + b"\n")]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                seen += os.read(master, 1024)
            except OSError:
                break
        if answers and answers[0][0] in seen:
            os.write(master, answers.pop(0)[1])
    out, _ = proc.communicate(timeout=20)
    os.close(master)
    assert proc.returncode == 0, seen
    assert b"api-user" in seen  # the username is echoed as typed
    assert PASSWORD.encode() not in seen  # the password is not
    assert json.loads(out)["username"] == "api-user"
    assert (ipsms_home / "credentials.json").exists()


def test_status_shows_user_and_expiry_without_secrets(emu: EmulatorThread) -> None:
    none = run_ipsms("auth", "status")
    assert none.returncode == ExitCode.AUTH and "ipsms auth login" in none.stderr
    assert login(emu, "--username", "api-user", IPSMS_PASSWORD=PASSWORD).returncode == 0
    result = run_ipsms("auth", "status", "--format", "plain")
    assert result.returncode == 0, result.stderr
    assert "user: api-user  [from `ipsms auth login`]" in result.stdout
    assert (
        f"stored credentials belong to: {emu.auth_url} (the stored password is sent "
        "there only)" in result.stdout
    )
    assert f"token for {emu.auth_url} (API {emu.api_base}): valid until " in result.stdout
    # After the emulator, status must say the other commands would call IntelePeer, where
    # these credentials are not sent.
    assert "API in use: https://api.intelepeer.com (authenticate URL https://" in result.stdout
    assert (
        "note: the stored credentials do not belong to the API in use: pass --auth-url "
        f"{emu.auth_url}" in result.stdout
    )
    pointed = run_ipsms(
        "auth",
        "status",
        "--format",
        "plain",
        env=cli_env(IPSMS_API_BASE=emu.api_base, IPSMS_AUTH_URL=emu.auth_url),
    )
    assert f"API in use: {emu.api_base} (authenticate URL {emu.auth_url})" in pointed.stdout
    assert "note:" not in pointed.stdout
    [info] = ndjson(run_ipsms("auth", "status").stdout)
    assert info["source"] == "stored" and info["tokens"][0]["valid"] is True
    assert info["api_base"] == "https://api.intelepeer.com"
    assert info["credentials_match_api"] is False and info["auth_url"] == emu.auth_url
    with_token = run_ipsms("auth", "status", env=cli_env(IPSMS_TOKEN="tok-zz-9999"))
    assert ndjson(with_token.stdout)[0]["source"] == "token"
    assert_no_secrets(emu, result, with_token, tokens={"tok-zz-9999"})


def test_logout_removes_credentials_and_tokens(emu: EmulatorThread, ipsms_home: Path) -> None:
    assert login(emu, "--username", "api-user", IPSMS_PASSWORD=PASSWORD).returncode == 0
    result = run_ipsms("auth", "logout", "--format", "plain")
    assert result.returncode == 0
    assert result.stdout.strip() == (
        "removed the stored credentials of api-user; removed 1 cached token(s)"
    )
    assert not (ipsms_home / "credentials.json").exists()
    assert not (ipsms_home / "api-tokens.json").exists()
    assert run_ipsms("auth", "status").returncode == ExitCode.AUTH
    again = run_ipsms("auth", "logout")
    assert again.returncode == 0
    assert ndjson(again.stdout) == [
        {"type": "auth_logout", "credentials_removed": False, "tokens_removed": 0}
    ]


# -- stored credentials stay with their authenticate URL -----------------------------------


@pytest.fixture
def other() -> Iterator[EmulatorThread]:
    """A second server that records every request (and would even accept the password)."""
    with EmulatorThread(make_state()) as thread:
        yield thread


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one ``ipsms: error:`` line (set-webhook warns about CPaaS before it)."""
    [line] = [x for x in result.stderr.splitlines() if not x.startswith("ipsms set-webhook:")]
    assert line.startswith("ipsms: error: ") and "Traceback" not in result.stderr
    return line


@pytest.mark.parametrize("how", ["flag", "env"])
def test_saved_credentials_are_not_sent_to_another_auth_url(
    emu: EmulatorThread, other: EmulatorThread, how: str
) -> None:
    assert login(emu, "--username", "api-user", IPSMS_PASSWORD=PASSWORD).returncode == 0
    args = ["set-webhook", NUMBER, "https://example.com/sms", "--api-base", other.api_base]
    if how == "flag":
        result = run_ipsms(*args, "--auth-url", other.auth_url)
    else:
        result = run_ipsms(*args, env=cli_env(IPSMS_AUTH_URL=other.auth_url))
    assert result.returncode == ExitCode.AUTH
    line = one_error_line(result)
    assert (
        f"the saved credentials of 'api-user' belong to {emu.auth_url}, not to "
        f"{other.auth_url}" in line
    )
    assert f"run `ipsms auth login --auth-url {other.auth_url}` explicitly" in line
    assert other.state.requests == []  # not the password, not the token: nothing at all
    assert len(emu.state.requests) == 1  # the login only
    assert_no_secrets(emu, result)


def test_saved_credentials_are_not_sent_to_the_default_auth_url(emu: EmulatorThread) -> None:
    """Saved for the emulator, used without --auth-url: IntelePeer's URL is not theirs either
    (the check comes before any connection, so this test sends nothing anywhere)."""
    assert login(emu, "--username", "api-user", IPSMS_PASSWORD=PASSWORD).returncode == 0
    result = run_ipsms("provision", NUMBER, "--api-base", emu.api_base, "--timeout", "2")
    assert result.returncode == ExitCode.AUTH
    assert (
        "ipsms auth login --auth-url https://customer.intelepeer.com/_rest/v4/authenticate"
        in one_error_line(result)
    )
    assert len(emu.state.requests) == 1


def test_a_cached_token_only_goes_to_the_api_it_was_fetched_for(
    emu: EmulatorThread, other: EmulatorThread
) -> None:
    assert login(emu, "--username", "api-user", IPSMS_PASSWORD=PASSWORD).returncode == 0
    cached = set(emu.state.tokens)
    # same authenticate URL (so the saved password may go there), another API base
    result = run_ipsms(
        "set-webhook",
        NUMBER,
        "https://example.com/sms",
        "--api-base",
        other.api_base,
        "--auth-url",
        emu.auth_url,
    )
    assert result.returncode == ExitCode.AUTH  # other does not know emu's tokens: 401, 401
    assert [r.path for r in other.state.requests] == [WEBHOOK_PATH, WEBHOOK_PATH]
    sent = {r.header("Authorization") for r in other.state.requests}
    assert not sent & {f"Bearer {t}" for t in cached}  # fresh tokens, never the cached one
    assert len(emu.state.requests_to(AUTH_PATH)) == 3  # login, then one fresh token per try


def test_credentials_saved_without_a_url_belong_to_intelepeer(
    emu: EmulatorThread, ipsms_home: Path
) -> None:
    ipsms_home.mkdir(parents=True, exist_ok=True)
    (ipsms_home / "credentials.json").write_text(
        json.dumps({"username": "api-user", "password": PASSWORD})
    )  # an older file: no auth_url
    status = run_ipsms("auth", "status", "--format", "plain")
    assert (
        "stored credentials belong to: https://customer.intelepeer.com/_rest/v4/authenticate"
    ) in status.stdout
    result = run_ipsms(
        "set-webhook",
        NUMBER,
        "https://example.com/sms",
        "--api-base",
        emu.api_base,
        "--auth-url",
        emu.auth_url,
    )
    assert result.returncode == ExitCode.AUTH
    assert "belong to https://customer.intelepeer.com/_rest/v4/authenticate" in (
        one_error_line(result)
    )
    assert emu.state.requests == []
    # logging in again for the emulator ties them to it
    assert login(emu, "--username", "api-user", IPSMS_PASSWORD=PASSWORD).returncode == 0
    again = run_ipsms(
        "set-webhook",
        NUMBER,
        "https://example.com/sms",
        "--api-base",
        emu.api_base,
        "--auth-url",
        emu.auth_url,
    )
    assert again.returncode == 0, again.stderr


def test_an_explicit_password_may_go_to_any_auth_url(
    emu: EmulatorThread, other: EmulatorThread
) -> None:
    """IPSMS_PASSWORD is the user's choice for this command, not the saved secret."""
    assert login(emu, "--username", "api-user", IPSMS_PASSWORD=PASSWORD).returncode == 0
    result = run_ipsms(
        "set-webhook",
        NUMBER,
        "https://example.com/sms",
        "--api-base",
        other.api_base,
        "--auth-url",
        other.auth_url,
        env=cli_env(IPSMS_PASSWORD=PASSWORD),
    )
    assert result.returncode == 0, result.stderr
    assert [r.path for r in other.state.requests] == [AUTH_PATH, WEBHOOK_PATH]


def test_logout_removes_an_unreadable_credentials_file(ipsms_home: Path) -> None:
    ipsms_home.mkdir(parents=True, exist_ok=True)
    (ipsms_home / "credentials.json").write_text(
        json.dumps({"username": "u", "password": "p", "auth_url": 5})
    )
    assert run_ipsms("auth", "status").returncode == ExitCode.STATE
    result = run_ipsms("auth", "logout", "--format", "plain")
    assert result.returncode == 0, result.stderr
    assert not (ipsms_home / "credentials.json").exists()
