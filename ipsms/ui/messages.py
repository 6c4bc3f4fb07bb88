"""Rich rendering of recorded messages: the ``messages list`` table and ``messages show``.

Every cell is a ``Text`` built from strings passed through ``printable``: rich markup in an
SMS (``[bold]``) stays literal and control characters (ANSI escapes, bidi overrides) are shown
as visible escapes instead of reaching the terminal.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ipsms.records import detail_dict
from ipsms.request import Request
from ipsms.signature import reason_of, verdict_label
from ipsms.store.history import CODES as HISTORY_CODES
from ipsms.text import iso_time, one_line, printable
from ipsms.ui.cells import cell_text

MESSAGE_WIDTH = 48

_VERDICT_STYLE = {"valid": "green", "unchecked": "dim", "invalid": "bold red", "missing": "red"}


def _clock(ts_iso: str) -> str:
    """``2024-05-01T12:34:56.789Z`` -> ``2024-05-01 12:34:56``."""
    return ts_iso[:19].replace("T", " ")


def _short_clock(ts_iso: str) -> str:
    """``2024-05-01T12:34:56.789Z`` -> ``05-01 12:34:56`` (UTC), for narrow tables."""
    return ts_iso[5:19].replace("T", " ")


def _status_style(status: int) -> str:
    return "green" if status == 200 else "yellow" if status < 500 else "red"


def _verdict_text(verdict: str | None, detail: str | None) -> Text:
    if verdict is None:
        return Text("-")
    label = verdict_label(verdict, detail) or verdict
    return Text(cell_text(label), style=_VERDICT_STYLE.get(verdict, ""))


def _list_cells(row: Request) -> list[Text]:
    # Each cell in ``cell_text``'s display form, as in the live table: an emoji with a skin
    # tone or a ZWJ family is measured alike by rich and by every terminal, so a row never
    # grows past the terminal's width.
    if row.refid is None:
        message = Text(
            cell_text(one_line(row.error_text or "rejected", MESSAGE_WIDTH)), style="yellow"
        )
    else:
        message = Text(cell_text(one_line(row.message or "", MESSAGE_WIDTH)))
    return [
        Text(_short_clock(iso_time(row.received_at))),
        Text(cell_text(row.refid or "-")),
        _attempt_text(row),
        Text(cell_text(row.from_number or "-")),
        Text(cell_text(row.to_number or "-")),
        message,
        _verdict_text(row.verdict, row.verdict_detail),
        Text(str(row.status), style=_status_style(row.status)),
    ]


def _attempt_text(row: Request) -> Text:
    """The attempt number; with ``!`` when its refid's history is odd (past 5 attempts, a
    reused refid, first seen in an earlier session): ``messages show`` says why."""
    if not row.attempt:
        return Text("-")
    if any(f.get("code") in HISTORY_CODES for f in row.flags or ()):
        return Text(f"{row.attempt}!", style="bold red")
    return Text(str(row.attempt), style="bold magenta" if row.attempt > 1 else "")


_HEADERS = ("time", "refid", "#", "from", "to", "message", "verdict", "status")
_TIME, _REFID, _ATTEMPT, _MESSAGE, _VERDICT = 0, 1, 2, 5, 6
_CAPS = {_REFID: 32, 3: 16, 4: 16, _MESSAGE: MESSAGE_WIDTH, _VERDICT: 28}
# Columns that give way on a narrow terminal, in this order, down to these widths.
_SHRINK = (
    (_MESSAGE, 24),
    (_REFID, 16),
    (_MESSAGE, 12),
    (_REFID, 10),
    (_VERDICT, 7),
    (_TIME, 8),
    (_MESSAGE, 8),
    (_REFID, 8),
)
_GAP = 2  # collapsed padding plus the blank divider of box.SIMPLE_HEAD


def column_widths(cells: list[list[Text]], width: int, verdict_floor: int = 7) -> list[int]:
    """Fit the table in ``width`` columns: numbers and status keep their content; message,
    refid, verdict (down to ``verdict_floor``: its widest word, so ``invalid`` is never cut)
    and then the date part of the time give way (with an ellipsis). Rich's own fitting would
    crop whole columns off the right instead."""
    widths = [max(len(h), *(c[i].cell_len for c in cells)) for i, h in enumerate(_HEADERS)]
    widths = [min(w, _CAPS.get(i, w)) for i, w in enumerate(widths)]
    natural = list(widths)
    excess = sum(widths) + _GAP * (len(widths) - 1) - width
    for i, floor in _SHRINK:
        if excess <= 0:
            break
        if i == _VERDICT:
            floor = max(floor, verdict_floor)
        cut = min(excess, max(widths[i] - floor, 0))
        widths[i] -= cut
        excess -= cut
    if widths[_TIME] < len("05-01 12:34:56"):
        widths[_TIME] = len("12:34:56")
        # Dropping the date freed some room: give it back to the message, then the refid.
        spare = width - sum(widths) - _GAP * (len(widths) - 1)
        for i in (_MESSAGE, _REFID):
            grow = max(min(spare, natural[i] - widths[i]), 0)
            widths[i] += grow
            spare -= grow
    return widths


def list_table(rows: list[Request], width: int = 80, *, filtered: bool = False) -> RenderableType:
    """The ``messages list`` table for a ``width``-column terminal, in the rows' order
    (``filtered``: the rows are a search's, so none means none matched)."""
    if not rows:
        return Text(
            "no recorded message matches" if filtered else "no messages recorded", style="dim"
        )
    cells = [_list_cells(r) for r in rows]
    widths = column_widths(cells, width, max(len(r.verdict or "") for r in rows))
    if widths[_TIME] == len("12:34:56"):  # too narrow for the date: keep the clock only
        for row_cells in cells:
            row_cells[_TIME] = Text(row_cells[_TIME].plain[-8:])
    for row, row_cells in zip(rows, cells, strict=True):
        if row.verdict and row_cells[_VERDICT].cell_len > widths[_VERDICT]:
            # The word whole rather than its reason cut: `invalid`, not `invalid (diff…`.
            row_cells[_VERDICT] = _verdict_text(row.verdict, None)
    # What the verdicts left unused goes back to the message.
    shown = max(len(_HEADERS[_VERDICT]), *(c[_VERDICT].cell_len for c in cells))
    spare, widths[_VERDICT] = widths[_VERDICT] - shown, min(widths[_VERDICT], shown)
    wanted = min(max(c[_MESSAGE].cell_len for c in cells), MESSAGE_WIDTH) - widths[_MESSAGE]
    widths[_MESSAGE] += max(min(spare, wanted), 0)
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        expand=False,
        padding=(0, 1),
        collapse_padding=True,
    )
    for i, (name, w) in enumerate(zip(_HEADERS, widths, strict=True)):
        table.add_column(
            name,
            width=w,
            no_wrap=True,
            overflow="ellipsis",
            justify="right" if i in (2, 7) else "left",
        )
    for row_cells in cells:
        table.add_row(*row_cells)
    if not any(c[_ATTEMPT].plain.endswith("!") for c in cells):
        return table
    # Past 5 attempts, a reused refid, an earlier session: too long to say in the cell.
    return Group(
        table,
        Text("! an odd attempt for its refid: `ipsms messages show REFID` says why", style="dim"),
    )


def tail_line(row: Request, width: int = 80) -> Text:
    """One request of ``messages tail`` on a terminal: a line that scrolls like ``tail -f``
    (time, status, attempt, refid, from -> to, verdict, then the message in what is left).
    Under 100 columns the refid shows its first 8 characters (``messages show`` takes them)
    and the date is left out."""
    wide = width >= 100
    iso = iso_time(row.received_at)
    line = Text()
    line.append(_short_clock(iso) if wide else iso[11:19], style="dim")
    line.append(" ")
    line.append(str(row.status), style=_status_style(row.status))
    line.append(" ")
    if row.refid is None:
        line.append(printable(row.error_text or "rejected"), style="yellow")
        line.truncate(width, overflow="ellipsis")
        return line
    attempt = _attempt_text(row)
    attempt.plain = f"#{attempt.plain}"
    line.append_text(attempt)
    refid = printable(row.refid)
    line.append(" " + (refid if wide or len(refid) <= 8 else refid[:8]), style="cyan")
    line.append(f" {printable(row.from_number or '-')} -> {printable(row.to_number or '-')} ")
    line.append_text(_verdict_text(row.verdict, row.verdict_detail))
    room = width - line.cell_len - 1
    if room > 3:
        line.append(" " + one_line(row.message or "", room))
    line.truncate(width, overflow="ellipsis")
    return line


def _multiline(text: str) -> Text:
    """Body text with its line breaks kept and every other control character escaped."""
    return Text("\n".join(printable(line) for line in text.replace("\r\n", "\n").split("\n")))


def _fields_table(attempt: dict[str, Any]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    verdict = _verdict_text(attempt["verdict"], None)
    reason = reason_of(attempt["verdict"], attempt["verdict_detail"])
    if reason:
        verdict.append(f" ({reason})")
    if attempt["verdict_detail"]:
        verdict.append(f"  {printable(attempt['verdict_detail'])}", style="")
    rows: list[tuple[str, Text]] = [
        ("received", Text(_clock(attempt["received_at"]) + " UTC")),
        (
            "request",
            Text(
                printable(f"{attempt['method']} {attempt['path']} from {attempt['remote'] or '?'}")
            ),
        ),
        ("status", Text(str(attempt["status"]), style=_status_style(attempt["status"]))),
        ("from", Text(printable(attempt["from"] or "-"))),
        ("to", Text(printable(attempt["to"] or "-"))),
        ("message", _multiline(attempt["message"] or "")),
        ("signature", Text(printable(attempt["signature"] or "-"))),
        ("verdict", verdict),
    ]
    if attempt["flags"]:
        rows.append(
            (
                "flags",
                Text(
                    "\n".join(
                        printable(f"{f.get('code')}: {f.get('detail')}") for f in attempt["flags"]
                    )
                ),
            )
        )
    if attempt["error"]:
        error = attempt["error"] + (
            f": {attempt['error_detail']}" if attempt["error_detail"] else ""
        )
        rows.append(("error", Text(printable(error), style="yellow")))
    for name, value in rows:
        grid.add_row(name, value)
    return grid


def _headers_table(headers: list[list[str]]) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="cyan", no_wrap=True)
    grid.add_column()
    for name, value in headers:
        grid.add_row(Text(printable(name) + ":"), Text(printable(value)))
    return grid


def attempt_panel(row: Request) -> Panel:
    """One recorded attempt: fields, verdict, headers (credentials masked) and the raw body
    (signature masked; text when UTF-8, else base64)."""
    attempt = detail_dict(row)
    if attempt["body"] is not None:
        body_title = f"body ({attempt['size']} bytes, {printable(attempt['content_type'] or '')})"
        body = _multiline(attempt["body"]) if attempt["body"] else Text("(empty)", style="dim")
    else:
        body_title = f"body ({attempt['size']} bytes, not UTF-8: base64)"
        body = Text(attempt["body_base64"])
    parts: list[RenderableType] = [
        _fields_table(attempt),
        Text("headers", style="bold"),
        _headers_table(attempt["headers"]),
        Text(body_title, style="bold"),
        body,
    ]
    title = f"attempt {attempt['attempt'] or '?'} · id {attempt['id']}"
    return Panel(Group(*parts), title=title, title_align="left", expand=True)


def show_view(refid: str, rows: list[Request]) -> Group:
    header = Text()
    header.append("refid ", style="bold")
    header.append(printable(refid), style="cyan")
    header.append(f"   {len(rows)} attempt{'s' if len(rows) != 1 else ''} recorded")
    note = Text("signatures are masked; `ipsms messages export` has the exact bytes", style="dim")
    return Group(header, *(attempt_panel(r) for r in rows), note)
