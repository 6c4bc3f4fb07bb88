"""The store's writer process, and the pipe protocol between it and ``ipsms.store.recorder``.

``listen`` does its SQLite writes in a process of their own, not a thread: a writer thread
needs the GIL after every SQLite call, and handing it back and forth with a busy event loop
takes the event loop's time from requests (bench/bench_listen.py: ipsms against the same-work
reference, whose writer is a thread). Here the event loop only sends rows down a pipe and reads
results back.

    python -m ipsms.store.writer STORE SESSION

Both ways, a frame is a 4-byte big-endian length and a ``marshal`` blob (both ends are this
module, from the same ipsms, run by the same Python). The listener sends batches of rows
(``store.wire_row``). The writer reads everything that has arrived, writes it in one
transaction (up to ``MAX_BATCH`` rows), commits (fsync with ``synchronous=FULL``) and answers
``("ok", outcomes)``: per row, in order, ``(id, attempt, flags)`` or the text of the error that
kept that row out. A store it cannot open is ``("fatal", reason)``, then exit. It stops when
the listener closes the pipe, after writing everything sent.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import select
import signal
import sqlite3
import struct
import sys
from pathlib import Path
from typing import Any

from ipsms import store

MAX_BATCH = 1024  # rows per transaction
# Bytes per read of the pipe. Under 128 KiB, so the buffer comes from the heap: a 1 MiB read
# mapped and unmapped memory on every batch. A longer batch arrives in parts.
READ_SIZE = 64 * 1024
_LENGTH = struct.Struct("!I")
CHECK_EVERY = 1.0  # seconds between checks of the store's files while no batch arrives
INDEX_AFTER = 0.05  # seconds without a batch before the writer adds messages to the text index
INDEX_STEP = 500  # messages indexed per step

# Per row: (id, attempt, flags) once committed, or why it was not written.
Outcome = tuple[int, "int | None", "list[dict[str, str]] | None"] | str


def frame(payload: Any) -> bytes:
    """``payload`` as one frame. Raises ``ValueError`` for a value ``marshal`` cannot write
    (anything but plain str, bytes, numbers, None, tuples, lists and dicts of them)."""
    data = marshal.dumps(payload)
    return _LENGTH.pack(len(data)) + data


class Frames:
    """Reassembles frames from the chunks a pipe gives."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        """The payloads of every frame ``data`` completes, in order."""
        buf = self._buffer
        buf += data
        out = []
        start = 0
        with memoryview(buf) as view:
            while len(buf) - start >= 4:
                (size,) = _LENGTH.unpack_from(buf, start)
                end = start + 4 + size
                if end > len(buf):
                    break
                out.append(marshal.loads(view[start + 4 : end]))
                start = end
        if start:
            del buf[:start]
        return out


def failure(path: Path | str, exc: BaseException) -> str:
    """Why a row could not be written: what the listener answers 503 with."""
    if isinstance(exc, sqlite3.Error):
        return f"cannot write to the message store {path}: {exc}"
    return f"cannot write this request to the message store {path}: {type(exc).__name__}: {exc}"


def write_isolating(
    conn: sqlite3.Connection, rows: list[Any], session: str, path: Path, floor: int | None = None
) -> list[Outcome]:
    """Write ``rows`` in one transaction. If that fails, write each row in its own, so one row
    that cannot be written fails alone instead of taking its batch with it. With ``floor``,
    a row an earlier writer already committed (``store.committed``) is answered, not written
    again."""
    outcome = _write(conn, rows, session, path, floor)
    if not isinstance(outcome, str):
        return outcome
    if len(rows) == 1:
        return [outcome]
    results: list[Outcome] = []
    for row in rows:
        one = _write(conn, [row], session, path, floor)
        results.append(one if isinstance(one, str) else one[0])
    return results


def _write(
    conn: sqlite3.Connection, rows: list[Any], session: str, path: Path, floor: int | None = None
) -> list[Outcome] | str:
    """One transaction; any failure rolls it back and is returned, never raised."""
    try:
        store.begin_batch(conn)
        if floor is None:
            results: list[Outcome] = list(store.insert_batch(conn, rows, session))
        else:
            results = _upsert(conn, rows, session, floor)
        store.commit(conn)
    except Exception as exc:  # not only sqlite3.Error: a row that cannot be encoded too
        store.rollback(conn)
        return failure(path, exc)
    return results


def _upsert(conn: sqlite3.Connection, rows: list[Any], session: str, floor: int) -> list[Outcome]:
    """Inside a transaction: the rows not yet in the store are inserted; each row's outcome,
    in order, whether it was found or written."""
    found = store.committed(conn, session, floor, [row[_SEQ] for row in rows])
    missing = [row for row in rows if row[_SEQ] not in found]
    written = iter(store.insert_batch(conn, missing, session) if missing else [])
    return [found[row[_SEQ]] if row[_SEQ] in found else next(written) for row in rows]


_SEQ = 20  # the row's position of its seq (``store.wire_row``)
_SIDE_FILES = ("", "-wal", "-shm")


class Writer:
    """The store as the writer process holds it: one connection, and the identity (device,
    inode) of the store's files when it was opened. After every commit the files at the path
    are compared with it: a store removed, replaced or stripped of its ``-wal`` under a
    running listener is noticed before the listener is told the rows are written, and the
    rows are written again where a reader will find them."""

    def __init__(self, path: Path, session: str, notices: list[str]) -> None:
        self.path = path
        self.session = session
        self.notices = notices  # what the listener is to say on stderr
        self.conn: sqlite3.Connection | None = store.connect(path, create=False)
        self.files = self._files()

    def _files(self) -> tuple[tuple[int, int] | None, ...]:
        return tuple(store.file_identity(f"{self.path}{suffix}") for suffix in _SIDE_FILES)

    def write(self, rows: list[Any], floor: int | None = None) -> list[Outcome]:
        if self.conn is None and not self._reopen():
            return [self.unusable] * len(rows)
        assert self.conn is not None
        outcomes = write_isolating(self.conn, rows, self.session, self.path, floor)
        if self._files() != self.files:
            return self._moved(rows, outcomes)
        return outcomes

    def mark(self, floor: int, seqs: list[int], status: int, error: str) -> None:
        if self.conn is None and not self._reopen():
            return
        assert self.conn is not None
        try:
            store.begin_batch(self.conn)
            store.mark_answered(self.conn, self.session, floor, seqs, status, error)
            store.commit(self.conn)
        except sqlite3.Error:
            store.rollback(self.conn)

    def index_text(self) -> int:
        """One step of the text index's catch-up; 0 when it is whole (or cannot be made)."""
        if self.conn is None:
            return 0
        try:
            return store.index_text(self.conn, INDEX_STEP)
        except sqlite3.Error:  # busy or broken: the next idle moment tries again
            return 0

    def check(self) -> None:
        """Between batches: put right a store whose files are no longer the ones open."""
        if self.conn is None:
            self._reopen()
        elif self._files() != self.files:
            self._moved([], [])

    def _moved(self, rows: list[Any], outcomes: list[Outcome]) -> list[Outcome]:
        """The files at the path are not the ones this connection writes: the rows just
        committed went where no reader looks. Put them where one does."""
        assert self.conn is not None
        main_kept = store.file_identity(self.path) == self.files[0]
        if main_kept:
            # Only the -wal or -shm went: the commits live on in the WAL this connection still
            # has open. A checkpoint copies them into the store file, still at the path.
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.notices.append(
                f"the message store's -wal or -shm file next to {self.path} was removed while "
                "listening; its messages were written back into the store"
            )
        else:
            # Emptied first, so that a WAL left behind cannot be replayed onto another file.
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            gone = store.file_identity(self.path) is None
            self.notices.append(
                f"the message store {self.path} was removed while listening; recording to a "
                "new store at that path (what the old one held is gone)"
                if gone
                else f"the message store {self.path} was replaced while listening; recording into "
                "the file now at that path"
            )
        self._close()
        if not self._reopen():
            return [self.unusable] * len(rows)
        assert self.conn is not None
        written = [i for i, outcome in enumerate(outcomes) if not isinstance(outcome, str)]
        again = write_isolating(
            self.conn, [rows[i] for i in written], self.session, self.path, floor=0
        )
        for i, outcome in zip(written, again, strict=True):
            outcomes[i] = outcome
        return outcomes

    unusable = "the message store is not usable"

    def _reopen(self) -> bool:
        """Open the store at the path again (creating it if it was removed). A file there that
        is not an ipsms store is left alone: every row is refused, with the reason."""
        try:
            if not self.path.exists():
                from ipsms.home import make_private_dirs  # only when the store was removed

                old = os.umask(0o077)
                try:
                    make_private_dirs(self.path.parent)
                    os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
                finally:
                    os.umask(old)
            elif not store.is_store(self.path):
                raise store.StoreUnusable(
                    self.path,
                    "the file now at that path is not an "
                    "ipsms message store; nothing is written to it",
                )
            self.conn = store.connect(self.path, create=False)
        except (
            OSError,
            sqlite3.Error,
            store.StoreUnusable,
            store.StoreTooNew,
            store.StoreMissing,
        ) as exc:
            reason = getattr(exc, "message", None) or str(exc)
            if self.unusable != reason:
                self.notices.append(f"{reason}; messages are answered 503 until it is fixed")
            self.unusable = reason
            return False
        self.unusable = type(self).unusable
        self.files = self._files()
        return True

    def _close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self.conn.close()
            self.conn = None

    def close(self) -> None:
        self._close()


def serve(path: Path, session: str, rfd: int = 0, wfd: int = 1) -> int:
    """The writer's loop: frames in from ``rfd``, one answer each out to ``wfd``, until
    ``rfd`` ends. A frame is a list of new rows; ``("again", floor, rows)``: rows an earlier
    writer may have committed; ``("answered", floor, seqs, status, error)``: rows the listener
    answered ``status`` without waiting for them any longer."""
    notices: list[str] = []
    try:
        writer = Writer(path, session, notices)  # the listener created it at start-up
    except Exception as exc:  # StoreMissing, StoreUnusable, StoreTooNew: the listener says why
        _send(wfd, ("fatal", getattr(exc, "message", None) or str(exc)))
        return 1
    frames = Frames()
    try:
        while True:
            # Between batches too, once a second, a store whose files were removed or replaced
            # is put right: readers must not wait for the next message to read it again.
            if not select.select([rfd], [], [], INDEX_AFTER)[0]:
                # Idle: the text index catches up, a bounded step at a time, so a batch that
                # arrives meanwhile waits for one step at most.
                if writer.index_text():
                    continue
                if not select.select([rfd], [], [], CHECK_EVERY)[0]:
                    writer.check()
                    while notices:
                        _send(wfd, ("notice", notices.pop(0)))
                    continue
            data = os.read(rfd, READ_SIZE)
            if not data:
                break
            for item in frames.feed(data):
                if isinstance(item, list):
                    answer: Any = ("ok", _batches(writer, item, None))
                elif item[0] == "again":
                    answer = ("ok", _batches(writer, item[2], item[1]))
                else:
                    _, floor, seqs, status, error = item
                    writer.mark(floor, seqs, status, error)
                    answer = ("answered", len(seqs))
                while notices:
                    _send(wfd, ("notice", notices.pop(0)))
                _send(wfd, answer)
    except BrokenPipeError:  # the listener is gone: what it sent is written, nobody waits
        return 0
    finally:
        writer.close()
    return 0


def _batches(writer: Writer, rows: list[Any], floor: int | None) -> list[Outcome]:
    out: list[Outcome] = []
    for i in range(0, len(rows), MAX_BATCH):
        out += writer.write(rows[i : i + MAX_BATCH], floor)
    return out


def _send(wfd: int, payload: Any) -> None:
    data = memoryview(frame(payload))
    while data:
        data = data[os.write(wfd, data) :]


def main(argv: list[str] | None = None) -> int:
    # Ctrl-C is the listener's to handle: it closes the pipe once it has stopped taking
    # requests, and this process then writes what it was sent and exits.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    path, session = argv if argv is not None else sys.argv[1:]
    try:
        return serve(Path(path), session)
    except Exception as exc:  # a bug: tell the listener rather than vanish
        with contextlib.suppress(OSError):
            _send(1, ("fatal", f"the store writer failed: {type(exc).__name__}: {exc}"))
        return 1


if __name__ == "__main__":
    sys.exit(main())
