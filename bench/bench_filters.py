"""What `messages list` filters cost on a store of ~100k rows, against an unfiltered `list`.

    .venv/bin/python bench/bench_filters.py [--rows 100000] [--repeat 7]

Builds a temporary store with the real insert statement (store.insert_batch, 1,000 rows a
transaction, then the text index as the writer builds it when idle; 500-byte bodies, 1 in
1000 rows rejected 4xx, 1 in 500 flagged, senders from 5,000 numbers), then times
`records.list_recent` (limit 50, the CLI default) with each filter: the median of --repeat
runs, in ms, and its ratio to the unfiltered query. A rare match that is not indexed walks
the whole table: that is the worst case shown.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from ipsms import records, store
from ipsms.request import Request


def build(path: Path, rows: int) -> None:
    conn = store.connect(path)
    base = time.time() - rows
    for start in range(0, rows, 1000):
        batch = []
        for i in range(start, min(start + 1000, rows)):
            sender = f"+1303{i % 5000:07d}"
            text = f"message {i} " + ("x" * 60)
            fields = {"refid": f"{i:032X}", "from": sender, "to": "+12161112222", "message": text}
            body = json.dumps(fields).encode().ljust(500)
            rejected = i % 1000 == 7
            batch.append(
                Request(
                    received_at=base + i,
                    method="POST",
                    path="/",
                    remote="127.0.0.1",
                    headers=[("Content-Type", "application/json")],
                    content_type="application/json",
                    body=body,
                    status=403 if rejected else 200,
                    refid=fields["refid"],
                    fields=fields,
                    fields_json=json.dumps(fields),
                    from_number=sender,
                    to_number="+12161112222",
                    message=text,
                    verdict="invalid" if rejected else "valid",
                    flags=[{"code": "extra_fields", "detail": "x"}] if i % 500 == 3 else None,
                )
            )
        store.begin_batch(conn)
        store.insert_batch(conn, [store.wire_row(r) for r in batch], "bench")
        store.commit(conn)
    while store.index_text(conn, 10_000):  # as the listener's writer does when idle
        pass
    conn.close()


def timed(conn: object, where: store.Filter, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        records.list_recent(conn, records.ListQuery(Path("."), where=where))  # type: ignore[arg-type]
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.sqlite3"
        t0 = time.perf_counter()
        build(path, args.rows)
        print(
            f"{args.rows} rows built in {time.perf_counter() - t0:.1f} s, "
            f"{path.stat().st_size / 1e6:.0f} MB"
        )
        now = time.time()
        cases = [
            ("unfiltered", store.Filter()),
            (
                "--from +13030001234 (exact, index)",
                records.Filter(from_number=records.parse_number("+13030001234")),
            ),
            (
                "--from 1234 (suffix, scan)",
                records.Filter(from_number=records.parse_number("1234")),
            ),
            (
                "--from 99999 (suffix, no match)",
                records.Filter(from_number=records.parse_number("99999")),
            ),
            (
                "--refid 000...030 (prefix of 256 rows, index)",
                records.Filter(refid_prefix="0" * 29 + "30"),
            ),
            ("--refid 0000 (prefix of 65,536 rows, index)", records.Filter(refid_prefix="0" * 28)),
            ("--text 'message 12' (common)", records.Filter(text="message 12")),
            ("--text nowhere (no match)", records.Filter(text="nowhere")),
            ("--text café (no match, Python casefold)", records.Filter(text="café")),
            ("--status 4xx (1 in 1000)", records.Filter(statuses=records.parse_statuses("4xx"))),
            ("--verdict invalid (1 in 1000)", records.Filter(verdicts=("invalid",))),
            ("--flag extra_fields (1 in 500)", records.Filter(flag="extra_fields")),
            ("--flag refid_reused (no match)", records.Filter(flag="refid_reused")),
            ("--since 1h (range)", records.Filter(since=now - 3600)),
        ]
        with store.opened(path) as conn:
            base = timed(conn, store.Filter(), args.repeat)
            for name, where in cases:
                ms = timed(conn, where, args.repeat)
                print(f"{name:55} {ms:8.2f} ms  {ms / base:7.1f}x")


if __name__ == "__main__":
    main()
