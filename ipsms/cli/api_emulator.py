"""``ipsms api-emulator``: run the bundled emulator of IntelePeer's configuration API on a local
port (docs/api-emulator.md), logging each API request on stdout."""


from typing import TYPE_CHECKING, Annotated

import typer

from ipsms import defaults
from ipsms.cli import help as help_text
from ipsms.cli.help import epilog
from ipsms.cli.io import current, emit
from ipsms.cli.options import FormatOption, OutputFormat, resolve_format
from ipsms.errors import UsageError
from ipsms.intelepeer.settings import MultiStatus

if TYPE_CHECKING:
    from ipsms.intelepeer.emulator import EmulatorServer, RecordedRequest

EPILOG = epilog("ipsms api-emulator",
                "ipsms api-emulator --port 0   # then use the printed settings",
                exit_codes=(help_text.OK, help_text.USAGE, (4, "the port is busy")))


def api_emulator(
    port: Annotated[int, typer.Option(envvar="IPSMS_EMULATOR_PORT", min=0, max=65535,
                                      help="Port on 127.0.0.1; 0 picks a free one.")]
    = defaults.EMULATOR_PORT,
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
    = defaults.EMULATOR_TOKEN_LIFETIME,
    provision_seconds: Annotated[float, typer.Option(
        min=0, help="Seconds a provisioning stays in progress (409 meanwhile).")]
    = defaults.EMULATOR_PROVISION_SECONDS,
    multi_status: Annotated[MultiStatus, typer.Option(
        help="Several endpoints: always 207, or 207 only when some fail (mixed).")]
    = MultiStatus.always,
    output_format: FormatOption = None,
) -> None:
    """Run a local IntelePeer API emulator (authenticate, set-webhook, provision) for tests.

    Binds 127.0.0.1 only; see docs/api-emulator.md for its answers and control endpoints."""
    import asyncio

    from ipsms.intelepeer.emulator import EmulatorServer, build_state, serve

    fmt = resolve_format(output_format)
    state = build_state(_parse_users(users or []), numbers or [], numbers_no_sms or [],
                        token_lifetime=token_lifetime, provision_seconds=provision_seconds,
                        multi_status=multi_status)
    state.observers.append(RequestLog(fmt))
    server = EmulatorServer(state, "127.0.0.1", port)
    asyncio.run(serve(server, lambda srv: _emulator_ready(srv, fmt)))
    current().err("ipsms api-emulator: stopped")



# -- helpers ------------------------------------------------------------------------------

def _parse_users(values: list[str]) -> dict[str, str]:
    users = {}
    for value in values:
        name, sep, password = value.partition(":")
        if not sep or not name or not password:
            raise UsageError(f"--user wants NAME:PASSWORD, got {value.split(':')[0]!r}:…")
        users[name] = password
    return users


def _emulator_ready(server: "EmulatorServer", fmt: OutputFormat) -> None:
    state = server.state
    current().err(f"ipsms api-emulator: IntelePeer API emulator on {server.api_base} "
        f"(port {server.port}); Ctrl-C stops it")
    current().err(f"ipsms api-emulator: use --api-base {server.api_base} "
                  f"--auth-url {server.auth_url}")
    current().err(f"ipsms api-emulator: users: {', '.join(state.users)}; numbers: "
        + ", ".join(f"{n.number}{'' if n.sms_enabled else ' (no SMS)'}"
                    for n in state.numbers.values()))
    emit(fmt is OutputFormat.json, {"type": "api_emulator", "api_base": server.api_base,
               "auth_url": server.auth_url, "port": server.port},
         f"IPSMS_API_BASE={server.api_base} IPSMS_AUTH_URL={server.auth_url}")


class RequestLog:
    """The emulator's stdout: one line per API request. When the reader goes away
    (``ipsms api-emulator | head -1``) it stops writing and the emulator keeps answering:
    a log line must never turn an answer into a 500."""

    def __init__(self, fmt: OutputFormat) -> None:
        self.fmt = fmt
        self.closed = False

    def __call__(self, rec: "RecordedRequest") -> None:
        if self.closed:
            return
        from ipsms.text import iso_time, printable

        shown = {"type": "emulator_request", **rec.to_dict(), "time": iso_time(rec.time)}
        try:
            emit(self.fmt is OutputFormat.json, shown,
                 printable(f"{shown['time'][11:23]} {rec.method} {rec.path} {rec.status}"))
        except (OSError, ValueError):  # broken pipe, or stdout closed
            self.closed = True
            current().silence_stdout()
