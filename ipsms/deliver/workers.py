"""Load mode in several processes: each worker runs its own event loop and client session.

One Python process spends a load run's CPU in its HTTP client, the event loop and its own
bookkeeping, so on a machine with more cores a single event loop cannot keep up with a tool
like ``hey``. Here the
run is split: worker k sends the run's messages k, k+N, k+2N... (its share of ``--count``), with
its share of ``--concurrency`` (the flag stays the total in flight), and ``--rate`` stays the
whole run's: message i is due i/R seconds after a start time the parent hands every worker once
all of them are ready, so the workers' schedules interleave into one.

Workers report their counts to the parent every ``PROGRESS_INTERVAL`` (the progress bar shows
the total) and send their ``LoadStats`` back at the end; the parent merges them exactly
(histogram bucket counts add up). Ctrl-C: workers ignore SIGINT (the terminal sends it to all of
them), the parent tells them to stop, collects what they did and raises ``LoadInterrupted``
with the merged partial statistics.

Processes come from the 'forkserver' context (never a plain fork: the parent may run threads),
or 'spawn' where there is no forkserver.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from ipsms.deliver.engine import Delivery
from ipsms.deliver.load import LoadPlan, LoadStats, run_load
from ipsms.deliver.outbound import PayloadTemplate, new_refid
from ipsms.deliver.retry import RetryPolicy
from ipsms.loops import run_with_loop

PROGRESS_INTERVAL = 0.1  # seconds between a worker's progress reports
SMALL_RUN = 1_000  # below this many messages one process is the default: it starts faster
READY_TIMEOUT = 60.0  # seconds for the workers to start (a loaded machine can be slow)
STOP_TIMEOUT = 10.0  # seconds for stopped workers to send what they did


class LoadInterrupted(KeyboardInterrupt):
    """Ctrl-C during a multi-process run; ``stats`` holds what the workers had done."""

    def __init__(self, stats: LoadStats) -> None:
        super().__init__()
        self.stats = stats


@dataclass(frozen=True)
class TemplateMessages:
    """Builds the i-th message of a run from a template; picklable, so workers can use it."""

    template: PayloadTemplate
    url: str
    fresh_refids: bool = True  # False: the template's own refid (a run of one message)

    def __call__(self, index: int) -> Delivery:
        return self.template.render(new_refid() if self.fresh_refids else None).delivery(self.url)


def default_workers(count: int) -> int:
    """The number of cores this process may use; one for a small run."""
    if count < SMALL_RUN:
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def split(total: int, parts: int) -> list[int]:
    """``total`` in ``parts`` shares that differ by at most one, the bigger ones first."""
    return [total // parts + (k < total % parts) for k in range(parts)]


@dataclass(frozen=True)
class _Job:
    number: int
    workers: int
    plan: LoadPlan  # this worker's share; ``rate`` is the whole run's
    make: Callable[[int], Delivery]
    policy: RetryPolicy
    fail_first: int


def _context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if ctx.get_start_method() == "forkserver":
        # Children fork from a server that has imported the engine (aiohttp included) once.
        ctx.set_forkserver_preload(["ipsms.deliver.workers"])
    return ctx


def run_workers(
    plan: LoadPlan,
    make: Callable[[int], Delivery],
    policy: RetryPolicy,
    workers: int,
    *,
    fail_first: int = 0,
    on_progress: Callable[[LoadStats], None] | None = None,
) -> LoadStats:
    """Deliver ``plan`` from ``workers`` processes (at most one per message in flight) and
    return the merged statistics; ``make`` must be picklable (``TemplateMessages``)."""
    n = max(1, min(workers, plan.count, plan.concurrency))
    ctx = _context()
    reports = ctx.Queue()
    counts, concurrencies = split(plan.count, n), split(plan.concurrency, n)
    procs, controls = [], []
    total = LoadStats(plan.count, workers=n)
    finals: dict[int, LoadStats] = {}
    progress = [(0, 0, 0)] * n  # delivered, gave up, attempts
    held: Any = None  # SIGINT's handler while the workers stop after a Ctrl-C
    try:
        # A Ctrl-C while a worker is being started would leave it half made (forked, but not
        # known to be): it waits until they all are.
        caught: list[int] = []
        previous = _on_sigint(lambda signum, frame: caught.append(signum))  # noted only
        try:
            for k in range(n):
                job = _Job(
                    k, n, LoadPlan(counts[k], concurrencies[k], plan.rate), make, policy, fail_first
                )
                mine, theirs = ctx.Pipe()
                proc = ctx.Process(
                    target=_worker, args=(job, reports, theirs), daemon=True, name=f"ipsms-load-{k}"
                )
                proc.start()
                theirs.close()
                procs.append(proc)
                controls.append(mine)
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        if caught:
            raise KeyboardInterrupt
        _wait_ready(reports, procs)
        start = time.perf_counter()  # system-wide on Linux: the workers read the same clock
        for control in controls:
            control.send(start)
        while len(finals) < n:
            kind, k, body = _next(reports, procs, finals)
            if kind == "progress":
                progress[k] = body
                if on_progress is not None:
                    on_progress(_progress_stats(total, progress))
            elif kind == "done":
                finals[k] = body
                progress[k] = (body.delivered, body.gave_up, body.attempts)
            elif kind == "error":
                raise RuntimeError(f"load worker {k} failed: {body}")
    except KeyboardInterrupt:
        # One Ctrl-C stops them: more (a key held down) must not cut the stop short, or a
        # worker still starting would find the queue's semaphore gone and print a traceback.
        held = _on_sigint(signal.SIG_IGN)
        _stop(controls)
        deadline = time.monotonic() + STOP_TIMEOUT
        while len(finals) < len(procs) and time.monotonic() < deadline:
            try:
                kind, k, body = reports.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if kind == "done":
                finals[k] = body
        for stats in finals.values():
            total.merge(stats)
        raise LoadInterrupted(total) from None
    finally:
        _stop(controls)
        for proc in procs:
            proc.join(timeout=STOP_TIMEOUT)
            if proc.is_alive():
                proc.kill()
                proc.join()
        reports.close()
        if held is not None:
            signal.signal(signal.SIGINT, held)
    for stats in finals.values():
        total.merge(stats)
    if on_progress is not None:
        on_progress(total)
    return total


def _on_sigint(handler: Any) -> Any:
    """Make ``handler`` SIGINT's (main thread only); returns the handler to put back, or None."""
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, handler)
    return signal.default_int_handler if previous is None else previous


def _progress_stats(total: LoadStats, progress: list[tuple[int, int, int]]) -> LoadStats:
    stats = LoadStats(total.messages, workers=total.workers)
    for delivered, gave_up, attempts in progress:
        stats.delivered += delivered
        stats.gave_up += gave_up
        stats.attempts += attempts
    return stats


def _wait_ready(reports: Any, procs: list[Any]) -> None:
    ready: set[int] = set()
    deadline = time.monotonic() + READY_TIMEOUT
    while len(ready) < len(procs):
        if time.monotonic() > deadline:
            raise RuntimeError(f"load workers did not start within {READY_TIMEOUT:g} s")
        kind, k, body = _next(reports, procs, {})
        if kind == "ready":
            ready.add(k)
        elif kind == "error":
            raise RuntimeError(f"load worker {k} failed: {body}")


def _next(reports: Any, procs: list[Any], finals: dict[int, LoadStats]) -> tuple[str, int, Any]:
    """The next report; a worker that died without reporting is an error, not a hang."""
    while True:
        try:
            report: tuple[str, int, Any] = reports.get(timeout=0.5)
            return report
        except queue.Empty:
            dead = [k for k, proc in enumerate(procs) if k not in finals and not proc.is_alive()]
            if not dead:
                continue
            try:  # its last report may have been written just before it exited
                report = reports.get(timeout=1.0)
                return report
            except queue.Empty:
                raise RuntimeError(
                    f"load worker {dead[0]} exited ({procs[dead[0]].exitcode}) without its results"
                ) from None


def _stop(controls: list[Connection]) -> None:
    for control in controls:
        with contextlib.suppress(OSError):  # that worker has finished and closed its end
            control.send(None)


# -- in the worker process ----------------------------------------------------------------------


def _worker(job: _Job, reports: Any, control: Connection) -> None:
    # The terminal sends Ctrl-C to every process of the group: the parent decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        run_with_loop(_work(job, reports, control))
    except BaseException as exc:  # reported, never a traceback on the user's terminal
        reports.put(("error", job.number, f"{type(exc).__name__}: {exc}"))
    finally:
        control.close()


async def _work(job: _Job, reports: Any, control: Connection) -> None:
    stats = LoadStats(job.plan.count)
    reports.put(("ready", job.number, None))
    start = control.recv()
    if start is None:  # stopped before it started
        stats.started = stats.finished = time.perf_counter()
        reports.put(("done", job.number, stats))
        return
    last = 0.0

    def progress(s: LoadStats) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= PROGRESS_INTERVAL:
            last = now
            reports.put(("progress", job.number, (s.delivered, s.gave_up, s.attempts)))

    run = asyncio.ensure_future(
        run_load(
            job.plan,
            job.make,
            job.policy,
            fail_first=job.fail_first,
            on_progress=progress,
            share=(job.number, job.workers),
            started=start,
            stats=stats,
        )
    )
    loop = asyncio.get_running_loop()
    loop.add_reader(control.fileno(), run.cancel)  # the parent's stop (or its exit)
    try:
        await run
    except asyncio.CancelledError:
        if stats.finished is None:
            stats.finished = time.perf_counter()
    finally:
        loop.remove_reader(control.fileno())
    reports.put(("done", job.number, stats))
