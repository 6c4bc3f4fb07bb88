"""pyngrok's record of the agents it started, read where pyngrok has no public way to.

``listen --tunnel`` must end an agent whose start is blocked, and tell when a running agent
has exited. pyngrok's start reads the agent's stdout, holding its lock, until the agent says
it is ready (one that never does blocks it for good); its public calls that return or end the
agent (``process.get_process``, ``ngrok.get_ngrok_process``, ``process.kill_process``,
``ngrok.kill``) take that same lock, and ``get_process`` starts an agent when none runs. So
the tunnel reads pyngrok's registry here, and nothing else in ipsms names pyngrok's privates.

What this relies on (checked with pyngrok 9.1.0, as constraints.txt pins it;
tests/listen/test_pyngrok_process.py fails when an upgrade changes any of it):

- ``pyngrok.process._current_processes``: a dict from a config's ``ngrok_path`` to the
  ``NgrokProcess`` started from it, whose ``proc`` is the agent's ``subprocess.Popen``. The
  start adds the entry right after the ``Popen`` and before it reads the agent's first line
  (so the first ``log_event_callback`` finds it); ``process.kill_process`` removes it.
- ``pyngrok.process._current_processes_lock``: the lock a start holds until it returns, and
  ``get_process`` and ``kill_process`` (so ``ngrok.kill``) hold while they run; re-entrant
  (the tunnel calls ``ngrok.kill`` holding it).
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator


def started_agent(ngrok_path: str) -> subprocess.Popen[str] | None:
    """The ``Popen`` of the agent pyngrok started from ``ngrok_path`` and still lists (None
    when it lists none). Never waits for pyngrok's lock: it answers while a start is blocked."""
    from pyngrok import process

    entry = process._current_processes.get(ngrok_path)
    return None if entry is None else entry.proc


@contextlib.contextmanager
def registry_lock(timeout: float) -> Iterator[bool]:
    """pyngrok's lock on its agents, held through the ``with`` block if it came free within
    ``timeout`` seconds; the block is told whether it did (a blocked start keeps it)."""
    from pyngrok import process

    lock = process._current_processes_lock
    acquired = lock.acquire(timeout=timeout)
    try:
        yield acquired
    finally:
        if acquired:
            lock.release()
