"""``ipsms simulate``: deliver an IntelePeer-shaped message with IntelePeer's retry rule."""

import contextlib
from typing import TYPE_CHECKING, Annotated

import typer

from ipsms import defaults
from ipsms.cli import help as help_text
from ipsms.cli.help import epilog
from ipsms.cli.io import current
from ipsms.cli.options import (
    AttemptTimeout,
    Backoff,
    FailFirst,
    FormatOption,
    HmacOption,
    MaxAttempts,
    NoWait,
    RetryDelays,
    SecretOption,
    SignatureMode,
    Speed,
    Success,
    resolve_format,
    retry_policy,
)
from ipsms.errors import UsageError

if TYPE_CHECKING:
    from ipsms.deliver.outbound import MessageSpec, PayloadTemplate

LOAD = "Load mode"
MAX_COUNT = 10_000_000  # over half an hour at 5,000 messages/s; 10**23 would never end
EPILOG = epilog(
    "ipsms simulate",
    "ipsms simulate --fail-first 3 --speed 10",
    "ipsms simulate http://127.0.0.1:3000/sms --message 'STOP'",
    "ipsms simulate --count 1000 --concurrency 50 --no-wait",
    exit_codes=help_text.DELIVERY,
)


def simulate(
    url: Annotated[
        str, typer.Argument(envvar="IPSMS_SIMULATE_URL", help="Webhook to deliver to.")
    ] = defaults.WEBHOOK_URL,
    from_number: Annotated[
        str | None,
        typer.Option(
            "--from", show_default=defaults.FROM_NUMBER, help="Sender: E.164 or short code."
        ),
    ] = None,
    to_number: Annotated[
        str | None,
        typer.Option(
            "--to", show_default=defaults.TO_NUMBER, help="Your number: E.164 or short code."
        ),
    ] = None,
    message: Annotated[
        str | None, typer.Option(show_default=defaults.MESSAGE_TEXT, help="Text of the message.")
    ] = None,
    refid: Annotated[
        str | None, typer.Option(show_default="a fresh random 32-character id", help="Message id.")
    ] = None,
    payload: Annotated[
        str | None,
        typer.Option(
            metavar="FILE|-",
            help="A JSON object to start from (- reads stdin), or a line of "
            "`ipsms messages export` (the message it recorded); the flags above override its "
            "fields, extra fields are sent as they are.",
        ),
    ] = None,
    form: Annotated[
        bool, typer.Option("--form", help="Send application/x-www-form-urlencoded instead of JSON.")
    ] = False,
    allow_invalid: Annotated[
        bool,
        typer.Option(
            "--allow-invalid", help="Send numbers that are not valid E.164 or short codes."
        ),
    ] = False,
    secret: SecretOption = None,
    signature_mode: Annotated[
        SignatureMode,
        typer.Option(
            envvar="IPSMS_SIGNATURE_MODE",
            case_sensitive=False,
            help="plain: signature = the secret; hmac: HMAC of refid+message (see --hmac); "
            "auto signs as plain.",
        ),
    ] = SignatureMode.plain,
    hmac_variant: HmacOption = defaults.HMAC_VARIANT,
    fail_first: FailFirst = 0,
    max_attempts: MaxAttempts = defaults.MAX_ATTEMPTS,
    success: Success = "200",
    timeout: AttemptTimeout = defaults.ATTEMPT_TIMEOUT,
    retry_delays: RetryDelays = None,
    backoff: Backoff = None,
    no_wait: NoWait = False,
    speed: Speed = 1.0,
    count: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=MAX_COUNT,
            rich_help_panel=LOAD,
            help="Send N distinct messages (fresh refids), each with "
            "its own retries; prints a summary with latency percentiles.",
        ),
    ] = None,
    concurrency: Annotated[
        int, typer.Option(min=1, rich_help_panel=LOAD, help="Messages in flight at once.")
    ] = defaults.CONCURRENCY,
    rate: Annotated[
        float | None,
        typer.Option(
            metavar="N",
            rich_help_panel=LOAD,
            show_default="no limit",
            help="Start at most N new messages per second (0.5: one every 2 s).",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            rich_help_panel=LOAD,
            show_default="the number of cores; 1 under 1,000 messages",
            help="Processes sending the messages, each with its own connections; --concurrency "
            "and --rate stay the run's totals, shared between them.",
        ),
    ] = None,
    output_format: FormatOption = None,
) -> None:
    """Deliver a message like IntelePeer: signed, retried until HTTP 200, up to 5 attempts."""
    import asyncio

    from ipsms.deliver.engine import check_delivered, deliver_each, validate_url
    from ipsms.deliver.load import LoadPlan, LoadStats, run_load
    from ipsms.deliver.outbound import MessageSpec, Signing, load_payload
    from ipsms.deliver.workers import (
        LoadInterrupted,
        TemplateMessages,
        default_workers,
        run_workers,
    )
    from ipsms.loops import run_with_loop
    from ipsms.signature import Mode, parse_variant
    from ipsms.ui.delivery import LoadProgress, make_output, print_summary

    env = current()
    policy = retry_policy(max_attempts, success, timeout, retry_delays, backoff, no_wait, speed)
    signing = Signing(secret or None, Mode(signature_mode.value), parse_variant(hmac_variant))
    url = validate_url(url)
    template = _template(
        MessageSpec(
            from_number,
            to_number,
            message,
            refid,
            load_payload(payload, env.stdin) if payload else {},
            form,
            allow_invalid,
            signing,
        ),
        count,
    )
    fmt = resolve_format(output_format).value
    if count is None:
        tally = asyncio.run(
            deliver_each(
                [template.render().delivery(url)],
                policy,
                make_output(fmt, env.result_stream(), policy),
                fail_first=fail_first,
            )
        )
        check_delivered(tally.gave_up, tally.total, tally.last_failure, policy, fail_first)
        return
    plan = LoadPlan(count, concurrency, rate)
    make = TemplateMessages(template, url, fresh_refids=count > 1)
    processes = workers if workers is not None else default_workers(count)
    show_progress = env.stderr_isatty and not env.quiet
    progress = LoadProgress(count, env.console(stderr=True)) if show_progress else None
    stats = LoadStats(count)  # filled as it goes: known even after Ctrl-C
    try:
        with progress or contextlib.nullcontext():
            if processes > 1:
                stats = run_workers(
                    plan, make, policy, processes, fail_first=fail_first, on_progress=progress
                )
            else:
                run_with_loop(
                    run_load(
                        plan, make, policy, fail_first=fail_first, on_progress=progress, stats=stats
                    )
                )
    except KeyboardInterrupt as stop:  # Ctrl-C: what was done, then exit 130 as always
        if isinstance(stop, LoadInterrupted):
            stats = stop.stats
        print_summary(stats, fmt, env.result_stream(), "ipsms simulate: load summary")
        raise
    print_summary(stats, fmt, env.result_stream(), "ipsms simulate: load summary")
    check_delivered(stats.gave_up, stats.done, stats.last_failure, policy, fail_first)


def _template(spec: "MessageSpec", count: int | None) -> "PayloadTemplate":
    """The checked message template; warns on stderr about what is sent on purpose although
    IntelePeer would not send it (a refid that is not 32 characters, lone surrogates)."""
    from ipsms.deliver.outbound import PayloadTemplate, reject_undecodable

    for option, value in (
        ("--from", spec.from_number),
        ("--to", spec.to_number),
        ("--message", spec.message),
        ("--refid", spec.refid),
    ):
        reject_undecodable(option, value)
    if spec.refid is not None and count is not None and count > 1:
        raise UsageError(
            "--refid cannot be used with --count above 1",
            hint="load mode sends distinct messages, each with a fresh refid",
        )
    template = PayloadTemplate(spec)
    for warning in template.warnings(fixed_refid=count is None or count == 1):
        current().notice(f"ipsms simulate: warning: {warning}")
    return template
