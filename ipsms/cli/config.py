"""``ipsms config``: show, get, set and unset settings and profiles in the settings file
(the profile's effect on a command is ``ipsms.cli.profiles``)."""

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ipsms.cli.help import epilog
from ipsms.cli.io import current
from ipsms.cli.options import FormatOption, resolve_format
from ipsms.config import (
    KEYS,
    ConfigError,
    ConfigFile,
    Setting,
    config_path,
    did_you_mean,
    mask,
)
from ipsms.errors import NotFoundError, UsageError

if TYPE_CHECKING:
    from typer import Context

from ipsms.cli.profiles import (
    ERROR_META,
    FROM_META,
    PROFILE_META,
    RESOLVE_META,
    checked,
    chosen_profile,
    command_tree,
    key_of,
    load_checked,
)

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    help="Settings and profiles in the config file: flag > environment "
    "variable > profile > default.",
    epilog=epilog(
        "ipsms config set port 9000",
        "ipsms config set --profile work listen.forward_to http://127.0.0.1:3000/sms",
        "ipsms --profile work listen",
        "ipsms config show --resolved listen --port 9100",
        exit_codes=(
            (0, "success"),
            (2, "a bad key, value or settings file (file:line named)"),
            (3, "the settings file cannot be read or written"),
            (10, "get/unset: the key is not set"),
        ),
    ),
)


@app.command(
    "path",
    short_help="Print where the settings file is.",
    epilog=epilog("ipsms config path", '$EDITOR "$(ipsms config path)"'),
)
def path_command() -> None:
    """Print where the settings file is (IPSMS_CONFIG, else IPSMS_HOME/config.toml, else the
    user config dir); it need not exist yet."""
    current().out(f"{config_path()}\n")


def _split_key(dotted: str) -> tuple[tuple[str, ...], str]:
    """``listen.port`` -> (("listen",), "port"), checked against the commands and keys."""
    *table, key = dotted.split(".")
    node: dict[str, Any] = command_tree()
    for name in table:
        if name not in node:
            raise UsageError(
                f"unknown command {name!r} in {dotted!r}{did_you_mean(name, list(node))}",
                hint=f"commands: {', '.join(node)}",
            )
        node = node[name]
    if key not in KEYS:
        raise UsageError(
            f"unknown key {key!r}{did_you_mean(key, KEYS)}",
            hint=f"known keys: {', '.join(sorted(KEYS))}",
        )
    return tuple(table), key


def _params_for(ctx: "Context", table: tuple[str, ...], key: str) -> list[tuple[str, Any]]:
    """Every (command path, option) the key sets at ``table``: a profile-wide key sets it in
    every command that takes it."""
    from ipsms.cli import commands

    group: Any = ctx.find_root().command
    found = []
    for name in commands.MODULES:
        if table and name != table[0]:
            continue
        command = group.commands[name]
        leaves = command.commands.items() if hasattr(command, "commands") else [(None, command)]
        for sub, leaf in leaves:
            if len(table) > 1 and sub != table[1]:
                continue
            for param in leaf.params:
                if key_of(param) == key:
                    found.append((" ".join(n for n in (name, sub) if n), param))
    return found


@app.command(
    "get",
    short_help="Print a key's value in the profile.",
    epilog=epilog(
        "ipsms config get port",
        "ipsms config get --profile work listen.port",
        exit_codes=((0, "success"), (10, "the key is not set")),
    ),
)
def get(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(metavar="[COMMAND.]KEY", help="port, listen.port, ...")],
) -> None:
    """Print a key's value in the profile (unmasked: this is for scripts); exit 10 if it is
    not set."""
    table, name = _split_key(key)
    config, chosen = load_checked(ctx)
    setting = config.settings(chosen, table).get(name)
    if setting is None or setting.table != table:
        raise NotFoundError(f"{key} is not set in profile {chosen!r} of {config.path}")
    value = setting.value
    current().out(f"{str(value).lower() if isinstance(value, bool) else value}\n")


@app.command(
    "set",
    short_help="Write a key into the profile, checked like its flag.",
    epilog=epilog(
        "ipsms config set port 9000",
        "ipsms config set signature_mode hmac",
        "ipsms config set --profile work listen.read_timeout 30s",
    ),
)
def set_command(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(metavar="[COMMAND.]KEY", help="port, listen.port, ...")],
    value: Annotated[
        str, typer.Argument(metavar="VALUE", help="As you would type it after the flag.")
    ],
) -> None:
    """Write KEY = VALUE into the profile (default: the one named default), checked with the
    option's own parser. The file is created 0600."""
    from ipsms.config import set_value

    table, name = _split_key(key)
    chosen, _ = chosen_profile(ctx)
    params = _params_for(ctx, table, name)
    if not params:
        where = f"`ipsms {' '.join(table)}`" if table else "no command"
        raise UsageError(f"{where} has no setting {name!r}")
    stored = _typed(params[0][1], value)
    for command, param in params:
        try:
            checked(ctx, param, Setting(name, stored, chosen, table, config_path(), None))
        except ConfigError as exc:
            raise UsageError(
                f"{key}: not a value for `ipsms {command}` {param.opts[0]}: "
                f"{exc.message.split(': ', 2)[-1]}"
            ) from None
    set_value(config_path(), chosen, table, name, stored)
    current().notice(f"ipsms config: {key} set in profile {chosen!r} of {config_path()}")


def _typed(param: Any, text: str) -> Any:
    """The TOML value to store for ``text``: a number for a numeric option (so the file reads
    naturally), true/false for a switch, else the text."""
    annotation = param.type_descriptor.annotation
    if annotation is bool:
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise UsageError(f"{text!r} is not true or false")
    if annotation is int:
        try:
            return int(text)
        except ValueError:
            return text  # the parser's error names the option
    if annotation is float:
        try:
            number = float(text)
        except ValueError:
            return text  # a duration: "10s"
        return (
            int(number)
            if number.is_integer() and "." not in text and math.isfinite(number)
            else number
        )
    return text


@app.command(
    "unset",
    short_help="Remove a key from the profile.",
    epilog=epilog(
        "ipsms config unset port",
        "ipsms config unset --profile work listen.port",
        exit_codes=((0, "success"), (10, "the key was not set")),
    ),
)
def unset(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(metavar="[COMMAND.]KEY", help="port, listen.port, ...")],
) -> None:
    """Remove KEY from the profile; exit 10 if it was not set."""
    from ipsms.config import unset_value

    table, name = _split_key(key)
    chosen, _ = chosen_profile(ctx)
    if not unset_value(config_path(), chosen, table, name):
        raise NotFoundError(f"{key} is not set in profile {chosen!r} of {config_path()}")
    current().notice(f"ipsms config: {key} removed from profile {chosen!r}")


@app.command(
    "show",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    short_help="Print the settings (masked), or where each value comes from.",
    epilog=epilog(
        "ipsms config show",
        "ipsms config show --profile work",
        "ipsms config show --resolved",
        "ipsms --profile work config show --resolved listen --port 9100",
    ),
)
def show(
    ctx: typer.Context,
    resolved: Annotated[
        bool,
        typer.Option(
            "--resolved",
            help="Each effective value of COMMAND (default: every command) and "
            "where it comes from: flag, env VAR, profile NAME in FILE, or default.",
        ),
    ] = False,
    command: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[COMMAND [FLAGS...]]",
            help="With --resolved: a command line to resolve, e.g. listen --port 9000.",
        ),
    ] = None,
    output_format: FormatOption = None,
) -> None:
    """Print the profile's settings (or, with no profile named, every profile), secrets
    masked."""
    from ipsms.text import dumps

    as_json = resolve_format(output_format).value == "json"
    if resolved:
        rows = _resolve_all(ctx, list(command or []))
        for path, key, value, source in rows:
            if as_json:
                current().out(
                    dumps({"command": path, "key": key, "value": value, "source": source}) + "\n"
                )
            else:
                shown = "(none)" if value is None else value
                current().out(f"{path}: {key} = {shown}  ({source})\n")
        return
    if command:
        raise UsageError("COMMAND goes with --resolved")
    config, chosen = load_checked(ctx)
    _, named = chosen_profile(ctx)
    names = [chosen] if named else list(config.profiles)
    if not any(_all_settings(config, name) for name in names):
        _say_nothing_is_set(config, chosen if named else None)
    for name in names:
        for setting in _all_settings(config, name):
            value = mask(setting.key, setting.value)
            if as_json:
                current().out(
                    dumps(
                        {
                            "profile": name,
                            "key": setting.dotted.split(".", 2)[2],
                            "value": value,
                            "line": setting.line,
                        }
                    )
                    + "\n"
                )
            else:
                shown = (
                    str(value).lower()
                    if isinstance(value, bool)
                    else value
                    if isinstance(value, int | float)
                    else dumps(value)
                )
                current().out(f"{setting.dotted} = {shown}\n")


def _say_nothing_is_set(config: ConfigFile, profile: str | None) -> None:
    """On stderr: why ``config show`` prints nothing, and where the settings would be."""
    from ipsms.text import printable

    where = printable(str(config.path))
    if not config.exists:
        current().notice(
            f"ipsms config: no settings file: {where} does not exist; "
            "`ipsms config set KEY VALUE` creates it (IPSMS_CONFIG names "
            "another file)"
        )
    else:
        current().notice(
            f"ipsms config: no settings in {where}"
            + (f" for profile {printable(profile)!r}" if profile else "")
        )


def _all_settings(config: ConfigFile, profile: str) -> list[Setting]:
    out: list[Setting] = []

    def walk(node: dict[str, Any], table: tuple[str, ...]) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, (*table, key))
            else:
                out.append(
                    Setting(
                        key, value, profile, table, config.path, config.line_of(profile, table, key)
                    )
                )

    walk(config.profiles.get(profile, {}), ())
    return out


def _resolve_all(ctx: "Context", words: list[str]) -> list[tuple[str, str, Any, str]]:
    """(command, key, value, source) for each setting of the command line ``words`` (or of
    every command), resolved by click as a real run would be."""
    group: Any = ctx.find_root().command
    tree = command_tree()
    if words and words[0] not in tree:
        raise UsageError(
            f"no command {words[0]!r}{did_you_mean(words[0], list(tree))}",
            hint=f"commands: {', '.join(tree)}",
        )
    if words and tree[words[0]] and (len(words) < 2 or words[1] not in tree[words[0]]):
        raise UsageError(f"`{words[0]}` needs one of its commands: {', '.join(tree[words[0]])}")
    targets: list[tuple[tuple[str, ...], list[str]]] = []
    if words:
        depth = 2 if tree[words[0]] else 1
        targets.append((tuple(words[:depth]), words[depth:]))
    else:
        for name, subs in tree.items():
            targets.extend((((name, sub) if sub else (name,)), []) for sub in (subs or [None]))
    rows = []
    for path, args in targets:
        if path[0] == "config":
            continue
        top = typer.Context(group, info_name="ipsms", resilient_parsing=True)
        top.meta.update({k: v for k, v in ctx.meta.items() if k == PROFILE_META})
        top.meta[RESOLVE_META] = True
        parent, command = top, group.commands[path[0]]
        if len(path) > 1:
            parent = typer.Context(command, info_name=path[0], parent=top, resilient_parsing=True)
            command = command.commands[path[1]]
        sub = command.make_context(path[-1], list(args), parent=parent, resilient_parsing=True)
        if ERROR_META in sub.meta:
            raise sub.meta[ERROR_META]
        used: dict[str, Setting] = sub.meta.get(FROM_META, {})
        for param in command.params:
            key = key_of(param)
            if key is None or param.name is None:
                continue
            # click's ParameterSource, by its member's name (a command module imports only
            # the shared modules of cli/, so not ipsms.cli.click_compat)
            source = sub.get_parameter_source(param.name)
            kind = source.name if source is not None else None
            value = sub.params.get(param.name)
            value = getattr(value, "value", value)  # an enum as its word
            if isinstance(value, Path):
                value = str(value)
            if kind == "COMMANDLINE":
                where = f"flag {param.opts[0]}"
            elif kind == "ENVIRONMENT":
                where = f"env {param.envvar}"
            elif kind == "DEFAULT_MAP" and param.name in used:
                s = used[param.name]
                where = f"profile {s.profile} in {s.path}" + (f":{s.line}" if s.line else "")
            else:
                where = "default"
            rows.append((" ".join(path), key, None if value is None else mask(key, value), where))
    return rows
