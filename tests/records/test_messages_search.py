"""`messages list|export|tail` filters over a store written by the real Recorder: what each
filter selects, values users actually type (numbers with punctuation, `%` in a search, a lone
surrogate), bad values as usage errors, and the indexes the planner uses."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from ipsms import store
from ipsms.request import Request
from ipsms.store.recorder import Recorder
from tests.conftest import run_ipsms

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
HOUR = 3600.0


def req(
    i: int,
    *,
    at: float,
    sender: str | None = "+13038675309",
    to: str = "+12161112222",
    text: str = "hello",
    status: int = 200,
    verdict: str | None = "valid",
    refid: str | None = None,
    flags: list[dict[str, str]] | None = None,
) -> Request:
    refid = refid if refid is not None else f"REFID{i:027d}"
    fields = {"refid": refid, "from": sender, "to": to, "message": text}
    body = json.dumps(fields).encode()
    return Request(
        received_at=at,
        method="POST",
        path="/",
        remote="127.0.0.1",
        headers=[("Content-Type", "application/json")],
        content_type="application/json",
        body=body,
        status=status,
        refid=refid,
        fields=fields,
        fields_json=json.dumps(fields),
        from_number=sender,
        to_number=to,
        message=text,
        verdict=verdict,
        flags=flags,
    )


# id: what makes it findable
ROWS = [
    req(1, at=NOW - 48 * HOUR, text="Meet me at 100% of the time"),
    req(2, at=NOW - 30 * HOUR, sender="+447700900123", text="Hello from London"),
    req(3, at=NOW - 5 * HOUR, text="CAFÉ au lait", status=403, verdict="invalid"),
    req(
        4,
        at=NOW - 2 * HOUR,
        text="1000 of them",
        status=401,
        verdict="missing",
        flags=[{"code": "extra_fields", "detail": "unknown fields kept: 'x'"}],
    ),
    req(
        5,
        at=NOW - HOUR,
        to="1-12345",
        text="a_b with underscore",
        verdict="unchecked",
        flags=[{"code": "lone_surrogate", "detail": "mentions refid_reused in words"}],
    ),
    req(
        6,
        at=NOW - 60,
        text="lone \ud800 surrogate",
        refid="A*[?]PREFIX-6",
        flags=[{"code": "refid_reused", "detail": "text differs \ud800"}],
    ),
    req(7, at=NOW - 30, sender="+13038675300", text="STOP", status=500, verdict=None),
]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("search") / "s.sqlite3"

    async def fill() -> None:
        async with Recorder(path) as rec:
            for r in ROWS:
                await rec.record(r)

    asyncio.run(fill())
    return path


def ids(*args: str, db: Path, command: str = "list") -> list[int]:
    result = run_ipsms("messages", command, *args, "--db", str(db))
    assert result.returncode == 0, result.stderr
    return [json.loads(line)["id"] for line in result.stdout.splitlines()]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), [7, 6, 5, 4, 3, 2, 1]),
        (("--from", "+13038675309"), [6, 5, 4, 3, 1]),
        (("--from", "+1 (303) 867-5309"), [6, 5, 4, 3, 1]),  # as people write it
        (("--from", "3038675309"), [6, 5, 4, 3, 1]),  # no country code: the number's end
        (("--from", "5300"), [7]),
        (("--from", "+3038675309"), []),  # with + it is exact: not a suffix
        (("--from", "0123"), [2]),
        (("--to", "1-12345"), [5]),  # a short code, as stored
        (("--to", "12345"), [5]),  # its digits
        (("--refid", "REFID0000"), [7, 5, 4, 3, 2, 1]),
        (("--refid", "A*[?]"), [6]),  # GLOB characters are literal
        (("--refid", "A"), [6]),
        (("--refid", "refid"), []),  # case-sensitive, like the refid itself
        (("--text", "hello"), [2]),  # any case
        (("--text", "café"), [3]),  # any case, beyond ASCII
        (("--text", "100%"), [1]),  # % is a character, not a wildcard ("1000 of them")
        (("--text", "a_b"), [5]),
        (("--text", "_"), [5]),
        (
            ("--text", "\ud800"),
            [6],
        ),  # a lone surrogate (stored as a BLOB) neither crashes nor misses
        (("--status", "4xx"), [4, 3]),
        (("--status", "401"), [4]),
        (("--status", "200,5xx"), [7, 6, 5, 2, 1]),
        (("--status", "400-402"), [4]),
        (("--verdict", "invalid,missing"), [4, 3]),
        (("--verdict", "unchecked"), [5]),
        (("--flag", "extra_fields"), [4]),
        (("--flag", "refid_reused"), [6]),  # not 5, whose detail only mentions the word
        (("--flag", "too_many_attempts"), []),
        (("--until", "2025-12-31T20:00:00Z"), [3, 2, 1]),
        (("--since", "2025-12-30T01:00:00", "--until", "2025-12-31T12:00Z"), [2]),
        (("--since", "2025-12-31T22:00:00+00:00"), [7, 6, 5, 4]),
        (("--from", "5309", "--status", "4xx", "--text", "au lait"), [3]),
        (("--limit", "2", "--verdict", "valid"), [6, 2]),
        (("--limit", "2", "--refid", "REFID"), [7, 5]),  # the newest of the prefix's rows
        (("--limit", "1", "--refid", "REFID", "--status", "4xx"), [4]),
    ],
)
def test_list_filters(db: Path, args: tuple[str, ...], expected: list[int]) -> None:
    assert ids(*args, db=db) == expected


def test_durations_are_measured_from_now(tmp_path: Path) -> None:
    import time

    path = tmp_path / "now.sqlite3"
    now = time.time()

    async def fill() -> None:
        async with Recorder(path) as rec:
            for i, age in enumerate((3 * HOUR, HOUR + 60, 60), 1):
                await rec.record(req(i, at=now - age))

    asyncio.run(fill())
    assert ids("--since", "2h", db=path) == [3, 2]
    assert ids("--until", "1h", db=path) == [2, 1]
    assert ids("--since", "2h", "--until", "30m", db=path) == [2]


def test_export_filters_and_limit_keep_oldest_first(db: Path) -> None:
    assert ids("--verdict", "valid", db=db, command="export") == [1, 2, 6]
    # --limit: the newest N (the same rows `list --limit` shows), written oldest first
    assert ids("--limit", "3", db=db, command="export") == [5, 6, 7]
    assert ids("--limit", "2", "--refid", "REFID", db=db, command="export") == [5, 7]
    result = run_ipsms("messages", "export", "--text", "\ud800", "--db", str(db))
    (line,) = result.stdout.splitlines()
    assert json.loads(line)["message"] == "lone \ud800 surrogate"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--status", "6xx"), "cannot read the status '6xx'"),
        (("--status", "404-400"), "is empty"),
        (("--verdict", "good"), "unknown verdict 'good'"),
        (("--since", "yesterday"), "cannot read the duration"),
        (("--since", "2025-13-01"), "cannot read the time"),
        (("--from", " "), "empty"),
        (("--since", "1h", "--until", "2h"), "--since is later than --until"),
    ],
)
def test_bad_filter_values_are_usage_errors(db: Path, args: tuple[str, ...], says: str) -> None:
    result = run_ipsms("messages", "list", *args, "--db", str(db))
    assert result.returncode == 2
    assert says in result.stderr
    assert result.stdout == ""


def test_table_says_nothing_matched(db: Path) -> None:
    result = run_ipsms(
        "messages", "list", "--text", "nowhere", "--format", "table", "--db", str(db)
    )
    assert result.returncode == 0
    assert "no recorded message matches" in result.stdout


def test_plain_lines_carry_the_filter(db: Path) -> None:
    result = run_ipsms(
        "messages", "list", "--flag", "extra_fields", "--format", "plain", "--db", str(db)
    )
    (line,) = result.stdout.splitlines()
    assert line.startswith("2025-12-31T22:00:00.000Z 401 #1 REFID") and "flags=extra_fields" in line


def _plan(conn: sqlite3.Connection, f: store.Filter) -> str:
    clause, params = store._sql(conn, f)
    rows = conn.execute(
        f"EXPLAIN QUERY PLAN SELECT * FROM requests{clause} ORDER BY id DESC LIMIT 50", params
    ).fetchall()
    return " | ".join(r[3] for r in rows)


def test_exact_numbers_and_refid_prefixes_use_an_index(db: Path) -> None:
    with closing(store.connect(db, create=False)) as conn:
        exact = store.NumberMatch("+13038675309")
        assert "requests_from" in _plan(conn, store.Filter(from_number=exact))
        assert "requests_to" in _plan(conn, store.Filter(to_number=exact))
        assert "requests_refid" in _plan(conn, store.Filter(refid_prefix="REFID0"))


def test_a_v4_store_gains_the_indexes(tmp_path: Path, db: Path) -> None:
    old = tmp_path / "v4.sqlite3"
    with closing(sqlite3.connect(db)) as source, closing(sqlite3.connect(old)) as copy:
        source.backup(copy)
        copy.execute("DROP INDEX requests_from")
        copy.execute("DROP INDEX requests_to")
        copy.execute("ALTER TABLE requests DROP COLUMN seq")  # added by version 6
        copy.execute("DROP TABLE requests_text")  # version 7
        copy.execute("DROP TABLE text_indexed")
        copy.execute("PRAGMA user_version = 4")
        copy.commit()
    assert ids("--from", "+447700900123", db=old) == [2]
    with closing(sqlite3.connect(old)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
        names = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"requests_from", "requests_to"} <= names


def test_tail_prints_the_latest_oldest_first(db: Path) -> None:
    assert ids("--lines", "3", db=db, command="tail") == [5, 6, 7]
    assert ids("-n", "2", "--status", "4xx", db=db, command="tail") == [3, 4]
    assert ids("-n", "0", db=db, command="tail") == []


def test_tail_on_a_terminal_prints_a_line_each(db: Path) -> None:
    result = run_ipsms("messages", "tail", "-n", "2", "--db", str(db), tty=True, columns=80)
    assert result.returncode == 0, result.stderr
    lines = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout).splitlines()
    assert len(lines) == 2
    # #1!: its refid_reused flag; the refid's first 8 characters (what `show` takes)
    assert lines[0].startswith(
        "23:59:00 200 #1! A*[?]PRE +13038675309 -> +12161112222 valid lone \\ud800 surrog"
    )
    assert lines[1] == "23:59:30 500 #1 REFID000 +13038675300 -> +12161112222 - STOP"
    assert all(len(line) <= 80 for line in lines)


def test_tail_without_a_store_is_exit_10(tmp_path: Path) -> None:
    result = run_ipsms("messages", "tail", "--db", str(tmp_path / "none.sqlite3"))
    assert result.returncode == 10
    assert "no messages recorded yet" in result.stderr


def summary(line: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(line)
    return data


def test_text_search_finds_through_the_index_what_a_scan_finds(tmp_path: Path) -> None:
    """The trigram index only narrows the rows; the answer is the exact, case-insensitive
    substring match, also for texts the index folds differently, and after a clear."""
    from ipsms import store
    from ipsms.request import Request

    db = tmp_path / "t.sqlite3"
    conn = store.connect(db)
    texts = [
        "Hello World",
        "HELLO there",
        "say hello",
        "hel lo",
        "Straße",
        'he"llo',
        "ﬁne hello",
        "no",
        "\ud83d lone hello",
        "🙂 HeLLo 🙂",
    ]
    rows = [
        store.wire_row(
            Request(float(i), "POST", "/", None, [], None, b"{}", 200, refid=f"R{i}", message=text)
        )
        for i, text in enumerate(texts)
    ]
    store.begin_batch(conn)
    store.insert_batch(conn, rows[:6], "s")
    store.commit(conn)
    assert store.index_text(conn, 4) == 4  # part indexed, part not: both halves are read
    store.begin_batch(conn)
    store.insert_batch(conn, rows[6:], "s")
    store.commit(conn)
    for rounds in range(2):
        for needle in ("hello", "HELLO", "llo", "lo", 'he"llo', "zzz", "🙂"):
            expected = sorted(t for t in texts if needle.casefold() in t.casefold())
            got = sorted(
                r.message or "" for r in store.recent(conn, 100, where=store.Filter(text=needle))
            )
            assert got == expected, (needle, rounds)
        while store.index_text(conn, 3):  # then the whole store indexed
            pass
    assert store.index_text(conn) == 0
    store.clear(conn)
    assert store.recent(conn, 100, where=store.Filter(text="hello")) == []
    store.begin_batch(conn)
    store.insert_batch(conn, rows[:1], "s")
    store.commit(conn)
    assert [r.message for r in store.recent(conn, 10, where=store.Filter(text="world"))] == [
        "Hello World"
    ]
    conn.close()
