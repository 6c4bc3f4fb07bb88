"""CPU per request of `ipsms listen`, the current tree against git REV, for new refids and for
retries: the steady figure on a shared machine, where messages/s moves with the neighbours.

    .venv/bin/python bench/bench_listen_cpu.py --compare-rev REV [--rounds 5] [--duration 5]

Each round runs, for each workload, `ipsms listen` as of REV and as of the current tree (taking
turns going first), loaded by `wrk -t1 -c32` for --duration seconds. The listener's CPU time
(user + system, from /proc/PID/stat, start-up excluded) is divided by the rows its store holds.
Workloads: `new` gives every request its own refid (attempt 1: the common case); `five`
sends each refid 5 times (IntelePeer's retries: 4 of 5 requests are unflagged retries);
`retries` spreads the requests over 50 refids, so nearly every request is a retry past
attempt 5, flagged (the worst case).
Needs `wrk` (Debian package). Loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_listen import ROOT, SECRET, WRK_LUA, start, stop, wrk

RETRIES_LUA = WRK_LUA.replace(
    'string.format("%032d", counter * 1000 + math.random(0, 999))',
    'string.format("%032d", counter % 50)',
)
FIVE_LUA = WRK_LUA.replace(
    'string.format("%032d", counter * 1000 + math.random(0, 999))',
    'string.format("%032d", math.floor((counter - 1) / 5))',
)
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def measure(cwd: Path, db: Path, script: Path, duration: int) -> float:
    """Microseconds of listener CPU per stored request."""
    proc, url = start(
        [
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
            "--db",
            str(db),
        ],
        cwd=cwd,
    )
    time.sleep(0.5)  # start-up done
    before = cpu_seconds(proc.pid)
    wrk(url, duration, 32, script)
    after = cpu_seconds(proc.pid)
    stop(proc)
    rows = sqlite3.connect(db).execute("SELECT COUNT(*) FROM requests").fetchone()[0]
    return (after - before) * 1e6 / rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--compare-rev", metavar="REV", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ipsms-bench-cpu-"))
    scripts = {"new": tmp / "new.lua", "five": tmp / "five.lua", "retries": tmp / "retries.lua"}
    scripts["new"].write_text(WRK_LUA)
    scripts["five"].write_text(FIVE_LUA)
    scripts["retries"].write_text(RETRIES_LUA)
    old_tree = tmp / "old"
    old_tree.mkdir()
    archive = subprocess.run(
        ["git", "archive", args.compare_rev, "ipsms"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(old_tree)], input=archive, check=True)
    trees = {"rev": old_tree, "current": ROOT}
    us: dict[str, dict[str, list[float]]] = {w: {"rev": [], "current": []} for w in scripts}
    for r in range(args.rounds):
        for workload, script in scripts.items():
            for which in ("rev", "current") if r % 2 == 0 else ("current", "rev"):
                db = tmp / f"{workload}-{which}-{r}.sqlite3"
                us[workload][which].append(measure(trees[which], db, script, args.duration))
            print(
                f"round {r + 1} {workload}: rev {us[workload]['rev'][-1]:.0f} µs, "
                f"current {us[workload]['current'][-1]:.0f} µs",
                file=sys.stderr,
            )
    result = {"rev": args.compare_rev, "rounds": args.rounds, "duration_s": args.duration}
    for workload, runs in us.items():
        result[workload] = {
            "rev_us_per_request": round(statistics.median(runs["rev"]), 1),
            "current_us_per_request": round(statistics.median(runs["current"]), 1),
            # > 1: the current tree costs more CPU per request than REV.
            "current_over_rev": round(
                statistics.median(
                    [c / o for c, o in zip(runs["current"], runs["rev"], strict=True)]
                ),
                3,
            ),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
