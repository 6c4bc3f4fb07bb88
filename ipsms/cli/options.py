"""Every option more than one command takes, defined once, and the parsers that read option
text (sizes, durations). Cheap to import: only typer and plain ipsms modules.

Groups: output (``--format``, ``--db``), signatures (``--hmac``), IntelePeer's retry rule
(simulate, replay) and IntelePeer's API (set-webhook, provision, auth).
"""

import re
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ipsms import defaults
from ipsms.cli.io import current
from ipsms.errors import IpsmsError, UsageError
from ipsms.intelepeer.settings import ApiSettings, AuthScheme, Region

if TYPE_CHECKING:
    from ipsms.deliver.retry import RetryPolicy
    from ipsms.intelepeer.credentials import AuthSource

# -- parsers ---------------------------------------------------------------------------------
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "ki": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "mi": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "gi": 1024**3,
}


def parse_size(text: str) -> int:
    """``'1MiB'`` -> 1048576, ``'512k'`` -> 512000, ``'2048'`` -> 2048."""
    m = _SIZE_RE.match(text)
    unit = (m.group(2) or "").lower() if m else ""
    if not m or unit not in _UNITS:
        raise UsageError(f"cannot read the size {text!r}", hint="use bytes or a unit: 64KiB, 1MiB")
    size = int(float(m.group(1)) * _UNITS[unit])
    if size < 1:
        raise UsageError(f"size {text!r} must be at least 1 byte")
    return size


def core_parser(parse: Callable[[str], Any]) -> Callable[[Any], Any]:
    """A core parser as typer's: its usage error (message and hint) becomes click's, which
    names the option; a value that is already parsed (a default) passes through."""

    def parser(text: Any) -> Any:
        if not isinstance(text, str):
            return text
        try:
            return parse(text)
        except IpsmsError as exc:
            raise typer.BadParameter(str(exc)) from None

    return parser


def _parse_duration(text: str) -> float:
    from ipsms.text import parse_duration  # on use only: start-up

    return parse_duration(text)


_duration = core_parser(_parse_duration)


def duration(text: str | float) -> float:
    """Typer's parser for a duration option: ``500ms``, ``10s``, ``5m``, ``2h``, ``1w``, or
    seconds. A bad value is click's usage error, which names the option."""
    return float(_duration(text))


def _positive_duration(text: str | float) -> float:
    seconds = duration(text)
    if not seconds > 0:
        raise typer.BadParameter(f"{text!r} must be more than 0 seconds")
    return seconds


DURATION_METAVAR = "DURATION"
DURATION_HELP = "500ms, 10s, 5m, 2h, 1d, 1w; a bare number is seconds"


def flag(setting: str) -> str:
    """How the CLI words a setting a core error names (``auth_url`` -> ``--auth-url``)."""
    return FLAG_NAMES.get(setting, "--" + setting.replace("_", "-"))


FLAG_NAMES = {"hmac_variant": "--hmac", "output_format": "--format", "all": "--all"}

# -- output ----------------------------------------------------------------------------------


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    plain = "plain"


FormatOption = Annotated[
    OutputFormat | None,
    typer.Option(
        "--format",
        envvar="IPSMS_FORMAT",
        show_default=False,
        help="table (for people: a live table in `listen`), json (NDJSON: one object per line, "
        "see docs/ndjson.md) or plain (a line per item) (default: table on a terminal, json "
        "otherwise).",
    ),
]
# (Help texts say "(default: ...)": typer renders "[...]" as rich markup and drops it.)
DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db",
        envvar="IPSMS_DB",
        show_default=False,
        help="SQLite message store (default: ipsms.sqlite3 in the state home).",
    ),
]


def resolve_format(requested: OutputFormat | None) -> OutputFormat:
    """The human form on a terminal, NDJSON on a pipe, unless asked for."""
    if requested is not None:
        return requested
    return OutputFormat.table if current().stdout_isatty else OutputFormat.json


# -- signatures ------------------------------------------------------------------------------
HmacOption = Annotated[
    str,
    typer.Option(
        "--hmac",
        envvar="IPSMS_HMAC",
        metavar="ALGO[:ORDER][:ENCODING]",
        help="HMAC variant for --signature-mode hmac, e.g. sha256, sha1:message+refid, "
        "sha512:refid+message:base64.",
    ),
]


class SignatureMode(StrEnum):
    """``signature.Mode`` as the CLI reads it: declared here so that parsing options imports
    no hashing code (a test keeps the two equal)."""

    auto = "auto"
    plain = "plain"
    hmac = "hmac"


SecretOption = Annotated[
    str | None,
    typer.Option(
        "--secret",
        envvar="IPSMS_SECRET",
        show_default=False,
        help="The shared secret (prefer IPSMS_SECRET: a flag shows in the process list).",
    ),
]

# -- IntelePeer's retry rule (simulate, replay) ------------------------------------------------
RETRY = "Retries (IntelePeer's rule)"
FailFirst = Annotated[
    int,
    typer.Option(
        "--fail-first",
        min=0,
        rich_help_panel=RETRY,
        help="Count the first N attempts as failed "
        "whatever the reply (they are still sent: a lost 200). N >= --max-attempts ends in "
        "'gave up'.",
    ),
]
MaxAttempts = Annotated[
    int,
    typer.Option(
        "--max-attempts",
        min=1,
        envvar="IPSMS_MAX_ATTEMPTS",
        rich_help_panel=RETRY,
        help="Attempts in total, first one included (IntelePeer: 5).",
    ),
]
Success = Annotated[
    str,
    typer.Option(
        "--success",
        metavar="200|2xx",
        rich_help_panel=RETRY,
        help="What counts as delivered: exactly 200 (IntelePeer) or any 2xx.",
    ),
]
AttemptTimeout = Annotated[
    float,
    typer.Option(
        "--timeout",
        envvar="IPSMS_TIMEOUT",
        rich_help_panel=RETRY,
        parser=_positive_duration,
        metavar=DURATION_METAVAR,
        help=f"How long to wait for each answer ({DURATION_HELP}); no answer is a failed attempt.",
    ),
]
RetryDelays = Annotated[
    str | None,
    typer.Option(
        "--retry-delays",
        envvar="IPSMS_RETRY_DELAYS",
        metavar="DURATION,...",
        rich_help_panel=RETRY,
        show_default="1,2,4,8",
        help="Waits between attempts, e.g. 1,5,30 or 500ms,2s,1m; the last one repeats.",
    ),
]
Backoff = Annotated[
    str | None,
    typer.Option(
        "--backoff",
        metavar="BASExFACTOR[:CAP]",
        rich_help_panel=RETRY,
        help="Exponential waits instead of a list: 1x2 waits 1,2,4,8 s; 0.5x3:10 waits 0.5, "
        "1.5, 4.5, 10 s.",
    ),
]
NoWait = Annotated[
    bool, typer.Option("--no-wait", rich_help_panel=RETRY, help="Retry at once, without the waits.")
]
Speed = Annotated[
    float,
    typer.Option(
        "--speed",
        rich_help_panel=RETRY,
        help="Divide every wait by N (10: a 15 s schedule in 1.5 s).",
    ),
]


def retry_policy(
    max_attempts: int,
    success: str,
    timeout: float,
    retry_delays: str | None,
    backoff: str | None,
    no_wait: bool,
    speed: float,
) -> "RetryPolicy":
    """The retry group's values as the core's ``RetryPolicy``."""
    from ipsms.deliver.retry import RetryPolicy

    return RetryPolicy.from_options(
        max_attempts=max_attempts,
        success=success,
        timeout=timeout,
        retry_delays=retry_delays,
        backoff=backoff,
        no_wait=no_wait,
        speed=speed,
    )


# -- IntelePeer's API (set-webhook, provision, auth) ------------------------------------------
API = "IntelePeer API"
RegionOption = Annotated[
    Region,
    typer.Option(
        "--region",
        envvar="IPSMS_REGION",
        case_sensitive=False,
        rich_help_panel=API,
        help="us (api.intelepeer.com) or eu (eu.api.intelepeer.com).",
    ),
]
ApiBaseOption = Annotated[
    str | None,
    typer.Option(
        "--api-base",
        envvar="IPSMS_API_BASE",
        rich_help_panel=API,
        help="API base URL instead of the region's (staging, `ipsms api-emulator`).",
    ),
]
AuthUrlOption = Annotated[
    str | None,
    typer.Option(
        "--auth-url",
        envvar="IPSMS_AUTH_URL",
        rich_help_panel=API,
        help=f"Authenticate URL (default: {defaults.AUTH_URL}).",
    ),
]
AuthSchemeOption = Annotated[
    AuthScheme,
    typer.Option(
        "--auth-scheme",
        envvar="IPSMS_AUTH_SCHEME",
        case_sensitive=False,
        rich_help_panel=API,
        help="Authorization header: 'Bearer <token>' (bearer) or the bare token (raw).",
    ),
]
ApiTimeout = Annotated[
    float,
    typer.Option(
        "--timeout",
        envvar="IPSMS_API_TIMEOUT",
        rich_help_panel=API,
        parser=_positive_duration,
        metavar=DURATION_METAVAR,
        help=f"How long to wait for each answer ({DURATION_HELP}).",
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="IPSMS_TOKEN",
        show_default=False,
        rich_help_panel=API,
        help="An API token to use as is (not cached, not renewed).",
    ),
]
UsernameOption = Annotated[
    str | None,
    typer.Option(
        "--username",
        envvar="IPSMS_USERNAME",
        rich_help_panel=API,
        help="Customer Portal user (Access = API); password from IPSMS_PASSWORD or `auth login`.",
    ),
]
PASSWORD_ENV = "IPSMS_PASSWORD"


def api_settings(
    region: Region, api_base: str | None, auth_url: str | None, scheme: AuthScheme, timeout: float
) -> ApiSettings:
    """The API group's values as the core's ``ApiSettings``; warns when a URL would carry the
    token or password over plain http to another machine."""
    from urllib.parse import urlsplit

    from ipsms.hosts import is_loopback
    from ipsms.redact import mask_url

    settings = ApiSettings(
        region=region,
        api_base=api_base or None,
        auth_url=auth_url or None,
        scheme=scheme,
        timeout=timeout,
    )
    for option, url in (
        ("--api-base", settings.base_url),
        ("--auth-url", settings.authenticate_url),
    ):
        parts = urlsplit(url)
        if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
            current().notice(
                f"ipsms: warning: {option} {mask_url(url)} is plain http: the token "
                "and password would cross the network unencrypted"
            )
    return settings


def auth_source(token: str | None, username: str | None) -> "AuthSource":
    """Which credentials to use: --token, IPSMS_USERNAME + IPSMS_PASSWORD, or the stored ones."""
    from ipsms.intelepeer.credentials import CredentialStore, resolve_auth

    return resolve_auth(
        CredentialStore(), token=token, username=username, password=current().getenv(PASSWORD_ENV)
    )


def basic_auth_credentials(text: str | None) -> tuple[str, str] | None:
    """``--basic-auth USER:PASS`` (listen, and the settings file's ``basic_auth``)."""
    if text is None:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise UsageError("--basic-auth wants USER:PASS, both non-empty")
    return user, password


def parse_address(text: str, option: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[::1]:PORT`` or a bare ``PORT`` (on 127.0.0.1)."""
    text = text.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "127.0.0.1", text
    host = host or "127.0.0.1"
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise UsageError(f"{option} {text!r}: want HOST:PORT or PORT, a port from 0 to 65535")
    return host, port
