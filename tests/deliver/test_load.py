"""Load mode: N distinct messages with their own retries, bounded concurrency, streaming stats."""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time

import pytest

from ipsms.deliver.engine import Delivery
from ipsms.deliver.load import LatencyHistogram, LoadPlan, LoadStats, deliver_counted, run_load
from ipsms.deliver.outbound import MessageSpec, PayloadTemplate
from ipsms.deliver.retry import RetryPolicy
from ipsms.deliver.workers import TemplateMessages, default_workers, run_workers, split
from ipsms.errors import UsageError
from ipsms.ui.delivery import NdjsonOutput, print_summary, summary_lines
from tests.deliver.test_delivery import FakeSleep, ScriptedServer, Step, replies


def test_histogram_percentiles_are_within_one_percent() -> None:
    h = LatencyHistogram()
    samples = [i / 1000 for i in range(1, 1001)]  # 1 ms .. 1 s
    random.Random(7).shuffle(samples)
    for s in samples:
        h.record(s)
    for q, exact in ((50, 0.5), (95, 0.95), (99, 0.99)):
        value = h.percentile(q)
        assert value is not None
        assert exact <= value <= exact * 1.0101
    assert h.percentile(100) == h.max == 1.0
    assert h.mean == pytest.approx(0.5005)
    assert h.count == 1000


def test_histogram_memory_does_not_grow_with_samples() -> None:
    h = LatencyHistogram()
    size = len(h.buckets)
    for i in range(100_000):
        h.record((i % 997) * 1e-4)
    h.record(0.0)
    h.record(1e9)  # beyond the top bucket: clamped, max still exact
    assert len(h.buckets) == size < 3000
    assert h.max == 1e9
    assert LatencyHistogram().percentile(50) is None


def test_load_plan_checks() -> None:
    with pytest.raises(UsageError, match=r"^count must"):
        LoadPlan(0)
    with pytest.raises(UsageError, match=r"^concurrency must"):
        LoadPlan(5, 0)
    with pytest.raises(UsageError, match=r"^rate must"):
        LoadPlan(5, 1, 0)


async def test_load_run_sends_n_distinct_messages_with_sane_statistics() -> None:
    template = PayloadTemplate(MessageSpec())
    progress: list[int] = []
    async with ScriptedServer(lambda n, _: Step(200, delay=0.002 * (n % 5))) as server:
        url = server.url()
        stats = await run_load(
            LoadPlan(200, 16),
            lambda i: template.render().delivery(url),
            RetryPolicy(),
            on_progress=lambda s: progress.append(s.done),
        )
    refids = [json.loads(r.body)["refid"] for r in server.received]
    assert len(refids) == len(set(refids)) == 200
    assert 2 <= server.max_in_flight <= 16
    assert (stats.delivered, stats.gave_up, stats.attempts, stats.retries) == (200, 0, 200, 0)
    assert progress == list(range(1, 201))
    summary = stats.to_dict()
    lat = summary["latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert lat["p95"] >= 6  # a fifth of the replies took 8 ms or more
    assert summary["results"] == {"200": 200}
    assert summary["throughput_msg_s"] > 0
    assert summary["type"] == "summary"


async def test_each_message_gets_its_own_retry_sequence() -> None:
    seen: set[str] = set()

    def first_try_fails(_: int, body: bytes) -> Step:
        refid = json.loads(body)["refid"]
        if refid in seen:
            return Step(200)
        seen.add(refid)
        return Step(500)

    template = PayloadTemplate(MessageSpec())
    sleep = FakeSleep()
    async with ScriptedServer(first_try_fails) as server:
        url = server.url()
        stats = await run_load(
            LoadPlan(30, 4), lambda i: template.render().delivery(url), RetryPolicy(), sleep=sleep
        )
    assert len(server.received) == 60
    assert (stats.delivered, stats.attempts, stats.retries) == (30, 60, 30)
    assert stats.results == {"500": 30, "200": 30}
    assert sleep.calls == [1.0] * 30


async def test_fail_first_and_giving_up_in_load_mode() -> None:
    template = PayloadTemplate(MessageSpec())
    async with ScriptedServer(replies(then=200)) as server:
        url = server.url()
        stats = await run_load(
            LoadPlan(10, 3),
            lambda i: template.render().delivery(url),
            RetryPolicy(max_attempts=2, no_wait=True),
            fail_first=2,
        )
    assert len(server.received) == 20
    assert (stats.delivered, stats.gave_up, stats.forced_failures) == (0, 10, 20)
    assert stats.last_failure is not None and not stats.last_failure.delivered
    assert ("gave up", "10") in summary_lines(stats)


async def test_rate_spaces_new_messages() -> None:
    template = PayloadTemplate(MessageSpec())
    async with ScriptedServer(replies(then=200)) as server:
        url = server.url()
        start = time.perf_counter()
        stats = await run_load(
            LoadPlan(11, 11, rate=50), lambda i: template.render().delivery(url), RetryPolicy()
        )
        elapsed = time.perf_counter() - start
    assert stats.delivered == 11
    assert elapsed >= 0.19  # message 10 is due 10/50 s after the start


async def test_deliver_counted_prints_and_counts(capsys: pytest.CaptureFixture[str]) -> None:
    async with ScriptedServer(replies(503, then=200)) as server:
        deliveries = [Delivery(server.url(), b"{}", "application/json", f"R{i}") for i in range(3)]
        stats = await deliver_counted(
            deliveries, RetryPolicy(no_wait=True), NdjsonOutput(sys.stdout)
        )
    print_summary(stats, "json", sys.stdout)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["type"] for line in lines] == [
        "attempt",
        "attempt",
        "outcome",
        "attempt",
        "outcome",
        "attempt",
        "outcome",
        "summary",
    ]
    assert lines[-1]["messages"] == 3 and lines[-1]["attempts"] == 4


# -- several worker processes (ipsms.deliver.workers) ----------------------------------------------


def test_merged_histograms_equal_one_histogram_of_all_the_samples() -> None:
    rng = random.Random(12)
    samples = [rng.lognormvariate(-5, 1.5) for _ in range(5000)]
    whole = LatencyHistogram()
    parts = [LatencyHistogram() for _ in range(3)]
    for i, s in enumerate(samples):
        whole.record(s)
        parts[i % 3 if s < 0.01 else 0].record(s)  # uneven shares: the slow ones in one part
    merged = LatencyHistogram()
    for part in parts:
        merged.merge(part)
    assert merged.buckets == whole.buckets
    assert (merged.count, merged.max) == (whole.count, whole.max) == (5000, max(samples))
    assert merged.total == pytest.approx(whole.total)
    for q in (50, 95, 99, 99.9):
        assert merged.percentile(q) == whole.percentile(q)
    # what an average of the parts' percentiles would have said is not that
    mean_p99 = sum(p.percentile(99) or 0 for p in parts) / 3
    assert mean_p99 != whole.percentile(99)


def test_merged_load_stats_add_up_and_span_the_workers() -> None:
    a = LoadStats(
        10,
        delivered=4,
        gave_up=1,
        attempts=7,
        forced_failures=1,
        reconnects=1,
        results={"200": 4, "503": 3},
        started=10.0,
        finished=12.0,
    )
    b = LoadStats(10, delivered=5, attempts=5, results={"200": 5}, started=9.5, finished=11.0)
    total = LoadStats(10, workers=2)
    total.merge(a)
    total.merge(b)
    d = total.to_dict()
    assert (d["delivered"], d["gave_up"], d["attempts"], d["retries"]) == (9, 1, 12, 2)
    assert (d["forced_failures"], d["reconnects"], d["workers"]) == (1, 1, 2)
    assert d["results"] == {"200": 9, "503": 3}
    assert d["elapsed_s"] == 2.5


def test_shares_differ_by_at_most_one() -> None:
    assert split(10, 3) == [4, 3, 3]
    assert split(2, 2) == [1, 1]
    assert sum(split(20_001, 2)) == 20_001
    assert default_workers(999) == 1
    assert default_workers(1000) >= 1


async def test_two_workers_send_every_message_once_and_report_progress() -> None:
    template = PayloadTemplate(MessageSpec())
    done: list[int] = []
    async with ScriptedServer(lambda n, _: Step(200, delay=0.001 * (n % 3))) as server:
        stats = await asyncio.to_thread(
            run_workers,
            LoadPlan(300, 8),
            TemplateMessages(template, server.url()),
            RetryPolicy(),
            2,
            on_progress=lambda s: done.append(s.done),
        )
    refids = [json.loads(r.body)["refid"] for r in server.received]
    assert len(refids) == len(set(refids)) == 300
    assert server.max_in_flight <= 8
    assert (stats.delivered, stats.attempts, stats.workers) == (300, 300, 2)
    assert stats.latency.count == 300
    assert done == sorted(done) and done[-1] == 300  # the bar counts both workers' messages
