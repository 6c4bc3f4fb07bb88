"""Start-up time of `ipsms` against a minimal two-command Typer app, side by side, same run.

    .venv/bin/python bench/bench_startup.py [--pairs 15] [--launcher module|script]
    .venv/bin/python bench/bench_startup.py --rev REV        # also ipsms as of git REV
    .venv/bin/python bench/bench_startup.py --only fast      # or: --only commands

Fast paths (target: ipsms at most 1.25x the baseline): `--help`, `--version`, and bash Tab
completion of `ipsms ` and of `ipsms messages ` (`_IPSMS_COMPLETE=complete_bash`, COMP_WORDS,
COMP_CWORD, as the shipped completions/ipsms.bash sets them). The baseline is a Typer app with
two commands and an eager `--version` option, written to a temp dir; it gets the same
arguments and completion variables under its own name (`mini`). Each figure is the wall time of
the whole process, spawn to exit, output read through pipes.

Command start-up: `ipsms listen --port 0 --format json --db TMP` until its first NDJSON line
("listening") is read, and `ipsms simulate URL --format json` until its first request reaches
a small HTTP server run by this bench. Their baselines are a bare aiohttp server that binds
127.0.0.1:0 and prints one line, and a bare aiohttp client that posts one message: the floor
of Python + aiohttp doing the same job, so the ratio is what ipsms adds.

Launcher: `--launcher module` (default) runs `python -m ipsms` and `python -m mini`;
`--launcher script` runs a console script of the same form pip writes (shebang to this
Python, `from X import main; sys.exit(main())`) for both. ipsms is imported from this checkout
(PYTHONPATH), never from wherever the venv's editable install points. In every pair the side
that goes first alternates, so noise hits both. One warm-up run per side writes bytecode
caches first. Reports medians of the pairs, the ratio of the medians (the figure judged
against 1.25x), and the median of the per-pair ratios; with --imports, which of aiohttp,
sqlite3, rich.live and pyngrok each fast path imports (one extra run with -X importtime).
Loopback only, every child bounded by a timeout.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import queue
import resource
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 1.25
TIMEOUT = 60  # seconds: a bound on every child process
HEAVY = ("aiohttp", "sqlite3", "rich.live", "pyngrok")  # never imported on the fast paths

BASELINE_APP = '''\
"""A minimal two-command Typer app: the start-up baseline for ipsms."""
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True)


def _version(value: bool) -> None:
    if value:
        typer.echo("mini 1.0")
        raise typer.Exit()


@app.callback()
def root(version: Annotated[bool, typer.Option("--version", callback=_version,
                                               is_eager=True)] = False) -> None:
    """A minimal app."""


@app.command()
def hello(name: str = "world") -> None:
    """Say hello."""
    typer.echo(f"hello {name}")


@app.command()
def bye() -> None:
    """Say goodbye."""
    typer.echo("bye")


def main() -> None:
    app(prog_name="mini")


if __name__ == "__main__":
    main()
'''
# `python -m mini` needs a __main__; the app lives in mini/app.py like ipsms/cli/app.py.
BASELINE_MAIN = "from mini.app import main\n\nmain()\n"
# The form of the console script pip writes for `ipsms = ipsms.cli.app:main`.
CONSOLE_SCRIPT = """#!{python}
# -*- coding: utf-8 -*-
import re
import sys
from {module} import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
"""

BARE_SERVER = """\
import asyncio, json, signal, sys
from aiohttp import web

async def main():
    runner = web.AppRunner(web.Application(), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(json.dumps({"type": "listening", "port": port}), flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    await runner.cleanup()

asyncio.run(main())
"""
BARE_CLIENT = """\
import asyncio, sys
import aiohttp

async def main():
    async with aiohttp.ClientSession() as s:
        body = {"refid": "B" * 32, "from": "+13035550100", "to": "+13038675309",
                "message": "Hello World!"}
        async with s.post(sys.argv[1], json=body) as resp:
            await resp.read()

asyncio.run(main())
"""


# -- the sides --------------------------------------------------------------------------------


@dataclass
class Side:
    """One program under test: how to launch it and where its code comes from."""

    name: str  # "baseline", "ipsms", "ipsms@REV"
    prog: str  # the name it completes under: mini or ipsms
    launch: list[str]  # argv prefix
    pythonpath: str
    times: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)  # fast paths only

    def env(self, home: Path, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("IPSMS_", "_IPSMS_", "_MINI_", "PYTHON", "COMP_"))
        }
        env.update(PYTHONPATH=self.pythonpath, IPSMS_HOME=str(home), **extra)
        return env


def make_sides(tmp: Path, launcher: str, rev: str | None) -> list[Side]:
    trees = {"ipsms": ROOT}
    if rev:
        # git archive, not git worktree: leaves nothing behind in the repository if interrupted.
        archive = subprocess.run(
            ["git", "archive", "--format=tar", rev, "ipsms"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
        trees[f"ipsms@{rev}"] = tmp / "rev"
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(tmp / "rev", filter="data")
    base = tmp / "baseline"
    (base / "mini").mkdir(parents=True)
    (base / "mini" / "__init__.py").write_text("")
    (base / "mini" / "app.py").write_text(BASELINE_APP)
    (base / "mini" / "__main__.py").write_text(BASELINE_MAIN)

    def launch(prog: str, module: str, package: str) -> list[str]:
        if launcher == "module":
            return [sys.executable, "-m", package]
        script = tmp / "bin" / prog
        script.parent.mkdir(exist_ok=True)
        script.write_text(CONSOLE_SCRIPT.format(python=sys.executable, module=module))
        script.chmod(0o755)
        return [str(script)]

    sides = [Side("baseline", "mini", launch("mini", "mini.app", "mini"), str(base))]
    for name, tree in trees.items():
        side = Side(name, "ipsms", launch("ipsms", "ipsms.cli.app", "ipsms"), str(tree))
        # The venv's editable install must not win over PYTHONPATH: check where ipsms comes from.
        where = subprocess.run(
            [sys.executable, "-c", "import ipsms; print(ipsms.__file__)"],
            capture_output=True,
            text=True,
            check=True,
            cwd=tmp,
            env=side.env(tmp),
        ).stdout.strip()
        if not Path(where).is_relative_to(tree):
            raise SystemExit(f"{name}: ipsms is imported from {where}, not from {tree}")
        sides.append(side)
    return sides


# -- the fast paths ---------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    args: list[str]
    comp_words: str | None  # bash completion: COMP_WORDS after the program name
    expect: dict[str, str]  # prog -> a string its stdout must contain ("" = anything)

    def env_extra(self, prog: str) -> dict[str, str]:
        if self.comp_words is None:
            return {}
        words = f"{prog} {self.comp_words}"
        return {
            f"_{prog.upper()}_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split(" ")) - 1),
        }


FAST_CASES = [
    Case("--help", ["--help"], None, {"ipsms": "listen", "mini": "hello"}),
    Case("--version", ["--version"], None, {"ipsms": "ipsms ", "mini": "mini "}),
    Case("complete 'ipsms '", [], "", {"ipsms": "messages", "mini": "hello"}),
    # The baseline's nearest equivalent: completing after one of its commands (nothing to offer).
    Case("complete 'ipsms messages '", [], "messages ", {"ipsms": "list", "mini": ""}),
]


def run_fast(side: Side, case: Case, home: Path, cwd: Path) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run."""
    words = case.comp_words
    if words is not None and side.prog == "mini" and words:
        words = "hello "
    case = Case(case.name, case.args, words, case.expect)
    cmd = [*side.launch, *case.args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=cwd,
        env=side.env(home, **case.env_extra(side.prog)),
    )
    elapsed = time.perf_counter() - start
    # Children run one at a time, so the growth of RUSAGE_CHILDREN is this child's CPU.
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # A broken program can be fast: check that it did its job.
    if proc.returncode != 0 or case.expect[side.prog] not in proc.stdout:
        raise SystemExit(
            f"{side.name} {case.name}: exit {proc.returncode}, stdout "
            f"{proc.stdout[:300]!r}, stderr {proc.stderr[-1000:]!r}"
        )
    return elapsed, cpu


def heavy_imports(side: Side, case: Case, home: Path, cwd: Path) -> dict[str, object]:
    """Which HEAVY modules the path imports, and the slowest top-level imports."""
    words = "hello " if case.comp_words and side.prog == "mini" else case.comp_words
    case = Case(case.name, case.args, words, case.expect)
    # -X importtime needs `python`, so run the module form whatever the launcher.
    package = "mini" if side.prog == "mini" else "ipsms"
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", package, *case.args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=cwd,
        env=side.env(home, **case.env_extra(side.prog)),
    )
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        # "import time: SELF | CUMULATIVE | " then two spaces per level of nesting, then name
        _self, cumulative, name = line[len("import time:") :].split("|")
        rows.append((name[1:].rstrip(), int(cumulative)))
    names = {name.strip() for name, _ in rows}
    top = sorted(((n, us) for n, us in rows if not n.startswith(" ")), key=lambda r: -r[1])[:5]
    return {
        "modules": len(names),
        "heavy": [h for h in HEAVY if any(n == h or n.startswith(h + ".") for n in names)],
        "slowest_top_level_ms": {n: round(us / 1000, 1) for n, us in top},
    }


# -- command start-up -------------------------------------------------------------------------


class RequestClock:
    """A tiny HTTP server in a thread: notes when each request's headers have arrived."""

    def __init__(self) -> None:
        arrivals: queue.Queue[tuple[str, float]] = queue.Queue()
        self.arrivals = arrivals

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                arrivals.put((self.path, time.perf_counter()))
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, path: str) -> float:
        while True:
            got, at = self.arrivals.get(timeout=TIMEOUT)
            if got == path:
                return at


def time_listen(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd, env=env
    )
    killer = threading.Timer(TIMEOUT, proc.kill)
    killer.start()
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        elapsed = time.perf_counter() - start
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        killer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    try:
        ready = json.loads(first)
    except ValueError:
        ready = {}
    if ready.get("type") != "listening" or not ready.get("port"):
        raise SystemExit(f"{cmd}: no 'listening' line: {first!r}, stderr {err[-1000:]!r}")
    return elapsed


def time_first_request(
    cmd: list[str], env: dict[str, str], cwd: Path, clock: RequestClock, path: str
) -> float:
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd, env=env
    )
    try:
        arrived = clock.wait(path)
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{cmd}: exit {proc.returncode}, stderr {err[-1000:]!r}")
    return arrived - start


# -- the driver -------------------------------------------------------------------------------


def summarize(base: list[float], other: list[float], target: float | None) -> dict[str, object]:
    b, o = statistics.median(base), statistics.median(other)
    out: dict[str, object] = {
        "baseline_median_s": round(b, 4),
        "median_s": round(o, 4),
        "ratio": round(o / b, 3),
        "median_of_pair_ratios": round(
            statistics.median([x / y for x, y in zip(other, base, strict=True)]), 3
        ),
    }
    if target is not None:
        out["pass"] = o / b <= target
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=15, help="runs of each side per case")
    ap.add_argument(
        "--launcher",
        choices=("module", "script"),
        default="module",
        help="python -m PACKAGE (default) or a pip-style console script, both sides",
    )
    ap.add_argument(
        "--rev", metavar="REV", help="also measure ipsms as of this git revision, in the same pairs"
    )
    ap.add_argument(
        "--only",
        choices=("fast", "commands"),
        help="only the fast paths or only the command start-ups",
    )
    ap.add_argument(
        "--imports",
        action="store_true",
        help="also report which heavy modules each fast path imports",
    )
    ap.add_argument(
        "--check",
        action="store_true",
        help=f"exit 1 if a fast path of the current tree is over {TARGET}x",
    )
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="ipsms-startup-"))
    home = tmp / "home"
    home.mkdir()
    cwd = tmp  # neutral: neither side's code is in the working directory
    sides = make_sides(tmp, args.launcher, args.rev)
    clock = RequestClock()
    url = f"http://127.0.0.1:{clock.port}"

    # Every measurement: a name and a function (side, pair) -> wall seconds (, CPU seconds).
    Measure = Callable[[Side, int], float | tuple[float, float]]
    measures: dict[str, Measure] = {}
    if args.only != "commands":
        for case in FAST_CASES:
            measures[case.name] = (lambda c: lambda s, _i: run_fast(s, c, home, cwd))(case)
    if args.only != "fast":

        def listen(side: Side, i: int) -> float:
            if side.prog == "mini":
                cmd = [sys.executable, "-c", BARE_SERVER]
            else:
                cmd = [
                    *side.launch,
                    "listen",
                    "--port",
                    "0",
                    "--format",
                    "json",
                    "--db",
                    str(tmp / f"{side.name}.sqlite3"),
                ]
            return time_listen(cmd, side.env(home), cwd)

        def simulate(side: Side, i: int) -> float:
            path = f"/{side.name}/{i}"
            if side.prog == "mini":
                cmd = [sys.executable, "-c", BARE_CLIENT, url + path]
            else:
                cmd = [*side.launch, "simulate", url + path, "--format", "json"]
            return time_first_request(cmd, side.env(home), cwd, clock, path)

        measures["listen: spawn to 'listening' line"] = listen
        measures["simulate: spawn to first request"] = simulate

    for name, measure in measures.items():  # warm-up: bytecode caches, the listen db
        for side in sides:
            measure(side, -1)
            side.times[name], side.cpu[name] = [], []
    for i in range(args.pairs):
        # The side that goes first rotates, so neither always runs on a cooler machine.
        order = sides[i % len(sides) :] + sides[: i % len(sides)]
        for name, measure in measures.items():
            for side in order:
                got = measure(side, i)
                wall, cpu = got if isinstance(got, tuple) else (got, None)
                side.times[name].append(wall)
                if cpu is not None:
                    side.cpu[name].append(cpu)
        print(
            f"pair {i + 1}/{args.pairs}: "
            + ", ".join(
                f"{name} " + "/".join(f"{s.times[name][-1]:.3f}" for s in sides)
                for name in measures
            ),
            file=sys.stderr,
        )

    base = sides[0]
    fast = {c.name for c in FAST_CASES}
    result: dict[str, object] = {
        "python": sys.version.split()[0],
        "launcher": args.launcher,
        "pairs": args.pairs,
        "target_ratio": TARGET,
        "sides": [s.name for s in sides],
        "baseline_note": "fast paths: a two-command Typer app; listen: a bare aiohttp server "
        "bound to 127.0.0.1:0; simulate: a bare aiohttp client posting once",
    }
    cases: dict[str, dict[str, object]] = {}
    for name in measures:
        cases[name] = {
            s.name: summarize(base.times[name], s.times[name], TARGET if name in fast else None)
            for s in sides[1:]
        }
        if base.cpu[name]:  # CPU time: less sensitive than wall time to a busy machine
            cases[name]["cpu"] = {
                s.name: summarize(base.cpu[name], s.cpu[name], None) for s in sides[1:]
            }
        if args.imports and name in fast:
            case = next(c for c in FAST_CASES if c.name == name)
            cases[name]["imports"] = {s.name: heavy_imports(s, case, home, cwd) for s in sides}
    result["cases"] = cases

    # The table, for people; the JSON on stdout, for the record.
    print(
        f"\n{'case':36} {'side':14} {'baseline':>9} {'ipsms':>9} {'ratio':>6} "
        f"{'pair-ratio':>10}  verdict",
        file=sys.stderr,
    )
    for name, per_side in cases.items():
        rows = [(n, s) for n, s in per_side.items() if n not in ("imports", "cpu")]
        rows += [(f"{n} (CPU)", s) for n, s in per_side.get("cpu", {}).items()]
        for side_name, s in rows:
            verdict = "" if "pass" not in s else ("PASS" if s["pass"] else f"FAIL (>{TARGET}x)")
            print(
                f"{name:36} {side_name:14} {s['baseline_median_s']:9.3f} {s['median_s']:9.3f} "
                f"{s['ratio']:6.2f} {s['median_of_pair_ratios']:10.2f}  {verdict}",
                file=sys.stderr,
            )
    print(json.dumps(result, indent=2))
    clock.server.shutdown()
    subprocess.run(["rm", "-rf", str(tmp)], check=False)
    failed = [n for n, per_side in cases.items() if per_side["ipsms"].get("pass") is False]
    if args.check and failed:
        raise SystemExit(f"over {TARGET}x: {', '.join(failed)}")


if __name__ == "__main__":
    main()
