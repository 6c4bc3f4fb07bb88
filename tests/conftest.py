"""Shared fixtures. Tests are hermetic: state in tmp_path, IPSMS_* variables scrubbed."""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import os
import subprocess
import sys
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# With PYTHONDONTWRITEBYTECODE set (it keeps __pycache__ out of the working tree), each of the
# hundreds of processes a run starts (xdist's workers, `python -m ipsms`, the store's writers)
# compiled every module it imports again: about a sixth of the suite's CPU time. The bytecode
# is cached under .pytest_cache instead, out of the tree all the same. The variables reach
# every process the tests start (xdist's workers start after this file is read).
if sys.dont_write_bytecode and not sys.pycache_prefix:
    sys.pycache_prefix = str(ROOT / ".pytest_cache" / "pycache")
    sys.dont_write_bytecode = False
    os.environ["PYTHONPYCACHEPREFIX"] = sys.pycache_prefix
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


@pytest.fixture(autouse=True)
def ipsms_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own state home and no IPSMS_* settings from the outside."""
    for name in list(os.environ):
        if name.startswith("IPSMS_"):
            monkeypatch.delenv(name)
    home = tmp_path / "ipsms-home"
    monkeypatch.setenv("IPSMS_HOME", str(home))
    # Listeners in tests serve no inspector unless a test asks for one (tests/inspect/).
    monkeypatch.setenv("IPSMS_INSPECT", "off")
    yield home


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for an ``ipsms`` subprocess: the test's env plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_ipsms(
    *args: str,
    input: str | bytes | None = None,
    timeout: float = 30,
    env: dict[str, str] | None = None,
    tty: bool = False,
    columns: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``ipsms ARGS`` in this process, through an ``Environment`` whose streams are
    in-memory UTF-8 (strict, like a real stdout) and whose variables are ``env`` (default:
    this test's). ``tty`` makes stdin, stdout and stderr terminals. Returns what a
    subprocess would: the exit code and the decoded output. (``timeout`` is pytest-timeout's
    job in-process; kept so a test reads the same either way.)"""
    from ipsms.cli.app import run
    from ipsms.cli.io import Environment

    data = input.encode("utf-8", "surrogateescape") if isinstance(input, str) else input or b""
    out, err = io.BytesIO(), io.BytesIO()
    environment = Environment(
        stdin=io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"),
        stdout=io.TextIOWrapper(out, encoding="utf-8", write_through=True),
        stderr=io.TextIOWrapper(err, encoding="utf-8", write_through=True),
        stdin_isatty=tty,
        stdout_isatty=tty,
        stderr_isatty=tty,
        variables=env or cli_env(),
        columns=columns,
    )
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # the usual case: a plain test
        code = run(args, environment)
    else:  # an async test: the command's own event loop needs a thread of its own
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            code = pool.submit(run, args, environment).result()
    return subprocess.CompletedProcess(
        ["ipsms", *args],
        code,
        out.getvalue().decode("utf-8", "replace"),
        err.getvalue().decode("utf-8", "replace"),
    )


def run_process(
    *args: str,
    input: str | bytes | None = None,
    timeout: float = 30,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ipsms ARGS`` as a real process (for what needs one: signals, pipes,
    the entry point) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "ipsms", *args],
        input=input.decode() if isinstance(input, bytes) else input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or cli_env(),
        cwd=ROOT,
    )


# -- the order of a parallel run ----------------------------------------------------------------
# xdist (`-n auto --dist loadfile --no-loadscope-reorder`, pyproject.toml) hands tests to its
# workers in the order of this collection, a whole file at a time (a file's tests may share a
# module fixture, a browser or a process, and count on running in order), except the files in
# SPLIT: their tests are independent of each other and go one at a time, to whichever worker is
# free. The longest files go first, so that none is left to the end to keep one worker busy
# after the others have finished; every other file keeps its place after them.
LONGEST_FIRST = (
    "tests/test_bench_run.py",  # every benchmark, for real, in --smoke mode
    "tests/listen/test_listen_tunnel.py",
    "tests/inspect/test_page.py",
    "tests/ui/test_live_tmux.py",
    "tests/cli/test_help_and_pipes.py",
    "tests/test_hostile_corpus.py",
    "tests/inspect/test_page_actions.py",
    "tests/test_text_safety.py",
    "tests/cli/test_listen_cli.py",
    "tests/listen/test_listen_webhook.py",
    "tests/listen/test_listener.py",
    "tests/store/test_store_integrity.py",
    "tests/listen/test_listener_limits.py",
)
SPLIT = frozenset(
    {"tests/test_bench_run.py", "tests/listen/test_listen_tunnel.py", "tests/ui/test_live_tmux.py"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """``--dist loadfile``, but for the files in SPLIT; any other --dist is xdist's own."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class Scheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = super()._split_scope(nodeid)
            return nodeid if path in SPLIT else path

    return Scheduling(config, log)


@pytest.hookimpl(wrapper=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> Generator[None, int, int]:
    """`-n auto`: a worker per core, as xdist counts them, and one more. Much of the suite's
    time is spent waiting (on the timeouts it tests, a terminal redrawing, processes starting),
    which another worker fills. PYTEST_XDIST_AUTO_NUM_WORKERS is taken as it is."""
    count = yield
    return count if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS") else count + 1
