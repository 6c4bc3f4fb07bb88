"""The pytest plugin's ``ipsms_check``: the card against an app, from a test suite, with the
ids that passed and failed and a report readable in an assertion message."""

from __future__ import annotations

import pytest

from tests.test_pytest_plugin import run

pytest_plugins = ["pytester"]

SUITE = """
import asyncio
import threading

import pytest
from aiohttp import web

SECRET = "ipsms-test-secret"


def serve(handler):
    app = web.Application()
    app.router.add_post("/sms", handler)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
    threading.Thread(target=loop.run_forever, daemon=True).start()
    return f"http://127.0.0.1:{runner.addresses[0][1]}/sms"


async def good(request):
    data = await request.post() if request.content_type.endswith("urlencoded") \\
        else await request.json()
    if data.get("signature") != SECRET:
        return web.json_response({"error": "bad signature"}, status=403)
    return web.json_response({"ok": True})


async def created(request):
    await request.read()
    return web.Response(status=201)


def test_a_good_app_passes(ipsms_check):
    result = ipsms_check(serve(good))
    assert not result.failed, result.report
    assert "answers-200" in result.passed and "bad-signature" in result.passed
    assert result.skipped == ["replies-once"]


def test_a_201_fails_with_a_readable_report(ipsms_check):
    result = ipsms_check(serve(created), only=("answers-200",), secret=None)
    assert result.failed == ["answers-200"]
    assert "4 more times" in result.report
    assert "reproduce: ipsms simulate http://127.0.0.1:" in result.report
    assert "--max-attempts 1" in result.report
"""


def test_ipsms_check_runs_the_card_from_a_test_suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_app=SUITE)
    result = run(pytester, "-q")
    result.assert_outcomes(passed=2)
