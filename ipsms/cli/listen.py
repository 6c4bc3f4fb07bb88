"""``ipsms listen``: receive, verify, record and show IntelePeer webhooks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ipsms.cli.app import app
from ipsms.cli.options import (
    DEFAULT_HMAC,
    DbOption,
    HmacOption,
    OutputFormat,
    parse_size,
    resolve_format,
)
from ipsms.connections import DEFAULT_MAX_CONNECTIONS, DEFAULT_READ_TIMEOUT
from ipsms.events import ListenStats
from ipsms.home import default_db_path
from ipsms.listener import DEFAULT_HOST, DEFAULT_MAX_BODY, DEFAULT_PORT, EventSink, ListenConfig
from ipsms.server import Bound, ListenServer, is_loopback, run_listener
from ipsms.signature import Mode, fingerprint, parse_variant
from ipsms.store import shared_dir_warning
from ipsms.stream_sink import StreamSink
from ipsms.text import dumps
from ipsms.ui.lines import NdjsonSink, PlainSink

if TYPE_CHECKING:
    from ipsms.ui.live import LiveView  # rich is imported only for the live table


@app.command(
    epilog="Example: IPSMS_SECRET=... ipsms listen --port 8765  "
    "then: ipsms simulate http://127.0.0.1:8765/",
)
def listen(
    host: Annotated[str, typer.Option(envvar="IPSMS_HOST", help="Address to bind.")]
    = DEFAULT_HOST,
    port: Annotated[int, typer.Option(envvar="IPSMS_PORT", min=0, max=65535,
                                      help="Port to bind; 0 picks a free one and prints it.")]
    = DEFAULT_PORT,
    secret: Annotated[str | None, typer.Option(
        envvar="IPSMS_SECRET", help="Shared secret to verify signatures with; without it "
        "signatures are 'unchecked'.")] = None,
    signature_mode: Annotated[Mode, typer.Option(
        envvar="IPSMS_SIGNATURE_MODE", case_sensitive=False,
        help="plain: signature equals the secret; hmac: HMAC of refid+message; "
        "auto: accept either and say which matched.")] = Mode.AUTO,
    hmac_variant: HmacOption = DEFAULT_HMAC,
    db: DbOption = None,
    output_format: Annotated[OutputFormat | None, typer.Option(
        "--format", envvar="IPSMS_FORMAT",
        help="table (live, terminal), json (NDJSON on stdout) or plain (a line per request) "
        "(default: table on a terminal, json otherwise).")] = None,
    max_body: Annotated[str, typer.Option(
        envvar="IPSMS_MAX_BODY", help="Largest body accepted; bigger ones get 413.")] = "1MiB",
    accept_bad_signature: Annotated[bool, typer.Option(
        help="Answer 200 (flagged) instead of 403 when a signature is invalid or missing.")]
    = False,
    read_timeout: Annotated[float, typer.Option(
        envvar="IPSMS_READ_TIMEOUT", min=0.1, max=3600,
        help="Seconds a client has to send a request's headers, and again its body; slower "
        "clients are cut off (408).")] = DEFAULT_READ_TIMEOUT,
    max_connections: Annotated[int, typer.Option(
        envvar="IPSMS_MAX_CONNECTIONS", min=1, max=100_000,
        help="Open connections allowed at once; more are answered 503 and closed.")]
    = DEFAULT_MAX_CONNECTIONS,
) -> None:
    """Receive IntelePeer webhooks on a local port: verify, record and show each one."""
    config = ListenConfig(
        secret=secret or None,
        signature_mode=signature_mode,
        hmac_variant=parse_variant(hmac_variant),
        max_body=parse_size(max_body) if max_body else DEFAULT_MAX_BODY,
        accept_bad_signature=accept_bad_signature,
        read_timeout=read_timeout,
        max_connections=max_connections,
    )
    fmt = resolve_format(output_format)
    if fmt is OutputFormat.table and not sys.stdout.isatty():
        # A live display on a pipe would print nothing until exit.
        err("ipsms listen: warning: --format table needs a terminal; printing plain lines")
        fmt = OutputFormat.plain
    db_path = db or default_db_path()
    stats = asyncio.run(_serve(config, host, port, db_path, fmt))
    err(f"ipsms listen: stopped. {stats.summary()}")


def err(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


async def _serve(config: ListenConfig, host: str, port: int, db_path: Path,
                 fmt: OutputFormat) -> ListenStats:
    stats = ListenStats()
    view: LiveView | None = None
    lines: StreamSink | None = None
    sink: EventSink
    if fmt is OutputFormat.table:
        from rich.console import Console

        from ipsms.ui.live import LiveView

        sink = view = LiveView(Console(), "", stats)
    else:
        sink = lines = (NdjsonSink if fmt is OutputFormat.json else PlainSink)(
            sys.stdout, lambda: _stdout_closed(server))
    server = ListenServer(config, db_path, host, port, sinks=[sink], stats=stats)

    def ready(bound: Bound) -> None:
        _banner(bound, config, db_path)
        if fmt is OutputFormat.json and lines is not None:
            lines.write_line(dumps({"type": "listening", "url": bound.url, "host": bound.host,
                                    "port": bound.port, "db": str(db_path)}))
        if view is not None:
            view.url = bound.url
            view.start()

    try:
        return await run_listener(server, ready)
    finally:
        if view is not None:
            view.stop()
        if lines is not None:
            lines.close()
            stats.dropped_lines = lines.dropped


def _stdout_closed(server: ListenServer) -> None:
    """The reader of our stdout went away (``| head -1``): stop, as a pipeline expects."""
    with contextlib.suppress(OSError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
    err("ipsms listen: stdout was closed; stopping (every message answered 200 is recorded)")
    server.request_stop()


def _banner(bound: Bound, config: ListenConfig, db_path: Path) -> None:
    if config.secret:
        mode = config.signature_mode.value
        if config.signature_mode is Mode.HMAC:
            mode = config.hmac_variant.name
        check = f"secret {fingerprint(config.secret)}, signature mode {mode}"
    else:
        check = "no secret: signatures are not checked (set --secret or IPSMS_SECRET)"
    err(f"ipsms listen: listening on {bound.url} (any path, POST)")
    err(f"ipsms listen: {check}; recording to {db_path}")
    shared = shared_dir_warning(db_path)
    if shared:
        err(f"ipsms listen: warning: {shared}")
    if not is_loopback(bound.host):
        err(f"ipsms listen: warning: listening on {bound.host}, reachable from other machines"
            + ("" if config.secret else " and without a secret: anyone can post to it"))
