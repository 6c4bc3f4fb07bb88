"""``ipsms inspect``: the web inspector over a store, with no listener running."""

from typing import Annotated

import typer

from ipsms import defaults
from ipsms.cli import help as help_text
from ipsms.cli.help import epilog
from ipsms.cli.io import STOP_SIGNALS, current, ignore_stop_signals
from ipsms.cli.options import DbOption, parse_address
from ipsms.errors import UsageError

EPILOG = epilog(
    "ipsms inspect",
    "ipsms inspect --db ./ipsms.sqlite3 --to http://127.0.0.1:3000/sms",
    exit_codes=(
        (0, "stopped by Ctrl-C or SIGTERM"),
        help_text.USAGE,
        (4, "the address is busy or cannot be bound"),
        (10, "there is no message store at --db"),
    ),
)


def inspect(
    db: DbOption = None,
    address: Annotated[
        str | None,
        typer.Option(
            "--inspect",
            envvar="IPSMS_INSPECT",
            metavar="ADDR",
            help=f"Where it answers, HOST:PORT or PORT (default {defaults.INSPECT_HOST}:"
            f"{defaults.INSPECT_PORT}, or a free port when that one is busy).",
        ),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            metavar="URL",
            help="Where Replay and Edit and resend deliver (your app, or a running listener).",
        ),
    ] = None,
    allow_remote: Annotated[
        bool,
        typer.Option(
            "--inspect-allow-remote",
            help="Let --inspect bind an address other than loopback (the token is still needed).",
        ),
    ] = False,
) -> None:
    """Open the web inspector over recorded messages: history after the fact, and replay to
    --to. Its URL, with its token, is printed at start; Ctrl-C stops it."""
    import asyncio
    import secrets

    from ipsms.deliver.engine import validate_url
    from ipsms.home import default_db_path
    from ipsms.hosts import is_loopback
    from ipsms.inspect.actions import Targets
    from ipsms.inspect.app import create_inspector, serve
    from ipsms.store import StoreMissing

    env = current()
    path = db or default_db_path()
    if not path.exists():
        raise StoreMissing(path)
    if (address or "").strip().lower() == "off":
        raise UsageError("--inspect off leaves nothing to serve")
    host, port = parse_address(
        address or f"{defaults.INSPECT_HOST}:{defaults.INSPECT_PORT}", "--inspect"
    )
    if not is_loopback(host) and not allow_remote:
        raise UsageError(
            f"--inspect {address}: the inspector binds loopback only",
            hint="add --inspect-allow-remote to serve it on another address",
        )
    targets = Targets(to=validate_url(to) if to else None)
    token = env.variables.get("IPSMS_INSPECT_TOKEN") or secrets.token_urlsafe(18)

    async def main() -> None:
        app = create_inspector(path, token, allow_remote=allow_remote, targets=targets)
        runner, bound = await serve(app, host, port, fall_back=address is None)
        if bound.fell_back:
            env.notice(f"ipsms inspect: {host}:{port} is busy: the inspector took another port")
        env.notice(f"ipsms inspect: reading {path}")
        env.err(f"ipsms inspect: inspector {bound.url(token)}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(main())
    finally:
        ignore_stop_signals()  # the process ends now: no signal may cut it short
    env.notice("ipsms inspect: stopped")
