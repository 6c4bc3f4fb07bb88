"""What the live table shows: SMS text is literal, never markup or terminal control."""

from __future__ import annotations

import io
import time

from rich.console import Console

from ipsms.listen.events import ListenStats
from ipsms.request import Request
from ipsms.text import printable
from ipsms.ui.lines import plain_line
from ipsms.ui.live import SAFETY_MARGIN, build_view

HOSTILE = "[bold red]PWNED[/bold red]\x1b[2J\x1b]0;t\x07\u202eevil\u202c end"


def event(message: str, **kw: object) -> Request:
    base: dict[str, object] = dict(
        id=1,
        received_at=time.time(),
        method="POST",
        path="/",
        remote="127.0.0.1",
        headers=[],
        content_type="application/json",
        body=b"{}",
        status=200,
        refid="ABCDEF1234567890ABCDEF1234567890",
        from_number="+13035550100",
        to_number="+13038675309",
        message=message,
        attempt=1,
        verdict="valid",
        verdict_detail="plain",
    )
    base.update(kw)
    return Request(**base)  # type: ignore[arg-type]


def render(*events: Request, color: bool = True, width: int = 220) -> str:
    buf = io.StringIO()
    console = Console(
        file=buf, width=width, force_terminal=color, color_system="truecolor" if color else None
    )
    stats = ListenStats()
    for e in events:
        stats.observe(e)
    console.print(build_view("http://127.0.0.1:8765/", stats, list(events), width))
    return buf.getvalue()


def test_markup_and_escape_sequences_in_a_message_are_shown_literally() -> None:
    out = render(event(HOSTILE), color=True)
    assert "[bold red]PWNED[/bold red]" in out  # markup not interpreted
    assert "\x1b[2J" not in out  # no clear-screen reaches the terminal
    assert "\x1b]0;" not in out and "\x07" not in out  # no title change, no bell
    assert "\u202e" not in out  # no bidi override
    assert "\\e[2J" in out and "\\u202e" in out  # shown as visible escapes instead


def test_hostile_refid_and_numbers_are_escaped_too() -> None:
    out = render(event("hi", refid="\x1b[31mREFID", from_number="[i]x[/i]"), color=False)
    assert "\x1b" not in out
    assert "\\e[31mREFID" in out and "[i]x[/i]" in out


def test_header_shows_url_and_running_counts() -> None:
    events = [
        event("a"),
        event("b", attempt=2),
        event("c", status=403, verdict="invalid"),
        event(
            "", refid=None, status=400, error="invalid_json", error_detail="body is not valid JSON"
        ),
    ]
    out = render(*events, color=False)
    assert "http://127.0.0.1:8765/" in out
    assert "received 4  accepted 2  rejected 2  bad signatures 1  retries 1" in out
    assert "invalid_json: body is not valid JSON" in out


def test_long_messages_stay_on_one_line() -> None:
    out = render(event("word " * 200 + "\nsecond line"), color=False, width=160)
    table_lines = [line for line in out.splitlines() if "ABCDEF" in line]
    assert len(table_lines) == 1
    assert "…" in table_lines[0]


def test_plain_lines_and_printable() -> None:
    assert printable("a\nb\tc\x00") == "a\\nb\\tc\\u0000"
    line = plain_line(event(HOSTILE))
    assert "\x1b" not in line and "\x07" not in line
    assert line.count("\n") == 0


def test_narrow_terminals_keep_the_message_visible() -> None:
    out = render(event("Hello narrow world"), color=False, width=80)
    row = next(line for line in out.splitlines() if "ABCDEF12…" in line)
    assert "Hello" in row and "valid" in row and "+13038675309" in row
    assert max(len(line) for line in out.splitlines()) <= 80 - SAFETY_MARGIN


def test_live_view_shows_as_many_rows_as_fit_the_terminal() -> None:
    from ipsms.ui.live import LiveView

    console = Console(file=io.StringIO(), width=160, height=12, force_terminal=False)
    view = LiveView(console, "http://127.0.0.1:8765/", ListenStats())
    for i in range(30):
        view(event(f"message number {i}"))
    console.print(view.render())
    out = console.file.getvalue()  # type: ignore[attr-defined]
    shown = [line for line in out.splitlines() if "message number" in line]
    assert len(shown) == 7  # 12 lines minus the header, the table heading and spare lines
    assert "message number 29" in shown[-1]  # newest at the bottom


def test_flags_and_rejected_requests_are_visible_in_the_table() -> None:
    from ipsms.listen.events import RejectedEvent

    flagged = event("a\ud800b", flags=({"code": "lone_surrogate", "detail": "..."},))
    rejected = RejectedEvent(
        time.time(), "127.0.0.1", 408, "request head not complete within 10 s (the read timeout)"
    )
    out = render(flagged, rejected, color=False)  # type: ignore[arg-type]
    assert "flags" in out.splitlines()[1]  # a column of its own
    row = next(line for line in out.splitlines() if "a\\ud800b" in line)
    assert "lone_surrogate" in row
    assert "rejected" in out and "request head not complete" in out and "408" in out
    narrow = render(flagged, color=False, width=80)
    row = next(line for line in narrow.splitlines() if "a\\ud800b" in line)
    assert "surrogate" in row  # compact mode: the short name of lone_surrogate


def test_the_header_says_fault_injection_is_on() -> None:
    from rich.console import Console

    from ipsms.listen.events import ListenStats
    from ipsms.ui.live import build_view

    console = Console(width=80, record=True, file=io.StringIO())
    console.print(
        build_view(
            "http://127.0.0.1:8765/",
            ListenStats(),
            [],
            80,
            faults="answering 500 to the first 2 attempts of each refid",
        )
    )
    assert "fault injection: answering 500 to the first 2 attempts" in console.export_text()


HOSTILE_WIDTHS = [
    "thanks 👍🏽",
    "skin 👋🏽",
    "family 👨\u200d👩\u200d👧\u200d👦",
    "flag 🇫🇷🇯🇵",
    "love ❤️",
    "中文 日本語 한국어",
    "cafe\u0301 n\u0303 q\u0323\u0307",
    "ना",
    "🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f",
    "1\ufe0f\u20e3",
]


def drawn_width(line: str) -> int:
    """The width of a rendered line on the terminal that draws it widest (only characters
    every terminal agrees on may appear)."""
    from ipsms.ui.cells import char_width

    widths = [char_width(ch) for ch in line]
    assert None not in widths, f"{line!r} holds a character terminals disagree on"
    return sum(w for w in widths if w is not None)


def test_no_line_is_wider_than_the_terminal_whatever_the_emoji() -> None:
    events = [
        event(
            text,
            refid=f"REF{i}-{text}",
            from_number=f"+1303{text}",
            flags=({"code": f"flag {text}", "detail": ""},),
        )
        for i, text in enumerate(HOSTILE_WIDTHS)
    ]
    for width in (80, 100, 160, 220):
        out = render(*events, color=False, width=width)
        for line in out.splitlines():
            assert drawn_width(line) <= width - SAFETY_MARGIN, (width, line)
        if width >= 160:
            assert "thanks 👍" in out and "skin 👋" in out and "flag FRJP" in out
    url = "https://" + "a-very-long-tunnel-name-" * 5 + ".ngrok-free.app/"
    out = render(*events, color=False, width=80)
    buf = io.StringIO()
    Console(file=buf, width=80).print(
        build_view(url, ListenStats(), events, 80, faults="answering 500 " * 20)
    )
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("ipsms listen https://") and lines[0].endswith("…")
    assert lines[1].startswith("fault injection: answering 500") and lines[1].endswith("…")
    assert all(drawn_width(line) <= 78 for line in lines)


def test_status_time_and_attempt_never_wrap_or_shrink() -> None:
    rows = [
        event(
            "x" * 300,
            attempt=12,
            status=403,
            verdict="invalid",
            verdict_detail="x; " + "either the secret differs from the sender's, or the "
            "refid or message changed after signing",
            from_number="+" + "9" * 40,
            flags=({"code": "a_very_long_flag_code_indeed", "detail": ""},),
        )
    ]
    for width in (60, 80, 129, 130, 200):
        out = render(*rows, color=False, width=width)
        row = [line for line in out.splitlines() if "12" in line and ":" in line][-1]
        assert row.endswith("403") and " 12 " in row, (width, out)
        assert len(out.splitlines()) == 4  # header, heading, rule, one row: nothing wrapped


def test_invalid_signatures_show_their_short_reason() -> None:
    bad = event(
        "hi",
        status=403,
        verdict="invalid",
        verdict_detail=(
            "expected ...; tried plain; received 64 chars; it matches hmac-sha256: use "
            "--signature-mode auto or the matching mode"
        ),
    )
    assert "invalid (wrong mode)" in render(bad, color=False, width=160)
    assert "wrong mode" in render(bad, color=False, width=80)


def test_a_refid_is_whole_where_it_fits_else_a_prefix() -> None:
    out = render(event("a long message " * 10), color=False, width=100)
    assert "ABCDEF12…" in out and "…34567890" not in out  # `messages show` takes it
    out = render(event("hi"), color=False, width=100)
    assert "ABCDEF1234567890ABCDEF1234567890" in out


def column_spans(out: str) -> dict[str, tuple[int, int]]:
    """Where each left-aligned column is drawn: (start, width up to the next heading, the
    gap included)."""
    import itertools
    import re

    found = list(re.finditer(r"\S+", out.splitlines()[1]))
    return {m.group(): (m.start(), nxt.start() - m.start()) for m, nxt in itertools.pairwise(found)}


def by_cell(line: str) -> str:
    """``line`` with a NUL after each double-width character: one character per cell."""
    from ipsms.ui.cells import char_width

    return "".join(ch + "\0" * ((char_width(ch) or 1) - 1) for ch in line)


WIDE_TEXTS = [
    "thanks 👍🏽 and 👋🏿, family 👨\u200d👩\u200d👧\u200d👦, flags 🇫🇷🇯🇵, 中文 日本語 " * 3,
    "a plain message long enough to be cut at any width we draw it at " * 3,
]


def test_wide_terminals_show_whole_refids_and_give_the_text_what_is_left() -> None:
    """At 160 columns with a flagged row: every refid whole, the flags and signature
    columns exactly as wide as their widest cell (no padding beyond), and the text the
    rest of the line."""
    events = [event(text, refid=f"{i:032d}") for i, text in enumerate(WIDE_TEXTS)]
    events.append(
        event(
            "odd",
            refid="SHORT",
            from_number="12",
            flags=({"code": "refid_length", "detail": ""}, {"code": "from_format", "detail": ""}),
        )
    )
    out = render(*events, color=False, width=160)
    lines = out.splitlines()
    rows = lines[3:]
    assert all(f"{i:032d}" in rows[i] for i in range(len(WIDE_TEXTS)))
    spans = column_spans(out)
    for name in ("flags", "signature"):
        start, width = spans[name]
        shown = [by_cell(r)[start : start + width].replace("\0", "").strip() for r in rows]
        assert width - 2 == max(len(name), *map(len, shown)), (name, width, shown)
    for row in rows[: len(WIDE_TEXTS)]:
        assert drawn_width(row) == 160 - SAFETY_MARGIN, row  # the text took what was left
        assert by_cell(row).index("…") - spans["message"][0] >= 40, row
    assert "refid,from" in rows[-1] or "refid_length,from_format" in rows[-1]


def test_a_bad_signature_always_shows_the_word_invalid() -> None:
    """Whatever the width, a bad signature shows `invalid`, with its reason where that
    fits (never the reason alone)."""
    from ipsms.signature import reason_of

    details = {
        "case": "expected ...; it matches the secret except for letter case",
        "wrong mode": "expected ...; tried plain; received 64 chars; it matches "
        "hmac-sha256: use --signature-mode auto or the matching mode",
    }
    for reason, detail in details.items():
        assert reason_of("invalid", detail) == reason, detail
    for text in ("hi", "a long message that wants all the room " * 4):
        bad = [
            event(text, status=403, verdict="invalid", verdict_detail=d, refid=f"{i:032d}")
            for i, d in enumerate(details.values())
        ]
        for width in (60, 80, 100, 129, 130, 160, 220):
            rows = render(*bad, event(text), color=False, width=width).splitlines()[3:5]
            for row, reason in zip(rows, details, strict=True):
                assert " invalid" in row, (width, row)
                if reason in row:
                    assert f"invalid ({reason})" in row
    short = render(
        event("hi", status=403, verdict="invalid", verdict_detail=details["case"]),
        color=False,
        width=80,
    )
    assert "invalid (case)" in short  # at 80 columns, where the text leaves room


def test_a_resized_terminal_is_cleared_before_the_redraw() -> None:
    from ipsms.ui.live import LiveView

    buf = io.StringIO()
    console = Console(file=buf, width=160, height=30, force_terminal=True)
    view = LiveView(console, "http://127.0.0.1:8765/", ListenStats())
    view(event("hello"))
    console.print(view.render())
    console.print(view.render())
    assert "\x1b[2K" not in buf.getvalue()  # same size: redrawn in place
    console.width = 80
    console.print(view.render())
    assert buf.getvalue().count("\x1b[2K") == 30  # shrunk: every line erased once...
    console.print(view.render())
    assert buf.getvalue().count("\x1b[2K") == 30  # ...then redrawn in place again


def test_the_lines_above_the_table_are_drawn_again_after_a_resize() -> None:
    """The start lines (where it listens and records) were printed above the table; a resize
    blanks the screen, so from then on every frame draws them first, and the table leaves
    them their lines."""
    from ipsms.ui.live import LiveView

    said = [
        "ipsms listen: listening on http://127.0.0.1:8765/ (any path, POST)",
        "ipsms listen: no secret: signatures are not checked; recording to /home/u/"
        + "very-long-directory-name/" * 2
        + "ipsms.sqlite3",
    ]
    buf = io.StringIO()
    console = Console(file=buf, width=160, height=16, force_terminal=True)
    view = LiveView(console, "http://127.0.0.1:8765/", ListenStats(), preamble=said)
    for i in range(20):
        view(event(f"message number {i}"))
    console.print(view.render())
    first = buf.getvalue()
    assert "listening on" not in first  # already on screen, printed before the table
    assert first.count("message number") == 16 - 5 - 2  # the two lines keep their place
    for width in (60, 60):  # the resize, then a frame at the same size
        console.width = width
        start = len(buf.getvalue())
        console.print(view.render())
        lines = buf.getvalue()[start:].splitlines()
        top = next(n for n, line in enumerate(lines) if "rcvd" in line)  # the header
        above = "".join("".join(lines[:top]).split()).replace("\x1b[0m", "")
        assert above.endswith("".join("".join(said).split())), lines[:top]  # all of it
        assert top > 2  # wrapped at 60 columns: more lines than at 160...
        rows = sum("ABCDEF12" in line for line in lines)
        assert rows == 16 - 5 - top  # ...which the table leaves them


def test_an_idle_listener_does_not_redraw() -> None:
    """A full table is costly to draw: nothing new, nothing drawn."""
    from ipsms.ui.live import REFRESH_PER_SECOND, LiveView

    buf = io.StringIO()
    console = Console(file=buf, width=160, height=30, force_terminal=True)
    view = LiveView(console, "http://127.0.0.1:8765/", ListenStats())
    view(event("hello"))
    view.start()
    try:
        deadline = time.monotonic() + 3
        while "hello" not in buf.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "hello" in buf.getvalue()  # the first frame
        time.sleep(0.1)
        drawn = len(buf.getvalue())
        time.sleep(4 / REFRESH_PER_SECOND)  # four refresh periods, idle
        assert len(buf.getvalue()) == drawn
        view(event("second message"))
        deadline = time.monotonic() + 3
        while "second message" not in buf.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "second message" in buf.getvalue()  # a new request is drawn within a period
    finally:
        view.stop()


def test_redraws_race_appends_safely() -> None:
    """rich redraws on its own thread while the event loop appends rows: a redraw must never
    see the deque change under it (it did: "deque mutated during iteration" under load)."""
    import threading

    from ipsms.ui.live import LiveView

    console = Console(file=io.StringIO(), width=120, height=60, force_terminal=True)
    view = LiveView(console, "http://127.0.0.1:8765/", ListenStats(), max_rows=50)
    stop = threading.Event()
    errors: list[BaseException] = []

    def append() -> None:
        i = 0
        while not stop.is_set():
            view(event(f"message {i}"))
            i += 1

    writer = threading.Thread(target=append)
    writer.start()
    try:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                console.print(view.render())
            except RuntimeError as exc:
                errors.append(exc)
                break
    finally:
        stop.set()
        writer.join()
    assert errors == []
