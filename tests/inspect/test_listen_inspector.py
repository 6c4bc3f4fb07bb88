"""`ipsms listen` serves the inspector beside the listener: its URL on stderr and in the
NDJSON, its own port, the token, and a prompt stop with a tab open. A real listener process."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.conftest import ROOT, cli_env, run_ipsms

TOKEN = "listen-inspector-token"


def listen_cmd(db: Path, *args: str) -> list[str]:
    """`ipsms listen` on a free port, NDJSON on stdout, recording to ``db``."""
    return [
        sys.executable,
        "-m",
        "ipsms",
        "listen",
        "--port",
        "0",
        "--format",
        "json",
        "--db",
        str(db),
        *args,
    ]


def start(db: Path, *args: str, token: str = TOKEN) -> tuple[subprocess.Popen[str], dict, dict]:
    env = cli_env(IPSMS_INSPECT_TOKEN=token)
    env.pop("IPSMS_INSPECT", None)
    proc = subprocess.Popen(
        listen_cmd(db, *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    assert proc.stdout is not None
    listening = json.loads(proc.stdout.readline())
    inspector = json.loads(proc.stdout.readline())
    return proc, listening, inspector


def get(url: str, **headers: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as a:
            return a.status, a.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_listen_serves_the_inspector_on_its_own_port_with_its_token(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite3"
    with socket.socket() as busy:  # an address asked for by name is used or refused, exit 4
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        env = cli_env()
        env.pop("IPSMS_INSPECT", None)
        refused = subprocess.run(
            listen_cmd(db, "--inspect", f"127.0.0.1:{busy.getsockname()[1]}"),
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=20,
        )
    assert refused.returncode == 4, refused.stderr
    assert "cannot serve the inspector" in refused.stderr
    proc, listening, inspector = start(db)
    try:
        assert listening["type"] == "listening" and inspector["type"] == "inspector"
        url = inspector["url"]
        assert url.startswith("http://127.0.0.1:") and url.endswith(f"/?token={TOKEN}")
        base = url.split("/?")[0]
        assert base != listening["url"].rstrip("/")  # never the receiver's port
        status, _ = get(base + "/api/messages")
        assert status == 401
        status, body = get(base + "/api/messages", Authorization=f"Bearer {TOKEN}")
        assert status == 200 and json.loads(body)["items"] == []
        # the receiver's port never serves it
        status, _ = get(listening["url"] + "api/messages", Authorization=f"Bearer {TOKEN}")
        assert status != 200
        started = time.monotonic()
        stream = urllib.request.urlopen(
            urllib.request.Request(  # a tab with the stream open
                base + "/api/events", headers={"Authorization": f"Bearer {TOKEN}"}
            ),
            timeout=5,
        )
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        assert time.monotonic() - started < 3
        stream.close()
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()  # reaped, its pipes closed


def test_no_inspect_and_off_serve_none(tmp_path: Path) -> None:
    result = run_ipsms("listen", "--help")
    assert "--no-inspect" in result.stdout and "--inspect ADDR" in result.stdout
    env = cli_env()
    env.pop("IPSMS_INSPECT", None)
    proc = subprocess.Popen(
        listen_cmd(tmp_path / "s.sqlite3", "--no-inspect"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["type"] == "listening"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        assert "inspector" not in out and "inspector" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_a_remote_address_needs_its_flag() -> None:
    result = run_ipsms("listen", "--inspect", "0.0.0.0:4041", "--port", "0")
    assert result.returncode == 2
    assert "--inspect-allow-remote" in result.stderr
    result = run_ipsms("listen", "--inspect", "nope:xx", "--port", "0")
    assert result.returncode == 2 and "HOST:PORT" in result.stderr


def test_the_inspector_line_matches_the_ndjson_doc(tmp_path: Path) -> None:
    from tests.test_ndjson_doc import SHAPES, check_object

    proc, _, inspector = start(tmp_path / "s.sqlite3")
    try:
        check_object(inspector, SHAPES["inspector"], "", "inspector")
    finally:
        proc.kill()
        proc.communicate()


def test_inspect_serves_history_with_no_listener_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    from ipsms import store

    db = tmp_path / "s.sqlite3"
    missing = run_ipsms("inspect", "--db", str(db))
    assert missing.returncode == 10 and "no message store" in missing.stderr
    conn = store.connect(db)
    conn.close()
    env = cli_env(IPSMS_INSPECT_TOKEN=TOKEN)
    env.pop("IPSMS_INSPECT", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ipsms", "inspect", "--db", str(db), "--inspect", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    try:
        assert proc.stderr is not None
        line = ""
        while "inspector http" not in line:
            line = proc.stderr.readline()
            assert line, "inspect ended before printing its URL"
        url = line.split("inspector ", 1)[1].strip()
        status, body = get(url.split("/?")[0] + "/api/messages", Authorization=f"Bearer {TOKEN}")
        assert status == 200 and json.loads(body) == {"items": [], "next_before": None}
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_history_is_there_after_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite3"
    proc, listening, _ = start(db)
    try:
        body = json.dumps(
            {
                "refid": "H" * 32,
                "from": "+13035550100",
                "to": "+13038675309",
                "message": "before the restart",
            }
        ).encode()
        request = urllib.request.Request(
            listening["url"] + "sms", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert answer.status == 200
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    proc, _, inspector = start(db)
    try:
        base = inspector["url"].split("/?")[0]
        status, page = get(base + "/api/messages", Authorization=f"Bearer {TOKEN}")
        assert status == 200
        assert [i["message"] for i in json.loads(page)["items"]] == ["before the restart"]
    finally:
        proc.kill()
        proc.communicate()
