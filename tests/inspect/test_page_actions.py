"""The detail pane's actions in a real browser, over a real inspector whose target is a real
listener on loopback (which records what the page sends, like any other message): replay,
edit and resend, diff, copy as curl or ``ipsms simulate``, save as fixture, export, and the
redaction toggle. Each test does what a user does: click the button or press its key."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from ipsms import store
from ipsms.inspect.actions import Targets
from ipsms.inspect.app import create_inspector
from ipsms.listen.app import ListenConfig
from ipsms.listen.server import ListenServer
from ipsms.signature import Mode
from tests.inspect.test_page import CHROMIUM, FROM, TO, browser, opened  # noqa: F401

SECRET = "s3cret"

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no Chromium at /usr/bin/chromium"),
    pytest.mark.asyncio(loop_scope="module"),
]


def payload(refid: str, message: str) -> bytes:
    return json.dumps(
        {"refid": refid, "from": FROM, "to": TO, "message": message, "signature": SECRET}
    ).encode()


@dataclass
class Live:
    base: str  # the inspector
    listener: str  # the listener's URL, http://127.0.0.1:PORT/
    db: Path
    session: aiohttp.ClientSession

    async def post(
        self, body: bytes, content_type: str = "application/json", path: str = "sms"
    ) -> int:
        async with self.session.post(
            self.listener + path, data=body, headers={"Content-Type": content_type}
        ) as answer:
            return answer.status

    def rows(self) -> list:
        with store.opened(self.db) as conn:
            return list(store.iter_all(conn))

    async def wait_rows(self, count: int) -> list:
        for _ in range(100):
            rows = self.rows()
            if len(rows) >= count:
                return rows
            await asyncio.sleep(0.05)
        raise AssertionError(f"{len(self.rows())} rows, wanted {count}")


@pytest_asyncio.fixture(loop_scope="module")
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    db = tmp_path / "s.sqlite3"
    server = ListenServer(ListenConfig(secret=SECRET), db, "127.0.0.1", 0)
    bound = await server.start()
    targets = Targets(listener=bound.url, secret=SECRET, mode=Mode.PLAIN)
    runner = web.AppRunner(create_inspector(db, "page-test-token", targets=targets))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            yield Live(f"http://127.0.0.1:{port}", bound.url, db, session)
    finally:
        await runner.cleanup()
        await server.stop()


def button(tab: Any, name: str) -> Any:
    return tab.page.get_by_role("button", name=name, exact=True)


async def produced(tab: Any, kind: str) -> str:
    box = tab.page.locator(f"#copy-text[data-kind={kind}]")
    await box.wait_for()
    return await box.input_value()


async def bash(line: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    """``line`` run by bash, in a thread: the listener it calls runs on this loop."""
    return await asyncio.to_thread(
        subprocess.run,
        ["bash", "-c", line],
        capture_output=True,
        timeout=20,
        env={**os.environ, **env},
    )


# -- replay, edit and resend ------------------------------------------------------------------


async def test_replay_sends_the_attempt_again_and_it_arrives_live(browser: Any, live: Live) -> None:  # noqa: F811
    refid = "R" * 32
    assert await live.post(payload(refid, "hello")) == 200
    await live.wait_rows(1)
    async with opened(browser, live, f"#/refid/{refid}/attempt/1") as tab:
        page = tab.page
        await tab.attempt(refid, 1).wait_for()
        await button(tab, "Replay").click()
        await tab.attempt(refid, 2).wait_for(timeout=5000)  # through the listener, live
        status = await page.locator("#action-status").inner_text()
        assert f"sent to {live.listener}" in status
        rows = await live.wait_rows(2)
        assert rows[1].body == rows[0].body and rows[1].status == 200
        # the key does the same on the selected attempt
        await tab.attempt(refid, 1).locator("button.attempt").click()
        await page.keyboard.press("r")
        await tab.attempt(refid, 3).wait_for(timeout=5000)


async def test_replay_shows_why_it_was_refused(browser: Any, live: Live) -> None:  # noqa: F811
    assert await live.post(b"{not json") == 400
    await live.wait_rows(1)
    async with opened(browser, live, "#/id/1") as tab:
        await tab.page.locator(".actions").wait_for()
        assert await button(tab, "Replay").is_disabled()  # not a message: nothing to replay
        assert await button(tab, "Edit and resend").is_disabled()
        assert not await button(tab, "Copy as curl").is_disabled()


async def test_edit_and_resend_sends_the_new_text_signed(browser: Any, live: Live) -> None:  # noqa: F811
    refid = "E" * 32
    assert await live.post(payload(refid, "before")) == 200
    await live.wait_rows(1)
    async with opened(browser, live, f"#/refid/{refid}/attempt/1") as tab:
        page = tab.page
        await page.locator(".actions").wait_for()
        await page.keyboard.press("e")
        dialog = page.get_by_role("dialog", name="Edit and resend")
        await dialog.wait_for()
        assert await dialog.get_by_label("From").input_value() == FROM
        assert await dialog.get_by_label("To").input_value() == TO
        message = dialog.get_by_label("Message")
        assert await message.input_value() == "before"
        assert await dialog.get_by_label("Sign with the listener's secret").is_checked()
        assert not await dialog.get_by_label("New refid").is_checked()
        assert not await dialog.get_by_label("IntelePeer's 5 attempts").is_checked()
        await message.fill("after ✓ it's $HOME")
        await dialog.get_by_role("button", name="Send").click()
        await dialog.wait_for(state="detached")
        second = tab.attempt(refid, 2)
        await second.wait_for(timeout=5000)
        assert await second.locator(".badge").inner_text() == "valid"  # signed again
        await second.locator("button.attempt").click()
        await page.wait_for_function(
            "() => document.querySelector('#detail-title').textContent.includes('Attempt 2')"
        )
        assert await page.locator(".card .sms").inner_text() == "after ✓ it's $HOME"
        rows = await live.wait_rows(2)
        assert rows[1].message == "after ✓ it's $HOME" and rows[1].verdict == "valid"
        assert rows[1].from_number == FROM  # unchanged fields stay


# -- diff -------------------------------------------------------------------------------------


async def test_diff_marks_what_changed_between_two_attempts(browser: Any, live: Live) -> None:  # noqa: F811
    refid = "D" * 32
    assert await live.post(payload(refid, "first text")) == 200
    assert await live.post(payload(refid, "second text")) == 200
    await live.wait_rows(2)
    async with opened(browser, live, f"#/refid/{refid}/attempt/2") as tab:
        page = tab.page
        await page.locator(".actions").wait_for()
        await page.keyboard.press("d")
        table = page.locator("table.diff")
        await table.wait_for()
        changed = page.locator("table.diff tr.d-changed")
        texts = await changed.all_inner_texts()
        message = [t for t in texts if t.startswith("≠ message")]
        assert len(message) == 1
        assert "first text" in message[0] and "second text" in message[0]
        assert any(t.startswith("≠ attempt") for t in texts)
        # the body differs in its message line only; its other lines are the same
        assert await page.locator("table.diff tr.d-same", has_text='"refid"').count() == 1
        head = await table.locator("thead").inner_text()
        assert "attempt #1" in head and "attempt #2" in head
        parts = await table.locator("tr.d-part").all_inner_texts()
        assert [t.lower() for t in parts] == ["fields", "headers", "body"]
        assert "differences" in await page.locator(".diff-head").inner_text()


# -- copies -----------------------------------------------------------------------------------


async def test_copy_as_curl_reproduces_the_attempt_byte_for_byte(browser: Any, live: Live) -> None:  # noqa: F811
    refid = "C" * 32
    text = 'it\'s `id` $HOME "quoted" \\ back\nline 2 🙂 !event'
    body = json.dumps(
        {"refid": refid, "from": FROM, "to": TO, "message": text, "signature": SECRET},
        ensure_ascii=False,
    ).encode()
    odd = b"\x00\xffbinary\x80 '$(id)'"
    assert await live.post(body) == 200
    assert await live.post(odd, content_type="application/octet-stream") != 200
    await live.wait_rows(2)
    url = live.listener.rstrip("/")
    async with opened(browser, live, f"#/refid/{refid}/attempt/1") as tab:
        page = tab.page
        await page.locator(".actions").wait_for()
        await page.keyboard.press("y")
        line = await produced(tab, "curl")
        assert line.startswith("curl ") and "--data-binary" in line
        assert "Host:" not in line and "Content-Length" not in line
        assert (await bash(f"bash -n -c {shlex.quote(line)}")).returncode == 0
        ran = await bash(line, URL=url)
        assert ran.returncode == 0, ran.stderr
        rows = await live.wait_rows(3)
        assert rows[2].body == body and rows[2].refid == refid and rows[2].attempt == 2
        assert rows[2].verdict == "valid"  # the signature came along
        sent = dict(rows[0].headers)
        again = dict(rows[2].headers)
        assert again["Content-Type"] == sent["Content-Type"]
        assert again.get("User-Agent") == sent.get("User-Agent")  # curl's own is not added

        simulate = page.get_by_role("button", name="Copy as simulate")
        await simulate.click()
        command = await produced(tab, "simulate")
        assert (await bash(f"bash -n -c {shlex.quote(command)}")).returncode == 0
        words = shlex.split(command.replace('"${URL:?set URL to the listener address}"', "U"))
        assert words[:3] == ["ipsms", "simulate", "U/sms"]
        assert words[3:] == ["--refid", refid, "--from", FROM, "--to", TO, "--message", text]

        # a body that is not UTF-8: base64 through stdin
        await page.locator("#groups > li.group.junk button.row").click()
        await page.wait_for_function(
            "() => document.querySelector('#detail-title').textContent.includes('not a message')"
        )
        await button(tab, "Copy as curl").click()
        line = await produced(tab, "curl")
        assert line.startswith("echo ") and "base64 -d" in line and "@-" in line
        ran = await bash(line, URL=url)
        assert ran.returncode == 0, ran.stderr
        rows = await live.wait_rows(4)
        assert rows[3].body == odd
        assert dict(rows[3].headers)["Content-Type"] == "application/octet-stream"


async def test_save_as_fixture_and_export_links_carry_the_search_and_redaction(
    browser: Any,  # noqa: F811
    live: Live,
) -> None:
    refid = "L" * 32
    assert await live.post(payload(refid, "link me")) == 200
    (row,) = await live.wait_rows(1)
    async with opened(browser, live, f"#/refid/{refid}/attempt/1") as tab:
        page = tab.page
        fixture = page.get_by_role("link", name="Save as fixture")
        await fixture.wait_for()
        assert await fixture.get_attribute("href") == f"/api/messages/{row.id}/fixture"
        assert await fixture.get_attribute("download") is not None
        ndjson = page.get_by_role("link", name="Export NDJSON")
        har = page.get_by_role("link", name="Export HAR")
        assert await ndjson.get_attribute("href") == "/api/export?format=ndjson"
        await page.get_by_label("Search").fill("link me")
        await page.get_by_label("Search").press("Enter")
        await page.get_by_role("button", name="Redact", exact=True).click()
        for link, fmt in ((ndjson, "ndjson"), (har, "har")):
            href = await link.get_attribute("href")
            query = parse_qs(urlsplit(href).query)
            assert urlsplit(href).path == "/api/export"
            assert query == {"format": [fmt], "q": ["link me"], "redact": ["1"]}
        async with live.session.get(
            live.base + await har.get_attribute("href"),
            headers={"Authorization": "Bearer page-test-token"},
        ) as answer:
            assert FROM not in await answer.text()


# -- redaction --------------------------------------------------------------------------------


async def test_redaction_masks_numbers_and_text_in_the_page_and_its_copies(
    browser: Any,  # noqa: F811
    live: Live,
) -> None:
    refid = "X" * 32
    secret_text = "meet me at the old pier"
    assert await live.post(payload(refid, secret_text)) == 200
    await live.wait_rows(1)
    async with opened(browser, live, f"#/refid/{refid}/attempt/1") as tab:
        page = tab.page
        await page.locator(".body-section pre.body").first.wait_for()
        assert secret_text in await page.locator("body").inner_text()
        toggle = page.get_by_role("button", name="Redact", exact=True)
        await toggle.click()
        assert await toggle.get_attribute("aria-pressed") == "true"
        shown = await page.locator("body").inner_text()
        for leak in (secret_text, FROM, TO, FROM[1:], TO[1:]):
            assert leak not in shown, leak
        assert "+1********00" in shown and "+1********09" in shown
        assert f"[redacted {len(secret_text)} chars]" in shown
        assert refid in shown  # kept, as messages export --redact keeps it
        await page.keyboard.press("y")
        line = await produced(tab, "curl")
        assert secret_text not in line and FROM not in line and TO not in line
        await button(tab, "Copy as simulate").click()
        command = await produced(tab, "simulate")
        assert "--from '+1********00'" in command and secret_text not in command
        # off again: all back; and the choice lasts across a reload
        await toggle.click()
        assert secret_text in await page.locator("body").inner_text()
        await toggle.click()
        await page.reload()
        await page.wait_for_function("() => document.documentElement.dataset.ready === 'true'")
        await page.locator(".card .sms").wait_for()
        assert secret_text not in await page.locator("body").inner_text()


async def test_the_help_lists_the_action_keys(browser: Any, live: Live) -> None:  # noqa: F811
    async with opened(browser, live) as tab:
        await tab.page.keyboard.press("?")
        help_text = await tab.page.locator("#help").inner_text()
        for key, what in (("r", "replay"), ("e", "edit and resend"), ("d", "diff"), ("y", "curl")):
            assert f"{key}\t" in help_text or f"{key}\n" in help_text
            assert what in help_text
