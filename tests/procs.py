"""A real `ipsms listen` subprocess for end-to-end tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, cli_env
from tests.hostile import VALID


class ListenerProcess:
    """``ipsms listen --port 0 --format json`` as a child process; ``url`` once it is ready."""

    def __init__(
        self, *args: str, db: Path | None = None, env: dict[str, str] | None = None
    ) -> None:
        cmd = [sys.executable, "-m", "ipsms", "listen", "--port", "0", "--format", "json"]
        if not any(a.startswith("--inspect") for a in args):
            cmd.append("--no-inspect")  # tests/inspect/ asks for the inspector itself
        if db is not None:
            cmd += ["--db", str(db)]
        # Its own process group: kill() also ends what it started (an ngrok agent).
        self.proc = subprocess.Popen(
            cmd + list(args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env or cli_env(),
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        if not first:
            raise RuntimeError(f"listener did not start: {self.proc.stderr.read()}")  # type: ignore[union-attr]
        self.ready = json.loads(first)
        assert self.ready["type"] == "listening"
        self.url: str = self.ready["url"]
        self.port: int = self.ready["port"]

    def next_event(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "listener closed stdout"
        return json.loads(line)  # type: ignore[no-any-return]

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15) -> tuple[int, str, str]:
        """Signal the listener; returns (exit code, rest of stdout, stderr)."""
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def kill(self) -> None:
        """SIGKILL the listener and anything left in its process group; close the pipes."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.returncode is None or (self.proc.stdout and not self.proc.stdout.closed):
            self.proc.communicate()


def post_valid_messages(url: str, count: int, workers: int = 8) -> list[int]:
    """POST ``count`` valid messages, each with its own refid, from ``workers`` threads; their
    statuses. Concurrent posts share the listener's commits, so hundreds take well under a
    second rather than one fsync each."""
    body = json.dumps(VALID).encode()

    def post(i: int) -> int:
        request = urllib.request.Request(
            url,
            data=body.replace(b"ABCDEF", f"{i:06d}".encode()),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(post, range(count)))


def fake_agent(folder: Path) -> Path:
    """tests/fake_ngrok.py as an executable named ``ngrok`` in ``folder``, the way a real agent
    is installed (``exec``: pyngrok's kill reaches the process itself)."""
    path = folder / "ngrok"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'#!/bin/sh\nexec "{sys.executable}" "{ROOT / "tests" / "fake_ngrok.py"}" "$@"\n'
    )
    path.chmod(0o755)
    return path
