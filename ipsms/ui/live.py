"""Rich rendering of the listener: the live table and its header. The CLI decides when to use
it (a terminal) and when not (a pipe).

The table must never be wider than the terminal, whatever width the terminal gives an emoji:
a line that wraps makes rich's redraw (cursor up by the lines it drew) leave stale copies of
the header behind. So every cell is in ``cell_text``'s display form (characters every
terminal measures alike), every column has an explicit width computed here (no wrapping,
an ellipsis where a cell is cut), the whole view is laid out ``SAFETY_MARGIN`` columns
narrower than the terminal, and a change of the terminal's size clears the screen before the
next redraw (after the terminal rewrapped the old lines, rich's count of them is wrong).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from rich.console import Console, Group
from rich.constrain import Constrain
from rich.control import Control
from rich.live import Live
from rich.segment import ControlType
from rich.text import Text

from ipsms.cells import cell_text
from ipsms.events import ListenEvent, ListenStats, RejectedEvent
from ipsms.text import iso_time, one_line

MAX_ROWS = 200  # rows kept; as many as fit the terminal are shown
CHROME_LINES = 5  # header, table heading and rule, and a spare line
REFRESH_PER_SECOND = 4
MESSAGE_WIDTH = 160  # pre-cut; the column then ellipsizes to the terminal width
SAFETY_MARGIN = 2  # columns left free on the right, in case a terminal still disagrees
COMPACT_BELOW = 130  # terminal width under which refids, verdicts and padding shrink
REFID_PREFIX = 8  # characters of a refid shown in compact mode (`messages show` takes them)

_VERDICT_STYLE = {"valid": "green", "unchecked": "dim", "invalid": "bold red",
                  "missing": "red"}
COLUMNS = ("time", "#", "refid", "from", "to", "message", "flags", "signature", "status")
_COMPACT_NAMES = {7: "sig", 8: "http"}  # headings as narrow as their cells
_TIME, _ATTEMPT, _REFID, _FROM, _TO, _MESSAGE, _FLAGS, _SIGNATURE, _STATUS = range(9)
_RIGHT = (_ATTEMPT, _STATUS)
# Widest a column is drawn (full, compact); the others take what their cells need.
_CAPS = {_REFID: (34, REFID_PREFIX + 1), _FROM: (16, 16), _TO: (16, 16),
         _MESSAGE: (MESSAGE_WIDTH, MESSAGE_WIDTH), _FLAGS: (32, 16), _SIGNATURE: (28, 16)}
# Columns that give way when the terminal is too narrow, in this order, down to these widths.
# Time, attempt and status never do: they are short and must stay whole.
_SHRINK = ((_MESSAGE, 24), (_REFID, 12), (_FLAGS, 12), (_TO, 8), (_FROM, 9), (_MESSAGE, 16),
           (_FLAGS, 8), (_SIGNATURE, 8), (_MESSAGE, 10), (_REFID, 5), (_FLAGS, 4), (_TO, 5),
           (_FROM, 5), (_SIGNATURE, 5), (_MESSAGE, 5), (_FLAGS, 1), (_MESSAGE, 1), (_REFID, 1),
           (_SIGNATURE, 1), (_FROM, 1), (_TO, 1))
# (Numbers are cut from the left, ``…5550100``: the last digits tell numbers apart, and the
# message keeps two dozen characters at 80 columns.)


# Flag codes as compact mode shows them, so two or three fit 80 columns (the full codes are in
# wider terminals, `--format plain`/`json` and `messages show`).
SHORT_FLAGS = {"refid_length": "refid", "from_format": "from", "to_format": "to",
               "too_many_attempts": ">5", "refid_reused": "reused",
               "earlier_session": "earlier", "lone_surrogate": "surrogate",
               "unrepresentable_number": "number", "extra_fields": "extra"}


def _status_style(status: int) -> str:
    return "green" if status == 200 else "yellow" if status < 500 else "red"


def _cell(text: str, style: str = "") -> Text:
    return Text(cell_text(text), style=style)


def _rejected_row(event: RejectedEvent) -> list[Text]:
    return [
        Text(iso_time(event.received_at)[11:19]), Text("-"), Text("rejected", style="yellow"),
        _cell(event.remote or "-"), Text("-"),
        _cell(one_line(event.reason, MESSAGE_WIDTH), "yellow"), Text(""), Text("-"),
        Text(str(event.status), style=_status_style(event.status)),
    ]


def forward_note(forward: dict[str, Any]) -> str:
    """``'→ app 500 in 12 ms: {"error": ...'`` or ``'→ app unreachable (502)'``."""
    if forward.get("error"):
        return cell_text(f"→ app: {forward.get('detail') or forward['error']}")
    return (f"→ app {forward['status']} in {forward['latency_ms']:.0f} ms: "
            + cell_text(one_line(forward.get("body_preview") or "", 40)))


def refid_cell(refid: str, compact: bool) -> str:
    """The refid as the table shows it: whole, or in compact mode its first characters and
    an ellipsis (a prefix `ipsms messages show` accepts)."""
    if compact and len(refid) > REFID_PREFIX + 1:
        return cell_text(refid[:REFID_PREFIX]) + "…"
    return cell_text(refid)


def _signature_cell(event: ListenEvent, compact: bool) -> Text:
    if isinstance(event, RejectedEvent) or event.verdict is None:
        return Text("-")
    style = _VERDICT_STYLE.get(event.verdict, "")
    if compact:  # the word alone; for an invalid one its reason says more (and is red)
        return _cell(event.verdict_reason or event.verdict, style)
    return _cell(event.verdict_label or event.verdict, style)


def event_row(event: ListenEvent, compact: bool = False) -> list[Text]:
    """Cells for one request, one per ``COLUMNS``. Every cell is a ``Text`` built from plain
    strings in ``cell_text``'s display form: rich markup in a message (``[bold]``) stays
    literal, control characters are escaped, and no cell is wider than rich measures it."""
    if isinstance(event, RejectedEvent):
        return _rejected_row(event)
    if event.refid is None:
        refid = cell_text(f"{event.method} {event.path}")
        message = _cell(one_line(f"{event.error}: {event.error_detail}", MESSAGE_WIDTH),
                        "yellow")
    else:
        refid = refid_cell(event.refid, compact)
        message = _cell(one_line(event.message or "", MESSAGE_WIDTH))
        if event.forward is not None:
            message.append("  " + forward_note(event.forward), style="cyan")
    codes = [str(f.get("code")) for f in event.flags or ()]
    flags = ",".join(SHORT_FLAGS.get(c, c) for c in codes) if compact else ",".join(codes)
    return [
        Text(iso_time(event.received_at)[11:19]),
        Text(str(event.attempt) if event.attempt else "-",
             style="bold magenta" if (event.attempt or 0) > 1 else ""),
        Text(refid),
        _cell(event.from_number or "-"),
        _cell(event.to_number or "-"),
        message,
        _cell(flags, "bold yellow"),
        _signature_cell(event, compact),
        Text(str(event.status), style=_status_style(event.status)),
    ]


def column_widths(rows: list[list[Text]], shown: list[int], width: int, compact: bool
                  ) -> dict[int, int]:
    """Widths of the ``shown`` columns that fit ``width``: each as wide as its widest cell
    (capped), then message, refid, flags, numbers and signature give way, in ``_SHRINK``'s
    order."""
    widths = {}
    for i in shown:
        natural = max([len(_name(i, compact)), *(row[i].cell_len for row in rows)])
        widths[i] = min(natural, _CAPS[i][compact]) if i in _CAPS else natural
    excess = sum(widths.values()) + _gap(compact) * (len(widths) - 1) - width
    for i, floor in _SHRINK:
        if excess <= 0:
            break
        if i in widths:
            cut = min(excess, max(widths[i] - floor, 0))
            widths[i] -= cut
            excess -= cut
    return widths


def _name(column: int, compact: bool) -> str:
    return _COMPACT_NAMES.get(column, COLUMNS[column]) if compact else COLUMNS[column]


def _tail(cell: Text, width: int) -> Text:
    """A phone number cut to ``width`` from the left (``…5550100``): its last digits are the
    ones that tell two numbers apart."""
    if cell.cell_len <= width or not cell.plain.isascii() or width < 2:
        return cell
    return Text("…" + cell.plain[-(width - 1):], style=cell.style)


def _gap(compact: bool) -> int:
    """Columns between two cells: the padding either side and box.SIMPLE_HEAD's divider."""
    return 1 if compact else 3


def _line(text: Text) -> Text:
    """One line, cut with an ellipsis to the width it gets (never wrapped)."""
    text.no_wrap = True
    text.overflow = "ellipsis"
    return text


def build_view(url: str, stats: ListenStats, events: list[ListenEvent] | deque[ListenEvent],
               width: int = 200, *, faults: str | None = None) -> Group:
    """The header and the table for a terminal ``width`` columns wide (drawn
    ``SAFETY_MARGIN`` narrower)."""
    compact = width < COMPACT_BELOW
    avail = max(width - SAFETY_MARGIN, 20)
    header = Text()
    header.append("ipsms listen ", style="bold")
    header.append(cell_text(url), style="cyan")
    if compact:  # short words, so the counts fit 80 columns beside a local URL
        header.append(f"  rcvd {stats.received}  ok {stats.accepted}  rej {stats.rejected}"
                      f"  bad sig {stats.bad_signatures}  retries {stats.retries}")
    else:
        header.append(f"   received {stats.received}  accepted {stats.accepted}  "
                      f"rejected {stats.rejected}  bad signatures {stats.bad_signatures}  "
                      f"retries {stats.retries}")
    parts: list[Any] = [_line(header)]
    if faults:  # so nobody forgets it is on
        parts.append(_line(Text(cell_text(f"fault injection: {faults}"),
                                style="bold yellow")))
    rows = [event_row(event, compact) for event in events]
    shown = [i for i in range(len(COLUMNS))
             if i != _FLAGS or any(row[_FLAGS].plain for row in rows)]
    widths = column_widths(rows, shown, avail, compact)
    # Laid out here, one Text per line, rather than by rich's Table: the columns' widths are
    # known already, and a Table renders every cell through padding and wrapping, which made
    # a redraw of a full screen cost 30 to 60 ms (the listener's event loop waits meanwhile).
    gap = " " * _gap(compact)
    heading = [Text(_name(i, compact), style="bold") for i in shown]
    parts.append(_line(_joined(heading, shown, widths, gap)))
    parts.append(_line(Text("─" * (sum(widths[i] for i in shown) + len(gap) * (len(shown) - 1)))))
    for row in rows:
        row[_FROM], row[_TO] = _tail(row[_FROM], widths[_FROM]), _tail(row[_TO], widths[_TO])
        parts.append(_line(_joined([row[i] for i in shown], shown, widths, gap)))
    if not events:
        parts.append(_line(Text("waiting for messages… (Ctrl-C to stop)", style="dim")))
    return Group(Constrain(Group(*parts), avail))


def _joined(cells: list[Text], shown: list[int], widths: dict[int, int], gap: str) -> Text:
    """One table line: each cell cut to its column's width with an ellipsis, padded to it
    (right-aligned in the number columns), the cells joined by ``gap``."""
    line = Text()
    for n, (i, cell) in enumerate(zip(shown, cells, strict=True)):
        width = widths[i]
        cell = cell.copy()
        cell.truncate(width, overflow="ellipsis")
        room = width - cell.cell_len
        if room > 0:
            if i in _RIGHT:
                cell.pad_left(room)
            else:
                cell.pad_right(room)
        if n:
            line.append(gap)
        line.append_text(cell)
    return line


def blank_screen(height: int) -> Control:
    """Erase every line of a ``height``-line screen and put the cursor home. Line by line,
    not "clear screen": tmux and others scroll a cleared screen into the scrollback, which
    would keep a copy of the old table there."""
    erase: list[ControlType | tuple[ControlType, int]] = [ControlType.HOME]
    for _ in range(height):
        erase += [(ControlType.ERASE_IN_LINE, 2), (ControlType.CURSOR_DOWN, 1)]
    return Control(*erase, ControlType.HOME)


class _Live(Live):
    """rich's ``Live`` that redraws only when ``changed()`` says so: a redraw of a full table
    costs 30 to 40 ms, which at 4 a second would keep a sixth of a core busy while the
    listener sits idle."""

    def __init__(self, *args: Any, changed: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._changed = changed
        self._stopping = False

    def refresh(self) -> None:
        if self._stopping or self._changed():
            super().refresh()

    def stop(self) -> None:
        self._stopping = True  # the last frame is always drawn
        super().stop()


class LiveView:
    """The live table: newest rows at the bottom, as many as fit the terminal's height (at most
    ``max_rows``), redrawn at most ``REFRESH_PER_SECOND`` times a second, and only when a
    request arrived or the terminal changed size (not per request, so a burst of messages
    costs no extra redraws, and an idle listener none)."""

    def __init__(self, console: Console, url: str, stats: ListenStats,
                 max_rows: int = MAX_ROWS, *, faults: str | None = None) -> None:
        self.console = console
        self.url = url
        self.faults = faults  # what fault injection does, shown in the header while it is on
        self.stats = stats
        self.rows: deque[ListenEvent] = deque(maxlen=max_rows)
        self._size: tuple[int, int] | None = None  # the terminal's size at the last redraw
        self._version = 0  # requests seen; the one drawn last is ``_drawn``
        self._drawn = -1
        self._live = _Live(console=console, refresh_per_second=REFRESH_PER_SECOND,
                           get_renderable=self.render, redirect_stdout=False,
                           redirect_stderr=False, transient=False, changed=self.changed)

    def changed(self) -> bool:
        """Whether the next redraw would differ: a request arrived, or the size changed."""
        return self._version != self._drawn or self.console.size != self._size

    def render(self) -> Group:
        width, height = self.console.size
        self._drawn = self._version
        fit = max(height - CHROME_LINES, 3)
        # A copy first: this runs on rich's refresh thread while the event loop appends, and
        # iterating the deque itself in Python would fail with "deque mutated during
        # iteration" (seen under load); ``list(deque)`` copies in C, holding the GIL.
        rows = list(self.rows)[-fit:]
        view = build_view(self.url, self.stats, rows, width, faults=self.faults)
        resized = self._size is not None and self._size != (width, height)
        self._size = (width, height)
        if resized:
            # The terminal rewrapped what was drawn, so rich's "cursor up N lines" no longer
            # reaches the top of the old table: blank the screen and redraw from its top.
            return Group(blank_screen(height), view)
        return view

    def __call__(self, event: ListenEvent) -> None:
        self.rows.append(event)
        self._version += 1

    def start(self) -> None:
        self._drawn = -1  # the first frame is drawn whatever happened before (the URL was set)
        self._live.start()

    def stop(self) -> None:
        self._live.stop()
