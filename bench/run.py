"""Every benchmark in one run: one table of ratios, each against its baseline of the same run.

    .venv/bin/python bench/run.py            # the full set (about 15 minutes)
    .venv/bin/python bench/run.py --quick    # shorter runs, under 2 minutes
    .venv/bin/python bench/run.py --smoke    # tiny runs: checks the machinery, not the figures

Runs, one after the other, each as its own process from this checkout:
  ingest      bench/bench_listen.py    `ipsms listen` against a bare aiohttp handler (wrk)
  load mode   bench/bench_simulate.py  `ipsms simulate --count` against a bare aiohttp client
  start-up    bench/bench_startup.py   the CLI's fast paths against a minimal Typer app
  latency     bench/bench_latency.py   p50/p99 answer time at a steady rate, per event loop
  live table  bench/bench_live.py      `listen` with its table in tmux against --format json
  inspector   bench/bench_inspector.py `listen` with a tab on the inspector against --no-inspect
Prints the table, then rewrites the marked figures section of BENCHMARKS.md (between the
BEGIN/END markers below) with the table, the date, the machine and the versions; the rest of
the file is left as it is. `--smoke` writes no file unless `--doc` names one. A benchmark that
fails is shown as failed in the table, the others still run, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- bench/run.py: figures begin (rewritten by each run; edit outside) -->"
END = "<!-- bench/run.py: figures end -->"
HEADER = ("benchmark", "measure", "baseline", "ipsms", "ratio", "target")
MODES = ("full", "quick", "smoke")

# The arguments of each benchmark in each mode.
ARGS: dict[str, dict[str, list[str]]] = {
    "ingest": {
        "full": ["--rounds", "3", "--duration", "8"],
        "quick": ["--rounds", "1", "--duration", "3", "--count", "2000"],
        "smoke": ["--rounds", "1", "--duration", "1", "--count", "100"],
    },
    "load mode": {
        "full": [],
        "quick": ["--count", "2000", "--repeat", "1", "--big", "0"],
        "smoke": ["--count", "50", "--repeat", "1", "--big", "0"],
    },
    "start-up": {
        "full": ["--pairs", "15"],
        "quick": ["--pairs", "4"],
        "smoke": ["--pairs", "1", "--only", "fast"],
    },
    "latency": {
        "full": ["--rounds", "3", "--count", "10000", "--throughput", "5"],
        "quick": ["--rounds", "1", "--count", "2000", "--throughput", "2"],
        "smoke": ["--rounds", "1", "--count", "50", "--rate", "500"],
    },
    "live table": {
        "full": ["--rounds", "3", "--duration", "6"],
        "quick": ["--rounds", "1", "--duration", "2"],
        "smoke": ["--rounds", "1", "--duration", "1"],
    },
    "inspector": {
        "full": ["--rounds", "3", "--duration", "6", "--json"],
        "quick": [
            "--rounds",
            "1",
            "--duration",
            "3",
            "--latency-seconds",
            "4",
            "--rows",
            "20000",
            "--json",
        ],
        "smoke": [
            "--rounds",
            "1",
            "--duration",
            "1",
            "--latency-seconds",
            "1",
            "--rows",
            "500",
            "--json",
        ],
    },
}
SCRIPTS = {
    "ingest": "bench_listen.py",
    "load mode": "bench_simulate.py",
    "start-up": "bench_startup.py",
    "latency": "bench_latency.py",
    "live table": "bench_live.py",
    "inspector": "bench_inspector.py",
}
NEEDS = {
    "ingest": ("wrk", "hey"),
    "latency": ("wrk",),
    "live table": ("wrk", "tmux"),
    "inspector": ("wrk",),
}


@dataclass
class Row:
    bench: str
    measure: str
    baseline: str
    ipsms: str
    ratio: str
    target: str

    def cells(self) -> tuple[str, ...]:
        return (self.bench, self.measure, self.baseline, self.ipsms, self.ratio, self.target)


def run_bench(name: str, mode: str) -> tuple[str, float]:
    """A benchmark's stdout and wall seconds; its stderr (progress) goes to ours."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / SCRIPTS[name]), *ARGS[name][mode]],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        timeout=1800,
        check=True,
    ).stdout
    return out, time.monotonic() - started


def last_json(out: str) -> dict[str, Any]:
    """The JSON object a benchmark prints last on stdout (it may print text before it)."""
    start = out.rfind("\n{")
    return json.loads(out[start + 1 :] if start >= 0 else out)  # type: ignore[no-any-return]


def rate(x: float) -> str:
    return f"{x:,.0f}/s"


def ingest_rows(out: str) -> list[Row]:
    r = last_json(out)
    check = r["store_check"]
    loop = r.get("loop", "asyncio")
    cpu = r["cpu_us_per_request"]
    rows = [
        Row(
            "ingest",
            f"messages/s, wrk -c32 (store, signature, NDJSON), {loop}",
            rate(r["bare_aiohttp_msgs_per_s"]),
            rate(r["ipsms_listen_msgs_per_s"]),
            f"{r['ratio_median_of_rounds']:.3f}",
            f">= {r['target_ratio']:.2f}",
        ),
        Row(
            "ingest",
            "same-work reference over bare (the floor)",
            rate(r["bare_aiohttp_msgs_per_s"]),
            rate(r["reference_msgs_per_s"]),
            f"{r['reference_ratio_median_of_rounds']:.3f}",
            "",
        ),
        Row(
            "ingest",
            "messages/s, ipsms over the same-work reference",
            rate(r["reference_msgs_per_s"]),
            rate(r["ipsms_listen_msgs_per_s"]),
            f"{r['ipsms_over_reference']:.3f}",
            ">= 1.00",
        ),
        Row(
            "ingest",
            "CPU per request, reference over ipsms",
            f"{cpu['reference']:.0f} µs",
            f"{cpu['ipsms']:.0f} µs",
            f"{cpu['reference'] / cpu['ipsms']:.3f}",
            "",
        ),
        Row(
            "ingest",
            "answered 200 / stored 200",
            "",
            f"{check['answered_200']:,} / {check['stored_200']:,}",
            "equal" if check["equal"] else "DIFFERENT",
            "equal",
        ),
    ]
    main, other = r.get("main_thread_us_per_request"), r.get("writer_us_per_request")
    if main and other:  # where the distance is: the event loop's thread, or the store writer's
        rows += [
            Row(
                "ingest",
                "CPU per request, event-loop thread, reference over ipsms",
                f"{main['reference']:.0f} µs",
                f"{main['ipsms']:.0f} µs",
                f"{main['reference'] / main['ipsms']:.3f}",
                "",
            ),
            Row(
                "ingest",
                "CPU per request, store writer, reference over ipsms",
                f"{other['reference']:.0f} µs",
                f"{other['ipsms']:.0f} µs",
                f"{other['reference'] / other['ipsms']:.3f}",
                "",
            ),
        ]
    return rows


def load_rows(out: str) -> list[Row]:
    # bench_simulate.py prints text:
    #   "median msg/s: hey 6,189, bare 4,180, ipsms-1 2,210, ipsms-N 2,555"
    m = re.search(r"median msg/s: (.*)", out)
    if m is None:
        raise ValueError("no 'median msg/s:' line in bench_simulate.py's output")
    med = {
        name: float(value.replace(",", ""))
        for name, value in re.findall(r"(\S+) ([\d,]+\d)", m.group(1))
    }
    base = "hey" if "hey" in med else "bare"
    rows = []
    for name, what in (("ipsms-1", "1 worker"), ("ipsms-N", "--workers default")):
        if name in med and med.get(base):
            rows.append(
                Row(
                    "load mode",
                    f"messages/s, 64 in flight, {what} vs {base}",
                    f"{med[base]:,.0f}/s",
                    f"{med[name]:,.0f}/s",
                    f"{med[name] / med[base]:.3f}",
                    ">= 0.80" if name == "ipsms-N" and base == "hey" else "",
                )
            )
    cpu = re.search(r"bare (\d+) us, ipsms (\d+) us \(CPU-bound ratio ([\d.]+)%\)", out)
    if cpu is not None:
        rows.append(
            Row(
                "load mode",
                "CPU per message (net of start-up)",
                f"{cpu.group(1)} µs",
                f"{cpu.group(2)} µs",
                f"{float(cpu.group(3)) / 100:.3f}",
                "",
            )
        )
    return rows


def startup_rows(out: str) -> list[Row]:
    r = last_json(out)
    rows = []
    for case, sides in r["cases"].items():
        s = sides["ipsms"]
        target = f"<= {r['target_ratio']}" if "pass" in s else ""
        rows.append(
            Row(
                "start-up",
                case,
                f"{s['baseline_median_s']:.3f} s",
                f"{s['median_s']:.3f} s",
                f"{s['ratio']:.2f}",
                target,
            )
        )
    return rows


def latency_rows(out: str) -> list[Row]:
    r = last_json(out)
    rows = []
    for loop, e in r["loops"].items():
        at = f"{r['rate']:g}/s, {loop}"
        rows.append(
            Row(
                "latency",
                f"p50 answer time at {at}",
                f"{e['bare_p50_ms']:.2f} ms",
                f"{e['ipsms_p50_ms']:.2f} ms",
                f"{e['p50_ratio']:.2f}",
                "",
            )
        )
        rows.append(
            Row(
                "latency",
                f"p99 answer time at {at}",
                f"{e['bare_p99_ms']:.2f} ms",
                f"{e['ipsms_p99_ms']:.2f} ms",
                f"{e['p99_ratio']:.2f}",
                f"<= {r['target_p99_ratio']:g}",
            )
        )
        # The floors, each over bare, then ipsms over it: answering after an fdatasync alone,
        # and the same work done plainly (which ipsms should not be slower than).
        for kind, over_bare, over_floor, target in (
            (
                "durable",
                "bare answering after fdatasync",
                "ipsms over bare answering after fdatasync",
                "",
            ),
            (
                "reference",
                "same-work reference over bare",
                "ipsms over the same-work reference",
                "<= 1",
            ),
        ):
            if f"{kind}_p99_ms" not in e:
                continue
            rows.append(
                Row(
                    "latency",
                    f"p99, {over_bare}, {loop}",
                    f"{e['bare_p99_ms']:.2f} ms",
                    f"{e[f'{kind}_p99_ms']:.2f} ms",
                    f"{e[f'{kind}_p99_ratio']:.2f}",
                    "",
                )
            )
            rows.append(
                Row(
                    "latency",
                    f"p99, {over_floor}, {loop}",
                    f"{e[f'{kind}_p99_ms']:.2f} ms",
                    f"{e['ipsms_p99_ms']:.2f} ms",
                    f"{e[f'ipsms_over_{kind}_p99']:.2f}",
                    target,
                )
            )
        if "wrk_ratio" in e:
            rows.append(
                Row("latency", f"messages/s, wrk -c32, {loop}", "", "", f"{e['wrk_ratio']:.3f}", "")
            )
    moon = r.get("moonshot_ipsms_uvloop_vs_bare_asyncio")
    if moon:
        rows.append(
            Row(
                "moonshot",
                "p99, ipsms on uvloop / bare handler on asyncio",
                "",
                "",
                f"{moon['p99_ratio']:.2f}",
                "",
            )
        )
        if "wrk_ratio" in moon:
            rows.append(
                Row(
                    "moonshot",
                    "messages/s, ipsms on uvloop / bare on asyncio",
                    "",
                    "",
                    f"{moon['wrk_ratio']:.3f}",
                    "",
                )
            )
    return rows


def live_rows(out: str) -> list[Row]:
    r = last_json(out)
    return [
        Row(
            "live table",
            f"CPU per message at {r['rate']:g}/s offered (json / table)",
            f"{r['cpu_us_per_msg']['json']:.0f} µs",
            f"{r['cpu_us_per_msg']['table']:.0f} µs",
            f"{r['cpu_ratio_json_over_table']:.3f}",
            f">= {r['target_ratio']:.2f}",
        ),
        Row(
            "live table",
            "messages/s flat out (table / json)",
            rate(r["flat_msg_s"]["json"]),
            rate(r["flat_msg_s"]["table"]),
            f"{r['flat_ratio_table_over_json']:.3f}",
            f">= {r['target_ratio']:.2f}",
        ),
        Row(
            "live table",
            "redraws per second under load",
            "",
            f"{r['redraws_per_s']:.1f}",
            "",
            f"<= {r['max_redraws_per_s']}",
        ),
    ]


def inspector_rows(out: str) -> list[Row]:
    r = last_json(out)
    ing, lat, screen = r["ingest"], r["latency"], r.get("first_screen")
    rows = [
        Row(
            "inspector",
            "messages/s with a tab subscribed (--no-inspect / tab)",
            rate(ing["no_inspect"]),
            rate(ing["inspector_tab"]),
            f"{ing['ratio_median']:.3f}",
            f">= {ing['target']:.2f}",
        ),
        Row(
            "inspector",
            f"p99 from the 200 to the tab's event at {lat['rate']:g}/s",
            "",
            f"{lat['p99_ms']:.0f} ms",
            "",
            f"< {lat['target_p99_ms']} ms",
        ),
    ]
    if screen:
        rows.append(
            Row(
                "inspector",
                f"first screen over {screen['rows']:,} messages",
                "",
                f"{screen['median_ms']:.0f} ms",
                "",
                f"< {screen['target_ms']} ms",
            )
        )
    return rows


PARSERS: dict[str, Callable[[str], list[Row]]] = {
    "ingest": ingest_rows,
    "load mode": load_rows,
    "start-up": startup_rows,
    "latency": latency_rows,
    "live table": live_rows,
    "inspector": inspector_rows,
}


def table(rows: list[Row]) -> str:
    """A Markdown table: readable in a terminal and in BENCHMARKS.md alike."""
    widths = [
        max(len(c) for c in col) for col in zip(HEADER, *(r.cells() for r in rows), strict=True)
    ]

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join(
        [
            line(HEADER),
            "|" + "|".join("-" * (w + 2) for w in widths) + "|",
            *(line(r.cells()) for r in rows),
        ]
    )


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                model = text.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}), {platform.system()} {platform.release()}"


def commit() -> str:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out or "unknown"


def section(rows: list[Row], mode: str, load: tuple[float, float], seconds: float) -> str:
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            BEGIN,
            f"Last `bench/run.py{'' if mode == 'full' else ' --' + mode}` run: {today}, ipsms "
            f"`{commit()}`, {seconds:.0f} s. Machine: {machine()}; load average "
            f"{load[0]:.2f} at the start, {load[1]:.2f} at the end. Python "
            f"{platform.python_version()}, aiohttp {version('aiohttp')}, uvloop "
            f"{version('uvloop')}, SQLite {sqlite3.sqlite_version}. Each ratio is ipsms over its "
            "baseline measured in the same run (the median of per-round ratios where there are "
            "rounds); loops are compared only in the moonshot rows.",
            "",
            table(rows),
            END,
        ]
    )


def rewrite(doc: Path, new: str) -> None:
    """Replace the marked section of ``doc`` (append it if there is none)."""
    text = doc.read_text() if doc.exists() else ""
    begin, end = text.find(BEGIN), text.find(END)
    if begin >= 0 and end > begin:
        text = text[:begin] + new + text[end + len(END) :]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + new + "\n"
    doc.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    how = ap.add_mutually_exclusive_group()
    how.add_argument("--quick", action="store_true", help="shorter runs (under 2 minutes)")
    how.add_argument(
        "--smoke",
        action="store_true",
        help="tiny runs that check the machinery; writes no file unless --doc",
    )
    ap.add_argument(
        "--doc",
        type=Path,
        help="the file whose figures section to rewrite (default BENCHMARKS.md; none with --smoke)",
    )
    ap.add_argument("--no-doc", action="store_true", help="print the table only")
    ap.add_argument("--only", nargs="+", choices=list(SCRIPTS), help="run only these")
    args = ap.parse_args()
    mode = "quick" if args.quick else "smoke" if args.smoke else "full"
    doc = None if args.no_doc else args.doc or (None if args.smoke else ROOT / "BENCHMARKS.md")

    started, load_start = time.monotonic(), os.getloadavg()[0]
    rows: list[Row] = []
    failed = []
    for name in args.only or list(SCRIPTS):
        missing = [tool for tool in NEEDS.get(name, ()) if shutil.which(tool) is None]
        if missing:
            rows.append(Row(name, f"skipped: {' '.join(missing)} not installed", "", "", "", ""))
            continue
        print(
            f"bench/run.py: {name} ({SCRIPTS[name]} {' '.join(ARGS[name][mode])})",
            file=sys.stderr,
            flush=True,
        )
        try:
            out, seconds = run_bench(name, mode)
            rows += PARSERS[name](out)
            print(f"bench/run.py: {name} took {seconds:.0f} s", file=sys.stderr, flush=True)
        except (subprocess.SubprocessError, ValueError, KeyError) as exc:
            failed.append(name)
            rows.append(Row(name, f"FAILED: {type(exc).__name__}", "", "", "", ""))
            print(f"bench/run.py: {name} failed: {exc}", file=sys.stderr, flush=True)
    seconds = time.monotonic() - started
    load = (load_start, os.getloadavg()[0])
    print(table(rows))
    print(f"\n{mode} run, {seconds:.0f} s; load average {load[0]:.2f} -> {load[1]:.2f}")
    if doc is not None:
        rewrite(doc, section(rows, mode, load, seconds))
        print(f"figures section of {doc} rewritten")
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
