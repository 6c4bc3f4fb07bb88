"""``ipsms messages``: list, show, export, tail and clear what ``ipsms listen`` recorded."""

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ipsms import defaults
from ipsms.cli import help as help_text
from ipsms.cli.help import epilog
from ipsms.cli.io import STOP_SIGNALS, current, ignore_stop_signals
from ipsms.cli.options import (
    DbOption,
    FormatOption,
    OutputFormat,
    core_parser,
    resolve_format,
)
from ipsms.errors import UsageError

if TYPE_CHECKING:
    from ipsms.records import Filter
    from ipsms.request import Request

app = typer.Typer(
    rich_markup_mode=None,  # click's plain help: reads well at 80 columns and in a pipe
    add_completion=False,
    name="messages",
    no_args_is_help=True,
    help="List, search, show, export (NDJSON), follow or clear the messages `ipsms listen` "
    "recorded.",
    epilog=epilog(
        "ipsms messages list --since 1h --from 5309 --text 'stop'",
        "ipsms messages tail -f",
        "ipsms messages show 3KX9C2   # a unique refid prefix is enough",
        "ipsms messages export --redact > share.ndjson",
        exit_codes=(
            help_text.OK,
            help_text.USAGE,
            (3, "the message store cannot be used"),
            (10, "no message store yet, or no such message"),
        ),
    ),
)

# -- the filters of list, export and tail (each one an SQL parameter, see ipsms.store) --------
FILTERS = "Filters (all must match)"


def _moment(text: str) -> float:
    import time

    from ipsms.records import parse_moment

    return parse_moment(text, time.time())


def _number(text: str) -> object:
    from ipsms.records import parse_number

    return parse_number(text)


def _statuses(text: str) -> object:
    from ipsms.records import parse_statuses

    return parse_statuses(text)


def _verdicts(text: str) -> object:
    from ipsms.records import parse_verdicts

    return parse_verdicts(text)


TIME_METAVAR = "DURATION|TIME"
SinceOption = Annotated[
    float | None,
    typer.Option(
        "--since",
        metavar=TIME_METAVAR,
        parser=core_parser(_moment),
        rich_help_panel=FILTERS,
        help="Received in the last DURATION (90s, 10m, 2h, 1d, 1w) or at/after a UTC TIME "
        "(2024-05-01, 2024-05-01T12:00Z).",
    ),
]
UntilOption = Annotated[
    float | None,
    typer.Option(
        "--until",
        metavar=TIME_METAVAR,
        parser=core_parser(_moment),
        rich_help_panel=FILTERS,
        help="Received at least DURATION ago, or at/before a UTC TIME.",
    ),
]
FromOption = Annotated[
    Any,
    typer.Option(
        "--from",
        metavar="NUMBER",
        parser=core_parser(_number),
        rich_help_panel=FILTERS,
        help="Sent from NUMBER: +13038675309 exactly, or digits the number ends with (5309).",
    ),
]
ToOption = Annotated[
    Any,
    typer.Option(
        "--to",
        metavar="NUMBER",
        parser=core_parser(_number),
        rich_help_panel=FILTERS,
        help="Sent to NUMBER (as --from).",
    ),
]
RefidOption = Annotated[
    str | None,
    typer.Option(
        "--refid",
        metavar="PREFIX",
        rich_help_panel=FILTERS,
        help="The refid starts with PREFIX (case-sensitive).",
    ),
]
TextOption = Annotated[
    str | None,
    typer.Option(
        "--text",
        metavar="TEXT",
        rich_help_panel=FILTERS,
        help="The message contains TEXT, in any case; % and _ are plain characters.",
    ),
]
StatusOption = Annotated[
    Any,
    typer.Option(
        "--status",
        metavar="STATUS",
        parser=core_parser(_statuses),
        rich_help_panel=FILTERS,
        help="ipsms answered STATUS: 403, 4xx, 400-404 or a list: 401,403,5xx.",
    ),
]
VerdictOption = Annotated[
    Any,
    typer.Option(
        "--verdict",
        metavar="VERDICT",
        parser=core_parser(_verdicts),
        rich_help_panel=FILTERS,
        help="The signature was valid, invalid, missing or unchecked (several: valid,unchecked).",
    ),
]
FlagOption = Annotated[
    str | None,
    typer.Option(
        "--flag",
        metavar="CODE",
        rich_help_panel=FILTERS,
        help="The request carries the flag CODE (refid_reused, from_format, extra_fields, ...).",
    ),
]


def _filter(
    since: float | None,
    until: float | None,
    from_: object,
    to: object,
    refid: str | None,
    text: str | None,
    status: object,
    verdict: object,
    flag: str | None,
) -> "Filter":
    from ipsms.records import Filter

    if since is not None and until is not None and since > until:
        raise UsageError(
            "--since is later than --until: nothing can match",
            hint="--since is the start of the window, --until its end",
        )
    return Filter(
        since=since,
        until=until,
        from_number=from_,  # type: ignore[arg-type]
        to_number=to,  # type: ignore[arg-type]
        refid_prefix=refid or None,
        text=text or None,
        statuses=status or (),  # type: ignore[arg-type]
        verdicts=verdict or (),  # type: ignore[arg-type]
        flag=flag or None,
    )


def write_lines(lines: Iterable[str]) -> None:
    """Stream lines to stdout; a closed pipe (``| head``) ends quietly instead of failing."""
    if not current().write_lines(lines):
        raise typer.Exit(0)


def _confirm(question: str) -> bool:
    """Ask on stderr, read the answer from stdin (click's prompt writes to stdout)."""
    env = current()
    env.stderr.write(f"{question} [y/N] ")
    env.stderr.flush()
    return env.stdin.readline().strip().lower() in ("y", "yes")


@app.command(
    "list",
    short_help="Recorded requests, newest first; filters to search.",
    epilog=epilog(
        "ipsms messages list --limit 20 --since 1h",
        "ipsms messages list --from 5309 --text 'stop' --status 200",
        "ipsms messages list --verdict invalid,missing --until 1d",
        "ipsms messages list --limit 0 --format plain | grep -F '[invalid'",
    ),
)
def list_(
    limit: Annotated[
        int,
        typer.Option(
            min=0,
            help="Show the newest N matching requests; 0 shows them all. When some are "
            "left out, stderr says how many match.",
        ),
    ] = defaults.LIST_LIMIT,
    since: SinceOption = None,
    until: UntilOption = None,
    from_: FromOption = None,
    to: ToOption = None,
    refid: RefidOption = None,
    text: TextOption = None,
    status: StatusOption = None,
    verdict: VerdictOption = None,
    flag: FlagOption = None,
    db: DbOption = None,
    output_format: FormatOption = None,
) -> None:
    """Recorded requests, newest first (rejected ones too, with their error), as many as
    --limit says. The filters narrow them down; every one given must match."""
    from ipsms import records
    from ipsms.home import default_db_path

    where = _filter(since, until, from_, to, refid, text, status, verdict, flag)
    query = records.ListQuery(db=db or default_db_path(), limit=limit, where=where)
    with records.opened(query.db) as conn:
        rows, matching = records.list_newest(conn, query)
    fmt = resolve_format(output_format)
    if fmt is OutputFormat.table:
        from ipsms.ui.messages import list_table

        out = current().console()
        out.print(list_table(rows, out.width, filtered=not where.empty))
    else:
        write_lines(_lines(rows, fmt))
    if matching > len(rows):  # a grep of the output would miss the others: say so
        current().notice(
            f"ipsms messages list: showed the newest {len(rows)} of {matching} "
            f"{'recorded' if where.empty else 'matching'} requests; "
            "--limit N shows more, --limit 0 all of them"
        )


def _lines(rows: "Iterable[Request]", fmt: OutputFormat) -> Iterable[str]:
    """``messages list`` and ``tail`` lines: the request's JSON (no body), or plain text."""
    if fmt is OutputFormat.plain:
        from ipsms.ui.lines import plain_line

        return (plain_line(r, date=True) for r in rows)
    from ipsms import records
    from ipsms.text import dumps

    return (dumps(records.summary_dict(r)) for r in rows)


@app.command(
    short_help="Every attempt of one message, in full.",
    epilog=epilog(
        "ipsms messages show ABCDEF1234567890ABCDEF1234567890",
        "ipsms messages show ABCDEF12   # a unique prefix, as the live table shows it",
        "ipsms messages show ABCDEF --format json | jq .attempts",
    ),
)
def show(
    refid: Annotated[
        str,
        typer.Argument(
            help="The refid of the message, or a prefix of it that only one recorded refid "
            "starts with (an ambiguous prefix is an error listing a few; exit 2)."
        ),
    ],
    db: DbOption = None,
    output_format: FormatOption = None,
) -> None:
    """Every recorded attempt of REFID: headers, raw body, verdict, flags and status."""
    from ipsms import records
    from ipsms.home import default_db_path
    from ipsms.text import dumps

    with records.opened(db or default_db_path()) as conn:
        refid = records.resolve_refid(conn, refid)
        rows = records.attempts(conn, refid)
    fmt = resolve_format(output_format)
    if fmt is OutputFormat.json:
        write_lines([dumps(records.show_document(refid, rows))])
    elif fmt is OutputFormat.plain:  # a line per attempt; --format json has headers and body
        from ipsms.ui.lines import plain_line

        write_lines(plain_line(r, date=True) for r in rows)
    else:
        from ipsms.ui.messages import show_view

        current().console().print(show_view(refid, rows))


@app.command(
    short_help="Every recorded request (or those matching) as NDJSON.",
    epilog=epilog(
        "ipsms messages export --since 1d --redact > share.ndjson",
        "ipsms messages export --refid ABCDEF12 > one-message.ndjson",
    ),
)
def export(
    since: SinceOption = None,
    until: UntilOption = None,
    from_: FromOption = None,
    to: ToOption = None,
    refid: RefidOption = None,
    text: TextOption = None,
    status: StatusOption = None,
    verdict: VerdictOption = None,
    flag: FlagOption = None,
    limit: Annotated[
        int | None,
        typer.Option(
            min=1,
            show_default=False,
            help="Only the newest N matching requests (still written oldest first).",
        ),
    ] = None,
    redact: Annotated[
        bool, typer.Option(help="Mask phone numbers, message text and signatures (for sharing).")
    ] = False,
    db: DbOption = None,
) -> None:
    """Every recorded request as NDJSON on stdout, oldest first, with its exact body; the
    filters (as `messages list`) narrow them down.

    Without --redact the bodies hold the signature, which in plain mode is the shared secret.
    """
    from ipsms import records
    from ipsms.home import default_db_path
    from ipsms.text import dumps

    where = _filter(since, until, from_, to, refid, text, status, verdict, flag)
    opts = records.ExportOptions(
        db=db or default_db_path(), redact=redact, where=where, limit=limit
    )
    with records.opened(opts.db) as conn:
        write_lines(
            dumps(records.export_dict(r, redact=opts.redact))
            for r in records.export_rows(conn, opts)
        )


POLL_INTERVAL = 0.2  # seconds between polls of `tail -f`: a message shows within 0.2 s


@app.command(
    short_help="The latest requests; -f follows new ones as they are recorded.",
    epilog=epilog(
        "ipsms messages tail -f",
        "ipsms messages tail -f --verdict invalid --format plain",
        "ipsms messages tail -f --format json | jq -r .message",
    ),
)
def tail(
    lines: Annotated[
        int,
        typer.Option(
            "--lines", "-n", min=0, help="How many of the latest requests to print first."
        ),
    ] = 10,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            "-f",
            help="Keep printing requests as `ipsms listen` records them, until "
            "Ctrl-C (waits for a store that does not exist yet).",
        ),
    ] = False,
    since: SinceOption = None,
    until: UntilOption = None,
    from_: FromOption = None,
    to: ToOption = None,
    refid: RefidOption = None,
    text: TextOption = None,
    status: StatusOption = None,
    verdict: VerdictOption = None,
    flag: FlagOption = None,
    db: DbOption = None,
    output_format: FormatOption = None,
) -> None:
    """The latest recorded requests, oldest first, like tail; with -f, then every new one as
    another `ipsms listen` records it (a line each: NDJSON on a pipe, plain with --format
    plain, colored lines on a terminal). The filters (as `messages list`) apply to both."""
    from ipsms import records
    from ipsms.home import default_db_path

    env = current()
    where = _filter(since, until, from_, to, refid, text, status, verdict, flag)
    path = db or default_db_path()
    fmt = resolve_format(output_format)
    follower = records.Follower(
        path, None if where.empty else where, on_notice=lambda text: env.notice(f"ipsms: {text}")
    )
    show = _tail_printer(fmt)
    with _stopped_by_signals():
        try:
            if follower.open():
                show(follower.latest(lines))
            elif not follow:
                raise records.StoreMissing(path)
            else:
                env.notice(
                    f"ipsms: no message store at {path} yet: waiting for `ipsms listen` "
                    "to create it (Ctrl-C to stop)"
                )
            while follow:
                started = time.monotonic()
                rows, more = follower.poll()
                show(rows)
                if not more:
                    if _reader_gone():
                        return
                    time.sleep(records.wait_interval(started, POLL_INTERVAL))
        except _Stop:
            return
        finally:
            follower.close()


class _Stop(Exception):
    """Ctrl-C, SIGTERM or SIGHUP while following: stop, exit 0 (like tail -f)."""


def _tail_printer(fmt: OutputFormat) -> "Callable[[list[Request]], None]":
    """Writes a batch of tail rows; a reader that went away stops the command (exit 0)."""
    if fmt is not OutputFormat.table:

        def write(rows: "list[Request]") -> None:
            if rows:
                write_lines(_lines(rows, fmt))

        return write
    from ipsms.ui.messages import tail_line

    env = current()
    console = env.console()

    def show(rows: "list[Request]") -> None:
        for row in rows:
            console.print(
                tail_line(row, console.width),
                soft_wrap=False,
                overflow="ellipsis",
                no_wrap=True,
                crop=True,
            )
        if env.stdout_closed:
            raise typer.Exit(0)

    return show


def _reader_gone() -> bool:
    """Whether stdout is a pipe whose reader went away (``tail -f | head -3`` after 3 lines
    have long been read, with nothing new to write): Linux reports POLLERR on it."""
    import select

    env = current()
    if env.stdout_closed:
        return True
    try:
        fd = env.stdout.fileno()
        poller = select.poll()
        poller.register(fd, 0)
        gone = any(event & (select.POLLERR | select.POLLHUP) for _, event in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # an in-memory stream (tests): no pipe
        return False
    if gone:
        env.silence_stdout()
    return gone


@contextmanager
def _stopped_by_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP end `tail -f` like Ctrl-C: cleanly, exit 0 (main thread only)."""
    import signal
    import threading

    saved: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            saved[sig] = signal.signal(sig, _raise_stop)
    try:
        yield
    finally:
        if current().exits_after:
            ignore_stop_signals()  # the process ends now: no signal may cut it short
        else:
            for sig, handler in saved.items():
                signal.signal(sig, handler)


def _raise_stop(_signum: int, _frame: object) -> None:
    """The first stop signal stops the follower; the rest (a key held down) find it stopping."""
    import signal

    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise _Stop


@app.command(
    short_help="Delete every recorded request.", epilog=epilog("ipsms messages clear --yes")
)
def clear(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    db: DbOption = None,
    output_format: FormatOption = None,
) -> None:
    """Delete every recorded request (asks first on a terminal; --yes skips the question)."""
    from ipsms import records
    from ipsms.home import default_db_path
    from ipsms.text import dumps

    env = current()
    path = db or default_db_path()
    with records.opened(path) as conn:
        total = records.count_all(conn)
        if not yes:
            if not env.stdin_isatty:
                raise UsageError(
                    f"refusing to delete {total} recorded requests without "
                    "confirmation (no terminal to ask on)",
                    hint="pass --yes",
                )
            if total and not _confirm(f"Delete all {total} recorded requests from {path}?"):
                env.notice("ipsms messages clear: nothing deleted")
                return
        removed = records.clear_all(conn)
    if resolve_format(output_format) is OutputFormat.json:
        write_lines([dumps({"type": "cleared", "removed": removed, "db": str(path)})])
    else:
        write_lines(
            [f"removed {removed} recorded request{'s' if removed != 1 else ''} from {path}"]
        )
