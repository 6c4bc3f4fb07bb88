"""Load mode: N distinct messages, C at a time, optionally at R new messages per second.

Memory does not grow with N: C workers pull the next message index from a counter and render
it only when they are about to send it, and results go into streaming statistics (counters and
a fixed log-bucket latency histogram), never into a list. Every message goes through the
delivery engine's ``Sender``, so its rules hold here too: a request resent after a stale
kept-alive connection is one attempt, not a failure (``LoadStats.reconnects`` counts them).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ipsms import defaults
from ipsms.deliver.engine import (
    AttemptEvent,
    Clock,
    Delivery,
    DeliveryObserver,
    Outcome,
    Sender,
    Sleep,
    deliver_each,
    open_connections,
)
from ipsms.deliver.retry import RetryPolicy
from ipsms.errors import UsageError, setting

DEFAULT_CONCURRENCY = defaults.CONCURRENCY


@dataclass(frozen=True)
class LoadPlan:
    count: int
    concurrency: int = DEFAULT_CONCURRENCY
    rate: float | None = None  # new messages per second (first attempts); None: as fast as C

    def __post_init__(self) -> None:
        if self.count < 1:
            raise UsageError(f"{setting('count')} must be at least 1, not {self.count}")
        if self.concurrency < 1:
            raise UsageError(f"{setting('concurrency')} must be at least 1, not {self.concurrency}")
        if self.rate is not None and not (self.rate > 0 and math.isfinite(self.rate)):
            raise UsageError(
                f"{setting('rate')} must be a positive number of messages per second, "
                f"not {self.rate:g}"
            )


class LatencyHistogram:
    """Latencies in fixed logarithmic buckets: 1 µs to 10 000 s, each bucket 1% wide.

    About 2 300 integers whatever the number of samples; a percentile is the upper edge of its
    bucket (at most 1% above the true value), never above the exact maximum.
    """

    LOW = 1e-6
    HIGH = 1e4
    GROWTH = 1.01

    def __init__(self) -> None:
        self._log_growth = math.log(self.GROWTH)
        self._top = math.ceil(math.log(self.HIGH / self.LOW) / self._log_growth) + 1
        self.buckets = [0] * (self._top + 1)
        self.count = 0
        self.total = 0.0
        self.max = 0.0

    def record(self, seconds: float) -> None:
        if seconds <= self.LOW:
            index = 0
        else:
            index = min(int(math.log(seconds / self.LOW) / self._log_growth) + 1, self._top)
        self.buckets[index] += 1
        self.count += 1
        self.total += seconds
        if seconds > self.max:
            self.max = seconds

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (0 < q <= 100) in seconds; None without samples."""
        if self.count == 0:
            return None
        rank = max(1, math.ceil(q / 100 * self.count))
        seen = 0
        for index, n in enumerate(self.buckets):
            seen += n
            if seen >= rank:
                return min(self.LOW * self.GROWTH**index, self.max)
        return self.max

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def merge(self, other: LatencyHistogram) -> None:
        """Add ``other``'s samples (a worker process's): bucket counts add up exactly, so the
        merged percentiles are those of all the samples, never an average of percentiles."""
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]
        self.count += other.count
        self.total += other.total
        self.max = max(self.max, other.max)


@dataclass
class LoadStats:
    """Running totals of a load run; ``observe_*`` are the engine's callbacks."""

    messages: int  # planned
    delivered: int = 0
    gave_up: int = 0
    attempts: int = 0
    forced_failures: int = 0
    reconnects: int = 0  # attempts resent on a new connection after a stale kept-alive one
    results: dict[str, int] = field(default_factory=dict)  # '200', '503', 'timeout' -> count
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    started: float | None = None
    finished: float | None = None
    last_failure: Outcome | None = None  # the latest message that was not delivered
    workers: int = 1  # processes that sent the messages (``ipsms.deliver.workers``)

    @property
    def done(self) -> int:
        return self.delivered + self.gave_up

    @property
    def retries(self) -> int:
        return self.attempts - self.done

    def observe_attempt(self, event: AttemptEvent) -> None:
        self.attempts += 1
        self.latency.record(event.latency)
        key = str(event.status) if event.status is not None else (event.error or "?")
        self.results[key] = self.results.get(key, 0) + 1
        if event.forced_failure:
            self.forced_failures += 1
        if event.reconnected:
            self.reconnects += 1

    def observe_outcome(self, outcome: Outcome) -> None:
        if outcome.delivered:
            self.delivered += 1
        else:
            self.gave_up += 1
            self.last_failure = outcome

    def merge(self, other: LoadStats) -> None:
        """Add a worker's totals (same clock: ``time.perf_counter`` is system-wide on Linux);
        the run lasts from the first worker's start to the last one's end."""
        self.delivered += other.delivered
        self.gave_up += other.gave_up
        self.attempts += other.attempts
        self.forced_failures += other.forced_failures
        self.reconnects += other.reconnects
        for key, n in other.results.items():
            self.results[key] = self.results.get(key, 0) + n
        self.latency.merge(other.latency)
        if other.started is not None:
            self.started = (
                other.started if self.started is None else min(self.started, other.started)
            )
        if other.finished is not None:
            self.finished = (
                other.finished if self.finished is None else max(self.finished, other.finished)
            )
        if other.last_failure is not None:
            self.last_failure = other.last_failure

    def elapsed(self, now: float | None = None) -> float:
        if self.started is None:
            return 0.0
        end = self.finished if self.finished is not None else (now or time.perf_counter())
        return max(end - self.started, 0.0)

    def to_dict(self) -> dict[str, Any]:
        elapsed = self.elapsed()

        def ms(value: float | None) -> float | None:
            return None if value is None else round(value * 1000, 3)

        def per_second(n: int) -> float | None:
            return round(n / elapsed, 1) if elapsed > 0 else None

        return {
            "type": "summary",
            "messages": self.messages,
            "delivered": self.delivered,
            "gave_up": self.gave_up,
            "attempts": self.attempts,
            "retries": self.retries,
            "forced_failures": self.forced_failures,
            "reconnects": self.reconnects,
            "workers": self.workers,
            "results": dict(sorted(self.results.items())),
            "elapsed_s": round(elapsed, 3),
            "throughput_msg_s": per_second(self.done),
            "attempts_per_s": per_second(self.attempts),
            "latency_ms": {
                "p50": ms(self.latency.percentile(50)),
                "p95": ms(self.latency.percentile(95)),
                "p99": ms(self.latency.percentile(99)),
                "max": ms(self.latency.max if self.latency.count else None),
                "mean": ms(self.latency.mean),
            },
        }


async def run_load(
    plan: LoadPlan,
    make: Callable[[int], Delivery],
    policy: RetryPolicy,
    *,
    fail_first: int = 0,
    on_progress: Callable[[LoadStats], None] | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = time.perf_counter,
    share: tuple[int, int] = (0, 1),
    started: float | None = None,
    stats: LoadStats | None = None,
) -> LoadStats:
    """Deliver ``plan.count`` messages (``make(i)`` builds the i-th when it is due).

    A worker process sends its ``share`` ``(first, step)`` of a bigger run: its j-th message is
    the run's message ``first + j * step``, due (with ``plan.rate``, the whole run's rate)
    ``index / rate`` after ``started``, the run's common start. ``stats``, when given, is
    filled in place, so what was done is still known if the run is cancelled.
    """
    stats = stats if stats is not None else LoadStats(plan.count)
    first, step = share
    workers = min(plan.concurrency, plan.count)
    next_index = 0
    async with open_connections(policy, limit=workers) as connections:
        sender = Sender(connections, policy, fail_first=fail_first, sleep=sleep, clock=clock)
        observe_attempt, observe_outcome = stats.observe_attempt, stats.observe_outcome

        async def worker() -> None:
            nonlocal next_index
            while next_index < plan.count:
                index = first + next_index * step
                next_index += 1
                if plan.rate is not None:
                    # Message i starts no earlier than i/R seconds after the run started.
                    assert stats.started is not None
                    due = stats.started + index / plan.rate - clock()
                    if due > 0:
                        await sleep(due)
                outcome = await sender.deliver(make(index), observe_attempt)
                observe_outcome(outcome)
                if on_outcome is not None:
                    on_outcome(outcome)
                if on_progress is not None:
                    on_progress(stats)

        stats.started = clock() if started is None else started
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(workers):
                    group.create_task(worker())
        finally:
            stats.finished = clock()
    return stats


class CountingObserver:
    """Passes events on to ``inner`` and counts them into ``stats`` (replay --all summary)."""

    def __init__(self, inner: DeliveryObserver, stats: LoadStats) -> None:
        self.inner = inner
        self.stats = stats

    def start(self, delivery: Delivery) -> None:
        self.stats.messages += 1
        self.inner.start(delivery)

    def attempt(self, event: AttemptEvent) -> None:
        self.stats.observe_attempt(event)
        self.inner.attempt(event)

    def outcome(self, outcome: Outcome) -> None:
        self.stats.observe_outcome(outcome)
        self.inner.outcome(outcome)


async def deliver_counted(
    deliveries: Iterable[Delivery],
    policy: RetryPolicy,
    observer: DeliveryObserver,
    *,
    fail_first: int = 0,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = time.perf_counter,
) -> LoadStats:
    """``deliver_each`` (one message after the other) with load-mode statistics."""
    stats = LoadStats(0)
    stats.started = clock()
    try:
        await deliver_each(
            deliveries,
            policy,
            CountingObserver(observer, stats),
            fail_first=fail_first,
            sleep=sleep,
        )
    finally:
        stats.finished = clock()
    return stats
