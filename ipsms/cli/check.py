"""``ipsms check``: a report card of a webhook against IntelePeer's rules (docs/check.md)."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ipsms import defaults
from ipsms.cli import help as help_text
from ipsms.cli.help import epilog
from ipsms.cli.io import current
from ipsms.cli.options import (
    DURATION_HELP,
    DURATION_METAVAR,
    HmacOption,
    OutputFormat,
    SecretOption,
    SignatureMode,
    duration,
)
from ipsms.errors import UsageError

if TYPE_CHECKING:
    from ipsms.check.runner import Result

EXIT_CODES = (
    (0, "every check passed (warnings allowed)"),
    help_text.USAGE,
    (3, "the JUnit file cannot be written"),
    (4, "the app could not be reached at all"),
    (11, "a check failed"),
)
EPILOG = epilog(
    "ipsms check http://127.0.0.1:3000/sms",
    "ipsms check http://127.0.0.1:3000/sms --secret S --signature-mode hmac",
    "ipsms check URL --only text-emoji --only burst --format json",
    "ipsms check URL --replies-via http://127.0.0.1:8766 --junit report.xml",
    exit_codes=EXIT_CODES,
)


def _timeout(text: str | float) -> float:
    seconds = duration(text)
    if not seconds > 0:
        raise typer.BadParameter(f"{text!r} must be more than 0 seconds")
    return seconds


def check(
    url: Annotated[
        str, typer.Argument(help="The app's webhook URL, e.g. http://127.0.0.1:3000/sms.")
    ],
    secret: SecretOption = None,
    signature_mode: Annotated[
        SignatureMode,
        typer.Option(
            envvar="IPSMS_SIGNATURE_MODE",
            case_sensitive=False,
            help="How the deliveries are signed: plain (the secret itself) or hmac (see "
            "--hmac); auto signs as plain.",
        ),
    ] = SignatureMode.plain,
    hmac_variant: HmacOption = defaults.HMAC_VARIANT,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            envvar="IPSMS_TIMEOUT",
            parser=_timeout,
            metavar=DURATION_METAVAR,
            help=f"How long each delivery waits for its answer ({DURATION_HELP}); a warning "
            "above half of it.",
        ),
    ] = defaults.ATTEMPT_TIMEOUT,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", metavar="ID", help="Run only this check (repeatable)."),
    ] = None,
    skip: Annotated[
        list[str] | None,
        typer.Option("--skip", metavar="ID", help="Do not run this check (repeatable)."),
    ] = None,
    concurrency: Annotated[
        int, typer.Option(min=1, max=1000, help="Deliveries at once in the burst check.")
    ] = 20,
    replies_via: Annotated[
        str | None,
        typer.Option(
            "--replies-via",
            metavar="URL",
            help="The `ipsms api-emulator` the app sends its "
            "replies through: replies-once counts them there.",
        ),
    ] = None,
    junit: Annotated[
        Path | None,
        typer.Option(
            "--junit",
            metavar="FILE",
            help="Also write JUnit XML: a testcase per check (written "
            "in every case, also when the app cannot be reached).",
        ),
    ] = None,
    output_format: Annotated[
        OutputFormat | None,
        typer.Option(
            "--format",
            envvar="IPSMS_FORMAT",
            show_default=False,
            help="table (for people) or json (NDJSON: one check object per line, see "
            "docs/ndjson.md) (default: table on a terminal, json otherwise).",
        ),
    ] = None,
) -> None:
    """Check a webhook against IntelePeer's rules: one signed delivery per case, judged.

    Every check sends IntelePeer-shaped, signed deliveries through the engine of `ipsms
    simulate` and says what the app did; a failure carries its evidence and a command that
    reproduces it. See docs/check.md for the checks."""
    import asyncio

    from ipsms.check.cards import CHECKS
    from ipsms.check.report import junit as junit_xml
    from ipsms.check.report import result_dict
    from ipsms.check.runner import Card, Settings, run_card
    from ipsms.errors import CheckFailedError, IpsmsError, NetworkError
    from ipsms.signature import Mode, parse_variant
    from ipsms.text import dumps
    from ipsms.ui.check import print_card, summary_line

    env = current()
    fmt = output_format or (OutputFormat.table if env.stdout_isatty else OutputFormat.json)
    if fmt is OutputFormat.plain:
        raise UsageError("--format plain is not a format of ipsms check", hint="use table or json")
    card: Card | None = None
    try:
        settings = Settings(
            url,
            secret or None,
            Mode(signature_mode.value),
            parse_variant(hmac_variant),
            timeout,
            concurrency,
            replies_via or None,
            tuple(only or ()),
            tuple(skip or ()),
        )
        card = asyncio.run(run_card(settings))
    except IpsmsError as exc:
        if junit is not None:  # a CI job that uploads no report looks green
            from ipsms.cli.options import flag

            _write(junit, junit_xml(Card(url), error=exc.worded(flag), checks=CHECKS))
        raise
    card.results = [_worded(r) for r in card.results]
    if junit is not None:
        _write(junit, junit_xml(card))
    if fmt is OutputFormat.table:
        print_card(card, env.console())
    else:
        env.write_lines(dumps(result_dict(card, r)) for r in card.results)
        env.notice(f"ipsms check: {summary_line(card)}")
    if not card.reachable:
        raise NetworkError(
            f"cannot reach the app at {card.url}: {card.unreachable}",
            hint="start the app there, or pass the right URL",
        )
    if card.failed:
        raise CheckFailedError(
            f"{len(card.failed)} of {len(card.results)} check"
            f"{'' if len(card.results) == 1 else 's'} failed: {', '.join(card.failed)}",
            hint="each failure's evidence and reproduction command are in the report",
        )


def _worded(result: "Result") -> "Result":
    """A result whose texts name this CLI's flags where the core named settings."""
    from dataclasses import replace

    from ipsms.cli.options import flag
    from ipsms.errors import word_settings

    def word(text: str | None) -> str | None:
        return None if text is None else word_settings(text, flag)

    return replace(
        result,
        did=word_settings(result.did, flag),
        reason=word(result.reason),
        reproduce=word(result.reproduce),
    )


def _write(path: Path, data: bytes) -> None:
    from ipsms.check.report import write_junit

    try:
        write_junit(path, data)
    except OSError as exc:
        from ipsms.errors import StateError

        raise StateError(f"cannot write --junit {path}: {exc.strerror or exc}") from None
