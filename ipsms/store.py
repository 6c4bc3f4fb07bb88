"""The SQLite store of every request ``listen`` received (schema, migrations, queries).

Writes from the listener go through ``ipsms.recorder`` (group commit on a thread); this module
holds the schema and the synchronous queries the CLI uses to read it back.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ipsms.errors import StateError
from ipsms.home import ensure_dir

SCHEMA_VERSION = 1

_MIGRATIONS: dict[int, str] = {
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
}


@dataclass(slots=True)
class RequestRecord:
    """One received request, as it is written to the store. (Not frozen: built for every
    request, and a frozen dataclass costs a ``object.__setattr__`` per field.)"""

    received_at: float
    method: str
    path: str
    remote: str | None
    headers: list[tuple[str, str]]
    content_type: str | None
    body: bytes
    status: int
    refid: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    message: str | None = None
    fields_json: str | None = None  # JSON object of every parsed field
    verdict: str | None = None
    verdict_detail: str | None = None
    flags: list[dict[str, str]] | None = None
    error: str | None = None


# The attempt number is counted inside the INSERT: it is right even across restarts and
# rolled-back batches, and costs one index probe in SQLite rather than a Python round trip.
INSERT_SQL = """
INSERT INTO requests (received_at, method, path, remote, headers, content_type, body, refid,
    from_number, to_number, message, fields, attempt, verdict, verdict_detail, flags, status,
    error)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,
    CASE WHEN ?8 IS NULL THEN NULL
         ELSE (SELECT COUNT(*) + 1 FROM requests AS prior WHERE prior.refid = ?8) END,
    ?13, ?14, ?15, ?16, ?17)
"""


def insert_params(rec: RequestRecord) -> tuple[Any, ...]:
    return (
        rec.received_at, rec.method, rec.path, rec.remote,
        json.dumps(rec.headers, ensure_ascii=False), rec.content_type, rec.body, rec.refid,
        rec.from_number, rec.to_number, rec.message, rec.fields_json,
        rec.verdict, rec.verdict_detail,
        json.dumps(rec.flags, ensure_ascii=False) if rec.flags else None,
        rec.status, rec.error,
    )


def connect(path: Path, *, create: bool = True) -> sqlite3.Connection:
    """Open (and create or migrate) the store at ``path``; errors become ``StateError``."""
    if not create and not path.exists():
        raise StateError(f"no message store at {path}",
                         hint="run `ipsms listen` first, or pass --db PATH")
    if create:
        ensure_dir(path.parent)
    try:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: a commit is on disk before it returns; group commit keeps this affordable.
        conn.execute("PRAGMA synchronous = FULL")
        _migrate(conn)
    except sqlite3.Error as exc:
        raise StateError(f"cannot open the message store {path}: {exc}",
                         hint="check the file and its directory are writable, or pass --db "
                         "PATH") from None
    with contextlib.suppress(OSError):
        path.chmod(0o600)  # bodies and headers may hold personal data
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StateError(
            f"the message store has schema version {version}, newer than this ipsms "
            f"understands ({SCHEMA_VERSION})",
            hint="upgrade ipsms, or use another --db",
        )
    for target in range(version + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _MIGRATIONS[target].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {target}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


@dataclass(frozen=True)
class StoredRequest:
    """A row read back from the store."""

    id: int
    received_at: float
    method: str
    path: str
    remote: str | None
    headers: list[tuple[str, str]]
    content_type: str | None
    body: bytes
    refid: str | None
    from_number: str | None
    to_number: str | None
    message: str | None
    fields: dict[str, Any] | None
    attempt: int | None
    verdict: str | None
    verdict_detail: str | None
    flags: list[dict[str, str]]
    status: int
    error: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> StoredRequest:
        return cls(
            id=row["id"], received_at=row["received_at"], method=row["method"],
            path=row["path"], remote=row["remote"],
            headers=[(k, v) for k, v in json.loads(row["headers"])],
            content_type=row["content_type"], body=bytes(row["body"]), refid=row["refid"],
            from_number=row["from_number"], to_number=row["to_number"],
            message=row["message"],
            fields=None if row["fields"] is None else json.loads(row["fields"]),
            attempt=row["attempt"], verdict=row["verdict"],
            verdict_detail=row["verdict_detail"],
            flags=[] if row["flags"] is None else json.loads(row["flags"]),
            status=row["status"], error=row["error"],
        )


def _query(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()
           ) -> Iterator[StoredRequest]:
    for row in conn.execute(sql, params):
        yield StoredRequest.from_row(row)


def count(conn: sqlite3.Connection, where: str = "1", params: tuple[Any, ...] = ()) -> int:
    return int(conn.execute(f"SELECT COUNT(*) FROM requests WHERE {where}", params).fetchone()[0])


def attempts_for(conn: sqlite3.Connection, refid: str) -> list[StoredRequest]:
    """Every request recorded with ``refid``, oldest first."""
    return list(_query(conn, "SELECT * FROM requests WHERE refid = ? ORDER BY id", (refid,)))


def recent(conn: sqlite3.Connection, limit: int = 50, *, since: float | None = None
           ) -> list[StoredRequest]:
    """The newest requests first."""
    if since is None:
        return list(_query(conn, "SELECT * FROM requests ORDER BY id DESC LIMIT ?", (limit,)))
    return list(_query(conn, "SELECT * FROM requests WHERE received_at >= ? "
                       "ORDER BY id DESC LIMIT ?", (since, limit)))


def iter_all(conn: sqlite3.Connection) -> Iterator[StoredRequest]:
    """Every request, oldest first (streams; does not load the table)."""
    return _query(conn, "SELECT * FROM requests ORDER BY id")


def clear(conn: sqlite3.Connection) -> int:
    cur = conn.execute("DELETE FROM requests")
    return cur.rowcount


