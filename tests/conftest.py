"""Shared fixtures. Tests are hermetic: state in tmp_path, IPSMS_* variables scrubbed."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def ipsms_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own state home and no IPSMS_* settings from the outside."""
    for name in list(os.environ):
        if name.startswith("IPSMS_"):
            monkeypatch.delenv(name)
    home = tmp_path / "ipsms-home"
    monkeypatch.setenv("IPSMS_HOME", str(home))
    yield home


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for an ``ipsms`` subprocess: the test's env plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_ipsms(*args: str, input: str | bytes | None = None, timeout: float = 30,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ipsms ARGS`` as a real process and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "ipsms", *args],
        input=input.decode() if isinstance(input, bytes) else input,
        capture_output=True, text=True, timeout=timeout, env=env or cli_env(), cwd=ROOT,
    )
