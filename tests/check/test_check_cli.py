"""``ipsms check`` against real apps on loopback and the real API emulator: each IntelePeer rule
passes against an app that keeps it and fails, with evidence and a reproduction command,
against one that breaks it; the exit codes, NDJSON, the table and JUnit."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from ipsms.check.cards import IDS
from ipsms.errors import ExitCode
from ipsms.intelepeer.emulator import EmulatorThread, build_state
from tests.check.apps import (
    answering,
    checking,
    closed_port,
    echoing,
    fragile,
    replying,
    serving,
    silent,
    slow,
)
from tests.conftest import run_ipsms
from tests.test_ndjson_doc import SHAPES, check_object

SECRET = "check-secret"
IPSMS = str(Path(sys.executable).with_name("ipsms"))


def run(*args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, dict[str, Any]]]:
    result = run_ipsms("check", *args)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    for line in lines:
        check_object(line, SHAPES["check"], "", "check")
    return result, {line["id"]: line for line in lines}


def verdicts(lines: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {k: v["result"] for k, v in lines.items()}


def test_a_good_app_passes_the_whole_card_in_well_under_ten_seconds() -> None:
    with serving(checking(SECRET)) as url:
        start = time.perf_counter()
        result, lines = run(url, "--secret", SECRET)
        took = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    assert list(lines) == list(IDS)  # every check, in the card's order, ids as documented
    assert {k for k, v in verdicts(lines).items() if v != "passed"} == {"replies-once"}
    assert lines["replies-once"]["result"] == "skipped"
    assert "--replies-via" in lines["replies-once"]["reason"]
    assert took < 10
    assert lines["burst"]["evidence"] and len(lines["burst"]["evidence"]) == 20
    assert "22 checks: 21 passed, 1 skipped" in result.stderr


def test_201_fails_answers_200_with_the_evidence_and_a_simulate_command() -> None:
    with serving(answering(201, "created")) as url:
        result, lines = run(url, "--only", "answers-200", "--only", "text-emoji")
    assert result.returncode == ExitCode.CHECK_FAILED
    assert list(lines) == ["answers-200", "text-emoji"]
    line = lines["answers-200"]
    assert line["result"] == "failed" and "4 more times" in line["did"]
    assert line["evidence"][0]["status"] == 201 and line["evidence"][0]["response"] == "created"
    assert line["reproduce"].startswith(f"ipsms simulate {url} --refid ")
    assert "ipsms: error: 2 of 2 checks failed: answers-200, text-emoji" in result.stderr


def test_a_redirect_fails_no_redirect_saying_where_it_pointed() -> None:
    with serving(answering(302, "", Location="/login")) as url:
        result, lines = run(url, "--only", "no-redirect")
    assert result.returncode == ExitCode.CHECK_FAILED
    assert lines["no-redirect"]["result"] == "failed"
    assert "302 pointing to /login" in lines["no-redirect"]["did"]
    assert lines["no-redirect"]["reproduce"].startswith("curl -i -X POST")


def test_a_slow_app_is_warned_about_and_a_late_one_fails() -> None:
    with serving(slow(0.6)) as url:
        result, lines = run(url, "--timeout", "1s", "--only", "answers-in-time")
        assert result.returncode == 0, result.stderr
        assert lines["answers-in-time"]["result"] == "warning"
        assert "over half" in lines["answers-in-time"]["did"]
        result, lines = run(url, "--timeout", "300ms", "--only", "answers-in-time")
    assert result.returncode == ExitCode.CHECK_FAILED
    assert lines["answers-in-time"]["result"] == "failed"


def test_an_app_that_crashes_on_some_texts_fails_those_checks_only(tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    with serving(fragile) as url:
        result, lines = run(url, "--junit", str(report))
        assert result.returncode == ExitCode.CHECK_FAILED
        failed = {k for k, v in verdicts(lines).items() if v == "failed"}
        assert failed == {"text-emoji", "text-lone-surrogate", "text-long"}
        emoji = lines["text-emoji"]
        assert emoji["evidence"][0]["status"] == 500
        assert "3 of 3 not 200" in emoji["did"]
        # Each failure's command reproduces it: it sends the same text again.
        for check_id in failed:
            command = lines[check_id]["reproduce"].replace("ipsms simulate", f"{IPSMS} simulate")
            repro = subprocess.run(
                ["sh", "-c", command], capture_output=True, text=True, timeout=30
            )
            assert repro.returncode == ExitCode.NOT_DELIVERED, (command, repro.stderr)
            assert '"status":500' in repro.stdout
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert list(cases) == list(IDS)
    assert suite.get("failures") == "3" and suite.get("skipped") == "4"
    failure = cases["text-long"].find("failure")
    assert failure is not None and "reproduce: ipsms simulate" in (failure.text or "")
    assert "1,600 characters: 500" in (failure.text or "")
    skipped = cases["bad-signature"].find("skipped")
    assert skipped is not None and "no secret given" in (skipped.get("message") or "")


def test_signatures_an_app_that_checks_them_and_one_that_does_not() -> None:
    with serving(checking(SECRET)) as url:
        result, lines = run(
            url, "--secret", SECRET, "--only", "bad-signature", "--only", "missing-signature"
        )
    assert result.returncode == 0, result.stderr
    assert "401" in lines["bad-signature"]["did"]
    with serving(answering(200)) as url:
        result, lines = run(
            url, "--secret", SECRET, "--only", "bad-signature", "--only", "missing-signature"
        )
    assert result.returncode == ExitCode.CHECK_FAILED
    assert verdicts(lines) == {"bad-signature": "failed", "missing-signature": "failed"}
    assert "--secret ipsms-check-wrong-secret" in lines["bad-signature"]["reproduce"]
    assert lines["missing-signature"]["reproduce"].startswith("IPSMS_SECRET= ipsms simulate")
    assert SECRET not in result.stdout


def test_an_app_that_echoes_the_secret_fails_no_secret_echo() -> None:
    with serving(echoing) as url:
        result, lines = run(
            url, "--secret", SECRET, "--only", "answers-200", "--only", "no-secret-echo"
        )
    assert result.returncode == ExitCode.CHECK_FAILED
    assert lines["no-secret-echo"]["result"] == "failed"
    assert SECRET not in result.stdout  # the evidence masks it


def test_replies_are_counted_through_the_emulated_send_api() -> None:
    with EmulatorThread(build_state()) as emu:
        with serving(replying(emu.api_base, once=False)) as url:
            result, lines = run(url, "--only", "replies-once", "--replies-via", emu.api_base)
        assert result.returncode == ExitCode.CHECK_FAILED, result.stderr
        assert "sent 2 replies" in lines["replies-once"]["did"]
        with serving(replying(emu.api_base, once=True)) as url:
            result, lines = run(url, "--only", "replies-once", "--replies-via", emu.api_base)
        assert result.returncode == 0, result.stderr
        assert lines["replies-once"]["did"].startswith("replied once")
        # Each delivery came from a number of its own: the replies went to two numbers.
        # Each delivery of replies-once came from a number of its own (the probe from the
        # default one): one number got two replies, the other one.
        counts = sorted(
            len(emu.state.sent_to(n))
            for n in {m.to_number for m in emu.state.sent}
            if n.startswith("+1720555")
        )
        assert counts == [1, 2]


def test_an_app_that_cannot_be_reached_exits_4_and_still_writes_junit(tmp_path: Path) -> None:
    report = tmp_path / "r.xml"
    result, lines = run(f"http://127.0.0.1:{closed_port()}/sms", "--junit", str(report))
    assert result.returncode == ExitCode.NETWORK
    assert "cannot reach the app" in result.stderr and "connection refused" in result.stderr
    assert lines["answers-200"]["result"] == "failed"
    assert {v for k, v in verdicts(lines).items() if k != "answers-200"} == {"skipped"}
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == str(len(IDS))


def test_an_app_that_never_answers_is_bounded_by_the_timeout() -> None:
    with silent() as url:
        start = time.perf_counter()
        result, lines = run(url, "--timeout", "500ms")
        took = time.perf_counter() - start
    assert result.returncode == ExitCode.CHECK_FAILED
    assert took < 5
    assert lines["answers-200"]["evidence"][0]["error"] == "timeout"
    assert lines["answers-in-time"]["result"] == "failed"
    assert lines["burst"]["reason"] == "not run: the app did not answer a plain delivery"


def test_bad_input_is_one_line_and_exit_2_and_junit_is_still_written(tmp_path: Path) -> None:
    report = tmp_path / "u.xml"
    result = run_ipsms("check", "ftp://127.0.0.1/sms", "--junit", str(report))
    assert result.returncode == ExitCode.USAGE
    assert result.stderr.count("\n") == 1 and "not an http:// or https:// URL" in result.stderr
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None and suite.get("errors") == str(len(IDS))
    result = run_ipsms("check", "http://127.0.0.1:9/sms", "--only", "text-emoij")
    assert result.returncode == ExitCode.USAGE
    assert "--only 'text-emoij' is not a check; did you mean text-emoji?" in result.stderr
    result = run_ipsms("check", "http://127.0.0.1:9/", "--timeout", "0")
    assert result.returncode == ExitCode.USAGE


def test_a_terminal_gets_the_table_with_the_reproduction_commands() -> None:
    with serving(fragile) as url:
        result = run_ipsms("check", url, "--skip", "burst", tty=True, columns=120)
    assert result.returncode == ExitCode.CHECK_FAILED
    assert "IntelePeer's rule" in result.stdout and "what the app did" in result.stdout
    assert "burst" not in result.stdout.split("Reproduce:")[0]
    assert "Reproduce:" in result.stdout and "text-long: ipsms simulate" in result.stdout
    assert "21 checks: 14 passed, 3 failed, 4 skipped" in result.stdout


def test_one_check_is_counted_in_the_singular() -> None:
    with serving(checking(SECRET)) as url:
        result, _ = run(url, "--secret", SECRET, "--only", "answers-200")
    assert result.returncode == 0, result.stderr
    assert "1 check: 1 passed" in result.stderr
