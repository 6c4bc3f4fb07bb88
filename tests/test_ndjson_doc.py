"""docs/ndjson.md documents every NDJSON ``type`` ipsms prints: the real output of the commands
has exactly the documented keys, each with its documented JSON type."""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path
from typing import Any

from ipsms.events import RejectedEvent
from ipsms.ui.lines import NdjsonSink, ndjson_line
from tests.conftest import ROOT, run_ipsms
from tests.procs import ListenerProcess
from tests.test_listen_cli import SEED, post

DOC = (ROOT / "docs" / "ndjson.md").read_text()
REFID = "ABCDEF1234567890ABCDEF1234567890"
SECRET = "SECRET CODE"
_JSON_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool,
               "null": type(None), "object": dict, "array": list}


def documented() -> dict[str, dict[str, set[str]]]:
    """``{type: {key: {"string", "null"}}}`` from the document's sections and tables."""
    shapes: dict[str, dict[str, set[str]]] = {}
    for section in re.split(r"^## ", DOC, flags=re.MULTILINE)[1:]:
        name = re.match(r"`([a-z_]+)`", section)
        assert name, f"section without a `type` heading: {section[:40]!r}"
        rows = re.findall(r"^\| `([a-z_0-9]+)` \| ([a-z ]+) \|", section, flags=re.MULTILINE)
        assert rows, f"no key table for {name.group(1)}"
        shapes[name.group(1)] = {key: set(types.split(" or ")) for key, types in rows}
    return shapes


SHAPES = documented()


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    for name in ("string", "integer", "null", "object", "array"):
        if isinstance(value, _JSON_TYPES[name]):
            return name
    return "number"


def check(line: dict[str, Any]) -> None:
    shape = SHAPES.get(line.get("type"))  # type: ignore[arg-type]
    assert shape is not None, f"undocumented type {line.get('type')!r}"
    assert set(line) == set(shape), (
        f"{line['type']}: undocumented {sorted(set(line) - set(shape))}, "
        f"missing {sorted(set(shape) - set(line))}")
    for key, value in line.items():
        assert json_type(value) in shape[key] or (
            "number" in shape[key] and json_type(value) == "integer"), (
            f"{line['type']}.{key} is {json_type(value)}, documented {shape[key]}")
    if line["type"] == "message":
        for attempt in line["attempts"]:
            check(attempt)


def lines_of(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_every_type_printed_matches_docs_ndjson_md(tmp_path: Path) -> None:
    db = tmp_path / "m.sqlite3"
    seen: list[dict[str, Any]] = []
    listener = ListenerProcess("--secret", SECRET, db=db)
    try:
        seen.append(listener.ready)
        assert post(listener.url, SEED)[0] == 200
        assert post(listener.url, b"{broken")[0] == 400
        assert post(listener.url, b"\xff\xfe not utf-8")[0] == 400
        seen += [listener.next_event() for _ in range(3)]
    finally:
        listener.stop()
    assert [e["status"] for e in seen[1:]] == [200, 400, 400]

    def run(*args: str) -> list[dict[str, Any]]:
        result = run_ipsms(*args, "--db", str(db))
        assert result.returncode == 0, result.stderr
        return lines_of(result.stdout)

    listed = run("messages", "list")
    shown = run("messages", "show", REFID)
    exported = run("messages", "export")
    redacted = run("messages", "export", "--redact")
    verified = run("verify", "--secret", SECRET, "--refid", REFID)
    assert len(listed) == len(exported) == len(redacted) == 3 and len(verified) == 1
    assert any(e["body_base64"] is not None for e in exported)  # the non-UTF-8 body
    cleared = run("messages", "clear", "--yes", "--format", "json")
    seen += listed + shown + exported + redacted + verified + cleared
    # Lines listen prints only on trouble, from the functions that print them.
    seen.append(json.loads(ndjson_line(RejectedEvent(time.time(), "127.0.0.1", 408,
                                                     "request head not complete"))))
    seen.append(json.loads(NdjsonSink(io.StringIO()).drop_notice(3)))

    for line in seen:
        check(line)
    assert {line["type"] for line in seen} == set(SHAPES)


def test_the_request_shape_is_the_same_in_every_command(tmp_path: Path) -> None:
    """One shape, and masking said by a field: listen, list and show mask the signature and
    say so; export keeps it and says so."""
    db = tmp_path / "m.sqlite3"
    listener = ListenerProcess("--secret", SECRET, db=db)
    try:
        assert post(listener.url, SEED)[0] == 200
        live = listener.next_event()
    finally:
        listener.stop()
    [listed] = lines_of(run_ipsms("messages", "list", "--db", str(db)).stdout)
    [shown] = lines_of(run_ipsms("messages", "show", REFID, "--db", str(db)).stdout)
    [exported] = lines_of(run_ipsms("messages", "export", "--db", str(db)).stdout)
    attempt = shown["attempts"][0]
    assert live.keys() == listed.keys() == attempt.keys() == exported.keys()
    for line in (live, listed, attempt):
        assert line["signature_masked"] is True and line["signature"] == "****(11)"
        assert SECRET not in json.dumps(line)
    assert exported["signature_masked"] is False and exported["signature"] == SECRET
    assert exported["body"].encode() == SEED
    assert live["body"] is None and listed["body"] is None and attempt["body"] is not None
    same = ("id", "refid", "attempt", "from", "to", "message", "verdict", "verdict_detail",
            "flags", "status", "error", "headers", "size")
    assert {k: live[k] for k in same} == {k: exported[k] for k in same}
