"""Shared fixtures. Tests are hermetic: state in tmp_path, IPSMS_* variables scrubbed."""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import os
import subprocess
import sys
from collections.abc import Iterator
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
