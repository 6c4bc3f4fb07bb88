"""The inspector's page in a real browser: Debian's Chromium, headless, over a real inspector
(``create_inspector`` on a loopback port) and a real store written by the real recorder. The
tests do what a user does: open the URL with its token, watch rows arrive, open a refid,
search, follow a permalink, press keys; and they check that hostile text stays text.

With ``IPSMS_SCREENSHOTS=1`` the dark-mode test also writes docs/inspector-light.png and
docs/inspector-dark.png (a normal run writes nothing into the repository)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from ipsms import store
from ipsms.inspect.app import create_inspector
from ipsms.request import Request
from ipsms.store.recorder import Recorder
from tests.conftest import ROOT

playwright_api = pytest.importorskip(
    "playwright.async_api", reason="playwright is not installed (the test extra has it)"
)

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "page-test-token"
SHOTS = os.environ.get("IPSMS_SCREENSHOTS") == "1"
FROM, TO = "+13035550100", "+13038675309"

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no Chromium at /usr/bin/chromium"),
    pytest.mark.asyncio(loop_scope="module"),
]


# -- a real store and a real inspector --------------------------------------------------------


def sms(
    refid: str | None,
    message: str = "hello",
    *,
    status: int = 200,
    verdict: str | None = "valid",
    verdict_detail: str | None = "plain",
    flags: list[dict[str, str]] | None = None,
    forward: dict[str, Any] | None = None,
    headers: list[tuple[str, str]] | None = None,
    sender: str = FROM,
    remote: str = "127.0.0.1",
    at: float | None = None,
) -> Request:
    """A JSON webhook as IntelePeer posts it, as the listener would have built it."""
    fields = {"refid": refid, "from": sender, "to": TO, "message": message}
    text = json.dumps(fields)
    return Request(
        time.time() if at is None else at,
        "POST",
        "/sms",
        remote,
        headers
        or [
            ("Host", "127.0.0.1:8850"),
            ("Content-Type", "application/json"),
            ("User-Agent", "IntelePeer-Webhooks/1.0"),
        ],
        "application/json",
        text.encode(),
        status,
        refid=refid,
        from_number=sender,
        to_number=TO,
        message=message,
        fields=fields,
        fields_json=text,
        verdict=verdict,
        verdict_detail=verdict_detail,
        flags=flags,
        forward=forward,
    )


def junk(
    body: bytes,
    *,
    status: int = 400,
    error: str = "invalid_json",
    detail: str = "body is not valid JSON: Expecting value at line 1 column 1",
    content_type: str | None = "application/json",
    at: float | None = None,
) -> Request:
    return Request(
        time.time() if at is None else at,
        "POST",
        "/sms",
        "10.0.0.7",
        [("Host", "127.0.0.1:8850"), ("Content-Type", content_type or "")],
        content_type,
        body,
        status,
        error=error,
        error_detail=detail,
    )


@dataclass
class Inspector:
    base: str
    db: Path
    recorder: Recorder

    async def record(self, *requests: Request) -> list[int]:
        ids = []
        for req in requests:
            ids.append((await self.recorder.record(req)).id)
        return ids


@pytest_asyncio.fixture(loop_scope="module")
async def inspector(tmp_path: Path) -> AsyncIterator[Inspector]:
    db = tmp_path / "s.sqlite3"
    async with Recorder(db) as recorder:
        runner = web.AppRunner(create_inspector(db, TOKEN))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            yield Inspector(f"http://127.0.0.1:{port}", db, recorder)
        finally:
            await runner.cleanup()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


def css(text: str) -> str:
    """``text`` as a CSS string (JSON's escapes of quotes and backslashes are CSS's too)."""
    return json.dumps(text, ensure_ascii=False)


@dataclass
class Tab:
    page: Any
    errors: list[str] = field(default_factory=list)

    def rows(self) -> Any:
        return self.page.locator("#groups > li.group")

    def group(self, refid: str) -> Any:
        return self.page.locator(f"li.group[data-group-refid={css(refid)}]")

    def attempt(self, refid: str, n: int) -> Any:
        return self.page.locator(f"li[data-refid={css(refid)}][data-attempt='{n}']")

    async def shows_rows(self, n: int) -> None:
        await self.page.wait_for_function(
            f"() => document.querySelectorAll('#groups > li').length === {n}"
        )


@asynccontextmanager
async def opened(
    browser: Any,
    inspector: Inspector,
    hash: str = "",
    *,
    scheme: str = "light",
    width: int = 1280,
    height: int = 800,
) -> AsyncIterator[Tab]:
    """The page as a user opens it: the URL ipsms printed, with its token. Fails the test on
    any console error, uncaught exception or CSP violation."""
    context = await browser.new_context(
        color_scheme=scheme, timezone_id="UTC", viewport={"width": width, "height": height}
    )
    page = await context.new_page()
    tab = Tab(page)
    page.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: tab.errors.append(f"uncaught: {e}"))
    try:
        await page.goto(f"{inspector.base}/?token={TOKEN}{hash}")
        await page.wait_for_function("() => document.documentElement.dataset.ready === 'true'")
        yield tab
        assert tab.errors == []
        assert "token" not in page.url  # exchanged for the cookie
    finally:
        await context.close()


# -- what a user sees -------------------------------------------------------------------------


async def test_retries_group_under_their_refid_and_junk_shows_what_was_wrong(
    browser: Any, inspector: Inspector
) -> None:
    forward = {
        "url": "http://127.0.0.1:3000/sms",
        "status": 200,
        "latency_ms": 12.5,
        "body_preview": '{"ok":true}',
        "error": None,
        "detail": None,
    }
    await inspector.record(
        sms("A" * 32, "first", status=500),
        sms("A" * 32, "first", status=500),
        sms(
            "B" * 32,
            "other one",
            verdict="invalid",
            verdict_detail="does not match: the signature differs in case",
        ),
        junk(b"{not json"),
        sms(
            "A" * 32,
            "first",
            forward=forward,
            flags=[{"code": "from_format", "detail": "from is not E.164: +1 303"}],
        ),
    )
    async with opened(browser, inspector) as tab:
        await tab.rows().first.wait_for()
        assert await tab.rows().count() == 3  # A (3 attempts), the junk, B
        top = tab.rows().first
        assert await top.get_attribute("data-group-refid") == "A" * 32  # newest first
        row = top.locator("button.row")
        assert await row.locator(".count").inner_text() == "×3"
        assert await row.locator(".status").inner_text() == "200"  # the latest attempt's
        assert await row.locator(".badge").inner_text() == "valid"
        assert await row.locator(".chip").inner_text() == "from_format"
        assert await row.get_attribute("aria-expanded") == "false"
        junk_row = tab.rows().nth(1)
        assert await junk_row.get_attribute("data-group-refid") is None
        assert "invalid_json" in await junk_row.inner_text()
        assert "body is not valid JSON" in await junk_row.inner_text()
        assert "invalid" in await tab.group("B" * 32).locator(".badge").inner_text()

        await row.click()
        await tab.attempt("A" * 32, 3).wait_for()
        assert await row.get_attribute("aria-expanded") == "true"
        attempts = top.locator("li[data-attempt]")
        assert [await a.get_attribute("data-attempt") for a in await attempts.all()] == [
            "1",
            "2",
            "3",
        ]
        first, last = tab.attempt("A" * 32, 1), tab.attempt("A" * 32, 3)
        assert await first.locator(".status").first.inner_text() == "500"
        assert "plain" in await first.inner_text()  # the verdict's reason
        assert "127.0.0.1" in await first.inner_text()  # the remote address
        text = await last.inner_text()
        assert "from is not E.164: +1 303" in text  # the flag with its detail
        assert "12.5 ms" in text and '{"ok":true}' in text  # the app's answer
        # B's reason, and Enter opens a group from the keyboard
        await tab.group("B" * 32).locator("button.row").focus()
        await tab.page.keyboard.press("Enter")
        await tab.attempt("B" * 32, 1).wait_for()
        assert "differs in case" in await tab.attempt("B" * 32, 1).inner_text()


async def test_a_new_attempt_appears_live_in_its_group_without_a_reload(
    browser: Any, inspector: Inspector
) -> None:
    await inspector.record(sms("R1", "one"), sms("R2", "two"))
    async with opened(browser, inspector) as tab:
        await tab.rows().nth(1).wait_for()
        assert await tab.rows().first.get_attribute("data-group-refid") == "R2"
        await tab.group("R1").locator("button.row").click()
        await tab.attempt("R1", 1).wait_for()
        loaded = await tab.page.evaluate("performance.timeOrigin")

        started = time.monotonic()
        await inspector.record(sms("R1", "one"))
        await tab.attempt("R1", 2).wait_for(timeout=5000)
        took = time.monotonic() - started
        assert took < 1.0, took
        assert await tab.rows().first.get_attribute("data-group-refid") == "R1"  # moved up
        assert await tab.group("R1").locator(".count").inner_text() == "×2"

        await inspector.record(sms("R3", "three"))
        await tab.group("R3").wait_for(timeout=5000)
        assert await tab.rows().first.get_attribute("data-group-refid") == "R3"
        assert await tab.rows().count() == 3
        assert await tab.page.evaluate("performance.timeOrigin") == loaded  # no reload
        await tab.page.wait_for_function(
            "() => document.getElementById('announce').textContent.includes('new request')"
        )


async def test_hostile_text_is_shown_as_text_with_its_invisible_characters_escaped(
    browser: Any, inspector: Inspector
) -> None:
    html = "<img src=x onerror=window.pwned=1>"
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467 \U0001f44d\U0001f3fd \U0001f1eb\U0001f1f7"
    text = f"{html} pay \u202egnp.exe\u202c now \x1b[31mred\x1b[0m \ud83d {family}"
    header = [
        ("Host", "127.0.0.1:8850"),
        ("Content-Type", "application/json"),
        ("X-Evil", f"{html}\u2066x"),
    ]
    await inspector.record(
        sms(
            "H" * 32,
            text,
            headers=header,
            flags=[{"code": "lone_surrogate", "detail": f"{html} \u200b"}],
        ),
        junk(html.encode(), detail=f"not JSON: {html}"),
    )
    async with opened(browser, inspector, f"#/refid/{'H' * 32}/attempt/1") as tab:
        page = tab.page
        row = tab.group("H" * 32).locator("button.row")
        await page.locator(".card .sms").wait_for()
        await page.locator("table.headers").wait_for()
        await page.locator(".body-section pre.body").first.wait_for()
        # The markup is text: no element was made of it, and its handler never ran.
        assert await page.locator("img").count() == 0
        assert await page.evaluate("window.pwned") is None
        shown = await page.locator(".card .sms").inner_text()
        assert html in shown
        assert "\\u202e" in shown and "\\u202c" in shown and "\u202e" not in shown
        assert "\\e[31m" in shown and "\x1b" not in shown
        assert "\\ud83d" in shown
        assert family in shown  # the emoji stay whole: ZWJ family, skin tone, flag
        escapes = page.locator(".card .sms .esc")
        assert {await e.inner_text() for e in await escapes.all()} >= {
            "\\u202e",
            "\\u202c",
            "\\e",
            "\\ud83d",
        }
        assert await page.locator(".card .sms .esc-fmt").first.inner_text() == "\\u202e"
        assert html in await row.inner_text() and "\\u202e" in await row.inner_text()
        headers = await page.locator("table.headers").inner_text()
        assert f"{html}\\u2066x" in headers
        assert "\\u200b" in await page.locator(".flags").inner_text()
        body = await page.locator(".body-section").inner_text()
        assert "\\u202e" in body  # the JSON body holds the escape as JSON wrote it
        # the junk row too, in the list and the detail
        await tab.rows().nth(0).locator("button.row").click()
        await page.locator(".body-section pre.body").first.wait_for()
        assert html in await page.locator(".body-section pre.body").first.inner_text()
        assert await page.locator("img").count() == 0
        assert await page.evaluate("window.pwned") is None

        # The escaping rules themselves, as ipsms's terminal has them.
        cases = await page.evaluate("""async () => {
            const { escapeRuns } = await import('/static/app.js');
            const shown = (s) => escapeRuns(s).map(([, t]) => t).join('');
            return {
                c0: shown('a\\u0001\\u0000b\\t\\r\\n'), c1: shown('\\u0085\\u009b\\u007f'),
                bidi: shown('\\u202a\\u202b\\u202d\\u2066\\u2067\\u2068\\u2069'
                    + '\\u200e\\u200f\\u061c'),
                invisible: shown('a\\u200bb\\u2060\\u2064\\ufeff\\u00ad'),
                tag: shown('\\u{1F3F4}\\u{E0067}\\u{E007F}'),
                vs: shown('a\\ufe0f \\u2764\\ufe0f 1\\ufe0f\\u20e3 \\u2764\\ufe0f\\ufe0f'),
                zwj: shown('a\\u200db \\u{1F3F3}\\ufe0f\\u200d\\u{1F308}'),
                lone: shown('\\udc00x\\ud83d'),
                kinds: escapeRuns('\\u0001\\u202e\\ud800').map(([k]) => k),
            };
        }""")
        assert cases["c0"] == "a\\x01\\x00b\\t\\r\\n"
        assert cases["c1"] == "\\x85\\x9b\\x7f"
        assert cases["bidi"] == (
            "\\u202a\\u202b\\u202d\\u2066\\u2067\\u2068\\u2069\\u200e\\u200f\\u061c"
        )
        assert cases["invisible"] == "a\\u200bb\\u2060\\u2064\\ufeff\\u00ad"
        assert cases["tag"] == "\U0001f3f4\\U000e0067\\U000e007f"
        assert cases["vs"] == "a\\ufe0f \u2764\ufe0f 1\ufe0f\u20e3 \u2764\ufe0f\\ufe0f"
        assert cases["zwj"] == "a\\u200db \U0001f3f3\ufe0f\u200d\U0001f308"
        assert cases["lone"] == "\\udc00x\\ud83d"
        assert cases["kinds"] == ["ctl", "fmt", "sur"]


async def test_the_detail_shows_the_sms_its_headers_and_the_exact_body(
    browser: Any, inspector: Inspector
) -> None:
    long_text = "Your code is 123456. " * 9  # 189 GSM-7 characters: two segments
    form_body = b"refid=F1&from=%2B13035550100&to=%2B13038675309&message=caf%C3%A9+ok&x=1&x=2"
    form = Request(
        time.time(),
        "POST",
        "/sms?src=ip",
        "10.1.2.3",
        [("Host", "127.0.0.1:8850"), ("Content-Type", "application/x-www-form-urlencoded")],
        "application/x-www-form-urlencoded",
        form_body,
        200,
        refid="F1",
        from_number=FROM,
        to_number=TO,
        message="café ok",
        verdict="missing",
        verdict_detail="no signature field",
    )
    binary = junk(
        b"\x00\xffbinary\x80",
        status=415,
        error="unsupported_media_type",
        detail="not a form or JSON",
        content_type="application/octet-stream",
    )
    await inspector.record(sms("J1", long_text), form, binary)
    async with opened(browser, inspector, "#/refid/J1/attempt/1") as tab:
        page = tab.page
        await page.locator(".body-section pre.body").first.wait_for()
        assert "Attempt 1 of 1" in await page.locator("#detail-title").inner_text()
        assert "189 characters · 2 segments · GSM-7" in await page.locator(".sms-meta").inner_text()
        message = await page.locator(".card.message").inner_text()
        assert FROM in message and TO in message and long_text.strip() in message
        headers = await page.locator("table.headers").inner_text()
        assert "User-Agent" in headers and "IntelePeer-Webhooks/1.0" in headers
        pretty = await page.locator(".body-section pre.body").first.inner_text()
        assert pretty.startswith('{\n  "refid": "J1",\n  "from": "+13035550100",')

        await page.evaluate("location.hash = '#/refid/F1/attempt/1'")
        await page.locator("table.fields").wait_for()
        fields = await page.locator("table.fields tbody tr").all_inner_texts()
        assert [f.split("\t") for f in fields] == [
            ["refid", "F1"],
            ["from", FROM],
            ["to", TO],
            ["message", "café ok"],
            ["x", "1"],
            ["x", "2"],
        ]  # a field sent twice shows twice
        assert "7 characters · 1 segment · GSM-7" in await page.locator(".sms-meta").inner_text()
        assert "missing" in await page.locator(".detail-pane").inner_text()
        assert "POST /sms?src=ip" in await page.locator(".detail-pane").inner_text()

        junk_row = page.locator("#groups > li.group.junk")
        await junk_row.locator("button.row").click()
        await page.wait_for_function(
            "() => document.querySelector('.body-section pre.body')?.textContent.includes('|')"
        )
        dump = await page.locator(".body-section pre.body").inner_text()
        assert dump.startswith("00000000  00 ff 62 69 6e 61 72 79  80")
        assert "|..binary.|" in dump


async def test_search_finds_one_text_among_hundreds_and_escape_clears_it(
    browser: Any, inspector: Inspector
) -> None:
    now = time.time() - 60
    await inspector.record(
        *(sms(f"S{i:03d}", f"ordinary message {i}", at=now + i / 100) for i in range(300))
    )
    await inspector.record(sms("NEEDLE", "where is the Unicorn parade?"))
    await inspector.record(*(sms(f"T{i:03d}", f"later message {i}") for i in range(20)))
    async with opened(browser, inspector) as tab:
        page = tab.page
        await tab.shows_rows(100)
        assert await page.locator("#load-older").is_visible()
        search = page.get_by_label("Search")
        await search.click()
        await search.press_sequentially("unicorn P", delay=20)
        await tab.shows_rows(1)
        assert await tab.rows().first.get_attribute("data-group-refid") == "NEEDLE"
        assert not await page.locator("#load-older").is_visible()
        # a live attempt that matches joins the results; one that does not stays out
        await inspector.record(sms("OTHER", "nothing here"), sms("N2", "a unicorn parade!"))
        await tab.group("N2").wait_for(timeout=5000)
        assert await tab.group("OTHER").count() == 0
        await search.press("Escape")
        await tab.shows_rows(100)
        assert await search.input_value() == ""
        assert await tab.rows().first.get_attribute("data-group-refid") == "N2"

        # older pages: the button, and never more than ~1,000 attempts held
        await page.locator("#load-older").click()
        await tab.shows_rows(200)
        # N2, OTHER, T019..T000, NEEDLE, S299..S223; then S222..S123
        assert await tab.rows().last.get_attribute("data-group-refid") == "S123"


async def test_the_search_box_takes_the_filters_of_messages_list(
    browser: Any, inspector: Inspector
) -> None:
    await inspector.record(
        sms("OK1", "all good"),
        sms("BAD", "forged", status=403, verdict="invalid"),
        sms("OK2", "all good too", sender="+447700900123"),
    )
    async with opened(browser, inspector) as tab:
        search = tab.page.get_by_label("Search")
        await search.fill("status:4xx")
        await tab.shows_rows(1)
        assert await tab.rows().first.get_attribute("data-group-refid") == "BAD"
        await search.fill("good from:900123")
        await tab.group("OK2").wait_for(timeout=5000)
        await tab.shows_rows(1)
        # a live attempt is filtered the same way
        await inspector.record(
            sms("OK3", "good again", sender="+447700900123"), sms("OK4", "good again")
        )
        await tab.group("OK3").wait_for(timeout=5000)
        assert await tab.group("OK4").count() == 0
        href = await tab.page.locator("#export-ndjson").get_attribute("href")
        assert href is not None and "from=900123" in href and "q=good" in href


async def test_keys_move_open_search_and_show_the_help(browser: Any, inspector: Inspector) -> None:
    await inspector.record(sms("K1", "one"), sms("K1", "one"), sms("K2", "two"))
    async with opened(browser, inspector) as tab:
        page = tab.page
        await tab.rows().nth(1).wait_for()
        await page.keyboard.press("j")
        assert await tab.group("K2").locator("button.row").get_attribute("aria-current") == "true"
        assert page.url.endswith("#/refid/K2")
        await page.keyboard.press("j")
        k1 = tab.group("K1").locator("button.row")
        assert await k1.get_attribute("aria-current") == "true"
        await page.keyboard.press("Enter")
        await tab.attempt("K1", 2).wait_for()
        await page.keyboard.press("j")
        assert await tab.attempt("K1", 1).locator("button").get_attribute("aria-current") == "true"
        await page.keyboard.press("j")
        assert page.url.endswith("#/refid/K1/attempt/2")
        await page.keyboard.press("k")
        assert page.url.endswith("#/refid/K1/attempt/1")
        assert "Attempt 1 of 2" in await page.locator("#detail-title").inner_text()

        await page.keyboard.press("/")
        assert await page.evaluate("document.activeElement.id") == "search"
        await page.keyboard.press("Escape")  # empty search: back to the list
        assert await page.evaluate("document.activeElement.id") != "search"

        help_dialog = page.locator("#help")
        assert not await help_dialog.is_visible()
        await page.keyboard.press("?")
        assert await help_dialog.is_visible()
        keys = await help_dialog.inner_text()
        for key in ("j", "k", "Enter", "/", "?"):
            assert key in keys
        await page.keyboard.press("Escape")
        assert not await help_dialog.is_visible()


async def test_a_permalink_selects_its_attempt(browser: Any, inspector: Inspector) -> None:
    refid = "P/é \u202e"  # a refid needs escaping in the URL, and in the page
    await inspector.record(
        sms(refid, "v1"),
        sms(refid, "v2"),
        sms(refid, "v3"),
        *(sms(f"X{i}", "filler") for i in range(120)),
    )
    async with opened(browser, inspector) as tab:
        page = tab.page
        await tab.rows().first.wait_for()
        assert await tab.group(refid).count() == 0  # older than the first page
    hash = "#/refid/P%2F%C3%A9%20%E2%80%AE/attempt/2"
    async with opened(browser, inspector, hash) as tab:
        page = tab.page
        selected = tab.attempt(refid, 2)
        await selected.wait_for()
        assert "selected" in (await selected.get_attribute("class") or "")
        assert await selected.locator("button").get_attribute("aria-current") == "true"
        assert await page.evaluate("document.activeElement.closest('li').dataset.attempt") == "2"
        assert "Attempt 2 of 3" in await page.locator("#detail-title").inner_text()
        assert "\\u202e" in await page.locator("#detail-title").inner_text()
        assert "v2" in await page.locator(".card .sms").inner_text()
        assert page.url.endswith(hash)
        permalink = await page.locator(".permalink a").get_attribute("href")
        assert permalink == hash


async def test_dark_mode_follows_the_system(browser: Any, inspector: Inspector) -> None:
    stop = "9a8b7c6d5e4f40312a1b2c3d4e5f6a7b"
    app = {
        "url": "http://127.0.0.1:3000/sms",
        "status": 200,
        "latency_ms": 8.1,
        "body_preview": '{"received": true}',
        "error": None,
        "detail": None,
    }
    start = time.time() - 300
    await inspector.record(
        sms("2f0c1a9e4b7d4c21a8e3f5b6d7c8e9f0", "Your table for 4 is ready", forward=app, at=start),
        sms(stop, "STOP", status=500, at=start + 60),
        junk(
            b'{"refid": ',
            detail="body is not valid JSON: Expecting value at line 1 column 11",
            at=start + 65,
        ),
        sms(stop, "STOP", status=500, at=start + 70),
        sms(
            "c3d4e5f6a7b84c9da0b1c2d3e4f5a6b7",
            "Meet at 6? \u202eevil\u202c \x1b[31m",
            verdict="invalid",
            verdict_detail="does not match: the signature differs in case",
            at=start + 80,
        ),
        sms(stop, "STOP", sender="+447700900123", forward=app, at=start + 90),
        sms(
            "e5f6a7b8c9d04e1fa2b3c4d5e6f7a8b9",
            "Hola! ¿Vienes mañana?",
            verdict="unchecked",
            verdict_detail="no secret configured",
            at=start + 120,
        ),
    )
    backgrounds = {}
    for scheme in ("light", "dark"):
        async with opened(browser, inspector, f"#/refid/{stop}/attempt/3", scheme=scheme) as tab:
            page = tab.page
            await page.locator(".body-section pre.body").first.wait_for()
            backgrounds[scheme] = await page.evaluate(
                "getComputedStyle(document.body).backgroundColor"
            )
            if SHOTS:
                await page.evaluate("document.activeElement.blur()")
                await page.screenshot(path=str(ROOT / "docs" / f"inspector-{scheme}.png"))
    assert backgrounds["light"] != backgrounds["dark"]
    assert backgrounds["dark"] == "rgb(17, 19, 23)"


async def test_older_pages_load_and_the_page_never_holds_more_than_a_thousand(
    browser: Any, inspector: Inspector
) -> None:
    start = time.time() - 3600
    await inspector.record(*(sms(f"C{i:04d}", f"message {i}", at=start + i) for i in range(1150)))
    async with opened(browser, inspector) as tab:
        page = tab.page
        count = "() => document.querySelectorAll('#groups > li').length"
        await tab.shows_rows(100)
        older = page.locator("#load-older")
        for _ in range(30):  # clicked where it is: no scrolling, which loads pages too
            if not await older.is_visible():
                break
            await older.dispatch_event("click")
            await page.wait_for_function("() => !document.getElementById('load-older').disabled")
            assert await page.evaluate(count) <= 1000
        assert not await older.is_visible()  # the oldest is shown
        # the newest were let go to show the oldest; one click brings the newest back
        assert await tab.rows().last.get_attribute("data-group-refid") == "C0000"
        assert await page.locator("#trimmed").is_visible()
        assert await tab.group("C1149").count() == 0
        await page.locator("#show-newest").click()
        await tab.shows_rows(100)
        assert await tab.rows().first.get_attribute("data-group-refid") == "C1149"
        assert not await page.locator("#trimmed").is_visible()
        # scrolling to the bottom loads the next page
        await page.locator("#list").evaluate("list => { list.scrollTop = list.scrollHeight }")
        await tab.shows_rows(200)
        # and live attempts join them at the top again
        await inspector.record(*(sms(f"L{i}", "live") for i in range(5)))
        await tab.group("L4").wait_for(timeout=5000)
        assert await page.evaluate(count) == 205


async def test_a_cleared_store_empties_the_page_and_what_comes_next_shows(
    browser: Any, inspector: Inspector
) -> None:
    await inspector.record(sms("OLD1", "before"), sms("OLD2", "before"))
    async with opened(browser, inspector, "#/refid/OLD1/attempt/1") as tab:
        page = tab.page
        await tab.shows_rows(2)
        with store.opened(inspector.db) as conn:
            assert store.clear(conn) == 2
            if conn.in_transaction:
                conn.commit()
        await tab.shows_rows(0)
        assert "cleared" in await page.locator("#detail").inner_text()
        assert "#" not in page.url  # no permalink to what is gone
        # the store numbers its rows from 1 again: they are new all the same
        await inspector.record(sms("NEW1", "after"))
        await tab.group("NEW1").wait_for(timeout=5000)
        assert await tab.rows().count() == 1


async def test_the_page_makes_no_markup_of_data_and_needs_nothing_inline() -> None:
    """What the CSP would refuse, and what would turn text into markup, is not in the page's
    files at all (the browser tests show the rest)."""
    static = ROOT / "ipsms" / "inspect" / "static"
    script = (static / "app.js").read_text()
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        "setAttribute('style'",
        ".style.",
    ):
        assert sink not in script, sink
    page = (static / "index.html").read_text()
    assert " style=" not in page and "<style" not in page
    assert page.count("<script") == 1
    assert '<script type="module" src="/static/app.js"></script>' in page
    assert "http://" not in page + script and "https://" not in page + script  # works offline
