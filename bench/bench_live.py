"""The live table under load: `ipsms listen` in a tmux pane against `--format json >/dev/null`.

    .venv/bin/python bench/bench_live.py [--rounds 3] [--duration 6] [--rate 3000]

Each round runs `ipsms listen` twice, in turn (the order alternates): once with its live table
in a tmux pane (160x40), once with `--format json` to /dev/null. Both get the same loads with
wrk (the same Lua script as bench_listen.py, a distinct refid per request):
  - steady: --rate messages/s (32 connections, each waiting between requests), where the
    table must keep redrawing at its normal rate (at most 4 a second) and cost at most 10%
    of the CPU per message;
  - flat out: no waiting, for messages/s (table / json, target at least 0.90).
Redraws are counted from what the pane received (`tmux pipe-pane`): every frame repeats the
table's header, which names the listener's URL. CPU per message is the listener's user+system
time (/proc/PID/stat) over the requests wrk completed. Loopback only, bounded in time.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_listen import ROOT, SECRET, WRK_LUA, start, stop

CONNECTIONS = 32
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def wrk_run(url: str, duration: int, script: Path) -> tuple[int, float]:
    """(requests completed, requests/s) of one wrk run; fails on a non-2xx answer."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{duration}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 60,
    ).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw non-2xx answers:\n{out}")
    done = int(out.split(" requests in ")[0].rsplit(None, 1)[-1])
    per_s = float(out.split("Requests/sec:")[1].split()[0])
    return done, per_s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answers (405 to a GET): up
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"listener at {url} did not come up")


class Table:
    """`ipsms listen` with its live table in a detached tmux session."""

    def __init__(self, tmp: Path, tag: str) -> None:
        self.session = f"ipsms-bench-live-{os.getpid()}-{tag}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.pidfile, self.frames = tmp / f"{tag}.pid", tmp / f"{tag}.out"
        cmd = (
            f"cd {shlex.quote(str(ROOT))} && echo $$ > {shlex.quote(str(self.pidfile))} && "
            f"exec {shlex.quote(sys.executable)} -m ipsms listen --port {self.port} "
            f"--secret {SECRET} --db {shlex.quote(str(tmp / f'{tag}.sqlite3'))}"
        )
        env = {"PYTHONPATH": str(ROOT), "IPSMS_HOME": str(tmp / "home")}
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        subprocess.run(
            [
                "tmux",
                "new-session",
                "-d",
                "-s",
                self.session,
                "-x",
                "160",
                "-y",
                "40",
                f"export {exports}; {cmd}",
            ],
            check=True,
        )
        subprocess.run(
            [
                "tmux",
                "pipe-pane",
                "-o",
                "-t",
                self.session,
                f"cat >> {shlex.quote(str(self.frames))}",
            ],
            check=True,
        )
        wait_up(self.url)
        self.pid = int(self.pidfile.read_text())

    def redraws(self) -> int:
        # Each frame draws the header line with the URL once.
        return self.frames.read_bytes().count(f"127.0.0.1:{self.port}".encode())

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.session], capture_output=True)


def measure(args: argparse.Namespace) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="ipsms-live-"))
    (tmp / "home").mkdir()
    flat = tmp / "flat.lua"
    flat.write_text(WRK_LUA)
    steady = tmp / "steady.lua"
    # Each connection waits between requests, so 32 of them offer about --rate a second.
    steady.write_text(
        WRK_LUA + f"\ndelay = function() return {1000 * CONNECTIONS / args.rate:.3f} end\n"
    )
    runs: dict[str, list[dict[str, float]]] = {"table": [], "json": []}
    for r in range(args.rounds):
        for mode in ("table", "json") if r % 2 == 0 else ("json", "table"):
            table = None
            if mode == "table":
                table = Table(tmp, f"{mode}{r}")
                pid, url = table.pid, table.url
            else:
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
                        str(tmp / f"{mode}{r}.sqlite3"),
                    ]
                )
                pid = proc.pid
            try:
                time.sleep(1)  # start-up done, the first frame drawn
                before_draws = table.redraws() if table else 0
                cpu = cpu_seconds(pid)
                done, steady_rate = wrk_run(url, args.duration, steady)
                cpu = cpu_seconds(pid) - cpu
                draws = (table.redraws() - before_draws) if table else 0
                _, flat_rate = wrk_run(url, args.duration, flat)
            finally:
                if table is not None:
                    table.close()
                else:
                    stop(proc)
            run = {
                "steady_msg_s": steady_rate,
                "cpu_us_per_msg": cpu / done * 1e6,
                "redraws_per_s": draws / args.duration,
                "flat_msg_s": flat_rate,
            }
            runs[mode].append(run)
            print(
                f"round {r + 1} {mode:5}: steady {steady_rate:.0f}/s, "
                f"{run['cpu_us_per_msg']:.0f} µs CPU/msg"
                + (f", {run['redraws_per_s']:.1f} redraws/s" if table else "")
                + f"; flat out {flat_rate:.0f}/s",
                file=sys.stderr,
            )
    shutil.rmtree(tmp, ignore_errors=True)
    t, j = runs["table"], runs["json"]

    def med(rows: list[dict[str, float]], key: str) -> float:
        return round(statistics.median(x[key] for x in rows), 2)

    return {
        "rate": args.rate,
        "rounds": args.rounds,
        "duration_s": args.duration,
        "steady_msg_s": {"table": med(t, "steady_msg_s"), "json": med(j, "steady_msg_s")},
        "redraws_per_s": med(t, "redraws_per_s"),
        "cpu_us_per_msg": {"table": med(t, "cpu_us_per_msg"), "json": med(j, "cpu_us_per_msg")},
        # >= 0.90 is the target: the table costs at most 10%.
        "cpu_ratio_json_over_table": round(
            statistics.median(
                b["cpu_us_per_msg"] / a["cpu_us_per_msg"] for a, b in zip(t, j, strict=True)
            ),
            3,
        ),
        "flat_msg_s": {"table": med(t, "flat_msg_s"), "json": med(j, "flat_msg_s")},
        "flat_ratio_table_over_json": round(
            statistics.median(a["flat_msg_s"] / b["flat_msg_s"] for a, b in zip(t, j, strict=True)),
            3,
        ),
        "target_ratio": 0.90,
        "max_redraws_per_s": 4,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=6, help="seconds of each wrk run")
    ap.add_argument("--rate", type=float, default=3000.0, help="steady messages/s offered")
    args = ap.parse_args()
    for tool in ("wrk", "tmux"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed: apt-get install -y wrk tmux")
    print(json.dumps(measure(args), indent=2))


if __name__ == "__main__":
    main()
