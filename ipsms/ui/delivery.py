"""Showing deliveries (simulate, replay): a rich timeline on a terminal, NDJSON or plain lines
otherwise, the load-mode progress bar (stderr) and summary.

Every observer gets the same events from ``ipsms.deliver.engine``; message-derived text goes through
``printable`` and rich ``Text`` (never markup), and signatures are masked.
"""

from __future__ import annotations

import time
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from ipsms.deliver.engine import AttemptEvent, Delivery, DeliveryObserver, Outcome
from ipsms.deliver.load import LoadStats
from ipsms.deliver.retry import RetryPolicy
from ipsms.redact import mask_secret, mask_url
from ipsms.text import dumps, iso_time, one_line, printable
from ipsms.ui.console import make_console

RESPONSE_WIDTH = 60
RECONNECTED = "resent on a new connection: the kept-alive one was already closed"
PROGRESS_INTERVAL = 0.1  # seconds between progress-bar updates


def _seconds(value: float) -> str:
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def _wait(value: float | None) -> str:
    if value is None:
        return ""
    return "retry now" if value == 0 else f"retry in {value:g} s"


def delivery_text(delivery: Delivery) -> str:
    sig = f"signature {mask_secret(delivery.signature)}" if delivery.signature else "unsigned"
    return (
        f"POST {mask_url(delivery.url)} refid {printable(delivery.refid or '-')} "
        f"{delivery.content_type or 'no content type'} {len(delivery.body)} B {sig}"
        + ("" if delivery.source == "simulate" else f" ({delivery.source})")
    )


def attempt_text(event: AttemptEvent) -> str:
    """``'#2 12:00:01.123 503 3.1 ms failed retry in 2 s body: "..."'`` (no terminal codes)."""
    verdict = (
        "delivered"
        if event.succeeded
        else "failed (--fail-first)"
        if event.forced_failure
        else "failed"
    )
    parts = [
        f"#{event.number}",
        iso_time(event.started_at)[11:23],
        event.result,
        _seconds(event.latency),
        verdict,
    ]
    if event.wait is not None:
        parts.append(_wait(event.wait))
    if event.reconnected:
        parts.append(f"({RECONNECTED})")
    if event.error_detail:
        parts.append(f"({printable(event.error_detail)})")
    if event.response:
        parts.append(f"body: {one_line(event.response, RESPONSE_WIDTH)}")
    return " ".join(parts)


def outcome_text(outcome: Outcome) -> str:
    retries = outcome.attempts - 1
    return (
        f"{outcome.describe()} in {_seconds(outcome.elapsed)} "
        f"({retries} retr{'y' if retries == 1 else 'ies'}) refid "
        f"{printable(outcome.delivery.refid or '-')}"
    )


class NdjsonOutput:
    """One object per attempt and one per outcome, on stdout, flushed at once."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def start(self, delivery: Delivery) -> None:
        pass

    def attempt(self, event: AttemptEvent) -> None:
        self.stream.write(dumps(event.to_dict()) + "\n")
        self.stream.flush()

    def outcome(self, outcome: Outcome) -> None:
        self.stream.write(dumps(outcome.to_dict()) + "\n")
        self.stream.flush()


class PlainOutput:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def start(self, delivery: Delivery) -> None:
        self._line(delivery_text(delivery))

    def attempt(self, event: AttemptEvent) -> None:
        self._line("  " + attempt_text(event))

    def outcome(self, outcome: Outcome) -> None:
        self._line("  " + outcome_text(outcome))


def _status_style(event: AttemptEvent) -> str:
    if event.succeeded:
        return "bold green"
    if event.forced_failure:
        return "yellow"
    return "red"


class Timeline:
    """The terminal view: a header per message, one line per attempt as it happens (the wait
    before the next attempt is shown before it starts), then the outcome."""

    def __init__(self, console: Console, policy: RetryPolicy | None = None) -> None:
        self.console = console
        self.policy = policy

    def start(self, delivery: Delivery) -> None:
        head = Text()
        head.append("POST ", style="bold")
        head.append(mask_url(delivery.url), style="cyan")
        head.append(f"  refid {printable(delivery.refid or '-')}", style="bold")
        head.append(f"  {delivery.content_type or 'no content type'}, {len(delivery.body)} B")
        signature = (
            f"  signature {mask_secret(delivery.signature)}" if delivery.signature else "  unsigned"
        )
        head.append(signature, style="dim")
        if delivery.source != "simulate":
            head.append(f"  ({delivery.source})", style="dim")
        self.console.print(head, overflow="fold")
        if self.policy is not None:
            self.console.print(Text(f"  {self.policy.describe()}", style="dim"))

    def attempt(self, event: AttemptEvent) -> None:
        line = Text("  ")
        line.append(f"#{event.number:<2} ", style="bold magenta" if event.number > 1 else "bold")
        line.append(iso_time(event.started_at)[11:23] + "  ", style="dim")
        line.append(
            f"{event.result:>13}" if event.error else f"{event.result:>5}",
            style=_status_style(event),
        )
        line.append(f" {_seconds(event.latency):>9}  ")
        if event.succeeded:
            line.append("delivered", style="green")
        elif event.forced_failure:
            line.append("failed (--fail-first)", style="yellow")
        else:
            line.append("failed", style="red")
        if event.wait is not None:
            line.append(f"  → {_wait(event.wait)}", style="cyan")
        if event.reconnected:
            line.append(f"  ({RECONNECTED})", style="dim")
        if event.error_detail:
            line.append(f"  {one_line(event.error_detail, RESPONSE_WIDTH)}", style="dim")
        if event.response:
            line.append(f"  {one_line(event.response, RESPONSE_WIDTH)}", style="dim")
        self.console.print(line, no_wrap=True, overflow="ellipsis")

    def outcome(self, outcome: Outcome) -> None:
        mark, style = ("✓", "bold green") if outcome.delivered else ("✗", "bold red")
        retries = outcome.attempts - 1
        line = Text(f"  {mark} {outcome.describe()}", style=style)
        line.append(
            f"  in {_seconds(outcome.elapsed)}, {retries} retr{'y' if retries == 1 else 'ies'}",
            style="dim",
        )
        self.console.print(line)


def make_output(fmt: str, stream: TextIO, policy: RetryPolicy | None = None) -> DeliveryObserver:
    """``fmt`` is ``table`` (rich, for a terminal), ``json`` (NDJSON) or ``plain``."""
    if fmt == "json":
        return NdjsonOutput(stream)
    if fmt == "plain":
        return PlainOutput(stream)
    return Timeline(make_console(stream, terminal=stream.isatty()), policy)


class LoadProgress:
    """The load-mode progress bar on stderr, redrawn at most every ``PROGRESS_INTERVAL``."""

    def __init__(self, total: int, console: Console | None = None) -> None:
        self.progress = Progress(
            TextColumn("[bold]simulate"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            transient=False,
        )
        self.task = self.progress.add_task("simulate", total=total, detail="")
        self._last = 0.0

    def __enter__(self) -> LoadProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, stats: LoadStats) -> None:
        now = time.monotonic()
        if now - self._last < PROGRESS_INTERVAL and stats.done < stats.messages:
            return
        self._last = now
        detail = f"✓ {stats.delivered} ✗ {stats.gave_up} retries {stats.retries}"
        self.progress.update(self.task, completed=stats.done, detail=detail)


def summary_lines(stats: LoadStats) -> list[tuple[str, str]]:
    d = stats.to_dict()
    lat = d["latency_ms"]

    def ms(key: str) -> str:
        return "-" if lat[key] is None else f"{lat[key]:.2f} ms"

    rate = "-" if d["throughput_msg_s"] is None else f"{d['throughput_msg_s']:,.1f} msg/s"
    reconnects = (
        f", {d['reconnects']:,} resent on a new connection after a stale kept-alive one"
        if d["reconnects"]
        else ""
    )
    return [
        ("messages", f"{d['messages']:,}"),
        ("delivered", f"{d['delivered']:,}"),
        ("gave up", f"{d['gave_up']:,}"),
        (
            "attempts",
            f"{d['attempts']:,} ({d['retries']:,} retries, "
            f"{d['forced_failures']:,} counted failed by --fail-first{reconnects})",
        ),
        ("results", ", ".join(f"{k}: {v:,}" for k, v in d["results"].items()) or "-"),
        ("elapsed", f"{d['elapsed_s']:.2f} s"),
        ("throughput", rate),
        ("latency", f"p50 {ms('p50')}  p95 {ms('p95')}  p99 {ms('p99')}  max {ms('max')}"),
    ]


def print_summary(stats: LoadStats, fmt: str, stream: TextIO, title: str = "load summary") -> None:
    if fmt == "json":
        stream.write(dumps(stats.to_dict()) + "\n")
        stream.flush()
        return
    rows = summary_lines(stats)
    if fmt == "plain":
        stream.write("".join(f"{name}: {value}\n" for name, value in rows))
        stream.flush()
        return
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for name, value in rows:
        table.add_row(name, value)
    make_console(stream, terminal=stream.isatty()).print(table)
