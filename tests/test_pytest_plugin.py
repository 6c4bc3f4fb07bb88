"""The pytest plugin, as a user meets it: real inner pytest runs (``pytester``) of a suite that
uses the fixtures against a small aiohttp app, over loopback sockets.

The inner runs get the plugin as a user does, through the ``pytest11`` entry point, when the
package is installed with it (CI's ``pip install .``); from a checkout that was installed before
the entry point existed, they load it with ``-p ipsms.pytest_plugin`` instead. They run in
this process: as a subprocess, each inner run would also pay an interpreter's start-up and
every import again (``pytest --durations`` shows it)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import pytest

from tests.conftest import ROOT

pytest_plugins = ["pytester"]

DOC = ROOT / "docs" / "pytest-plugin.md"
INI = """
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
"""


def doc_files() -> dict[str, str]:
    """The files of the doc's runnable example: python blocks that start with ``# file:``."""
    blocks = re.findall(r"```python\n# file: (\S+)\n(.*?)```", DOC.read_text(), re.DOTALL)
    return dict(blocks)


def _entry_point_installed() -> bool:
    from importlib.metadata import entry_points

    return any(e.value == "ipsms.pytest_plugin" for e in entry_points(group="pytest11"))


LOAD = [] if _entry_point_installed() else ["-p", "ipsms.pytest_plugin"]


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makeini(INI)
    # Hypothesis's plugin would take most of each in-process run (pytest --durations): off.
    return pytester.runpytest_inprocess(
        *LOAD, "-p", "no:cacheprovider", "-p", "no:hypothesispytest", *args
    )


def test_the_docs_example_passes(pytester: pytest.Pytester) -> None:
    files = doc_files()
    assert set(files) == {"smsapp.py", "test_sms_sync.py", "test_sms_async.py"}
    for name, text in files.items():
        pytester.makepyfile(**{name.removesuffix(".py"): text})
    pytester.syspathinsert()
    result = run(pytester, "-q")
    result.assert_outcomes(passed=5)


APP = """
from aiohttp import web

GOT, FAIL = web.AppKey("got", list), web.AppKey("fail", int)

async def sms(request):
    data = await request.json()
    request.app[GOT].append(data)
    status = 503 if len(request.app[GOT]) <= request.app[FAIL] else 200
    return web.json_response({"n": len(request.app[GOT])}, status=status)

def make_app(fail=0):
    app = web.Application()
    app[GOT], app[FAIL] = [], fail
    app.router.add_post("/sms", sms)
    return app
"""


def test_deliver_reports_each_attempt_the_app_answered(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(app=APP)
    pytester.makepyfile(
        test_deliver="""
        import pytest
        from app import GOT, make_app

        @pytest.mark.asyncio
        async def test_retries_until_200(aiohttp_server, ipsms_deliver, ipsms_secret):
            server = await aiohttp_server(make_app(fail=2))
            result = await ipsms_deliver.deliver_async(
                server.make_url("/sms"), "yes", from_="+13035550111", to="1-12345",
                refid="R" * 32, extra={"carrier": "x"})
            assert result.statuses == [503, 503, 200]
            assert [a.number for a in result.attempts] == [1, 2, 3]
            assert all(a.latency > 0 for a in result.attempts)
            assert result.attempts[-1].response == '{"n": 3}'
            assert result.outcome.delivered_on == 3
            got = server.app[GOT]
            assert got[0] == got[2] == {"refid": "R" * 32, "from": "+13035550111",
                                        "to": "1-12345", "message": "yes", "carrier": "x",
                                        "signature": ipsms_secret}

        @pytest.mark.asyncio
        async def test_gives_up_after_max_attempts(aiohttp_server, ipsms_deliver):
            server = await aiohttp_server(make_app(fail=99))
            result = await ipsms_deliver.deliver_async(server.make_url("/sms"), max_attempts=3,
                                                       secret=None, signature_mode="hmac")
            assert not result.delivered and result.statuses == [503] * 3
            assert "signature" not in server.app[GOT][0]
            assert result.outcome.describe() == "gave up after 3 attempts (last: 503)"

        @pytest.mark.asyncio
        async def test_the_blocking_form_refuses_an_event_loop(ipsms_deliver):
            with pytest.raises(RuntimeError, match="deliver_async"):
                ipsms_deliver("http://127.0.0.1:9/")

        def test_nothing_listening(ipsms_deliver, ipsms_listener):
            url = ipsms_listener.url
            ipsms_listener.close()
            result = ipsms_deliver(url, max_attempts=2)
            assert [a.error for a in result.attempts] == ["connect_error"] * 2
    """
    )
    run(pytester, "-q").assert_outcomes(passed=4)


def test_listener_waits_and_assertions(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_listen="""
        import re
        import pytest
        from ipsms.listen.faults import Faults

        def test_matches_by_every_field(ipsms_listener, ipsms_deliver):
            ok = ipsms_deliver(ipsms_listener.url, "Reply STOP", from_="+13035550111",
                               fail_first=1)
            bad = ipsms_deliver(ipsms_listener.url, "forged", secret="wrong", max_attempts=1)
            both = ipsms_listener.wait_for_many(2, ok.refid, to="+13038675309", verdict="valid")
            assert [r.attempt for r in both] == [1, 2]
            assert ipsms_listener.wait_for(text=re.compile("STOP"), attempt=2) is both[1]
            forged = ipsms_listener.wait_for(bad.refid)
            assert (forged.verdict, forged.status) == ("invalid", 403)
            assert len(ipsms_listener.assert_received(from_="+13035550111", count=2)) == 2
            assert len(ipsms_listener.messages) == 3
            ipsms_listener.assert_not_received(text="nope", within=0.05)

        class TestAFailingListener:
            @pytest.fixture
            def ipsms_listener_config(self, ipsms_secret):
                return {"secret": ipsms_secret, "faults": Faults(fail_first=1)}

            @pytest.mark.asyncio
            async def test_config_override_and_async_wait(self, ipsms_listener, ipsms_deliver):
                result = await ipsms_deliver.deliver_async(ipsms_listener.url)
                assert result.statuses == [500, 200]
                first = await ipsms_listener.wait_for_async(result.refid, status=500)
                assert first.attempt == 1

        def test_fails_with_what_arrived(ipsms_listener, ipsms_deliver):
            ipsms_deliver(ipsms_listener.url, "hi", refid="K" * 32)
            ipsms_listener.wait_for(refid="NOPE", verdict="valid", timeout=0.2)

        def test_not_received_fails(ipsms_listener, ipsms_deliver):
            ipsms_deliver(ipsms_listener.url, "hi", secret=None, max_attempts=1)
            ipsms_listener.assert_not_received(verdict="missing")
    """
    )
    result = run(pytester, "-q")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*expected a request matching refid='NOPE', verdict='valid' within 0.2 s; 0 matched",
            "*the listener at http://127.0.0.1:*/ received 1:",
            f"*refid {'K' * 32} attempt 1 from +13035550100 to +13038675309 text 'hi', verdict "
            f"valid, answered 200  <- refid '{'K' * 32}' (wanted 'NOPE')",
            "*expected no request matching verdict='missing', received 1:",
        ]
    )
    # the failure points at the user's line, not into the plugin
    assert "ipsms/testing/listener.py" not in result.stdout.str()


def test_emulator_fixture_records_calls(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_api="""
        import asyncio
        import aiohttp

        def test_demo_account_and_faults(ipsms_emulator):
            async def login():
                async with aiohttp.ClientSession() as session:
                    async with session.post(ipsms_emulator.auth_url, json={
                            "username": ipsms_emulator.username,
                            "password": ipsms_emulator.password}) as answer:
                        return answer.status
            ipsms_emulator.fail_next(503, path=ipsms_emulator.AUTH_PATH)
            assert asyncio.run(login()) == 503
            assert asyncio.run(login()) == 200
            assert [c.status for c in ipsms_emulator.calls_to(ipsms_emulator.AUTH_PATH)] == [
                503, 200]
            assert ipsms_emulator.calls[1].json["username"] == "demo"
            assert ipsms_emulator.numbers["+13035550199"].sms_enabled is False
            assert ipsms_emulator.webhooks == {}
            assert ipsms_emulator.env["IPSMS_API_BASE"] == ipsms_emulator.api_base
    """
    )
    run(pytester, "-q").assert_outcomes(passed=1)


def test_the_entry_point_names_the_plugin() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["pytest11"] == {"ipsms": "ipsms.pytest_plugin"}


def test_loading_the_plugin_imports_nothing_heavy() -> None:
    """A run that never asks for an ipsms fixture pays for pytest's import and this module."""
    code = (
        "import sys, ipsms.pytest_plugin; "
        "print(' '.join(m for m in ('aiohttp', 'sqlite3', 'ipsms.listen.app', "
        "'ipsms.deliver.engine', 'ipsms.testing.listener') if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    assert proc.stdout.strip() == ""
