"""Benchmark: ``ipsms simulate`` load mode against ``hey`` and a bare aiohttp client loop
(loopback only).

    .venv/bin/python bench/bench_simulate.py              # 20,000 x3, and the 200,000 RSS run
    .venv/bin/python bench/bench_simulate.py --quick      # 2,000 x1, 20,000 RSS run

One bare aiohttp server answering 200 runs in its own process. In the same run, for each of
``--repeat`` rounds (the order rotates), these each send N messages to it: ``hey -c C -n N``
(if ``hey`` is on the PATH), a bare aiohttp client (its own process, one session, C workers
posting the same JSON payload), ``ipsms simulate URL --count N --concurrency C --no-wait
--format json --workers 1`` and the same with the default ``--workers`` (one per core).
Throughput is messages per second measured inside each process (first request to last answer,
interpreter start-up excluded; hey's own Requests/sec), medians over the rounds; the ratios to
hey are of those medians. Wall-clock times are shown too. Peak RSS and CPU time of each child
come from ``os.wait4`` (with several workers, that is the parent's: the workers are children of
multiprocessing's fork server). Then ``simulate --workers 1`` (what each worker runs) sends
``--big`` messages to show that its peak RSS does not grow with N. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAYLOAD = json.dumps(
    {
        "refid": "ABCDEF1234567890ABCDEF1234567890",
        "from": "+13035550100",
        "to": "+13038675309",
        "message": "Hello World!",
    }
).encode()
CHILD_TIMEOUT = 600  # seconds: a bound on every child process


# -- the children ---------------------------------------------------------------------------


def serve() -> None:
    """A bare aiohttp server answering 200 to every POST; prints its port, runs until SIGTERM."""
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port = runner.addresses[0][1]
        print(port, flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())


def bare_client(url: str, count: int, concurrency: int) -> None:
    """The baseline: one session, C workers, the same bytes every time, read every answer."""
    import aiohttp

    async def main() -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        next_index = 0
        ok = 0
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:

            async def worker() -> None:
                nonlocal next_index, ok
                while next_index < count:
                    next_index += 1
                    async with s.post(url, data=PAYLOAD, headers=headers) as resp:
                        await resp.read()
                        ok += resp.status == 200

            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - start
        return {
            "messages": count,
            "delivered": ok,
            "elapsed_s": elapsed,
            "throughput_msg_s": count / elapsed,
        }

    print(json.dumps(asyncio.run(main())), flush=True)


# -- the driver -----------------------------------------------------------------------------


@dataclass
class Run:
    throughput: float  # messages/s measured inside the process
    wall: float  # seconds, process start to exit
    rss_mib: float  # peak resident set size
    cpu: float  # user + system seconds
    delivered: int


def run_child(args: list[str], parse: Any = None) -> Run:
    """Run a child to completion (killed after CHILD_TIMEOUT) and reap it with ``os.wait4``, so
    its own peak RSS and CPU time are known."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as errfile:
        proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=errfile,
            cwd=ROOT,
            env={**os.environ, "IPSMS_HOME": tempfile.gettempdir()},
        )
        killer = threading.Timer(CHILD_TIMEOUT, proc.kill)
        killer.start()
        try:
            assert proc.stdout is not None
            out = proc.stdout.read()
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        errfile.seek(0)
        err = errfile.read().decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args[1:4])} failed ({proc.returncode}): {err[-2000:]}")
    if parse is not None:
        throughput, delivered = parse(out.decode())
        return Run(
            throughput, wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, delivered
        )
    summary = json.loads(out.decode().strip().splitlines()[-1])
    return Run(
        summary["throughput_msg_s"],
        wall,
        usage.ru_maxrss / 1024,
        usage.ru_utime + usage.ru_stime,
        summary["delivered"],
    )


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux /proc), or 0 elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def simulate_args(url: str, count: int, concurrency: int, workers: int | None = None) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ipsms",
        "simulate",
        url,
        "--count",
        str(count),
        "--concurrency",
        str(concurrency),
        "--no-wait",
        "--format",
        "json",
        *(["--workers", str(workers)] if workers is not None else []),
    ]


def one_worker_args(url: str, count: int, concurrency: int) -> list[str]:
    return simulate_args(url, count, concurrency, 1)


def hey_args(url: str, count: int, concurrency: int) -> list[str]:
    # hey refuses -n below -c (a --smoke run sends 50 messages at concurrency 64)
    return [
        "hey",
        "-c",
        str(min(concurrency, count)),
        "-n",
        str(count),
        "-m",
        "POST",
        "-T",
        "application/json",
        "-d",
        PAYLOAD.decode(),
        url,
    ]


def parse_hey(out: str) -> tuple[float, int]:
    """hey's Requests/sec and its count of 200 answers."""
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    ok = re.search(r"\[200\]\s+(\d+) responses", out)
    if rate is None:
        raise SystemExit(f"unexpected hey output: {out[-2000:]}")
    return float(rate.group(1)), int(ok.group(1)) if ok else 0


def bare_args(url: str, count: int, concurrency: int) -> list[str]:
    return [
        sys.executable,
        os.path.abspath(__file__),
        "--bare-client",
        url,
        str(count),
        str(concurrency),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--big", type=int, default=200_000, help="messages for the memory run (0 to skip)"
    )
    parser.add_argument("--quick", action="store_true", help="2,000 x1 and a 20,000 RSS run")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bare-client", nargs=3, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.serve:
        return serve()
    if opts.bare_client:
        url, n, c = opts.bare_client
        return bare_client(url, int(n), int(c))
    if opts.quick:
        opts.count, opts.repeat, opts.big = 2_000, 1, 20_000

    server = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{int(server.stdout.readline())}/hook"
        print(
            f"server {url} (pid {server.pid}); {opts.count:,} messages, concurrency "
            f"{opts.concurrency}, {opts.repeat} rounds; cpus {os.cpu_count()}"
        )
        # CPU of start-up and one message, to subtract: CPU per message is steadier than
        # messages/s when the machine is shared.
        base_bare = statistics.median(run_child(bare_args(url, 1, 1)).cpu for _ in range(3))
        base_ipsms = statistics.median(run_child(simulate_args(url, 1, 1)).cpu for _ in range(3))
        print(f"start-up CPU: bare {base_bare:.2f} s, ipsms {base_ipsms:.2f} s")
        sides: list[tuple[str, Any, Any]] = [
            ("bare", bare_args, None),
            ("ipsms-1", one_worker_args, None),
            ("ipsms-N", simulate_args, None),
        ]
        if shutil.which("hey"):
            sides.insert(0, ("hey", hey_args, parse_hey))
        runs: dict[str, list[Run]] = {name: [] for name, _, _ in sides}
        print(f"load average before: {os.getloadavg()[0]:.2f}")
        for round_ in range(1, opts.repeat + 1):
            shift = (round_ - 1) % len(sides)  # no side always runs first
            for name, args, parse in sides[shift:] + sides[:shift]:
                server_cpu = process_cpu(server.pid)
                run = run_child(args(url, opts.count, opts.concurrency), parse)
                server_cpu = process_cpu(server.pid) - server_cpu
                # hey sends n // c requests from each of its c workers
                workers = min(opts.concurrency, opts.count)
                expected = opts.count // workers * workers if name == "hey" else opts.count
                assert run.delivered == expected, (name, run)
                runs[name].append(run)
                print(
                    f"  round {round_} {name:7}: {run.throughput:8,.0f} msg/s  wall "
                    f"{run.wall:6.2f} s  cpu {run.cpu:6.2f} s "
                    f"({run.cpu / opts.count * 1e6:5.0f} us/msg)  peak RSS "
                    f"{run.rss_mib:6.1f} MiB  server cpu {server_cpu:5.2f} s"
                )
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        med = {name: statistics.median(r.throughput for r in rs) for name, rs in runs.items()}
        print("median msg/s: " + ", ".join(f"{name} {v:,.0f}" for name, v in med.items()))
        base = "hey" if "hey" in med else "bare"
        for name in ("ipsms-1", "ipsms-N"):
            print(
                f"ratio {name}/{base}: {med[name] / med[base]:.1%} (target >= 80% for ipsms-N/hey)"
            )
        net_b = (statistics.median(r.cpu for r in runs["bare"]) - base_bare) / opts.count * 1e6
        net_i = (statistics.median(r.cpu for r in runs["ipsms-1"]) - base_ipsms) / opts.count * 1e6
        print(
            f"median CPU per message net of start-up: bare {net_b:.0f} us, ipsms (1 worker) "
            f"{net_i:.0f} us (CPU-bound ratio {net_b / net_i:.1%})"
        )
        print(
            "median wall: "
            + ", ".join(
                f"{name} {statistics.median(r.wall for r in rs):.2f} s" for name, rs in runs.items()
            )
        )
        print(
            f"peak RSS ipsms (1 worker) at {opts.count:,}: "
            f"{statistics.median(r.rss_mib for r in runs['ipsms-1']):.1f} MiB"
        )
        if opts.big:
            big = run_child(one_worker_args(url, opts.big, opts.concurrency))
            assert big.delivered == opts.big, big
            print(
                f"peak RSS ipsms (1 worker) at {opts.big:,}: {big.rss_mib:.1f} MiB "
                f"({big.throughput:,.0f} msg/s, wall {big.wall:.1f} s)"
            )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
