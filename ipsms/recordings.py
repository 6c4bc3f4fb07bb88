"""Reading back what ``listen`` recorded: list, show, export (optionally redacted), follow
(``tail -f``) and clear, and the filters all of them take.

Everything here works on the SQLite store (``ipsms.store``) and returns plain data (rows and
JSON-ready dicts); rendering is ``ipsms.ui.messages`` and the CLI's job. Export streams
rows from a cursor so a large store is never loaded into memory.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlencode

from ipsms import defaults, store
from ipsms.errors import NotFoundError, UsageError
from ipsms.inbound import KNOWN_FIELDS, BodyError, body_kind
from ipsms.numbers import PUNCTUATION
from ipsms.redact import mask_secret, redact_number, redact_numbers_in
from ipsms.request import Request

DEFAULT_LIMIT = defaults.LIST_LIMIT


Filter = store.Filter
NumberMatch = store.NumberMatch
VERDICTS = ("valid", "invalid", "missing", "unchecked")


@dataclass(frozen=True)
class ListQuery:
    db: Path
    limit: int = DEFAULT_LIMIT
    since: float | None = None  # unix time; only requests received at or after it
    where: Filter = field(default_factory=Filter)


@dataclass(frozen=True)
class ExportOptions:
    db: Path
    since: float | None = None
    redact: bool = False
    where: Filter = field(default_factory=Filter)
    limit: int | None = None  # only the newest N (still written oldest first)


# The one way every reader opens the store (a missing one is ``store.StoreMissing``, exit 10).
opened = store.opened
StoreMissing = store.StoreMissing


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


# -- what users type, read into a filter -------------------------------------------------------
def parse_number(text: str) -> NumberMatch:
    """``--from`` / ``--to``. Spaces, dots, dashes and brackets are dropped. ``+`` and digits:
    that exact E.164 number. Digits alone: every number ending in them (``3038675309`` and
    ``5309`` find ``+13038675309``), and a short code stored as typed. Anything else (an
    alphanumeric sender id, a short code with its dash): compared exactly as typed."""
    stripped = text.strip()
    if not stripped:
        raise UsageError("the number to match is empty")
    compact = PUNCTUATION.sub("", stripped)
    if compact.startswith("+") and compact[1:].isdigit() and compact[1:].isascii():
        return NumberMatch(compact)
    if compact.isdigit() and compact.isascii():
        return NumberMatch(compact, suffix=True, typed=stripped)
    return NumberMatch(stripped)


_STATUS_RE = re.compile(r"^([1-5])(\d\d|xx)$", re.IGNORECASE | re.ASCII)


def parse_statuses(text: str) -> tuple[tuple[int, int], ...]:
    """``--status``: ``200``, ``4xx`` (400-499), ``400-404``, or several: ``401,403,5xx``."""
    ranges: list[tuple[int, int]] = []
    for part in text.split(","):
        part = part.strip()
        low_text, dash, high_text = part.partition("-")
        if dash:
            low, high = _status(low_text.strip(), text), _status(high_text.strip(), text)
            if low[0] > high[1]:
                raise UsageError(f"the status range {part!r} is empty",
                                 hint="write the lower status first: 400-499")
            ranges.append((low[0], high[1]))
        else:
            ranges.append(_status(part, text))
    return tuple(ranges)


def _status(part: str, whole: str) -> tuple[int, int]:
    m = _STATUS_RE.match(part)
    if not m:
        raise UsageError(f"cannot read the status {whole!r}",
                         hint="use a status (403), a class (4xx), a range (400-404) or a list "
                         "(401,403,5xx)")
    if m.group(2).lower() == "xx":
        base = int(m.group(1)) * 100
        return base, base + 99
    return int(part), int(part)


def parse_verdicts(text: str) -> tuple[str, ...]:
    """``--verdict``: one of valid, invalid, missing, unchecked, or several with commas."""
    verdicts = tuple(v.strip().lower() for v in text.split(","))
    for v in verdicts:
        if v not in VERDICTS:
            raise UsageError(f"unknown verdict {v!r}", hint="use " + ", ".join(VERDICTS)
                             + " (several with commas)")
    return verdicts


def parse_moment(text: str, now: float) -> float:
    """``--since`` / ``--until``: a duration ago (``10m``, ``2h``, ``1d``) or a UTC time
    (``2024-05-01``, ``2024-05-01T12:00``, ``2024-05-01 12:00:00Z``, or with an offset:
    ``+02:00``): the times ipsms prints are UTC, so one without an offset is UTC too."""
    from ipsms.text import parse_duration

    stripped = text.strip()
    if not re.match(r"^\d{4}-\d\d", stripped):
        return now - parse_duration(stripped)
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        raise UsageError(f"cannot read the time {stripped!r}",
                         hint="use a duration ago (10m, 2h, 1d) or an ISO time in UTC: "
                         "2024-05-01, 2024-05-01T12:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


# -- queries ----------------------------------------------------------------------------------
def list_recent(conn: sqlite3.Connection, query: ListQuery) -> list[Request]:
    """Newest first, at most ``query.limit`` rows, every one with a limit of 0 (accepted and
    rejected requests alike)."""
    return store.recent(conn, query.limit or -1, since=query.since, where=query.where)


def list_newest(conn: sqlite3.Connection, query: ListQuery) -> tuple[list[Request], int]:
    """``list_recent``'s rows and how many requests match in all: more than the rows when
    the limit left some out (counted only then: one row more than the limit says so)."""
    if not query.limit:
        rows = list_recent(conn, query)
        return rows, len(rows)
    rows = store.recent(conn, query.limit + 1, since=query.since, where=query.where)
    if len(rows) <= query.limit:
        return rows, len(rows)
    return rows[:query.limit], store.count_matching(conn, query.where, since=query.since)


def export_rows(conn: sqlite3.Connection, opts: ExportOptions) -> Iterator[Request]:
    """What ``messages export`` writes: oldest first, streamed from the cursor."""
    return store.iter_all(conn, opts.since, where=opts.where, limit=opts.limit)


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


# -- following the store (``messages tail -f``) --------------------------------------------------
FOLLOW_BATCH = 500  # rows per poll query: a burst is written in several bounded reads


class Follower:
    """The requests recorded after a point, read by polling the store another process
    (``ipsms listen``) writes: ``latest`` once, then ``poll`` a few times a second.

    A poll costs a stat() of the file and ``PRAGMA data_version`` when nothing was committed,
    and otherwise two primary-key probes and one bounded range ``id > mark ORDER BY id LIMIT
    500``. The mark is the last row id seen *and its time*: ``messages clear`` deletes every
    row and SQLite then numbers new rows from 1 again, which the time of the mark's row (gone,
    or another time) reveals even when the new ids have passed the old ones. A store that is
    deleted is waited for; one replaced by another file is read from its start."""

    def __init__(self, path: Path, where: Filter | None = None, *,
                 on_notice: Callable[[str], None] | None = None) -> None:
        self.path = path
        self.where = where
        self._notice = on_notice or (lambda _text: None)
        self._conn: sqlite3.Connection | None = None
        self._inode: int | None = None
        self._version: int | None = None
        self._mark: tuple[int, float | None] = (0, None)

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    def open(self) -> bool:
        """Open the store if it exists (False when it does not, yet)."""
        if self._conn is not None:
            return True
        try:
            inode = os.stat(self.path).st_ino
        except FileNotFoundError:
            return False
        self._conn = store.connect(self.path, create=False)
        self._inode, self._version, self._mark = inode, None, (0, None)
        return True

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def latest(self, lines: int) -> list[Request]:
        """The newest ``lines`` matching requests, oldest first; following starts after the
        newest row in the store (matching or not)."""
        conn = self._open_conn()
        with _snapshot(conn):
            rows = store.recent(conn, lines, where=self.where) if lines > 0 else []
            self._mark = store.last_row(conn)
        self._version = store.data_version(conn)
        rows.reverse()
        return rows

    def poll(self) -> tuple[list[Request], bool]:
        """The matching requests recorded since the last call, oldest first, and whether more
        are waiting (a burst past one batch: poll again at once). Reopens, restarts or waits
        as the store was replaced, cleared or removed (saying so through ``on_notice``)."""
        if not self._check_file():
            return [], False
        conn = self._open_conn()
        version = store.data_version(conn)
        if version == self._version:
            return [], False  # nothing committed since the last poll
        mark_id, mark_time = self._mark
        with _snapshot(conn):
            if mark_id and store.received_at_of(conn, mark_id) != mark_time:
                self._notice(f"the message store {self.path} was cleared: following its new "
                             "messages")
                mark_id = 0
            top = store.last_row(conn)
            rows = store.after(conn, mark_id, top[0], FOLLOW_BATCH, self.where)
        more = len(rows) == FOLLOW_BATCH
        if more:
            self._mark = (rows[-1].id or 0, rows[-1].received_at)
        else:
            self._mark, self._version = top, version
        return rows, more

    def _open_conn(self) -> sqlite3.Connection:
        if self._conn is None and not self.open():
            raise store.StoreMissing(self.path)
        assert self._conn is not None
        return self._conn

    def _check_file(self) -> bool:
        """Whether the store is there to read: a removed one is closed (and waited for), a
        replaced one reopened from its start."""
        try:
            inode = os.stat(self.path).st_ino
        except FileNotFoundError:
            if self._conn is not None:
                self.close()
                self._notice(f"the message store {self.path} was removed: waiting for it to "
                             "come back")
            return False
        if self._conn is not None and inode != self._inode:
            self.close()
            self._notice(f"the message store {self.path} was replaced: following the new one "
                         "from its start")
        if self._conn is None:
            self.open()
        return True


@contextmanager
def _snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """One read transaction: every query inside sees the store as of its first read (WAL),
    so a clear between two of them cannot slip past."""
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


def wait_interval(started: float, interval: float) -> float:
    """Seconds to sleep so polls start every ``interval`` seconds."""
    return max(interval - (time.monotonic() - started), 0.0)


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
#   of the numbers or the text replaced; a JSON number that reads as a phone number
#   (``"callback": 13035550100``) becomes its masked text (``"1********00"``), other numbers
#   keep their value and type. A body that cannot be read as fields is replaced whole.
# - The free text ipsms or the sender wrote: ``method``, ``path`` (its query string field by
#   field, like a form body), header names and values, ``content_type``, ``verdict_detail``,
#   ``flags[].detail``, ``error_detail``, ``forward.url`` and ``forward.detail``: copies of
#   the numbers and text (raw, quoted with repr, JSON- or URL-escaped) replaced, then every
#   phone-like run masked (``redact.redact_numbers_in``: any dash, space, dot, slash...,
#   invisible characters skipped). A flag's "try +17708675309" is a number the message never
#   held, so the run masking is what catches it. A path or URL whose %XX escapes spell a
#   number (``/sms/%2B1%20303%20555%200100``, escaped twice too) is redacted as what they
#   spell, and escaped again.
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
    out["method"] = redact_numbers_in(row.method)
    out["path"] = red.target(row.path)
    out["headers"] = [(red.text(k), red.text(v)) for k, v in row.headers]
    out["content_type"] = red.opt(row.content_type)
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
        """A request target or URL: its query string redacted field by field, and what its
        %XX escapes spell redacted too (``/sms/%2B1%20303%20555%200100``)."""
        base, sep, query = target.partition("?")
        if not sep:
            return self._url_part(target)
        try:
            pairs = parse_qsl(query, keep_blank_values=True, errors="surrogatepass")
        except (ValueError, UnicodeDecodeError):
            return self._url_part(base) + "?" + self._url_part(query)
        return self._url_part(base) + "?" + self._form(pairs)

    def _url_part(self, raw: str) -> str:
        """``raw`` redacted as text, or, when what its escapes spell (escapes of escapes
        included) holds something to redact, that unescaped form redacted and escaped again
        (once): masking the escaped form could leave digits between the escapes."""
        if "%" not in raw:
            return self.text(raw)
        unescaped = _unescaped(raw)
        masked = self.text(unescaped)
        return self.text(raw) if masked == unescaped else _escaped(masked)

    def value(self, key: str, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            # A JSON number is its digits: "callback": 13035550100 is a phone number.
            written = json.dumps(value)
            masked = self.text(written)
            return value if masked == written else masked
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
        # '*' is left as is: "+1*******09" stays readable in a query string. A lone
        # surrogate (real SMS data) is written as the bytes the listener read it from.
        return urlencode([(k if k in KNOWN_FIELDS else self.text(k), self.value(k, v))
                          for k, v in pairs], safe="*", errors="surrogatepass")

    def body(self, body: bytes, content_type: str | None) -> str:
        """The body re-encoded with its fields redacted. A body that cannot be read as a JSON
        object or form fields is replaced whole: it may hold anything."""
        placeholder = f"[redacted {len(body)} bytes]"
        try:
            kind = body_kind(content_type, body)
            # As the listener reads it: a lone surrogate's three bytes are text.
            text = body.decode("utf-8", "surrogatepass")
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
                              errors="surrogatepass")
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
    # URL-encoded as the listener decodes it: a lone surrogate as its three UTF-8 bytes.
    out += [(quote_plus(value, errors="surrogatepass"), quote_plus(masked, errors="surrogatepass")),
            (quote(value, safe="", errors="surrogatepass"),
             quote(masked, safe="", errors="surrogatepass"))]
    return [(form, shown) for form, shown in out if form]


MAX_ESCAPE_LAYERS = 4  # %252B is "+" escaped twice; past four layers nothing is unescaped


def _unescaped(text: str) -> str:
    """``text`` with its %XX escapes decoded, and those they spell, up to four layers (bytes
    that are no UTF-8 kept as surrogate escapes, so ``_escaped`` gives them back)."""
    for _ in range(MAX_ESCAPE_LAYERS):
        decoded = unquote(text, errors="surrogateescape")
        if decoded == text:
            break
        text = decoded
    return text


def _escaped(text: str) -> str:
    """``text`` percent-encoded again, once, leaving what a URL path may hold as it is."""
    safe = "/:@!$&'()*+,;=~"
    try:
        return quote(text, safe=safe, errors="surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that no byte decoded to
        return quote(text, safe=safe, errors="surrogatepass")


def redact_body(body: bytes, content_type: str | None) -> str:
    """The body alone re-encoded with its fields redacted (a body that cannot be read as
    fields is replaced whole); ``redacted_dict`` also replaces copies of the row's numbers
    and text."""
    row = Request(received_at=0.0, method="POST", path="/", remote=None, headers=[],
                  content_type=content_type, body=body, status=0)
    return _Redactor(row).body(body, content_type)
