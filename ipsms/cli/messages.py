"""``ipsms messages``: list, show, export and clear what ``ipsms listen`` recorded."""


from collections.abc import Iterable
from typing import Annotated

import typer

from ipsms import defaults
from ipsms.cli import help as help_text
from ipsms.cli.help import epilog
from ipsms.cli.io import current
from ipsms.cli.options import (
    DURATION_METAVAR,
    DbOption,
    FormatOption,
    OutputFormat,
    duration,
    resolve_format,
)
from ipsms.errors import UsageError

app = typer.Typer(
    rich_markup_mode=None,  # click's plain help: reads well at 80 columns and in a pipe
    add_completion=False,
    name="messages", no_args_is_help=True,
    help="List, show, export (NDJSON) or clear the messages `ipsms listen` recorded.",
    epilog=epilog("ipsms messages list --since 1h",
                  "ipsms messages show 3KX9C2   # a unique refid prefix is enough",
                  "ipsms messages export --redact > share.ndjson",
                  exit_codes=(help_text.OK, help_text.USAGE,
                              (3, "the message store cannot be used"),
                              (10, "no message store yet, or no such message"))),
)

SinceOption = Annotated[float | None, typer.Option(
    "--since", metavar=DURATION_METAVAR, parser=duration,
    help="Only requests received in the last DURATION: 90s, 10m, 2h, 1d, 1w.")]


def write_lines(lines: Iterable[str]) -> None:
    """Stream lines to stdout; a closed pipe (``| head``) ends quietly instead of failing."""
    if not current().write_lines(lines):
        raise typer.Exit(0)


def _cutoff(since: float | None) -> float | None:
    import time

    return None if since is None else time.time() - since


def _confirm(question: str) -> bool:
    """Ask on stderr, read the answer from stdin (click's prompt writes to stdout)."""
    env = current()
    env.stderr.write(f"{question} [y/N] ")
    env.stderr.flush()
    return env.stdin.readline().strip().lower() in ("y", "yes")


@app.command("list", short_help="Recorded requests, newest first.",
             epilog=epilog("ipsms messages list --limit 20 --since 1h",
                           "ipsms messages list --format plain | grep invalid"))
def list_(
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many requests.")]
    = defaults.LIST_LIMIT,
    since: SinceOption = None, db: DbOption = None, output_format: FormatOption = None,
) -> None:
    """Recorded requests, newest first (rejected ones too, with their error)."""
    from ipsms import recordings
    from ipsms.home import default_db_path
    from ipsms.text import dumps

    query = recordings.ListQuery(db=db or default_db_path(), limit=limit, since=_cutoff(since))
    with recordings.opened(query.db) as conn:
        rows = recordings.list_recent(conn, query)
    fmt = resolve_format(output_format)
    if fmt is OutputFormat.json:
        write_lines(dumps(recordings.summary_dict(r)) for r in rows)
    elif fmt is OutputFormat.plain:
        from ipsms.ui.lines import plain_line

        write_lines(plain_line(r, date=True) for r in rows)
    else:
        from ipsms.ui.messages import list_table

        out = current().console()
        out.print(list_table(rows, out.width))


@app.command(short_help="Every attempt of one message, in full.",
             epilog=epilog("ipsms messages show ABCDEF1234567890ABCDEF1234567890",
                           "ipsms messages show ABCDEF12   # a unique prefix, as the live "
                           "table shows it",
                           "ipsms messages show ABCDEF --format json | jq .attempts"))
def show(
    refid: Annotated[str, typer.Argument(
        help="The refid of the message, or a prefix of it that only one recorded refid "
        "starts with (an ambiguous prefix is an error listing a few; exit 2).")],
    db: DbOption = None, output_format: FormatOption = None,
) -> None:
    """Every recorded attempt of REFID: headers, raw body, verdict, flags and status."""
    from ipsms import recordings
    from ipsms.home import default_db_path
    from ipsms.text import dumps

    with recordings.opened(db or default_db_path()) as conn:
        refid = recordings.resolve_refid(conn, refid)
        rows = recordings.attempts(conn, refid)
    fmt = resolve_format(output_format)
    if fmt is OutputFormat.json:
        write_lines([dumps(recordings.show_document(refid, rows))])
    elif fmt is OutputFormat.plain:  # a line per attempt; --format json has headers and body
        from ipsms.ui.lines import plain_line

        write_lines(plain_line(r, date=True) for r in rows)
    else:
        from ipsms.ui.messages import show_view

        current().console().print(show_view(refid, rows))


@app.command(short_help="Every recorded request as NDJSON.",
             epilog=epilog("ipsms messages export --since 1d --redact > share.ndjson"))
def export(
    since: SinceOption = None,
    redact: Annotated[bool, typer.Option(
        help="Mask phone numbers, message text and signatures (for sharing).")] = False,
    db: DbOption = None,
) -> None:
    """Every recorded request as NDJSON on stdout, oldest first, with its exact body.

    Without --redact the bodies hold the signature, which in plain mode is the shared secret.
    """
    from ipsms import recordings
    from ipsms.home import default_db_path
    from ipsms.text import dumps

    opts = recordings.ExportOptions(db=db or default_db_path(), since=_cutoff(since),
                                    redact=redact)
    with recordings.opened(opts.db) as conn:
        write_lines(dumps(recordings.export_dict(r, redact=opts.redact))
                    for r in recordings.iter_oldest_first(conn, opts.since))


@app.command(short_help="Delete every recorded request.",
             epilog=epilog("ipsms messages clear --yes"))
def clear(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
    = False,
    db: DbOption = None, output_format: FormatOption = None,
) -> None:
    """Delete every recorded request (asks first on a terminal; --yes skips the question)."""
    from ipsms import recordings
    from ipsms.home import default_db_path
    from ipsms.text import dumps

    env = current()
    path = db or default_db_path()
    with recordings.opened(path) as conn:
        total = recordings.count_all(conn)
        if not yes:
            if not env.stdin_isatty:
                raise UsageError(f"refusing to delete {total} recorded requests without "
                                 "confirmation (no terminal to ask on)", hint="pass --yes")
            if total and not _confirm(f"Delete all {total} recorded requests from {path}?"):
                env.notice("ipsms messages clear: nothing deleted")
                return
        removed = recordings.clear_all(conn)
    if resolve_format(output_format) is OutputFormat.json:
        write_lines([dumps({"type": "cleared", "removed": removed, "db": str(path)})])
    else:
        write_lines([f"removed {removed} recorded request{'s' if removed != 1 else ''} "
                     f"from {path}"])
