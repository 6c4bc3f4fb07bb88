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
import functools
import itertools
import re
import sys
import textwrap
import traceback
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from typing import Annotated, Any

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup

from ipsms import __version__
from ipsms.cli import commands
from ipsms.cli import help as help_text
from ipsms.cli.io import Environment, current, ignore_stop_signals, using
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
        stand_ins = {
            name: commands.built(name) or TyperCommand(name, help=SUMMARIES[name])
            for name in commands
        }
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
        except BrokenPipeError:  # `ipsms ... | head -1`: the reader has what it wanted
            current().silence_stdout()
            raise typer.Exit(0) from None
        except IpsmsError as exc:
            if current().debug:
                traceback.print_exc()
            report_error(exc.worded(flag))
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            ignore_stop_signals()  # a key held down: the rest find it stopping already
            current().err("ipsms: interrupted")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except Exception as exc:
            if current().debug:
                traceback.print_exc()
            report_error(
                f"internal error: {type(exc).__name__}: {exc} "
                "(rerun with --debug for the traceback, and please report it)"
            )
            raise typer.Exit(int(ExitCode.INTERNAL)) from None


app = typer.Typer(
    rich_markup_mode=None,  # click's plain help: reads well at 80 columns and in a pipe
    cls=IpsmsGroup,
    name="ipsms",
    help="Developer tool for IntelePeer Atmosphere SMS webhooks: receive, verify, record, "
    "simulate and replay inbound messages, and point numbers at your webhook.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    epilog=help_text.epilog(
        "ipsms listen",
        "ipsms simulate --fail-first 3 --speed 10",
        "ipsms messages list",
        "ipsms set-webhook +13038675309 https://example.com/sms",
        exit_codes=help_text.ALL_EXIT_CODES,
    ),
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


PROFILE_HELP = "Use this profile of the settings file (or set IPSMS_PROFILE; default: default)."


def _use_profile(ctx: Any, param: Any, value: str | None) -> None:
    """``--profile``: the settings code is imported only when a command runs (not for
    ``--version``, whose start-up is measured)."""
    from ipsms.cli import profiles

    profiles.profile_option_callback(ctx, param, value)


# The global options, declared once: on the root (`ipsms --debug listen`) and, through
# `_globals`, on every command (`ipsms listen --debug`).
DebugOption = Annotated[
    bool, typer.Option("--debug", callback=_set_debug, expose_value=False, help=DEBUG_HELP)
]
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", callback=_set_quiet, expose_value=False, help=QUIET_HELP)
]
ProfileOption = Annotated[
    str | None,
    typer.Option(
        "--profile",
        metavar="NAME",
        is_eager=True,
        callback=_use_profile,
        expose_value=False,
        help=PROFILE_HELP,
    ),
]


def _globals(
    debug: DebugOption = False, quiet: QuietOption = False, profile: ProfileOption = None
) -> None:
    """Stands in for every command, to build ``--debug``, ``--quiet`` and ``--profile`` the
    Typer way."""


@functools.cache
def global_options() -> tuple[Any, ...]:
    """``--debug``, ``--quiet`` and ``--profile``, accepted after any command as well as before
    it (``ipsms replay X --debug``). Built once and shared: a parameter holds no state of a
    run. ``--profile``'s callback turns the profile into the command's defaults."""
    single = typer.Typer(add_completion=False, rich_markup_mode=None)
    single.command()(_globals)
    built = typer.main.get_command(single)
    return tuple(p for p in built.params if p.name in ("debug", "quiet", "profile"))


def _with_global_options(command: Any) -> Any:
    """``command`` (and, for a group, each of its commands) with the global options added,
    before ``--help`` so help lists them last."""
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            _with_global_options(sub)
        return command
    help_at = next(
        (i for i, p in enumerate(command.params) if p.name == "help"), len(command.params)
    )
    command.params[help_at:help_at] = global_options()
    for param in command.params:
        _name_value(param)
    _help_with_settings(command)
    return command


def _help_with_settings(command: Any) -> None:
    """``command --help`` shows the defaults it would run with: the profile's settings where
    it has some, and a line saying which (``ipsms.cli.profiles.help_defaults``)."""
    plain = command.format_help

    def format_help(ctx: Any, formatter: Any) -> None:
        from ipsms.cli.profiles import help_defaults

        described = [
            (param, param.show_default)
            for param in command.params
            if hasattr(param, "show_default")
        ]
        try:
            note = help_defaults(ctx)
            plain(ctx, formatter)
        finally:
            for param, show_default in described:
                param.show_default = show_default
        if note:  # wrapped at spaces only: an option or a path is never cut at a hyphen
            formatter.write_paragraph()
            indent = " " * formatter.current_indent
            for line in textwrap.wrap(
                note,
                max(formatter.width - len(indent), 20),
                break_on_hyphens=False,
                break_long_words=False,
            ):
                formatter.write(f"{indent}{line}\n")

    command.format_help = format_help
    plain_parse = command.parse_args

    def parse_args(ctx: Any, args: list[str]) -> Any:
        # `listen --help --profile work`: --help is handled when it is read, before
        # --profile's callback runs; the help should show that profile's defaults all the same.
        words = list(itertools.takewhile(lambda word: word != "--", args))
        if "--help" in words or "-h" in words:
            from ipsms.cli.profiles import PROFILE_META

            for word, after in zip(words, [*words[1:], None], strict=True):
                if word == "--profile" and after is not None:
                    ctx.meta[PROFILE_META] = after
                elif word.startswith("--profile="):
                    ctx.meta[PROFILE_META] = word.partition("=")[2]
        return plain_parse(ctx, args)

    command.parse_args = parse_args


# An option's value in help, when its declaration names none: ``--port N``, not ``<int range>``.
_VALUE_NAMES = {
    "<int>": "N",
    "<int range>": "N",
    "<float>": "N",
    "<float range>": "N",
    "<path>": "PATH",
}
_WORD_NAMES = {
    "base": "URL",
    "url": "URL",
    "body": "SIZE",
    "authtoken": "TOKEN",
    "message": "TEXT",
    "from": "TN",
    "to": "TN",
    "domain": "DOMAIN",
}


def _name_value(param: Any) -> None:
    if param.metavar is None and param.param_type_name == "option" and not param.is_flag:
        shown = param.display_type(None)
        if shown in _VALUE_NAMES:
            param.metavar = _VALUE_NAMES[shown]
        elif shown == "<str>":
            word = param.opts[0].lstrip("-").split("-")[-1]
            param.metavar = _WORD_NAMES.get(word, word.upper())
    elif param.param_type_name == "argument":
        param.metavar = param.metavar or (param.name or "").upper()
        # Typer prints an argument's type after its name (``URL <str>``); the name says it.
        param.display_type_rich = lambda ctx=None: None
    if (
        param.metavar == "DURATION"
        and isinstance(param.default, (int, float))
        and param.show_default is not False
        and not isinstance(param.show_default, str)
    ):
        from ipsms.text import format_duration

        param.show_default = format_duration(float(param.default))


def _version(value: bool) -> None:
    if value:
        current().out(f"ipsms {__version__}\n")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
    debug: DebugOption = False,
    quiet: QuietOption = False,
    profile: ProfileOption = None,
) -> None:
    """ipsms: IntelePeer SMS webhooks for developers."""
    del debug, quiet, profile  # set by their callbacks


# -- the commands, in the order `ipsms --help` lists them --------------------------------------
# Registered explicitly, and turned into click commands only when they are needed: running
# `ipsms listen` builds `listen` alone, `ipsms --version` builds none (Typer reads every
# parameter of a command to build it; for all of them that is most of a Tab press).
def _command(name: str) -> Callable[[], Any]:
    """``name``'s builder; its module (``ipsms.cli.MODULE``, whose function has the module's
    name) is imported only when the command is built: `ipsms --version` imports none."""

    def build() -> Any:
        cli = commands.module(name)
        function = commands.MODULES[name]
        single = typer.Typer(
            context_settings=CONTEXT_SETTINGS, add_completion=False, rich_markup_mode=None
        )
        single.command(name, epilog=cli.EPILOG, short_help=SUMMARIES[name])(getattr(cli, function))
        return _with_global_options(typer.main.get_command(single))

    return build


def _group(name: str) -> Callable[[], Any]:
    def build() -> Any:
        group = typer.main.get_command(commands.group_app(name))
        group.name = name
        group.short_help = SUMMARIES[name]
        return _with_global_options(group)

    return build


# Each command's line in `ipsms --help`, short enough for 80 columns; the command's own help
# (its docstring) says more.
SUMMARIES: dict[str, str] = {
    "listen": "Receive webhooks locally: verify, record and show each one.",
    "simulate": "Deliver a message as IntelePeer does, retries included.",
    "replay": "Deliver recorded messages again, byte for byte.",
    "check": "Check a webhook against IntelePeer's rules: a report card.",
    "messages": "List, show, export or clear the recorded messages.",
    "inspect": "Open the web inspector over the recorded messages.",
    "verify": "Check a webhook's signature against the secret.",
    "set-webhook": "Point numbers' inbound SMS webhook at a URL.",
    "provision": "Enable SMS on a long code.",
    "auth": "Store, check and remove the IntelePeer API credentials.",
    "api-emulator": "Run a local emulation of IntelePeer's API.",
    "config": "Show and change settings and profiles in the config file.",
}


COMMANDS: dict[str, Callable[[], Any]] = {
    name: (_group if name in commands.GROUPS else _command)(name) for name in commands.MODULES
}


def app_command() -> Any:
    """The root click group (its commands built as they are used)."""
    return typer.main.get_command(app)


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
            return _main(args)
        except SystemExit as exc:  # shell completion exits this way
            code = exc.code
            if code is None:
                return 0
            return code if isinstance(code, int) else 1


def _main(args: Sequence[str]) -> int:
    """Click's main loop without its own error printing: usage errors become the same one
    ``ipsms: error: ...`` line as every other error, and a reader that goes away
    (``ipsms --help | head -1``) ends the command quietly, whatever was printing."""
    from ipsms.cli.click_compat import NoArgsIsHelpError, UsageError

    env = current()
    try:
        command = typer.main.get_command(app)
        if (
            any(name in env.variables for name in ("_IPSMS_COMPLETE", "_TYPER_COMPLETE_ARGS"))
            or "--install-completion" in args
            or "--show-completion" in args
        ):
            from ipsms.cli import completion

            completion.register()
        result = command.main(args=list(args), prog_name="ipsms", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except NoArgsIsHelpError as exc:  # `ipsms`, `ipsms messages`: the help on stderr, exit 2
        with contextlib.suppress(BrokenPipeError):
            env.err(exc.format_message())
        return int(ExitCode.USAGE)
    except UsageError as exc:
        report_error(_usage_message(exc, args))
        return int(ExitCode.USAGE)
    except typer.Abort:
        env.err("ipsms: aborted")
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        env.silence_stdout()
        return 0
    except SystemExit as exc:
        # Click's own answer to a reader that went away while it printed help: exit 1, with
        # stdout wrapped so the exit flush is quiet. ipsms ends quietly with 0 instead.
        from ipsms.cli.click_compat import PacifyFlushWrapper

        if exc.code == 1 and isinstance(sys.stdout, PacifyFlushWrapper):
            env.silence_stdout()
            return 0
        raise


def _usage_message(exc: Any, args: Sequence[str]) -> str:
    """``--port: not a valid integer ('abc'); see `ipsms listen --help``` from click's error:
    the option first, in the words a user typed, then what to read."""
    from ipsms.cli.click_compat import MissingParameter, ParameterSource

    param = getattr(exc, "param", None)
    if (
        isinstance(exc, typer.BadParameter)
        and not isinstance(exc, MissingParameter)
        and param is not None
    ):
        name = param.opts[0] if param.param_type_name == "option" else (param.name or "").upper()
        if (
            exc.ctx is not None
            and param.name
            and exc.ctx.get_parameter_source(param.name) is ParameterSource.ENVIRONMENT
        ):
            name += f" (from {param.envvar})"
        detail = exc.message.removeprefix("Value error, ")
        message = f"{name}: {detail[:1].lower()}{detail[1:]}"
    elif isinstance(exc, MissingParameter) and param is not None:
        message = f"missing {param.param_type_name} {(param.name or '').upper()}"
    else:
        message = exc.format_message()
        message = message[:1].lower() + message[1:]
    message = re.sub(r"\. Did you mean (.*)\?$", r"; did you mean \1?", message)
    where = exc.ctx.command_path if exc.ctx is not None else _command_path(args)
    return f"{message.rstrip('.')}; see `{where} --help`"


def _command_path(args: Sequence[str]) -> str:
    """``ipsms auth login`` from the words of ``args`` that name a command or group."""
    path = ["ipsms"]
    words = [a for a in args if not a.startswith("-")]
    if words and words[0] in COMMANDS:
        path.append(words[0])
        group = commands.group_app(words[0]) if words[0] in commands.GROUPS else None
        if (
            group is not None
            and len(words) > 1
            and any(
                (c.name or c.callback.__name__ if c.callback else "") == words[1]
                for c in group.registered_commands
            )
        ):
            path.append(words[1])
    return " ".join(path)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def main() -> None:
    env = Environment.from_process(exits_after=True)
    try:
        code = run(sys.argv[1:], env)
    except KeyboardInterrupt:  # one more, while a command was ending on its own
        code = int(ExitCode.INTERRUPTED)
    ignore_stop_signals()
    raise SystemExit(code)
