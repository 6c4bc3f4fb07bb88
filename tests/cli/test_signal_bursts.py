"""A key held down: thirty Ctrl-Cs 2 ms apart end a command once, with its own exit code and
its last words, never a death by the signal (exit -2) nor a traceback (`simulate` is hit while
it starts its worker processes). Real processes: signals."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, cli_env


def descendants(pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:  # it has just ended
        return []
    found = []
    for child in children:
        found += [int(child), *descendants(int(child))]
    return found


def burst(args: list[str], home: Path, ready: str) -> tuple[int, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ipsms", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=cli_env(IPSMS_HOME=str(home)),
    )
    try:
        assert proc.stderr is not None
        said = ""
        if ready:
            while ready not in said:  # it is running: what it says once it has started
                line = proc.stderr.readline()
                assert line, said
                said += line
        else:  # it is starting its worker processes: its first child is there
            deadline = time.monotonic() + 20
            while not descendants(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.005)
        for _ in range(30):
            proc.send_signal(signal.SIGINT)
            time.sleep(0.002)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
        proc.communicate()
    return proc.returncode, said + err


@pytest.mark.parametrize(
    ("args", "ready", "code", "last"),
    [
        (["messages", "tail", "-f", "--db", "{tmp}/s.sqlite3"], "waiting for", 0, None),
        (
            ["simulate", "http://127.0.0.1:9/", "--count", "1000", "--rate", "10"],
            "",
            130,
            "ipsms: interrupted",
        ),
    ],
    ids=["messages tail -f", "simulate"],
)
def test_a_burst_of_ctrl_c_ends_a_command_once(
    tmp_path: Path, args: list[str], ready: str, code: int, last: str | None
) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    returncode, err = burst(args, tmp_path / "home", ready)
    assert returncode == code, err
    assert "Traceback" not in err, err
    if last is not None:
        assert err.rstrip().endswith(last), err
