"""Following the store (``messages tail -f``): new rows as they are committed, through a
store replaced, cleared or removed and made again."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ipsms import store
from ipsms.records.query import Filter
from ipsms.request import Request

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

    def __init__(
        self,
        path: Path,
        where: Filter | None = None,
        *,
        on_notice: Callable[[str], None] | None = None,
    ) -> None:
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
                self._notice(
                    f"the message store {self.path} was cleared: following its new messages"
                )
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
                self._notice(
                    f"the message store {self.path} was removed: waiting for it to come back"
                )
            return False
        if self._conn is not None and inode != self._inode:
            self.close()
            self._notice(
                f"the message store {self.path} was replaced: following the new one from its start"
            )
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
