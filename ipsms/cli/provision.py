"""``ipsms provision``: enable SMS on a long code through IntelePeer's configuration API."""

from typing import TYPE_CHECKING, Annotated

import typer

from ipsms import defaults
from ipsms.cli import help as help_text
from ipsms.cli.api import DRY_RUN_TOKEN, show_dry_run
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
from ipsms.errors import ApiError
from ipsms.intelepeer.settings import AuthScheme, Region

if TYPE_CHECKING:
    from ipsms.intelepeer.client import ProvisionReply
    from ipsms.intelepeer.credentials import AuthSource
    from ipsms.intelepeer.settings import ApiSettings

EPILOG = epilog(
    "ipsms provision +13038675309",
    "ipsms provision +13038675309 --dry-run",
    exit_codes=(
        help_text.OK,
        help_text.USAGE,
        (7, "the API refused the request"),
        (8, "missing or wrong credentials"),
    ),
)


def provision(
    number: Annotated[
        str, typer.Argument(metavar="TN", show_default=False, help="One E.164 long code.")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the exact request instead of sending it.")
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
    """Enable SMS on a long code (202: requested; usually done within minutes)."""
    import asyncio

    from ipsms.intelepeer.client import provision_request
    from ipsms.intelepeer.webhooks import check_long_code

    fmt = resolve_format(output_format)
    settings = api_settings(region, api_base, auth_url, auth_scheme, timeout)
    check_long_code(number)
    if dry_run:
        return show_dry_run([provision_request(settings, number, DRY_RUN_TOKEN)], fmt)
    reply = asyncio.run(_provision(settings, auth_source(token, username), number))
    _show_provision(reply, fmt)
    if reply.in_progress:
        raise ApiError(
            f"IntelePeer answered 409 for {number}: {reply.reason}",
            hint="wait for it to finish (usually minutes), then try again",
        )
    return None


async def _provision(settings: "ApiSettings", auth: "AuthSource", number: str) -> "ProvisionReply":
    from ipsms.intelepeer.client import IntelePeerClient
    from ipsms.intelepeer.credentials import CredentialStore

    async with IntelePeerClient(settings, auth, store=CredentialStore()) as client:
        return await client.provision(number)


def _show_provision(reply: "ProvisionReply", fmt: OutputFormat) -> None:
    from ipsms.text import printable

    record = {
        "type": "provision",
        "number": reply.number,
        "status": reply.status,
        "state": reply.state,
        "reason": reply.reason,
    }
    if fmt is OutputFormat.table:
        from ipsms.ui.api import provision_line

        current().console().print(provision_line(reply))
    else:
        emit(
            fmt is OutputFormat.json,
            record,
            printable(f"{reply.number} provisioning {reply.state} ({reply.status})"),
        )
