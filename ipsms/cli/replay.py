"""``ipsms replay``: re-deliver recorded messages byte for byte through the delivery engine."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterable
from typing import Annotated

import typer

from ipsms import store
from ipsms.cli.app import app
from ipsms.cli.options import DbOption, resolve_format
from ipsms.cli.simulate import (
    DEFAULT_URL,
    EXIT_CODES,
    Backoff,
    FailFirst,
    Format,
    MaxAttempts,
    NoWait,
    RetryDelays,
    Speed,
    Success,
    Timeout,
)
from ipsms.delivery import Delivery, check_delivered, validate_url
from ipsms.errors import UsageError
from ipsms.home import default_db_path
from ipsms.load import deliver_counted
from ipsms.replay import delivery_from_record, recorded_delivery, replay_selection
from ipsms.retry import DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT, RetryPolicy, parse_duration
from ipsms.ui.delivery import make_output, print_summary


@app.command(epilog="Examples: ipsms replay 3KX9... --to http://127.0.0.1:3000/sms   "
             "ipsms replay --all --since 10m --no-wait   " + EXIT_CODES
             + "; 10 no such recorded message")
def replay(
    refid: Annotated[str | None, typer.Argument(
        help="refid of the recorded message to deliver again.")] = None,
    to: Annotated[str, typer.Option(
        "--to", envvar="IPSMS_REPLAY_TO", help="Webhook to deliver to.")] = DEFAULT_URL,
    all_: Annotated[bool, typer.Option(
        "--all", help="Replay every recorded message (once per refid, oldest first).")]
    = False,
    since: Annotated[str | None, typer.Option(
        metavar="DURATION", help="With --all: only messages received in the last DURATION "
        "(30s, 10m, 2h, 1d).")] = None,
    db: DbOption = None,
    fail_first: FailFirst = 0,
    max_attempts: MaxAttempts = DEFAULT_MAX_ATTEMPTS,
    success: Success = "200",
    timeout: Timeout = DEFAULT_TIMEOUT,
    retry_delays: RetryDelays = None,
    backoff: Backoff = None,
    no_wait: NoWait = False,
    speed: Speed = 1.0,
    output_format: Format = None,
) -> None:
    """Deliver recorded messages again: same body, content type and signature, same retries."""
    if (refid is None) == (not all_):
        raise UsageError("give either a REFID or --all", hint="e.g. ipsms replay --all --since 10m")
    if since is not None and not all_:
        raise UsageError("--since only applies to --all")
    policy = RetryPolicy.from_options(
        max_attempts=max_attempts, success=success, timeout=timeout, retry_delays=retry_delays,
        backoff=backoff, no_wait=no_wait, speed=speed)
    url = validate_url(to)
    cutoff = time.time() - parse_duration(since, "--since") if since else None
    fmt = resolve_format(output_format).value
    conn = store.connect(db or default_db_path(), create=False)
    try:
        deliveries: Iterable[Delivery]
        if refid is not None:
            deliveries = [recorded_delivery(conn, refid, url)]
        else:
            deliveries = (delivery_from_record(rec, url)
                          for rec in replay_selection(store.iter_all(conn), cutoff))
        stats = asyncio.run(deliver_counted(deliveries, policy,
                                            make_output(fmt, sys.stdout, policy),
                                            fail_first=fail_first))
    finally:
        conn.close()
    if all_:
        if stats.messages == 0:
            sys.stderr.write("ipsms replay: no recorded messages to replay"
                             + (f" in the last {since}" if since else "") + "\n")
        print_summary(stats, fmt, sys.stdout, "ipsms replay: summary")
    check_delivered(stats.gave_up, stats.done, stats.last_failure, policy, fail_first)
