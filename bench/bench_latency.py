"""Answer time IntelePeer sees: `ipsms listen` against a bare aiohttp handler, same steady load.

    .venv/bin/python bench/bench_latency.py [--rounds 3] [--count 10000] [--rate 1000]
    .venv/bin/python bench/bench_latency.py --throughput 5   # also wrk messages/s per server

Each round starts, on each event loop that is installed (asyncio's own, and uvloop from
`pip install 'ipsms[fast]'`):
  - `bench/bare_server.py --loop L` (an aiohttp handler that reads the body and answers 200),
  - `bench/bare_server.py --loop L --durable FILE` (the same handler, answering only once the
    body is appended to a file and fdatasync'd, in groups: nothing parsed, checked or
    indexed. Its answer time is the floor for any listener that answers 200 only once the
    message is on disk, as ipsms does),
  - `bench/same_work_listener.py` (the same work as ipsms done plainly, on loop L),
  - `ipsms listen --loop L --format json --secret ... --db <tmp>` (store, signature check,
    NDJSON to /dev/null),
then loads them in turns with the same client: `ipsms simulate URL --count T --rate R
--no-wait --format json` (T = --turn-count messages), whose summary gives p50/p99 of the answer
time (request sent to answer read). Each pass gives every server one turn, a different one
first each time, until each has had --count messages. A slow spell of this shared machine then
falls on every server alike rather than on whichever ran then. The figure per loop is the
median, over every pass of every round, of the ratio listen/bare of p99 within the pass
(target: at most 2x). Loops are never compared with each other, except for the one "moonshot"
figure: `ipsms listen` on uvloop against the bare handler on asyncio's loop. Everything stays
on 127.0.0.1 and is bounded (T messages per turn; each child is killed after a timeout).
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
from bench_listen import ROOT, SECRET, WRK_LUA, kill, script_cmd, start, stop, turn_order, wrk

LOOPS = ["asyncio"] + (["uvloop"] if importlib.util.find_spec("uvloop") else [])
TARGET_P99_RATIO = 2.0
KINDS = ("bare", "durable", "reference", "ipsms")


def load(url: str, count: int, rate: float, concurrency: int) -> dict[str, float]:
    """p50/p99 (ms) and throughput of one steady run of `ipsms simulate`."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "ipsms",
            "simulate",
            url,
            "--count",
            str(count),
            "--rate",
            f"{rate:g}",
            "--concurrency",
            str(concurrency),
            "--no-wait",
            "--format",
            "json",
            "--secret",
            SECRET,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60 + 3 * count / rate,
    )
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    if summary.get("type") != "summary" or summary["delivered"] != count:
        raise SystemExit(f"load run failed: {out.stdout[-500:]}{out.stderr[-500:]}")
    return {
        "p50": summary["latency_ms"]["p50"],
        "p99": summary["latency_ms"]["p99"],
        "msg_s": summary["throughput_msg_s"],
    }


def server_cmd(kind: str, loop: str, base: Path) -> list[str]:
    """How to run server ``kind``; its files are named ``base`` with a suffix."""
    db = base.with_suffix(".sqlite3")
    if kind == "bare":
        return [sys.executable, "bench/bare_server.py", "--loop", loop]
    if kind == "durable":
        return [
            sys.executable,
            "bench/bare_server.py",
            "--loop",
            loop,
            "--durable",
            str(db.with_suffix(".bodies")),
        ]
    if kind == "reference":
        return script_cmd("bench/same_work_listener.py", "0", db, loop)
    return [
        sys.executable,
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
        loop,
        "--db",
        str(db),
    ]


def measure(args: argparse.Namespace, tmp: Path | None = None) -> dict[str, Any]:
    own_tmp = tmp is None
    tmp = tmp or Path(tempfile.mkdtemp(prefix="ipsms-latency-"))
    script = tmp / "post.lua"
    script.write_text(WRK_LUA)
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}  # one entry per turn
    names = [(kind, loop) for loop in args.loops for kind in KINDS]
    turn = min(args.turn_count, args.count)
    passes = max(1, args.count // turn)
    for r in range(args.rounds):
        servers = {}
        try:
            for kind, loop in names:
                servers[(kind, loop)] = start(server_cmd(kind, loop, tmp / f"{kind}{loop}{r}"))
            for _, url in servers.values():  # connections, caches and the store warmed up
                load(url, min(200, turn), args.rate, args.concurrency)
            for k in range(passes):
                for name in turn_order(names, r * passes + k):
                    result = load(servers[name][1], turn, args.rate, args.concurrency)
                    runs.setdefault(name, []).append(result)
                    print(
                        f"round {r + 1}, pass {k + 1}: {name[0]}/{name[1]}: "
                        f"p50 {result['p50']:.2f} ms, p99 {result['p99']:.2f} ms, "
                        f"{result['msg_s']:.0f} msg/s",
                        file=sys.stderr,
                    )
            if args.throughput:
                for name, (_, url) in servers.items():
                    runs[name][-1]["wrk_msg_s"] = wrk(url, args.throughput, 32, script)
        finally:
            for (kind, _), (proc, _) in servers.items():
                if kind == "reference":  # kept as written: no shutdown handling
                    kill(proc)
                else:
                    stop(proc)
    result: dict[str, Any] = {
        "rate": args.rate,
        "count": args.count,
        "rounds": args.rounds,
        "turn_count": turn,
        "passes": passes * args.rounds,
        "target_p99_ratio": TARGET_P99_RATIO,
        "loops": {},
    }
    for loop in args.loops:
        bare, ipsms = runs[("bare", loop)], runs[("ipsms", loop)]
        ref, floor = runs[("reference", loop)], runs[("durable", loop)]
        entry: dict[str, Any] = {}
        for key in ("p50", "p99"):
            for label, turns in (
                ("bare", bare),
                ("durable", floor),
                ("reference", ref),
                ("ipsms", ipsms),
            ):
                entry[f"{label}_{key}_ms"] = round(statistics.median(x[key] for x in turns), 3)
            # Per pass: the servers ran seconds apart, under the same neighbours.
            entry[f"{key}_ratio"] = _ratio(ipsms, bare, key)
            # Bare, but answering only once the body is synced to disk: durability alone.
            entry[f"durable_{key}_ratio"] = _ratio(floor, bare, key)
            entry[f"reference_{key}_ratio"] = _ratio(ref, bare, key)
            entry[f"ipsms_over_durable_{key}"] = _ratio(ipsms, floor, key)
            entry[f"ipsms_over_reference_{key}"] = _ratio(ipsms, ref, key)
        entry["achieved_msg_s"] = {
            "bare": round(statistics.median(x["msg_s"] for x in bare)),
            "ipsms": round(statistics.median(x["msg_s"] for x in ipsms)),
        }
        if args.throughput:
            entry["wrk_ratio"] = _ratio(ipsms, bare, "wrk_msg_s")
        entry["p99_target_met"] = entry["p99_ratio"] <= TARGET_P99_RATIO
        result["loops"][loop] = entry
    if "uvloop" in args.loops:
        fast, base = runs[("ipsms", "uvloop")], runs[("bare", "asyncio")]
        moon: dict[str, float] = {"p99_ratio": _ratio(fast, base, "p99")}
        if args.throughput:
            moon["wrk_ratio"] = _ratio(fast, base, "wrk_msg_s")
        result["moonshot_ipsms_uvloop_vs_bare_asyncio"] = moon
    if own_tmp:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def _ratio(top: list[dict[str, float]], bottom: list[dict[str, float]], key: str) -> float:
    """The median of ``top``/``bottom`` over the turns (or rounds) both have ``key`` in."""
    pairs = [(t[key], b[key]) for t, b in zip(top, bottom, strict=True) if key in t]
    return round(statistics.median(t / b for t, b in pairs), 3)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--count", type=int, default=10000, help="messages per server per round")
    ap.add_argument(
        "--turn-count",
        type=int,
        default=2000,
        metavar="N",
        help="messages per turn (at --rate 1000, 2 s)",
    )
    ap.add_argument("--rate", type=float, default=1000.0, help="messages started per second")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument(
        "--throughput",
        type=int,
        default=0,
        metavar="SECONDS",
        help="also load each server with wrk -c32 for SECONDS (messages/s)",
    )
    ap.add_argument("--loops", nargs="+", choices=("asyncio", "uvloop"), default=LOOPS)
    return ap


def main() -> None:
    args = parser().parse_args()
    if args.throughput and shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    print(json.dumps(measure(args), indent=2))


if __name__ == "__main__":
    main()
