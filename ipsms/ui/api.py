"""Rich rendering for the API commands on a terminal: per-number results of ``set-webhook``
(the 207 multi-status table, or one line per number), the history, and ``provision``.

Every cell is a ``Text`` built from escaped plain strings, and every URL is masked: nothing
from a server reply can inject markup, move the cursor or show a password."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.table import Table
from rich.text import Text

from ipsms.intelepeer.client import ProvisionReply
from ipsms.intelepeer.webhooks import ChangeResult, HistoryEntry
from ipsms.redact import mask_url
from ipsms.text import iso_time, printable


def _url(url: str | None) -> str:
    return printable(mask_url(url)) if url else "-"


def _widest(values: Iterable[str]) -> int:
    return max((len(printable(v)) for v in values), default=1)


def success_line(result: ChangeResult) -> Text:
    """``✓ +13038675309 webhook set to https://example.com/sms (was https://old)``."""
    line = Text()
    line.append("✓ ", style="bold green")
    line.append(printable(result.number), style="bold")
    verb = "restored to" if result.action == "restore" else "webhook set to"
    line.append(f" {verb} ")
    line.append(_url(result.url), style="cyan")
    if result.previous and result.previous != result.url:
        line.append(f" (was {_url(result.previous)})", style="dim")
    return line


def results_table(results: Sequence[ChangeResult]) -> Table:
    """One row per number, in request order: the 207 multi-status answer."""
    table = Table(
        title="IntelePeer answered 207 Multi-Status",
        title_justify="left",
        show_edge=False,
        pad_edge=False,
    )
    table.add_column("number", no_wrap=True, min_width=_widest(r.number for r in results))
    table.add_column("result", no_wrap=True, min_width=7)
    table.add_column("status", justify="right", min_width=6)
    table.add_column("detail", ratio=1, overflow="fold")
    for r in results:
        result = Text("updated", style="green") if r.ok else Text("failed", style="bold red")
        detail = f"webhook {_url(r.url)}" if r.ok else printable(r.reason or "no reason given")
        table.add_row(
            Text(printable(r.number)),
            result,
            Text(str(r.status) if r.status else "?", style="green" if r.ok else "red"),
            Text(detail),
        )
    return table


def history_table(entries: Sequence[HistoryEntry], width: int = 200) -> Table:
    """The history, newest last. The history is kept per API base (a change made through the
    emulator is restored through it), so the API is named: in the title when every change
    went to one, else in a column. Under 120 columns the time drops its year and seconds so
    the URLs keep the room."""
    apis = {e.api or "" for e in entries}
    one_api = len(apis) <= 1
    title = "webhook changes made by ipsms"
    if one_api and apis != {""}:
        title += f" through {_url(next(iter(apis)))}"
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    narrow = width < 120
    table.add_column("#", justify="right", min_width=_widest(str(e.id) for e in entries))
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("number", no_wrap=True, min_width=_widest(e.number for e in entries))
    table.add_column("action", no_wrap=True)
    table.add_column("webhook", ratio=1, overflow="fold")
    table.add_column("before", ratio=1, overflow="fold")
    if not one_api:
        table.add_column("API", ratio=1, overflow="fold")
    for e in entries:
        clock = iso_time(e.time)[:19].replace("T", " ")
        cells = [
            Text(str(e.id)),
            Text(clock[5:16] if narrow else clock),
            Text(printable(e.number)),
            Text(e.action, style="magenta" if e.action == "restore" else ""),
            Text(_url(e.url), style="cyan"),
            Text(_url(e.previous), style="dim"),
        ]
        if not one_api:
            cells.append(Text(_url(e.api or None), style="dim"))
        table.add_row(*cells)
    return table


def provision_line(reply: ProvisionReply) -> Text:
    line = Text()
    if reply.in_progress:
        line.append("… ", style="bold yellow")
        line.append(printable(reply.number), style="bold")
        line.append(": provisioning is already in progress")
        if reply.reason:
            line.append(f" ({printable(reply.reason)})", style="dim")
        return line
    line.append("✓ ", style="bold green")
    line.append(printable(reply.number), style="bold")
    line.append(f": SMS provisioning {printable(reply.state)}")
    line.append(" (usually done within minutes)", style="dim")
    return line
