"""The report card of ``ipsms check`` on a terminal: a table (check, result, IntelePeer's rule,
what the app did), then a reproduction command for each failure and warning, then the tally.

Every cell is a ``Text`` built through ``printable``: what the app answered (its first bytes)
can hold markup or escape sequences, and they must reach the terminal as visible text.
"""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ipsms.check.runner import Card, Verdict
from ipsms.text import printable

_STYLE = {
    Verdict.PASSED: "green",
    Verdict.FAILED: "bold red",
    Verdict.WARNING: "yellow",
    Verdict.SKIPPED: "dim",
}
_LABEL = {
    Verdict.PASSED: "pass",
    Verdict.FAILED: "FAIL",
    Verdict.WARNING: "warn",
    Verdict.SKIPPED: "skip",
}


def print_card(card: Card, console: Console) -> None:
    table = Table(
        box=box.SIMPLE_HEAD,
        title=f"ipsms check {printable(card.url)}",
        title_justify="left",
        expand=False,
    )
    table.add_column("check", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("IntelePeer's rule", ratio=2)
    table.add_column("what the app did", ratio=3)
    for result in card.results:
        did = result.reason if result.verdict is Verdict.SKIPPED and result.reason else result.did
        table.add_row(
            Text(result.id),
            Text(_LABEL[result.verdict], style=_STYLE[result.verdict]),
            Text(printable(result.check.rule)),
            Text(printable(did or "")),
        )
    console.print(table)
    shown = [
        r for r in card.results if r.reproduce and r.verdict in (Verdict.FAILED, Verdict.WARNING)
    ]
    if shown:
        console.print(Text("Reproduce:", style="bold"))
        for result in shown:
            line = Text(f"  {result.id}: ", style=_STYLE[result.verdict])
            line.append(printable(result.reproduce or ""))
            console.print(line, soft_wrap=True)
    console.print(Text(summary_line(card)))


def summary_line(card: Card) -> str:
    counts = card.counts()
    parts = [
        f"{counts[v.value]} {word}"
        for v, word in (
            (Verdict.PASSED, "passed"),
            (Verdict.FAILED, "failed"),
            (Verdict.WARNING, "warning" if counts["warning"] == 1 else "warnings"),
            (Verdict.SKIPPED, "skipped"),
        )
        if counts[v.value]
    ]
    n = len(card.results)
    return (
        f"{n} check{'' if n == 1 else 's'}: {', '.join(parts) or 'none run'} in {card.elapsed:.2f}s"
    )
