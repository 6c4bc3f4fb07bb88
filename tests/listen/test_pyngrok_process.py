"""What ``ipsms.listen.pyngrok_process`` relies on in pyngrok still holds, against the real
pyngrok and real agent processes (tests/fake_ngrok.py, and a wrapper that never gets ready):
the registry lists an agent before its start reads the first line, under a lock that the
start and pyngrok's own calls hold, and pyngrok's kill takes the entry out."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyngrok import conf, ngrok, process
from pyngrok.exception import PyngrokNgrokError

from ipsms.listen.pyngrok_process import registry_lock, started_agent
from tests.procs import fake_agent

pytestmark = pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups")


def config_for(agent: Path, tmp_path: Path) -> Any:
    config_file = tmp_path / "ngrok.yml"
    config_file.write_text('version: "3"\n')
    return conf.PyngrokConfig(
        ngrok_path=str(agent),
        config_path=str(config_file),
        monitor_thread=False,
        startup_timeout=10,
        request_timeout=5,
        start_new_session=True,
    )


@contextlib.contextmanager
def ended(config: Any) -> Iterator[None]:
    """Whatever the test leaves of the agent is ended: its whole group, and pyngrok's entry."""
    try:
        yield
    finally:
        popen = started_agent(config.ngrok_path)
        if popen is not None:
            with contextlib.suppress(OSError):
                os.killpg(popen.pid, signal.SIGKILL)
        with registry_lock(5) as free:
            if free:
                ngrok.kill(config)


def test_a_started_agent_is_listed_from_its_first_line_until_pyngrok_kills_it(
    tmp_path: Path,
) -> None:
    config = config_for(fake_agent(tmp_path / "bin"), tmp_path)
    seen_at_first_line: list[Any] = []
    config.log_event_callback = lambda _log: seen_at_first_line.append(
        started_agent(config.ngrok_path)
    )
    assert started_agent(config.ngrok_path) is None
    with ended(config):
        agent = process.get_process(config)
        popen = started_agent(config.ngrok_path)
        assert isinstance(popen, subprocess.Popen) and popen is agent.proc
        assert popen.poll() is None
        # the first log line, read while pyngrok's start still held its lock, found it
        assert seen_at_first_line and seen_at_first_line[0] is popen
        with registry_lock(1) as free:  # re-entrant and free once the start is done
            assert free
            ngrok.kill(config)  # takes the same lock, inside it: no deadlock
        assert started_agent(config.ngrok_path) is None
        assert popen.returncode is not None


def test_a_blocked_start_holds_the_lock_and_its_agent_is_listed_meanwhile(tmp_path: Path) -> None:
    agent = tmp_path / "bin" / "ngrok"  # an agent that never prints: pyngrok's read blocks
    agent.parent.mkdir()
    agent.write_text("#!/bin/sh\nexec sleep 100\n")
    agent.chmod(0o755)
    config = config_for(agent, tmp_path)
    failures: list[BaseException] = []

    def start() -> None:
        try:
            process.get_process(config)
        except BaseException as exc:
            failures.append(exc)

    starter = threading.Thread(target=start, daemon=True)
    with ended(config):
        starter.start()
        deadline = time.monotonic() + 10
        while started_agent(config.ngrok_path) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        popen = started_agent(config.ngrok_path)
        assert popen is not None and popen.poll() is None  # listed, without the lock
        with registry_lock(0.3) as free:
            assert not free  # the blocked start holds it
        # pyngrok's own kill waits on that lock too
        killer = threading.Thread(target=ngrok.kill, args=(config,), daemon=True)
        killer.start()
        killer.join(0.3)
        assert killer.is_alive()
        os.killpg(popen.pid, signal.SIGKILL)  # the read ends, the start gives up
        starter.join(10)
        killer.join(10)
        assert not starter.is_alive() and not killer.is_alive()
        assert [type(exc) for exc in failures] == [PyngrokNgrokError]
        with registry_lock(1) as free:
            assert free
        assert started_agent(config.ngrok_path) is None
