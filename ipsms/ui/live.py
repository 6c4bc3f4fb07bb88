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

from ipsms.listen.events import ListenEvent, ListenStats, RejectedEvent
from ipsms.text import iso_time, one_line
from ipsms.ui.cells import cell_text

MAX_ROWS = 200  # rows kept; as many as fit the terminal are shown
CHROME_LINES = 5  # header, table heading and rule, and a spare line
REFRESH_PER_SECOND = 4
MESSAGE_WIDTH = 160  # pre-cut; the column then ellipsizes to the terminal width
SAFETY_MARGIN = 2  # columns left free on the right, in case a terminal still disagrees
COMPACT_BELOW = 130  # terminal width under which headings, header words and gaps shrink
REFID_PREFIX = 8  # characters of a refid shown when it cannot be whole (`messages show` takes
# them)

_VERDICT_STYLE = {"valid": "green", "unchecked": "dim", "invalid": "bold red", "missing": "red"}
COLUMNS = ("time", "#", "refid", "from", "to", "message", "flags", "signature", "status")
_COMPACT_NAMES = {7: "sig", 8: "http"}  # headings as narrow as their cells
_TIME, _ATTEMPT, _REFID, _FROM, _TO, _MESSAGE, _FLAGS, _SIGNATURE, _STATUS = range(9)
_RIGHT = (_ATTEMPT, _STATUS)
_FIXED = (_TIME, _ATTEMPT, _STATUS)  # short, and always whole
# Widest a column is drawn; the others take what their cells need.
_CAPS = {_REFID: 34, _FROM: 16, _TO: 16, _MESSAGE: MESSAGE_WIDTH, _FLAGS: 40, _SIGNATURE: 28}
# How the columns share a terminal. First each gets its floor: the refid its first
# characters, the numbers their last digits (``…5550100``), the flags their short names (up
# to 8 cells), the signature its verdict word (``invalid``, never only its reason), the
# message 14 cells. Then what is left goes, in ``_GROW``'s order, to each column up to a
# target: a width, ``SHORT`` (its cells' short forms whole), ``FULL`` (its cells whole) or
# ``(FIT, n)`` (the widest whole cell up to n that fits, or nothing: a refid is whole or a
# prefix, a verdict ``invalid (case)`` or ``invalid``). ``(NEED, n)`` is ``FIT`` over what
# the cells need to say: a bad signature's reason, not a valid one's scheme. What is left
# after that stays unused.
_SHORT, _FULL, _FIT, _NEED = "short", "full", "fit", "need"
_Goal = int | str | tuple[str, int]
_GROW: tuple[tuple[int, _Goal], ...] = (
    (_FLAGS, _SHORT),
    (_MESSAGE, 18),
    (_SIGNATURE, (_NEED, 28)),
    (_FROM, _FULL),
    (_TO, _FULL),
    (_MESSAGE, 24),
    (_REFID, (_FIT, 34)),
    (_MESSAGE, 40),
    (_SIGNATURE, (_FIT, 28)),
    (_FLAGS, (_FIT, 40)),
    (_MESSAGE, _FULL),
)
_FLOORS: dict[int, _Goal] = {
    _REFID: REFID_PREFIX + 1,
    _FROM: 8,
    _TO: 8,
    _MESSAGE: 14,
    _FLAGS: 8,
    _SIGNATURE: _SHORT,
}
# When even the floors do not fit (a terminal under about 80 columns), columns give way
# further, in this order, down to these widths.
_SHRINK = (
    (_MESSAGE, 10),
    (_FLAGS, 6),
    (_TO, 6),
    (_FROM, 6),
    (_MESSAGE, 6),
    (_SIGNATURE, 5),
    (_REFID, 5),
    (_FLAGS, 1),
    (_TO, 5),
    (_FROM, 5),
    (_MESSAGE, 1),
    (_REFID, 1),
    (_SIGNATURE, 1),
    (_FROM, 1),
    (_TO, 1),
)


# Flag codes as narrow columns show them, so two or three fit 80 columns (the full codes are
# shown where they fit, and in `--format plain`/`json` and `messages show`).
SHORT_FLAGS = {
    "refid_length": "refid",
    "from_format": "from",
    "to_format": "to",
    "too_many_attempts": ">5",
    "refid_reused": "reused",
    "earlier_session": "earlier",
    "lone_surrogate": "surrogate",
    "unrepresentable_number": "number",
    "extra_fields": "extra",
}


def _status_style(status: int) -> str:
    return "green" if status == 200 else "yellow" if status < 500 else "red"


def _cell(text: str, style: str = "") -> Text:
    return Text(cell_text(text), style=style)


class Row:
    """One request's cells, one per ``COLUMNS``, and the shorter forms some of them take when
    the column is too narrow for the whole cell: a refid's first characters (a prefix `ipsms
    messages show` accepts), the flags' short names, the verdict without its reason."""

    __slots__ = ("cells", "extra", "short")

    def __init__(
        self, cells: list[Text], short: dict[int, Text] | None = None, extra: tuple[int, ...] = ()
    ) -> None:
        self.cells = cells
        self.short = short or {}
        self.extra = extra  # columns whose whole cell only adds a detail (a valid scheme)

    def width(self, column: int, form: str = _FULL) -> int:
        """The width of a cell whole (``FULL``), in its short form (``SHORT``), or as it
        needs to be to say what matters (``NEED``)."""
        short = form == _SHORT or (form == _NEED and column in self.extra)
        cell = self.short.get(column) if short else None
        return (self.cells[column] if cell is None else cell).cell_len

    def cell(self, column: int, width: int) -> Text:
        """The cell as a column ``width`` wide shows it: whole if it fits, else its short
        form (cut further, with an ellipsis, when even that is too wide)."""
        cell = self.cells[column]
        if cell.cell_len > width and column in self.short:
            return self.short[column]
        return cell


def _rejected_row(event: RejectedEvent) -> Row:
    return Row(
        [
            Text(iso_time(event.received_at)[11:19]),
            Text("-"),
            Text("rejected", style="yellow"),
            _cell(event.remote or "-"),
            Text("-"),
            _cell(one_line(event.reason, MESSAGE_WIDTH), "yellow"),
            Text(""),
            Text("-"),
            Text(str(event.status), style=_status_style(event.status)),
        ]
    )


def forward_note(forward: dict[str, Any]) -> str:
    """``'→ app 500 in 12 ms: {"error": ...'`` or ``'→ app unreachable (502)'``."""
    if forward.get("error"):
        return cell_text(f"→ app: {forward.get('detail') or forward['error']}")
    return f"→ app {forward['status']} in {forward['latency_ms']:.0f} ms: " + cell_text(
        one_line(forward.get("body_preview") or "", 40)
    )


def refid_cell(refid: str, compact: bool) -> str:
    """The refid as the table shows it: whole, or (``compact``) its first characters and an
    ellipsis (a prefix `ipsms messages show` accepts)."""
    if compact and len(refid) > REFID_PREFIX + 1:
        return cell_text(refid[:REFID_PREFIX]) + "…"
    return cell_text(refid)


def event_row(event: ListenEvent) -> Row:
    """The cells of one request. Every cell is a ``Text`` built from plain strings in
    ``cell_text``'s display form: rich markup in a message (``[bold]``) stays literal,
    control characters are escaped, and no cell is wider than rich measures it."""
    if isinstance(event, RejectedEvent):
        return _rejected_row(event)
    short: dict[int, Text] = {}
    if event.refid is None:
        refid = Text(cell_text(f"{event.method} {event.path}"))
        message = _cell(one_line(f"{event.error}: {event.error_detail}", MESSAGE_WIDTH), "yellow")
    else:
        refid = Text(refid_cell(event.refid, False))
        if len(event.refid) > REFID_PREFIX + 1:
            short[_REFID] = Text(refid_cell(event.refid, True))
        message = _cell(one_line(event.message or "", MESSAGE_WIDTH))
        if event.forward is not None:
            message.append("  " + forward_note(event.forward), style="cyan")
    codes = [str(f.get("code")) for f in event.flags or ()]
    flags = _cell(",".join(codes), "bold yellow")
    if any(c in SHORT_FLAGS for c in codes):
        short[_FLAGS] = _cell(",".join(SHORT_FLAGS.get(c, c) for c in codes), "bold yellow")
    if event.verdict is None:
        signature = Text("-")
    else:
        style = _VERDICT_STYLE.get(event.verdict, "")
        signature = _cell(event.verdict_label or event.verdict, style)
        if signature.plain != event.verdict:  # the word alone: never just the reason
            short[_SIGNATURE] = _cell(event.verdict, style)
    extra = (_SIGNATURE,) if event.verdict == "valid" else ()
    return Row(
        [
            Text(iso_time(event.received_at)[11:19]),
            Text(
                str(event.attempt) if event.attempt else "-",
                style="bold magenta" if (event.attempt or 0) > 1 else "",
            ),
            refid,
            _cell(event.from_number or "-"),
            _cell(event.to_number or "-"),
            message,
            flags,
            signature,
            Text(str(event.status), style=_status_style(event.status)),
        ],
        short,
        extra,
    )


def column_widths(rows: list[Row], shown: list[int], width: int, compact: bool) -> dict[int, int]:
    """Widths of the ``shown`` columns that fit ``width``: time, attempt and status whole;
    the others their floors, then what is left in ``_GROW``'s order (see there); when even
    the floors do not fit, columns give way further in ``_SHRINK``'s order."""
    heading = {i: len(_name(i, compact)) for i in shown}
    full = {
        i: min(max([heading[i], *(r.width(i) for r in rows)]), _CAPS.get(i, 10**6)) for i in shown
    }
    short = {i: min(max([heading[i], *(r.width(i, _SHORT) for r in rows)]), full[i]) for i in shown}

    def target(i: int, goal: _Goal, room: int) -> int:
        if goal == _SHORT:
            return short[i]
        if goal == _FULL:
            return full[i]
        if isinstance(goal, tuple):  # the widest whole cell that fits, or no growth at all
            form = _NEED if goal[0] == _NEED else _FULL
            fits = [
                w
                for w in (heading[i], *(min(r.width(i, form), full[i]) for r in rows))
                if w <= min(room, goal[1])
            ]
            return max(fits, default=0)
        assert isinstance(goal, int)
        return min(goal, full[i])

    widths = {
        i: full[i]
        if i in _FIXED
        else max(heading[i], min(target(i, _FLOORS[i], 0), full[i]))
        if i in _FLOORS
        else full[i]
        for i in shown
    }
    room = width - sum(widths.values()) - _gap(compact) * (len(widths) - 1)
    for i, goal in _GROW:
        if room <= 0:
            break
        if i in widths:
            grown = min(max(target(i, goal, widths[i] + room), widths[i]), widths[i] + room)
            room -= grown - widths[i]
            widths[i] = grown
    for i, floor in _SHRINK:
        if room >= 0:
            break
        if i in widths:
            cut = min(-room, max(widths[i] - floor, 0))
            widths[i] -= cut
            room += cut
    return widths


def _name(column: int, compact: bool) -> str:
    return _COMPACT_NAMES.get(column, COLUMNS[column]) if compact else COLUMNS[column]


def _tail(cell: Text, width: int) -> Text:
    """A phone number cut to ``width`` from the left (``…5550100``): its last digits are the
    ones that tell two numbers apart."""
    if cell.cell_len <= width or not cell.plain.isascii() or width < 2:
        return cell
    return Text("…" + cell.plain[-(width - 1) :], style=cell.style)


def _gap(compact: bool) -> int:
    """Blank columns between two cells."""
    return 1 if compact else 2


def _line(text: Text) -> Text:
    """One line, cut with an ellipsis to the width it gets (never wrapped)."""
    text.no_wrap = True
    text.overflow = "ellipsis"
    return text


def build_view(
    url: str,
    stats: ListenStats,
    events: list[ListenEvent] | deque[ListenEvent],
    width: int = 200,
    *,
    faults: str | None = None,
) -> Group:
    """The header and the table for a terminal ``width`` columns wide (drawn
    ``SAFETY_MARGIN`` narrower)."""
    compact = width < COMPACT_BELOW
    avail = max(width - SAFETY_MARGIN, 20)
    header = Text()
    header.append("ipsms listen ", style="bold")
    header.append(cell_text(url), style="cyan")
    if compact:  # short words, so the counts fit 80 columns beside a local URL
        header.append(
            f"  rcvd {stats.received}  ok {stats.accepted}  rej {stats.rejected}"
            f"  bad sig {stats.bad_signatures}  retries {stats.retries}"
        )
    else:
        header.append(
            f"   received {stats.received}  accepted {stats.accepted}  "
            f"rejected {stats.rejected}  bad signatures {stats.bad_signatures}  "
            f"retries {stats.retries}"
        )
    parts: list[Any] = [_line(header)]
    if faults:  # so nobody forgets it is on
        parts.append(_line(Text(cell_text(f"fault injection: {faults}"), style="bold yellow")))
    rows = [event_row(event) for event in events]
    shown = [
        i
        for i in range(len(COLUMNS))
        if i != _FLAGS or any(row.cells[_FLAGS].plain for row in rows)
    ]
    widths = column_widths(rows, shown, avail, compact)
    # Laid out here, one Text per line, rather than by rich's Table: the columns' widths are
    # known already, and a Table renders every cell through padding and wrapping: a full
    # screen's redraw is long, and the listener's event loop waits meanwhile (bench/bench_live.py).
    gap = " " * _gap(compact)
    heading = [Text(_name(i, compact), style="bold") for i in shown]
    parts.append(_line(_joined(heading, shown, widths, gap)))
    parts.append(_line(Text("─" * (sum(widths[i] for i in shown) + len(gap) * (len(shown) - 1)))))
    for row in rows:
        cells = [row.cell(i, widths[i]) for i in shown]
        for n, i in enumerate(shown):
            if i in (_FROM, _TO):
                cells[n] = _tail(cells[n], widths[i])
        parts.append(_line(_joined(cells, shown, widths, gap)))
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
    """rich's ``Live`` that redraws only when ``changed()`` says so: a full table is costly to
    draw, and 4 redraws a second would keep part of a core busy while the listener sits idle
    (bench/bench_live.py counts the redraws)."""

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

    def __init__(
        self,
        console: Console,
        url: str,
        stats: ListenStats,
        max_rows: int = MAX_ROWS,
        *,
        faults: str | None = None,
        preamble: list[str] | None = None,
    ) -> None:
        self.console = console
        self.url = url
        self.faults = faults  # what fault injection does, shown in the header while it is on
        # The lines printed above the table before it started (where it listens and records,
        # warnings): kept on screen, and drawn again after a resize blanked the screen.
        self.preamble = preamble or []
        self._redrawn = False  # a resize blanked the screen: the preamble is in every frame
        self.stats = stats
        self.rows: deque[ListenEvent] = deque(maxlen=max_rows)
        self._size: tuple[int, int] | None = None  # the terminal's size at the last redraw
        self._version = 0  # requests seen; the one drawn last is ``_drawn``
        self._drawn = -1
        self._live = _Live(
            console=console,
            refresh_per_second=REFRESH_PER_SECOND,
            get_renderable=self.render,
            redirect_stdout=False,
            redirect_stderr=False,
            transient=False,
            changed=self.changed,
        )

    def changed(self) -> bool:
        """Whether the next redraw would differ: a request arrived, or the size changed."""
        return self._version != self._drawn or self.console.size != self._size

    def render(self) -> Group:
        width, height = self.console.size
        self._drawn = self._version
        resized = self._size is not None and self._size != (width, height)
        self._size = (width, height)
        self._redrawn = self._redrawn or resized
        preamble = self._preamble(width) if self._redrawn else []
        # The lines above the table stay on screen: as many lines as they take are not rows.
        above = (
            len(preamble)
            if self._redrawn
            else sum(max(1, -(-Text(line).cell_len // width)) for line in self.preamble)
        )
        fit = max(height - CHROME_LINES - above, 3)
        # A copy first: this runs on rich's refresh thread while the event loop appends, and
        # iterating the deque itself in Python would fail with "deque mutated during
        # iteration" (seen under load); ``list(deque)`` copies in C, holding the GIL.
        rows = list(self.rows)[-fit:]
        view = build_view(self.url, self.stats, rows, width, faults=self.faults)
        if resized:
            # The terminal rewrapped what was drawn, so rich's "cursor up N lines" no longer
            # reaches the top of the old table: blank the screen and redraw from its top,
            # the lines that were above the table included.
            return Group(blank_screen(height), *preamble, view)
        return Group(*preamble, view) if preamble else view

    def _preamble(self, width: int) -> list[Text]:
        """The preamble as this view draws it after a resize: wrapped at the table's width,
        one ``Text`` per screen line."""
        lines: list[Text] = []
        for line in self.preamble:
            lines += Text(cell_text(line), overflow="fold").wrap(
                self.console, max(width - SAFETY_MARGIN, 20)
            )
        for text in lines:
            text.no_wrap = True
        return lines

    def __call__(self, event: ListenEvent) -> None:
        self.rows.append(event)
        self._version += 1

    def start(self) -> None:
        self._drawn = -1  # the first frame is drawn whatever happened before (the URL was set)
        self._live.start()

    def stop(self) -> None:
        self._live.stop()
