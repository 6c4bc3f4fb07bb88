"""`listen --tunnel` through the real pyngrok, against a fake ngrok agent process
(tests/fake_ngrok.py, loopback only): the tunnel comes up and carries a message to the listener
and on to the app; a missing agent, a refused authtoken, an agent that never gets ready and one
that dies while listening are each a clear error (exit 9), and no agent outlives the listener."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ipsms.errors import ExitCode
from tests.conftest import ROOT, cli_env, run_process
from tests.hostile import VALID
from tests.procs import ListenerProcess, fake_agent


@pytest.fixture
def agent(tmp_path: Path) -> Path:
    """The fake agent as an executable, the way a real one is installed (`exec`, so pyngrok's
    kill reaches the process itself)."""
    return fake_agent(tmp_path / "bin")


TAG = f"ipsms-test-{os.getpid()}-{time.time_ns()}"  # in the agents' environment
# The agent's own configuration directory (where `ngrok config add-authtoken` saves a token):
# none, unless a test makes one, so the machine's never reaches these tests.
NO_CONFIG = str(Path(tempfile.gettempdir()) / f"{TAG}-no-config")


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in cli_env().items() if k != "NGROK_AUTHTOKEN"}
    return {**base, "FAKE_NGROK_TAG": TAG, "XDG_CONFIG_HOME": NO_CONFIG, **extra}


def agents_running() -> list[int]:
    """Fake agents alive that these tests started (other test files run agents too)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            argv = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if b"fake_ngrok.py" in argv and TAG.encode() in environ:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if state != "Z":
                found.append(int(entry.name))
    return found


@pytest.fixture
def app() -> Iterator[tuple[str, list[bytes]]]:
    """The developer's app: answers 202 with a body of its own, remembers what it got."""
    got: list[bytes] = []

    class App(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(202)
            self.send_header("Content-Length", "6")
            self.end_headers()
            self.wfile.write(b"app ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), App)
    # shutdown() waits for this loop to look: every 50 ms, not the default 500.
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/sms", got
    finally:
        server.shutdown()
        server.server_close()


def test_a_message_through_the_tunnel_reaches_the_app_and_the_answer_comes_back(
    agent: Path, app: tuple[str, list[bytes]], tmp_path: Path
) -> None:
    app_url, got = app
    listener = ListenerProcess(
        "--tunnel",
        "--ngrok-path",
        str(agent),
        "--forward-to",
        app_url,
        db=tmp_path / "t.sqlite3",
        env=env(NGROK_AUTHTOKEN="tok"),
    )
    try:
        up = listener.next_event()
        assert (up["type"], up["state"]) == ("tunnel", "up")
        body = json.dumps(VALID).encode()
        request = urllib.request.Request(
            up["public_url"] + "/sms",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert (answer.status, answer.read()) == (202, b"app ok")
        seen = listener.next_event()
        assert seen["type"] == "request" and seen["status"] == 202
        assert seen["forward"]["status"] == 202 and got == [body]
        code, _, err = listener.stop()
    finally:
        listener.kill()
    assert code == 0
    assert f"tunnel {up['public_url']} -> " in err
    assert "the tunnel is public and there is no secret" in err
    assert agents_running() == []


def test_a_missing_agent_is_exit_9_and_nothing_is_downloaded(tmp_path: Path) -> None:
    result = run_process(
        "listen",
        "--tunnel",
        "--ngrok-path",
        str(tmp_path / "nope"),
        "--port",
        "0",
        "--db",
        str(tmp_path / "m.sqlite3"),
    )
    assert result.returncode == ExitCode.TUNNEL
    assert "no ngrok agent at" in result.stderr and "https://ngrok.com/download" in result.stderr
    assert result.stdout == ""  # pyngrok's "Downloading ngrok ..." never reaches stdout
    empty = {**cli_env(), "PATH": str(tmp_path)}  # an empty PATH: not even pyngrok's wrapper
    result = run_process("listen", "--tunnel", "--port", "0", env=empty)
    assert result.returncode == ExitCode.TUNNEL
    assert "not installed" in result.stderr


def test_a_refused_authtoken_is_exit_9_with_what_to_do(agent: Path, tmp_path: Path) -> None:
    result = run_process(
        "listen",
        "--tunnel",
        "--ngrok-path",
        str(agent),
        "--port",
        "0",
        "--db",
        str(tmp_path / "a.sqlite3"),
        env=env(NGROK_AUTHTOKEN="bad-token"),
    )
    assert result.returncode == ExitCode.TUNNEL
    assert "ERR_NGROK_105" in result.stderr and "NGROK_AUTHTOKEN" in result.stderr
    assert "bad-token" not in result.stderr
    assert agents_running() == []


def test_an_agent_that_never_gets_ready_is_bounded(agent: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    result = run_process(
        "listen",
        "--tunnel",
        "--ngrok-path",
        str(agent),
        "--port",
        "0",
        "--tunnel-timeout",
        "500ms",
        "--db",
        str(tmp_path / "s.sqlite3"),
        env=env(FAKE_NGROK_SILENT="1"),
    )
    assert result.returncode == ExitCode.TUNNEL
    assert "did not open the tunnel within 0.5 s" in result.stderr
    assert time.monotonic() - started < 10
    assert agents_running() == []


def test_an_agent_that_dies_while_listening_stops_the_listener(agent: Path, tmp_path: Path) -> None:
    argv_log = tmp_path / "argv.jsonl"
    listener = ListenerProcess(
        "--tunnel",
        "--ngrok-path",
        str(agent),
        db=tmp_path / "d.sqlite3",
        env=env(FAKE_NGROK_DIE_AFTER="1", FAKE_NGROK_ARGV=str(argv_log)),
    )
    try:
        assert listener.next_event()["state"] == "up"
        down = listener.next_event()
        assert (down["type"], down["state"]) == ("tunnel", "down")
        _, err = listener.proc.communicate(timeout=10)
        assert listener.proc.returncode == ExitCode.TUNNEL
    finally:
        listener.kill()
    assert "the ngrok agent exited" in err
    assert json.loads(argv_log.read_text().splitlines()[0])[:4] == [
        "start",
        "--none",
        "--log",
        "stdout",
    ]
    assert agents_running() == []


def test_tunnel_and_public_url_do_not_go_together(agent: Path) -> None:
    result = run_process(
        "listen", "--tunnel", "--ngrok-path", str(agent), "--public-url", "https://x.example.com/"
    )
    assert result.returncode == ExitCode.USAGE
    assert "--tunnel and --public-url do not go together" in result.stderr
    assert os.access(agent, os.X_OK)


def test_the_one_command_flow_points_the_number_at_the_tunnel_and_back(
    agent: Path, tmp_path: Path, ipsms_home: Path
) -> None:
    """`listen --tunnel --set-webhook TN`: the number points at the tunnel's URL while the
    listener runs, and at its previous URL afterwards (against the API emulator)."""
    from ipsms.intelepeer.emulator import EmulatorState, EmulatorThread

    state = EmulatorState()
    state.add_user("api-user", "pw-t")
    state.add_number("+13038675309")
    with EmulatorThread(state) as emu:
        e = env(
            IPSMS_API_BASE=emu.api_base,
            IPSMS_AUTH_URL=emu.auth_url,
            IPSMS_USERNAME="api-user",
            IPSMS_PASSWORD="pw-t",
            IPSMS_HOME=str(ipsms_home),
        )
        before = "https://app.example.com/sms"
        assert run_process("set-webhook", "+13038675309", before, env=e).returncode == 0
        listener = ListenerProcess(
            "--tunnel",
            "--ngrok-path",
            str(agent),
            "--set-webhook",
            "+13038675309",
            db=tmp_path / "o.sqlite3",
            env=e,
        )
        try:
            up = listener.next_event()
            change = listener.next_event()
            assert change["type"] == "webhook_set" and change["url"] == up["public_url"]
            assert emu.state.numbers["+13038675309"].webhook == up["public_url"]
            code, _, _ = listener.stop()
        finally:
            listener.kill()
        assert code == 0
        assert emu.state.numbers["+13038675309"].webhook == before
    assert agents_running() == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_every_way_of_stopping_ends_the_agent(agent: Path, tmp_path: Path, sig: int) -> None:
    """Ctrl-C, SIGTERM, and a closed terminal (SIGHUP) each close the tunnel."""
    listener = ListenerProcess(
        "--tunnel", "--ngrok-path", str(agent), db=tmp_path / "s.sqlite3", env=env()
    )
    try:
        assert listener.next_event()["state"] == "up"
        assert agents_running() != []
        code, _, _ = listener.stop(sig)
    finally:
        listener.kill()
    assert code == 0
    assert agents_running() == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_listener_killed_outright_takes_its_agent_with_it(agent: Path, tmp_path: Path) -> None:
    """`kill -9` runs none of the listener's clean-up: the kernel ends the agent instead."""
    listener = ListenerProcess(
        "--tunnel", "--ngrok-path", str(agent), db=tmp_path / "s.sqlite3", env=env()
    )
    try:
        assert listener.next_event()["state"] == "up"
        assert agents_running() != []
        listener.proc.kill()
        listener.proc.communicate(timeout=15)
        deadline = time.monotonic() + 10
        while agents_running() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        listener.kill()
    assert agents_running() == []


@pytest.fixture
def noexec_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory on a tmpfs mounted noexec, as /tmp is on some hardened systems (needs root
    and a mount namespace that allows it; skipped elsewhere)."""
    mountpoint = tmp_path / "noexec"
    mountpoint.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "noexec,size=4m", "tmpfs", str(mountpoint)],
        capture_output=True,
    )
    if made.returncode != 0:
        pytest.skip("cannot mount a noexec tmpfs here")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_a_temporary_directory_mounted_noexec_still_opens_the_tunnel(
    agent: Path, tmp_path: Path, noexec_dir: Path
) -> None:
    """The launcher that ties the agent to the listener lives in a temporary directory; where
    nothing there may run, the agent is run as it is."""
    listener = ListenerProcess(
        "--tunnel",
        "--ngrok-path",
        str(agent),
        db=tmp_path / "s.sqlite3",
        env=env(TMPDIR=str(noexec_dir)),
    )
    try:
        assert listener.next_event()["state"] == "up"
        code, _, _ = listener.stop()
    finally:
        listener.kill()
    assert code == 0
    assert agents_running() == []


# -- the authtoken never reaches a command line ------------------------------------------------
def command_lines_with(secret: str, but: int) -> list[str]:
    """Every process's command line (as `ps` shows them to any user) that holds ``secret``,
    but that of process ``but``."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if int(entry.name) == but:
                continue
            argv = (entry / "cmdline").read_bytes()
            if secret.encode() in argv:
                found.append(argv.replace(b"\0", b" ").decode(errors="replace"))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("how", ["flag", "environment", "flag over environment"])
def test_the_authtoken_is_in_no_command_line_and_the_agent_still_gets_it(
    agent: Path, tmp_path: Path, how: str
) -> None:
    token = f"2abcTOKEN{time.time_ns()}_secret"
    seen = tmp_path / "seen.jsonl"
    args = ["--tunnel", "--ngrok-path", str(agent)]
    extra = {"FAKE_NGROK_SEEN": str(seen)}
    if how != "environment":
        args += ["--ngrok-authtoken", token]
    if how == "environment":
        extra["NGROK_AUTHTOKEN"] = token
    if how == "flag over environment":
        extra["NGROK_AUTHTOKEN"] = "an-older-token-exported-long-ago"
    listener = ListenerProcess(*args, db=tmp_path / "t.sqlite3", env=env(**extra))
    try:
        assert listener.next_event()["state"] == "up"
        [given] = [json.loads(line) for line in seen.read_text().splitlines()]
        agent_argv = Path(f"/proc/{given['pid']}/cmdline").read_bytes().split(b"\0")
        # --ngrok-authtoken is on listen's own command line, the user's choice (its help says
        # to prefer NGROK_AUTHTOKEN); it must reach no other.
        leaked = command_lines_with(token, but=listener.proc.pid)
        code, _, err = listener.stop()
    finally:
        listener.kill()
    assert code == 0
    assert given["argv"][:4] == ["start", "--none", "--log", "stdout"]
    assert [a.decode() for a in agent_argv if a][-len(given["argv"]) :] == given["argv"]
    assert leaked == [] and token.encode() not in b" ".join(agent_argv)
    assert given["authtoken"] == token  # the flag wins over an exported variable, as before
    assert given["config_modes"] and set(given["config_modes"].values()) == {0o600}
    assert token not in err
    assert agents_running() == []


def test_the_authtoken_ngrok_config_add_authtoken_saved_is_used(
    agent: Path, tmp_path: Path
) -> None:
    """The agent reads only the configuration file it is given: the token its own file holds
    (where `ngrok config add-authtoken` saves it) is carried over when ipsms has none."""
    home = tmp_path / "xdg"
    (home / "ngrok").mkdir(parents=True)
    (home / "ngrok" / "ngrok.yml").write_text(
        'version: "3"\nagent:\n    authtoken: saved-by-add-authtoken\n'
    )
    seen = tmp_path / "seen.jsonl"
    listener = ListenerProcess(
        "--tunnel",
        "--ngrok-path",
        str(agent),
        db=tmp_path / "s.sqlite3",
        env=env(FAKE_NGROK_SEEN=str(seen), XDG_CONFIG_HOME=str(home)),
    )
    try:
        assert listener.next_event()["state"] == "up"
        code, _, _ = listener.stop()
    finally:
        listener.kill()
    assert code == 0
    assert json.loads(seen.read_text())["authtoken"] == "saved-by-add-authtoken"
    assert agents_running() == []


def test_an_authtoken_with_control_characters_is_refused(agent: Path, tmp_path: Path) -> None:
    result = run_process(
        "listen",
        "--tunnel",
        "--ngrok-path",
        str(agent),
        "--port",
        "0",
        "--db",
        str(tmp_path / "c.sqlite3"),
        env=env(NGROK_AUTHTOKEN="tok\nagent:\n  web_addr: false"),
    )
    assert result.returncode == ExitCode.TUNNEL
    assert "the ngrok authtoken holds characters no authtoken has" in result.stderr
    assert "web_addr" not in result.stderr
    assert agents_running() == []


# -- an agent that never prints ----------------------------------------------------------------
def tagged_processes() -> list[int]:
    """Live processes these tests started, whatever they run now (their environment holds
    TAG): an agent that exec'd `sleep` is no fake_ngrok.py any more."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if TAG.encode() in environ and state != "Z" and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


@pytest.fixture
def deaf_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers (a program that is no
    ngrok API)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize(
    "script",
    [
        "exec sleep 100",  # a wrapper that execs another program: the agent's pid, a new program
        "sleep 100",  # a wrapper whose child holds the agent's stdout
        "sleep 100 & exec sleep 100",
        # it names a port that accepts and never answers as its API: pyngrok's probe of it has no
        # timeout, so its thread never comes back; listen must not wait for it
        'echo "t=0 lvl=info msg=\\"starting web service\\" obj=web addr=127.0.0.1:{port}"\n'
        'echo "t=0 lvl=info msg=\\"tunnel session started\\""\n'
        'echo "t=0 lvl=info msg=\\"client session established\\""\nexec sleep 100',
    ],
    ids=["exec", "child", "both", "deaf-api"],
)
def test_an_agent_that_never_answers_is_ended_with_listen_by_the_timeout(
    tmp_path: Path, script: str, deaf_port: int
) -> None:
    wrapper = tmp_path / "bin" / "ngrok"
    wrapper.parent.mkdir()
    wrapper.write_text("#!/bin/sh\n" + script.replace("{port}", str(deaf_port)) + "\n")
    wrapper.chmod(0o755)
    started = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ipsms",
            "listen",
            "--tunnel",
            "--ngrok-path",
            str(wrapper),
            "--port",
            "0",
            "--tunnel-timeout",
            "500ms",
            "--db",
            str(tmp_path / "n.sqlite3"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=20)
        elapsed = time.monotonic() - started
        deadline = time.monotonic() + 5
        while tagged_processes() and time.monotonic() < deadline:
            time.sleep(0.05)
        left = tagged_processes()
    finally:
        for pid in tagged_processes():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == ExitCode.TUNNEL, err
    assert "did not open the tunnel within 0.5 s" in err and "ownload" not in out + err
    assert elapsed < 10
    assert left == []


# -- pyngrok's downloader is never run ---------------------------------------------------------
def pyngrok_script(folder: Path) -> Path:
    """A script shaped like the `ngrok` pyngrok installs in a virtualenv (it imports pyngrok's
    main, which downloads the agent); this one only exits 3, so nothing is downloaded here
    whatever runs it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ngrok"
    path.write_text(
        f"#!{sys.executable}\n# -*- coding: utf-8 -*-\nimport sys\nif False:\n"
        "    from pyngrok.ngrok import main\nsys.exit(3)\n"
    )
    path.chmod(0o755)
    return path


def test_pyngroks_downloader_on_path_is_named_and_never_run(tmp_path: Path) -> None:
    script = pyngrok_script(tmp_path / "venv" / "bin")
    result = run_process(
        "listen",
        "--tunnel",
        "--port",
        "0",
        "--db",
        str(tmp_path / "w.db"),
        env=env(PATH=f"{script.parent}{os.pathsep}{tmp_path / 'empty'}"),
    )
    assert result.returncode == ExitCode.TUNNEL and result.stdout == ""
    assert "the ngrok agent is not installed (or not on PATH)" in result.stderr
    assert (
        f"the ngrok found on PATH, {script}, is pyngrok's downloader script, which ipsms "
        "will not run" in result.stderr
    )
    assert "https://ngrok.com/download" in result.stderr


def test_pyngroks_downloader_named_as_the_agent_is_refused(tmp_path: Path) -> None:
    script = pyngrok_script(tmp_path / "venv" / "bin")
    result = run_process(
        "listen",
        "--tunnel",
        "--ngrok-path",
        str(script),
        "--port",
        "0",
        "--db",
        str(tmp_path / "w.db"),
        env=env(),
    )
    assert result.returncode == ExitCode.TUNNEL and result.stdout == ""
    assert (
        f"{script} is pyngrok's downloader script, not the ngrok agent: ipsms will not run "
        "it" in result.stderr
    )
    assert "exited" not in result.stderr  # it was not run
    assert agents_running() == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="setpriv and capabilities")
def test_an_execute_only_agent_on_path_is_found(tmp_path: Path) -> None:
    """A binary installed mode 0111 cannot be read, so it is no script (an interpreter must
    read a script): it is the agent, not pyngrok's downloader."""
    folder = tmp_path / "bin"
    folder.mkdir()
    binary = folder / "ngrok"
    shutil.copy("/bin/true", binary)
    binary.chmod(0o111)
    command = [
        sys.executable,
        "-c",
        "from ipsms.listen.tunnel import find_agent; print(find_agent(None))",
    ]
    if os.geteuid() == 0:  # root reads any file: drop that power first
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv")
        command = [setpriv, "--bounding-set=-dac_override,-dac_read_search", *command]
    found = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env={**env(), "PATH": str(folder)},
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == str(binary)


@pytest.mark.parametrize(
    "public_url",
    [
        "https://x.ngrok.app/\x1b]0;pwned\x07\x1b[2J",
        "javascript:alert(1)",
        "https://\u202eppa.kcorgn/",
        "not a url",
    ],
)
def test_a_public_url_that_is_no_url_is_refused(
    agent: Path, tmp_path: Path, public_url: str
) -> None:
    """What the agent answers is printed, drawn in the table's header and sent to IntelePeer
    by --set-webhook: an answer that is no http(s) URL stops listen (exit 9), escaped."""
    result = run_process(
        "listen",
        "--tunnel",
        "--ngrok-path",
        str(agent),
        "--port",
        "0",
        "--db",
        str(tmp_path / "u.sqlite3"),
        env=env(FAKE_NGROK_PUBLIC_URL=public_url),
    )
    assert result.returncode == ExitCode.TUNNEL
    assert "the ngrok agent answered with a public URL that is no URL" in result.stderr
    assert "\x1b" not in result.stderr + result.stdout
    assert "\u202e" not in result.stderr + result.stdout
    assert agents_running() == []
