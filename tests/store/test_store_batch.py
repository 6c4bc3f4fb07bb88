"""The recorder's batch insert: ids and attempts come back right without reading every row."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from ipsms import store
from ipsms.request import Request


def rec(refid: str | None, message: str = "hi") -> Request:
    return Request(
        received_at=time.time(),
        method="POST",
        path="/sms",
        remote="127.0.0.1",
        headers=[("Host", "x")],
        content_type="application/json",
        body=b"{}",
        status=200 if refid else 400,
        refid=refid,
        from_number="+13035550100",
        message=message,
    )


def write(conn, records: list[Request], session: str = "s1"):  # type: ignore[no-untyped-def]
    store.begin_batch(conn)
    rows = store.insert_batch(conn, [store.wire_row(r) for r in records], session)
    store.commit(conn)
    return rows


def test_ids_attempts_and_flags_of_mixed_batches_across_restarts(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite3"
    conn = store.connect(db)
    first = write(conn, [rec("A"), rec(None), rec("B"), rec("A"), rec("A", "other text")])
    assert [(i, a) for i, a, _ in first] == [(1, 1), (2, None), (3, 1), (4, 2), (5, 3)]
    assert first[0][2] is None and first[3][2] is None  # a plain retry adds no flag
    assert [f["code"] for f in first[4][2] or []] == ["refid_reused"]
    conn.close()

    conn = store.connect(db)  # a restart: a new session counts on from the store
    second = write(conn, [rec("C"), rec("B"), rec(None)], session="s2")
    assert [(i, a) for i, a, _ in second] == [(6, 1), (7, 2), (8, None)]
    assert [f["code"] for f in second[1][2] or []] == ["earlier_session"]
    stored = {r.id: (r.attempt, [f["code"] for f in r.flags or []]) for r in store.iter_all(conn)}
    assert stored[5] == (3, ["refid_reused"]) and stored[7] == (2, ["earlier_session"])
    assert stored[6] == (1, []) and stored[8] == (None, [])
    conn.close()


def test_ids_follow_a_store_with_deleted_rows(tmp_path: Path) -> None:
    conn = store.connect(tmp_path / "s.sqlite3")
    write(conn, [rec("A"), rec("B"), rec("C")])
    conn.execute("DELETE FROM requests WHERE id = 3")
    rows = write(conn, [rec("D"), rec("A")])
    assert [(i, a) for i, a, _ in rows] == [(3, 1), (4, 2)]
    assert [(r.id, r.refid) for r in store.iter_all(conn)] == [
        (1, "A"),
        (2, "B"),
        (3, "D"),
        (4, "A"),
    ]
    conn.close()


def test_a_batch_whose_ids_are_not_consecutive_is_refused_not_misnumbered(tmp_path: Path) -> None:
    """Past the largest row id SQLite picks ids at random: the batch's ids could not be
    worked out by arithmetic, so the write fails (and the listener answers 503) rather than
    report wrong ids."""
    conn = store.connect(tmp_path / "s.sqlite3")
    write(conn, [rec("A")])
    conn.execute("UPDATE requests SET id = 9223372036854775807 WHERE id = 1")
    for _ in range(10):  # the ids are random: whatever order they come in
        with pytest.raises(sqlite3.DatabaseError, match="rows are in that range"):
            write(conn, [rec("B"), rec("C"), rec("D")])
        store.rollback(conn)
    assert [r.refid for r in store.iter_all(conn)] == ["A"]
    conn.close()


def test_an_attempt_costs_the_same_however_many_came_before(tmp_path: Path) -> None:
    """A refid posted thousands of times (a stuck sender, or someone who found the URL) must
    not slow every later post of it: the attempt number is one probe, not a count. Measured
    in SQLite's own VM steps, which do not depend on how busy the machine is."""
    conn = store.connect(tmp_path / "s.sqlite3")
    steps = 0

    def step() -> int:
        nonlocal steps
        steps += 1
        return 0

    def cost_of_next() -> tuple[int, int | None]:
        nonlocal steps
        steps = 0
        conn.set_progress_handler(step, 1)
        try:
            ((_, attempt, _),) = write(conn, [rec("SAME")])
        finally:
            conn.set_progress_handler(None, 1)
        return steps, attempt

    write(conn, [rec("SAME") for _ in range(9)])
    early, tenth = cost_of_next()  # past IntelePeer's 5 attempts: flagged, as the later one
    write(conn, [rec("SAME") for _ in range(3000)])
    late, last = cost_of_next()
    assert (tenth, last) == (10, 3011)
    assert late < early * 1.2, (early, late)  # counting the attempts: about 40 times as many steps
    conn.close()
