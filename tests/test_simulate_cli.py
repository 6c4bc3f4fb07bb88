"""``ipsms simulate`` as a real process, into scripted servers and into a real ``ipsms listen``."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from ipsms import store
from ipsms.errors import ExitCode
from tests.conftest import ROOT, cli_env, run_ipsms
from tests.test_delivery import ScriptedServer, closed_port, replies


def ndjson(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def simulate(*args: str, input: str | None = None,
                   env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run_ipsms, "simulate", *args, input=input, env=env)


async def test_500_500_200_through_the_cli() -> None:
    async with ScriptedServer(replies(500, 500, 200)) as server:
        result = await simulate(server.url(), "--no-wait", "--format", "json")
    assert result.returncode == 0, result.stderr
    lines = ndjson(result.stdout)
    assert [(x["type"], x.get("attempt"), x.get("status")) for x in lines] == [
        ("attempt", 1, 500), ("attempt", 2, 500), ("attempt", 3, 200), ("outcome", None, None)]
    assert lines[-1]["delivered_on"] == 3 and lines[-1]["summary"] == "delivered on attempt 3"
    assert len(server.received) == 3 and len({r.body for r in server.received}) == 1
    sent = json.loads(server.received[0].body)
    assert sent["refid"] == lines[-1]["refid"] == lines[0]["refid"]
    assert result.stderr == ""


async def test_always_503_exits_5_with_an_explanation() -> None:
    async with ScriptedServer(replies(then=503)) as server:
        result = await simulate(server.url(), "--retry-delays", "1,5,30", "--speed", "1000",
                                "--format", "json")
    assert result.returncode == ExitCode.NOT_DELIVERED
    attempts = [x for x in ndjson(result.stdout) if x["type"] == "attempt"]
    assert [x["wait_s"] for x in attempts] == [0.001, 0.005, 0.03, 0.03, None]
    assert len(server.received) == 5
    assert "ipsms: error: message" in result.stderr
    assert "gave up after 5 attempts (last: 503)" in result.stderr


async def test_closed_port_and_max_attempts() -> None:
    result = await simulate(f"http://127.0.0.1:{closed_port()}/", "--max-attempts", "2",
                            "--no-wait", "--format", "json")
    assert result.returncode == ExitCode.NOT_DELIVERED
    assert [x.get("error") for x in ndjson(result.stdout)] == ["connect_error", "connect_error",
                                                               None]


async def test_secret_signs_but_never_shows(tmp_path: Path) -> None:
    secret = "a-very-secret-shared-code"
    async with ScriptedServer(replies(then=200)) as server:
        plain = await simulate(server.url(), "--secret", secret, "--format", "json")
        env = cli_env(IPSMS_SECRET="env-secret-value", IPSMS_SIGNATURE_MODE="hmac")
        hmac = await simulate(server.url(), "--format", "plain", env=env)
    assert plain.returncode == hmac.returncode == 0
    assert json.loads(server.received[0].body)["signature"] == secret
    assert len(json.loads(server.received[1].body)["signature"]) == 64
    for result in (plain, hmac):
        assert secret not in result.stdout + result.stderr
        assert "env-secret-value" not in result.stdout + result.stderr
    assert ndjson(plain.stdout)[-1]["signature"] == "****(25)"
    assert "signature " in hmac.stdout and "delivered on attempt 1" in hmac.stdout


async def test_payload_from_stdin_form_encoded_with_flag_overrides() -> None:
    payload = json.dumps({"message": "from stdin", "to": "1-1234", "campaign": "spring"})
    async with ScriptedServer(replies(then=200)) as server:
        result = await simulate(server.url(), "--payload", "-", "--form", "--from",
                                "+13035550199", "--refid", "X" * 32, "--format", "json",
                                input=payload)
    assert result.returncode == 0, result.stderr
    assert server.received[0].content_type == "application/x-www-form-urlencoded"
    assert server.received[0].body == (b"refid=XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX&from=%2B13035550199"
                                       b"&to=1-1234&message=from+stdin&campaign=spring")


async def test_invalid_numbers_exit_2_unless_allowed() -> None:
    async with ScriptedServer(replies(then=200)) as server:
        bad = await simulate(server.url(), "--from", "+7708675309")
        ok = await simulate(server.url(), "--from", "+7708675309", "--allow-invalid",
                            "--format", "json")
    assert bad.returncode == ExitCode.USAGE
    assert "invalid from number" in bad.stderr and "+7 numbers have 11" in bad.stderr
    assert "--allow-invalid" in bad.stderr
    assert ok.returncode == 0
    assert len(server.received) == 1  # the refused one was never sent
    assert json.loads(server.received[0].body)["from"] == "+7708675309"


async def test_usage_errors_exit_2() -> None:
    for args, text in ((["ftp://127.0.0.1/"], "not an http"),
                       (["--retry-delays", "1,soon"], "--retry-delays"),
                       (["--backoff", "fast"], "--backoff"),
                       (["--success", "201"], "success rule"),
                       (["--count", "3", "--refid", "X" * 32], "--refid")):
        result = await simulate(*args)
        assert result.returncode == ExitCode.USAGE, (args, result.stderr)
        assert text in result.stderr


async def test_load_mode_summary() -> None:
    async with ScriptedServer(replies(then=200)) as server:
        result = await simulate(server.url(), "--count", "60", "--concurrency", "6",
                                "--no-wait", "--format", "json")
    assert result.returncode == 0, result.stderr
    (summary,) = ndjson(result.stdout)
    assert summary["type"] == "summary"
    assert (summary["messages"], summary["delivered"], summary["attempts"]) == (60, 60, 60)
    assert len({json.loads(r.body)["refid"] for r in server.received}) == 60
    lat = summary["latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]


async def test_load_mode_exit_5_when_some_are_not_delivered() -> None:
    async with ScriptedServer(replies(503, 503, then=200)) as server:
        result = await simulate(server.url(), "--count", "4", "--concurrency", "1",
                                "--max-attempts", "1", "--format", "plain")
    assert result.returncode == ExitCode.NOT_DELIVERED
    assert "delivered: 2" in result.stdout and "gave up: 2" in result.stdout
    assert "2 of 4 messages were not delivered" in result.stderr


async def test_fail_first_3_into_a_real_listener(tmp_path: Path) -> None:
    """The issue's end-to-end check: the listener records one refid with attempts 1 to 4."""
    db = tmp_path / "listen.sqlite3"
    listener = subprocess.Popen(
        [sys.executable, "-m", "ipsms", "listen", "--port", "0", "--format", "json", "--db",
         str(db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
        cwd=ROOT)
    try:
        assert listener.stdout is not None
        first = json.loads(await asyncio.to_thread(listener.stdout.readline))
        assert first["type"] == "listening"
        result = await simulate(f"http://127.0.0.1:{first['port']}/sms", "--fail-first", "3",
                                "--no-wait", "--format", "json")
    finally:
        listener.send_signal(signal.SIGINT)
        out, _ = await asyncio.to_thread(listener.communicate, timeout=20)
    assert result.returncode == 0, result.stderr
    lines = ndjson(result.stdout)
    assert [(x["status"], x["forced_failure"], x["ok"]) for x in lines[:4]] == [
        (200, True, False)] * 3 + [(200, False, True)]
    refid = lines[-1]["refid"]
    assert listener.returncode == 0
    requests = [x for x in ndjson(out) if x["type"] == "request"]
    assert [(x["refid"], x["attempt"]) for x in requests] == [(refid, n) for n in (1, 2, 3, 4)]
    conn = store.connect(db, create=False)
    try:
        recorded = store.attempts_for(conn, refid)
        assert [r.attempt for r in recorded] == [1, 2, 3, 4]
        assert len({r.body for r in recorded}) == 1
        assert store.count(conn) == 4
    finally:
        conn.close()
