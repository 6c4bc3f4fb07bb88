"""`ipsms messages tail -f` as a real process following a store a real `ipsms listen` process
writes: a message shows within a second of its 200, across `messages clear`, for a store that
did not exist yet; SIGTERM and a reader that went away end it with 0."""

from __future__ import annotations

import json
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, cli_env, run_ipsms
from tests.procs import ListenerProcess, post_valid_messages


class Tail:
    """``ipsms messages tail -f --format json`` as a child process, its stdout read with
    deadlines."""

    def __init__(self, db: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ipsms",
                "messages",
                "tail",
                "-f",
                "--format",
                "json",
                "--db",
                str(db),
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env=cli_env(),
            bufsize=0,
        )
        assert self.proc.stdout is not None
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.proc.stdout, selectors.EVENT_READ)
        self._buffer = b""

    def line(self, timeout: float) -> dict[str, Any] | None:
        """The next line, or None when none came within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not self._sel.select(left):
                return None
            chunk = self.proc.stdout.read(65536)  # type: ignore[union-attr]
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        data: dict[str, Any] = json.loads(line)
        return data

    def notice(self, timeout: float) -> str:
        """The first line on stderr (read within ``timeout`` seconds)."""
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stderr, selectors.EVENT_READ)  # type: ignore[arg-type]
        text = b""
        deadline = time.monotonic() + timeout
        while not text.endswith(b"\n") and sel.select(max(deadline - time.monotonic(), 0)):
            chunk = self.proc.stderr.read(1)  # type: ignore[union-attr]
            if not chunk:
                break
            text += chunk
        return text.decode()

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=10)
        return self.proc.returncode, err.decode()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[ListenerProcess]:
    proc = ListenerProcess(db=tmp_path / "live.sqlite3")
    try:
        yield proc
    finally:
        proc.kill()


def test_follower_prints_a_message_within_a_second_of_its_200(
    listener: ListenerProcess, tmp_path: Path
) -> None:
    db = tmp_path / "live.sqlite3"
    post_valid_messages(listener.url, 1)  # recorded before: printed first (-n 10)
    tail = Tail(db)
    try:
        first = tail.line(timeout=10)
        assert first is not None and first["status"] == 200
        for round_ in range(3):
            result = run_ipsms(
                "simulate", listener.url, "--format", "json", "--refid", f"{round_:032d}"
            )
            answered = time.monotonic()
            assert result.returncode == 0, result.stderr
            line = tail.line(timeout=1.0)
            assert line is not None, f"no line within 1 s of the 200 (round {round_})"
            assert time.monotonic() - answered < 1.0
            assert line["type"] == "request" and line["refid"] == f"{round_:032d}"
            assert line["status"] == 200 and line["body"] is None  # the `list` line
        code, err = tail.stop(signal.SIGTERM)
        assert code == 0, err
    finally:
        tail.kill()


def test_follower_survives_clear_and_reused_ids(listener: ListenerProcess, tmp_path: Path) -> None:
    db = tmp_path / "live.sqlite3"
    post_valid_messages(listener.url, 3)
    tail = Tail(db, "-n", "1")
    try:
        assert tail.line(timeout=10) is not None  # it has read the store: id 3 is its mark
        assert run_ipsms("messages", "clear", "--yes", "--db", str(db)).returncode == 0
        # New rows are numbered from 1 again: four of them pass the old highest id (3).
        post_valid_messages(listener.url, 4, workers=1)
        got = [tail.line(timeout=5) for _ in range(4)]
        assert all(g is not None for g in got)
        assert sorted(g["id"] for g in got) == [1, 2, 3, 4]  # type: ignore[index]
        code, err = tail.stop(signal.SIGINT)
        assert code == 0
        assert "was cleared" in err
    finally:
        tail.kill()


def test_follower_waits_for_the_store(tmp_path: Path) -> None:
    db = tmp_path / "later.sqlite3"
    tail = Tail(db)
    try:
        assert "waiting for `ipsms listen` to create it" in tail.notice(timeout=10)
        listener = ListenerProcess(db=db)
        try:
            post_valid_messages(listener.url, 1)
            line = tail.line(timeout=5)
            assert line is not None and line["status"] == 200
        finally:
            listener.kill()
        code, _ = tail.stop()
        assert code == 0
    finally:
        tail.kill()


def test_filters_apply_while_following(listener: ListenerProcess, tmp_path: Path) -> None:
    db = tmp_path / "live.sqlite3"
    tail = Tail(db, "--refid", "7")
    try:
        for refid in ("6" * 32, "7" * 32):
            assert (
                run_ipsms("simulate", listener.url, "--format", "json", "--refid", refid).returncode
                == 0
            )
        line = tail.line(timeout=2)
        assert line is not None and line["refid"] == "7" * 32
        assert tail.line(timeout=0.5) is None
    finally:
        tail.kill()


def test_a_reader_that_went_away_ends_the_follower(
    listener: ListenerProcess, tmp_path: Path
) -> None:
    db = tmp_path / "live.sqlite3"
    post_valid_messages(listener.url, 2)
    # `tail -f | head -1`: the reader leaves after one line; nothing new is recorded after.
    proc = subprocess.run(
        f'"{sys.executable}" -m ipsms messages tail -f --format json --db "{db}" | head -1; '
        'echo "status=${PIPESTATUS[0]}"',
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        timeout=15,
        cwd=ROOT,
        env=cli_env(),
    )
    lines = proc.stdout.splitlines()
    assert json.loads(lines[0])["type"] == "request"
    assert lines[-1] == "status=0", proc.stderr
