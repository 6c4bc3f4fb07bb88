"""The SQLite store of every request ``listen`` received (schema, migrations, queries).

Writes from the listener go through ``ipsms.recorder`` (group commit on a thread); this module
holds the schema and the synchronous queries the CLI uses to read it back.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ipsms.errors import StateError
from ipsms.home import ensure_dir

SCHEMA_VERSION = 2
# Of a request answered anything but 200, only this much of the body is kept (with its full
# size and SHA-256): junk posted at a public listener cannot fill the disk fast. Messages
# answered 200 are kept whole (they are bounded by --max-body).
REJECTED_BODY_KEEP = 64 * 1024

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
    2: """
    ALTER TABLE requests ADD COLUMN body_size INTEGER;    -- bytes received (NULL: all kept)
    ALTER TABLE requests ADD COLUMN body_sha256 TEXT;     -- of the whole body, when cut
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
    body_size: int | None = None  # set when ``body`` is only the first part of what arrived
    body_sha256: str | None = None


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


# The attempt number is counted inside the INSERT: it is right even across restarts and
# rolled-back batches, and costs one index probe in SQLite rather than a Python round trip.
INSERT_SQL = """
INSERT INTO requests (received_at, method, path, remote, headers, content_type, body, refid,
    from_number, to_number, message, fields, attempt, verdict, verdict_detail, flags, status,
    error, body_size, body_sha256)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,
    CASE WHEN ?8 IS NULL THEN NULL
         ELSE (SELECT COUNT(*) + 1 FROM requests AS prior WHERE prior.refid = ?8) END,
    ?13, ?14, ?15, ?16, ?17, ?18, ?19)
"""


def insert_params(rec: RequestRecord) -> tuple[Any, ...]:
    headers = json.dumps(rec.headers, ensure_ascii=False)
    flags = json.dumps(rec.flags, ensure_ascii=False) if rec.flags else None
    texts = (rec.path, rec.remote, headers, rec.content_type, rec.refid, rec.from_number,
             rec.to_number, rec.message, rec.fields_json, rec.verdict, rec.verdict_detail,
             flags, rec.error)
    if not "".join(t for t in texts if t is not None).isascii():  # rare: check each one
        texts = tuple(text_param(t) for t in texts)  # type: ignore[assignment]
    path, remote, headers, ctype, refid, from_, to, message, fields, verdict, detail, flags, \
        error = texts
    return (rec.received_at, rec.method, path, remote, headers, ctype, rec.body, refid, from_,
            to, message, fields, verdict, detail, flags, rec.status, error, rec.body_size,
            rec.body_sha256)


def connect(path: Path, *, create: bool = True) -> sqlite3.Connection:
    """Open (and create or migrate) the store at ``path``; errors become ``StateError``."""
    if not create and not path.exists():
        raise StateError(f"no message store at {path}",
                         hint="run `ipsms listen` first, or pass --db PATH")
    if create:
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
        _migrate(conn)
    except sqlite3.Error as exc:
        raise StateError(f"cannot open the message store {path}: {exc}",
                         hint="check the file and its directory are writable, or pass --db "
                         "PATH") from None
    finally:
        os.umask(old_umask)
    for suffix in ("", "-wal", "-shm", "-journal"):  # files an older ipsms created
        with contextlib.suppress(OSError):
            Path(f"{path}{suffix}").chmod(0o600)
    return conn


def shared_dir_warning(path: Path) -> str | None:
    """A warning when the store's directory can be written by other users: they could
    replace or link its files."""
    try:
        mode = path.parent.stat().st_mode
    except OSError:
        return None
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        who = "everyone" if mode & stat.S_IWOTH else "its group"
        return (f"the message store's directory {path.parent} can be written by {who}; keep "
                "the store in a private directory (the default, or --db in one you own)")
    return None


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
    body_size: int | None = None  # bytes that arrived, when only the start was kept
    body_sha256: str | None = None  # of everything that arrived, when the body was cut

    @property
    def body_truncated(self) -> bool:
        return self.body_size is not None and self.body_size > len(self.body)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> StoredRequest:
        t = text_value
        fields = t(row["fields"])
        flags = t(row["flags"])
        body = bytes(row["body"])
        return cls(
            id=row["id"], received_at=row["received_at"], method=row["method"],
            path=t(row["path"]), remote=t(row["remote"]),  # type: ignore[arg-type]
            headers=[(k, v) for k, v in json.loads(t(row["headers"]))],  # type: ignore[arg-type]
            content_type=t(row["content_type"]), body=body, refid=t(row["refid"]),
            from_number=t(row["from_number"]), to_number=t(row["to_number"]),
            message=t(row["message"]),
            fields=None if fields is None else json.loads(fields),
            attempt=row["attempt"], verdict=t(row["verdict"]),
            verdict_detail=t(row["verdict_detail"]),
            flags=[] if flags is None else json.loads(flags),
            status=row["status"], error=t(row["error"]),
            body_size=row["body_size"], body_sha256=row["body_sha256"],
        )


def _query(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()
           ) -> Iterator[StoredRequest]:
    for row in conn.execute(sql, params):
        yield StoredRequest.from_row(row)


def count(conn: sqlite3.Connection, where: str = "1", params: tuple[Any, ...] = ()) -> int:
    return int(conn.execute(f"SELECT COUNT(*) FROM requests WHERE {where}", params).fetchone()[0])


def attempts_for(conn: sqlite3.Connection, refid: str) -> list[StoredRequest]:
    """Every request recorded with ``refid``, oldest first."""
    return list(_query(conn, "SELECT * FROM requests WHERE refid = ? ORDER BY id",
                       (text_param(refid),)))


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


