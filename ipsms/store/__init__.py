"""The SQLite store of every request ``listen`` received (schema, migrations, queries).

Every SQL statement of ipsms is here. Writes from the listener go through ``ipsms.store.recorder``
(group commit in the store's writer process, ``ipsms.store.writer``, with the statements
below); reads return ``ipsms.request.Request``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ipsms.errors import NotFoundError, StateError, setting
from ipsms.request import Request
from ipsms.store.history import FirstAttempt, Flags, history_flags
from ipsms.text import prebuilt_encoder

SCHEMA_VERSION = 7
# Of a request answered anything but 200, only this much of the body is kept (with its full
# size and SHA-256): junk posted at a public listener cannot fill the disk fast. Messages
# answered 200 are kept whole (they are bounded by --max-body).
REJECTED_BODY_KEEP = 64 * 1024

_MIGRATIONS: dict[int, str | tuple[str, ...]] = {
    1: """
    CREATE TABLE requests (
        id INTEGER PRIMARY KEY,
        received_at REAL NOT NULL,      -- unix time, seconds
        method TEXT NOT NULL,
        path TEXT NOT NULL,             -- path and query string as received
        remote TEXT,
        headers TEXT NOT NULL,          -- JSON [[name, value], ...], credentials masked
        content_type TEXT,
        body BLOB NOT NULL,             -- the exact bytes received
        refid TEXT,
        from_number TEXT,
        to_number TEXT,
        message TEXT,
        fields TEXT,                    -- JSON object of every parsed field
        attempt INTEGER,                -- 1, 2, ... per refid
        verdict TEXT,                   -- valid / invalid / missing / unchecked
        verdict_detail TEXT,            -- which scheme matched, or why it failed
        flags TEXT,                     -- JSON [{code, detail}, ...]
        status INTEGER NOT NULL,        -- the HTTP status ipsms answered
        error TEXT                      -- why the request was rejected
    );
    CREATE INDEX requests_refid ON requests (refid);
    CREATE INDEX requests_received_at ON requests (received_at);
    """,
    2: """
    ALTER TABLE requests ADD COLUMN body_size INTEGER;    -- bytes received (NULL: all kept)
    ALTER TABLE requests ADD COLUMN body_sha256 TEXT;     -- of the whole body, when cut
    """,
    3: """
    ALTER TABLE requests ADD COLUMN forward TEXT;         -- JSON: what the app answered
    """,
    4: """
    ALTER TABLE requests ADD COLUMN session TEXT;         -- the listener run (NULL: before v4)
    """,
    # `messages list --from/--to NUMBER`: an exact number is one index range, newest first
    # (the index's rowid order serves ORDER BY id), however large the store.
    5: """
    CREATE INDEX requests_from ON requests (from_number);
    CREATE INDEX requests_to ON requests (to_number);
    """,
    # The listener run's own number for each row (with ``session``): how the recorder finds a
    # row that a writer process which died or stalled may or may not have committed.
    6: """
    ALTER TABLE requests ADD COLUMN seq INTEGER;
    """,
    # Text search (`messages list --text`, the inspector's Search): a trigram index of the
    # messages finds the rows that can hold a needle of 3 or more characters without reading
    # every message (bench/bench_filters.py); the exact, case-insensitive comparison is still
    # made on those rows. The writer process indexes rows when it is idle (``index_text``),
    # never while it commits a batch (bench/bench_listen.py: the store writer's CPU), and
    # ``text_indexed.upto`` says how far: rows above it are read directly.
    7: (
        "CREATE VIRTUAL TABLE requests_text USING fts5(message, content='requests', "
        "content_rowid='id', tokenize='trigram')",
        "CREATE TABLE text_indexed (upto INTEGER NOT NULL)",
        "INSERT INTO text_indexed (upto) VALUES (0)",
    ),
}


class StoreMissing(NotFoundError):
    """There is no store at ``path``: nothing was recorded there yet. Every reader (``messages``,
    ``replay``, ``verify --refid``) meets this one error, exit code 10."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"no messages recorded yet: there is no message store at {path}",
            hint="run `ipsms listen` to receive some, or point "
            f"{setting('db')} / IPSMS_DB at your store",
        )
        self.path = path


class StoreUnusable(StateError):
    """The store at ``path`` cannot be opened or created (``reason`` says why)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(
            f"cannot open the message store {path}: {reason}",
            hint=f"check the file and its directory are writable, or pass {setting('db')} PATH",
        )
        self.path = path
        self.reason = reason


class StoreTooNew(StateError):
    """The store was written by a newer ipsms (schema ``version`` > ``supported``)."""

    def __init__(self, path: Path, version: int, supported: int) -> None:
        super().__init__(
            f"the message store {path} has schema version {version}, newer than "
            f"this ipsms understands ({supported})",
            hint=f"upgrade ipsms, or use another {setting('db')}",
        )
        self.path = path
        self.version = version
        self.supported = supported


def text_param(value: str | None) -> str | bytes | None:
    """A text value as SQLite can bind it. A lone surrogate (real SMS data) has no UTF-8
    form, so such a value is stored as the bytes Python's ``surrogatepass`` gives: a BLOB that
    ``text_value`` turns back into the same string."""
    if value is None or value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")
    return value


def text_value(value: str | bytes | None) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogatepass")
    return value


# The attempt number is worked out inside the INSERT: it is right even across restarts and
# rolled-back batches. Rows are only appended (or all cleared), so a refid's attempts are 1, 2,
# ... in id order, and the next is the latest one's + 1: one probe at the end of the refid's
# range in its index, however many attempts it has. (Counting them read every one, so each
# post of a busy refid cost more than the last; tests/store/test_store_batch.py holds it.)
INSERT_SQL = """
INSERT INTO requests (received_at, method, path, remote, headers, content_type, body, refid,
    from_number, to_number, message, fields, attempt, verdict, verdict_detail, flags, status,
    error, body_size, body_sha256, forward, seq, session)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,
    CASE WHEN ?8 IS NULL THEN NULL
         ELSE COALESCE((SELECT prior.attempt FROM requests AS prior WHERE prior.refid = ?8
                        ORDER BY prior.id DESC LIMIT 1), 0) + 1 END,
    ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)
"""


# ``json.dumps(headers, ensure_ascii=False)`` without building an encoder per call, on the
# event loop's hot path (headers are a list of string pairs).
_headers_json = prebuilt_encoder(", ", ": ")

# A request as the store's writer process receives it (``wire_row``): plain values only, so a
# batch crosses the pipe as one ``marshal`` blob. Positions, in this order:
# received_at, method, path, remote, headers (JSON), content_type, body, refid, from_number,
# to_number, message, fields (JSON), verdict, verdict_detail, flags (JSON), status, error,
# body_size, body_sha256, forward (JSON), seq (the recorder's number for the row, or None).
Row = tuple[Any, ...]
_REFID, _FROM, _MESSAGE, _FLAGS = 7, 8, 10, 14
_TEXTS = (2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 16)  # text columns (lone surrogates: BLOBs)


def wire_row(rec: Request, seq: int | None = None) -> Row:
    """``rec`` as the store writer takes it: the JSON columns already encoded (a header value
    that is not text fails here, for this request alone). ``seq``: the recorder's number for
    it within its listener run."""
    return (
        rec.received_at,
        rec.method,
        rec.path,
        rec.remote,
        _headers_json(rec.headers),
        rec.content_type,
        rec.body,
        rec.refid,
        rec.from_number,
        rec.to_number,
        rec.message,
        rec.fields_json,
        rec.verdict,
        rec.verdict_detail,
        json.dumps(rec.flags, ensure_ascii=False) if rec.flags else None,
        rec.status,
        rec.error_text,
        rec.body_size,
        rec.body_sha256,
        None if rec.forward is None else json.dumps(rec.forward),
        seq,
    )


def insert_params(row: Row, session: str) -> tuple[Any, ...]:
    """The INSERT's parameters for ``row`` (``wire_row``) received in listener run
    ``session``."""
    texts = [row[i] for i in _TEXTS]
    if "".join(filter(None, texts)).isascii():  # the common case: nothing to check
        return (*row, session)
    params = list(row)
    for i in _TEXTS:
        params[i] = text_param(params[i])
    return (*params, session)


def connect(path: Path, *, create: bool = True) -> sqlite3.Connection:
    """Open (and create or migrate) the store at ``path``. Without ``create`` a missing store
    is ``StoreMissing``; a store that cannot be opened is ``StoreUnusable``."""
    if not create and not path.exists():
        raise StoreMissing(path)
    if create:
        from ipsms.home import ensure_dir  # not in the writer process, which never creates

        ensure_dir(path.parent)
    # Bodies and headers may hold personal data: the database and its -wal, -shm and -journal
    # files are created 0600 (SQLite gives the side files the database's mode).
    old_umask = os.umask(0o077)
    try:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: a commit is on disk before it returns; group commit keeps this affordable.
        conn.execute("PRAGMA synchronous = FULL")
        _migrate(conn, path)
    except sqlite3.Error as exc:
        raise StoreUnusable(path, str(exc)) from None
    finally:
        os.umask(old_umask)
    for suffix in ("", "-wal", "-shm", "-journal"):  # files an older ipsms created
        with contextlib.suppress(OSError):
            Path(f"{path}{suffix}").chmod(0o600)
    return conn


@contextmanager
def opened(path: Path) -> Iterator[sqlite3.Connection]:
    """The existing store at ``path``, closed afterwards: how every reader opens it (reading
    never creates a store; a missing one is ``StoreMissing``)."""
    conn = _readable(path)
    try:
        yield conn
    finally:
        conn.close()


READ_RETRY = 3.0  # seconds a reader retries a store whose -wal a running writer is putting back


def _readable(path: Path) -> sqlite3.Connection:
    """A reader's connection, after a first read: while a listener's writer puts back a store
    whose -wal or -shm was removed (within a second), reads fail with "disk I/O error", so a
    reader tries again for a while rather than fail at once."""
    deadline = time.monotonic() + READ_RETRY
    while True:
        conn = connect(path, create=False)
        try:
            conn.execute("SELECT 1 FROM requests LIMIT 1").fetchall()
            return conn
        except sqlite3.OperationalError as exc:
            conn.close()
            if "disk I/O error" not in str(exc) or time.monotonic() > deadline:
                raise StoreUnusable(path, str(exc)) from None
            time.sleep(0.1)


def shared_dir_warning(path: Path) -> str | None:
    """A warning when the store's directory can be written by other users: they could
    replace or link its files."""
    try:
        mode = path.parent.stat().st_mode
    except OSError:
        return None
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        who = "everyone" if mode & stat.S_IWOTH else "its group"
        return (
            f"the message store's directory {path.parent} can be written by {who}; keep "
            "the store in a private directory (the default, or "
            f"{setting('db')} in one you own)"
        )
    return None


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreTooNew(path, version, SCHEMA_VERSION)
    for target in range(version + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process (a listener creating the store a `tail -f` waits for) may have
            # migrated it between our read and the lock: read again under the lock.
            if conn.execute("PRAGMA user_version").fetchone()[0] >= target:
                conn.execute("COMMIT")
                continue
            steps = _MIGRATIONS[target]
            for statement in steps.split(";") if isinstance(steps, str) else steps:
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {target}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def from_row(row: sqlite3.Row) -> Request:
    """A row read back as the one request model."""
    t = text_value
    fields = t(row["fields"])
    flags = t(row["flags"])
    # The error column holds "code: detail" (codes never contain ": ").
    error, _, error_detail = (t(row["error"]) or "").partition(": ")
    return Request(
        id=row["id"],
        received_at=row["received_at"],
        method=row["method"],
        path=t(row["path"]),  # type: ignore[arg-type]
        remote=t(row["remote"]),
        headers=[(k, v) for k, v in json.loads(t(row["headers"]))],  # type: ignore[arg-type]
        content_type=t(row["content_type"]),
        body=bytes(row["body"]),
        refid=t(row["refid"]),
        from_number=t(row["from_number"]),
        to_number=t(row["to_number"]),
        message=t(row["message"]),
        fields=None if fields is None else _parsed_fields(fields),
        fields_json=fields,
        attempt=row["attempt"],
        verdict=t(row["verdict"]),
        verdict_detail=t(row["verdict_detail"]),
        flags=[] if flags is None else json.loads(flags),
        status=row["status"],
        error=error or None,
        error_detail=error_detail or None,
        body_size=row["body_size"],
        body_sha256=row["body_sha256"],
        forward=None if row["forward"] is None else json.loads(row["forward"]),
    )


def _parsed_fields(text: str) -> Any:
    """The stored fields. An integer past Python's 4300-digit limit (a body ``listen``
    accepts, keeping the number as its text) is read back as that text, not an error that
    stops every reader of the store."""
    try:
        return json.loads(text)
    except ValueError:
        return json.loads(text, parse_int=_int_or_text)


def _int_or_text(token: str) -> int | str:
    try:
        return int(token)
    except ValueError:
        return token


def _query(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> Iterator[Request]:
    for row in conn.execute(sql, params):
        yield from_row(row)


def count(conn: sqlite3.Connection) -> int:
    """How many requests are recorded."""
    return int(conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0])


def count_matching(
    conn: sqlite3.Connection, where: Filter | None = None, *, since: float | None = None
) -> int:
    """How many recorded requests match ``where`` (received at or after ``since``): the "of
    N" of a ``messages list`` that showed only the newest."""
    clause, params = _sql(conn, _with_since(where, since))
    return int(conn.execute(f"SELECT COUNT(*) FROM requests{clause}", tuple(params)).fetchone()[0])


def attempts_for(conn: sqlite3.Connection, refid: str) -> list[Request]:
    """Every request recorded with ``refid``, oldest first."""
    return list(
        _query(conn, "SELECT * FROM requests WHERE refid = ? ORDER BY id", (text_param(refid),))
    )


def attempts_exist(conn: sqlite3.Connection, refid: str) -> bool:
    """Whether any request was recorded with exactly ``refid``."""
    return (
        conn.execute(
            "SELECT 1 FROM requests WHERE refid = ? LIMIT 1", (text_param(refid),)
        ).fetchone()
        is not None
    )


def refids_starting(conn: sqlite3.Connection, prefix: str, limit: int) -> list[str]:
    """Up to ``limit`` distinct recorded refids that start with ``prefix``, in order. GLOB is
    case-sensitive and, with its wildcards escaped, a prefix range on the refid index."""
    pattern = _glob_literal(prefix) + "*"
    rows = conn.execute(
        "SELECT DISTINCT refid FROM requests WHERE refid GLOB ? ORDER BY refid LIMIT ?",
        (text_param(pattern), limit),
    )
    return [r for (r,) in rows if isinstance(r, str) and r.startswith(prefix)]


@dataclass(frozen=True)
class Filter:
    """Which recorded requests a reader wants (``messages list``, ``export``, ``tail``). Every
    criterion is an SQL parameter; an empty filter selects every request. Values come
    already read (``ipsms.records.parse_*`` turns what users type into these)."""

    since: float | None = None  # unix time: received at or after it
    until: float | None = None  # unix time: received at or before it
    refid_prefix: str | None = None  # refid starts with it (case-sensitive)
    from_number: NumberMatch | None = None
    to_number: NumberMatch | None = None
    text: str | None = None  # substring of the message, any case (casefold), taken literally
    statuses: tuple[tuple[int, int], ...] = ()  # inclusive ranges: 4xx is (400, 499)
    verdicts: tuple[str, ...] = ()  # any of valid / invalid / missing / unchecked
    flag: str | None = None  # a flag code the request carries
    before: int | None = None  # row ids below it only: the next page of a newest-first list

    @property
    def empty(self) -> bool:
        return self == Filter()


@dataclass(frozen=True)
class NumberMatch:
    """A phone number as a user typed it: ``exact`` (an E.164 ``+...`` or anything not all
    digits, compared as stored: one index range), or ``digits``: numbers ending in them, so
    ``3038675309``, ``13038675309`` and ``5309`` all find ``+13038675309`` (a scan)."""

    value: str
    suffix: bool = False
    typed: str | None = None  # with ``suffix``: also this value exactly (a short code's dash)


# What a SELECT of ``Filter`` costs: the refid prefix and an exact number are index ranges, the
# times a range on received_at; the rest is checked row by row on the rows those (or the
# newest-first walk of the table, stopped by LIMIT) reach. Measured: bench/bench_filters.py.
def _where(conn: sqlite3.Connection, f: Filter) -> tuple[list[str], list[Any]]:
    terms: list[str] = []
    params: list[Any] = []
    if f.before is not None:
        terms.append("id < ?")
        params.append(f.before)
    if f.since is not None:
        terms.append("received_at >= ?")
        params.append(f.since)
    if f.until is not None:
        terms.append("received_at <= ?")
        params.append(f.until)
    if f.refid_prefix:
        # GLOB is case-sensitive and, with its wildcards escaped, a range on the refid index.
        terms.append("refid GLOB ?")
        params.append(text_param(_glob_literal(f.refid_prefix) + "*"))
    for column, match in (("from_number", f.from_number), ("to_number", f.to_number)):
        if match is None:
            continue
        if match.suffix:
            terms.append(f"({column} = ? OR {column} GLOB ?)")
            params += [text_param(match.typed or match.value), "*" + match.value]
        else:
            terms.append(f"{column} = ?")
            params.append(text_param(match.value))
    if f.text:
        terms.append(_text_term(conn, f.text, params))
    if f.statuses:
        terms.append("(" + " OR ".join("status BETWEEN ? AND ?" for _ in f.statuses) + ")")
        for low, high in f.statuses:
            params += [low, high]
    if f.verdicts:
        terms.append(f"verdict IN ({', '.join('?' for _ in f.verdicts)})")
        params += list(f.verdicts)
    if f.flag:
        # Most rows have no flags (NULL): instr() on the quoted code rules out nearly every
        # other row before json_each confirms it is a code, not a word of a detail. CAST: a
        # flags value holding a lone surrogate is stored as a BLOB (``text_param``).
        terms.append(
            "flags IS NOT NULL AND instr(flags, ?) > 0 AND EXISTS (SELECT 1 FROM "
            "json_each(CAST(flags AS TEXT)) WHERE json_extract(value, '$.code') = ?)"
        )
        params += [text_param(json.dumps(f.flag, ensure_ascii=False)), text_param(f.flag)]
    return terms, params


def _glob_literal(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _text_term(conn: sqlite3.Connection, needle: str, params: list[Any]) -> str:
    """``--text``: a case-insensitive substring, its ``%`` and ``_`` plain characters.
    SQLite's lower() folds ASCII only, which is exact for an ASCII needle; any other needle
    (accents, a lone surrogate: it cannot even be bound as text) is compared in Python with
    casefold, on the message as stored (a BLOB for lone surrogates)."""
    folded = needle.casefold()
    if folded.isascii():
        params.append(folded)
        if len(folded) < 3:  # shorter than a trigram: every message is read
            return "instr(lower(message), ?) > 0"
        # The index finds every indexed row holding the needle in any case (a superset: it
        # folds case beyond ASCII too), the rows not indexed yet are read; the exact test
        # runs on those only.
        params.insert(len(params) - 1, '"' + folded.replace('"', '""') + '"')
        return (
            "id IN (SELECT rowid FROM requests_text WHERE requests_text MATCH ? UNION ALL "
            "SELECT id FROM requests WHERE id > (SELECT upto FROM text_indexed)) "
            "AND instr(lower(message), ?) > 0"
        )

    def contains(value: str | bytes | None) -> bool:
        text = text_value(value)
        return text is not None and folded in text.casefold()

    conn.create_function("ipsms_has_text", 1, contains, deterministic=True)
    return "ipsms_has_text(message)"


def _sql(conn: sqlite3.Connection, f: Filter | None, *extra: str) -> tuple[str, list[Any]]:
    terms, params = _where(conn, f) if f is not None else ([], [])
    terms = [*extra, *terms]
    return (" WHERE " + " AND ".join(terms)) if terms else "", params


def recent(
    conn: sqlite3.Connection,
    limit: int = 50,
    *,
    since: float | None = None,
    where: Filter | None = None,
) -> list[Request]:
    """The newest requests first (matching ``where``, received at or after ``since``)."""
    clause, params = _sql(conn, _with_since(where, since))
    return list(
        _query(
            conn,
            f"SELECT * FROM requests WHERE id IN ({_newest(clause)}) ORDER BY id DESC",
            (*params, limit),
        )
    )


def _newest(clause: str) -> str:
    """The ids of the newest ``?`` rows matching ``clause``. Sorting ids, not whole rows: when
    an index finds the rows (a refid prefix, a number), all of them are sorted to keep the
    newest, and a broad prefix can match most of the store. With ids alone, the refid index
    answers by itself, however many rows match (a broad ``--refid`` prefix on a large store;
    bench/bench_filters.py)."""
    return f"SELECT id FROM requests{clause} ORDER BY id DESC LIMIT ?"


def _with_since(f: Filter | None, since: float | None) -> Filter | None:
    """``f``, further limited to requests received at or after ``since`` (if given)."""
    if since is None:
        return f
    if f is None:
        return Filter(since=since)
    return replace(f, since=since if f.since is None else max(f.since, since))


def iter_all(
    conn: sqlite3.Connection,
    since: float | None = None,
    *,
    where: Filter | None = None,
    limit: int | None = None,
) -> Iterator[Request]:
    """Every request (received at or after ``since``, matching ``where``), oldest first;
    with ``limit``, the newest ``limit`` of them, still oldest first. Streams from the cursor:
    the table is never loaded whole."""
    clause, params = _sql(conn, _with_since(where, since))
    if limit is None:
        return _query(conn, f"SELECT * FROM requests{clause} ORDER BY id", tuple(params))
    return _query(
        conn,
        f"SELECT * FROM requests WHERE id IN ({_newest(clause)}) ORDER BY id",
        (*params, limit),
    )


def after(
    conn: sqlite3.Connection, after_id: int, upto_id: int, limit: int, where: Filter | None = None
) -> list[Request]:
    """Up to ``limit`` requests with ``after_id < id <= upto_id`` matching ``where``, oldest
    first: what ``tail -f`` polls (a range on the primary key, bounded both ways)."""
    clause, params = _sql(conn, where, "id > ?", "id <= ?")
    return list(
        _query(
            conn,
            f"SELECT * FROM requests{clause} ORDER BY id LIMIT ?",
            (after_id, upto_id, *params, limit),
        )
    )


def last_row(conn: sqlite3.Connection) -> tuple[int, float | None]:
    """The highest row id and that row's time: ``(0, None)`` for an empty store. The pair
    tells a follower that the store was cleared, even when new rows reused the ids."""
    row = conn.execute("SELECT id, received_at FROM requests ORDER BY id DESC LIMIT 1").fetchone()
    return (0, None) if row is None else (int(row[0]), float(row[1]))


def received_at_of(conn: sqlite3.Connection, row_id: int) -> float | None:
    """When row ``row_id`` was received; None when there is no such row (any more)."""
    row = conn.execute("SELECT received_at FROM requests WHERE id = ?", (row_id,)).fetchone()
    return None if row is None else float(row[0])


def data_version(conn: sqlite3.Connection) -> int:
    """A number that changes when another connection commits to the store: a poll that sees
    it unchanged need not query anything."""
    return int(conn.execute("PRAGMA data_version").fetchone()[0])


def clear(conn: sqlite3.Connection) -> int:
    """Delete every recorded request; returns how many. Deleted pages are overwritten
    (``secure_delete``) and the WAL truncated, so message text does not linger on disk."""
    conn.execute("PRAGMA secure_delete = ON")
    conn.execute("BEGIN IMMEDIATE")
    try:
        removed = conn.execute("DELETE FROM requests").rowcount
        conn.execute("INSERT INTO requests_text (requests_text) VALUES ('delete-all')")
        conn.execute("UPDATE text_indexed SET upto = 0")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    # A listener holding a read lock can make this fail; the WAL is then overwritten later.
    with contextlib.suppress(sqlite3.Error):
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return removed


# -- the recorder's batch (one transaction per batch, in the store's writer process) ----------
def begin_batch(conn: sqlite3.Connection) -> None:
    """Take the write lock (``BEGIN IMMEDIATE``): while it is held, each new row's id is the
    highest + 1, so a batch's rows get consecutive ids."""
    conn.execute("BEGIN IMMEDIATE")


# After a batch's INSERTs, in one query rather than one per answer: the last row id written,
# how many rows sit in the batch's id range (all of it: the ids are consecutive), then the
# batch's retries.
_BATCH_RESULT_SQL = """
SELECT last_insert_rowid(),
       (SELECT COUNT(*) FROM requests
        WHERE id > last_insert_rowid() - ?1 AND id <= last_insert_rowid()),
       NULL
UNION ALL
SELECT id, NULL, attempt FROM requests
WHERE id > last_insert_rowid() - ?1 AND id <= last_insert_rowid() AND attempt > 1
"""


def insert_batch(
    conn: sqlite3.Connection, rows: list[Row], session: str
) -> list[tuple[int, int | None, Flags | None]]:
    """Insert ``rows`` (``wire_row``; received in listener run ``session``) in the transaction
    ``begin_batch`` opened; their ``(id, attempt, flags)``, in order. ``flags`` is None unless
    the refid's history added some (``ipsms.store.history``); then it is every flag of the
    row, as stored."""
    n = len(rows)
    conn.executemany(INSERT_SQL, [insert_params(row, session) for row in rows])
    last, present, retries = None, None, []
    for row_id, count, attempt in conn.execute(_BATCH_RESULT_SQL, (n,)):
        if attempt is None:
            last, present = row_id, count
        else:
            retries.append((row_id, attempt))
    # The batch's rows are the n ids up to the last one (the write lock is held since
    # ``begin_batch``, and a new row id is the highest + 1): all n of them present proves it.
    if last is None or present != n:
        raise sqlite3.DatabaseError(
            f"wrote {n} rows up to row {last}, but {present} rows are in that range"
        )
    before = last - n
    # A new refid is attempt 1 and no refid has none: only retries are read back (the common
    # case, a batch of new refids, reads nothing into Python).
    out: list[tuple[int, int | None, Flags | None]] = [
        (row_id, None if row[_REFID] is None else 1, None)
        for row_id, row in enumerate(rows, before + 1)
    ]
    for row_id, attempt in retries:
        out[row_id - before - 1] = (row_id, attempt, None)
    firsts: dict[str, FirstAttempt] = {}
    # Only a retry has a history: a new refid (attempt 1, the common case) costs nothing here.
    for i, (row, (row_id, attempt, _)) in enumerate(zip(rows, out, strict=True)):
        refid = row[_REFID]
        if attempt is None or attempt == 1 or refid is None:
            continue
        first = firsts.get(refid)
        if first is None:
            first = _first_attempt(conn, refid, row_id)
            if first.whole:  # else the next row of this refid may find one kept whole
                firsts[refid] = first
        added = history_flags(attempt, row[_FROM], row[_MESSAGE], session, first)
        if added:
            own = json.loads(row[_FLAGS]) if row[_FLAGS] else []
            flags = [*own, *added]
            conn.execute(
                "UPDATE requests SET flags = ? WHERE id = ?",
                (text_param(json.dumps(flags, ensure_ascii=False)), row_id),
            )
            out[i] = (row_id, attempt, flags)
    return out


def _first_attempt(conn: sqlite3.Connection, refid: str, before: int) -> FirstAttempt:
    """The first attempt of ``refid``, and the one a new attempt is compared with: the first,
    or if its text was cut (a rejected request), the first earlier one kept whole. Rows with
    equal keys are in id order in the refid index, so the common case is one probe, and the
    cursor stops at the first row kept whole."""
    rows = conn.execute(
        "SELECT attempt, received_at, session, from_number, message "
        "FROM requests WHERE refid = ? AND id < ? ORDER BY id",
        (text_param(refid), before),
    )
    attempt, received_at, session, from_number, message = next(rows)
    first = FirstAttempt(
        received_at, session, attempt, text_value(from_number), text_value(message)
    )
    if first.whole:
        return first
    for attempt, _, _, from_number, message in rows:
        later = FirstAttempt(
            received_at, session, attempt, text_value(from_number), text_value(message)
        )
        if later.whole:
            return later
    return first


def commit(conn: sqlite3.Connection) -> None:
    conn.execute("COMMIT")


def rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with contextlib.suppress(Exception):
            conn.execute("ROLLBACK")


# -- finding the rows of a writer that died or stalled (the recorder's ``seq``) ---------------
def file_identity(path: Path | str) -> tuple[int, int] | None:
    """The file at ``path`` as (device, inode), or None when there is none: a writer compares
    it before answering, so a store removed or replaced under it is noticed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def committed(
    conn: sqlite3.Connection, session: str, floor: int, seqs: list[int]
) -> dict[int, tuple[int, int | None, Flags | None]]:
    """Of the rows numbered ``seqs`` in listener run ``session``, those in the store (ids over
    ``floor``): seq -> (id, attempt, flags). A floor above every id means the rows were
    cleared since, and the search starts from the first."""
    if not seqs:
        return {}
    top = conn.execute("SELECT MAX(id) FROM requests").fetchone()[0] or 0
    if top < floor:
        floor = 0
    found: dict[int, tuple[int, int | None, Flags | None]] = {}
    wanted = set(seqs)
    for start in range(0, len(seqs), 500):
        chunk = seqs[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for row_id, attempt, flags, seq in conn.execute(
            f"SELECT id, attempt, flags, seq FROM requests WHERE id > ? AND session = ? "
            f"AND seq IN ({marks})",
            (floor, session, *chunk),
        ):
            if seq in wanted:
                text = text_value(flags)
                found[seq] = (row_id, attempt, None if text is None else json.loads(text))
    return found


def mark_answered(
    conn: sqlite3.Connection, session: str, floor: int, seqs: list[int], status: int, error: str
) -> int:
    """Say of the rows numbered ``seqs`` (listener run ``session``, ids over ``floor``) that
    they were answered ``status`` for ``error``: rows a writer committed after the listener
    had given up waiting for it. Returns how many rows changed."""
    found = committed(conn, session, floor, seqs)
    if not found:
        return 0
    ids = [row_id for row_id, _, _ in found.values()]
    changed = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        changed += conn.execute(
            f"UPDATE requests SET status = ?, error = ? WHERE id IN ({marks})",
            (status, text_param(error), *chunk),
        ).rowcount
    return changed


def is_store(path: Path) -> bool:
    """Whether the file at ``path`` is an ipsms store, or empty (one to be made): a file put
    in the store's place by someone else is not written into."""
    try:
        if path.stat().st_size == 0:
            return True
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
        try:
            tables = {
                name
                for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
        finally:
            conn.close()
    except (OSError, sqlite3.Error):
        return False
    return not tables or "requests" in tables


def index_text(conn: sqlite3.Connection, limit: int = 2000) -> int:
    """Add up to ``limit`` more messages to the text index, in a transaction of its own (the
    writer process calls it when idle); how many rows it covered (0: the index is whole)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        (upto,) = conn.execute("SELECT upto FROM text_indexed").fetchone()
        top = conn.execute(
            "SELECT id FROM requests WHERE id > ? ORDER BY id LIMIT 1 OFFSET ?", (upto, limit - 1)
        ).fetchone()
        last = (
            top[0] if top else (conn.execute("SELECT MAX(id) FROM requests").fetchone()[0] or upto)
        )
        if last <= upto:
            conn.execute("COMMIT")
            return 0
        conn.execute(
            "INSERT INTO requests_text (rowid, message) SELECT id, message FROM "
            "requests WHERE id > ? AND id <= ? AND message IS NOT NULL",
            (upto, last),
        )
        conn.execute("UPDATE text_indexed SET upto = ?", (last,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return int(last - upto)
