"""The ``ipsms`` command: the typer app, global options, and the one place errors become exits.

Exit codes are ``ipsms.errors.ExitCode``; an ``IpsmsError`` prints one ``ipsms: error: ...``
line on stderr; anything unexpected is an internal error (exit 1) whose traceback ``--debug``
shows.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from ipsms import __version__
from ipsms.errors import ExitCode, IpsmsError


class _State:
    debug = False


STATE = _State()


def report_error(message: str) -> None:
    from ipsms.text import printable  # on error only: keeps start-up light

    with contextlib.suppress(Exception):
        sys.stdout.flush()  # results first, so the error line comes after them on a terminal
    # Messages quote user input and server text: one line, no control characters.
    sys.stderr.write(f"ipsms: error: {printable(message)}\n")
    sys.stderr.flush()


class IpsmsGroup(TyperGroup):
    """Turns errors raised by any command into one line and the documented exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except IpsmsError as exc:
            if STATE.debug:
                traceback.print_exc()
            report_error(str(exc))
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            sys.stderr.write("ipsms: interrupted\n")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except Exception as exc:
            if STATE.debug:
                traceback.print_exc()
            report_error(f"internal error: {type(exc).__name__}: {exc} "
                         "(rerun with --debug for the traceback, and please report it)")
            raise typer.Exit(int(ExitCode.INTERNAL)) from None


app = typer.Typer(
    cls=IpsmsGroup,
    name="ipsms",
    help="Developer tool for IntelePeer Atmosphere SMS webhooks: receive, verify, record, "
    "simulate and replay inbound messages, and point numbers at your webhook.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    epilog="Examples: ipsms listen  |  ipsms simulate --fail-first 3 --speed 10  |  "
    "ipsms messages list  |  ipsms set-webhook +13038675309 https://example.com/sms. "
    "Exit codes: see README (0 ok, 2 usage, 3 state, 4 network, 5 not delivered, "
    "6 bad signature, 7 API, 8 auth, 10 not found).",
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ipsms {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", envvar="IPSMS_DEBUG",
                                        help="Show tracebacks on errors.")] = False,
) -> None:
    """ipsms: IntelePeer SMS webhooks for developers."""
    STATE.debug = debug


def _register() -> None:
    from ipsms.cli import listen  # noqa: F401  (commands register themselves on import)
    from ipsms.cli import messages as messages
    from ipsms.cli import replay as replay
    from ipsms.cli import simulate as simulate
    from ipsms.cli import verify as verify
    from ipsms.cli import webhook as webhook  # set-webhook, provision, api-emulator, auth


_register()


def main() -> None:
    app(prog_name="ipsms")
