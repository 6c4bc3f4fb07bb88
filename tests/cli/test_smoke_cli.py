import pytest

from ipsms import __version__
from tests.conftest import run_ipsms


def test_version() -> None:
    result = run_ipsms("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"ipsms {__version__}"


def test_commands_are_built_only_when_used(capsys: pytest.CaptureFixture[str]) -> None:
    """`ipsms listen` builds listen alone; the root still knows every name (help, typos)."""
    import typer.main

    from ipsms.cli.app import COMMANDS, LazyCommands, app

    group = typer.main.get_command(app)
    commands = group.commands  # type: ignore[attr-defined]
    assert isinstance(commands, LazyCommands)
    assert list(commands) == list(COMMANDS)
    assert commands._built == {}
    import typer.core

    with typer.core._click.Context(group, info_name="ipsms") as ctx:
        text = group.get_help(ctx) + capsys.readouterr().out  # rich prints it
    assert "api-emulator" in text and "Receive webhooks locally" in text
    assert commands._built == {}  # the root's help lists them without building them
    assert commands["listen"].name == "listen"
    assert list(commands._built) == ["listen"]


def test_only_the_root_offers_shell_completion_setup() -> None:
    assert "--install-completion" in run_ipsms("--help").stdout
    for args in (
        ["listen", "-h"],
        ["messages", "-h"],
        ["auth", "status", "-h"],
        ["set-webhook", "--help"],
    ):
        result = run_ipsms(*args)
        assert result.returncode == 0, args
        assert (
            f"Usage: ipsms {' '.join(a for a in args if not a.startswith('-'))}" in result.stdout
        ), args
        assert "--install-completion" not in result.stdout, args


def test_a_mistyped_command_is_a_usage_error_with_a_suggestion() -> None:
    result = run_ipsms("lisen")
    assert result.returncode == 2
    assert result.stderr == (
        "ipsms: error: no such command 'lisen'; did you mean 'listen'?; see `ipsms --help`\n"
    )
