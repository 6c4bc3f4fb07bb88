"""Reading back what ``listen`` recorded: list, show, export (optionally redacted) and clear.

Everything here works on the SQLite store (``ipsms.store``) and returns plain data (rows and
JSON-ready dicts); rendering is ``ipsms.ui.messages`` and the CLI's job. Export streams
rows from a cursor so a large store is never loaded into memory.
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote_plus, urlencode

from ipsms import defaults, store
from ipsms.errors import NotFoundError, UsageError
from ipsms.inbound import KNOWN_FIELDS, BodyError, body_kind
from ipsms.redact import mask_headers, mask_secret, redact_number
from ipsms.store import StoredRequest
from ipsms.text import iso_time

DEFAULT_LIMIT = defaults.LIST_LIMIT
# A run of 7 to 15 digits, optionally after '+': what a phone number looks like inside free
# text (extra fields, paths). Shorter runs (ports, byte offsets) are left alone.
_PHONE_RE = re.compile(r"\+?\d{7,15}")
_SINCE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True)
class ListQuery:
    db: Path
    limit: int = DEFAULT_LIMIT
    since: float | None = None  # unix time; only requests received at or after it


@dataclass(frozen=True)
class ExportOptions:
    db: Path
    since: float | None = None
    redact: bool = False


# -- opening the store ------------------------------------------------------------------------
@contextmanager
def opened(path: Path) -> Iterator[sqlite3.Connection]:
    """The store at ``path``, closed afterwards. A missing store is ``NotFoundError``: nothing
    was recorded there yet (reading never creates one)."""
    if not path.exists():
        raise NotFoundError(
            f"no messages recorded yet: there is no message store at {path}",
            hint="run `ipsms listen` to receive some, or point --db / IPSMS_DB at your store",
        )
    conn = store.connect(path, create=False)
    try:
        yield conn
    finally:
        conn.close()


def parse_since(text: str, now: float | None = None) -> float:
    """``'10m'`` -> the unix time ten minutes ago. Units: s, m, h, d, w."""
    m = _SINCE_RE.match(text)
    if not m:
        raise UsageError(f"cannot read the duration {text!r}",
                         hint="use a number and a unit: 90s, 10m, 2h, 1d, 1w")
    seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2).lower()]
    return (time.time() if now is None else now) - seconds


# -- queries ----------------------------------------------------------------------------------
def list_recent(conn: sqlite3.Connection, query: ListQuery) -> list[StoredRequest]:
    """Newest first, at most ``query.limit`` rows (accepted and rejected requests alike)."""
    return store.recent(conn, query.limit, since=query.since)


def attempts(conn: sqlite3.Connection, refid: str) -> list[StoredRequest]:
    """Every recorded attempt of ``refid``, oldest first; ``NotFoundError`` when none."""
    rows = store.attempts_for(conn, refid)
    if not rows:
        raise NotFoundError(f"no recorded message with refid {refid!r}",
                            hint="`ipsms messages list` shows the recorded refids")
    return rows


def iter_oldest_first(conn: sqlite3.Connection, since: float | None = None
                      ) -> Iterator[StoredRequest]:
    """Every request oldest first, streamed from the cursor (never the whole table at once)."""
    if since is None:
        yield from store.iter_all(conn)
        return
    cur = conn.execute("SELECT * FROM requests WHERE received_at >= ? ORDER BY id", (since,))
    for row in cur:
        yield StoredRequest.from_row(row)


def count_all(conn: sqlite3.Connection) -> int:
    return store.count(conn)


def clear_all(conn: sqlite3.Connection) -> int:
    """Delete every recorded request; returns how many. Deleted pages are overwritten
    (``secure_delete``) and the WAL truncated, so message text does not linger on disk."""
    conn.execute("PRAGMA secure_delete = ON")
    removed = store.clear(conn)
    # A listener holding a read lock can make this fail; the WAL is then overwritten later.
    with suppress(sqlite3.Error):
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return removed


# -- dicts for JSON output --------------------------------------------------------------------
def body_fields(body: bytes) -> dict[str, str | None]:
    """``{"body": text}`` for UTF-8 bodies, else ``{"body": None, "body_base64": ...}``."""
    try:
        return {"body": body.decode("utf-8")}
    except UnicodeDecodeError:
        return {"body": None, "body_base64": base64.b64encode(body).decode("ascii")}


def summary_dict(row: StoredRequest) -> dict[str, Any]:
    """One ``messages list`` row as JSON (no body, no headers, no signature)."""
    return {
        "type": "request",
        "id": row.id,
        "received_at": iso_time(row.received_at),
        "refid": row.refid,
        "attempt": row.attempt,
        "from": row.from_number,
        "to": row.to_number,
        "message": row.message,
        "verdict": row.verdict,
        "verdict_detail": row.verdict_detail,
        "flags": row.flags,
        "status": row.status,
        "error": row.error,
    }


def _stored_dict(row: StoredRequest) -> dict[str, Any]:
    return {
        "type": "request",
        "id": row.id,
        "received_at": iso_time(row.received_at),
        "method": row.method,
        "path": row.path,
        "remote": row.remote,
        "headers": [list(h) for h in mask_headers(row.headers)],
        "content_type": row.content_type,
        "size": len(row.body) if row.body_size is None else row.body_size,
        "body_truncated": row.body_truncated,  # only the first 64 KiB of a rejected body kept
        "body_sha256": row.body_sha256,
        "refid": row.refid,
        "attempt": row.attempt,
        "from": row.from_number,
        "to": row.to_number,
        "message": row.message,
        "fields": row.fields,
        "verdict": row.verdict,
        "verdict_detail": row.verdict_detail,
        "flags": row.flags,
        "status": row.status,
        "error": row.error,
    }


def signature_of(row: StoredRequest) -> str | None:
    sig = (row.fields or {}).get("signature")
    return sig if isinstance(sig, str) and sig else None


def detail_dict(row: StoredRequest) -> dict[str, Any]:
    """One attempt for ``messages show``. The signature is masked, in the fields and inside
    the body text: with the plain scheme it *is* the shared secret. ``export`` keeps it."""
    out = _stored_dict(row)
    out.update(body_fields(row.body))
    sig = signature_of(row)
    if sig is not None:
        masked = mask_secret(sig) or ""
        out["fields"] = {**(row.fields or {}), "signature": masked}
        if out["body"] is not None:
            out["body"] = mask_in_text(out["body"], sig, masked)
    out["signature"] = mask_secret(sig)
    return out


def show_document(refid: str, rows: list[StoredRequest]) -> dict[str, Any]:
    return {"type": "message", "refid": refid, "attempt_count": len(rows),
            "attempts": [detail_dict(r) for r in rows]}


_JSON_SIGNATURE_RE = re.compile(r'("signature"\s*:\s*)"(?:[^"\\]|\\.)*"')


def mask_in_text(text: str, secret: str, masked: str) -> str:
    """``text`` (a body) with the signature value replaced by ``masked``: the ``signature``
    field of a JSON object or form body however it is escaped, and then any other copy of
    ``secret`` raw, JSON-escaped or form-encoded."""
    text = _JSON_SIGNATURE_RE.sub(lambda m: m.group(1) + json.dumps(masked, ensure_ascii=False),
                                  text)
    pieces = text.split("&")
    for i, piece in enumerate(pieces):
        key, eq, _ = piece.partition("=")
        if eq and unquote_plus(key) == "signature":
            pieces[i] = f"{key}={masked}"
    text = "&".join(pieces)
    for form in {secret, json.dumps(secret, ensure_ascii=False)[1:-1],
                 json.dumps(secret)[1:-1], quote_plus(secret), quote(secret, safe="")}:
        if form:
            text = text.replace(form, masked)
    return text


def export_dict(row: StoredRequest, *, redact: bool = False) -> dict[str, Any]:
    """One ``messages export`` line: every stored field plus the exact body. With ``redact``
    phone numbers are masked and message text replaced, in the fields and in the body."""
    out = _stored_dict(row)
    if not redact:
        out.update(body_fields(row.body))
        return out
    out["redacted"] = True
    out["from"] = _redact_number_opt(row.from_number)
    out["to"] = _redact_number_opt(row.to_number)
    out["message"] = None if row.message is None else redacted_text(row.message)
    out["fields"] = None if row.fields is None else redact_fields(row.fields)
    out["path"] = _redact_free_text(row.path)
    out["error"] = None if row.error is None else _redact_free_text(row.error)
    out["body"] = redact_body(row.body, row.content_type)
    return out


# -- redaction --------------------------------------------------------------------------------
def redacted_text(text: str) -> str:
    return f"[redacted {len(text)} chars]"


def _redact_number_opt(number: str | None) -> str | None:
    return None if number is None else redact_number(number)


def _redact_free_text(text: str) -> str:
    return _PHONE_RE.sub(lambda m: redact_number(m.group()), text)


def _redact_value(key: str, value: Any) -> Any:
    if isinstance(value, str):
        if key in ("from", "to"):
            return redact_number(value)
        if key == "message":
            return redacted_text(value)
        if key == "signature":
            return mask_secret(value)
        if key == "refid":
            return value
        return _redact_free_text(value)
    if isinstance(value, dict):
        return redact_fields(value)
    if isinstance(value, list):
        return [_redact_value("", v) for v in value]
    return value


def redact_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Known fields masked by meaning; phone-like digits masked in every other string."""
    return {k: _redact_value(k, v) for k, v in fields.items()}


def redact_body(body: bytes, content_type: str | None) -> str:
    """The body re-encoded with its fields redacted. A body that cannot be read as a JSON
    object or form fields is replaced whole: it may hold anything."""
    placeholder = f"[redacted {len(body)} bytes]"
    try:
        kind = body_kind(content_type, body)
        text = body.decode("utf-8")
    except (BodyError, UnicodeDecodeError):
        return placeholder
    if kind == "json":
        try:
            data = json.loads(text)
        except ValueError:
            return placeholder
        if not isinstance(data, dict):
            return placeholder
        return json.dumps(redact_fields(data), ensure_ascii=False, separators=(",", ":"))
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True, errors="strict")
    except (ValueError, UnicodeDecodeError):
        return placeholder
    return urlencode([(k if k in KNOWN_FIELDS else _redact_free_text(k), _redact_value(k, v))
                      for k, v in pairs])
