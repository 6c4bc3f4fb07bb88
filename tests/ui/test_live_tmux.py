"""The live table on a real terminal, driven through tmux."""

from __future__ import annotations

import json
import os
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


def start_listen(name: str, home: Path, width: int, height: int) -> None:
    cmd = (
        f"cd {shlex.quote(str(ROOT))} && unset COLUMNS LINES && "
        f"IPSMS_HOME={shlex.quote(str(home))} "
        f"{shlex.quote(sys.executable)} -m ipsms listen --port 0 --secret 'SECRET CODE'; "
        "echo EXITED=$?; sleep 30"
    )
    tmux("new-session", "-d", "-s", name, "-x", str(width), "-y", str(height), cmd)


@pytest.fixture
def session(tmp_path: Path, ipsms_home: Path) -> Iterator[str]:
    name = f"ipsms-test-{os.getpid()}-{tmp_path.name}"  # unique across concurrent runs
    start_listen(name, ipsms_home, 160, 30)
    try:
        yield name
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


def post(url: str, body: dict[str, str], status: int = 200) -> None:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == status
    except urllib.error.HTTPError as exc:
        assert exc.code == status


# What terminals measure differently (tmux draws a skin-toned emoji 4 cells wide, rich
# counts 2), and what they agree on.
HOSTILE = [
    "thanks 👍🏽",
    "skin 👋🏽",
    "family 👨‍👩‍👧‍👦",
    "flags 🇫🇷🇯🇵",
    "love ❤️",
    "中文 日本語",
    "café q̣̇",
    "🏴‍☠️ ok",
]


@pytest.mark.parametrize("width", [80, 160])
def test_hostile_emoji_never_break_the_table_and_resizing_leaves_no_copies(
    tmp_path: Path, ipsms_home: Path, width: int
) -> None:
    name = f"ipsms-wide-{os.getpid()}-{width}-{tmp_path.name}"
    start_listen(name, ipsms_home, width, 24)
    try:
        screen = wait_for(name, r"ipsms listen http://127\.0\.0\.1:\d+/")
        found = re.search(r"(http://127\.0\.0\.1:\d+/)", screen)
        assert found is not None
        url = found.group(1)
        for i in range(30):
            post(
                url,
                {
                    "refid": f"REFID{i:04d}" + "X" * 23,
                    "from": "+13035550100",
                    "to": "+13038675309",
                    "message": f"message {i}",
                    "signature": "SECRET CODE",
                },
            )
        for i, text in enumerate(HOSTILE):  # long: the text wants more than the line has
            post(
                url,
                {
                    "refid": f"EMOJI{i:02d}" + "Y" * 25,
                    "from": "+13035550100",
                    "to": "+13038675309",
                    "message": f"{text} " + "and more words " * 9,
                    "signature": "SECRET CODE",
                },
            )
        # A flagged one: a 5-character refid and a 2-digit sender; a secret in the wrong case.
        post(
            url,
            {
                "refid": "SHORT",
                "from": "12",
                "to": "+13038675309",
                "message": "odd",
                "signature": "SECRET CODE",
            },
        )
        post(
            url,
            {
                "refid": "BADSIG" + "Z" * 26,
                "from": "+13035550100",
                "to": "+13038675309",
                "message": "bad",
                "signature": "secret code",
            },
            status=403,
        )
        total = 30 + len(HOSTILE) + 2
        wait_for(name, rf"(received|rcvd) {total}\b")
        time.sleep(1.5)  # idle: six redraws that must not leave copies behind
        check_screen(name, width, history=True)
        screen = tmux("capture-pane", "-p", "-t", name)
        assert "EMOJI07" in screen  # the newest rows made it on screen
        row = next(line for line in screen.splitlines() if "odd" in line)
        assert "refid_length" in row or "refid,from" in row  # the flags, in their column
        bad = next(line for line in screen.splitlines() if "BADSIG" in line)
        assert " invalid" in bad  # the verdict, whatever else fits beside it
        if width >= 160:  # room for every refid whole, the reason and a good part of text
            assert "invalid (case)" in bad
            for i in range(len(HOSTILE)):
                row = next(line for line in screen.splitlines() if f"EMOJI{i:02d}" in line)
                assert f"EMOJI{i:02d}" + "Y" * 25 in row
                assert "and more words and more words" in row, row  # 40 cells of text
        # Shrink (and for 80, grow then shrink back): no stale header anywhere.
        for new_width in [60, 80] if width == 80 else [80]:
            tmux("resize-window", "-t", name, "-x", str(new_width), "-y", "24")
            time.sleep(1.0)
            check_screen(name, new_width, history=False)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


def check_screen(name: str, width: int, *, history: bool) -> None:
    """The header exactly once on screen (and in the scrollback, unless the terminal itself
    pushed rewrapped lines there on a resize); no table line wider than the pane (with -J a
    line tmux wrapped comes back whole)."""
    if history:
        everything = tmux("capture-pane", "-p", "-J", "-S", "-", "-t", name)
        assert everything.count("ipsms listen http") == 1, everything
    screen = tmux("capture-pane", "-p", "-J", "-t", name)
    assert screen.count("ipsms listen http") == 1, screen
    assert int(tmux("display-message", "-p", "-t", name, "#{pane_width}")) == width
    table = screen[screen.index("ipsms listen http") :]
    for line in table.splitlines():
        assert len(line) <= width, line


def test_live_table_shows_messages_and_stops_on_ctrl_c(session: str) -> None:
    screen = wait_for(session, r"ipsms listen http://127\.0\.0\.1:\d+/")
    found = re.search(r"(http://127\.0\.0\.1:\d+/)", screen)
    assert found is not None
    url = found.group(1)
    assert "waiting for messages" in screen
    body = (
        b'{"refid": "ABCDEF1234567890ABCDEF1234567890", "from": "+7708675309", '
        b'"to": "+13038675309", "message": "[bold]Hello[/bold] \\u001b[2J World!", '
        b'"signature": "SECRET CODE"}'
    )
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


def test_the_start_lines_survive_a_resize_and_ctrl_c_says_where_the_records_are(
    tmp_path: Path, ipsms_home: Path
) -> None:
    """What `listen` said before the table (where it listens, records, the secret) is still
    on screen after the terminal is resized, and the Ctrl-C summary names the store and the
    command that reads it."""
    name = f"ipsms-resize-{os.getpid()}-{tmp_path.name}"
    start_listen(name, ipsms_home, 120, 24)
    store = ipsms_home / "ipsms.sqlite3"
    try:
        screen = wait_for(name, r"ipsms listen http://127\.0\.0\.1:\d+/")
        found = re.search(r"(http://127\.0\.0\.1:\d+/)", screen)
        assert found is not None
        url = found.group(1)
        for _ in range(2):
            post(
                url,
                {
                    "refid": "R" * 32,
                    "from": "+13035550100",
                    "to": "+13038675309",
                    "message": "hello",
                    "signature": "SECRET CODE",
                },
            )
        wait_for(name, r"retries 1")
        for width in (70, 100, 60, 120):
            tmux("resize-window", "-t", name, "-x", str(width), "-y", "24")
            time.sleep(1.0)
            check_screen(name, width, history=False)
            screen = tmux("capture-pane", "-p", "-J", "-t", name)
            assert screen.count("ipsms listen: listening on") == 1, screen
            said = squeezed(screen)  # the lines as wrapped at this width, rejoined
            assert squeezed(f"signature mode auto; recording to {store}") in said, screen
            assert sum("R" * 8 in line for line in screen.splitlines()) == 2, screen
        tmux("send-keys", "-t", name, "C-c")
        screen = wait_for(name, r"EXITED=\d+")
        joined = squeezed(tmux("capture-pane", "-p", "-J", "-t", name))
        assert "EXITED=0" in screen
        summary = "2 received, 2 accepted, 0 rejected, 0 bad signatures, 1 retry"
        assert squeezed(summary) in joined
        assert (
            squeezed(f"the requests are recorded in {store}; `ipsms messages list` shows them")
            in joined
        )
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


def squeezed(text: str) -> str:
    """``text`` without its blanks and line breaks: the same whatever width wrapped it."""
    return "".join(text.split())
