"""`bench/run.py --smoke`: every benchmark starts, its output is understood, the table has its
shape and the marked section of the figures file is rewritten. One test per benchmark (run
with `--only`), so the suite spreads them over its workers. No timing is asserted: the
figures of a smoke run mean nothing."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, cli_env

BEGIN = "<!-- bench/run.py: figures begin (rewritten by each run; edit outside) -->"
END = "<!-- bench/run.py: figures end -->"
HEADER = ["benchmark", "measure", "baseline", "ipsms", "ratio", "target"]
BENCHMARKS = ["ingest", "load mode", "start-up", "latency", "live table", "inspector"]


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_every_benchmark_of_run_py_has_a_smoke_test() -> None:
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "bench"))
        del sys.modules[spec.name]
    assert list(module.SCRIPTS) == BENCHMARKS


@pytest.mark.timeout(300)
@pytest.mark.skipif(
    not all(map(shutil.which, ("wrk", "hey", "tmux"))),
    reason="the benchmarks need wrk, hey and tmux",
)
@pytest.mark.parametrize("bench", BENCHMARKS)
def test_smoke_run_prints_the_table_and_rewrites_only_the_marked_section(
    tmp_path: Path, bench: str
) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text(f"# Benchmarks\n\nkept above\n\n{BEGIN}\nold figures\n{END}\n\nkept below\n")
    result = subprocess.run(
        [sys.executable, "bench/run.py", "--smoke", "--only", bench, "--doc", str(doc)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=290,
        env=cli_env(PYTHONPATH=str(ROOT)),
    )
    assert result.returncode == 0, result.stderr[-3000:]

    lines = result.stdout.splitlines()
    assert cells(lines[0]) == HEADER
    rows = [cells(x) for x in lines[2:] if x.startswith("|")]
    assert rows and all(len(r) == len(HEADER) for r in rows)
    assert {r[0] for r in rows} <= {bench, "moonshot"}
    assert not [r for r in rows if r[1].startswith(("FAILED", "skipped"))]
    ratios = [r[4] for r in rows if r[4] not in ("equal", "DIFFERENT", "")]
    assert ratios and all(float(x) > 0 for x in ratios)  # every other ratio is a number
    if bench == "latency":
        p99 = [r[1] for r in rows if r[0] == "latency" and r[1].startswith("p99")]
        assert "p99 answer time at 500/s, asyncio" in p99
        # The floor of any listener that answers only once the message is on disk, measured.
        assert "p99, bare answering after fdatasync, asyncio" in p99

    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\nkept above\n\n" + BEGIN)
    assert text.endswith(END + "\n\nkept below\n")
    assert "old figures" not in text
    assert "load average" in text and "Python 3." in text and "aiohttp" in text
    assert "\n".join(lines[: len(rows) + 2]) in text  # the same table, in the file
