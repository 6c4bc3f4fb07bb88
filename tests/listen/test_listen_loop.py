"""`ipsms listen --loop`: the listener serves and records on each event loop it can use, and
`--loop uvloop` without uvloop is a usage error that names the install command."""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, cli_env
from tests.hostile import SECRET
from tests.procs import ListenerProcess, post_valid_messages

HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None
LOOPS = [
    "asyncio",
    pytest.param(
        "uvloop",
        marks=pytest.mark.skipif(
            not HAVE_UVLOOP, reason="uvloop is not installed (pip install 'ipsms[fast]')"
        ),
    ),
]


@pytest.mark.parametrize("loop", LOOPS)
def test_listen_serves_and_records_on_each_loop(loop: str, tmp_path: Path) -> None:
    db = tmp_path / "m.sqlite3"
    listener = ListenerProcess("--loop", loop, "--secret", SECRET, db=db)
    try:
        assert listener.ready["loop"] == loop
        assert post_valid_messages(listener.url, 50) == [200] * 50
        code, out, _ = listener.stop()
    finally:
        listener.kill()
    assert code == 0
    requests = [json.loads(x) for x in out.splitlines() if json.loads(x)["type"] == "request"]
    assert len(requests) == 50
    stored = (
        sqlite3.connect(db)
        .execute("SELECT COUNT(*) FROM requests WHERE status = 200")
        .fetchone()[0]
    )
    assert stored == 50


def test_auto_takes_uvloop_when_installed(tmp_path: Path) -> None:
    listener = ListenerProcess(db=tmp_path / "m.sqlite3")  # --loop auto is the default
    try:
        assert listener.ready["loop"] == ("uvloop" if HAVE_UVLOOP else "asyncio")
    finally:
        listener.kill()


def _without_uvloop(tmp_path: Path) -> dict[str, str]:
    """An environment in which `import uvloop` fails, as it does when it is not installed."""
    shadow = tmp_path / "shadow" / "uvloop"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'uvloop'\")\n")
    path = os.pathsep.join(
        filter(None, [str(shadow.parent), str(ROOT), os.environ.get("PYTHONPATH")])
    )
    return cli_env(PYTHONPATH=path)


def test_loop_uvloop_without_uvloop_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ipsms",
            "listen",
            "--port",
            "0",
            "--format",
            "json",
            "--loop",
            "uvloop",
            "--db",
            str(tmp_path / "m.sqlite3"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_without_uvloop(tmp_path),
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stdout == ""  # nothing was bound, no listening line
    assert "--loop uvloop needs uvloop" in result.stderr
    assert "pip install 'ipsms[fast]'" in result.stderr
    assert not (tmp_path / "m.sqlite3").exists()


def test_auto_without_uvloop_runs_on_asyncio(tmp_path: Path) -> None:
    listener = ListenerProcess(db=tmp_path / "m.sqlite3", env=_without_uvloop(tmp_path))
    try:
        assert listener.ready["loop"] == "asyncio"
    finally:
        listener.kill()
