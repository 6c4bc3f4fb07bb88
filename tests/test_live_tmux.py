"""The live table on a real terminal, driven through tmux."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def wait_for(session: str, pattern: str, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = tmux("capture-pane", "-p", "-t", session)
        if re.search(pattern, screen):
            return screen
        time.sleep(0.1)
    raise AssertionError(f"{pattern!r} never appeared on screen:\n{screen}")


@pytest.fixture
def session(tmp_path: Path, ipsms_home: Path) -> Iterator[str]:
    name = f"ipsms-test-{tmp_path.name}"
    cmd = (f"cd {shlex.quote(str(ROOT))} && unset COLUMNS LINES && "
           f"IPSMS_HOME={shlex.quote(str(ipsms_home))} "
           f"{shlex.quote(sys.executable)} -m ipsms listen --port 0 --secret 'SECRET CODE'; "
           "echo EXITED=$?; sleep 30")
    tmux("new-session", "-d", "-s", name, "-x", "160", "-y", "30", cmd)
    try:
        yield name
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


def test_live_table_shows_messages_and_stops_on_ctrl_c(session: str) -> None:
    screen = wait_for(session, r"ipsms listen http://127\.0\.0\.1:\d+/")
    found = re.search(r"(http://127\.0\.0\.1:\d+/)", screen)
    assert found is not None
    url = found.group(1)
    assert "waiting for messages" in screen
    body = (b'{"refid": "ABCDEF1234567890ABCDEF1234567890", "from": "+7708675309", '
            b'"to": "+13038675309", "message": "[bold]Hello[/bold] \\u001b[2J World!", '
            b'"signature": "SECRET CODE"}')
    for _ in range(2):
        req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
    screen = wait_for(session, r"retries 1")
    assert "received 2  accepted 2  rejected 0  bad signatures 0  retries 1" in screen
    rows = [line for line in screen.splitlines() if "ABCDEF1234567890" in line]
    assert len(rows) == 2
    assert "[bold]Hello[/bold] \\e[2J World!" in rows[0]
    assert "valid (plain)" in rows[0] and "+13038675309" in rows[0]
    tmux("send-keys", "-t", session, "C-c")
    screen = wait_for(session, r"EXITED=\d+")
    assert "EXITED=0" in screen
    assert "stopped. 2 received, 2 accepted" in screen
