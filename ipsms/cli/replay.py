"""``ipsms replay``: re-deliver recorded messages byte for byte through the delivery engine."""

import time
from typing import TYPE_CHECKING, Annotated

import typer

from ipsms import defaults
from ipsms.cli import help as help_text
from ipsms.cli.help import epilog
from ipsms.cli.io import current
from ipsms.cli.options import (
    DURATION_METAVAR,
    AttemptTimeout,
    Backoff,
    DbOption,
    FailFirst,
    FormatOption,
    MaxAttempts,
    NoWait,
    RetryDelays,
    Speed,
    Success,
    duration,
    resolve_format,
    retry_policy,
)
from ipsms.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ipsms.deliver.engine import Delivery

EPILOG = epilog(
    "ipsms replay 3KX9C2 --to http://127.0.0.1:3000/sms",
    "ipsms replay --all --since 10m --no-wait",
    exit_codes=(*help_text.DELIVERY, (10, "no such recorded message")),
)


def replay(
    refid: Annotated[
        str | None,
        typer.Argument(
            help="refid of the recorded message to deliver again (or a prefix only one recorded "
            "refid starts with)."
        ),
    ] = None,
    to: Annotated[
        str,
        typer.Option(
            "--to", envvar="IPSMS_REPLAY_TO", metavar="URL", help="Webhook URL to deliver to."
        ),
    ] = defaults.WEBHOOK_URL,
    all_: Annotated[
        bool,
        typer.Option("--all", help="Replay every recorded message (once per refid, oldest first)."),
    ] = False,
    since: Annotated[
        float | None,
        typer.Option(
            metavar=DURATION_METAVAR,
            parser=duration,
            help="With --all: only messages received in the last DURATION (30s, 10m, 2h, 1d, 1w).",
        ),
    ] = None,
    db: DbOption = None,
    fail_first: FailFirst = 0,
    max_attempts: MaxAttempts = defaults.MAX_ATTEMPTS,
    success: Success = "200",
    timeout: AttemptTimeout = defaults.ATTEMPT_TIMEOUT,
    retry_delays: RetryDelays = None,
    backoff: Backoff = None,
    no_wait: NoWait = False,
    speed: Speed = 1.0,
    output_format: FormatOption = None,
) -> None:
    """Deliver recorded messages again: same body, content type and signature, same retries."""
    if (refid is None) == (not all_):
        raise UsageError("give either a REFID or --all", hint="e.g. ipsms replay --all --since 10m")
    if since is not None and not all_:
        raise UsageError("--since only applies to --all")
    import asyncio

    from ipsms import store
    from ipsms.deliver.engine import check_delivered, validate_url
    from ipsms.deliver.load import deliver_counted
    from ipsms.deliver.replay import delivery_from_record, recorded_delivery, replay_selection
    from ipsms.home import default_db_path
    from ipsms.text import format_duration
    from ipsms.ui.delivery import make_output, print_summary

    env = current()
    policy = retry_policy(max_attempts, success, timeout, retry_delays, backoff, no_wait, speed)
    try:
        url = validate_url(to)
    except UsageError as exc:  # simulate's --to is a number: say which --to this is
        raise UsageError(
            f"--to {exc.message}",
            hint="--to is the webhook URL to deliver "
            "to, e.g. http://127.0.0.1:3000/sms; a replayed message keeps its "
            "recorded numbers",
        ) from None
    cutoff = time.time() - since if since is not None else None
    fmt = resolve_format(output_format).value
    conn = store.connect(db or default_db_path(), create=False)
    try:
        deliveries: Iterable[Delivery]
        if refid is not None:
            from ipsms.records import resolve_refid

            deliveries = [recorded_delivery(conn, resolve_refid(conn, refid), url)]
        else:
            deliveries = (
                delivery_from_record(rec, url)
                for rec in replay_selection(store.iter_all(conn), cutoff)
            )
        stats = asyncio.run(
            deliver_counted(
                deliveries,
                policy,
                make_output(fmt, env.result_stream(), policy),
                fail_first=fail_first,
            )
        )
    finally:
        conn.close()
    if all_:
        if stats.messages == 0:
            env.notice(
                "ipsms replay: no recorded messages to replay"
                + (f" in the last {format_duration(since)}" if since is not None else "")
            )
        print_summary(stats, fmt, env.result_stream(), "ipsms replay: summary")
    check_delivered(stats.gave_up, stats.done, stats.last_failure, policy, fail_first)
