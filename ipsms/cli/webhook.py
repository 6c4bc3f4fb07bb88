"""``ipsms set-webhook``, ``ipsms provision`` and ``ipsms api-emulator``.

The first two call IntelePeer's configuration API (intelepeer.md section 2) through
``ipsms.intelepeer.client``; the third runs the bundled emulator of that API on a local port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from ipsms.cli.app import app
from ipsms.cli.auth import (
    ApiBaseOpt,
    AuthUrlOpt,
    FormatOpt,
    RegionOpt,
    SchemeOpt,
    TimeoutOpt,
    TokenOpt,
    UsernameOpt,
    api_settings,
    auth_source,
    emit,
    err,
)
from ipsms.cli.options import OutputFormat, resolve_format
from ipsms.errors import ApiError, UsageError
from ipsms.intelepeer.client import (
    DEFAULT_TIMEOUT,
    ApiSettings,
    AuthScheme,
    IntelePeerClient,
    PreparedRequest,
    ProvisionReply,
    Region,
    provision_request,
    webhook_request,
)
from ipsms.intelepeer.credentials import AuthSource, CredentialStore
from ipsms.intelepeer.emulator import (
    DEFAULT_PORT,
    PROVISION_SECONDS,
    TOKEN_LIFETIME,
    EmulatorServer,
    MultiStatus,
    RecordedRequest,
    build_state,
    serve,
)
from ipsms.intelepeer.webhooks import (
    ChangeResult,
    WebhookChange,
    WebhookHistory,
    apply_change,
    check_long_code,
    plan_restore,
    plan_set,
)
from ipsms.text import iso_time, printable

if TYPE_CHECKING:
    from rich.console import Console

DRY_RUN_TOKEN = "TOKEN"  # stands in for the token in --dry-run; shown masked anyway


@app.command("set-webhook", epilog="Examples: ipsms set-webhook +13038675309 "
             "https://example.com/sms  |  ipsms set-webhook --restore +13038675309  |  "
             "ipsms set-webhook --history")
def set_webhook(
    args: Annotated[list[str] | None, typer.Argument(
        metavar="TN... URL", show_default=False,
        help="Numbers (E.164 or short code 1-1234), then the webhook URL.")] = None,
    restore: Annotated[bool, typer.Option(
        "--restore", help="Put back the URL ipsms replaced on the given numbers.")] = False,
    history: Annotated[bool, typer.Option(
        "--history", help="List the changes ipsms made (of the given numbers, or all).")]
    = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the exact request instead of sending it.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Set a URL IntelePeer cannot reach (localhost, private ranges).")]
    = False,
    output_format: FormatOpt = None, region: RegionOpt = Region.us,
    api_base: ApiBaseOpt = None, auth_url: AuthUrlOpt = None,
    auth_scheme: SchemeOpt = AuthScheme.bearer, token: TokenOpt = None,
    username: UsernameOpt = None, timeout: TimeoutOpt = DEFAULT_TIMEOUT,
) -> None:
    """Point numbers' inbound SMS webhook at a URL through IntelePeer's API."""
    fmt, words, store = resolve_format(output_format), list(args or []), WebhookHistory()
    if history:
        return _show_history(store, words, fmt, restore)
    settings = api_settings(region, api_base, auth_url, auth_scheme, timeout)
    if restore:
        changes = plan_restore(words, store, settings.base_url)
    elif len(words) < 2:
        raise UsageError("give the number(s) and then the webhook URL",
                         hint="usage: ipsms set-webhook TN [TN ...] URL")
    else:
        changes = [plan_set(words[:-1], words[-1], force=force)]
    for warning in dict.fromkeys(w for c in changes for w in c.warnings):
        err(f"ipsms set-webhook: warning: {warning}")
    if dry_run:
        return _dry_run([webhook_request(settings, c.numbers, c.url, DRY_RUN_TOKEN)
                         for c in changes], fmt)
    results = asyncio.run(_apply(settings, auth_source(token, username), changes, store))
    _show_results(results, fmt)
    failed = [r for r in results if not r.ok]
    if failed:
        raise ApiError(f"{len(failed)} of {len(results)} numbers were not updated: "
                       + ", ".join(r.number for r in failed),
                       hint="see each number's reason above; the others were updated")
    return None


@app.command(epilog="Example: ipsms provision +13038675309")
def provision(
    number: Annotated[str, typer.Argument(metavar="TN", show_default=False,
                                          help="One E.164 long code.")],
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the exact request instead of sending it.")] = False,
    output_format: FormatOpt = None, region: RegionOpt = Region.us,
    api_base: ApiBaseOpt = None, auth_url: AuthUrlOpt = None,
    auth_scheme: SchemeOpt = AuthScheme.bearer, token: TokenOpt = None,
    username: UsernameOpt = None, timeout: TimeoutOpt = DEFAULT_TIMEOUT,
) -> None:
    """Enable SMS on a long code (202: requested; usually done within minutes)."""
    fmt = resolve_format(output_format)
    settings = api_settings(region, api_base, auth_url, auth_scheme, timeout)
    check_long_code(number)
    if dry_run:
        return _dry_run([provision_request(settings, number, DRY_RUN_TOKEN)], fmt)
    reply = asyncio.run(_provision(settings, auth_source(token, username), number))
    _show_provision(reply, fmt)
    if reply.in_progress:
        raise ApiError(f"IntelePeer answered 409 for {number}: {reply.reason}",
                       hint="wait for it to finish (usually minutes), then try again")
    return None


@app.command("api-emulator", epilog="Example: ipsms api-emulator --port 0  (then point "
             "ipsms or your script at the printed --api-base and --auth-url)")
def api_emulator(
    port: Annotated[int, typer.Option(envvar="IPSMS_EMULATOR_PORT", min=0, max=65535,
                                      help="Port on 127.0.0.1; 0 picks a free one.")]
    = DEFAULT_PORT,
    users: Annotated[list[str] | None, typer.Option(
        "--user", metavar="NAME:PASSWORD", help="An API user (repeatable; default: the demo "
        "user of docs/api-emulator.md).")] = None,
    numbers: Annotated[list[str] | None, typer.Option(
        "--number", metavar="TN", help="A number of the account, enabled for SMS "
        "(repeatable).")] = None,
    numbers_no_sms: Annotated[list[str] | None, typer.Option(
        "--number-no-sms", metavar="TN", help="A number of the account not enabled for SMS "
        "(repeatable).")] = None,
    token_lifetime: Annotated[float, typer.Option(min=0.001, help="Seconds a token lives.")]
    = TOKEN_LIFETIME,
    provision_seconds: Annotated[float, typer.Option(
        min=0, help="Seconds a provisioning stays in progress (409 meanwhile).")]
    = PROVISION_SECONDS,
    multi_status: Annotated[MultiStatus, typer.Option(
        help="Several endpoints: always 207, or 207 only when some fail (mixed).")]
    = MultiStatus.always,
    output_format: FormatOpt = None,
) -> None:
    """Run a local IntelePeer API emulator (authenticate, set-webhook, provision) for tests.

    Binds 127.0.0.1 only; see docs/api-emulator.md for its answers and control endpoints."""
    fmt = resolve_format(output_format)
    state = build_state(_parse_users(users or []), numbers or [], numbers_no_sms or [],
                        token_lifetime=token_lifetime, provision_seconds=provision_seconds,
                        multi_status=multi_status)
    state.observers.append(RequestLog(fmt))
    server = EmulatorServer(state, "127.0.0.1", port)
    asyncio.run(serve(server, lambda srv: _emulator_ready(srv, fmt)))
    err("ipsms api-emulator: stopped")


# -- helpers: async calls ------------------------------------------------------------------

async def _apply(settings: ApiSettings, auth: AuthSource, changes: list[WebhookChange],
                 store: WebhookHistory) -> list[ChangeResult]:
    results: list[ChangeResult] = []
    async with IntelePeerClient(settings, auth, store=CredentialStore()) as client:
        for change in changes:
            results.extend(await apply_change(change, client, store))
    return results


async def _provision(settings: ApiSettings, auth: AuthSource, number: str) -> ProvisionReply:
    async with IntelePeerClient(settings, auth, store=CredentialStore()) as client:
        return await client.provision(number)


# -- helpers: output -----------------------------------------------------------------------

def _console() -> Console:
    from rich.console import Console

    return Console(file=sys.stdout, highlight=False)


def _dry_run(requests: list[PreparedRequest], fmt: OutputFormat) -> None:
    for request in requests:
        shown = request.shown()
        lines = [f"{shown['method']} {shown['url']}",
                 *(f"{k}: {v}" for k, v in shown["headers"].items()), "",
                 json.dumps(shown["body"], ensure_ascii=False)]
        emit(fmt, {"type": "dry_run", **shown}, "\n".join(printable(x) for x in lines))
    err("ipsms: dry run: nothing was sent")


def _show_results(results: list[ChangeResult], fmt: OutputFormat) -> None:
    if fmt is OutputFormat.table:
        from ipsms.ui.api import results_table, success_line

        console = _console()
        if not any(r.reply_status == 207 for r in results):
            for r in results:
                console.print(success_line(r))
        else:
            console.print(results_table(results))
        return
    for r in results:
        verb = "restored to" if r.action == "restore" else "set to"
        human = (f"{r.number} {verb} {r.to_dict()['url']}" if r.ok
                 else f"{r.number} failed ({r.status or '?'}): {r.reason}")
        emit(fmt, r.to_dict(), printable(human))


def _show_history(store: WebhookHistory, numbers: list[str], fmt: OutputFormat,
                  restore: bool) -> None:
    if restore:
        raise UsageError("--history and --restore do not go together")
    entries = store.entries(numbers)
    if not entries:
        err("ipsms set-webhook: no webhook changes recorded"
            + (f" for {', '.join(numbers)}" if numbers else ""))
    elif fmt is OutputFormat.table:
        from ipsms.ui.api import history_table

        _console().print(history_table(entries))
    else:
        for e in entries:
            d = e.to_dict()
            emit(fmt, d, printable(f"{d['time']} #{e.id} {e.number} {e.action} {d['url']} "
                                   f"(before: {d['previous'] or '-'})"))


def _show_provision(reply: ProvisionReply, fmt: OutputFormat) -> None:
    record = {"type": "provision", "number": reply.number, "status": reply.status,
              "state": reply.state, "reason": reply.reason}
    if fmt is OutputFormat.table:
        from ipsms.ui.api import provision_line

        _console().print(provision_line(reply))
    else:
        emit(fmt, record, printable(f"{reply.number} provisioning {reply.state} "
                                    f"({reply.status})"))


def _parse_users(values: list[str]) -> dict[str, str]:
    users = {}
    for value in values:
        name, sep, password = value.partition(":")
        if not sep or not name or not password:
            raise UsageError(f"--user wants NAME:PASSWORD, got {value.split(':')[0]!r}:…")
        users[name] = password
    return users


def _emulator_ready(server: EmulatorServer, fmt: OutputFormat) -> None:
    state = server.state
    err(f"ipsms api-emulator: IntelePeer API emulator on {server.api_base} "
        f"(port {server.port}); Ctrl-C stops it")
    err(f"ipsms api-emulator: use --api-base {server.api_base} --auth-url {server.auth_url}")
    err(f"ipsms api-emulator: users: {', '.join(state.users)}; numbers: "
        + ", ".join(f"{n.number}{'' if n.sms_enabled else ' (no SMS)'}"
                    for n in state.numbers.values()))
    emit(fmt, {"type": "api_emulator", "api_base": server.api_base,
               "auth_url": server.auth_url, "port": server.port},
         f"IPSMS_API_BASE={server.api_base} IPSMS_AUTH_URL={server.auth_url}")


class RequestLog:
    """The emulator's stdout: one line per API request. When the reader goes away
    (``ipsms api-emulator | head -1``) it stops writing and the emulator keeps answering:
    a log line must never turn an answer into a 500."""

    def __init__(self, fmt: OutputFormat) -> None:
        self.fmt = fmt
        self.closed = False

    def __call__(self, rec: RecordedRequest) -> None:
        if self.closed:
            return
        shown = {"type": "emulator_request", **rec.to_dict(), "time": iso_time(rec.time)}
        try:
            emit(self.fmt, shown, printable(f"{shown['time'][11:23]} {rec.method} {rec.path} "
                                            f"{rec.status}"))
        except (OSError, ValueError):  # broken pipe, or stdout closed
            self.closed = True
            _silence_stdout()


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null, so the flush at exit does not fail on the closed pipe."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
