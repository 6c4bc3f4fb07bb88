"""``ipsms listen``: receive, verify, record and show IntelePeer webhooks."""

import contextlib
import os
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ipsms import defaults
from ipsms.cli import help as help_text
from ipsms.cli.help import epilog
from ipsms.cli.io import current, ignore_stop_signals
from ipsms.cli.options import (
    DURATION_METAVAR,
    ApiBaseOption,
    AuthSchemeOption,
    AuthUrlOption,
    DbOption,
    FormatOption,
    HmacOption,
    OutputFormat,
    RegionOption,
    SecretOption,
    SignatureMode,
    TokenOption,
    UsernameOption,
    api_settings,
    auth_source,
    basic_auth_credentials,
    duration,
    flag,
    parse_address,
    parse_size,
    resolve_format,
)
from ipsms.errors import UsageError, word_settings
from ipsms.intelepeer.settings import AuthScheme, Region

if TYPE_CHECKING:
    from ipsms.intelepeer.credentials import AuthSource
    from ipsms.intelepeer.lease import WebhookLease
    from ipsms.intelepeer.settings import ApiSettings
    from ipsms.listen.app import EventSink
    from ipsms.listen.events import ListenStats
    from ipsms.listen.session import Control, Inspect, Session
    from ipsms.ui.live import LiveView
    from ipsms.ui.stream_sink import StreamSink

EPILOG = epilog(
    "IPSMS_SECRET=... ipsms listen --port 8765",
    "ipsms simulate http://127.0.0.1:8765/   # in another terminal",
    "ipsms listen --tunnel --set-webhook +13038675309",
    "ipsms listen --forward-to http://127.0.0.1:3000/sms --format json | jq .",
    exit_codes=(
        (0, "stopped by Ctrl-C, SIGTERM, SIGHUP or a closed stdout"),
        help_text.USAGE,
        (3, "the message store cannot be used"),
        (4, "the port is busy or the host cannot be bound"),
        (9, "the ngrok tunnel failed"),
        (130, "a third Ctrl-C while stopping: quit, a webhook left as it was"),
    ),
)


def _read_timeout(text: str | float) -> float:
    seconds = duration(text)
    if not 0.1 <= seconds <= 3600:
        raise typer.BadParameter(f"{text!r} is not between 100ms and 1h")
    return seconds


def _positive(text: str | float) -> float:
    seconds = duration(text)
    if not 0 < seconds <= 3600:
        raise typer.BadParameter(f"{text!r} is not between 0 and 1h")
    return seconds


def _delay(text: str | float) -> float:
    seconds = duration(text)
    if seconds > 600:
        raise typer.BadParameter(f"{text!r} is longer than 10m")
    return seconds


class EventLoop(StrEnum):
    auto = "auto"
    asyncio = "asyncio"
    uvloop = "uvloop"


FAULTS = "Fault injection (answer like a failing app)"
LEASE = "Webhook (point a number at this listener while it runs)"
TUNNEL = "Tunnel (ngrok)"
INSPECT = "Web inspector"
TUNNEL_URL = "https://tunnel.invalid/"  # stands for the tunnel's URL until it is open


def listen(
    host: Annotated[
        str, typer.Option(envvar="IPSMS_HOST", help="Address to bind.")
    ] = defaults.LISTEN_HOST,
    port: Annotated[
        int,
        typer.Option(
            envvar="IPSMS_PORT",
            min=0,
            max=65535,
            help="Port to bind; 0 picks a free one and prints it.",
        ),
    ] = defaults.LISTEN_PORT,
    secret: SecretOption = None,
    signature_mode: Annotated[
        SignatureMode,
        typer.Option(
            envvar="IPSMS_SIGNATURE_MODE",
            case_sensitive=False,
            help="plain: signature equals the secret; hmac: HMAC of refid+message; "
            "auto: accept either and say which matched.",
        ),
    ] = SignatureMode.auto,
    hmac_variant: HmacOption = defaults.HMAC_VARIANT,
    db: DbOption = None,
    output_format: FormatOption = None,
    max_body: Annotated[
        str,
        typer.Option(envvar="IPSMS_MAX_BODY", help="Largest body accepted; bigger ones get 413."),
    ] = "1MiB",
    accept_bad_signature: Annotated[
        bool,
        typer.Option(
            help="Answer 200 (flagged) instead of 403 when a signature is invalid or missing."
        ),
    ] = False,
    read_timeout: Annotated[
        float,
        typer.Option(
            envvar="IPSMS_READ_TIMEOUT",
            parser=_read_timeout,
            metavar=DURATION_METAVAR,
            help="How long a client has to send a request's headers, and again its body "
            "(100ms to 1h); slower clients are cut off (408).",
        ),
    ] = defaults.READ_TIMEOUT,
    max_connections: Annotated[
        int,
        typer.Option(
            envvar="IPSMS_MAX_CONNECTIONS",
            min=1,
            max=100_000,
            help="Open connections allowed at once; more are answered 503 and closed.",
        ),
    ] = defaults.MAX_CONNECTIONS,
    forward_to: Annotated[
        str | None,
        typer.Option(
            "--forward-to",
            envvar="IPSMS_FORWARD_TO",
            metavar="URL",
            help="Relay each accepted message to your app (exact body, headers, X-Forwarded-*) "
            "and answer with the app's own status, headers and body: IntelePeer's retries follow "
            "what your app does.",
        ),
    ] = None,
    forward_timeout: Annotated[
        float,
        typer.Option(
            "--forward-timeout",
            parser=_positive,
            metavar=DURATION_METAVAR,
            help="How long the app has to answer; then the sender gets 504.",
        ),
    ] = defaults.FORWARD_TIMEOUT,
    basic_auth: Annotated[
        str | None,
        typer.Option(
            "--basic-auth",
            envvar="IPSMS_BASIC_AUTH",
            metavar="USER:PASS",
            show_default=False,
            rich_help_panel=TUNNEL,
            help="Answer 401 to requests without these credentials; the "
            "webhook URL ipsms sets carries them.",
        ),
    ] = None,
    random_path: Annotated[
        bool,
        typer.Option(
            "--random-path",
            rich_help_panel=TUNNEL,
            help="Serve only under an unguessable path (404 elsewhere); the webhook URL "
            "carries it.",
        ),
    ] = False,
    tunnel: Annotated[
        bool,
        typer.Option(
            "--tunnel",
            rich_help_panel=TUNNEL,
            help="Open an ngrok tunnel to the listener (pyngrok; the agent must be installed) and "
            "print its public URL.",
        ),
    ] = False,
    ngrok_authtoken: Annotated[
        str | None,
        typer.Option(
            "--ngrok-authtoken",
            envvar="NGROK_AUTHTOKEN",
            show_default=False,
            rich_help_panel=TUNNEL,
            help="Your ngrok authtoken (prefer NGROK_AUTHTOKEN).",
        ),
    ] = None,
    ngrok_path: Annotated[
        str | None,
        typer.Option(
            "--ngrok-path",
            envvar="NGROK_PATH",
            metavar="PATH",
            rich_help_panel=TUNNEL,
            help="The ngrok agent binary (default: ngrok on PATH; never downloaded).",
        ),
    ] = None,
    ngrok_region: Annotated[
        str | None,
        typer.Option(
            "--ngrok-region", rich_help_panel=TUNNEL, help="ngrok region (us, eu, ap, ...)."
        ),
    ] = None,
    ngrok_domain: Annotated[
        str | None,
        typer.Option(
            "--ngrok-domain",
            rich_help_panel=TUNNEL,
            help="A reserved ngrok domain for a URL that stays the same.",
        ),
    ] = None,
    tunnel_timeout: Annotated[
        float,
        typer.Option(
            "--tunnel-timeout",
            parser=_positive,
            metavar=DURATION_METAVAR,
            rich_help_panel=TUNNEL,
            help="How long the agent has to open the tunnel.",
        ),
    ] = 15.0,
    set_webhook: Annotated[
        list[str] | None,
        typer.Option(
            "--set-webhook",
            metavar="TN",
            rich_help_panel=LEASE,
            help="Point this number's inbound webhook at the listener's public URL while it runs, "
            "and put the previous one back on exit (repeatable; needs --tunnel or --public-url).",
        ),
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            envvar="IPSMS_PUBLIC_URL",
            metavar="URL",
            rich_help_panel=LEASE,
            help="The URL IntelePeer reaches this listener at (a tunnel or proxy you run).",
        ),
    ] = None,
    restore_to: Annotated[
        str | None,
        typer.Option(
            "--restore-to",
            metavar="URL",
            rich_help_panel=LEASE,
            help="On exit, point the numbers at URL instead of their previous webhook.",
        ),
    ] = None,
    keep_webhook: Annotated[
        bool,
        typer.Option(
            "--keep-webhook",
            rich_help_panel=LEASE,
            help="On exit, leave the numbers pointing at the listener.",
        ),
    ] = False,
    region: RegionOption = Region.us,
    api_base: ApiBaseOption = None,
    auth_url: AuthUrlOption = None,
    auth_scheme: AuthSchemeOption = AuthScheme.bearer,
    token: TokenOption = None,
    username: UsernameOption = None,
    api_timeout: Annotated[
        float,
        typer.Option(
            "--api-timeout",
            envvar="IPSMS_API_TIMEOUT",
            parser=_positive,
            metavar=DURATION_METAVAR,
            rich_help_panel="IntelePeer API",
            help="How long to wait for each answer of IntelePeer's API.",
        ),
    ] = defaults.API_TIMEOUT,
    fail_first: Annotated[
        int,
        typer.Option(
            "--fail-first",
            min=0,
            max=1000,
            rich_help_panel=FAULTS,
            help="For each refid, answer its first N attempts 500 (still recorded), then "
            "normally: IntelePeer's retries, rehearsed.",
        ),
    ] = 0,
    status: Annotated[
        int | None,
        typer.Option(
            "--status",
            min=200,
            max=599,
            metavar="CODE",
            rich_help_panel=FAULTS,
            help="Answer every message CODE instead of 200 (still recorded).",
        ),
    ] = None,
    delay: Annotated[
        float,
        typer.Option(
            "--delay",
            parser=_delay,
            metavar=DURATION_METAVAR,
            rich_help_panel=FAULTS,
            help="Answer each request this late (up to 10m), to trigger a sender's timeout.",
        ),
    ] = 0.0,
    inspect: Annotated[
        str | None,
        typer.Option(
            "--inspect",
            envvar="IPSMS_INSPECT",
            metavar="ADDR",
            rich_help_panel=INSPECT,
            help="Where the web inspector answers, HOST:PORT or PORT (default "
            f"{defaults.INSPECT_HOST}:{defaults.INSPECT_PORT}, or a free port when that one is "
            "busy); off: no inspector. Its URL, with its token, is printed at start.",
        ),
    ] = None,
    no_inspect: Annotated[
        bool,
        typer.Option(
            "--no-inspect", rich_help_panel=INSPECT, help="Do not serve the web inspector."
        ),
    ] = False,
    inspect_allow_remote: Annotated[
        bool,
        typer.Option(
            "--inspect-allow-remote",
            rich_help_panel=INSPECT,
            help="Let --inspect bind an address other than loopback (the token is still needed).",
        ),
    ] = False,
    loop: Annotated[
        EventLoop,
        typer.Option(
            "--loop",
            case_sensitive=False,
            help="Event loop: uvloop serves more messages per CPU second (install it with "
            "pip install 'ipsms[fast]'); auto uses it when it is installed.",
        ),
    ] = EventLoop.auto,
) -> None:
    """Receive IntelePeer webhooks on a local port: verify, record and show each one."""
    import secrets

    _said.clear()

    from ipsms.deliver.engine import validate_url
    from ipsms.home import default_db_path
    from ipsms.listen.app import ListenConfig
    from ipsms.listen.faults import Faults
    from ipsms.signature import Mode, parse_variant

    config = ListenConfig(
        secret=secret or None,
        signature_mode=Mode(signature_mode.value),
        hmac_variant=parse_variant(hmac_variant),
        max_body=parse_size(max_body) if max_body else defaults.MAX_BODY,
        accept_bad_signature=accept_bad_signature,
        read_timeout=read_timeout,
        max_connections=max_connections,
        faults=Faults(fail_first=fail_first, status=status, delay=delay),
        forward_to=validate_url(forward_to) if forward_to else None,
        forward_timeout=forward_timeout,
        basic_auth=basic_auth_credentials(basic_auth),
        path_prefix="/" + secrets.token_urlsafe(16) if random_path else None,
    )
    fmt = resolve_format(output_format)
    if fmt is OutputFormat.table and not current().stdout_isatty:
        # A live display on a pipe would print nothing until exit.
        err("ipsms listen: warning: --format table needs a terminal; printing plain lines")
        fmt = OutputFormat.plain
    db_path = db or default_db_path()
    tunnel_config = None
    if tunnel:
        from ipsms.listen.tunnel import TunnelConfig, find_agent

        if public_url:
            raise UsageError(
                "--tunnel and --public-url do not go together",
                hint="the tunnel's URL is the public URL",
            )
        tunnel_config = TunnelConfig(
            authtoken=ngrok_authtoken,
            agent=find_agent(ngrok_path),
            region=ngrok_region,
            domain=ngrok_domain,
            startup_timeout=tunnel_timeout,
        )
        public_url = TUNNEL_URL  # the lease's URL until the tunnel's is known
    lease = None
    if set_webhook or restore_to or keep_webhook:
        # What the flags say is checked before credentials are looked for or the API called.
        numbers, lease_url, restore_url = _lease_options(
            set_webhook or [], public_url, restore_to, keep_webhook, via_tunnel=tunnel
        )
        lease = _lease(
            numbers,
            lease_url,
            restore_url,
            keep_webhook,
            api_settings(region, api_base, auth_url, auth_scheme, api_timeout),
            auth_source(token, username),
            via_tunnel=tunnel,
        )
    from ipsms.loops import loop_factory, run_with_loop

    loop_name, _ = loop_factory(loop.value)  # a missing uvloop fails before anything starts
    from ipsms.listen.session import Session
    from ipsms.ui.listen_report import summary

    session = Session(
        config,
        host,
        port,
        db_path,
        lease,
        tunnel_config,
        inspect_plan(inspect, no_inspect, inspect_allow_remote),
    )
    try:
        stats = run_with_loop(_serve(session, fmt, loop_name), loop.value)
    finally:
        ignore_stop_signals()  # the process ends now: no signal may cut its report short
    for line in summary(stats, db_path, _reader(db_path)):
        err(line)


def inspect_plan(address: str | None, off: bool, allow_remote: bool) -> "Inspect | None":
    """Where the inspector answers (``--inspect``, ``--no-inspect``), and its token
    (``IPSMS_INSPECT_TOKEN``, else random for this run)."""
    import secrets

    from ipsms.hosts import is_loopback
    from ipsms.listen.session import Inspect

    if off or (address or "").strip().lower() == "off":
        return None
    host, port = parse_address(
        address or f"{defaults.INSPECT_HOST}:{defaults.INSPECT_PORT}", "--inspect"
    )
    if not is_loopback(host) and not allow_remote:
        raise UsageError(
            f"--inspect {address}: the inspector binds loopback only",
            hint="add --inspect-allow-remote to serve it on another address "
            "(the token is still needed)",
        )
    token = current().variables.get("IPSMS_INSPECT_TOKEN") or secrets.token_urlsafe(18)
    return Inspect(host, port, token, fall_back=address is None, allow_remote=allow_remote)


def _reader(db_path: Path) -> str:
    """The command that lists what was recorded in ``db_path``."""
    import shlex

    from ipsms.home import default_db_path

    if db_path == default_db_path():
        return "ipsms messages list"
    return f"ipsms messages list --db {shlex.quote(str(db_path))}"


# The stderr lines said since this listen started (until its live table takes the screen):
# the table keeps them on screen, and draws them again after a resize blanked it.
_said: list[str] = []


def err(line: str, *, always: bool = False) -> None:
    """A line on stderr (``--quiet`` hides it unless ``always``: errors, and why the listener
    stopped); a terminal that went away (SIGHUP) must not stop the clean-up."""
    env = current()
    if env.quiet and not always:
        return
    with contextlib.suppress(OSError, ValueError):
        env.err(line)
        _said.append(line)


def _lease_options(
    numbers: list[str],
    public_url: str | None,
    restore_to: str | None,
    keep: bool,
    *,
    via_tunnel: bool,
) -> tuple[tuple[str, ...], str, str | None]:
    """The lease flags checked: the numbers, the public URL and --restore-to's URL."""
    from ipsms.deliver.engine import validate_url
    from ipsms.intelepeer.webhooks import check_endpoints, check_webhook_url

    if not numbers:
        raise UsageError("--restore-to and --keep-webhook go with --set-webhook TN")
    if public_url is None:
        raise UsageError(
            "--set-webhook needs the URL IntelePeer reaches this listener at",
            hint="pass --tunnel, or --public-url URL (your tunnel or proxy)",
        )
    if restore_to is not None and keep:
        raise UsageError("--restore-to and --keep-webhook do not go together")
    checked = check_endpoints(numbers)
    url = validate_url(public_url)
    if not via_tunnel:
        check_webhook_url(url)  # its warnings are shown when the webhook is set
    return checked, url, validate_url(restore_to) if restore_to else None


def _lease(
    numbers: tuple[str, ...],
    public_url: str,
    restore_to: str | None,
    keep: bool,
    settings: "ApiSettings",
    auth: "AuthSource",
    *,
    via_tunnel: bool,
) -> "WebhookLease":
    from ipsms.intelepeer.lease import Leases, WebhookLease
    from ipsms.redact import mask_url

    for stale in Leases().stale():
        err(
            f"ipsms listen: warning: a listener (pid {stale.pid}) pointed "
            f"{', '.join(stale.numbers)} at {stale.url} and did not put "
            f"{'it' if len(stale.numbers) == 1 else 'them'} back; run `ipsms set-webhook "
            f"--restore {' '.join(stale.numbers)}`"
        )
    lease = WebhookLease(
        settings,
        auth,
        numbers,
        public_url,
        restore_to=restore_to,
        keep=keep,
        trusted_url=via_tunnel,
    )
    if not keep and restore_to is None:
        for number in lease.unknown_previous():
            err(
                f"ipsms listen: warning: ipsms does not know the webhook {number} has now "
                "(IntelePeer's API cannot read it), so it cannot put it back on exit; pass "
                "--restore-to URL to name it, or --keep-webhook (pointing at "
                + ("the tunnel)" if via_tunnel else f"{mask_url(lease.url)})")
            )
    return lease


async def _serve(session: "Session", fmt: OutputFormat, loop_name: str) -> "ListenStats":
    """The run with its view: the live table, or NDJSON or plain lines on stdout."""
    import asyncio

    from ipsms.listen.events import ListenStats
    from ipsms.listen.session import Control, run
    from ipsms.ui.lines import NdjsonSink, PlainSink
    from ipsms.ui.listen_report import ListenReport
    from ipsms.ui.stream_sink import is_pipe, watch_reader

    env = current()
    config = session.config
    stats = ListenStats()
    control = Control()
    view: LiveView | None = None
    lines: StreamSink | None = None
    sink: EventSink
    if fmt is OutputFormat.table:
        from ipsms.ui import live  # rich.live: only for the live table

        sink = view = live.LiveView(
            env.console(),
            "",
            stats,
            faults=config.faults.describe() if config.faults.active else None,
        )
    else:
        sink = lines = (NdjsonSink if fmt is OutputFormat.json else PlainSink)(
            env.stdout, lambda: _stdout_closed(control)
        )
    report = ListenReport(
        config,
        session.db,
        err,
        lambda text: word_settings(text, flag),
        ndjson=lines if fmt is OutputFormat.json else None,
        view=view,
        loop_name=loop_name,
        said=_said,
        keep_said=env.stderr_isatty,
        after_change=_warn_cpaas,
    )
    watching: list[asyncio.Future[None]] = []
    if lines is not None and is_pipe(env.stdout):
        reader_lines = lines
        report.serving_hooks.append(
            lambda: watching.append(asyncio.ensure_future(watch_reader(reader_lines)))
        )
    try:
        return await run(session, [sink], report, stats, control, hold_signals=env.exits_after)
    finally:
        for task in watching:
            task.cancel()
        if lines is not None:
            lines.close()
            stats.dropped_lines = lines.dropped


def _warn_cpaas(lease: "WebhookLease") -> None:
    from ipsms.cli.api import warn_cpaas_once

    warn_cpaas_once(lease.settings.base_url, lease.auth, "listen")


def _stdout_closed(control: "Control") -> None:
    """The reader of our stdout went away (``| head -1``): stop, as a pipeline expects."""
    with contextlib.suppress(OSError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), current().stdout.fileno())  # no error at exit
    err(
        "ipsms listen: stdout was closed; stopping (every message answered 200 is recorded)",
        always=True,
    )
    control.request_stop()
