"""Reading back what ``listen`` recorded: list, show, export (optionally redacted) and clear.

Everything here works on the SQLite store (``ipsms.store``) and returns plain data (rows and
JSON-ready dicts); rendering is ``ipsms.ui.messages`` and the CLI's job. Export streams
rows from a cursor so a large store is never loaded into memory.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from ipsms import defaults, store
from ipsms.errors import NotFoundError, UsageError
from ipsms.inbound import KNOWN_FIELDS, BodyError, body_kind
from ipsms.redact import mask_secret, redact_number
from ipsms.request import Request

DEFAULT_LIMIT = defaults.LIST_LIMIT
# A run of 7 to 15 digits, optionally after '+': what a phone number looks like inside free
# text (extra fields, paths). Shorter runs (ports, byte offsets) are left alone.
_PHONE_RE = re.compile(r"\+?\d{7,15}")


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


# The one way every reader opens the store (a missing one is ``store.StoreMissing``, exit 10).
opened = store.opened


class RefidNotFound(NotFoundError):
    """No request was recorded with ``refid``."""

    def __init__(self, refid: str) -> None:
        super().__init__(f"no recorded message with refid {refid!r}",
                         hint="`ipsms messages list` shows the recorded refids")
        self.refid = refid


class AmbiguousRefid(UsageError):
    """More than one recorded refid starts with ``prefix``."""

    def __init__(self, prefix: str, candidates: list[str]) -> None:
        shown = ", ".join(repr(c) for c in candidates[:AMBIGUOUS_SHOWN])
        more = " ..." if len(candidates) > AMBIGUOUS_SHOWN else ""
        super().__init__(f"the refid prefix {prefix!r} is ambiguous: it starts {shown}{more}",
                         hint="give more characters of the refid")
        self.prefix = prefix
        self.candidates = candidates


AMBIGUOUS_SHOWN = 5  # candidates an ambiguous prefix lists


# -- queries ----------------------------------------------------------------------------------
def list_recent(conn: sqlite3.Connection, query: ListQuery) -> list[Request]:
    """Newest first, at most ``query.limit`` rows (accepted and rejected requests alike)."""
    return store.recent(conn, query.limit, since=query.since)


def attempts(conn: sqlite3.Connection, refid: str) -> list[Request]:
    """Every recorded attempt of ``refid``, oldest first; ``RefidNotFound`` when none."""
    rows = store.attempts_for(conn, refid)
    if not rows:
        raise RefidNotFound(refid)
    return rows


def resolve_refid(conn: sqlite3.Connection, refid: str) -> str:
    """``refid`` itself when it was recorded, else the one recorded refid it is a prefix of
    (the live table shows refids' first characters): ``RefidNotFound`` when none,
    ``AmbiguousRefid`` (listing a few) when several."""
    if store.attempts_exist(conn, refid) or not refid:
        return refid
    found = store.refids_starting(conn, refid, AMBIGUOUS_SHOWN + 1)
    if not found:
        raise RefidNotFound(refid)
    if len(found) > 1:
        raise AmbiguousRefid(refid, found)
    return found[0]


def iter_oldest_first(conn: sqlite3.Connection, since: float | None = None
                      ) -> Iterator[Request]:
    """Every request oldest first, streamed from the cursor (never the whole table at once)."""
    return store.iter_all(conn, since)


def count_all(conn: sqlite3.Connection) -> int:
    return store.count(conn)


def clear_all(conn: sqlite3.Connection) -> int:
    """Delete every recorded request (overwriting their pages); returns how many."""
    return store.clear(conn)


# -- the JSON lines: every one is ``Request.to_dict``, the one shape of "type": "request" -----
def summary_dict(row: Request) -> dict[str, Any]:
    """One ``messages list`` line: no body (both body keys null), the signature masked."""
    return row.to_dict(bodies=False)


def detail_dict(row: Request) -> dict[str, Any]:
    """One attempt for ``messages show``: the body included, the signature masked in it and
    everywhere else (with the plain scheme it *is* the shared secret)."""
    return row.to_dict(bodies=True)


def show_document(refid: str, rows: list[Request]) -> dict[str, Any]:
    return {"type": "message", "refid": refid, "attempt_count": len(rows),
            "attempts": [detail_dict(r) for r in rows]}


def export_dict(row: Request, *, redact: bool = False) -> dict[str, Any]:
    """One ``messages export`` line: every stored field and the exact body, signature
    included. With ``redact`` phone numbers are masked and message text replaced, in the
    fields and in the body, and the signature masked."""
    if not redact:
        return row.to_dict(bodies=True, masked=False)
    out = row.to_dict(bodies=False)
    out["redacted"] = True
    out["from"] = _redact_number_opt(row.from_number)
    out["to"] = _redact_number_opt(row.to_number)
    out["message"] = None if row.message is None else redacted_text(row.message)
    out["fields"] = None if row.fields is None else redact_fields(row.fields)
    out["path"] = _redact_free_text(row.path)
    out["error_detail"] = None if row.error_detail is None else _redact_free_text(
        row.error_detail)
    out["body"] = redact_body(row.body, row.content_type)
    if row.forward is not None:  # the app's answer may quote the message: replaced whole
        preview = row.forward.get("body_preview") or ""
        out["forward"] = {**row.forward, "body_preview": redacted_text(preview)}
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
