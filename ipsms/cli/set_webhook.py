"""``ipsms set-webhook``: point numbers' inbound SMS webhook at a URL through IntelePeer's
configuration API (intelepeer.md section 2); ``--restore`` and ``--history`` from what ipsms
changed before."""

from typing import TYPE_CHECKING, Annotated

import typer

from ipsms import defaults
from ipsms.cli import help as help_text
from ipsms.cli.api import DRY_RUN_TOKEN, show_dry_run, warn_cpaas_once
from ipsms.cli.help import epilog
from ipsms.cli.io import current, emit
from ipsms.cli.options import (
    ApiBaseOption,
    ApiTimeout,
    AuthSchemeOption,
    AuthUrlOption,
    FormatOption,
    OutputFormat,
    RegionOption,
    TokenOption,
    UsernameOption,
    api_settings,
    auth_source,
    resolve_format,
)
from ipsms.errors import ApiError, UsageError
from ipsms.intelepeer.settings import AuthScheme, Region

if TYPE_CHECKING:
    from ipsms.intelepeer.credentials import AuthSource
    from ipsms.intelepeer.settings import ApiSettings
    from ipsms.intelepeer.webhooks import ChangeResult, WebhookChange, WebhookHistory

EPILOG = epilog(
    "ipsms set-webhook +13038675309 https://example.com/sms",
    "ipsms set-webhook +13038675309 https://example.com/sms --dry-run",
    "ipsms set-webhook --restore +13038675309",
    "ipsms set-webhook --history",
    exit_codes=(
        help_text.OK,
        help_text.USAGE,
        (7, "the API refused the request"),
        (8, "missing or wrong credentials"),
        (10, "no such number or history entry"),
    ),
)


def set_webhook(
    args: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="TN... URL",
            show_default=False,
            help="Numbers (E.164 or short code 1-1234), then the webhook URL.",
        ),
    ] = None,
    restore: Annotated[
        bool,
        typer.Option("--restore", help="Put back the URL ipsms replaced on the given numbers."),
    ] = False,
    history: Annotated[
        bool,
        typer.Option(
            "--history", help="List the changes ipsms made (of the given numbers, or all)."
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the exact request instead of sending it.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Set a URL IntelePeer cannot reach (localhost, private ranges)."
        ),
    ] = False,
    output_format: FormatOption = None,
    region: RegionOption = Region.us,
    api_base: ApiBaseOption = None,
    auth_url: AuthUrlOption = None,
    auth_scheme: AuthSchemeOption = AuthScheme.bearer,
    token: TokenOption = None,
    username: UsernameOption = None,
    timeout: ApiTimeout = defaults.API_TIMEOUT,
) -> None:
    """Point numbers' inbound SMS webhook at a URL through IntelePeer's API."""
    import asyncio

    from ipsms.intelepeer.client import webhook_request
    from ipsms.intelepeer.webhooks import WebhookHistory, plan_restore, plan_set

    fmt, words, store = resolve_format(output_format), list(args or []), WebhookHistory()
    if history:
        return _show_history(store, words, fmt, restore)
    settings = api_settings(region, api_base, auth_url, auth_scheme, timeout)
    if restore:
        changes = plan_restore(words, store, settings.base_url)
    elif len(words) < 2:
        raise UsageError(
            "give the number(s) and then the webhook URL",
            hint="usage: ipsms set-webhook TN [TN ...] URL",
        )
    else:
        changes = [plan_set(words[:-1], words[-1], force=force)]
    for warning in dict.fromkeys(w for c in changes for w in c.warnings):
        current().notice(f"ipsms set-webhook: warning: {warning}")
    if dry_run:
        return show_dry_run(
            [webhook_request(settings, c.numbers, c.url, DRY_RUN_TOKEN) for c in changes], fmt
        )
    auth = auth_source(token, username)
    results = asyncio.run(_apply(settings, auth, changes, store))
    _show_results(results, fmt)
    if any(r.ok for r in results):
        warn_cpaas_once(settings.base_url, auth)
    restored = tuple(r.number for r in results if r.ok and r.action == "restore")
    if restored:  # a listener that died holding them no longer does
        from ipsms.intelepeer.lease import Leases

        Leases().release_numbers(restored)
    failed = [r for r in results if not r.ok]
    if failed:
        raise ApiError(
            f"{len(failed)} of {len(results)} numbers were not updated: "
            + ", ".join(r.number for r in failed),
            hint="see each number's reason above; the others were updated",
        )
    return None


# -- helpers ------------------------------------------------------------------------------


async def _apply(
    settings: "ApiSettings",
    auth: "AuthSource",
    changes: "list[WebhookChange]",
    store: "WebhookHistory",
) -> "list[ChangeResult]":
    from ipsms.intelepeer.client import IntelePeerClient
    from ipsms.intelepeer.credentials import CredentialStore
    from ipsms.intelepeer.webhooks import apply_change

    results: list[ChangeResult] = []
    async with IntelePeerClient(settings, auth, store=CredentialStore()) as client:
        for change in changes:
            results.extend(await apply_change(change, client, store))
    return results


def _show_results(results: "list[ChangeResult]", fmt: OutputFormat) -> None:
    if fmt is OutputFormat.table:
        from ipsms.ui.api import results_table, success_line

        console = current().console()
        if not any(r.reply_status == 207 for r in results):
            for r in results:
                console.print(success_line(r))
        else:
            console.print(results_table(results))
        return
    from ipsms.text import printable

    for r in results:
        verb = "restored to" if r.action == "restore" else "set to"
        human = (
            f"{r.number} {verb} {r.to_dict()['url']}"
            if r.ok
            else f"{r.number} failed ({r.status or '?'}): {r.reason}"
        )
        emit(fmt is OutputFormat.json, r.to_dict(), printable(human))


def _show_history(
    store: "WebhookHistory", numbers: list[str], fmt: OutputFormat, restore: bool
) -> None:
    if restore:
        raise UsageError("--history and --restore do not go together")
    from ipsms.text import printable

    entries = store.entries(numbers)
    if not entries:
        current().err(
            "ipsms set-webhook: no webhook changes recorded"
            + (f" for {', '.join(numbers)}" if numbers else "")
        )
    elif fmt is OutputFormat.table:
        from ipsms.ui.api import history_table

        out = current().console()
        out.print(history_table(entries, out.width))
    else:
        for e in entries:
            d = e.to_dict()
            emit(
                fmt is OutputFormat.json,
                d,
                printable(
                    f"{d['time']} #{e.id} {e.number} {e.action} {d['url']} "
                    f"(before: {d['previous'] or '-'}) api: {d['api'] or '?'}"
                ),
            )
