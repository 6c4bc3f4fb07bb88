"""What ``ipsms.cli.click_compat`` relies on in Typer still holds, on a real Typer app: the
errors a command raises with ``standalone_mode=False``, the parameter sources, the wrapper
Typer's main loop puts on stdout at a closed pipe, and the completion classes and scripts
that ipsms's own replace."""

from __future__ import annotations

import errno
import io
import sys
from typing import Annotated, Any

import pytest
import typer
import typer.main

from ipsms.cli import click_compat as compat


def mini() -> Any:
    """A two-command Typer app built as ipsms builds its own (click's plain help, shown when
    the group runs with no arguments), with an option that has an environment variable and a
    required argument."""
    app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)

    @app.command()
    def run(
        ctx: typer.Context, name: str, port: Annotated[int, typer.Option(envvar="MINI_PORT")] = 1
    ) -> None:
        sources.append(ctx.get_parameter_source("port"))

    @app.command()
    def pipe() -> None:
        raise OSError(errno.EPIPE, "Broken pipe")

    return typer.main.get_command(app)


sources: list[Any] = []  # what `mini run` was told of its --port


def raised(args: list[str], **extra: Any) -> BaseException:
    with pytest.raises(BaseException) as info:
        mini().main(args=args, prog_name="mini", standalone_mode=False, **extra)
    return info.value


def test_the_errors_a_command_raises_are_the_classes_exported() -> None:
    assert issubclass(compat.UsageError, compat.ClickException)
    assert issubclass(typer.BadParameter, compat.UsageError)
    assert issubclass(compat.MissingParameter, typer.BadParameter)
    assert issubclass(compat.NoArgsIsHelpError, compat.UsageError)

    no_args = raised([])
    assert type(no_args) is compat.NoArgsIsHelpError
    assert "Usage: mini" in no_args.format_message()  # its message is the help

    bad = raised(["run", "x", "--port", "abc"])
    assert type(bad) is typer.BadParameter and bad.param is not None
    assert bad.ctx is not None
    assert bad.ctx.get_parameter_source("port") is compat.ParameterSource.COMMANDLINE

    missing = raised(["run"])
    assert isinstance(missing, compat.MissingParameter) and missing.param is not None

    unknown = raised(["nope"])
    assert type(unknown) is compat.UsageError


def test_parameter_sources_are_the_members_ipsms_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    names = {member.name for member in compat.ParameterSource}
    assert {"COMMANDLINE", "ENVIRONMENT", "DEFAULT_MAP", "DEFAULT"} <= names  # config resolve
    monkeypatch.setenv("MINI_PORT", "abc")
    bad = raised(["run", "x"])
    assert isinstance(bad, typer.BadParameter) and bad.ctx is not None
    assert bad.ctx.get_parameter_source("port") is compat.ParameterSource.ENVIRONMENT
    monkeypatch.delenv("MINI_PORT")
    sources.clear()
    mini().main(args=["run", "x"], prog_name="mini", standalone_mode=False)
    mini().main(
        args=["run", "x"], prog_name="mini", standalone_mode=False, default_map={"run": {"port": 7}}
    )
    assert sources == [compat.ParameterSource.DEFAULT, compat.ParameterSource.DEFAULT_MAP]
    assert issubclass(typer.Context, compat.Context)


def test_a_closed_pipe_is_exit_1_with_stdout_wrapped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    exit_ = raised(["pipe"])
    assert isinstance(exit_, SystemExit) and exit_.code == 1
    assert isinstance(sys.stdout, compat.PacifyFlushWrapper)


def test_ipsms_completion_classes_and_scripts_replace_typers() -> None:
    from typer._click.shell_completion import get_completion_class
    from typer._completion_classes import completion_init
    from typer._completion_shared import get_completion_script

    from ipsms.cli import completion

    completion_init()  # what building a Typer app registers (ipsms's replace them below)
    assert get_completion_class("zsh") is compat.ZshComplete
    assert get_completion_class("fish") is compat.FishComplete
    completion.register()
    zsh, fish = get_completion_class("zsh"), get_completion_class("fish")
    assert (
        zsh is not None
        and issubclass(zsh, compat.ZshComplete)
        and zsh.source_template == completion.ZSH
    )
    assert (
        fish is not None
        and issubclass(fish, compat.FishComplete)
        and fish.source_template == completion.FISH
    )
    names = {
        "complete_func": "_ipsms_completion",
        "prog_name": "ipsms",
        "autocomplete_var": "_IPSMS_COMPLETE",
    }
    for shell, script in (("zsh", completion.ZSH), ("fish", completion.FISH)):
        shown = get_completion_script(
            prog_name="ipsms", complete_var="_IPSMS_COMPLETE", shell=shell
        )
        assert shown == (script % names).strip()
