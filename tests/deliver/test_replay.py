"""``ipsms replay``: recorded messages go out again byte for byte, through the same engine."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from ipsms.errors import ExitCode
from ipsms.listen.app import ListenConfig
from ipsms.listen.server import ListenServer
from tests.cli.test_simulate_cli import ndjson
from tests.conftest import run_ipsms
from tests.deliver.test_delivery import ScriptedServer, replies
from tests.deliver.test_delivery_stale import RawServer, acts

FORM_BODY = (
    b"refid=FORM0000000000000000000000001&from=%2B13035550100&to=%2B13038675309"
    b"&message=caf%C3%A9+%26+cr%C3%A8me+%E2%9C%93&signature=shared-code&extra=1"
)
FORM_TYPE = "application/x-www-form-urlencoded; charset=UTF-8"


@pytest.fixture
async def recorded(tmp_path: Path) -> AsyncIterator[Path]:
    """A store filled by a real listener: a form message (twice) and a JSON one."""
    db = tmp_path / "rec.sqlite3"
    server = ListenServer(ListenConfig(secret="shared-code"), db, "127.0.0.1", 0)
    bound = await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            for body, ctype in (
                (FORM_BODY, FORM_TYPE),
                (FORM_BODY, FORM_TYPE),
                (
                    b'{"refid":"JSON0000000000000000000000000002","from":'
                    b'"+13035550100","to":"1-1234","message":"hi",'
                    b'"signature":"shared-code"}',
                    "application/json",
                ),
            ):
                async with session.post(
                    bound.url + "inbound", data=body, headers={"Content-Type": ctype}
                ) as resp:
                    assert resp.status == 200
    finally:
        await server.stop()
    yield db


async def replay(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run_ipsms, "replay", *args)


async def test_a_form_message_is_replayed_byte_for_byte(recorded: Path) -> None:
    async with ScriptedServer(replies(500, then=200)) as target:
        result = await replay(
            "FORM0000000000000000000000001",
            "--to",
            target.url("/app"),
            "--db",
            str(recorded),
            "--no-wait",
            "--format",
            "json",
        )
    assert result.returncode == 0, result.stderr
    assert [r.body for r in target.received] == [FORM_BODY, FORM_BODY]
    assert {r.content_type for r in target.received} == {FORM_TYPE}
    lines = ndjson(result.stdout)
    assert [x["type"] for x in lines] == ["attempt", "attempt", "outcome"]
    outcome = lines[-1]
    assert outcome["delivered_on"] == 2 and outcome["source"] == "replay of request #1"
    assert outcome["signature"] == "****(11)"
    assert "shared-code" not in result.stdout + result.stderr


async def test_replay_all_delivers_each_refid_once(recorded: Path) -> None:
    async with ScriptedServer(replies(then=200)) as target:
        result = await replay(
            "--all",
            "--since",
            "1h",
            "--to",
            target.url(),
            "--db",
            str(recorded),
            "--format",
            "json",
        )
    assert result.returncode == 0, result.stderr
    assert len(target.received) == 2
    assert target.received[0].body == FORM_BODY
    assert json.loads(target.received[1].body)["refid"] == "JSON0000000000000000000000000002"
    assert target.received[1].content_type == "application/json"
    summary = ndjson(result.stdout)[-1]
    assert (summary["type"], summary["messages"], summary["delivered"]) == ("summary", 2, 2)


async def test_replay_all_with_nothing_in_the_window(recorded: Path) -> None:
    async with ScriptedServer(replies(then=200)) as target:
        result = await replay(
            "--all",
            "--since",
            "0s",
            "--to",
            target.url(),
            "--db",
            str(recorded),
            "--format",
            "json",
        )
    assert result.returncode == 0
    assert target.received == []
    assert "no recorded messages to replay in the last 0s" in result.stderr
    assert ndjson(result.stdout)[-1]["messages"] == 0


async def test_replay_uses_the_retry_rule_and_exit_code(recorded: Path) -> None:
    async with ScriptedServer(replies(then=503)) as target:
        result = await replay(
            "JSON0000000000000000000000000002",
            "--to",
            target.url(),
            "--db",
            str(recorded),
            "--max-attempts",
            "3",
            "--no-wait",
            "--format",
            "plain",
        )
    assert result.returncode == ExitCode.NOT_DELIVERED
    assert len(target.received) == 3
    assert "gave up after 3 attempts (last: 503)" in result.stdout
    assert "ipsms: error: message JSON0000000000000000000000000002 was not delivered" in (
        result.stderr
    )


async def test_unknown_refid_is_not_found(recorded: Path) -> None:
    result = await replay("NOPE", "--db", str(recorded), "--format", "json")
    assert result.returncode == ExitCode.NOT_FOUND
    assert "no recorded message with refid 'NOPE'" in result.stderr
    assert result.stdout == ""


async def test_replay_arguments_are_checked(recorded: Path, tmp_path: Path) -> None:
    neither = await replay("--db", str(recorded))
    both = await replay("X", "--all", "--db", str(recorded))
    since = await replay("X", "--since", "5m", "--db", str(recorded))
    no_db = await replay("X", "--db", str(tmp_path / "absent.sqlite3"))
    assert neither.returncode == both.returncode == since.returncode == ExitCode.USAGE
    assert "either a REFID or --all" in neither.stderr
    assert no_db.returncode == ExitCode.NOT_FOUND and "no message store" in no_db.stderr
    assert not (tmp_path / "absent.sqlite3").exists()


async def test_to_is_a_url_in_help_and_in_its_error(recorded: Path) -> None:
    """simulate's --to is a number (TN); replay's is the webhook to deliver to, and its help
    and error say so (they said `--to TN`, then named no option at all)."""
    shown = run_ipsms("replay", "--help", columns=80).stdout
    assert "--to URL" in shown and "--to TN" not in shown
    result = await replay(
        "FORM0000000000000000000000001", "--to", "+13038675309", "--db", str(recorded)
    )
    assert result.returncode == ExitCode.USAGE
    error = result.stderr.strip()
    assert error.startswith(
        "ipsms: error: --to '+13038675309' is not an http:// or https:// "
        "URL; --to is the webhook URL to deliver to"
    )
    assert "keeps its recorded numbers" in error and result.stdout == ""


async def test_replay_all_counts_no_stale_connection_as_an_attempt(recorded: Path) -> None:
    """The second message goes out on the first one's kept-alive connection, which the server
    closes after answering: it is resent on a new connection, one attempt, one request read."""
    async with RawServer(acts(then=200)) as target:
        result = await replay(
            "--all", "--to", target.url(), "--db", str(recorded), "--no-wait", "--format", "json"
        )
    assert result.returncode == 0, result.stderr
    lines = ndjson(result.stdout)
    attempts = [x for x in lines if x["type"] == "attempt"]
    assert [(x["attempt"], x["status"], x["reconnected"]) for x in attempts] == [
        (1, 200, False),
        (1, 200, True),
    ]
    assert target.received[0] == FORM_BODY and len(target.received) == 2
    assert (lines[-1]["attempts"], lines[-1]["reconnects"]) == (2, 1)
