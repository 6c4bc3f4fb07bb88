"""``--profile``: how a profile of the settings file becomes the defaults of the command being
run.

The order is click's own: a flag, then the option's environment variable, then
``ctx.default_map``, then the option's default. A profile is turned into the ``default_map`` of
the one command being run, by the ``--profile`` option's callback (eager, so it runs before the
other options are read), after each value was checked with the option's own parser.
"""

import contextlib
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ipsms.cli.io import current
from ipsms.config import (
    DEFAULT_PROFILE,
    EXTRA_SETTINGS,
    KEYS,
    PROFILE_ENV,
    ConfigError,
    ConfigFile,
    Setting,
    check_profile_name,
    config_path,
    did_you_mean,
    load,
    mask,
)
from ipsms.errors import IpsmsError, UsageError

if TYPE_CHECKING:
    from ipsms.cli.click_compat import Context

PROFILE_META = "ipsms.profile"  # ctx.meta: the --profile given (before or after the command)
RESOLVE_META = "ipsms.resolve"  # ctx.meta: apply the profile although parsing is resilient
FROM_META = "ipsms.settings"  # ctx.meta: {param name: Setting} the profile supplied
ERROR_META = "ipsms.settings_error"  # ctx.meta: what was wrong, when parsing is resilient


# -- the profile as defaults -------------------------------------------------------------------
def key_of(param: Any) -> str | None:
    """The file's key for an option that is a setting (``--signature-mode`` ->
    ``signature_mode``), or None: options with an environment variable, and a few more."""
    if param.param_type_name != "option" or not param.opts:
        return None
    key: str = param.opts[0].lstrip("-").replace("-", "_")
    if key in KEYS and (param.envvar or key in EXTRA_SETTINGS):
        return key
    return None


def command_tree() -> dict[str, Any]:
    """``{"listen": {}, "messages": {"list": {}, ...}, ...}`` without building a command."""
    from ipsms.cli import commands

    tree: dict[str, Any] = {name: {} for name in commands.MODULES}
    for name in commands.GROUPS:
        group = commands.group_app(name)
        tree[name] = {
            (c.name or (c.callback.__name__ if c.callback else "")).replace("_", "-"): {}
            for c in group.registered_commands
        }
    return tree


def profile_option_callback(ctx: Any, _param: Any, value: str | None) -> None:
    """``--profile``: remember it; for a command that takes settings, make the profile its
    ``default_map`` (not for Tab completion: that must stay fast and quiet)."""
    if value:
        ctx.meta[PROFILE_META] = check_profile_name(value, where="--profile: ")
    if ctx.parent is None or (ctx.resilient_parsing and not ctx.meta.get(RESOLVE_META)):
        return
    path = command_path(ctx)
    if not path or path[0] == "config":
        return
    try:
        ctx.default_map, ctx.meta[FROM_META] = profile_defaults(ctx, path)
    except IpsmsError as exc:
        if not ctx.resilient_parsing:
            raise
        ctx.meta[ERROR_META] = exc  # click would swallow it: `config show --resolved` raises it


def help_defaults(ctx: "Context") -> str | None:
    """For ``--help``: make ``ctx.default_map`` the defaults the command would run with, so
    the help shows them. ``--help`` is handled as soon as it is read, often before
    ``--profile``'s callback made the profile the command's defaults. Values are masked as
    ``config show`` masks them (help is shown on screens and pasted into issues). Returns the
    line that says which options the profile set, or None when it sets none. A settings file
    that cannot be read leaves the built-in defaults and a warning: help is still shown."""
    path = command_path(ctx)
    if not path or path[0] == "config":
        return None
    if FROM_META in ctx.meta:
        defaults, used = dict(ctx.default_map or {}), ctx.meta[FROM_META]
    else:
        try:
            defaults, used = profile_defaults(ctx, path)
        except IpsmsError as exc:
            current().notice(
                f"ipsms: warning: the defaults shown leave out the settings file: {exc.message}"
            )
            return None
    if not used:
        return None
    ctx.default_map = {
        name: _shown(used[name].key, value) if name in used else value
        for name, value in defaults.items()
    }
    option: Any
    for option in ctx.command.params:  # the profile's settings are all options
        # A default described in words (``(10s)``) is shown instead of any value: describe
        # the profile's the same way. The caller puts the descriptions back.
        if option.name in used and isinstance(option.show_default, str):
            option.show_default = _described(ctx, option, ctx.default_map[option.name])
    from ipsms.text import printable

    profile, _ = chosen_profile(ctx)
    options = ", ".join(sorted(f"--{used[name].key.replace('_', '-')}" for name in used))
    where = printable(str(next(iter(used.values())).path))  # IPSMS_CONFIG can be any path
    return (
        f"Settings from profile '{profile}' of {where} apply: {options}. The defaults "
        "shown are theirs."
    )


def _shown(key: str, value: Any) -> Any:
    """A setting's value as help shows it: masked as ``config show`` masks it, and escaped
    like any text ipsms prints (a hand-edited file can hold control or bidi characters)."""
    from ipsms.text import printable

    value = mask(key, value)
    return printable(value) if isinstance(value, str) else value


def _described(ctx: "Context", param: Any, text: Any) -> str:
    if param.metavar == "DURATION":
        from ipsms.text import format_duration

        with contextlib.suppress(Exception):
            return format_duration(float(param.process_value(ctx, text)))
    return str(text)


def command_path(ctx: "Context") -> tuple[str, ...]:
    names = []
    while ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return tuple(reversed(names))


def chosen_profile(ctx: "Context") -> tuple[str, bool]:
    """The profile in effect and whether the user named it (flag or IPSMS_PROFILE)."""
    named = ctx.meta.get(PROFILE_META) or current().getenv(PROFILE_ENV)
    if named:
        return check_profile_name(
            named, where=f"{PROFILE_ENV}: " if not ctx.meta.get(PROFILE_META) else "--profile: "
        ), True
    return DEFAULT_PROFILE, False


def load_checked(ctx: "Context") -> tuple[ConfigFile, str]:
    config = load(config_path(), command_tree())
    profile, named = chosen_profile(ctx)
    if named and profile not in config.profiles:
        known = ", ".join(sorted(config.profiles)) or "none"
        raise ConfigError(
            f"no profile {profile!r} in {config.path}"
            f"{did_you_mean(profile, list(config.profiles))}",
            hint=f"profiles: {known}; add one with "
            f"`ipsms config set --profile {profile} KEY VALUE`",
        )
    if config.exists and config.has_secrets():
        from ipsms.config import readable_by_others

        if readable_by_others(config.path):
            current().notice(
                f"ipsms: warning: {config.path} holds secrets and other users "
                f"can read it; run `chmod 600 {config.path}`"
            )
    return config, profile


def profile_defaults(
    ctx: "Context", path: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, Setting]]:
    config, profile = load_checked(ctx)
    params = {key: p for p in ctx.command.params if (key := key_of(p))}
    defaults: dict[str, Any] = {}
    used: dict[str, Setting] = {}
    for key, setting in config.settings(profile, path).items():
        param = params.get(key)
        if param is None:
            if setting.table == path:  # in this command's own table: a mistake
                raise ConfigError(
                    f"{setting.where}: `ipsms {' '.join(path)}` has no setting "
                    f"{key!r}{did_you_mean(key, list(params))}",
                    hint=f"its settings: {', '.join(sorted(params)) or 'none'}",
                )
            continue  # a profile-wide key for the commands that take it
        defaults[param.name] = checked(ctx, param, setting)
        used[param.name] = setting
    return defaults, used


def checked(ctx: "Context", param: Any, setting: Setting) -> Any:
    """The file's value as the text a user would type after the flag, after the option's
    own parser accepted it (same type, same bounds)."""
    text = as_flag_text(param, setting.value)
    if isinstance(text, str) and text.startswith("~") and param.type_descriptor.annotation is Path:
        text = str(Path(text).expanduser())
    if text is None:
        raise ConfigError(
            f"{setting.where}: {setting.key} must be "
            f"{_wanted(param)}, not {_toml_type(setting.value)}"
        )
    try:
        value = param.process_value(ctx, text)
        if value is not None and setting.key in _AFTER_PARSE:
            _AFTER_PARSE[setting.key](value)
    except (typer.BadParameter, UsageError) as exc:
        message = getattr(exc, "message", None) or str(exc)
        message = message.removeprefix("Value error, ")
        raise ConfigError(
            f"{setting.where}: {setting.key} = {mask(setting.key, text)!r}: "
            f"{message[:1].lower()}{message[1:]}"
        ) from None
    except Exception as exc:  # click's own usage errors
        from ipsms.cli.click_compat import ClickException

        if not isinstance(exc, ClickException):
            raise
        raise ConfigError(f"{setting.where}: {setting.key}: {exc.format_message()}") from None
    return text


def _size(text: str) -> None:
    from ipsms.cli.options import parse_size

    parse_size(text)


def _variant(text: str) -> None:
    from ipsms.signature import parse_variant

    parse_variant(text)


def _credentials(text: str) -> None:
    from ipsms.cli.options import basic_auth_credentials as credentials

    credentials(text)


def _url(text: str) -> None:
    from ipsms.deliver.engine import validate_url

    validate_url(text)


# Options whose text the command reads further after typer's parser (sizes, HMAC variants,
# URLs): a value the command would refuse is refused when written, not when used.
_AFTER_PARSE: dict[str, Any] = {
    "max_body": _size,
    "hmac": _variant,
    "basic_auth": _credentials,
    "forward_to": _url,
    "to": _url,
}


def as_flag_text(param: Any, value: Any) -> Any:
    """``9000`` -> ``"9000"`` for an integer option; None when the TOML type cannot be the
    option's (``port = true``, ``port = "abc"`` is left to the parser to refuse)."""
    annotation = param.type_descriptor.annotation
    if annotation is bool:
        return value if isinstance(value, bool) else None
    if isinstance(value, bool):
        return None
    if annotation is int:
        return str(value) if isinstance(value, int | str) else None
    if annotation is float:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return repr(value) if isinstance(value, float) else str(value)
    return value if isinstance(value, str) else None


def _wanted(param: Any) -> str:
    annotation = param.type_descriptor.annotation
    if annotation is bool:
        return "true or false"
    if annotation is int:
        return "a whole number"
    if annotation is float:
        return 'a number or a duration in quotes ("10s")'
    return "a string in quotes"


def _toml_type(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    return {int: "a whole number", float: "a number", str: "a string"}.get(type(value), "that")


# -- the commands (each also takes the global --profile) -------------------------------------
