"""``ipsms simulate`` as a real process (and in-process, for arguments a real command line
cannot hold), into scripted servers, misbehaving raw servers and a real listener."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from typer.testing import CliRunner, Result

from ipsms import store
from ipsms.cli.app import app
from ipsms.errors import ExitCode
from ipsms.request import Request
from tests.conftest import ROOT, cli_env, run_ipsms
from tests.deliver.test_delivery import ScriptedServer, closed_port, replies
from tests.deliver.test_delivery_stale import Act, RawServer, acts
from tests.hostile import running_listener


def ndjson(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def simulate(
    *args: str, input: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run_ipsms, "simulate", *args, input=input, env=env)


async def invoke(*args: str, input: str | None = None) -> Result:
    """``ipsms simulate ARGS`` in this process (typer's runner, in a thread: it runs its own
    event loop), so arguments can hold any ``str``, surrogates included."""
    return await asyncio.to_thread(CliRunner().invoke, app, ["simulate", *args], input=input)


async def test_500_500_200_through_the_cli() -> None:
    async with ScriptedServer(replies(500, 500, 200)) as server:
        result = await simulate(server.url(), "--no-wait", "--format", "json")
    assert result.returncode == 0, result.stderr
    lines = ndjson(result.stdout)
    assert [(x["type"], x.get("attempt"), x.get("status")) for x in lines] == [
        ("attempt", 1, 500),
        ("attempt", 2, 500),
        ("attempt", 3, 200),
        ("outcome", None, None),
    ]
    assert lines[-1]["delivered_on"] == 3 and lines[-1]["summary"] == "delivered on attempt 3"
    assert len(server.received) == 3 and len({r.body for r in server.received}) == 1
    sent = json.loads(server.received[0].body)
    assert sent["refid"] == lines[-1]["refid"] == lines[0]["refid"]
    assert result.stderr == ""


async def test_always_503_exits_5_with_an_explanation() -> None:
    async with ScriptedServer(replies(then=503)) as server:
        result = await simulate(
            server.url(), "--retry-delays", "1,5,30", "--speed", "1000", "--format", "json"
        )
    assert result.returncode == ExitCode.NOT_DELIVERED
    attempts = [x for x in ndjson(result.stdout) if x["type"] == "attempt"]
    assert [x["wait_s"] for x in attempts] == [0.001, 0.005, 0.03, 0.03, None]
    assert len(server.received) == 5
    assert "ipsms: error: message" in result.stderr
    assert "gave up after 5 attempts (last: 503)" in result.stderr


async def test_closed_port_and_max_attempts() -> None:
    result = await simulate(
        f"http://127.0.0.1:{closed_port()}/", "--max-attempts", "2", "--no-wait", "--format", "json"
    )
    assert result.returncode == ExitCode.NOT_DELIVERED
    assert [x.get("error") for x in ndjson(result.stdout)] == [
        "connect_error",
        "connect_error",
        None,
    ]


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
        result = await simulate(
            server.url(),
            "--payload",
            "-",
            "--form",
            "--from",
            "+13035550199",
            "--refid",
            "X" * 32,
            "--format",
            "json",
            input=payload,
        )
    assert result.returncode == 0, result.stderr
    assert server.received[0].content_type == "application/x-www-form-urlencoded"
    assert server.received[0].body == (
        b"refid=XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX&from=%2B13035550199"
        b"&to=1-1234&message=from+stdin&campaign=spring"
    )


async def test_an_exported_line_as_payload_sends_the_recorded_message(tmp_path: Path) -> None:
    """`ipsms messages export | grep REFID | ipsms simulate --payload -`: the message sent is
    the one recorded (its fields, signature included), not the export line with its
    `received_at`, `headers`... as extra fields; the lines `ipsms verify -` cannot use are
    refused with what to use instead."""
    db = tmp_path / "db.sqlite3"
    extra = json.dumps({"message": "recorded text", "campaign": "spring"})
    async with running_listener(db, secret="s3cret") as listener:
        first = await simulate(
            f"http://127.0.0.1:{listener.port}/sms",
            "--secret",
            "s3cret",
            "--payload",
            "-",
            input=extra,
        )
        assert first.returncode == 0, first.stderr
    recorded = store_body(db)
    [line] = run_ipsms("messages", "export", "--db", str(db)).stdout.splitlines()
    assert run_ipsms("verify", "-", "--secret", "s3cret", input=line).returncode == 0
    async with ScriptedServer(replies(then=200)) as server:
        again = await simulate(server.url(), "--payload", "-", "--format", "json", input=line)
        changed = await simulate(
            server.url(), "--payload", "-", "--message", "new text", "--format", "json", input=line
        )
    assert again.returncode == changed.returncode == 0, again.stderr + changed.stderr
    sent, overridden = (json.loads(r.body) for r in server.received)
    assert sent == json.loads(recorded)  # the same fields, in the same order
    assert list(sent) == ["refid", "from", "to", "message", "campaign", "signature"]
    assert overridden == {**sent, "message": "new text"}

    listed = run_ipsms("messages", "list", "--db", str(db)).stdout.strip()
    redacted = run_ipsms("messages", "export", "--redact", "--db", str(db)).stdout.strip()
    for text, words in (
        (listed, "is a line without the message's body or signature"),
        (redacted, "is a line of a redacted export"),
        (line + "\n" + line + "\n", "holds 2 lines: it takes one message"),
    ):
        result = await simulate("http://127.0.0.1:9/", "--payload", "-", input=text)
        assert result.returncode == ExitCode.USAGE, result.stderr
        assert result.stderr.startswith(f"ipsms: error: --payload stdin {words}"), result.stderr
    assert (
        "use its line of `ipsms messages export`, or deliver the recorded message again: "
        f"ipsms replay {sent['refid']}"
        in (await simulate("http://127.0.0.1:9/", "--payload", "-", input=listed)).stderr
    )


def store_body(db: Path) -> bytes:
    conn = store.connect(db, create=False)
    try:
        [row] = list(store.iter_all(conn))
        return row.body
    finally:
        conn.close()


async def test_invalid_numbers_exit_2_unless_allowed() -> None:
    async with ScriptedServer(replies(then=200)) as server:
        bad = await simulate(server.url(), "--from", "+7708675309")
        ok = await simulate(
            server.url(), "--from", "+7708675309", "--allow-invalid", "--format", "json"
        )
    assert bad.returncode == ExitCode.USAGE
    assert "invalid from number" in bad.stderr and "+7 numbers have 11" in bad.stderr
    assert "--allow-invalid" in bad.stderr
    assert ok.returncode == 0
    assert len(server.received) == 1  # the refused one was never sent
    assert json.loads(server.received[0].body)["from"] == "+7708675309"


async def test_a_phone_number_written_as_a_short_code_is_refused_and_flagged(
    tmp_path: Path,
) -> None:
    """`--from 555-1234` took the shape of a short code and went out unflagged. It is a 7-digit
    phone number: simulate refuses it as it refuses any invalid number, and sent on purpose
    the listener accepts it (it never rejects a message for the shape of `from`) and flags
    it, as it does a real sender's."""
    async with running_listener(tmp_path / "db.sqlite3") as listener:
        url = f"http://127.0.0.1:{listener.port}/sms"
        refused = await simulate(url, "--from", "555-1234")
        sent = await simulate(
            url, "--from", "555-1234", "--to", "303-8675309", "--allow-invalid", "--format", "json"
        )
        real = await simulate(url, "--from", "1-12345", "--format", "json")
    assert refused.returncode == ExitCode.USAGE
    assert (
        "invalid from number: '555-1234' looks like a 7-digit local phone number, not a short code"
    ) in refused.stderr and "--allow-invalid" in refused.stderr
    assert sent.returncode == real.returncode == 0, sent.stderr + real.stderr
    odd, fine = (e for e in listener.events if isinstance(e, Request))
    assert (odd.status, odd.from_number) == (200, "555-1234")
    flags = {f["code"]: f["detail"] for f in odd.flags or []}
    assert "555 is not a country code" in flags["from_format"]
    assert "write it in E.164: +13038675309" in flags["to_format"]
    assert fine.flags == []


@pytest.mark.parametrize(
    ("delays", "words"),
    [
        ("1,,2", "--retry-delays '1,,2': delay 2 of 3 is empty"),
        ("1,2,", "delay 3 of 3 is empty"),
        ("", "--retry-delays '' has no delays"),
    ],
)
async def test_an_empty_retry_delay_is_refused_not_dropped(delays: str, words: str) -> None:
    """`--retry-delays 1,,2` was read as 1,2: a slip that silently changed the schedule."""
    async with ScriptedServer(replies(then=200)) as server:
        result = await simulate(server.url(), "--retry-delays", delays)
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert words in result.stderr
    assert server.received == []


def test_load_mode_help_names_the_values_it_speaks_of() -> None:
    """`--rate N  Start at most R new messages per second`: the help names what it uses."""
    shown = " ".join(run_ipsms("simulate", "--help", columns=80).stdout.split())
    assert "--rate N Start at most N new messages per second" in shown
    assert " R " not in shown


async def test_usage_errors_exit_2() -> None:
    for args, text in (
        (["ftp://127.0.0.1/"], "not an http"),
        (["--retry-delays", "1,soon"], "--retry-delays"),
        (["--backoff", "fast"], "--backoff"),
        (["--success", "201"], "success rule"),
        (["--count", "3", "--refid", "X" * 32], "--refid"),
    ):
        result = await simulate(*args)
        assert result.returncode == ExitCode.USAGE, (args, result.stderr)
        assert text in result.stderr


async def test_load_mode_summary() -> None:
    async with ScriptedServer(replies(then=200)) as server:
        result = await simulate(
            server.url(), "--count", "60", "--concurrency", "6", "--no-wait", "--format", "json"
        )
    assert result.returncode == 0, result.stderr
    (summary,) = ndjson(result.stdout)
    assert summary["type"] == "summary"
    assert (summary["messages"], summary["delivered"], summary["attempts"]) == (60, 60, 60)
    assert len({json.loads(r.body)["refid"] for r in server.received}) == 60
    assert summary["workers"] == 1  # under 1,000 messages: one process, it starts faster
    lat = summary["latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]


async def test_load_mode_exit_5_when_some_are_not_delivered() -> None:
    async with ScriptedServer(replies(503, 503, then=200)) as server:
        result = await simulate(
            server.url(),
            "--count",
            "4",
            "--concurrency",
            "1",
            "--max-attempts",
            "1",
            "--format",
            "plain",
        )
    assert result.returncode == ExitCode.NOT_DELIVERED
    assert "delivered: 2" in result.stdout and "gave up: 2" in result.stdout
    assert "2 of 4 messages were not delivered" in result.stderr


async def test_fail_first_3_into_a_real_listener(tmp_path: Path) -> None:
    """End to end: the listener records one refid with attempts 1 to 4.
    (The listener runs in this process: ``ipsms listen`` as a process has its own tests.)"""
    db = tmp_path / "listen.sqlite3"
    async with running_listener(db) as listener:
        result = await simulate(
            f"http://127.0.0.1:{listener.port}/sms",
            "--fail-first",
            "3",
            "--no-wait",
            "--format",
            "json",
        )
    assert result.returncode == 0, result.stderr
    lines = ndjson(result.stdout)
    assert [(x["status"], x["forced_failure"], x["ok"]) for x in lines[:4]] == [
        (200, True, False)
    ] * 3 + [(200, False, True)]
    refid = lines[-1]["refid"]
    requests = [e for e in listener.events if isinstance(e, Request)]
    assert [(e.refid, e.attempt, e.status) for e in requests] == [
        (refid, n, 200) for n in (1, 2, 3, 4)
    ]
    conn = store.connect(db, create=False)
    try:
        recorded = store.attempts_for(conn, refid)
        assert [r.attempt for r in recorded] == [1, 2, 3, 4]
        assert len({r.body for r in recorded}) == 1
        assert store.count(conn) == 4
    finally:
        conn.close()


# -- stale kept-alive connections: attempts shown == requests the server read ---------------


async def test_gave_up_after_5_attempts_the_server_really_received() -> None:
    """The server answers 500 without ``Connection: close`` and closes the socket a moment
    later: every attempt shown is a request it read, and nothing else is."""
    async with RawServer(acts(then=500)) as server:
        result = await simulate(server.url(), "--no-wait", "--format", "json")
    assert result.returncode == ExitCode.NOT_DELIVERED, result.stderr
    attempts = [x for x in ndjson(result.stdout) if x["type"] == "attempt"]
    assert [(x["attempt"], x["status"]) for x in attempts] == [(n, 500) for n in range(1, 6)]
    assert len(server.received) == 5
    assert "gave up after 5 attempts (last: 500)" in result.stderr


@pytest.mark.parametrize(
    "args, script, delivered_on",
    [
        ((), acts(500, 500, then=200), 3),
        (("--fail-first", "2"), acts(then=200), 3),
        (("--fail-first", "5"), acts(then=200), None),
    ],
)
async def test_attempts_equal_requests_received_with_retries_and_fail_first(
    args: tuple[str, ...], script: Callable[[int], Act], delivered_on: int | None
) -> None:
    async with RawServer(script) as server:
        result = await simulate(server.url(), "--no-wait", "--format", "json", *args)
    outcome = ndjson(result.stdout)[-1]
    assert outcome["type"] == "outcome" and outcome["delivered_on"] == delivered_on
    assert outcome["attempts"] == len(server.received) == (delivered_on or 5)
    assert result.returncode == (0 if delivered_on else ExitCode.NOT_DELIVERED)


async def test_load_mode_counts_no_stale_connection_as_an_attempt() -> None:
    async with RawServer(acts(then=200)) as server:
        result = await simulate(
            server.url(), "--count", "20", "--concurrency", "2", "--no-wait", "--format", "json"
        )
    assert result.returncode == 0, result.stderr
    (summary,) = ndjson(result.stdout)
    assert (summary["attempts"], summary["retries"], summary["results"]) == (20, 0, {"200": 20})
    assert len(server.received) == 20
    assert summary["reconnects"] > 0  # pooled connections did go stale, and were not counted


# -- refids that are not 32 characters, text with lone surrogates -----------------------------


@pytest.mark.parametrize("refid", ["ABC", "X" * 40, ""])
async def test_a_refid_that_is_not_32_characters_is_sent_with_a_warning(refid: str) -> None:
    async with ScriptedServer(replies(then=200)) as server:
        result = await invoke(server.url(), "--refid", refid, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(server.received[0].body)["refid"] == refid
    assert ndjson(result.stdout)[-1]["refid"] == refid
    assert result.stderr == (
        f"ipsms simulate: warning: refid {refid!r} has {len(refid)} "
        "characters, IntelePeer's have 32; sending it as given\n"
    )


async def test_a_32_character_refid_gets_no_warning() -> None:
    async with ScriptedServer(replies(then=200)) as server:
        result = await invoke(server.url(), "--refid", "A" * 32, "--format", "json")
    assert result.exit_code == 0 and result.stderr == ""


@pytest.mark.parametrize("form", [False, True], ids=["json", "form"])
async def test_lone_surrogates_from_a_payload_file_are_sent_on_purpose(
    tmp_path: Path, form: bool
) -> None:
    """A payload file can hold what a carrier delivers when a segment splits a UTF-16 pair:
    JSON sends the escape, a form the surrogatepass bytes; the listener reads both back."""
    payload = tmp_path / "split.json"
    payload.write_text('{"message": "half \\ud83d, whole \\ud83d\\ude00 \u00e9"}')
    async with ScriptedServer(replies(then=200)) as server:
        result = await invoke(
            server.url(),
            "--payload",
            str(payload),
            "--format",
            "json",
            *(["--form"] if form else []),
        )
    assert result.exit_code == 0, result.output
    body = server.received[0].body
    if form:
        assert b"message=half+%ED%A0%BD%2C+whole+%F0%9F%98%80+%C3%A9" in body
    else:
        assert '"message": "half \\ud83d, whole \U0001f600 \u00e9"'.encode() in body
    # What the listener does: json.loads, or parse_qsl with surrogatepass.
    fields = (
        dict(parse_qsl(body.decode("ascii"), errors="surrogatepass")) if form else json.loads(body)
    )
    assert fields["message"] == "half \ud83d, whole \U0001f600 \u00e9"
    assert "message has a lone UTF-16 surrogate" in result.stderr
    assert ("surrogatepass bytes" if form else "JSON escapes") in result.stderr


async def test_emoji_and_other_non_bmp_text_from_the_command_line_is_plain_utf8() -> None:
    async with ScriptedServer(replies(then=200)) as server:
        result = await simulate(
            server.url(), "--message", "hi \U0001f600 \U00020000", "--format", "json"
        )
        form = await simulate(server.url(), "--message", "\U0001f600", "--form")
    assert result.returncode == form.returncode == 0
    assert result.stderr == form.stderr == ""
    assert json.loads(server.received[0].body)["message"] == "hi \U0001f600 \U00020000"
    assert "\U0001f600".encode() in server.received[0].body
    assert b"message=%F0%9F%98%80" in server.received[1].body


async def test_bytes_that_are_not_utf8_on_the_command_line_are_a_usage_error() -> None:
    """A real argv cannot carry a surrogate: Python decodes non-UTF-8 bytes to U+DC80..DCFF."""

    def run(url: str) -> subprocess.CompletedProcess[bytes]:
        argv: list[str | bytes] = [
            sys.executable,
            "-m",
            "ipsms",
            "simulate",
            url,
            "--message",
            b"caf\xe9",
        ]
        return subprocess.run(argv, capture_output=True, env=cli_env(), cwd=ROOT, timeout=30)

    async with ScriptedServer(replies(then=200)) as server:
        result = await asyncio.to_thread(run, server.url())
    assert result.returncode == ExitCode.USAGE
    err = result.stderr.decode()
    assert err.startswith("ipsms: error: --message has byte 0xE9 that is not UTF-8 (character 4)")
    assert "--payload" in err and "Traceback" not in err
    assert server.received == []


@pytest.mark.parametrize("option", ["--message", "--refid", "--from", "--to"])
@pytest.mark.parametrize("text", ["x\ud800", "\udcff"])
async def test_a_surrogate_in_an_option_is_a_usage_error_in_process(option: str, text: str) -> None:
    async with ScriptedServer(replies(then=200)) as server:
        result = await invoke(server.url(), option, text, "--allow-invalid")
    assert result.exit_code == ExitCode.USAGE
    assert f"ipsms: error: {option} has " in result.stderr
    assert server.received == []


# -- an app that refuses the message: the hint says what to change ---------------------------


@pytest.mark.parametrize(
    ("listener_mode", "sent"),
    [
        ("plain", ["--secret", "not-the-secret"]),
        ("hmac", ["--secret", "s3cret", "--signature-mode", "plain"]),
        ("auto", []),  # unsigned: a missing signature
    ],
)
async def test_a_rejected_signature_names_the_settings_to_change(
    tmp_path: Path, listener_mode: str, sent: list[str]
) -> None:
    from ipsms.signature import Mode

    async with running_listener(
        tmp_path / "db.sqlite3", secret="s3cret", signature_mode=Mode(listener_mode)
    ) as listener:
        result = await simulate(
            f"http://127.0.0.1:{listener.port}/sms", "--no-wait", "--max-attempts", "2", *sent
        )
    assert result.returncode == ExitCode.NOT_DELIVERED
    error = result.stderr.strip().splitlines()[-1]
    assert (
        error.startswith("ipsms: error: message ")
        and "gave up after 2 attempts (last: 403)" in error
    )
    assert "rejected the signature" in error
    assert "--secret" in error and "--signature-mode" in error and "--hmac" in error
    assert "ipsms messages show" in error


async def test_a_plain_403_still_mentions_the_signature_settings() -> None:
    async with ScriptedServer(replies(then=403)) as server:
        result = await simulate(server.url(), "--no-wait", "--max-attempts", "2")
    assert result.returncode == ExitCode.NOT_DELIVERED
    assert "refused the message (403)" in result.stderr and "--signature-mode" in result.stderr


async def test_a_401_says_to_put_credentials_in_the_url_and_that_works(tmp_path: Path) -> None:
    async with running_listener(tmp_path / "db.sqlite3", basic_auth=("ann", "pw")) as listener:
        refused = await simulate(
            f"http://127.0.0.1:{listener.port}/sms", "--no-wait", "--max-attempts", "1"
        )
        delivered = await simulate(f"http://ann:pw@127.0.0.1:{listener.port}/sms")
    assert refused.returncode == ExitCode.NOT_DELIVERED
    assert "asks for credentials (401)" in refused.stderr and "USER:PASS@" in refused.stderr
    assert delivered.returncode == 0, delivered.stderr


async def test_a_count_that_would_never_end_is_a_usage_error() -> None:
    result = await simulate("http://127.0.0.1:1/", "--count", "99999999999999999999999")
    assert result.returncode == ExitCode.USAGE
    assert result.stderr.startswith("ipsms: error: --count: ") and "10000000" in result.stderr


# -- --workers: several processes ---------------------------------------------------------------


async def test_two_workers_deliver_exactly_count_distinct_messages() -> None:
    async with ScriptedServer(replies(then=200)) as server:
        result = await simulate(
            server.url(),
            "--count",
            "400",
            "--concurrency",
            "10",
            "--workers",
            "2",
            "--no-wait",
            "--format",
            "json",
        )
    assert result.returncode == 0, result.stderr
    (summary,) = ndjson(result.stdout)
    refids = [json.loads(r.body)["refid"] for r in server.received]
    assert len(refids) == len(set(refids)) == 400
    assert (summary["messages"], summary["delivered"], summary["attempts"]) == (400, 400, 400)
    assert summary["workers"] == 2 and summary["results"] == {"200": 400}
    assert server.max_in_flight <= 10  # --concurrency is the total in flight


async def test_rate_holds_across_workers() -> None:
    async with ScriptedServer(replies(then=200)) as server:
        result = await simulate(
            server.url(),
            "--count",
            "50",
            "--rate",
            "100",
            "--concurrency",
            "20",
            "--workers",
            "2",
            "--format",
            "json",
        )
    assert result.returncode == 0, result.stderr
    (summary,) = ndjson(result.stdout)
    assert (summary["delivered"], summary["workers"]) == (50, 2)
    # message 49 is due 0.49 s after the common start; two workers at 100/s each would be 0.25
    assert 0.48 <= summary["elapsed_s"] < 1.5
    assert len(server.received) == 50


@pytest.mark.parametrize("workers", [1, 2])
async def test_ctrl_c_stops_the_workers_and_prints_what_was_done(workers: int) -> None:
    async with ScriptedServer(replies(then=200)) as server:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ipsms",
                "simulate",
                server.url(),
                "--count",
                "2000",
                "--rate",
                "100",
                "--workers",
                str(workers),
                "--format",
                "json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=cli_env(),
            start_new_session=True,
        )
        try:
            for _ in range(300):
                if len(server.received) >= 20:
                    break
                await asyncio.sleep(0.05)
            os.killpg(proc.pid, signal.SIGINT)  # what a terminal does: the whole group
            out, err = await asyncio.to_thread(proc.communicate, timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == ExitCode.INTERRUPTED, err
    (summary,) = ndjson(out)
    assert 20 <= summary["delivered"] < 2000
    assert summary["delivered"] <= len(server.received) <= summary["delivered"] + 20
    assert summary["workers"] == workers
    assert "interrupted" in err and "Traceback" not in err
