"""`ipsms set-webhook` as a real process against the API emulator on loopback: the exact
request that reached it, token caching and renewal, the 207 table, the dry run, the history and
--restore, every error path, and no secret ever printed."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ipsms.errors import ExitCode, NotFoundError, UsageError
from ipsms.intelepeer.client import AUTH_PATH, WEBHOOK_PATH
from ipsms.intelepeer.emulator import EmulatorState, EmulatorThread, Fault
from ipsms.intelepeer.webhooks import (
    CPAAS_WARNING,
    HTTP_WARNING,
    WebhookHistory,
    check_endpoints,
    check_webhook_url,
)
from tests.conftest import cli_env, run_ipsms

PASSWORD = "pw-Qr7-never-shown"
HOOK_PW = "hook-pw-Zz9"
NUMBER = "+13038675309"
OTHER = "+13038675310"
NO_SMS = "+13038675399"
MISSING = "+19995550000"


def make_state() -> EmulatorState:
    state = EmulatorState(provision_seconds=60)
    state.add_user("api-user", PASSWORD)
    for number in (NUMBER, OTHER, "1-12345"):
        state.add_number(number)
    state.add_number(NO_SMS, sms_enabled=False)
    return state


@pytest.fixture
def emu() -> Iterator[EmulatorThread]:
    with EmulatorThread(make_state()) as thread:
        yield thread


def api_args(emu: EmulatorThread) -> list[str]:
    return ["--api-base", emu.api_base, "--auth-url", emu.auth_url]


def ipsms(
    emu: EmulatorThread | None, *args: str, creds: bool = True, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ipsms pointed at the emulator, with the test user's credentials in the env."""
    if creds:
        env = {"IPSMS_USERNAME": "api-user", "IPSMS_PASSWORD": PASSWORD, **env}
    extra = api_args(emu) if emu is not None else []
    return run_ipsms(*args, *extra, env=cli_env(**env))


def assert_no_secrets(
    emu: EmulatorThread, *results: subprocess.CompletedProcess[str], tokens: set[str] | None = None
) -> None:
    for result in results:
        for secret in {PASSWORD, HOOK_PW, *(tokens or set()), *emu.state.tokens}:
            assert secret not in result.stdout and secret not in result.stderr


def ndjson(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_sets_one_number_and_the_exact_request_reached_the_api(
    emu: EmulatorThread, ipsms_home: Path
) -> None:
    url = f"https://hooks:{HOOK_PW}@example.com/sms"
    result = ipsms(emu, "set-webhook", NUMBER, url)
    assert result.returncode == 0, result.stderr
    assert ndjson(result.stdout) == [
        {
            "type": "webhook_set",
            "number": NUMBER,
            "ok": True,
            "status": 201,
            "reply_status": 201,
            "reason": None,
            "action": "set",
            "url": "https://hooks:****@example.com/sms",
            "previous": None,
        }
    ]
    assert CPAAS_WARNING in result.stderr
    auth, hook = emu.state.requests
    assert (auth.method, auth.path, auth.json) == (
        "POST",
        AUTH_PATH,
        {"username": "api-user", "password": PASSWORD},
    )
    token = next(iter(emu.state.tokens))
    assert (hook.method, hook.path) == ("POST", WEBHOOK_PATH)
    assert hook.json == {"endpoints": [NUMBER], "webhook": url}
    assert hook.header("Authorization") == f"Bearer {token}"
    assert hook.header("Accept") == hook.header("Content-Type") == "application/json"
    assert emu.state.numbers[NUMBER].webhook == url
    for name in ("api-tokens.json", "webhook-history.json"):
        assert stat.S_IMODE((ipsms_home / name).stat().st_mode) == 0o600
    assert_no_secrets(emu, result)


def test_raw_scheme_and_table_lines(emu: EmulatorThread) -> None:
    result = ipsms(
        emu,
        "set-webhook",
        NUMBER,
        "1-12345",
        "https://example.com/sms",
        "--auth-scheme",
        "raw",
        "--format",
        "table",
    )
    assert result.returncode == 0, result.stderr
    hook = emu.state.requests_to(WEBHOOK_PATH)[0]
    assert hook.header("Authorization") == next(iter(emu.state.tokens))
    # the emulator answers 207 for several endpoints: a table even when all succeeded
    assert "207 Multi-Status" in result.stdout
    assert NUMBER in result.stdout and "1-12345" in result.stdout
    assert result.stdout.count("updated") == 2


def test_second_command_uses_the_cached_token(emu: EmulatorThread) -> None:
    first = ipsms(emu, "set-webhook", NUMBER, "https://example.com/a")
    second = ipsms(emu, "set-webhook", NUMBER, "https://example.com/b", "--format", "table")
    assert (first.returncode, second.returncode) == (0, 0)
    assert len(emu.state.requests_to(AUTH_PATH)) == 1
    assert len(emu.state.requests_to(WEBHOOK_PATH)) == 2
    assert f"✓ {NUMBER} webhook set to https://example.com/b (was https://example.com/a)" in (
        second.stdout
    )


def test_expired_token_is_renewed_exactly_once(emu: EmulatorThread) -> None:
    assert ipsms(emu, "set-webhook", NUMBER, "https://example.com/a").returncode == 0
    old = set(emu.state.tokens)
    emu.state.expire_tokens()
    result = ipsms(emu, "set-webhook", NUMBER, "https://example.com/b")
    assert result.returncode == 0, result.stderr
    assert len(emu.state.requests_to(AUTH_PATH)) == 2
    assert [r.status for r in emu.state.requests_to(WEBHOOK_PATH)] == [201, 401, 201]
    assert_no_secrets(emu, result, tokens=old)


def test_207_table_and_exit_code(emu: EmulatorThread) -> None:
    result = ipsms(
        emu, "set-webhook", NUMBER, NO_SMS, MISSING, "https://example.com/sms", "--format", "table"
    )
    assert result.returncode == ExitCode.API
    rows = {
        line.split()[0]: line for line in result.stdout.splitlines() if line.strip().startswith("+")
    }
    assert "updated" in rows[NUMBER] and "201" in rows[NUMBER]
    assert "failed" in rows[NO_SMS] and "400" in rows[NO_SMS]
    assert "not enabled for SMS" in result.stdout
    assert "failed" in rows[MISSING] and "404" in rows[MISSING]
    assert f"2 of 3 numbers were not updated: {NO_SMS}, {MISSING}" in result.stderr
    # only the successful change is in the history
    assert [e.number for e in WebhookHistory().entries()] == [NUMBER]


def test_207_as_json(emu: EmulatorThread) -> None:
    result = ipsms(emu, "set-webhook", NUMBER, MISSING, "https://example.com/sms")
    assert result.returncode == ExitCode.API
    rows = ndjson(result.stdout)
    assert [(r["number"], r["ok"], r["status"], r["reply_status"]) for r in rows] == [
        (NUMBER, True, 201, 207),
        (MISSING, False, 404, 207),
    ]
    assert rows[1]["reason"] == f"{MISSING} was not found in the account"


def test_dry_run_sends_nothing_and_needs_no_credentials(emu: EmulatorThread) -> None:
    url = f"https://hooks:{HOOK_PW}@example.com/sms"
    result = ipsms(emu, "set-webhook", NUMBER, "1-12345", url, "--dry-run", creds=False)
    assert result.returncode == 0, result.stderr
    assert emu.state.requests == []
    [shown] = ndjson(result.stdout)
    assert shown == {
        "type": "dry_run",
        "method": "POST",
        "url": emu.api_base + WEBHOOK_PATH,
        "headers": {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": shown["headers"]["User-Agent"],
            "Authorization": "Bearer ****",
        },
        "body": {"endpoints": [NUMBER, "1-12345"], "webhook": "https://hooks:****@example.com/sms"},
    }
    assert "nothing was sent" in result.stderr
    assert_no_secrets(emu, result)


def test_dry_run_plain_shows_the_eu_request() -> None:
    result = run_ipsms(
        "set-webhook",
        NUMBER,
        "https://example.com/sms",
        "--dry-run",
        "--region",
        "eu",
        "--format",
        "plain",
        "--auth-scheme",
        "raw",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "POST https://eu.api.intelepeer.com/_rest/v4/my/did/sms/webhook"
    assert "Authorization: ****" in lines
    assert lines[-1] == json.dumps({"endpoints": [NUMBER], "webhook": "https://example.com/sms"})


def test_history_and_restore(emu: EmulatorThread) -> None:
    first = f"https://hooks:{HOOK_PW}@example.com/one"
    assert ipsms(emu, "set-webhook", NUMBER, first).returncode == 0
    assert ipsms(emu, "set-webhook", NUMBER, OTHER, "https://example.com/two").returncode == 0
    history = ipsms(emu, "set-webhook", "--history", NUMBER)
    assert history.returncode == 0
    rows = ndjson(history.stdout)
    assert [(r["number"], r["url"], r["previous"], r["action"]) for r in rows] == [
        (NUMBER, "https://hooks:****@example.com/one", None, "set"),
        (NUMBER, "https://example.com/two", "https://hooks:****@example.com/one", "set"),
    ]
    table = ipsms(emu, "set-webhook", "--history", "--format", "table", COLUMNS="200")
    assert table.stdout.count("https://example.com/two") == 2 and OTHER in table.stdout

    restored = ipsms(emu, "set-webhook", "--restore", NUMBER)
    assert restored.returncode == 0, restored.stderr
    assert emu.state.requests_to(WEBHOOK_PATH)[-1].json == {"endpoints": [NUMBER], "webhook": first}
    assert emu.state.numbers[NUMBER].webhook == first
    assert ndjson(restored.stdout)[0]["action"] == "restore"
    # the first change replaced nothing ipsms knew of: nothing further to restore
    again = ipsms(emu, "set-webhook", "--restore", NUMBER)
    assert again.returncode == ExitCode.NOT_FOUND
    assert "does not know the webhook" in again.stderr
    assert_no_secrets(emu, history, table, restored, again)


def test_restore_without_history_is_not_found(emu: EmulatorThread) -> None:
    result = ipsms(emu, "set-webhook", "--restore", NUMBER)
    assert result.returncode == ExitCode.NOT_FOUND
    assert "no webhook change of" in result.stderr and "--history" in result.stderr
    assert emu.state.requests == []


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((MISSING,), f"{MISSING} was not found in the account"),
        ((NO_SMS,), f"{NO_SMS} is not enabled for SMS"),
    ],
)
def test_api_refusals_show_the_reason_and_what_to_do(
    emu: EmulatorThread, args: tuple[str, ...], words: str
) -> None:
    result = ipsms(emu, "set-webhook", *args, "https://example.com/sms")
    expected = ExitCode.NOT_FOUND if args[0] == MISSING else ExitCode.API
    assert result.returncode == expected
    assert words in result.stderr and result.stderr.count("ipsms: error:") == 1
    assert ("--region eu" if args[0] == MISSING else "ipsms provision") in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_wrong_password_exits_8(emu: EmulatorThread) -> None:
    result = ipsms(
        emu, "set-webhook", NUMBER, "https://example.com/sms", IPSMS_PASSWORD="wrong-pw-777"
    )
    assert result.returncode == ExitCode.AUTH
    assert "refused the username 'api-user'" in result.stderr
    assert "wrong-pw-777" not in result.stderr + result.stdout
    assert emu.state.requests_to(WEBHOOK_PATH) == []


def test_no_credentials_exits_8_before_any_request(emu: EmulatorThread) -> None:
    result = ipsms(emu, "set-webhook", NUMBER, "https://example.com/sms", creds=False)
    assert result.returncode == ExitCode.AUTH
    assert "ipsms auth login" in result.stderr and emu.state.requests == []


def test_server_down_exits_4() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    result = run_ipsms(
        "set-webhook",
        NUMBER,
        "https://example.com/sms",
        "--api-base",
        base,
        "--auth-url",
        base + AUTH_PATH,
        env=cli_env(IPSMS_TOKEN="tok-123456"),
    )
    assert result.returncode == ExitCode.NETWORK
    assert f"cannot connect to 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr and "tok-123456" not in result.stderr


def test_non_json_error_body_exits_7(emu: EmulatorThread) -> None:
    emu.state.inject_fault(
        Fault(503, "<html>down for maintenance</html>", "text/html", WEBHOOK_PATH)
    )
    result = ipsms(emu, "set-webhook", NUMBER, "https://example.com/sms")
    assert result.returncode == ExitCode.API
    assert "503 Service Unavailable, body is not JSON: <html>down for maintenance</html>" in (
        result.stderr
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("57-Hello8", "https://example.com/"), "alphanumeric sender id"),
        (("3038675309", "https://example.com/"), "add the country code"),
        # A phone number written with a dash is not sent as a short code (the API answered 404).
        (
            ("303-8675309", "https://example.com/"),
            "looks like a phone number written with a "
            "dash, not a short code {countrycode}-{code}; write it in E.164: +13038675309",
        ),
        ((NUMBER, "555-1234", "https://example.com/"), "555 is not a country code"),
        ((NUMBER, "example.com/sms"), "not an absolute http(s) URL"),
        ((NUMBER, "http://localhost:8765/"), "localhost is a local name"),
        ((NUMBER, "https://192.168.1.20/sms"), "private or reserved"),
        ((NUMBER, "https://[::1]:8443/"), "loopback"),
        ((NUMBER,), "give the number(s) and then the webhook URL"),
    ],
)
def test_invalid_input_is_refused_before_calling(
    emu: EmulatorThread, args: tuple[str, ...], words: str
) -> None:
    result = ipsms(emu, "set-webhook", *args)
    assert result.returncode == ExitCode.USAGE
    assert words in result.stderr
    assert emu.state.requests == []


def test_force_sets_an_unreachable_url_with_warnings(emu: EmulatorThread) -> None:
    result = ipsms(emu, "set-webhook", NUMBER, "http://127.0.0.1:8765/sms", "--force")
    assert result.returncode == 0, result.stderr
    assert HTTP_WARNING in result.stderr and "127.0.0.1 is a loopback address" in result.stderr
    assert emu.state.numbers[NUMBER].webhook == "http://127.0.0.1:8765/sms"


def test_url_checks() -> None:
    assert check_webhook_url("https://example.com/sms") == []
    assert check_webhook_url("http://u:p@example.com/") == [HTTP_WARNING]
    for url in (
        "https://printer.local/",
        "https://10.0.0.1/",
        "https://169.254.1.1/",
        "https://intranet/",
        "https://[fe80::1]/",
    ):
        with pytest.raises(UsageError):
            check_webhook_url(url)
    with pytest.raises(UsageError) as info:
        check_webhook_url("https://u:secret-x@localhost/")
    assert "secret-x" not in str(info.value)
    with pytest.raises(UsageError):
        check_endpoints([NUMBER, NUMBER])


def test_restore_is_an_undo_stack(tmp_path: Path) -> None:
    history = WebhookHistory(tmp_path / "h.json")
    api = "https://api.intelepeer.com"
    history.record([(NUMBER, "https://a/", None, "set")], api, now=1)
    history.record([(NUMBER, "https://b/", "https://a/", "set")], api, now=2)
    history.record([(NUMBER, "https://c/", "https://b/", "set")], api, now=3)
    assert history.restore_target(NUMBER, api).previous == "https://b/"
    history.record([(NUMBER, "https://b/", "https://c/", "restore")], api, now=4)
    assert history.known_url(NUMBER, api) == "https://b/"
    assert history.restore_target(NUMBER, api).previous == "https://a/"
    history.record([(NUMBER, "https://a/", "https://b/", "restore")], api, now=5)
    with pytest.raises(NotFoundError):
        history.restore_target(NUMBER, api)
    with pytest.raises(NotFoundError):  # history of another API base is not mixed in
        history.restore_target(NUMBER, "http://127.0.0.1:1")
    assert [e.id for e in history.entries()] == [1, 2, 3, 4, 5]


def test_unreadable_history_stops_before_any_change(emu: EmulatorThread, ipsms_home: Path) -> None:
    (ipsms_home / "webhook-history.json").mkdir(parents=True)
    result = ipsms(emu, "set-webhook", NUMBER, "https://example.com/sms")
    assert result.returncode == ExitCode.STATE and "Is a directory" in result.stderr
    assert emu.state.requests_to(WEBHOOK_PATH) == []


def test_history_that_cannot_be_saved_says_the_change_was_made(
    emu: EmulatorThread, ipsms_home: Path
) -> None:
    (ipsms_home / "webhook-history.json.lock").mkdir(parents=True)  # readable, not writable
    result = ipsms(emu, "set-webhook", NUMBER, "https://example.com/sms")
    assert result.returncode == ExitCode.STATE
    assert f"IntelePeer updated {NUMBER}, but the history could not be saved" in result.stderr
    assert "Traceback" not in result.stderr
    assert emu.state.numbers[NUMBER].webhook == "https://example.com/sms"


def test_plain_http_api_base_is_warned_about() -> None:
    result = run_ipsms(
        "set-webhook",
        NUMBER,
        "https://example.com/sms",
        "--dry-run",
        "--api-base",
        "http://api.example.test",
    )
    assert result.returncode == 0
    assert "--api-base http://api.example.test is plain http" in result.stderr
    assert "--auth-url" not in result.stderr  # the default authenticate URL is https


# -- replies that are hostile or cannot be read -------------------------------------------

# ANSI colour, a right-to-left override and a lone surrogate, as JSON escapes in the reply
HOSTILE = "\\u001b[31mred\\u001b[0m \\u202eevil \\ud800 end"
HOSTILE_SHOWN = "\\e[31mred\\e[0m \\u202eevil \\ud800 end"


def assert_no_raw_controls(*texts: str) -> None:
    for text in texts:
        for raw in ("\x1b", "\u202e", "\ud800"):
            assert raw not in text, ascii(text)


@pytest.mark.parametrize(
    ("status", "body", "words"),
    [
        (400, "[" * 100_000, "nested more than 64 levels deep"),
        (201, '{"a":' * 100_000, "nested more than 64 levels deep"),
        (400, '{"code": ' + "4" * 5000 + "}", "a number with 5000 digits"),
        (400, '{"code": 400, "message": NaN}', "NaN is not JSON"),
    ],
)
def test_unreadable_json_reply_exits_7_naming_the_status(
    emu: EmulatorThread, status: int, body: str, words: str
) -> None:
    emu.state.inject_fault(Fault(status, body, "application/json", WEBHOOK_PATH))
    result = ipsms(emu, "set-webhook", NUMBER, "https://example.com/sms")
    assert result.returncode == ExitCode.API
    [line] = [x for x in result.stderr.splitlines() if x.startswith("ipsms: error:")]
    assert f"answered {status} " in line and "the reply was not readable JSON" in line
    assert words in line and len(line) < 600
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr


def test_server_reason_is_printed_escaped(emu: EmulatorThread) -> None:
    emu.state.inject_fault(
        Fault(400, f'{{"code": 400, "message": "{HOSTILE}"}}', "application/json", WEBHOOK_PATH)
    )
    result = ipsms(emu, "set-webhook", NUMBER, "https://example.com/sms")
    assert result.returncode == ExitCode.API
    assert f"400 Bad Request: {HOSTILE_SHOWN}" in result.stderr
    assert_no_raw_controls(result.stdout, result.stderr)


@pytest.mark.parametrize("fmt", ["json", "plain", "table"])
def test_207_reasons_are_printed_escaped(emu: EmulatorThread, fmt: str) -> None:
    emu.state.inject_fault(
        Fault(
            207,
            (
                f'[{{"endpoint": "{NUMBER[1:]}", "code": 201}},'  # named without the +
                f' {{"endpoint": "{OTHER}", "code": 400, "message": "{HOSTILE}"}}]'
            ),
            "application/json",
            WEBHOOK_PATH,
        )
    )
    result = ipsms(
        emu, "set-webhook", NUMBER, OTHER, "https://example.com/sms", "--format", fmt, COLUMNS="200"
    )
    assert result.returncode == ExitCode.API
    assert_no_raw_controls(result.stdout, result.stderr)
    if fmt == "json":
        rows = ndjson(result.stdout)
        assert [(r["number"], r["ok"]) for r in rows] == [(NUMBER, True), (OTHER, False)]
        assert rows[1]["reason"] == HOSTILE_SHOWN
    else:
        assert HOSTILE_SHOWN in result.stdout
    assert f"1 of 2 numbers were not updated: {OTHER}" in result.stderr


def test_cpaas_warning_once_per_api_and_account_only_for_changes(
    emu: EmulatorThread, ipsms_home: Path
) -> None:
    def warned(result: subprocess.CompletedProcess[str]) -> bool:
        return CPAAS_WARNING in result.stderr

    # Nothing changed: no warning (and nothing remembered).
    assert not warned(ipsms(emu, "set-webhook", NUMBER, "https://example.com/a", "--dry-run"))
    assert not warned(ipsms(emu, "set-webhook", MISSING, "https://example.com/a"))  # failed
    quiet = ipsms(emu, "set-webhook", NUMBER, "https://example.com/a", "-q")
    assert quiet.returncode == 0 and not warned(quiet)  # changed, but --quiet
    assert not (ipsms_home / "cpaas-warned.json").exists()
    # The first change that goes through shows it; the next ones do not.
    assert warned(ipsms(emu, "set-webhook", NUMBER, "https://example.com/b"))
    assert not warned(ipsms(emu, "set-webhook", NUMBER, "https://example.com/c"))
    assert not warned(ipsms(emu, "set-webhook", "--restore", NUMBER))
    assert not warned(ipsms(emu, "set-webhook", "--history"))
    # Another account, or another API base, is told once too.
    emu.state.add_user("second-user", "pw-2")
    other = ipsms(
        emu,
        "set-webhook",
        NUMBER,
        "https://example.com/d",
        IPSMS_USERNAME="second-user",
        IPSMS_PASSWORD="pw-2",
    )
    assert other.returncode == 0 and warned(other)
    with EmulatorThread(make_state()) as second:
        assert warned(ipsms(second, "set-webhook", NUMBER, "https://example.com/e"))
        assert not warned(ipsms(second, "set-webhook", NUMBER, "https://example.com/f"))


def test_history_names_the_api_and_restore_points_at_the_right_one(emu: EmulatorThread) -> None:
    """A regression case: after using the emulator, `--restore` without its --api-base said
    "no change in the history" while `--history` listed the change."""
    assert ipsms(emu, "set-webhook", NUMBER, "https://example.com/one").returncode == 0
    assert ipsms(emu, "set-webhook", NUMBER, "https://example.com/two").returncode == 0
    plain = ipsms(emu, "set-webhook", "--history", "--format", "plain")
    assert plain.stdout.splitlines()[-1].endswith(f"api: {emu.api_base}")
    table = ipsms(emu, "set-webhook", "--history", "--format", "table", COLUMNS="200")
    assert f"webhook changes made by ipsms through {emu.api_base}" in table.stdout
    with EmulatorThread(make_state()) as elsewhere:  # the same number, another API base
        wrong = ipsms(elsewhere, "set-webhook", "--restore", NUMBER)
        assert wrong.returncode == ExitCode.NOT_FOUND
        assert (
            f"no webhook change of {NUMBER} to restore through the API "
            f"{elsewhere.api_base}" in wrong.stderr
        )
        assert f"the history has one through {emu.api_base} (#2, " in wrong.stderr
        assert f"--api-base {emu.api_base}" in wrong.stderr
        assert elsewhere.state.requests == []
        assert ipsms(elsewhere, "set-webhook", NUMBER, "https://example.com/x").returncode == 0
        both = ipsms(emu, "set-webhook", "--history", "--format", "table", COLUMNS="200")
        assert "API" in both.stdout and emu.api_base in both.stdout
        assert elsewhere.api_base in both.stdout  # two APIs: a column says which
    right = ipsms(emu, "set-webhook", "--restore", NUMBER)
    assert right.returncode == 0, right.stderr
    assert emu.state.numbers[NUMBER].webhook == "https://example.com/one"
