"""The ``ipsms`` command: the typer app, global options, the registration of every command,
and the one place errors become exits.

Exit codes are ``ipsms.errors.ExitCode``; an ``IpsmsError`` prints one ``ipsms: error: ...``
line on stderr (the settings it names worded as this CLI's flags); anything unexpected is an
internal error (exit 1) whose traceback ``--debug`` shows.

Start-up is part of the interface (``--help``, ``--version`` and every Tab press run this):
the command modules imported here are light, and each imports its engine (aiohttp, sqlite3,
rich.live) inside the function that runs it.
"""


import contextlib
import sys
import traceback
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from typing import Annotated, Any

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup

from ipsms import __version__
from ipsms.cli import (
    api_emulator,
    auth,
    listen,
    messages,
    provision,
    replay,
    set_webhook,
    simulate,
    verify,
)
from ipsms.cli.io import Environment, current, using
from ipsms.cli.options import flag
from ipsms.errors import ExitCode, IpsmsError

CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"]}


def report_error(message: str) -> None:
    from ipsms.text import printable  # on error only

    env = current()
    with contextlib.suppress(OSError, ValueError):
        env.stdout.flush()  # results first, so the error line comes after them on a terminal
    # Messages quote user input and server text: one line, no control characters.
    env.err(f"ipsms: error: {printable(message)}")


class IpsmsGroup(TyperGroup):
    """The root command: its subcommands are built when used (``LazyCommands``), and errors
    raised by any of them become one line and the documented exit code."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = LazyCommands(dict(COMMANDS))

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        """``ipsms --help`` lists every command by its help text alone: light stand-ins for
        the commands not built yet, so listing them builds none."""
        commands = self.commands
        assert isinstance(commands, LazyCommands)
        stand_ins = {name: commands.built(name) or TyperCommand(name, help=SUMMARIES[name])
                     for name in commands}
        self.commands = stand_ins
        try:
            super().format_help(ctx, formatter)
        finally:
            self.commands = commands

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except IpsmsError as exc:
            if current().debug:
                traceback.print_exc()
            report_error(exc.worded(flag))
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            current().err("ipsms: interrupted")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except Exception as exc:
            if current().debug:
                traceback.print_exc()
            report_error(f"internal error: {type(exc).__name__}: {exc} "
                         "(rerun with --debug for the traceback, and please report it)")
            raise typer.Exit(int(ExitCode.INTERNAL)) from None


app = typer.Typer(
    cls=IpsmsGroup,
    name="ipsms",
    help="Developer tool for IntelePeer Atmosphere SMS webhooks: receive, verify, record, "
    "simulate and replay inbound messages, and point numbers at your webhook.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    epilog="Examples: ipsms listen  |  ipsms simulate --fail-first 3 --speed 10  |  "
    "ipsms messages list  |  ipsms set-webhook +13038675309 https://example.com/sms. "
    "Exit codes: see README (0 ok, 2 usage, 3 state, 4 network, 5 not delivered, "
    "6 bad signature, 7 API, 8 auth, 9 tunnel, 10 not found).",
    add_completion=True,
    context_settings=CONTEXT_SETTINGS,
)


DEBUG_HELP = "Show tracebacks on errors (or set IPSMS_DEBUG=1)."
QUIET_HELP = "Hide warnings and notices on stderr (errors are always shown)."


def _set_debug(_ctx: Any, _param: Any, value: bool) -> None:
    if value:
        current().debug = True


def _set_quiet(_ctx: Any, _param: Any, value: bool) -> None:
    if value:
        current().quiet = True


def _globals(
    debug: Annotated[bool, typer.Option("--debug", callback=_set_debug, expose_value=False,
                                        help=DEBUG_HELP)] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", callback=_set_quiet,
                                        expose_value=False, help=QUIET_HELP)] = False,
) -> None:
    """Stands in for every command, to build ``--debug`` and ``--quiet`` the Typer way."""


def global_options() -> list[Any]:
    """``--debug`` and ``--quiet``, accepted after any command as well as before it
    (``ipsms replay X --debug``)."""
    single = typer.Typer(add_completion=False)
    single.command()(_globals)
    built = typer.main.get_command(single)
    return [p for p in built.params if p.name in ("debug", "quiet")]


def _with_global_options(command: Any) -> Any:
    """``command`` (and, for a group, each of its commands) with the global options added,
    before ``--help`` so help lists them last."""
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            _with_global_options(sub)
        return command
    help_at = next((i for i, p in enumerate(command.params) if p.name == "help"),
                   len(command.params))
    command.params[help_at:help_at] = global_options()
    return command


def _version(value: bool) -> None:
    if value:
        current().out(f"ipsms {__version__}\n")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", callback=_set_debug, expose_value=False,
                                        help=DEBUG_HELP)] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", callback=_set_quiet,
                                        expose_value=False, help=QUIET_HELP)] = False,
) -> None:
    """ipsms: IntelePeer SMS webhooks for developers."""
    del debug, quiet  # set by their callbacks


# -- the commands, in the order `ipsms --help` lists them --------------------------------------
# Registered explicitly, and turned into click commands only when they are needed: running
# `ipsms listen` builds `listen` alone, `ipsms --version` builds none (Typer reads every
# parameter of a command to build it; for all of them that is most of a Tab press).
def _command(function: Callable[..., Any], name: str, epilog: str) -> Callable[[], Any]:
    def build() -> Any:
        single = typer.Typer(context_settings=CONTEXT_SETTINGS, add_completion=False)
        single.command(name, epilog=epilog)(function)
        return _with_global_options(typer.main.get_command(single))
    SUMMARIES[name] = function.__doc__ or ""
    return build


def _group(sub: typer.Typer, name: str) -> Callable[[], Any]:
    def build() -> Any:
        group = typer.main.get_command(sub)
        group.name = name
        return _with_global_options(group)
    SUMMARIES[name] = str(sub.info.help or "")
    return build


SUMMARIES: dict[str, str] = {}  # each command's help, for `ipsms --help` without building it


COMMANDS: dict[str, Callable[[], Any]] = {
    "listen": _command(listen.listen, "listen", listen.EPILOG),
    "simulate": _command(simulate.simulate, "simulate", simulate.EPILOG),
    "replay": _command(replay.replay, "replay", replay.EPILOG),
    "messages": _group(messages.app, "messages"),
    "verify": _command(verify.verify, "verify", verify.EPILOG),
    "set-webhook": _command(set_webhook.set_webhook, "set-webhook", set_webhook.EPILOG),
    "provision": _command(provision.provision, "provision", provision.EPILOG),
    "auth": _group(auth.app, "auth"),
    "api-emulator": _command(api_emulator.api_emulator, "api-emulator", api_emulator.EPILOG),
}


class LazyCommands(MutableMapping[str, Any]):
    """The root group's commands: every name known up front, each command built on first
    use and kept."""

    def __init__(self, builders: dict[str, Callable[[], Any]]) -> None:
        self._builders = builders
        self._built: dict[str, Any] = {}

    def built(self, name: str) -> Any:
        """The command if it was built already, else None."""
        return self._built.get(name)

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            self._built[name] = self._builders[name]()
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._built[name] = command
        self._builders.setdefault(name, lambda: command)

    def __delitem__(self, name: str) -> None:
        self._built.pop(name, None)
        del self._builders[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._builders)

    def __len__(self) -> int:
        return len(self._builders)


def run(args: Sequence[str], env: Environment | None = None) -> int:
    """Run ``ipsms ARGS`` in this process with ``env`` (default: the process's own streams and
    variables); returns the exit code. Tests use this; ``main`` is the console script."""
    env = env or Environment.from_process()
    env.debug = env.debug or _truthy(env.getenv("IPSMS_DEBUG"))
    with using(env):
        try:
            app(args=list(args), prog_name="ipsms")
        except SystemExit as exc:
            code = exc.code
            if code is None:
                return 0
            return code if isinstance(code, int) else 1
    return 0


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def main() -> None:
    raise SystemExit(run(sys.argv[1:]))
