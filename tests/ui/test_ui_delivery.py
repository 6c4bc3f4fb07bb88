"""What `simulate` shows on a terminal: the timeline and the load progress bar, rendered by a
real delivery against a real local server; server text never reaches the terminal raw."""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from rich.console import Console

from ipsms.deliver.engine import AttemptEvent, Delivery, deliver_each
from ipsms.deliver.load import LoadPlan, LoadStats, run_load
from ipsms.deliver.retry import RetryPolicy
from ipsms.ui.delivery import LoadProgress, Timeline, attempt_text, summary_lines

MakeServer = Callable[..., Awaitable[TestServer]]


def console() -> Console:
    return Console(file=io.StringIO(), width=160, force_terminal=True, color_system="truecolor")


async def scripted(aiohttp_server: MakeServer, statuses: list[int], body: str) -> TestServer:
    replies = iter(statuses)

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=next(replies, 200), text=body)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handler)
    return await aiohttp_server(app)


async def test_timeline_shows_each_attempt_and_the_outcome(aiohttp_server: MakeServer) -> None:
    server = await scripted(aiohttp_server, [500, 503, 200], "ok \x1b[2J\x1b]0;x\x07 [b]hi[/b]")
    out = console()
    policy = RetryPolicy.from_options(no_wait=True)
    delivery = Delivery(
        str(server.make_url("/sms")),
        b'{"refid":"R"}',
        "application/json",
        refid="R" * 32,
        signature="the-shared-secret",
    )
    tally = await deliver_each([delivery], policy, Timeline(out, policy))
    text = out.file.getvalue()  # type: ignore[attr-defined]
    assert tally.gave_up == 0
    lines = [line for line in text.splitlines() if "#" in line and ":" in line]
    assert len(lines) == 3
    assert "500" in lines[0] and "failed" in lines[0] and "retry now" in lines[0]
    assert "503" in lines[1] and "200" in lines[2] and "delivered" in lines[2]
    assert "✓ delivered on attempt 3" in text
    assert "the-shared-secret" not in text  # the signature is masked
    assert "\x1b[2J" not in text and "\x1b]0;" not in text and "\x07" not in text
    assert "\\e[2J" in text and "[b]hi[/b]" in text


async def test_load_progress_reaches_the_total(aiohttp_server: MakeServer) -> None:
    server = await scripted(aiohttp_server, [], "ok")
    out = console()
    url = str(server.make_url("/"))

    def make(i: int) -> Delivery:
        return Delivery(url, b"{}", "application/json", refid=f"{i:032d}")

    with LoadProgress(50, out) as progress:
        stats = await run_load(
            LoadPlan(50, 8, None), make, RetryPolicy.from_options(), on_progress=progress
        )
    assert stats.delivered == 50
    text: Any = out.file.getvalue()  # type: ignore[attr-defined]
    assert "50/50" in text and "✓ 50 ✗ 0" in text


def test_an_attempt_resent_after_a_stale_connection_says_so() -> None:
    event = AttemptEvent(
        "R" * 32,
        1,
        1_700_000_000.0,
        200,
        None,
        None,
        0.002,
        "ok",
        True,
        False,
        None,
        reconnected=True,
    )
    assert "(resent on a new connection: the kept-alive one was already closed)" in (
        attempt_text(event)
    )
    out = console()
    Timeline(out).attempt(event)
    assert "resent on a new connection" in out.file.getvalue()  # type: ignore[attr-defined]
    assert event.to_dict()["reconnected"] is True
    plain = attempt_text(
        AttemptEvent(None, 2, 1_700_000_000.0, 503, None, None, 0.1, "", False, False, 1.0)
    )
    assert "new connection" not in plain


def test_the_load_summary_counts_reconnects_only_when_there_were_some() -> None:
    stats = LoadStats(3, delivered=3, attempts=3, reconnects=2)
    (attempts,) = [value for name, value in summary_lines(stats) if name == "attempts"]
    assert attempts.endswith(", 2 resent on a new connection after a stale kept-alive one)")
    (quiet,) = [value for name, value in summary_lines(LoadStats(1)) if name == "attempts"]
    assert "resent" not in quiet
