"""Recorded messages back into deliveries: ``replay`` posts the body and content type the
listener stored, untouched, through the same engine as ``simulate``."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator

from ipsms.deliver.engine import Delivery
from ipsms.records import attempts
from ipsms.request import Request


def delivery_from_record(rec: Request, url: str) -> Delivery:
    """The stored body and content type exactly as received, to be posted to ``url``."""
    signature = (rec.fields or {}).get("signature")
    return Delivery(
        url,
        rec.body,
        rec.content_type,
        rec.refid,
        signature if isinstance(signature, str) else None,
        source=f"replay of request #{rec.id}",
    )


def recorded_delivery(conn: sqlite3.Connection, refid: str, url: str) -> Delivery:
    """The first request recorded for ``refid``; ``records.RefidNotFound`` if none."""
    return delivery_from_record(attempts(conn, refid)[0], url)


def replay_selection(records: Iterable[Request], since: float | None = None) -> Iterator[Request]:
    """One request per refid (the first one received at or after ``since``), oldest first.
    Requests the listener could not parse (no refid) are not messages and are skipped."""
    seen: set[str] = set()
    for rec in records:
        if rec.refid is None or rec.refid in seen:
            continue
        if since is not None and rec.received_at < since:
            continue
        seen.add(rec.refid)
        yield rec
