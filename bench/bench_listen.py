"""Ingest throughput of `ipsms listen` against a bare aiohttp handler and the same-work
reference (bench/same_work_listener.py), same load, same run.

    .venv/bin/python bench/bench_listen.py [--rounds 3] [--duration 8] [--connections 32]
    .venv/bin/python bench/bench_listen.py --breakdown   # where the time goes, part by part
    .venv/bin/python bench/bench_listen.py --compare-rev REV  # also ipsms as of git REV
    .venv/bin/python bench/bench_listen.py --loop uvloop      # all three servers on uvloop

Needs `wrk` and `hey` (Debian packages). Everything runs on 127.0.0.1 and is bounded: wrk runs
for --duration seconds per round, hey sends exactly --count requests. `ipsms listen` runs with
its store on (synchronous=FULL, group commit), the signature check on (--secret, auto mode)
and NDJSON to /dev/null. Every round measures three servers side by side: the bare handler, the
same-work reference (parse, signature, group commit with synchronous=FULL, one NDJSON line, a
JSON answer: the core work done plainly) and ipsms. All of a round's servers are started, then
they take turns under load (--turn seconds each, a different one first in each pass) until
each has had --duration seconds, so a slow spell of the shared machine falls on all of them.
Reports messages/s of each (median of the rounds), the per-round ratios to bare, and checks
that every request answered 200 is in the store. All three servers run on the same event loop
(--loop, default asyncio's own): a ratio is never taken across loops.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret"
WRK_LUA = """
counter = 0
request = function()
  counter = counter + 1
  local refid = string.format("%032d", counter * 1000 + math.random(0, 999))
  local body = '{"refid": "' .. refid .. '", "from": "+13035550100", "to": "+13038675309", '
    .. '"message": "Hello World! benchmark message", "signature": "SECRET"}'
  return wrk.format("POST", "/sms", {["Content-Type"] = "application/json"}, body)
end
""".replace("SECRET", SECRET)


# Runs a script with uvloop's event loop policy (for the reference, which calls asyncio.run).
UVLOOP_LAUNCHER = """
import asyncio, runpy, sys
import uvloop
asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def script_cmd(script: str, port: str, db: Path, loop: str) -> list[str]:
    """How to run a plain server script (the same-work reference, kept as written: it calls
    asyncio.run) on ``loop``: uvloop's policy comes through a launcher written next to ``db``."""
    if loop != "uvloop":
        return [sys.executable, script, port, str(db)]
    launcher = db.parent / "uvloop_launcher.py"
    launcher.write_text(UVLOOP_LAUNCHER)
    return [sys.executable, str(launcher), script, port, str(db)]


def kill(proc: subprocess.Popen[str]) -> None:
    """Stop a plain server script, which has no shutdown handling, with its child processes
    (a writer process, if it has one)."""
    for child in children(proc.pid):
        os.kill(child, signal.SIGKILL)
    proc.kill()
    proc.communicate(timeout=30)


def start(
    cmd: list[str], stdout: int | None = subprocess.DEVNULL, cwd: Path = ROOT
) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, text=True, cwd=cwd)
    assert proc.stderr is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        m = re.search(r"listening on (http://\S+/)", line)
        if m:
            return proc, m.group(1)
    proc.kill()
    raise SystemExit(f"server did not start: {' '.join(cmd)}")


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    return err


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, task: int | None = None) -> float:
    """CPU seconds of process ``pid`` and its running child processes (the listener's store
    writer), or of its thread ``task`` alone (the main thread: ``pid``)."""
    path = f"/proc/{pid}/stat" if task is None else f"/proc/{pid}/task/{task}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / TICK  # utime, stime
    if task is not None:
        return own
    return own + sum(cpu_seconds(child) for child in children(pid))


def children(pid: int) -> list[int]:
    pids = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            pids += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    return pids


Name = TypeVar("Name")


def turn_order(names: list[Name], n: int) -> list[Name]:
    """The order of pass ``n`` (counted across rounds): each pass starts with the next name,
    so none always runs first, or last."""
    first = n % len(names)
    return names[first:] + names[:first]


def wrk_counts(
    url: str, duration: float, connections: int, script: Path, pid: int | None
) -> tuple[int, float, float, float]:
    """One wrk run against the server ``pid``: requests done, seconds taken, and the server's
    CPU seconds in all and on its main thread (the event loop's) meanwhile (0 without
    ``pid``)."""
    before, main_before = (cpu_seconds(pid), cpu_seconds(pid, pid)) if pid else (0.0, 0.0)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw non-2xx answers:\n{out}")
    m = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    assert m is not None, out
    seconds = float(m.group(2)) / (1000 if m.group(3) == "ms" else 1)
    if not pid:
        return int(m.group(1)), seconds, 0.0, 0.0
    return (
        int(m.group(1)),
        seconds,
        cpu_seconds(pid) - before,
        cpu_seconds(pid, pid) - main_before,
    )


def wrk(url: str, duration: int, connections: int, script: Path) -> float:
    """Messages/s (``wrk_counts`` also measures the server's CPU)."""
    done, seconds, _, _ = wrk_counts(url, duration, connections, script, None)
    return done / seconds


def hey_ok(url: str, count: int, connections: int, body: Path) -> int:
    out = subprocess.run(
        [
            "hey",
            "-n",
            str(count),
            "-c",
            str(connections),
            "-m",
            "POST",
            "-T",
            "application/json",
            "-D",
            str(body),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    m = re.search(r"\[200\]\s+(\d+) responses", out)
    return int(m.group(1)) if m else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=8, help="seconds of load per server per round")
    ap.add_argument(
        "--turn",
        type=int,
        default=2,
        metavar="SECONDS",
        help="the servers of a round take turns under load, this long each, "
        "until each has had --duration seconds (wrk takes whole seconds)",
    )
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--count", type=int, default=20000, help="requests for the store check")
    ap.add_argument(
        "--breakdown",
        action="store_true",
        help="also measure the listener with parts switched off (bench/listen_variants.py)",
    )
    ap.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="the event loop of all three servers (never compared across loops)",
    )
    ap.add_argument(
        "--extra",
        metavar="SCRIPT",
        help="also measure this server in every round, run like the reference "
        "(SCRIPT PORT DB; e.g. bench/same_work_process_writer.py)",
    )
    ap.add_argument(
        "--compare-rev",
        metavar="REV",
        help="also measure `ipsms listen` as of this git revision, in the same rounds "
        "(e.g. the commit before a change, to measure what the change costs)",
    )
    args = ap.parse_args()
    for tool in ("wrk", "hey"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed: apt-get install -y wrk hey")

    tmp = Path(tempfile.mkdtemp(prefix="ipsms-bench-"))
    script = tmp / "post.lua"
    script.write_text(WRK_LUA)
    body = tmp / "body.json"
    body.write_text(
        json.dumps(
            {
                "refid": "B" * 32,
                "from": "+13035550100",
                "to": "+13038675309",
                "message": "Hello World!",
                "signature": SECRET,
            }
        )
    )
    py = sys.executable
    old_tree = None
    if args.compare_rev:
        old_tree = tmp / "old"
        old_tree.mkdir()
        archive = subprocess.run(
            ["git", "archive", args.compare_rev, "ipsms"], cwd=ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(old_tree)], input=archive, check=True)
    names = ("bare", "reference", "extra", "old", "ipsms")
    rates: dict[str, list[float]] = {name: [] for name in names}  # messages/s, per round
    cpus: dict[str, list[float]] = {name: [] for name in names}  # CPU µs per request, in all
    mains: dict[str, list[float]] = {name: [] for name in names}  # ... on the main thread
    # All three on the same event loop: `ipsms listen` is told which (its default, auto, takes
    # uvloop when installed), bare_server.py too, and the reference (kept as written, on
    # asyncio.run) gets uvloop's policy through a small launcher.
    listen_cmd = [
        py,
        "-m",
        "ipsms",
        "listen",
        "--port",
        "0",
        "--format",
        "json",
        "--secret",
        SECRET,
        "--loop",
        args.loop,
    ]
    bare_cmd = [py, "bench/bare_server.py", "--loop", args.loop]
    turns = max(1, args.duration // max(1, args.turn))
    for r in range(args.rounds):
        # Every server of the round is started, then they take turns under load, --turn
        # seconds each (a different one first in each pass), until each has had --duration
        # seconds: a slow spell on this shared machine then falls on all of them, not on
        # whichever server happened to run through it.
        servers: dict[str, tuple[subprocess.Popen[str], str, bool]] = {}  # proc, url, plain
        servers["bare"] = (*start(bare_cmd), False)
        servers["reference"] = (
            *start(
                script_cmd("bench/same_work_listener.py", "0", tmp / f"ref{r}.sqlite3", args.loop)
            ),
            True,
        )
        if args.extra:
            servers["extra"] = (
                *start(script_cmd(args.extra, "0", tmp / f"extra{r}.sqlite3", args.loop)),
                True,
            )
        if old_tree is not None:  # `python -m ipsms` from its tree
            servers["old"] = (
                *start([*listen_cmd, "--db", str(tmp / f"old{r}.sqlite3")], cwd=old_tree),
                False,
            )
        servers["ipsms"] = (*start([*listen_cmd, "--db", str(tmp / f"round{r}.sqlite3")]), False)
        totals = {name: [0, 0.0, 0.0, 0.0] for name in servers}  # requests, s, CPU s, main s
        for k in range(turns):
            for name in turn_order(list(servers), r * turns + k):
                proc, url, _ = servers[name]
                counts = wrk_counts(url, args.duration // turns, args.connections, script, proc.pid)
                totals[name] = [a + b for a, b in zip(totals[name], counts, strict=True)]
        for name, (proc, _, plain) in servers.items():
            if plain:
                kill(proc)
            else:
                stop(proc)
            done, seconds, cpu, main = totals[name]
            rates[name].append(done / seconds)
            cpus[name].append(cpu * 1e6 / done)
            mains[name].append(main * 1e6 / done)
        bare_rates, ref_rates, ipsms_rates = rates["bare"], rates["reference"], rates["ipsms"]
        old = f", ipsms@{args.compare_rev} {rates['old'][-1]:.0f}/s" if old_tree else ""
        print(
            f"round {r + 1}: bare {bare_rates[-1]:.0f}/s, reference {ref_rates[-1]:.0f}/s "
            f"({ref_rates[-1] / bare_rates[-1]:.3f}){old}, ipsms {ipsms_rates[-1]:.0f}/s "
            f"({ipsms_rates[-1] / bare_rates[-1]:.3f}); CPU per request: bare "
            f"{cpus['bare'][-1]:.0f} us, reference {cpus['reference'][-1]:.0f} us, ipsms "
            f"{cpus['ipsms'][-1]:.0f} us; load average {os.getloadavg()[0]:.2f}",
            file=sys.stderr,
        )
    bare_cpu, ref_cpu, ipsms_cpu = cpus["bare"], cpus["reference"], cpus["ipsms"]
    ref_main, ipsms_main = mains["reference"], mains["ipsms"]
    old_rates, old_cpu = rates["old"], cpus["old"]
    extra_rates, extra_cpu = rates["extra"], cpus["extra"]

    # Nothing lost: every request answered 200 is in the store, counted exactly.
    db = tmp / "count.sqlite3"
    listener, url = start([*listen_cmd, "--db", str(db)])
    ok = hey_ok(url, args.count, args.connections, body)
    stop(listener)
    stored = (
        sqlite3.connect(db)
        .execute("SELECT COUNT(*) FROM requests WHERE status = 200")
        .fetchone()[0]
    )

    breakdown = {}
    if args.breakdown:
        from listen_variants import VARIANTS  # type: ignore[import-not-found]

        for variant in ("bare", *VARIANTS):
            rates = []
            for _ in range(args.rounds):
                cmd = (
                    [py, "bench/bare_server.py"]
                    if variant == "bare"
                    else [py, "bench/listen_variants.py", variant, "0"]
                )
                proc, url = start(cmd)
                rates.append(wrk(url, args.duration, args.connections, script))
                stop(proc)
            rate = statistics.median(rates)
            breakdown[variant] = {"msgs_per_s": round(rate), "us_per_msg": round(1e6 / rate, 1)}
            print(f"{variant}: {rate:.0f}/s", file=sys.stderr)

    bare_med, ipsms_med = statistics.median(bare_rates), statistics.median(ipsms_rates)
    # Each round measures every server in the same turns, so the per-round ratio is the least
    # noisy figure.
    ratios = [i / b for i, b in zip(ipsms_rates, bare_rates, strict=True)]
    ref_ratios = [f / b for f, b in zip(ref_rates, bare_rates, strict=True)]
    result = {
        "bare_aiohttp_msgs_per_s": round(bare_med),
        "reference_msgs_per_s": round(statistics.median(ref_rates)),
        "ipsms_listen_msgs_per_s": round(ipsms_med),
        "ratio_median_of_rounds": round(statistics.median(ratios), 3),
        "ratios": [round(r, 3) for r in ratios],
        "reference_ratio_median_of_rounds": round(statistics.median(ref_ratios), 3),
        "reference_ratios": [round(r, 3) for r in ref_ratios],
        # ipsms over the reference, per round: the floor is 1.0 (not slower than the plain
        # version of the same work)
        "ipsms_over_reference": round(
            statistics.median([i / f for i, f in zip(ipsms_rates, ref_rates, strict=True)]), 3
        ),
        # CPU microseconds per request (the listener's own threads included), and bare's
        # figure over each: the throughput ratio the CPU cost alone predicts, per round
        "cpu_us_per_request": {
            "bare": round(statistics.median(bare_cpu), 1),
            "reference": round(statistics.median(ref_cpu), 1),
            "ipsms": round(statistics.median(ipsms_cpu), 1),
        },
        # The same split: the event loop's thread, and the rest (the store's writer: a thread
        # in the reference, a process in ipsms): where the distance to the reference is.
        "main_thread_us_per_request": {
            "reference": round(statistics.median(ref_main), 1),
            "ipsms": round(statistics.median(ipsms_main), 1),
        },
        "writer_us_per_request": {
            "reference": round(
                statistics.median(c - m for c, m in zip(ref_cpu, ref_main, strict=True)), 1
            ),
            "ipsms": round(
                statistics.median(c - m for c, m in zip(ipsms_cpu, ipsms_main, strict=True)), 1
            ),
        },
        "cpu_ratio_reference": round(
            statistics.median([b / f for b, f in zip(bare_cpu, ref_cpu, strict=True)]), 3
        ),
        "cpu_ratio_ipsms": round(
            statistics.median([b / i for b, i in zip(bare_cpu, ipsms_cpu, strict=True)]), 3
        ),
        "target_ratio": 0.70,
        "loop": args.loop,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "rounds": args.rounds,
        "duration_s": args.duration,
        "connections": args.connections,
        "store_check": {"answered_200": ok, "stored_200": stored, "equal": ok == stored},
    }
    if old_rates:
        old_ratios = [o / b for o, b in zip(old_rates, bare_rates, strict=True)]
        result["compare"] = {
            "rev": args.compare_rev,
            "msgs_per_s": round(statistics.median(old_rates)),
            "ratio_median_of_rounds": round(statistics.median(old_ratios), 3),
            "ratios": [round(r, 3) for r in old_ratios],
            # > 1: the current tree is faster than REV; < 1: it costs that share.
            "current_over_rev": round(
                statistics.median([i / o for i, o in zip(ipsms_rates, old_rates, strict=True)]), 3
            ),
            "cpu_us_per_request": round(statistics.median(old_cpu), 1),
            # < 1: the current tree spends that share of REV's CPU per request
            "cpu_current_over_rev": round(
                statistics.median([i / o for i, o in zip(ipsms_cpu, old_cpu, strict=True)]), 3
            ),
        }
    if extra_rates:
        result["extra"] = {
            "script": args.extra,
            "msgs_per_s": round(statistics.median(extra_rates)),
            "ratio_median_of_rounds": round(
                statistics.median([e / b for e, b in zip(extra_rates, bare_rates, strict=True)]), 3
            ),
            "ipsms_over_extra": round(
                statistics.median([i / e for i, e in zip(ipsms_rates, extra_rates, strict=True)]), 3
            ),
            "cpu_us_per_request": round(statistics.median(extra_cpu), 1),
        }
    if breakdown:
        result["breakdown"] = breakdown
    print(json.dumps(result, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)
    if ok != stored:
        raise SystemExit("store check failed: answered 200 != stored")


if __name__ == "__main__":
    main()
