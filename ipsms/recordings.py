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
from urllib.parse import parse_qsl, quote, quote_plus, urlencode

from ipsms import defaults, store
from ipsms.errors import NotFoundError, UsageError
from ipsms.inbound import KNOWN_FIELDS, BodyError, body_kind
from ipsms.redact import mask_secret, redact_number, redact_numbers_in
from ipsms.request import Request

DEFAULT_LIMIT = defaults.LIST_LIMIT


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
    included. With ``redact``, see ``redacted_dict``."""
    if not redact:
        return row.to_dict(bodies=True, masked=False)
    return redacted_dict(row)


# -- redaction --------------------------------------------------------------------------------
# What ``messages export --redact`` masks (docs/ndjson.md says the same to users):
# - ``from``/``to`` keep the country code and the last two digits; ``message`` becomes
#   ``[redacted N chars]``; the signature is masked.
# - ``fields`` and ``body``: the same by field name (``from``, ``to``, ``message``,
#   ``signature``); every other value and field name has phone-like runs masked and any copy
#   of the numbers or the text replaced. A body that cannot be read as fields is replaced whole.
# - The free text ipsms or the sender wrote: ``path`` (its query string field by field, like a
#   form body), header names and values, ``verdict_detail``, ``flags[].detail``,
#   ``error_detail``, ``forward.url`` and ``forward.detail``: copies of the numbers and text
#   (raw, quoted with repr, JSON- or URL-escaped) replaced, then every phone-like run masked.
#   A flag's "try +17708675309" is a number the message never held, so the run masking is
#   what catches it.
# - ``forward.body_preview`` (the app's answer may quote anything) is replaced whole, and
#   ``body_sha256`` is null: a hash of a short body lets anyone confirm a guessed number.
# - Kept: ``refid`` (so lines can be matched with IntelePeer's), ``remote`` (the address of
#   IntelePeer, the tunnel or a proxy, not of the texter), times, sizes, statuses and codes.
MIN_COPY = 3  # shorter numbers or texts are not searched for in free text ("a", "ok")
# A word of 4 or more characters; a %XX escape is matched first so "%20Door" yields "Door".
_WORD_RE = re.compile(r"%[0-9A-Fa-f]{2}|\w{4,}")


def redacted_text(text: str) -> str:
    return f"[redacted {len(text)} chars]"


def redacted_dict(row: Request) -> dict[str, Any]:
    """The export line of ``row`` with nothing of its numbers or text left (see above)."""
    red = _Redactor(row)
    out = row.to_dict(bodies=False)
    out["redacted"] = True
    out["from"] = None if row.from_number is None else redact_number(row.from_number)
    out["to"] = None if row.to_number is None else redact_number(row.to_number)
    out["message"] = None if row.message is None else redacted_text(row.message)
    out["fields"] = None if row.fields is None else red.fields(row.fields)
    out["path"] = red.target(row.path)
    out["headers"] = [(red.text(k), red.text(v)) for k, v in row.headers]
    out["body_sha256"] = None
    out["verdict_detail"] = red.opt(row.verdict_detail)
    out["flags"] = [{**f, "detail": red.text(f.get("detail") or "")} for f in row.flags or []]
    out["error_detail"] = red.opt(row.error_detail)
    out["body"] = red.body(row.body, row.content_type)
    if row.forward is not None:  # the app's answer may quote the message: replaced whole
        preview = row.forward.get("body_preview") or ""
        out["forward"] = {**row.forward, "body_preview": redacted_text(preview),
                          "url": red.target(str(row.forward.get("url") or "")),
                          "detail": red.opt(row.forward.get("detail"))}
    return out


class _Redactor:
    """Redaction of one row: it knows the row's numbers and text, so a copy of them anywhere
    (an extra field, a header, a flag that quotes the number) is replaced, not only the runs
    that look like numbers."""

    def __init__(self, row: Request) -> None:
        fields = row.fields or {}
        numbers = {v for v in (row.from_number, row.to_number, fields.get("from"),
                               fields.get("to")) if isinstance(v, str)}
        texts = {v for v in (row.message, fields.get("message")) if isinstance(v, str)}
        copies: dict[str, str] = {}
        for values, mask in ((texts, redacted_text), (numbers, redact_number)):
            for value in values:
                if len(value) < MIN_COPY:
                    continue
                shown = mask(value)
                for form, masked in _forms(value, shown):
                    copies.setdefault(form, masked)
        # Longest first, so a number inside the message text is not half-replaced first.
        self._copies = sorted(copies.items(), key=lambda kv: -len(kv[0]))
        # A part of the text ("say=Blue+Door" of "Meet me at the Blue Door") is caught word
        # by word: every word of 4 or more characters of the text is masked in free text.
        self._words = {w for t in texts for w in _WORD_RE.findall(t) if w[0] != "%"}

    def text(self, text: str) -> str:
        for form, masked in self._copies:
            if form in text:
                text = text.replace(form, masked)
        # Phone-like runs before the text's words: a word of the text that is part of a run
        # ("1000" of "1000 00-000") masked first would leave the rest too short to look like a
        # number (found by hypothesis).
        text = redact_numbers_in(text)
        if self._words:
            text = _WORD_RE.sub(self._mask_word, text)
        return text

    def _mask_word(self, match: re.Match[str]) -> str:
        word = match.group()
        return "*" * len(word) if word in self._words else word

    def opt(self, text: Any) -> Any:
        return text if not isinstance(text, str) else self.text(text)

    def target(self, target: str) -> str:
        """A request target or URL: its query string redacted field by field."""
        base, sep, query = target.partition("?")
        if not sep:
            return self.text(target)
        try:
            pairs = parse_qsl(query, keep_blank_values=True, errors="strict")
        except (ValueError, UnicodeDecodeError):
            return self.text(base) + "?" + self.text(query)
        return self.text(base) + "?" + self._form(pairs)

    def value(self, key: str, value: Any) -> Any:
        if isinstance(value, str):
            if key in ("from", "to"):
                return redact_number(value)
            if key == "message":
                return redacted_text(value)
            if key == "signature":
                return mask_secret(value)
            if key == "refid":
                return value
            return self.text(value)
        if isinstance(value, dict):
            return self.fields(value)
        if isinstance(value, list):
            return [self.value("", v) for v in value]
        return value

    def fields(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Known fields masked by meaning; every other name and value as free text."""
        return {k if k in KNOWN_FIELDS else self.text(k): self.value(k, v)
                for k, v in fields.items()}

    def _form(self, pairs: list[tuple[str, str]]) -> str:
        # '*' is left as is: "+1*******09" stays readable in a query string.
        return urlencode([(k if k in KNOWN_FIELDS else self.text(k), self.value(k, v))
                          for k, v in pairs], safe="*")

    def body(self, body: bytes, content_type: str | None) -> str:
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
            except (ValueError, RecursionError):
                return placeholder
            if not isinstance(data, dict):
                return placeholder
            return json.dumps(self.fields(data), ensure_ascii=False, separators=(",", ":"))
        try:
            pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True,
                              errors="strict")
        except (ValueError, UnicodeDecodeError):
            return placeholder
        return self._form(pairs)


def _forms(value: str, masked: str) -> list[tuple[str, str]]:
    """The ways ``value`` can be written inside free text, each with its masked twin: as is,
    quoted by ``repr`` (how flags quote a number), JSON-escaped, and URL-encoded."""
    out = [(value, masked), (repr(value)[1:-1], repr(masked)[1:-1])]
    for ascii_only in (False, True):
        out.append((json.dumps(value, ensure_ascii=ascii_only)[1:-1],
                    json.dumps(masked, ensure_ascii=ascii_only)[1:-1]))
    out += [(quote_plus(value), quote_plus(masked)), (quote(value, safe=""),
                                                       quote(masked, safe=""))]
    return [(form, shown) for form, shown in out if form]


def redact_body(body: bytes, content_type: str | None) -> str:
    """The body alone re-encoded with its fields redacted (a body that cannot be read as
    fields is replaced whole); ``redacted_dict`` also replaces copies of the row's numbers
    and text."""
    row = Request(received_at=0.0, method="POST", path="/", remote=None, headers=[],
                  content_type=content_type, body=body, status=0)
    return _Redactor(row).body(body, content_type)
