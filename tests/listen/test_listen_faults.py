"""Fault injection on the receiving side: `listen --fail-first/--status/--delay`, rehearsed
end to end with `ipsms simulate` (IntelePeer's retry rule from both sides)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from ipsms.errors import ExitCode
from ipsms.listen.faults import FaultInjector, Faults
from ipsms.request import Request
from tests.conftest import run_ipsms
from tests.hostile import running_listener, status_of, stored_rows
from tests.procs import ListenerProcess

REFID = "FAULTS00000000000000000000000001"


def ndjson(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def test_fail_first_2_then_simulate_is_delivered_on_attempt_3(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite3"
    async with running_listener(db, faults=Faults(fail_first=2)) as listener:
        result = await asyncio.to_thread(  # the listener runs on this test's event loop
            run_ipsms,
            "simulate",
            f"http://127.0.0.1:{listener.port}/sms",
            "--refid",
            REFID,
            "--no-wait",
            "--format",
            "json",
        )
        requests = [e for e in listener.events if isinstance(e, Request)]
    assert result.returncode == 0, result.stderr
    lines = ndjson(result.stdout)
    assert [line["status"] for line in lines if line["type"] == "attempt"] == [500, 500, 200]
    assert next(line for line in lines if line["type"] == "outcome")["attempts"] == 3
    assert [(r.attempt, r.status, r.error) for r in requests] == [
        (1, 500, "fault_injected"),
        (2, 500, "fault_injected"),
        (3, 200, None),
    ]
    rows = stored_rows(db)  # recorded whatever was answered, the whole body kept
    assert [(r.refid, r.attempt, r.status) for r in rows] == [
        (REFID, 1, 500),
        (REFID, 2, 500),
        (REFID, 3, 200),
    ]
    assert all(r.message == "Hello World!" and not r.body_truncated for r in rows)


async def test_delay_makes_every_attempt_of_a_short_timeout_time_out(tmp_path: Path) -> None:
    async with running_listener(tmp_path / "d.sqlite3", faults=Faults(delay=0.5)) as listener:
        result = await asyncio.to_thread(
            run_ipsms,
            "simulate",
            f"http://127.0.0.1:{listener.port}/",
            "--timeout",
            "150ms",
            "--max-attempts",
            "2",
            "--no-wait",
            "--format",
            "json",
        )
    assert result.returncode == ExitCode.NOT_DELIVERED
    attempts = [line for line in ndjson(result.stdout) if line["type"] == "attempt"]
    assert [(a["status"], a["error"]) for a in attempts] == [(None, "timeout")] * 2


async def test_status_answers_every_message_but_bad_requests_keep_their_answer(
    tmp_path: Path,
) -> None:
    db = tmp_path / "st.sqlite3"
    async with running_listener(db, faults=Faults(status=503)) as listener:
        first = await listener.post_valid()
        second = await listener.post_valid()
        malformed = status_of(await listener.post(b"{not json"))
    assert (first, second, malformed) == (503, 503, 400)
    rows = stored_rows(db)
    assert [(r.status, r.error) for r in rows] == [
        (503, "fault_injected"),
        (503, "fault_injected"),
        (400, "invalid_json"),
    ]


def test_fail_first_counts_each_refid_and_forgets_the_oldest(monkeypatch: object) -> None:
    import ipsms.listen.faults

    injector = FaultInjector(Faults(fail_first=1))
    assert injector.override("A") is not None and injector.override("A") is None
    assert injector.override("B") is not None and injector.override(None) is None
    setattr(ipsms.listen.faults, "REFIDS_REMEMBERED", 2)  # noqa: B010
    try:
        for refid in ("C", "D", "E"):
            injector.override(refid)
        assert injector.override("A") is not None  # forgotten: counted from 1 again
    finally:
        setattr(ipsms.listen.faults, "REFIDS_REMEMBERED", 100_000)  # noqa: B010


def test_the_listener_says_fault_injection_is_on(tmp_path: Path) -> None:
    listener = ListenerProcess("--fail-first", "2", "--delay", "10ms", db=tmp_path / "p.sqlite3")
    try:
        assert listener.ready["faults"] == {"fail_first": 2, "status": None, "delay": 0.01}
        code, _, err = listener.stop()
    finally:
        listener.kill()
    assert code == 0
    assert (
        "warning: fault injection is on: answering 500 to the first 2 attempts of each "
        "refid, answering 10ms late"
    ) in err


def test_fault_options_are_checked() -> None:
    for args in (
        ["--status", "99"],
        ["--status", "600"],
        ["--fail-first", "-1"],
        ["--delay", "11m"],
        ["--delay", "soon"],
    ):
        result = run_ipsms("listen", *args)
        assert result.returncode == ExitCode.USAGE, args
        assert result.stderr.startswith(f"ipsms: error: {args[0]}: "), args
