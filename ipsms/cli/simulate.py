"""``ipsms simulate``: deliver an IntelePeer-shaped message with IntelePeer's retry rule.

The retry and output options are defined once here and reused by ``ipsms replay``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Annotated

import typer

from ipsms.cli.app import app
from ipsms.cli.options import DEFAULT_HMAC, HmacOption, OutputFormat, resolve_format
from ipsms.delivery import check_delivered, deliver_each, validate_url
from ipsms.errors import UsageError
from ipsms.load import DEFAULT_CONCURRENCY, LoadPlan, run_load
from ipsms.outbound import (
    DEFAULT_FROM,
    DEFAULT_MESSAGE,
    DEFAULT_TO,
    MessageSpec,
    PayloadTemplate,
    Signing,
    load_payload,
    new_refid,
    reject_undecodable,
)
from ipsms.retry import DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT, RetryPolicy
from ipsms.signature import Mode, parse_variant
from ipsms.ui.delivery import LoadProgress, make_output, print_summary

DEFAULT_URL = "http://127.0.0.1:8765/"
RETRY = "Retries (IntelePeer's rule)"
LOAD = "Load mode"
EXIT_CODES = ("Exit codes: 0 every message delivered; 5 a message was not delivered; "
              "2 usage error (bad number, URL, option)")

# -- options shared with `ipsms replay` ------------------------------------------------------
FailFirst = Annotated[int, typer.Option(
    min=0, rich_help_panel=RETRY, help="Count the first N attempts as failed whatever the "
    "reply (they are still sent: a lost 200). N >= --max-attempts ends in 'gave up'.")]
MaxAttempts = Annotated[int, typer.Option(
    min=1, envvar="IPSMS_MAX_ATTEMPTS", rich_help_panel=RETRY,
    help="Attempts in total, first one included (IntelePeer: 5).")]
Success = Annotated[str, typer.Option(
    metavar="200|2xx", rich_help_panel=RETRY,
    help="What counts as delivered: exactly 200 (IntelePeer) or any 2xx.")]
Timeout = Annotated[float, typer.Option(
    envvar="IPSMS_TIMEOUT", rich_help_panel=RETRY,
    help="Seconds to wait for each answer; no answer is a failed attempt.")]
RetryDelays = Annotated[str | None, typer.Option(
    envvar="IPSMS_RETRY_DELAYS", metavar="S,S,...", rich_help_panel=RETRY,
    show_default="1,2,4,8", help="Waits between attempts, e.g. 1,5,30 (units allowed: "
    "500ms,2s,1m); the last one repeats.")]
Backoff = Annotated[str | None, typer.Option(
    metavar="BASExFACTOR[:CAP]", rich_help_panel=RETRY,
    help="Exponential waits instead of a list: 1x2 waits 1,2,4,8 s; 0.5x3:10 waits 0.5, "
    "1.5, 4.5, 10 s.")]
NoWait = Annotated[bool, typer.Option(
    "--no-wait", rich_help_panel=RETRY, help="Retry at once, without the waits.")]
Speed = Annotated[float, typer.Option(
    rich_help_panel=RETRY, help="Divide every wait by N (10: a 15 s schedule in 1.5 s).")]
Format = Annotated[OutputFormat | None, typer.Option(
    "--format", envvar="IPSMS_FORMAT", help="table (a timeline, for a terminal), json "
    "(NDJSON: one object per attempt and per outcome) or plain",
    show_default="table on a terminal, json otherwise")]


@app.command(epilog="Example: ipsms simulate --fail-first 3 --speed 10   " + EXIT_CODES)
def simulate(
    url: Annotated[str, typer.Argument(envvar="IPSMS_SIMULATE_URL",
                                       help="Webhook to deliver to.")] = DEFAULT_URL,
    from_number: Annotated[str | None, typer.Option(
        "--from", show_default=DEFAULT_FROM, help="Sender: E.164 or short code.")] = None,
    to_number: Annotated[str | None, typer.Option(
        "--to", show_default=DEFAULT_TO, help="Your number: E.164 or short code.")] = None,
    message: Annotated[str | None, typer.Option(
        show_default=DEFAULT_MESSAGE, help="Text of the message.")] = None,
    refid: Annotated[str | None, typer.Option(
        show_default="a fresh random 32-character id", help="Message id.")] = None,
    payload: Annotated[str | None, typer.Option(
        metavar="FILE|-", help="A JSON object to start from (- reads stdin); the flags "
        "above override its fields, extra fields are sent as they are.")] = None,
    form: Annotated[bool, typer.Option(
        "--form", help="Send application/x-www-form-urlencoded instead of JSON.")] = False,
    allow_invalid: Annotated[bool, typer.Option(
        "--allow-invalid", help="Send numbers that are not valid E.164 or short codes.")]
    = False,
    secret: Annotated[str | None, typer.Option(
        envvar="IPSMS_SECRET", help="Shared secret to sign with; without it no signature "
        "field is sent.")] = None,
    signature_mode: Annotated[Mode, typer.Option(
        envvar="IPSMS_SIGNATURE_MODE", case_sensitive=False,
        help="plain: signature = the secret; hmac: HMAC of refid+message (see --hmac); "
        "auto signs as plain.")] = Mode.PLAIN,
    hmac_variant: HmacOption = DEFAULT_HMAC,
    fail_first: FailFirst = 0,
    max_attempts: MaxAttempts = DEFAULT_MAX_ATTEMPTS,
    success: Success = "200",
    timeout: Timeout = DEFAULT_TIMEOUT,
    retry_delays: RetryDelays = None,
    backoff: Backoff = None,
    no_wait: NoWait = False,
    speed: Speed = 1.0,
    count: Annotated[int | None, typer.Option(
        min=1, rich_help_panel=LOAD, help="Send N distinct messages (fresh refids), each with "
        "its own retries; prints a summary with latency percentiles.")] = None,
    concurrency: Annotated[int, typer.Option(
        min=1, rich_help_panel=LOAD, help="Messages in flight at once.")] = DEFAULT_CONCURRENCY,
    rate: Annotated[float | None, typer.Option(
        rich_help_panel=LOAD, help="Start at most R new messages per second.")] = None,
    output_format: Format = None,
) -> None:
    """Deliver a message like IntelePeer: signed, retried until HTTP 200, up to 5 attempts."""
    policy = RetryPolicy.from_options(
        max_attempts=max_attempts, success=success, timeout=timeout, retry_delays=retry_delays,
        backoff=backoff, no_wait=no_wait, speed=speed)
    signing = Signing(secret or None, signature_mode, parse_variant(hmac_variant))
    url = validate_url(url)
    template = _template(MessageSpec(
        from_number, to_number, message, refid,
        load_payload(payload, sys.stdin) if payload else {}, form, allow_invalid, signing), count)
    fmt = resolve_format(output_format).value
    if count is None:
        tally = asyncio.run(deliver_each([template.render().delivery(url)], policy,
                                         make_output(fmt, sys.stdout, policy),
                                         fail_first=fail_first))
        check_delivered(tally.gave_up, tally.total, tally.last_failure, policy, fail_first)
        return
    plan = LoadPlan(count, concurrency, rate)
    progress = LoadProgress(count) if sys.stderr.isatty() else None
    with progress or contextlib.nullcontext():
        stats = asyncio.run(run_load(
            plan, lambda _: template.render(None if count == 1 else new_refid()).delivery(url),
            policy,
            fail_first=fail_first, on_progress=progress))
    print_summary(stats, fmt, sys.stdout, "ipsms simulate: load summary")
    check_delivered(stats.gave_up, stats.done, stats.last_failure, policy, fail_first)


def _template(spec: MessageSpec, count: int | None) -> PayloadTemplate:
    """The checked message template; warns on stderr about what is sent on purpose although
    IntelePeer would not send it (a refid that is not 32 characters, lone surrogates)."""
    for option, value in (("--from", spec.from_number), ("--to", spec.to_number),
                          ("--message", spec.message), ("--refid", spec.refid)):
        reject_undecodable(option, value)
    if spec.refid is not None and count is not None and count > 1:
        raise UsageError("--refid cannot be used with --count above 1",
                         hint="load mode sends distinct messages, each with a fresh refid")
    template = PayloadTemplate(spec)
    for warning in template.warnings(fixed_refid=count is None or count == 1):
        sys.stderr.write(f"ipsms simulate: warning: {warning}\n")
    return template
