"""What ipsms creates on disk is private whatever the umask: every directory it makes is 0700
(the parents of a deep --db, IPSMS_HOME or IPSMS_CONFIG too), every file 0600."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.conftest import ROOT, cli_env
from tests.hostile import VALID


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes(top: Path) -> dict[str, int]:
    """The mode of ``top`` and of everything under it, by path relative to ``top``'s parent."""
    found = {top.name: mode(top)}
    for path in top.rglob("*"):
        found[str(path.relative_to(top.parent))] = mode(path)
    return found


def no_umask() -> None:
    os.umask(0)


def test_a_deep_db_and_state_home_are_private_under_umask_000(tmp_path: Path) -> None:
    env = cli_env(IPSMS_HOME=str(tmp_path / "home" / "deep" / "ipsms"))
    db = tmp_path / "a" / "b" / "c.sqlite3"
    running: dict[str, int] = {}
    for target in (["--db", str(db)], []):  # a --db of its own, then the state home's
        listener = subprocess.Popen(
            [sys.executable, "-m", "ipsms", "listen", "--port", "0", "--format", "json", *target],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
            preexec_fn=no_umask,
        )
        try:
            assert listener.stdout is not None
            url = json.loads(listener.stdout.readline())["url"]
            request = urllib.request.Request(
                url,
                data=json.dumps(VALID).encode(),
                method="POST",
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10) as answer:
                assert answer.status == 200
            # Look while it runs: the -wal and -shm files are there.
            for top in (tmp_path / "a", tmp_path / "home"):
                running.update(modes(top) if top.exists() else {})
        finally:
            listener.send_signal(signal.SIGINT)
            listener.communicate(timeout=15)
        assert listener.returncode == 0
    dirs = {
        name: m for name, m in running.items() if not name.endswith(("sqlite3", "-wal", "-shm"))
    }
    files = {name: m for name, m in running.items() if name not in dirs}
    assert set(dirs) == {"a", "a/b", "home", "home/deep", "home/deep/ipsms"}
    assert set(dirs.values()) == {0o700}, dirs
    assert "a/b/c.sqlite3-wal" in files and "home/deep/ipsms/ipsms.sqlite3" in files
    assert set(files.values()) == {0o600}, files


def test_a_deep_settings_file_is_private_under_umask_000(tmp_path: Path) -> None:
    config = tmp_path / "x" / "y" / "config.toml"
    result = subprocess.run(
        [sys.executable, "-m", "ipsms", "config", "set", "secret", "s3cret"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        preexec_fn=no_umask,
        env=cli_env(IPSMS_CONFIG=str(config), IPSMS_HOME=str(tmp_path / "home")),
    )
    assert result.returncode == 0, result.stderr
    assert modes(tmp_path / "x") == {"x": 0o700, "x/y": 0o700, "x/y/config.toml": 0o600}
