"""Answer time IntelePeer sees: `ipsms listen` against a bare aiohttp handler, same steady load.

    .venv/bin/python bench/bench_latency.py [--rounds 3] [--count 10000] [--rate 1000]
    .venv/bin/python bench/bench_latency.py --throughput 5   # also wrk messages/s per server

Each round loads, one after the other (the order turns each round), on each event loop that
is installed (asyncio's own, and uvloop from `pip install 'ipsms[fast]'`):
  - `bench/bare_server.py --loop L` (an aiohttp handler that reads the body and answers 200),
  - `bench/same_work_listener.py` (the same work done plainly, on loop L: its answer also
    waits for a durable commit, so its p99 is the floor for a listener that answers 200 only
    once the message is on disk),
  - `ipsms listen --loop L --format json --secret ... --db <tmp>` (store, signature check,
    NDJSON to /dev/null),
with the same client: `ipsms simulate URL --count N --rate R --no-wait --format json`, whose
summary gives p50/p99 of the answer time (request sent to answer read). The figure per loop is
the median of the per-round ratios listen/bare of p99 (target: at most 2x). Loops are never
compared with each other, except for the one "moonshot" figure: `ipsms listen` on uvloop
against the bare handler on asyncio's loop. Everything stays on 127.0.0.1 and is bounded
(N messages per run; each child is killed after a timeout).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_listen import ROOT, SECRET, WRK_LUA, kill, script_cmd, start, stop, wrk

LOOPS = ["asyncio"] + (["uvloop"] if importlib.util.find_spec("uvloop") else [])
TARGET_P99_RATIO = 2.0


def load(url: str, count: int, rate: float, concurrency: int) -> dict[str, float]:
    """p50/p99 (ms) and throughput of one steady run of `ipsms simulate`."""
    out = subprocess.run(
        [sys.executable, "-m", "ipsms", "simulate", url, "--count", str(count), "--rate",
         f"{rate:g}", "--concurrency", str(concurrency), "--no-wait", "--format", "json",
         "--secret", SECRET], capture_output=True, text=True, cwd=ROOT,
        timeout=60 + 3 * count / rate)
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    if summary.get("type") != "summary" or summary["delivered"] != count:
        raise SystemExit(f"load run failed: {out.stdout[-500:]}{out.stderr[-500:]}")
    return {"p50": summary["latency_ms"]["p50"], "p99": summary["latency_ms"]["p99"],
            "msg_s": summary["throughput_msg_s"]}


def server_cmd(kind: str, loop: str, db: Path) -> list[str]:
    if kind == "bare":
        return [sys.executable, "bench/bare_server.py", "--loop", loop]
    if kind == "reference":
        return script_cmd("bench/same_work_listener.py", "0", db, loop)
    return [sys.executable, "-m", "ipsms", "listen", "--port", "0", "--format", "json",
            "--secret", SECRET, "--loop", loop, "--db", str(db)]


def measure(args: argparse.Namespace, tmp: Path | None = None) -> dict[str, Any]:
    own_tmp = tmp is None
    tmp = tmp or Path(tempfile.mkdtemp(prefix="ipsms-latency-"))
    script = tmp / "post.lua"
    script.write_text(WRK_LUA)
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    order = [(kind, loop) for loop in args.loops for kind in ("bare", "reference", "ipsms")]
    for r in range(args.rounds):
        for kind, loop in (order if r % 2 == 0 else order[::-1]):
            proc, url = start(server_cmd(kind, loop, tmp / f"{loop}{r}.sqlite3"))
            try:
                result = load(url, args.count, args.rate, args.concurrency)
                if args.throughput:
                    result["wrk_msg_s"] = wrk(url, args.throughput, 32, script)
            finally:
                if kind == "reference":  # kept as written: no shutdown handling
                    kill(proc)
                else:
                    stop(proc)
            runs.setdefault((kind, loop), []).append(result)
            print(f"round {r + 1}: {kind}/{loop}: p50 {result['p50']:.2f} ms, "
                  f"p99 {result['p99']:.2f} ms, {result['msg_s']:.0f} msg/s"
                  + (f", wrk {result['wrk_msg_s']:.0f}/s" if args.throughput else ""),
                  file=sys.stderr)
    result: dict[str, Any] = {"rate": args.rate, "count": args.count, "rounds": args.rounds,
                              "target_p99_ratio": TARGET_P99_RATIO, "loops": {}}
    for loop in args.loops:
        bare, ipsms = runs[("bare", loop)], runs[("ipsms", loop)]
        ref = runs[("reference", loop)]
        entry: dict[str, Any] = {}
        for key in ("p50", "p99"):
            entry[f"bare_{key}_ms"] = round(statistics.median(x[key] for x in bare), 3)
            entry[f"reference_{key}_ms"] = round(statistics.median(x[key] for x in ref), 3)
            entry[f"ipsms_{key}_ms"] = round(statistics.median(x[key] for x in ipsms), 3)
            # Per round: both sides ran minutes apart at most, under the same neighbours.
            entry[f"{key}_ratio"] = round(statistics.median(
                i[key] / b[key] for i, b in zip(ipsms, bare, strict=True)), 3)
            # The same work done plainly (a durable commit before each answer): the floor.
            entry[f"reference_{key}_ratio"] = round(statistics.median(
                f[key] / b[key] for f, b in zip(ref, bare, strict=True)), 3)
            entry[f"ipsms_over_reference_{key}"] = round(statistics.median(
                i[key] / f[key] for i, f in zip(ipsms, ref, strict=True)), 3)
        entry["achieved_msg_s"] = {"bare": round(statistics.median(x["msg_s"] for x in bare)),
                                   "ipsms": round(statistics.median(x["msg_s"] for x in ipsms))}
        if args.throughput:
            entry["wrk_ratio"] = round(statistics.median(
                i["wrk_msg_s"] / b["wrk_msg_s"] for i, b in zip(ipsms, bare, strict=True)), 3)
        entry["p99_target_met"] = entry["p99_ratio"] <= TARGET_P99_RATIO
        result["loops"][loop] = entry
    if "uvloop" in args.loops:
        fast, base = runs[("ipsms", "uvloop")], runs[("bare", "asyncio")]
        moon: dict[str, float] = {"p99_ratio": round(statistics.median(
            f["p99"] / b["p99"] for f, b in zip(fast, base, strict=True)), 3)}
        if args.throughput:
            moon["wrk_ratio"] = round(statistics.median(
                f["wrk_msg_s"] / b["wrk_msg_s"] for f, b in zip(fast, base, strict=True)), 3)
        result["moonshot_ipsms_uvloop_vs_bare_asyncio"] = moon
    if own_tmp:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--count", type=int, default=10000, help="messages per run")
    ap.add_argument("--rate", type=float, default=1000.0, help="messages started per second")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--throughput", type=int, default=0, metavar="SECONDS",
                    help="also load each server with wrk -c32 for SECONDS (messages/s)")
    ap.add_argument("--loops", nargs="+", choices=("asyncio", "uvloop"), default=LOOPS)
    return ap


def main() -> None:
    args = parser().parse_args()
    if args.throughput and shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    print(json.dumps(measure(args), indent=2))


if __name__ == "__main__":
    main()
