"""Commands run in-process through an injectable Environment, and read durations one way.

The Environment decides what a terminal is and which variables exist, so these run without a
pty or a subprocess; what they check is what a user sees: the format chosen for a terminal or
a pipe, variables taken from the environment given, and one grammar for every duration."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ipsms.errors import ExitCode
from tests.conftest import cli_env, run_ipsms

BODY = (
    '{"refid":"ABCDEF1234567890ABCDEF1234567890","from":"+13035550100",'
    '"to":"+13038675309","message":"hi","signature":"s3cret"}'
)


@pytest.fixture
def body_file(tmp_path: Path) -> Path:
    path = tmp_path / "body.json"
    path.write_text(BODY)
    return path


def test_a_terminal_gets_words_and_a_pipe_gets_ndjson(body_file: Path) -> None:
    env = cli_env(IPSMS_SECRET="s3cret")
    piped = run_ipsms("verify", str(body_file), env=env)
    on_terminal = run_ipsms("verify", str(body_file), env=env, tty=True)
    assert piped.returncode == on_terminal.returncode == 0
    assert json.loads(piped.stdout)["verdict"] == "valid"
    assert on_terminal.stdout.startswith("valid")
    assert not on_terminal.stdout.lstrip().startswith("{")


def test_variables_come_from_the_environment_given_not_the_process(body_file: Path) -> None:
    before = dict(os.environ)
    without = run_ipsms("verify", str(body_file))
    assert without.returncode == ExitCode.USAGE
    assert "no secret to verify with" in without.stderr
    with_secret = run_ipsms("verify", str(body_file), env=cli_env(IPSMS_SECRET="s3cret"))
    assert with_secret.returncode == 0
    assert dict(os.environ) == before  # the run left the process's variables as they were


def test_stdin_is_the_environment_s() -> None:
    result = run_ipsms("verify", "-", input=BODY, env=cli_env(IPSMS_SECRET="wrong"))
    assert result.returncode == ExitCode.SIGNATURE_INVALID
    assert json.loads(result.stdout)["verdict"] == "invalid"


def test_a_terminal_stdin_with_nothing_given_is_not_read(body_file: Path) -> None:
    result = run_ipsms("verify", env=cli_env(IPSMS_SECRET="s3cret"), tty=True)
    assert result.returncode == ExitCode.USAGE
    assert "nothing to verify" in result.stderr


@pytest.mark.parametrize("text", ["500ms", "10s", "5m", "2h", "1d", "1w", "90", ".5"])
def test_every_duration_option_reads_the_same_grammar(text: str) -> None:
    # Reading the value comes before the store is opened: a missing store (not a usage
    # error) proves the duration was read.
    for args in (["messages", "list", "--since", text], ["messages", "export", "--since", text]):
        result = run_ipsms(*args)
        assert result.returncode == ExitCode.NOT_FOUND, (args, result.stderr)
    for args in (
        ["simulate", "--timeout", text, "--payload", "/nonexistent"],
        ["set-webhook", "--timeout", text, "--history"],
    ):
        result = run_ipsms(*args)
        assert result.returncode != ExitCode.USAGE or "payload" in result.stderr, (
            args,
            result.stderr,
        )


@pytest.mark.parametrize(
    "args",
    [
        ["messages", "list", "--since"],
        ["messages", "export", "--since"],
        ["replay", "--all", "--since"],
        ["simulate", "--timeout"],
        ["replay", "x", "--timeout"],
        ["set-webhook", "--history", "--timeout"],
        ["provision", "+13038675309", "--timeout"],
        ["listen", "--read-timeout"],
    ],
)
@pytest.mark.parametrize("bad", ["5 parsecs", "1y", "-1s", "1e3", "\U0001f600", "99999999999w"])
def test_a_bad_duration_is_a_usage_error_naming_the_option(args: list[str], bad: str) -> None:
    result = run_ipsms(*args, bad)
    assert result.returncode == ExitCode.USAGE
    assert result.stderr.startswith(f"ipsms: error: {args[-1]}: ")  # one line naming the option
    assert result.stderr.count("\n") == 1 and f"`ipsms {args[0]}" in result.stderr
    assert "Traceback" not in result.stderr


def test_zero_timeouts_are_refused_and_read_timeout_is_bounded() -> None:
    assert run_ipsms("simulate", "--timeout", "0s").returncode == ExitCode.USAGE
    too_long = run_ipsms("listen", "--read-timeout", "2h")
    assert too_long.returncode == ExitCode.USAGE
    assert "between 100ms and 1h" in too_long.stderr


def test_the_cli_s_signature_modes_are_the_core_s() -> None:
    from ipsms.cli.options import SignatureMode
    from ipsms.signature import Mode

    assert [m.value for m in SignatureMode] == [m.value for m in Mode]
