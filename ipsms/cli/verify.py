"""``ipsms verify``: check a saved or recorded payload's signature and explain a mismatch."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ipsms import defaults
from ipsms.cli import help as help_text
from ipsms.cli.help import epilog
from ipsms.cli.io import current
from ipsms.cli.options import (
    DbOption,
    FormatOption,
    HmacOption,
    OutputFormat,
    SecretOption,
    SignatureMode,
    resolve_format,
)
from ipsms.errors import SignatureInvalidError, UsageError

if TYPE_CHECKING:
    from ipsms.records.verify import Loaded

EPILOG = epilog(
    "IPSMS_SECRET=... ipsms verify body.json",
    "ipsms messages export | grep REFID | ipsms verify -",
    "ipsms verify --refid REFID",
    exit_codes=(
        (0, "the signature is valid"),
        help_text.USAGE,
        (6, "the signature is invalid or missing"),
        (10, "no such recorded message"),
    ),
)


def verify(
    file: Annotated[
        str | None,
        typer.Argument(
            metavar="[FILE|-]",
            help="Webhook body (JSON or form) or `messages export` NDJSON; "
            "- or nothing reads stdin.",
        ),
    ] = None,
    secret: SecretOption = None,
    signature_mode: Annotated[
        SignatureMode,
        typer.Option(
            envvar="IPSMS_SIGNATURE_MODE",
            case_sensitive=False,
            help="plain, hmac, or auto (either; says which matched).",
        ),
    ] = SignatureMode.auto,
    hmac_variant: HmacOption = defaults.HMAC_VARIANT,
    refid: Annotated[
        str | None,
        typer.Option(
            help="Check every recorded attempt of this refid (or a unique prefix of it) from the "
            "store instead of a file."
        ),
    ] = None,
    db: DbOption = None,
    output_format: FormatOption = None,
) -> None:
    """Check signatures against the secret. Exit 0 when valid, 6 when invalid or missing."""
    from ipsms.home import default_db_path
    from ipsms.records.verify import VerifyConfig, verify_all
    from ipsms.signature import Mode, fingerprint, parse_variant
    from ipsms.text import dumps

    if not secret:
        raise UsageError("no secret to verify with", hint="pass --secret or set IPSMS_SECRET")
    config = VerifyConfig(secret, Mode(signature_mode.value), parse_variant(hmac_variant))
    loaded = _load(file, refid, db or default_db_path())
    for note in loaded.skipped:
        current().notice(f"ipsms verify: skipped {note}")
    results = verify_all(loaded.payloads, config)
    # A reader that went away (`| head -0`) does not change the verdict: the exit code stays
    # 6 for a bad signature, so the lines are written without ending the command early.
    if resolve_format(output_format) is OutputFormat.json:
        current().write_lines(dumps(r.to_dict(config)) for r in results)
    else:
        current().write_lines(r.line() for r in results)
    bad = [r for r in results if not r.valid]
    if bad:
        what = (
            f"signature {bad[0].verification.verdict.value}"
            if len(results) == 1
            else f"{len(bad)} of {len(results)} signatures did not verify"
        )
        raise SignatureInvalidError(
            f"{what} (secret {fingerprint(secret)}, mode {config.mode_label})",
            hint="the result on stdout explains the mismatch; check the secret and "
            "--signature-mode",
        )


def _load(file: str | None, refid: str | None, db: Path) -> "Loaded":
    from ipsms import records
    from ipsms.records.verify import INPUT_HINT, load_input, load_recorded

    env = current()
    if refid is not None:
        if file is not None:
            raise UsageError("give either FILE or --refid, not both")
        with records.opened(db) as conn:
            return load_recorded(records.attempts(conn, records.resolve_refid(conn, refid)))
    if file is None or file == "-":
        if file is None and env.stdin_isatty:
            raise UsageError("nothing to verify", hint=INPUT_HINT + ", or - for stdin")
        return load_input(env.read_stdin_bytes(), "stdin")
    try:
        data = Path(file).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {file}: {exc.strerror or exc}", hint=INPUT_HINT) from None
    return load_input(data, file)
