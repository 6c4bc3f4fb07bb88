"""The fast paths (`--help`, `--version`, bash Tab completion) import none of the heavy modules.

These paths must start about as fast as a minimal Typer app (bench/bench_startup.py measures
that); the way there is not importing the server, the store, the live view or ngrok until a
command runs. Each case runs the real CLI entry point in a fresh interpreter and reads
its sys.modules at exit; `-X importtime` in the same run names who imported what on failure.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, cli_env

HEAVY = ("aiohttp", "sqlite3", "rich.live", "pyngrok")

# Runs `ipsms ARGS` as the console script does (ipsms/__main__ calls ipsms.cli.app:main) and
# writes its exit code and every module it left in sys.modules to the file named in argv[1].
HARNESS = """
import runpy, sys
out, sys.argv = sys.argv[1], ["ipsms", *sys.argv[2:]]
code = 0
try:
    runpy.run_module("ipsms", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
sys.stdout.flush()
mods = sorted(sys.modules)
with open(out, "w") as f:
    f.write("\\n".join([str(code), *mods]))
"""


def bash_completion(words: str) -> dict[str, str]:
    """What completions/ipsms.bash sets when Tab is pressed after `words`."""
    return {
        "_IPSMS_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split(" ")) - 1),
    }


CASES = {
    "--help": (["--help"], {}, "listen"),
    "-h": (["-h"], {}, "simulate"),
    "--version": (["--version"], {}, "ipsms "),
    "complete 'ipsms '": ([], bash_completion("ipsms "), "messages"),
    "complete 'ipsms li'": ([], bash_completion("ipsms li"), "listen"),
    "complete 'ipsms messages '": ([], bash_completion("ipsms messages "), "list"),
}


def importer_chain(importtime: str, module: str) -> str:
    """`a <- b <- module`: who imported `module` first, from `-X importtime` output.

    importtime prints each module after the modules it imported, two spaces deeper, so a
    module's importer is the next line that is less deeply indented."""
    rows = []
    for line in importtime.splitlines():
        if line.startswith("import time:") and "cumulative" not in line:
            name = line.split("|")[2][1:].rstrip()
            rows.append((len(name) - len(name.lstrip()), name.strip()))
    start = next((i for i, (_, n) in enumerate(rows) if n == module), None)
    if start is None:
        return module
    chain, depth = [module], rows[start][0]
    for level, name in rows[start + 1 :]:
        if level < depth:
            chain.append(name)
            depth = level
    return " <- ".join(chain)


@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_path_imports_no_heavy_module(case: str, tmp_path: Path) -> None:
    args, extra_env, expected = CASES[case]
    out = tmp_path / "modules.txt"
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", HARNESS, str(out), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=cli_env(**extra_env),
    )
    code, *modules = out.read_text().splitlines()
    # It did its job (a crash before the imports would pass the check below for nothing).
    assert code == "0", proc.stderr[-2000:]
    assert expected in proc.stdout
    heavy = sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))
    tops = [h for h in HEAVY if h in heavy or any(m.startswith(h + ".") for m in heavy)]
    chains = "\n".join(
        importer_chain(proc.stderr, next(m for m in modules if m == h or m.startswith(h + ".")))
        for h in tops
    )
    if heavy:
        pytest.fail(f"`ipsms {case}` imported {tops}; first importers:\n{chains}")
