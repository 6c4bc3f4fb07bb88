"""``ipsms auth login|status|logout``: store, check and remove IntelePeer API credentials.

Credentials come from, in order: ``--token``/``IPSMS_TOKEN``; ``IPSMS_USERNAME`` +
``IPSMS_PASSWORD``; what ``ipsms auth login`` stored (0600 file in the state home). Stored
credentials are only ever sent to the authenticate URL they were stored for.
"""

from typing import TYPE_CHECKING, Annotated

import typer

from ipsms import defaults
from ipsms.cli import help as help_text
from ipsms.cli.help import epilog
from ipsms.cli.io import current, emit
from ipsms.cli.options import (
    PASSWORD_ENV,
    ApiBaseOption,
    ApiTimeout,
    AuthUrlOption,
    FormatOption,
    OutputFormat,
    RegionOption,
    TokenOption,
    UsernameOption,
    api_settings,
    resolve_format,
)
from ipsms.errors import StateError, UsageError
from ipsms.intelepeer.settings import AuthScheme, Region

if TYPE_CHECKING:
    from ipsms.intelepeer.credentials import CachedToken, CredentialStore, PasswordAuth
    from ipsms.intelepeer.settings import ApiSettings

SOURCE_LABELS = {
    "token": "--token / IPSMS_TOKEN",
    "env": "IPSMS_USERNAME / IPSMS_PASSWORD",
    "stored": "`ipsms auth login`",
}

app = typer.Typer(
    rich_markup_mode=None,  # click's plain help: reads well at 80 columns and in a pipe
    add_completion=False,
    help="Store, check and remove the IntelePeer API credentials.",
    no_args_is_help=True,
    epilog=epilog(
        "IPSMS_PASSWORD=... ipsms auth login --username api-user",
        "ipsms auth status",
        "ipsms auth logout",
        exit_codes=(
            help_text.OK,
            help_text.USAGE,
            (3, "the state home cannot be used"),
            (8, "missing or wrong credentials"),
        ),
    ),
)


@app.command(epilog=epilog("IPSMS_PASSWORD=... ipsms auth login --username api-user"))
def login(
    username: UsernameOption = None,
    password: Annotated[
        str | None,
        typer.Option(
            "--password",
            envvar=PASSWORD_ENV,
            show_default=False,
            help="Prefer IPSMS_PASSWORD or --password-stdin: a flag shows in the process list.",
        ),
    ] = None,
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password from the first line of stdin."),
    ] = False,
    auth_url: AuthUrlOption = None,
    region: RegionOption = Region.us,
    api_base: ApiBaseOption = None,
    timeout: ApiTimeout = defaults.API_TIMEOUT,
    output_format: FormatOption = None,
) -> None:
    """Check a username and password with IntelePeer and store them (file mode 0600).

    The credentials are tied to the authenticate URL (--auth-url) and are never sent to
    another one; the token is cached for the API of --region/--api-base. On a terminal, asks
    for what is missing (the password without echo)."""
    import asyncio
    import time

    from ipsms.intelepeer.credentials import CredentialStore, PasswordAuth, StoredCredentials
    from ipsms.redact import mask_url
    from ipsms.text import iso_time, printable

    fmt = resolve_format(output_format)
    user, secret = _ask(username, password, password_stdin)
    settings = api_settings(region, api_base, auth_url, AuthScheme.bearer, timeout)
    store = CredentialStore()
    token = asyncio.run(_verify(settings, PasswordAuth(user, secret, "flags"), store))
    store.save_credentials(StoredCredentials(user, secret, settings.authenticate_url, time.time()))
    expires = iso_time(token.expires_at)
    emit(
        fmt is OutputFormat.json,
        {
            "type": "auth_login",
            "username": user,
            "auth_url": settings.authenticate_url,
            "api_base": settings.base_url,
            "token_expires_at": expires,
            "credentials_file": str(store.credentials_path),
        },
        printable(
            f"logged in as {user} at {mask_url(settings.authenticate_url)}; credentials "
            f"stored in {store.credentials_path} (mode 0600); token valid until "
            f"{expires}"
        ),
    )


@app.command(epilog=epilog("ipsms auth status --format json"))
def status(
    token: TokenOption = None,
    username: UsernameOption = None,
    region: RegionOption = Region.us,
    api_base: ApiBaseOption = None,
    auth_url: AuthUrlOption = None,
    output_format: FormatOption = None,
) -> None:
    """Show which credentials ipsms would use, for which API, and when the cached tokens
    expire (no secrets).

    Exits 8 when there are none."""
    from ipsms.intelepeer.credentials import CredentialStore, auth_status, same_url
    from ipsms.redact import mask_url
    from ipsms.text import printable

    fmt = resolve_format(output_format)
    settings = api_settings(region, api_base, auth_url, AuthScheme.bearer, defaults.API_TIMEOUT)
    info = auth_status(
        CredentialStore(), token=token, username=username, password=current().getenv(PASSWORD_ENV)
    )
    # The API the other commands would call with these settings (IPSMS_API_BASE,
    # IPSMS_AUTH_URL, --region), and whether the stored password may go to its
    # authenticate URL: after using the emulator, they often differ.
    stored_url = info.get("auth_url")
    usable = stored_url is None or same_url(stored_url, settings.authenticate_url)
    info.update(
        api_base=settings.base_url,
        api_auth_url=settings.authenticate_url,
        credentials_match_api=usable,
    )
    lines = [
        f"user: {info['username'] or '(a token, expiry unknown)'}  "
        f"[from {SOURCE_LABELS.get(info['source'], info['source'])}]",
        f"API in use: {mask_url(settings.base_url)} (authenticate URL "
        f"{mask_url(settings.authenticate_url)})",
    ]
    if stored_url:
        lines.append(
            f"stored credentials belong to: {mask_url(stored_url)} (the stored "
            "password is sent there only)"
        )
    if not usable:
        lines.append(
            f"note: the stored credentials do not belong to the API in use: "
            f"pass --auth-url {mask_url(stored_url or '')} (and its --api-base) to "
            f"use them, or run `ipsms auth login` for "
            f"{mask_url(settings.authenticate_url)}"
        )
    for tok in info["tokens"]:
        state = "valid" if tok["valid"] else "expired"
        lines.append(
            f"token for {mask_url(tok['auth_url'])} (API {mask_url(tok['api_base'])})"
            f": {state} until {tok['expires_at']}"
        )
    if not info["tokens"] and info["source"] != "token":
        lines.append("no cached token: the next API call fetches one")
    emit(fmt is OutputFormat.json, info, "\n".join(printable(line) for line in lines))


@app.command(epilog=epilog("ipsms auth logout"))
def logout(output_format: FormatOption = None) -> None:
    """Remove the stored credentials and every cached token."""
    from ipsms.intelepeer.credentials import CredentialStore
    from ipsms.text import printable

    env = current()
    fmt = resolve_format(output_format)
    store = CredentialStore()
    try:
        stored = store.load_credentials()
    except StateError:  # a damaged file is removed all the same
        stored = None
    removed = store.delete_credentials()
    tokens = store.delete_tokens()
    what = (
        f"removed the stored credentials of {stored.username}"
        if stored
        else ("removed the stored credentials" if removed else "no stored credentials")
    )
    emit(
        fmt is OutputFormat.json,
        {"type": "auth_logout", "credentials_removed": removed, "tokens_removed": tokens},
        printable(f"{what}; removed {tokens} cached token(s)"),
    )
    still = [n for n in ("IPSMS_TOKEN", "IPSMS_USERNAME", PASSWORD_ENV) if env.getenv(n)]
    if still:
        env.notice(f"ipsms auth logout: note: {', '.join(still)} still set in the environment")


def _ask(username: str | None, password: str | None, password_stdin: bool) -> tuple[str, str]:
    env = current()
    if password_stdin:
        if password:
            raise UsageError(
                f"give the password once: --password-stdin or --password/{PASSWORD_ENV}, not both"
            )
        password = env.stdin.readline().rstrip("\r\n")
        if not password:
            raise UsageError("--password-stdin read an empty password")
    terminal = env.stdin_isatty and not password_stdin
    if not username:
        if not terminal:
            raise UsageError(
                "no username given and no terminal to ask for it",
                hint="pass --username or set IPSMS_USERNAME",
            )
        username = _prompt("IntelePeer Customer Portal username (Access = API)").strip()
    if not password:
        if not terminal:
            raise UsageError(
                "no password given and no terminal to ask for it",
                hint=f"set {PASSWORD_ENV} or use --password-stdin",
            )
        password = _prompt("Password", hidden=True)
    if not username or not password:
        raise UsageError("the username and password must not be empty")
    return username, password


def _prompt(text: str, hidden: bool = False) -> str:
    """Ask on the terminal; prompts go to stderr so stdout keeps only results. The password
    is read without echo (getpass turns echo off on the terminal)."""
    import getpass

    env = current()
    try:
        if hidden:
            return getpass.getpass(f"{text}: ", stream=env.stderr)
        env.stderr.write(f"{text}: ")
        env.stderr.flush()
        line = env.stdin.readline()
        if not line:
            raise EOFError
        return line.rstrip("\r\n")
    except EOFError:
        raise UsageError("no answer: the input ended") from None


async def _verify(
    settings: "ApiSettings", auth: "PasswordAuth", store: "CredentialStore"
) -> "CachedToken":
    from ipsms.intelepeer.client import IntelePeerClient

    async with IntelePeerClient(settings, auth, store=store) as client:
        return await client.authenticate()
