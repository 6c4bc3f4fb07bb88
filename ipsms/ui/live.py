"""Rich rendering of the listener: the live table and its header. The only core-side module
that imports rich; the CLI decides when to use it (a terminal) and when not (a pipe)."""

from __future__ import annotations

from collections import deque
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ipsms.events import ListenEvent, ListenStats, RejectedEvent
from ipsms.text import iso_time, one_line, printable

MAX_ROWS = 200  # rows kept; as many as fit the terminal are shown
CHROME_LINES = 5  # header, table heading and rule, and a spare line
REFRESH_PER_SECOND = 4
MESSAGE_WIDTH = 160  # pre-cut; the column then ellipsizes to the terminal width

_VERDICT_STYLE = {"valid": "green", "unchecked": "dim", "invalid": "bold red",
                  "missing": "red"}


def _status_style(status: int) -> str:
    return "green" if status == 200 else "yellow" if status < 500 else "red"


COMPACT_BELOW = 130  # terminal width under which refids and verdicts are abbreviated


def _rejected_row(event: RejectedEvent) -> list[Text]:
    return [
        Text(iso_time(event.received_at)[11:19]), Text("-"), Text("rejected", style="yellow"),
        Text(printable(event.remote or "-")), Text("-"),
        Text(one_line(event.reason, MESSAGE_WIDTH), style="yellow"), Text("-"),
        Text(str(event.status), style=_status_style(event.status)),
    ]


def forward_note(forward: dict[str, Any]) -> str:
    """``'→ app 500 in 12 ms: {"error": ...'`` or ``'→ app unreachable (502)'``."""
    if forward.get("error"):
        return printable(f"→ app: {forward.get('detail') or forward['error']}")
    return (f"→ app {forward['status']} in {forward['latency_ms']:.0f} ms: "
            + one_line(forward.get("body_preview") or "", 40))


def event_row(event: ListenEvent, compact: bool = False) -> list[Text]:
    """Cells for one request. Every cell is a ``Text`` built from plain strings: rich markup in
    a message (``[bold]``) stays literal, and control characters are escaped first."""
    if isinstance(event, RejectedEvent):
        return _rejected_row(event)
    verdict = event.verdict_label or "-"
    refid = printable(event.refid or f"{event.method} {event.path}")
    if compact:
        verdict = verdict.split(" ")[0]
        if event.refid and len(refid) > 9:
            refid = "…" + refid[-8:]
    if event.refid is None:
        message = Text(one_line(f"{event.error}: {event.error_detail}", MESSAGE_WIDTH),
                       style="yellow")
    else:
        message = Text()
        if event.flags:  # a marker first, so a narrow terminal still shows it; codes after
            message.append("⚑ ", style="yellow")
        message.append(one_line(event.message or "", MESSAGE_WIDTH))
        if event.flags:
            message.append("  " + ",".join(f["code"] for f in event.flags), style="yellow")
        if event.forward is not None:
            message.append("  " + forward_note(event.forward), style="cyan")
    return [
        Text(iso_time(event.received_at)[11:19]),
        Text(str(event.attempt) if event.attempt else "-",
             style="bold magenta" if (event.attempt or 0) > 1 else ""),
        Text(refid, overflow="ellipsis"),
        Text(printable(event.from_number or "-")),
        Text(printable(event.to_number or "-")),
        message,
        Text(verdict, style=_VERDICT_STYLE.get(verdict.split(" ")[0], "")),
        Text(str(event.status), style=_status_style(event.status)),
    ]


def build_view(url: str, stats: ListenStats, events: list[ListenEvent] | deque[ListenEvent],
               width: int = 200, *, faults: str | None = None) -> Group:
    compact = width < COMPACT_BELOW
    header = Text()
    header.append("ipsms listen ", style="bold")
    header.append(url, style="cyan")
    header.append(f"   received {stats.received}  accepted {stats.accepted}  "
                  f"rejected {stats.rejected}  bad signatures {stats.bad_signatures}  "
                  f"retries {stats.retries}")
    if faults:  # so nobody forgets it is on
        header.append(f"\nfault injection: {faults}", style="bold yellow")
    table = Table(expand=True, show_edge=False, pad_edge=False, box=box.SIMPLE_HEAD,
                  padding=(0, 1) if not compact else (0, 0))
    for name, kwargs in (
        ("time", {"no_wrap": True}), ("#", {"justify": "right"}),
        ("refid", {"no_wrap": True, "max_width": 34}), ("from", {"no_wrap": True}),
        ("to", {"no_wrap": True}),
        ("message", {"no_wrap": True, "ratio": 1, "overflow": "ellipsis", "min_width": 10}),
        ("signature", {"no_wrap": True}), ("status", {"justify": "right"}),
    ):
        table.add_column(name, **kwargs)
    for event in events:
        table.add_row(*event_row(event, compact))
    parts: list[Any] = [header, table]
    if not events:
        parts.append(Text("waiting for messages… (Ctrl-C to stop)", style="dim"))
    return Group(*parts)


class LiveView:
    """The live table: newest rows at the bottom, as many as fit the terminal's height (at most
    ``max_rows``), redrawn at a fixed rate
    (not per request, so a burst of messages costs no extra redraws)."""

    def __init__(self, console: Console, url: str, stats: ListenStats,
                 max_rows: int = MAX_ROWS, *, faults: str | None = None) -> None:
        self.console = console
        self.url = url
        self.faults = faults  # what fault injection does, shown in the header while it is on
        self.stats = stats
        self.rows: deque[ListenEvent] = deque(maxlen=max_rows)
        self._live = Live(console=console, refresh_per_second=REFRESH_PER_SECOND,
                          get_renderable=self.render, redirect_stdout=False,
                          redirect_stderr=False, transient=False)

    def render(self) -> Group:
        fit = max(self.console.height - CHROME_LINES, 3)
        rows = list(self.rows)[-fit:] if len(self.rows) > fit else self.rows
        return build_view(self.url, self.stats, rows, self.console.width, faults=self.faults)

    def __call__(self, event: ListenEvent) -> None:
        self.rows.append(event)

    def start(self) -> None:
        self._live.start()

    def stop(self) -> None:
        self._live.stop()
