"""The store's writer process, and the pipe protocol between it and ``ipsms.recorder``.

``listen`` does its SQLite writes in a process of their own, not a thread: a writer thread
needs the GIL after every SQLite call, and handing it back and forth with a busy event loop
cost a quarter of the listener's throughput (issue 12). Here the event loop only sends rows
down a pipe and reads results back.

    python -m ipsms.store_writer STORE SESSION

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
import signal
import sqlite3
import struct
import sys
from pathlib import Path
from typing import Any

from ipsms import store

MAX_BATCH = 1024  # rows per transaction
# Bytes per read of the pipe. Under 128 KiB, so the buffer comes from the heap: a 1 MiB read
# mapped and unmapped memory on every batch (issue 12). A longer batch arrives in parts.
READ_SIZE = 64 * 1024
_LENGTH = struct.Struct("!I")

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
                out.append(marshal.loads(view[start + 4:end]))
                start = end
        if start:
            del buf[:start]
        return out


def failure(path: Path | str, exc: BaseException) -> str:
    """Why a row could not be written: what the listener answers 503 with."""
    if isinstance(exc, sqlite3.Error):
        return f"cannot write to the message store {path}: {exc}"
    return (f"cannot write this request to the message store {path}: "
            f"{type(exc).__name__}: {exc}")


def write_isolating(conn: sqlite3.Connection, rows: list[Any], session: str,
                    path: Path) -> list[Outcome]:
    """Write ``rows`` in one transaction. If that fails, write each row in its own, so one row
    that cannot be written fails alone instead of taking its batch with it."""
    outcome = _write(conn, rows, session, path)
    if not isinstance(outcome, str):
        return outcome
    if len(rows) == 1:
        return [outcome]
    results: list[Outcome] = []
    for row in rows:
        one = _write(conn, [row], session, path)
        results.append(one if isinstance(one, str) else one[0])
    return results


def _write(conn: sqlite3.Connection, rows: list[Any], session: str, path: Path
           ) -> list[Outcome] | str:
    """One transaction; any failure rolls it back and is returned, never raised."""
    try:
        store.begin_batch(conn)
        results: list[Outcome] = list(store.insert_batch(conn, rows, session))
        store.commit(conn)
    except Exception as exc:  # not only sqlite3.Error: a row that cannot be encoded too
        store.rollback(conn)
        return failure(path, exc)
    return results


def serve(path: Path, session: str, rfd: int = 0, wfd: int = 1) -> int:
    """The writer's loop: rows in from ``rfd``, outcomes out to ``wfd``, until ``rfd`` ends."""
    try:
        conn = store.connect(path, create=False)  # the listener created it at start-up
    except Exception as exc:  # StoreMissing, StoreUnusable, StoreTooNew: the listener says why
        _send(wfd, ("fatal", getattr(exc, "message", None) or str(exc)))
        return 1
    frames = Frames()
    try:
        while data := os.read(rfd, READ_SIZE):
            rows = [row for batch in frames.feed(data) for row in batch]
            for i in range(0, len(rows), MAX_BATCH):
                _send(wfd, ("ok", write_isolating(conn, rows[i:i + MAX_BATCH], session, path)))
    except BrokenPipeError:  # the listener is gone: what it sent is written, nobody waits
        return 0
    finally:
        conn.close()
    return 0


def _send(wfd: int, payload: Any) -> None:
    data = memoryview(frame(payload))
    while data:
        data = data[os.write(wfd, data):]


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
