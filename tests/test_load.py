"""Load mode: N distinct messages with their own retries, bounded concurrency, streaming stats."""

from __future__ import annotations

import json
import random
import sys
import time

import pytest

from ipsms.delivery import Delivery
from ipsms.errors import UsageError
from ipsms.load import LatencyHistogram, LoadPlan, deliver_counted, run_load
from ipsms.outbound import MessageSpec, PayloadTemplate
from ipsms.retry import RetryPolicy
from ipsms.ui.delivery import NdjsonOutput, print_summary, summary_lines
from tests.test_delivery import FakeSleep, ScriptedServer, Step, replies


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
        stats = await run_load(LoadPlan(200, 16), lambda i: template.render().delivery(url),
                               RetryPolicy(), on_progress=lambda s: progress.append(s.done))
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
        stats = await run_load(LoadPlan(30, 4), lambda i: template.render().delivery(url),
                               RetryPolicy(), sleep=sleep)
    assert len(server.received) == 60
    assert (stats.delivered, stats.attempts, stats.retries) == (30, 60, 30)
    assert stats.results == {"500": 30, "200": 30}
    assert sleep.calls == [1.0] * 30


async def test_fail_first_and_giving_up_in_load_mode() -> None:
    template = PayloadTemplate(MessageSpec())
    async with ScriptedServer(replies(then=200)) as server:
        url = server.url()
        stats = await run_load(LoadPlan(10, 3), lambda i: template.render().delivery(url),
                               RetryPolicy(max_attempts=2, no_wait=True), fail_first=2)
    assert len(server.received) == 20
    assert (stats.delivered, stats.gave_up, stats.forced_failures) == (0, 10, 20)
    assert stats.last_failure is not None and not stats.last_failure.delivered
    assert ("gave up", "10") in summary_lines(stats)


async def test_rate_spaces_new_messages() -> None:
    template = PayloadTemplate(MessageSpec())
    async with ScriptedServer(replies(then=200)) as server:
        url = server.url()
        start = time.perf_counter()
        stats = await run_load(LoadPlan(11, 11, rate=50),
                               lambda i: template.render().delivery(url), RetryPolicy())
        elapsed = time.perf_counter() - start
    assert stats.delivered == 11
    assert elapsed >= 0.19  # message 10 is due 10/50 s after the start


async def test_deliver_counted_prints_and_counts(capsys: pytest.CaptureFixture[str]) -> None:
    async with ScriptedServer(replies(503, then=200)) as server:
        deliveries = [Delivery(server.url(), b"{}", "application/json", f"R{i}")
                      for i in range(3)]
        stats = await deliver_counted(deliveries, RetryPolicy(no_wait=True),
                                      NdjsonOutput(sys.stdout))
    print_summary(stats, "json", sys.stdout)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["type"] for line in lines] == ["attempt", "attempt", "outcome", "attempt",
                                                "outcome", "attempt", "outcome", "summary"]
    assert lines[-1]["messages"] == 3 and lines[-1]["attempts"] == 4
