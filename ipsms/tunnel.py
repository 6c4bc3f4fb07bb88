"""``listen --tunnel``: an ngrok tunnel to the listener, through pyngrok, that never downloads
anything, never writes to stdout, never hangs and never leaves an agent running.

pyngrok downloads the agent when its path does not exist (printing to stdout), and waits for
the agent's first lines with a blocking read that no timeout of its own bounds. So the agent is
found first (or a ``TunnelError`` says how to install it), pyngrok runs in a thread under an
outer timeout, and every way out kills the agent process. On Linux the agent is also tied to
the listener by the kernel (``PR_SET_PDEATHSIG``), so even a ``kill -9`` of ``listen``, which
runs none of its own clean-up, ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ipsms.errors import TunnelError, setting

STARTUP_TIMEOUT = 15.0  # seconds for the agent to start and the tunnel to open
INSTALL_HINT = ("install the ngrok agent (https://ngrok.com/download, or your package "
                f"manager), or name it with {setting('ngrok_path')} / NGROK_PATH")


@dataclass(frozen=True)
class TunnelConfig:
    authtoken: str | None = None
    agent: str | None = None  # the ngrok agent binary; found on PATH when None
    region: str | None = None
    domain: str | None = None  # a reserved domain
    startup_timeout: float = STARTUP_TIMEOUT


def find_agent(explicit: str | None) -> str:
    """The ngrok agent to run. An explicit path must be an executable file; otherwise PATH is
    searched, skipping the Python wrapper named ``ngrok`` that installing pyngrok puts next to
    the interpreter (it would download the agent)."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file() or not os.access(path, os.X_OK):
            raise TunnelError(f"no ngrok agent at {explicit} (not an executable file)",
                              hint=INSTALL_HINT)
        return str(path)
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = shutil.which("ngrok", path=folder) if folder else None
        if candidate and not _is_pyngrok_wrapper(candidate):
            return candidate
    raise TunnelError("the ngrok agent is not installed (or not on PATH)", hint=INSTALL_HINT)


def _is_pyngrok_wrapper(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(2048)
    except OSError:
        return True
    return head.startswith(b"#!") and b"pyngrok" in head


class Tunnel:
    """An open tunnel: ``public_url``, ``alive()``, and ``close()`` that always ends the agent."""

    def __init__(self, public_url: str, pyngrok_config: Any, workdir: str) -> None:
        self.public_url = public_url
        self._config = pyngrok_config
        self._workdir = workdir

    def agent_exit_code(self) -> int | None:
        """None while the agent runs; its exit code once it has stopped."""
        from pyngrok import process

        proc = process._current_processes.get(self._config.ngrok_path)
        if proc is None:
            return -1
        code: int | None = proc.proc.poll()
        return code

    def close(self) -> None:
        from pyngrok import ngrok

        with contextlib.suppress(Exception):
            ngrok.disconnect(self.public_url, self._config)
        _kill(self._config)
        shutil.rmtree(self._workdir, ignore_errors=True)


def _kill(pyngrok_config: Any) -> None:
    from pyngrok import ngrok

    # First the agent pyngrok may still be starting: it holds a lock that its kill waits for.
    _kill_unregistered_agents()
    with contextlib.suppress(Exception):
        ngrok.kill(pyngrok_config)


def _kill_unregistered_agents() -> None:
    """SIGKILL our child processes that pyngrok started (``start --none --log stdout``) but
    never registered: an agent that never finished starting. Killing it also ends pyngrok's
    blocked read of its output. (Linux /proc; elsewhere pyngrok's own kill is all there is.)"""
    me = str(os.getpid())
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError):
            continue
        if ppid == me and b"--none" in argv and b"start" in argv and b"stdout" in argv:
            with contextlib.suppress(OSError):
                os.kill(int(entry.name), signal.SIGKILL)


async def open_tunnel(config: TunnelConfig, local_url: str) -> Tunnel:
    """Start the agent and open an http tunnel to ``local_url``; ``TunnelError`` on any
    failure (missing agent, refused authtoken, no answer in time), with the agent ended."""
    agent = find_agent(config.agent)
    from pyngrok import conf
    from pyngrok.exception import PyngrokError

    _quiet_pyngrok()
    workdir = tempfile.mkdtemp(prefix="ipsms-ngrok-")
    pyngrok_config = conf.PyngrokConfig(
        ngrok_path=_tied(agent, workdir), config_path=os.path.join(workdir, "ngrok.yml"),
        auth_token=config.authtoken, region=config.region, monitor_thread=False,
        startup_timeout=max(1, int(config.startup_timeout)), request_timeout=5)
    options: dict[str, Any] = {"name": "ipsms"}
    if config.domain:
        options["url"] = config.domain if "://" in config.domain else f"https://{config.domain}"
    try:
        tunnel = await asyncio.wait_for(
            asyncio.to_thread(_connect, pyngrok_config, local_url, options),
            config.startup_timeout)
    except TimeoutError:
        _kill(pyngrok_config)
        shutil.rmtree(workdir, ignore_errors=True)
        raise TunnelError(f"the ngrok agent did not open the tunnel within "
                          f"{config.startup_timeout:g} s",
                          hint="check the network and `ngrok` on its own") from None
    except PyngrokError as exc:
        _kill(pyngrok_config)
        shutil.rmtree(workdir, ignore_errors=True)
        raise TunnelError(_explain(exc), hint=_hint(exc)) from None
    except BaseException:
        _kill(pyngrok_config)
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return Tunnel(tunnel, pyngrok_config, workdir)


# Run by /bin/sh in place of the agent: Python asks the kernel for SIGTERM when the thread that
# started it ends (a thread of the listener's default executor, which lives as long as the
# listener), gives up if the listener is already gone, then becomes the agent (the request
# survives exec). argv: the listener's pid, the agent, pyngrok's arguments.
_TIE = ("import ctypes, os, signal, sys; ctypes.CDLL(None).prctl(1, signal.SIGTERM); "
        "os.getppid() == int(sys.argv[1]) or sys.exit(1); os.execv(sys.argv[2], sys.argv[2:])")


def _tied(agent: str, workdir: str) -> str:
    """What pyngrok runs as the agent. On Linux, a launcher in ``workdir`` that ties the agent
    to this process, so that it ends even when ``listen`` is killed outright (``kill -9``) and
    cannot end it; elsewhere the agent itself."""
    if not sys.platform.startswith("linux") or os.statvfs(workdir).f_flag & os.ST_NOEXEC:
        return agent  # (a temporary directory mounted noexec could not run the launcher)
    launcher = Path(workdir) / "ngrok"
    launcher.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -S -c "
                        f"{shlex.quote(_TIE)} {os.getpid()} {shlex.quote(agent)} \"$@\"\n")
    launcher.chmod(0o700)
    return str(launcher)


def _quiet_pyngrok() -> None:
    """pyngrok logs every agent line; ipsms says what matters itself, in one line."""
    import logging

    for name in ("pyngrok", "pyngrok.process.ngrok"):
        log = logging.getLogger(name)
        log.propagate = False
        if not log.handlers:
            log.addHandler(logging.NullHandler())


def _connect(pyngrok_config: Any, local_url: str, options: dict[str, Any]) -> str:
    from pyngrok import ngrok

    tunnel = ngrok.connect(local_url, "http", pyngrok_config=pyngrok_config, **options)
    return str(tunnel.public_url)


def _explain(exc: Exception) -> str:
    text = " ".join(str(getattr(exc, "ngrok_error", None) or exc).replace("\\r\\n", " ").split())
    return f"the ngrok agent failed: {text[:300]}"


def _hint(exc: Exception) -> str:
    text = str(getattr(exc, "ngrok_error", None) or exc)
    if "ERR_NGROK_105" in text or "ERR_NGROK_4018" in text or "authtoken" in text.lower():
        return (f"set NGROK_AUTHTOKEN (or {setting('ngrok_authtoken')}) to the authtoken of "
                "your ngrok dashboard")
    return "run `ngrok http 8765` on its own to see what the agent says"
