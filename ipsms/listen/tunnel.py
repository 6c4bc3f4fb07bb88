"""``listen --tunnel``: an ngrok tunnel to the listener, through pyngrok, that never downloads
anything, never writes to stdout, never hangs, never leaves an agent running and never puts
the authtoken on a command line.

pyngrok downloads the agent when its path does not exist (printing to stdout), and waits for
the agent's first lines with a blocking read that no timeout of its own bounds. So the agent is
found first (or a ``TunnelError`` says how to install it; pyngrok's own ``ngrok`` script, which
downloads, is never run), pyngrok runs in a daemon thread under an outer timeout, and every way
out kills the agent's whole process group (the agent is started in a session of its own), so a
wrapper that execs or forks another program ends too, and the blocked read with it. On Linux the
agent is also tied to the listener by the kernel (``PR_SET_PDEATHSIG``), so even a ``kill -9``
of ``listen``, which runs none of its own clean-up, ends it.

pyngrok passes an authtoken as ``--authtoken TOKEN``, which every local user can read in ``ps``.
The token goes into the agent's configuration file instead (0600, in a 0700 directory of its
own); when ipsms is given none, the one ``ngrok config add-authtoken`` saved in the agent's own
configuration file is used, since the agent reads only the file it is given.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ipsms.errors import TunnelError, setting
from ipsms.listen.pyngrok_process import registry_lock, started_agent

STARTUP_TIMEOUT = 15.0  # seconds for the agent to start and the tunnel to open
INSTALL_HINT = (
    "install the ngrok agent (https://ngrok.com/download, or your package "
    f"manager), or name it with {setting('ngrok_path')} / NGROK_PATH"
)


@dataclass(frozen=True)
class TunnelConfig:
    authtoken: str | None = None
    agent: str | None = None  # the ngrok agent binary; found on PATH when None
    region: str | None = None
    domain: str | None = None  # a reserved domain
    startup_timeout: float = STARTUP_TIMEOUT


def find_agent(explicit: str | None) -> str:
    """The ngrok agent to run. An explicit path must be an executable file; otherwise PATH is
    searched. Either way the Python script named ``ngrok`` that installing pyngrok puts next to
    the interpreter is refused: run, it downloads the agent."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file() or not os.access(path, os.X_OK):
            raise TunnelError(
                f"no ngrok agent at {explicit} (not an executable file)", hint=INSTALL_HINT
            )
        if _is_pyngrok_wrapper(str(path)):
            raise TunnelError(
                f"{explicit} is pyngrok's downloader script, not the ngrok agent: "
                "ipsms will not run it (it downloads the agent)",
                hint=INSTALL_HINT,
            )
        return str(path)
    wrappers = []
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = shutil.which("ngrok", path=folder) if folder else None
        if candidate and _is_pyngrok_wrapper(candidate):
            wrappers.append(candidate)
        elif candidate:
            return candidate
    if wrappers:
        raise TunnelError(
            f"the ngrok agent is not installed (or not on PATH): the ngrok found on PATH, "
            f"{wrappers[0]}, is pyngrok's downloader script, which ipsms will not run",
            hint=f"{INSTALL_HINT}; `ngrok config add-authtoken` typed where that script comes "
            "first on PATH would run the downloader too",
        )
    raise TunnelError("the ngrok agent is not installed (or not on PATH)", hint=INSTALL_HINT)


_PYNGROK_IMPORT = re.compile(rb"^\s*(?:from|import)\s+pyngrok\b", re.MULTILINE)


def _is_pyngrok_wrapper(path: str) -> bool:
    """Whether ``path`` is the console script pyngrok installs (``from pyngrok.ngrok import
    main``). A file that cannot be read is no script (an interpreter must read a script to run
    it): an agent installed execute-only."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(2048)
    except OSError:
        return False
    return head.startswith(b"#!") and _PYNGROK_IMPORT.search(head) is not None


class Tunnel:
    """An open tunnel: ``public_url``, ``alive()``, and ``close()`` that always ends the agent."""

    def __init__(
        self, public_url: str, pyngrok_config: Any, workdir: str, agent: _AgentThread
    ) -> None:
        self.public_url = public_url
        self._config = pyngrok_config
        self._workdir = workdir
        self._agent = agent

    def agent_exit_code(self) -> int | None:
        """None while the agent runs; its exit code once it has stopped."""
        proc = started_agent(self._config.ngrok_path)
        if proc is None:
            return -1
        return proc.poll()

    def close(self) -> None:
        from pyngrok import ngrok

        if self.agent_exit_code() is None:
            with contextlib.suppress(Exception):
                ngrok.disconnect(self.public_url, self._config)
        _end(self._config, self._agent, self._workdir, fresh=False)


REGISTER_WAIT = 1.0  # seconds pyngrok may take from starting the agent to listing it
LOCK_WAIT = 2.0  # seconds to wait for pyngrok's lock, which a blocked start holds


class _AgentThread:
    """pyngrok's start and connect, in a daemon thread of their own. The thread lives until
    the tunnel is closed: on Linux the agent's SIGTERM is tied to the life of the thread that
    started it. A daemon, so that a start blocked where nothing can unblock it (an agent that
    names another program's port as its API) never keeps ``listen`` from exiting."""

    def __init__(self, pyngrok_config: Any, local_url: str, options: dict[str, Any]) -> None:
        self.config = pyngrok_config
        self.result: concurrent.futures.Future[str] = concurrent.futures.Future()
        self.abandoned = threading.Event()  # the caller gave up: a late start is ended at once
        self._release = threading.Event()
        self._popen: Any = None
        pyngrok_config.log_event_callback = lambda _log: self.popen()
        self._thread = threading.Thread(
            target=self._run, args=(local_url, options), name="ipsms-ngrok", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def _run(self, local_url: str, options: dict[str, Any]) -> None:
        self.result.set_running_or_notify_cancel()
        try:
            public_url = _connect(self.config, local_url, options)
        except BaseException as exc:  # handed to the waiting caller
            self.result.set_exception(exc)
            return
        if self.abandoned.is_set():
            _kill(self.config, self, fresh=True)
            return
        self.result.set_result(public_url)
        self._release.wait()

    def starting(self) -> bool:
        return self._thread.is_alive() and not self.result.done()

    def popen(self) -> Any:
        """The agent's ``Popen`` once pyngrok started it (kept after pyngrok forgets it)."""
        if self._popen is None:
            self._popen = started_agent(self.config.ngrok_path)
        return self._popen

    def release(self) -> None:
        self._release.set()


def _end(pyngrok_config: Any, agent: _AgentThread, workdir: str, *, fresh: bool) -> None:
    """End the agent (however far it got) and everything about the tunnel."""
    agent.abandoned.set()
    _kill(pyngrok_config, agent, fresh=fresh)
    agent.release()
    shutil.rmtree(workdir, ignore_errors=True)


def _kill(pyngrok_config: Any, agent: _AgentThread, *, fresh: bool) -> None:
    """SIGKILL the agent's process group (a wrapper's children included: one left holding the
    agent's stdout would keep pyngrok's read blocked), then let pyngrok forget it. pyngrok
    lists the agent before its blocking read, under a lock that read holds: the group is
    killed without the lock, and pyngrok's own kill runs only if the lock comes free.

    The group is signalled while its leader is not yet reaped (its number cannot be anyone
    else's), or, with ``fresh``, right after pyngrok reaped a failed start (whatever the
    agent left running is still in the group)."""
    from pyngrok import ngrok

    deadline = time.monotonic() + REGISTER_WAIT
    while agent.popen() is None and agent.starting() and time.monotonic() < deadline:
        time.sleep(0.01)  # between pyngrok's Popen and its listing: microseconds
    popen = agent.popen()
    if popen is not None and hasattr(os, "killpg") and (fresh or popen.returncode is None):
        with contextlib.suppress(OSError):
            os.killpg(popen.pid, signal.SIGKILL)
    with registry_lock(LOCK_WAIT) as free:
        if free:
            with contextlib.suppress(Exception):
                ngrok.kill(pyngrok_config)


async def open_tunnel(config: TunnelConfig, local_url: str) -> Tunnel:
    """Start the agent and open an http tunnel to ``local_url``; ``TunnelError`` on any
    failure (missing agent, refused authtoken, no answer in time), with the agent ended."""
    agent_path = find_agent(config.agent)
    token = config.authtoken or _saved_authtoken()
    if token is not None:
        _check_authtoken(token)
    from pyngrok import conf
    from pyngrok.exception import PyngrokError

    _quiet_pyngrok()
    workdir = tempfile.mkdtemp(prefix="ipsms-ngrok-")  # 0700, whatever the umask
    try:
        config_path = _write_agent_config(workdir, token)
        pyngrok_config = conf.PyngrokConfig(
            ngrok_path=_tied(agent_path, workdir, clear_token=token is not None),
            config_path=config_path,
            region=config.region,
            monitor_thread=False,
            startup_timeout=max(1, int(config.startup_timeout)),
            request_timeout=5,
            start_new_session=True,
        )  # a process group of its own: killed whole
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    # pyngrok takes NGROK_AUTHTOKEN (and NGROK_API_KEY) from the environment when given none,
    # and would put it on the agent's command line: the configuration file has it instead.
    pyngrok_config.auth_token = None
    pyngrok_config.api_key = None
    options: dict[str, Any] = {"name": "ipsms"}
    if config.domain:
        options["url"] = config.domain if "://" in config.domain else f"https://{config.domain}"
    agent = _AgentThread(pyngrok_config, local_url, options)
    agent.start()
    try:
        public_url = await asyncio.wait_for(
            asyncio.wrap_future(agent.result), config.startup_timeout
        )
    except TimeoutError:
        _end(pyngrok_config, agent, workdir, fresh=True)
        raise TunnelError(
            f"the ngrok agent did not open the tunnel within {config.startup_timeout:g} s",
            hint="check the network and `ngrok` on its own",
        ) from None
    except PyngrokError as exc:
        _end(pyngrok_config, agent, workdir, fresh=True)
        raise TunnelError(_explain(exc), hint=_hint(exc)) from None
    except BaseException:
        _end(pyngrok_config, agent, workdir, fresh=True)
        raise
    if not _is_public_url(public_url):  # it is printed, drawn in the table, sent to IntelePeer
        _end(pyngrok_config, agent, workdir, fresh=True)
        raise TunnelError(
            f"the ngrok agent answered with a public URL that is no URL: {public_url[:200]!r}",
            hint="run `ngrok http 8765` on its own to see what the agent says",
        )
    return Tunnel(public_url, pyngrok_config, workdir, agent)


def _is_public_url(url: str) -> bool:
    """An http(s) URL of printable ASCII with a host: nothing that could drive a terminal."""
    from urllib.parse import urlsplit

    if not url.isascii() or not url.isprintable() or " " in url:
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _check_authtoken(token: str) -> None:
    if not token.isascii() or not token.isprintable() or " " in token:
        raise TunnelError(
            "the ngrok authtoken holds characters no authtoken has (spaces, "
            "control or non-ASCII characters)",
            hint="copy it again from your ngrok dashboard",
        )


def _saved_authtoken() -> str | None:
    """The authtoken ``ngrok config add-authtoken`` saved in the agent's own configuration
    file (``agent.authtoken``, or ``authtoken`` in a version 2 file), if any."""
    from pyngrok import conf, installer

    try:
        saved = installer.get_ngrok_config(conf.DEFAULT_NGROK_CONFIG_PATH, use_cache=False)
    except Exception:  # missing or unreadable: the agent will say it has no token
        return None
    if not isinstance(saved, dict):
        return None
    agent = saved.get("agent")
    token = agent.get("authtoken") if isinstance(agent, dict) else saved.get("authtoken")
    return token if isinstance(token, str) and token else None


def _write_agent_config(workdir: str, token: str | None) -> str:
    """The agent's configuration file, created 0600 whatever the umask: the authtoken, where
    only this user can read it (a command line, every local user can)."""
    path = os.path.join(workdir, "ngrok.yml")
    text = 'version: "3"\n'
    if token is not None:  # JSON's quoted string is YAML's double-quoted scalar
        text += f"agent:\n  authtoken: {json.dumps(token)}\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(text)
    return path


# Run by /bin/sh in place of the agent: Python asks the kernel for SIGTERM when the thread that
# started it ends (the tunnel's own thread, which lives until the tunnel is closed), gives up if
# the listener is already gone, then becomes the agent (the request survives exec). argv: the
# listener's pid, the agent, pyngrok's arguments.
_TIE = (
    "import ctypes, os, signal, sys; ctypes.CDLL(None).prctl(1, signal.SIGTERM); "
    "os.getppid() == int(sys.argv[1]) or sys.exit(1); os.execv(sys.argv[2], sys.argv[2:])"
)


def _tied(agent: str, workdir: str, *, clear_token: bool) -> str:
    """What pyngrok runs as the agent. On Linux, a launcher in ``workdir`` that ties the agent
    to this process, so that it ends even when ``listen`` is killed outright (``kill -9``) and
    cannot end it; elsewhere the agent itself. With ``clear_token`` (the configuration file
    has the authtoken) the launcher also drops NGROK_AUTHTOKEN from the agent's environment,
    so an exported one cannot win over --ngrok-authtoken."""
    if not sys.platform.startswith("linux") or os.statvfs(workdir).f_flag & os.ST_NOEXEC:
        return agent  # (a temporary directory mounted noexec could not run the launcher)
    launcher = Path(workdir) / "ngrok"
    unset = "unset NGROK_AUTHTOKEN\n" if clear_token else ""
    launcher.write_text(
        f"#!/bin/sh\n{unset}exec {shlex.quote(sys.executable)} -S -c "
        f'{shlex.quote(_TIE)} {os.getpid()} {shlex.quote(agent)} "$@"\n'
    )
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
        return (
            f"set NGROK_AUTHTOKEN (or {setting('ngrok_authtoken')}) to the authtoken of "
            "your ngrok dashboard"
        )
    return "run `ngrok http 8765` on its own to see what the agent says"
