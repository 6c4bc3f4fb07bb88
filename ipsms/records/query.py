"""The read side's queries: the filters users type (numbers, statuses, verdicts, moments),
listing, the newest N, export's cursor, a refid's attempts and its prefix, count and clear.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ipsms import defaults, store
from ipsms.errors import NotFoundError, UsageError
from ipsms.numbers import PUNCTUATION
from ipsms.request import Request

DEFAULT_LIMIT = defaults.LIST_LIMIT


Filter = store.Filter  # what every read filters by (built here from what users type)
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
        super().__init__(
            f"no recorded message with refid {refid!r}",
            hint="`ipsms messages list` shows the recorded refids",
        )
        self.refid = refid


class AmbiguousRefid(UsageError):
    """More than one recorded refid starts with ``prefix``."""

    def __init__(self, prefix: str, candidates: list[str]) -> None:
        shown = ", ".join(repr(c) for c in candidates[:AMBIGUOUS_SHOWN])
        more = " ..." if len(candidates) > AMBIGUOUS_SHOWN else ""
        super().__init__(
            f"the refid prefix {prefix!r} is ambiguous: it starts {shown}{more}",
            hint="give more characters of the refid",
        )
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
                raise UsageError(
                    f"the status range {part!r} is empty",
                    hint="write the lower status first: 400-499",
                )
            ranges.append((low[0], high[1]))
        else:
            ranges.append(_status(part, text))
    return tuple(ranges)


def _status(part: str, whole: str) -> tuple[int, int]:
    m = _STATUS_RE.match(part)
    if not m:
        raise UsageError(
            f"cannot read the status {whole!r}",
            hint="use a status (403), a class (4xx), a range (400-404) or a list (401,403,5xx)",
        )
    if m.group(2).lower() == "xx":
        base = int(m.group(1)) * 100
        return base, base + 99
    return int(part), int(part)


def parse_verdicts(text: str) -> tuple[str, ...]:
    """``--verdict``: one of valid, invalid, missing, unchecked, or several with commas."""
    verdicts = tuple(v.strip().lower() for v in text.split(","))
    for v in verdicts:
        if v not in VERDICTS:
            raise UsageError(
                f"unknown verdict {v!r}",
                hint="use " + ", ".join(VERDICTS) + " (several with commas)",
            )
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
        raise UsageError(
            f"cannot read the time {stripped!r}",
            hint="use a duration ago (10m, 2h, 1d) or an ISO time in UTC: "
            "2024-05-01, 2024-05-01T12:00:00Z",
        ) from None
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
    return rows[: query.limit], store.count_matching(conn, query.where, since=query.since)


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


def count_all(conn: sqlite3.Connection) -> int:
    return store.count(conn)


def clear_all(conn: sqlite3.Connection) -> int:
    """Delete every recorded request (overwriting their pages); returns how many."""
    return store.clear(conn)
