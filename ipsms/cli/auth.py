"""``ipsms auth login|status|logout``, and the API connection options every API command shares.

Credentials come from, in order: ``--token``/``IPSMS_TOKEN``; ``IPSMS_USERNAME`` +
``IPSMS_PASSWORD``; what ``ipsms auth login`` stored (0600 file in the state home). Stored
credentials are only ever sent to the authenticate URL they were stored for.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import sys
import time
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer

from ipsms.cli.app import app
from ipsms.cli.options import OutputFormat, resolve_format
from ipsms.errors import StateError, UsageError
from ipsms.intelepeer.client import (
    DEFAULT_TIMEOUT,
    ApiSettings,
    AuthScheme,
    IntelePeerClient,
    Region,
)
from ipsms.intelepeer.credentials import (
    AuthSource,
    CachedToken,
    CredentialStore,
    PasswordAuth,
    StoredCredentials,
    auth_status,
    resolve_auth,
)
from ipsms.redact import mask_url
from ipsms.server import is_loopback
from ipsms.text import dumps, iso_time, printable

PASSWORD_ENV = "IPSMS_PASSWORD"
SOURCE_LABELS = {"token": "--token / IPSMS_TOKEN", "env": "IPSMS_USERNAME / IPSMS_PASSWORD",
                 "stored": "`ipsms auth login`"}

RegionOpt = Annotated[Region, typer.Option(
    "--region", envvar="IPSMS_REGION", case_sensitive=False,
    help="us (api.intelepeer.com) or eu (eu.api.intelepeer.com).")]
ApiBaseOpt = Annotated[str | None, typer.Option(
    "--api-base", envvar="IPSMS_API_BASE",
    help="API base URL instead of the region's (staging, `ipsms api-emulator`).")]
AuthUrlOpt = Annotated[str | None, typer.Option(
    "--auth-url", envvar="IPSMS_AUTH_URL",
    help="Authenticate URL (default: https://customer.intelepeer.com/_rest/v4/authenticate).")]
SchemeOpt = Annotated[AuthScheme, typer.Option(
    "--auth-scheme", envvar="IPSMS_AUTH_SCHEME", case_sensitive=False,
    help="Authorization header: 'Bearer <token>' (bearer) or the bare token (raw).")]
TimeoutOpt = Annotated[float, typer.Option(
    "--timeout", envvar="IPSMS_API_TIMEOUT", min=0.1, help="Seconds to wait for each answer.")]
TokenOpt = Annotated[str | None, typer.Option(
    "--token", envvar="IPSMS_TOKEN", show_default=False,
    help="An API token to use as is (not cached, not renewed).")]
UsernameOpt = Annotated[str | None, typer.Option(
    "--username", envvar="IPSMS_USERNAME",
    help="Customer Portal user (Access = API); password from IPSMS_PASSWORD or `auth login`.")]
FormatOpt = Annotated[OutputFormat | None, typer.Option(
    "--format", envvar="IPSMS_FORMAT",
    help="table, json (NDJSON) or plain (default: table on a terminal, json otherwise).")]


def api_settings(region: Region, api_base: str | None, auth_url: str | None,
                 scheme: AuthScheme, timeout: float) -> ApiSettings:
    settings = ApiSettings(region=region, api_base=api_base or None,
                           auth_url=auth_url or None, scheme=scheme, timeout=timeout)
    _warn_plain_http(settings)
    return settings


def _warn_plain_http(settings: ApiSettings) -> None:
    for option, url in (("--api-base", settings.base_url),
                        ("--auth-url", settings.authenticate_url)):
        parts = urlsplit(url)
        if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
            err(f"ipsms: warning: {option} {mask_url(url)} is plain http: the token and "
                "password would cross the network unencrypted")


def auth_source(token: str | None, username: str | None) -> AuthSource:
    return resolve_auth(CredentialStore(), token=token, username=username,
                        password=os.environ.get(PASSWORD_ENV) or None)


def err(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def emit(fmt: OutputFormat, record: dict[str, Any], human: str) -> None:
    """One result on stdout: an NDJSON object, or a line for people. A lone surrogate (from a
    reply's ``"\\ud800"``) is written as its escape, which is also valid inside JSON."""
    line = (dumps(record) if fmt is OutputFormat.json else human) + "\n"
    sys.stdout.write(line.encode("utf-8", "backslashreplace").decode("utf-8"))
    sys.stdout.flush()


auth_app = typer.Typer(help="Store, check and remove the IntelePeer API credentials.",
                       no_args_is_help=True)
app.add_typer(auth_app, name="auth")


@auth_app.command(epilog="Example: IPSMS_PASSWORD=... ipsms auth login --username api-user")
def login(
    username: UsernameOpt = None,
    password: Annotated[str | None, typer.Option(
        "--password", envvar=PASSWORD_ENV, show_default=False,
        help="Prefer IPSMS_PASSWORD or --password-stdin: a flag shows in the process list.")]
    = None,
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from the first line of stdin.")] = False,
    auth_url: AuthUrlOpt = None,
    region: RegionOpt = Region.us,
    api_base: ApiBaseOpt = None,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
    output_format: FormatOpt = None,
) -> None:
    """Check a username and password with IntelePeer and store them (file mode 0600).

    The credentials are tied to the authenticate URL (--auth-url) and are never sent to
    another one; the token is cached for the API of --region/--api-base. On a terminal, asks
    for what is missing (the password without echo)."""
    fmt = resolve_format(output_format)
    user, secret = _ask(username, password, password_stdin)
    settings = ApiSettings(region=region, api_base=api_base or None, auth_url=auth_url or None,
                           timeout=timeout)
    _warn_plain_http(settings)
    store = CredentialStore()
    token = asyncio.run(_verify(settings, PasswordAuth(user, secret, "flags"), store))
    store.save_credentials(StoredCredentials(user, secret, settings.authenticate_url,
                                             time.time()))
    expires = iso_time(token.expires_at)
    emit(fmt, {"type": "auth_login", "username": user, "auth_url": settings.authenticate_url,
               "api_base": settings.base_url, "token_expires_at": expires,
               "credentials_file": str(store.credentials_path)},
         printable(f"logged in as {user} at {mask_url(settings.authenticate_url)}; credentials "
                   f"stored in {store.credentials_path} (mode 0600); token valid until "
                   f"{expires}"))


@auth_app.command(epilog="Example: ipsms auth status --format json")
def status(token: TokenOpt = None, username: UsernameOpt = None,
           output_format: FormatOpt = None) -> None:
    """Show which credentials ipsms would use and when the cached token expires (no secrets).

    Exits 8 when there are none."""
    fmt = resolve_format(output_format)
    info = auth_status(CredentialStore(), token=token, username=username,
                       password=os.environ.get(PASSWORD_ENV) or None)
    lines = [f"user: {info['username'] or '(a token, expiry unknown)'}  "
             f"[from {SOURCE_LABELS.get(info['source'], info['source'])}]"]
    if info.get("auth_url"):
        lines.append(f"authenticate URL: {mask_url(info['auth_url'])} (the stored password "
                     "is sent there only)")
    for tok in info["tokens"]:
        state = "valid" if tok["valid"] else "expired"
        lines.append(f"token for {mask_url(tok['auth_url'])} (API {mask_url(tok['api_base'])})"
                     f": {state} until {tok['expires_at']}")
    if not info["tokens"] and info["source"] != "token":
        lines.append("no cached token: the next API call fetches one")
    emit(fmt, info, "\n".join(printable(line) for line in lines))


@auth_app.command(epilog="Example: ipsms auth logout")
def logout(output_format: FormatOpt = None) -> None:
    """Remove the stored credentials and every cached token."""
    fmt = resolve_format(output_format)
    store = CredentialStore()
    try:
        stored = store.load_credentials()
    except StateError:  # a damaged file is removed all the same
        stored = None
    removed = store.delete_credentials()
    tokens = store.delete_tokens()
    what = f"removed the stored credentials of {stored.username}" if stored else (
        "removed the stored credentials" if removed else "no stored credentials")
    emit(fmt, {"type": "auth_logout", "credentials_removed": removed,
               "tokens_removed": tokens}, printable(f"{what}; removed {tokens} cached token(s)"))
    still = [n for n in ("IPSMS_TOKEN", "IPSMS_USERNAME", PASSWORD_ENV) if os.environ.get(n)]
    if still:
        err(f"ipsms auth logout: note: {', '.join(still)} still set in the environment")


def _ask(username: str | None, password: str | None, password_stdin: bool) -> tuple[str, str]:
    if password_stdin:
        if password:
            raise UsageError("give the password once: --password-stdin or --password/"
                             f"{PASSWORD_ENV}, not both")
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise UsageError("--password-stdin read an empty password")
    terminal = sys.stdin.isatty() and not password_stdin
    if not username:
        if not terminal:
            raise UsageError("no username given and no terminal to ask for it",
                             hint="pass --username or set IPSMS_USERNAME")
        username = _prompt("IntelePeer Customer Portal username (Access = API)").strip()
    if not password:
        if not terminal:
            raise UsageError("no password given and no terminal to ask for it",
                             hint=f"set {PASSWORD_ENV} or use --password-stdin")
        password = _prompt("Password", hidden=True)
    if not username or not password:
        raise UsageError("the username and password must not be empty")
    return username, password


def _prompt(text: str, hidden: bool = False) -> str:
    """Ask on the terminal; prompts go to stderr so stdout keeps only results. The password
    is read without echo (getpass turns echo off on the terminal)."""
    try:
        if hidden:
            return getpass.getpass(f"{text}: ", stream=sys.stderr)
        sys.stderr.write(f"{text}: ")
        sys.stderr.flush()
        return input()
    except EOFError:
        raise UsageError("no answer: the input ended") from None


async def _verify(settings: ApiSettings, auth: PasswordAuth,
                  store: CredentialStore) -> CachedToken:
    async with IntelePeerClient(settings, auth, store=store) as client:
        return await client.authenticate()
