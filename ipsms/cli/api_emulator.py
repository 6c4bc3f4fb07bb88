"""``ipsms api-emulator``: run the bundled emulator of IntelePeer's configuration API on a local
port (docs/api-emulator.md), logging each API request on stdout."""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated

import typer

from ipsms import defaults
from ipsms.cli import help as help_text
from ipsms.cli.help import epilog
from ipsms.cli.io import current, emit, ignore_stop_signals
from ipsms.cli.options import FormatOption, OutputFormat, resolve_format
from ipsms.errors import UsageError
from ipsms.intelepeer.settings import MultiStatus

if TYPE_CHECKING:
    from ipsms.intelepeer.emulator import EmulatorServer, RecordedRequest

EPILOG = epilog(
    "ipsms api-emulator",
    'eval "$(ipsms api-emulator --env)"   # in another shell: use it',
    "ipsms api-emulator --port 0   # then paste the printed export lines",
    exit_codes=(help_text.OK, help_text.USAGE, (4, "the port is busy")),
)


def api_emulator(
    port: Annotated[
        int,
        typer.Option(
            envvar="IPSMS_EMULATOR_PORT",
            min=0,
            max=65535,
            help="Port on 127.0.0.1; 0 picks a free one.",
        ),
    ] = defaults.EMULATOR_PORT,
    users: Annotated[
        list[str] | None,
        typer.Option(
            "--user",
            metavar="NAME:PASSWORD",
            help="An API user (repeatable; default: the demo user of docs/api-emulator.md).",
        ),
    ] = None,
    numbers: Annotated[
        list[str] | None,
        typer.Option(
            "--number", metavar="TN", help="A number of the account, enabled for SMS (repeatable)."
        ),
    ] = None,
    numbers_no_sms: Annotated[
        list[str] | None,
        typer.Option(
            "--number-no-sms",
            metavar="TN",
            help="A number of the account not enabled for SMS (repeatable).",
        ),
    ] = None,
    token_lifetime: Annotated[
        float, typer.Option(min=0.001, help="Seconds a token lives.")
    ] = defaults.EMULATOR_TOKEN_LIFETIME,
    provision_seconds: Annotated[
        float, typer.Option(min=0, help="Seconds a provisioning stays in progress (409 meanwhile).")
    ] = defaults.EMULATOR_PROVISION_SECONDS,
    multi_status: Annotated[
        MultiStatus,
        typer.Option(help="Several endpoints: always 207, or 207 only when some fail (mixed)."),
    ] = MultiStatus.always,
    env: Annotated[
        bool,
        typer.Option(
            "--env",
            help="Print the shell lines that point ipsms at the emulator on --port "
            '(and log in as its user), then exit: eval "$(ipsms api-emulator --env)".',
        ),
    ] = False,
    output_format: FormatOption = None,
) -> None:
    """Run a local IntelePeer API emulator (authenticate, set-webhook, provision) for tests.

    Binds 127.0.0.1 only; see docs/api-emulator.md for its answers and control endpoints."""
    import asyncio

    from ipsms.intelepeer.emulator import EmulatorServer, build_state, serve

    if env:
        return _print_env(port, _parse_users(users or []))
    fmt = resolve_format(output_format)
    state = build_state(
        _parse_users(users or []),
        numbers or [],
        numbers_no_sms or [],
        token_lifetime=token_lifetime,
        provision_seconds=provision_seconds,
        multi_status=multi_status,
    )
    state.observers.append(RequestLog(fmt))
    server = EmulatorServer(state, "127.0.0.1", port)
    try:
        asyncio.run(serve(server, lambda srv: _emulator_ready(srv, fmt)))
    finally:
        ignore_stop_signals()  # the process ends now: no signal may cut it short
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
    env = current()
    env.notice(
        f"ipsms api-emulator: IntelePeer API emulator on {server.api_base} "
        f"(port {server.port}); Ctrl-C stops it"
    )
    env.notice(
        f"ipsms api-emulator: users: {', '.join(state.users)}; numbers: "
        + ", ".join(
            f"{n.number}{'' if n.sms_enabled else ' (no SMS)'}" for n in state.numbers.values()
        )
    )
    lines = env_lines(server.api_base, server.auth_url, _login(state.users))
    if fmt is OutputFormat.json:
        env.notice(
            f'ipsms api-emulator: in another shell: eval "$(ipsms api-emulator --env '
            f'--port {server.port})", or paste:'
        )
        for line in lines:
            env.notice(line)
    else:  # the lines on stdout are the ones to paste
        env.notice(
            f"ipsms api-emulator: paste the lines below into another shell, or run: "
            f'eval "$(ipsms api-emulator --env --port {server.port})"'
        )
    emit(
        fmt is OutputFormat.json,
        {
            "type": "api_emulator",
            "api_base": server.api_base,
            "auth_url": server.auth_url,
            "port": server.port,
        },
        "\n".join(lines),
    )


def _login(users: Mapping[str, str]) -> tuple[str, str | None] | None:
    """Whom the shell lines log in as: the demo user with its documented password; a single
    ``--user`` by name only (its password is the caller's, not ours to print)."""
    from ipsms.intelepeer.emulator import DEMO_PASSWORD, DEMO_USER

    if dict(users) == {DEMO_USER: DEMO_PASSWORD}:
        return DEMO_USER, DEMO_PASSWORD
    if len(users) == 1:
        return next(iter(users)), None
    return None


def env_lines(api_base: str, auth_url: str, login: tuple[str, str | None] | None) -> list[str]:
    """``export`` lines for sh, bash and zsh (values quoted when they need it)."""
    import shlex

    lines = [
        f"export IPSMS_API_BASE={shlex.quote(api_base)} IPSMS_AUTH_URL={shlex.quote(auth_url)}"
    ]
    if login is not None:
        user, password = login
        creds = f"export IPSMS_USERNAME={shlex.quote(user)}"
        if password is not None:
            creds += f" IPSMS_PASSWORD={shlex.quote(password)}"
        lines.append(creds)
    return lines


def _print_env(port: int, users: dict[str, str]) -> None:
    """``--env``: the lines for the emulator on ``port`` (started, or about to be); stdout
    gets them whatever --format says, since ``eval "$(...)"`` reads a pipe."""
    import socket

    from ipsms.intelepeer.client import AUTH_PATH
    from ipsms.intelepeer.emulator import DEMO_PASSWORD, DEMO_USER

    if port == 0:
        raise UsageError(
            "--env needs the emulator's port: 0 means a free one, chosen when it starts",
            hint="give the port it printed: ipsms api-emulator --env --port N",
        )
    base = f"http://127.0.0.1:{port}"
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
    except OSError:
        current().notice(
            f"ipsms api-emulator: note: nothing listens on 127.0.0.1:{port} "
            f"yet; start it with `ipsms api-emulator --port {port}`"
        )
    current().write_lines(
        env_lines(base, base + AUTH_PATH, _login(users or {DEMO_USER: DEMO_PASSWORD}))
    )


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
            emit(
                self.fmt is OutputFormat.json,
                shown,
                printable(f"{shown['time'][11:23]} {rec.method} {rec.path} {rec.status}"),
            )
        except (OSError, ValueError):  # broken pipe, or stdout closed
            self.closed = True
            current().silence_stdout()
