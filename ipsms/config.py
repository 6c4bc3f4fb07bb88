"""The settings file: named profiles of option values, in TOML.

Where it is: ``$IPSMS_CONFIG`` (the file itself), else ``$IPSMS_HOME/config.toml``, else
``config.toml`` in the user config dir. Its shape::

    [profiles.default]          # used when no profile is named
    secret = "s3cret"
    format = "json"

    [profiles.work]
    api_base = "https://staging.example.com"
    [profiles.work.listen]      # only for `ipsms listen`
    port = 9000

A key is a long flag without its dashes (``--signature-mode`` -> ``signature_mode``); at the
top of a profile it applies to every command that takes the flag as a setting, in a command's
table (``[profiles.NAME.COMMAND]``, ``[profiles.NAME.messages.list]``) to that command alone.

This module reads (``tomllib``), checks the file's structure and writes it back (``tomlkit``,
which keeps the user's comments and order). Whether a value suits its option (a port in range,
a known signature mode) is the CLI's to check, with the option's own parser.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ipsms.errors import StateError, UsageError

CONFIG_ENV = "IPSMS_CONFIG"
PROFILE_ENV = "IPSMS_PROFILE"
FILENAME = "config.toml"
DEFAULT_PROFILE = "default"
MAX_BYTES = 1024 * 1024  # a settings file is a few hundred bytes; a bigger one is a mistake
PROFILE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
PROFILE_RULE = "letters, digits, '_', '-', '.'; at most 64, starting with a letter or digit"

# Every key the file can hold: each option that reads an environment variable, plus the
# tunnel and forwarding options (a test keeps this equal to the commands' options).
KEYS: frozenset[str] = frozenset(
    {
        "host",
        "port",
        "secret",
        "signature_mode",
        "hmac",
        "db",
        "format",
        "max_body",
        "read_timeout",
        "max_connections",
        "forward_to",
        "forward_timeout",
        "basic_auth",
        "ngrok_authtoken",
        "ngrok_path",
        "ngrok_region",
        "ngrok_domain",
        "tunnel_timeout",
        "public_url",
        "region",
        "api_base",
        "auth_url",
        "auth_scheme",
        "token",
        "username",
        "password",
        "api_timeout",
        "max_attempts",
        "timeout",
        "retry_delays",
        "to",
        "inspect",
    }
)
# Options without an environment variable that are still settings (not one-off actions).
EXTRA_SETTINGS: frozenset[str] = frozenset(
    {
        "forward_timeout",
        "ngrok_region",
        "ngrok_domain",
        "tunnel_timeout",
    }
)
SECRET_KEYS: frozenset[str] = frozenset(
    {
        "secret",
        "ngrok_authtoken",
        "token",
        "password",
        "basic_auth",
    }
)


class ConfigError(UsageError):
    """The file's content is wrong: a syntax error, an unknown key, a value that does not fit.
    Exit 2, like a bad option: the file is input the user wrote."""


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """The settings file (which need not exist)."""
    environ = os.environ if environ is None else environ
    explicit = environ.get(CONFIG_ENV)
    if explicit:
        return Path(explicit).expanduser()
    home = environ.get("IPSMS_HOME")
    if home:
        return Path(home).expanduser() / FILENAME
    import platformdirs

    return platformdirs.user_config_path("ipsms", appauthor=False) / FILENAME


def check_profile_name(name: str, *, where: str = "") -> str:
    if not PROFILE_RE.fullmatch(name):
        raise ConfigError(f"{where}profile name {name!r} is not allowed", hint=PROFILE_RULE)
    return name


@dataclass
class Setting:
    """A value from the file and where it was written."""

    key: str
    value: Any
    profile: str
    table: tuple[str, ...]  # () for the profile's top, ("listen",) for its listen table
    path: Path
    line: int | None

    @property
    def where(self) -> str:
        at = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{at}, {self.dotted}"

    @property
    def dotted(self) -> str:
        return ".".join(("profiles", self.profile, *self.table, self.key))


@dataclass
class ConfigFile:
    path: Path
    exists: bool = False
    text: str = ""
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)

    def has_secrets(self) -> bool:
        return any(_any_secret(table) for table in self.profiles.values())

    def settings(self, profile: str, command: tuple[str, ...]) -> dict[str, Setting]:
        """The keys that apply to ``command`` (``("messages", "list")``) in ``profile``: its
        top-level keys, overridden by the command's table, then the subcommand's."""
        table = self.profiles.get(profile, {})
        found: dict[str, Setting] = {}
        for depth in range(len(command) + 1):
            node: Any = table
            for name in command[:depth]:
                node = node.get(name) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                break
            for key, value in node.items():
                if not isinstance(value, dict):
                    found[key] = Setting(
                        key,
                        value,
                        profile,
                        command[:depth],
                        self.path,
                        self.line_of(profile, command[:depth], key),
                    )
        return found

    def line_of(self, profile: str, table: tuple[str, ...], key: str) -> int | None:
        """The line ``key`` is written on in ``[profiles.PROFILE.TABLE...]`` (best effort:
        tomllib gives no positions for values)."""
        return key_line(self.text, ("profiles", profile, *table), key)


def key_line(text: str, table: tuple[str, ...], key: str) -> int | None:
    """The line of ``key = ...`` in the table ``table`` (() for the top of the file)."""
    current: tuple[str, ...] = ()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        header = _HEADER_RE.match(line)
        if header:
            current = _split_dotted(header.group(1))
            continue
        m = _KEY_RE.match(line)
        if m and current + _split_dotted(m.group(1)) == (*table, key):
            return number
    return None


_HEADER_RE = re.compile(r"^\[\s*([^\[\]]+?)\s*\](?:\s*#.*)?$")
_KEY_RE = re.compile(
    r"^((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')"
    r"(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*="
)


def _split_dotted(text: str) -> tuple[str, ...]:
    parts = re.findall(r"\"([^\"]*)\"|'([^']*)'|([A-Za-z0-9_-]+)", text)
    return tuple(next(p for p in part if p) if any(part) else "" for part in parts)


def _any_secret(table: Mapping[str, Any]) -> bool:
    return any(
        _any_secret(v) if isinstance(v, dict) else k in SECRET_KEYS for k, v in table.items()
    )


def load(path: Path | None = None, commands: Mapping[str, Any] | None = None) -> ConfigFile:
    """Read and check the file at ``path`` (default: ``config_path()``). A missing file is an
    empty one. ``commands`` is the command tree (``{"listen": {}, "messages": {"list": {}}}``):
    the tables a profile may hold besides keys. Raises ``ConfigError`` (exit 2) for what is
    written, ``StateError`` (exit 3) for a file that cannot be read."""
    path = path or config_path()
    config = ConfigFile(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except (FileNotFoundError, NotADirectoryError):  # a bad IPSMS_HOME is reported later
        return config
    except IsADirectoryError:
        raise StateError(
            f"the settings file {path} is a directory",
            hint=f"remove it or point {CONFIG_ENV} at a file",
        ) from None
    except OSError as exc:
        raise StateError(
            f"cannot read the settings file {path}: {exc.strerror or exc}",
            hint=f"fix its permissions or point {CONFIG_ENV} elsewhere",
        ) from None
    if len(data) > MAX_BYTES:
        raise ConfigError(
            f"the settings file {path} is larger than 1 MiB", hint="is it the right file?"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: the settings file is not UTF-8 text") from None
    import tomllib

    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # "Invalid value (at line 3, column 8)": the line goes first, as a compiler's would.
        detail = str(exc)
        m = re.search(r"\s*\(at line (\d+), column (\d+)\)$", detail)
        at = f"{path}:{m.group(1)}:{m.group(2)}" if m else str(path)
        if m:
            detail = detail[: m.start()]
        elif "end of document" in detail:
            at = f"{path}:{text.count(chr(10)) + 1}"
        raise ConfigError(f"{at}: not valid TOML: {detail[:1].lower()}{detail[1:]}") from None
    config.exists, config.text = True, text
    config.profiles = _check(config, document, commands or {})
    return config


def _check(
    config: ConfigFile, document: dict[str, Any], commands: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    for key in document:
        if key != "profiles":
            raise _unknown(config, (), key, ["profiles"], "a top-level key")
    profiles = document.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError(f"{config.path}: 'profiles' must be a table ([profiles.NAME])")
    for name, table in profiles.items():
        if not PROFILE_RE.fullmatch(name):
            line = _header_line(config, ("profiles", name))
            raise ConfigError(
                f"{_at(config.path, line)}: profile name {name!r} is not allowed", hint=PROFILE_RULE
            )
        if not isinstance(table, dict):
            raise ConfigError(
                f"{config.path}: profiles.{name} must be a table ([profiles.{name}]), not a value"
            )
        _check_table(config, name, (), table, commands)
    return profiles


def _check_table(
    config: ConfigFile,
    profile: str,
    table: tuple[str, ...],
    values: dict[str, Any],
    commands: Mapping[str, Any],
) -> None:
    for key, value in values.items():
        if isinstance(value, dict):
            if key in commands:
                _check_table(config, profile, (*table, key), value, commands[key] or {})
                continue
            if key in KEYS:
                raise _wrong_type(config, profile, table, key, "a value, not a table")
            raise _unknown(
                config, ("profiles", profile, *table), key, sorted(set(commands)), "a command"
            )
        if key not in KEYS:
            raise _unknown(
                config, ("profiles", profile, *table), key, sorted(KEYS | set(commands)), "a key"
            )
        if isinstance(value, list):
            raise _wrong_type(config, profile, table, key, "one value, not a list")
        if isinstance(value, float) and not math.isfinite(value):
            raise _wrong_type(config, profile, table, key, "a finite number")
        if not isinstance(value, str | int | float | bool):
            raise _wrong_type(
                config, profile, table, key, "a string, number or true/false, not a date or time"
            )


def _at(path: Path, line: int | None) -> str:
    return f"{path}:{line}" if line else str(path)


def _header_line(config: ConfigFile, table: tuple[str, ...]) -> int | None:
    for number, raw in enumerate(config.text.splitlines(), 1):
        header = _HEADER_RE.match(raw.strip())
        if header and _split_dotted(header.group(1))[: len(table)] == table:
            return number
    return None


def _wrong_type(
    config: ConfigFile, profile: str, table: tuple[str, ...], key: str, wanted: str
) -> ConfigError:
    line = config.line_of(profile, table, key) or _header_line(
        config, ("profiles", profile, *table, key)
    )
    dotted = ".".join(("profiles", profile, *table, key))
    return ConfigError(f"{_at(config.path, line)}: {dotted} must be {wanted}")


def _unknown(
    config: ConfigFile, table: tuple[str, ...], key: str, known: list[str], what: str
) -> ConfigError:
    line = key_line(config.text, table, key) or _header_line(config, (*table, key))
    return ConfigError(
        f"{_at(config.path, line)}: unknown key {'.'.join((*table, key))!r}"
        f"{did_you_mean(key, known)}",
        hint=f"expected {what}; known: {', '.join(known)}",
    )


def did_you_mean(word: str, known: list[str] | frozenset[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, sorted(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def readable_by_others(path: Path) -> bool:
    with contextlib.suppress(OSError):
        return bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))
    return False


def mask(key: str, value: Any) -> Any:
    """A value as ``show`` prints it: secrets hidden, a URL's password hidden."""
    from ipsms.redact import MASK, mask_url  # `show` only

    if key in SECRET_KEYS or any(w in key for w in ("secret", "token", "password")):
        return MASK
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    return value


# -- writing ---------------------------------------------------------------------------------
def _read_document(path: Path) -> Any:
    import tomlkit

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return tomlkit.document()
    except (OSError, UnicodeDecodeError) as exc:
        raise StateError(f"cannot read the settings file {path}: {exc}") from None
    try:
        return tomlkit.parse(text)
    except Exception as exc:  # tomlkit's ParseError names the line and column
        raise ConfigError(
            f"{path}: not valid TOML: {exc}", hint="fix it in an editor first"
        ) from None


def set_value(path: Path, profile: str, table: tuple[str, ...], key: str, value: Any) -> None:
    """Write ``key = value`` into ``[profiles.PROFILE.TABLE...]``, keeping the rest of the file
    (comments, order) as it is."""
    import tomlkit

    document = _read_document(path)
    node = document
    for name in ("profiles", profile, *table):
        if name not in node:
            node[name] = tomlkit.table(is_super_table=name == "profiles")
        node = node[name]
        if not isinstance(node, dict):
            raise ConfigError(
                f"{path}: {name} is a value, not a table", hint="fix it in an editor first"
            )
    node[key] = value
    _write(path, tomlkit.dumps(document))


def unset_value(path: Path, profile: str, table: tuple[str, ...], key: str) -> bool:
    """Remove ``key`` from ``[profiles.PROFILE.TABLE...]``; False if it was not there. A table
    left empty is removed too."""
    import tomlkit

    document = _read_document(path)
    chain = [document]
    for name in ("profiles", profile, *table):
        node = chain[-1].get(name)
        if not isinstance(node, dict):
            return False
        chain.append(node)
    if key not in chain[-1]:
        return False
    del chain[-1][key]
    names = ("profiles", profile, *table)
    for depth in range(len(names) - 1, -1, -1):  # prune the tables this emptied
        if len(chain[depth + 1]) == 0:
            del chain[depth][names[depth]]
    _write(path, tomlkit.dumps(document))
    return True


def _write(path: Path, text: str) -> None:
    """Replace the file atomically; created 0600 (it may hold secrets) in a directory made
    0700 if ipsms makes it; an existing file keeps its mode. A symlink (dotfiles) is
    followed, not replaced."""
    import tempfile

    target = path.resolve() if path.is_symlink() else path
    directory = target.parent
    try:
        if not directory.exists():
            from ipsms.home import make_private_dirs

            make_private_dirs(directory)
        mode = 0o600
        with contextlib.suppress(FileNotFoundError):
            mode = stat.S_IMODE(target.stat().st_mode)
        fd, temp = tempfile.mkstemp(prefix=".config-", suffix=".toml", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.chmod(temp, mode)
            os.replace(temp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
    except OSError as exc:
        raise StateError(
            f"cannot write the settings file {path}: {exc.strerror or exc}",
            hint=f"fix the permissions or point {CONFIG_ENV} elsewhere",
        ) from None
