"""What the web inspector costs `ipsms listen`, and how soon a message reaches an open page.

    .venv/bin/python bench/bench_inspector.py [--rounds 3] [--duration 6] [--rate 100]

Ingest: two listeners side by side, one with `--no-inspect`, one serving the inspector with a
tab's live stream subscribed (an SSE client reading every event), take turns under wrk -c32
(as bench/bench_listen.py: the same Lua body, a different one first in each pass). Reported:
messages/s of each (median of rounds) and the ratio with/without, target at least 0.95.

Latency: at --rate messages/s, each message's time from its 200 at the poster to its event at
the subscribed stream (the commit, the inspector's poll of the store, the SSE write); p50 and
p99, target p99 under 250 ms. The page's own rendering is not in this figure.

First screen: over a store of --rows messages (100,000 by default), the time from opening
the page in Debian's Chromium (playwright, when installed) to its first row, median of 5
loads, and the page's JS heap after it; target under 1 s.

Needs `wrk` (Debian). Everything runs on 127.0.0.1 and is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_listen import WRK_LUA, kill, turn_order, wrk

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-inspector-token"


def start_listener(db: Path, *extra: str) -> tuple[subprocess.Popen[str], str, str | None]:
    """A listener: its URL and, if it serves one, the inspector's base URL (read from its
    first NDJSON lines; the rest is drained)."""
    env = {**os.environ, "IPSMS_INSPECT_TOKEN": TOKEN}
    env.pop("IPSMS_INSPECT", None)
    proc = subprocess.Popen(
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
            "bench-secret",
            "--db",
            str(db),
            "--inspect",
            "127.0.0.1:0",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert proc.stdout is not None
    listening = json.loads(proc.stdout.readline())
    inspector = None
    if "--no-inspect" not in extra:
        line = json.loads(proc.stdout.readline())
        inspector = line["url"].split("/?")[0]
    # the rest of stdout is drained so the listener never blocks on it
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    return proc, listening["url"], inspector


class Subscriber(threading.Thread):
    """A tab's live stream: reads every event and notes when each refid's arrived."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.seen: dict[str, float] = {}
        self.count = 0
        self.ready = threading.Event()

    def run(self) -> None:
        request = urllib.request.Request(
            self.base + "/api/events", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=3600) as stream:
            self.ready.set()
            for raw in stream:
                line = raw.decode()
                if line.startswith("data: "):
                    now = time.monotonic()
                    item = json.loads(line[6:])
                    self.count += 1
                    if item.get("refid"):
                        self.seen.setdefault(item["refid"], now)


def ingest(args: argparse.Namespace, tmp: Path, script: Path) -> dict[str, object]:
    rates: dict[str, list[float]] = {"no-inspect": [], "inspector+tab": []}
    ratios: list[float] = []
    for r in range(args.rounds):
        plain, plain_url, _ = start_listener(tmp / f"plain{r}.sqlite3", "--no-inspect")
        shown, shown_url, base = start_listener(tmp / f"shown{r}.sqlite3")
        assert base is not None
        tab = Subscriber(base)
        tab.start()
        tab.ready.wait(10)
        urls = {"no-inspect": plain_url + "sms", "inspector+tab": shown_url + "sms"}
        got: dict[str, float] = {}
        try:
            for name in turn_order(list(urls), r):
                got[name] = wrk(urls[name], args.duration, 32, script)
        finally:
            kill(plain)
            kill(shown)
        for name, rate in got.items():
            rates[name].append(rate)
        ratios.append(got["inspector+tab"] / got["no-inspect"])
        print(
            f"round {r + 1}: no-inspect {got['no-inspect']:.0f}/s, inspector with a tab "
            f"{got['inspector+tab']:.0f}/s ({ratios[-1]:.3f}); the tab saw {tab.count} events",
            flush=True,
        )
    return {
        "no_inspect": statistics.median(rates["no-inspect"]),
        "inspector_tab": statistics.median(rates["inspector+tab"]),
        "ratio_median": statistics.median(ratios),
        "ratios": ratios,
        "target": 0.95,
    }


async def post_at_rate(url: str, rate: float, count: int) -> dict[str, float]:
    import aiohttp

    done: dict[str, float] = {}
    async with aiohttp.ClientSession() as session:

        async def one(i: int) -> None:
            refid = f"L{i:031d}"
            body = json.dumps(
                {
                    "refid": refid,
                    "from": "+13035550100",
                    "to": "+13038675309",
                    "message": f"latency {i}",
                    "signature": "bench-secret",
                }
            )
            async with session.post(
                url, data=body, headers={"Content-Type": "application/json"}
            ) as answer:
                await answer.read()
                if answer.status == 200:
                    done[refid] = time.monotonic()

        tasks = []
        start = time.monotonic()
        for i in range(count):
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            tasks.append(asyncio.ensure_future(one(i)))
        await asyncio.gather(*tasks)
    return done


def latency(args: argparse.Namespace, tmp: Path) -> dict[str, object]:
    proc, url, base = start_listener(tmp / "latency.sqlite3")
    assert base is not None
    tab = Subscriber(base)
    tab.start()
    tab.ready.wait(10)
    try:
        count = int(args.rate * args.latency_seconds)
        done = asyncio.run(post_at_rate(url + "sms", args.rate, count))
        deadline = time.monotonic() + 5
        while len(tab.seen) < len(done) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        kill(proc)
    lags = sorted((tab.seen[r] - t) * 1000 for r, t in done.items() if r in tab.seen)
    missing = len(done) - len(lags)
    p50 = statistics.median(lags)
    p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
    print(
        f"latency at {args.rate:g}/s: {len(lags)} messages, p50 {p50:.1f} ms, p99 {p99:.1f} "
        f"ms (target under 250), {missing} not seen",
        flush=True,
    )
    return {
        "rate": args.rate,
        "messages": len(lags),
        "p50_ms": p50,
        "p99_ms": p99,
        "not_seen": missing,
        "target_p99_ms": 250,
    }


def first_screen(rows: int, tmp: Path) -> dict[str, object] | None:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        print("first screen: playwright is not installed; skipped", flush=True)
        return None
    if not Path("/usr/bin/chromium").exists():
        print("first screen: /usr/bin/chromium is missing; skipped", flush=True)
        return None
    from bench_filters import build

    from ipsms.inspect.app import create_inspector, serve

    db = tmp / "screen.sqlite3"
    build(db, rows)

    async def measure() -> tuple[list[float], float]:
        runner, bound = await serve(create_inspector(db, TOKEN), "127.0.0.1", 0, fall_back=False)
        try:
            async with async_playwright() as p:
                browser = await p.chromium.launch(
                    executable_path="/usr/bin/chromium",
                    args=[
                        "--headless",
                        "--no-sandbox",
                        "--disable-gpu",
                        "--disable-background-networking",
                        "--disable-component-update",
                        "--disable-sync",
                        "--no-first-run",
                    ],
                )
                times, heap = [], 0.0
                for _ in range(5):
                    page = await browser.new_page()
                    started = time.monotonic()
                    await page.goto(bound.url(TOKEN))
                    await page.locator("#groups > li.group").first.wait_for()
                    times.append(time.monotonic() - started)
                    heap = await page.evaluate(
                        "performance.memory ? performance.memory.usedJSHeapSize : 0"
                    )
                    await page.close()
                await browser.close()
                return times, heap
        finally:
            await runner.cleanup()

    times, heap = asyncio.run(measure())
    median = statistics.median(times)
    print(
        f"first screen over {rows} messages: {median * 1000:.0f} ms (median of 5; target "
        f"under 1000), JS heap {heap / 1e6:.1f} MB",
        flush=True,
    )
    return {"rows": rows, "median_ms": median * 1000, "heap_mb": heap / 1e6, "target_ms": 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=6, help="wrk seconds per server, round")
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--rows", type=int, default=100_000, help="messages for the first screen")
    parser.add_argument("--json", action="store_true", help="one JSON object at the end")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        script = tmp / "post.lua"
        script.write_text(WRK_LUA)
        result = {
            "ingest": ingest(args, tmp, script),
            "latency": latency(args, tmp),
            "first_screen": first_screen(args.rows, tmp),
        }
    ing = result["ingest"]
    print(
        f"ingest with a tab subscribed: {ing['ratio_median']:.3f} of --no-inspect "  # type: ignore[index]
        "(target at least 0.95)"
    )
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
