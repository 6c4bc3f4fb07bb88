"""docs/ndjson.md documents every NDJSON ``type`` ipsms prints: the real output of the commands
(against a real listener, a real API emulator and a closed port) has exactly the documented
keys, nested ones included, each with its documented JSON type; and every ``"type"`` in the
code is documented and printed by one of these tests."""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path
from typing import Any

from ipsms.errors import ExitCode
from ipsms.intelepeer.client import PROVISION_PATH
from ipsms.intelepeer.emulator import DEMO_PASSWORD, DEMO_USER, EmulatorThread
from ipsms.listen.events import RejectedEvent
from ipsms.ui.lines import NdjsonSink, ndjson_line
from tests.cli.test_listen_cli import SEED, post
from tests.cli.test_provision_cli import EmulatorProcess
from tests.cli.test_set_webhook_cli import MISSING, NO_SMS, NUMBER, PASSWORD, emu
from tests.conftest import ROOT, cli_env, run_ipsms
from tests.deliver.test_delivery import closed_port
from tests.procs import ListenerProcess, fake_agent

__all__ = ["emu"]  # the fixture, shared with the set-webhook tests

DOC = (ROOT / "docs" / "ndjson.md").read_text()
REFID = "ABCDEF1234567890ABCDEF1234567890"
SECRET = "SECRET CODE"
_JSON_TYPES = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "null": type(None),
    "object": dict,
    "array": list,
}


def documented() -> dict[str, dict[str, set[str]]]:
    """``{type: {key: {"string", "null"}}}`` from the document's sections and tables; a nested
    key keeps its path: ``latency_ms.p50``, ``tokens[].valid``."""
    shapes: dict[str, dict[str, set[str]]] = {}
    for section in re.split(r"^## ", DOC, flags=re.MULTILINE)[1:]:
        name = re.match(r"`([a-z_]+)`", section)
        assert name, f"section without a `type` heading: {section[:40]!r}"
        rows = re.findall(
            r"^\| `([a-z_0-9]+(?:(?:\[\])?\.[a-z_0-9]+)*)` \| ([a-z ]+) \|",
            section,
            flags=re.MULTILINE,
        )
        assert rows, f"no key table for {name.group(1)}"
        for _, types in rows:
            assert set(types.split(" or ")) <= set(_JSON_TYPES), f"{name.group(1)}: {types!r}"
        shapes[name.group(1)] = {key: set(types.split(" or ")) for key, types in rows}
    return shapes


SHAPES = documented()
# The types each test below prints for real; together, every documented type.
RECORDING_TYPES = {
    "listening",
    "request",
    "rejected",
    "dropped",
    "message",
    "cleared",
    "verification",
}
DELIVERY_TYPES = {"attempt", "outcome", "summary"}
API_TYPES = {
    "dry_run",
    "webhook_set",
    "webhook_history",
    "provision",
    "auth_login",
    "auth_status",
    "auth_logout",
}
EMULATOR_TYPES = {"api_emulator", "emulator_request"}


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
    check_object(line, shape, "", line["type"])
    if line["type"] == "message":
        for attempt in line["attempts"]:
            check(attempt)


def check_object(obj: dict[str, Any], shape: dict[str, set[str]], prefix: str, where: str) -> None:
    """``obj`` has exactly the keys documented under ``prefix``, each of its documented JSON
    type; documented nested objects (``a.b``) and array elements (``a[].b``) likewise."""
    keys = {k[len(prefix) :] for k in shape if k.startswith(prefix) and "." not in k[len(prefix) :]}
    assert set(obj) == keys, (
        f"{where}: undocumented {sorted(set(obj) - keys)}, missing {sorted(keys - set(obj))}"
    )
    for key, value in obj.items():
        types = shape[prefix + key]
        assert json_type(value) in types or ("number" in types and json_type(value) == "integer"), (
            f"{where}.{key} is {json_type(value)}, documented {types}"
        )
        if isinstance(value, dict) and any(k.startswith(f"{prefix}{key}.") for k in shape):
            check_object(value, shape, f"{prefix}{key}.", f"{where}.{key}")
        if isinstance(value, list) and any(k.startswith(f"{prefix}{key}[].") for k in shape):
            for item in value:
                assert isinstance(item, dict), f"{where}.{key}[] is {json_type(item)}"
                check_object(item, shape, f"{prefix}{key}[].", f"{where}.{key}[]")


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
    seen.append(
        json.loads(
            ndjson_line(RejectedEvent(time.time(), "127.0.0.1", 408, "request head not complete"))
        )
    )
    seen.append(json.loads(NdjsonSink(io.StringIO()).drop_notice(3)))

    for line in seen:
        check(line)
    assert {line["type"] for line in seen} == RECORDING_TYPES
    assert any(e["flags"] for e in listed)  # flags[] checked on real flags


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
    same = (
        "id",
        "refid",
        "attempt",
        "from",
        "to",
        "message",
        "verdict",
        "verdict_detail",
        "flags",
        "status",
        "error",
        "headers",
        "size",
    )
    assert {k: live[k] for k in same} == {k: exported[k] for k in same}


def test_simulate_and_replay_lines_match_the_doc(tmp_path: Path) -> None:
    """Attempts that succeed, fail with a status, are counted failed by --fail-first or get
    no answer; outcomes delivered and not; summaries of simulate --count and replay --all,
    with and without attempts."""
    db = tmp_path / "d.sqlite3"
    seen: list[dict[str, Any]] = []

    def run(*args: str, code: int = 0) -> list[dict[str, Any]]:
        result = run_ipsms(*args)
        assert result.returncode == code, result.stderr
        lines = lines_of(result.stdout)
        seen.extend(lines)
        return lines

    listener = ListenerProcess("--secret", SECRET, db=db)
    try:
        url = listener.url
        forced = run(
            "simulate", url, "--refid", REFID, "--secret", SECRET, "--fail-first", "1", "--no-wait"
        )
        refused = run(
            "simulate",
            url,
            "--secret",
            "WRONG",
            "--max-attempts",
            "2",
            "--no-wait",
            code=ExitCode.NOT_DELIVERED,
        )  # the listener answers 401 or 403
        unanswered = run(
            "simulate",
            f"http://127.0.0.1:{closed_port()}/",
            "--max-attempts",
            "1",
            code=ExitCode.NOT_DELIVERED,
        )
        load = run("simulate", url, "--secret", SECRET, "--count", "3")
        replayed = run("replay", REFID, "--to", url, "--db", str(db), "--no-wait")
        replayed_all = run(
            "replay",
            "--all",
            "--to",
            url,
            "--db",
            str(db),
            "--no-wait",
            "--max-attempts",
            "1",
            code=ExitCode.NOT_DELIVERED,
        )  # the WRONG one
        run("messages", "clear", "--yes", "--db", str(db))
        empty = run("replay", "--all", "--to", url, "--db", str(db))
    finally:
        listener.stop()

    for line in seen:
        check(line)
    assert {line["type"] for line in seen} == DELIVERY_TYPES | {"cleared"}
    # The variants that put null in place of a value, and the ones that do not.
    assert [(a["status"], a["ok"], a["forced_failure"], a["wait_s"]) for a in forced[:2]] == [
        (200, False, True, 0),
        (200, True, False, None),
    ]
    assert forced[2]["delivered_on"] == 2 and forced[2]["signature"] == "****(11)"
    assert refused[0]["status"] == refused[1]["status"] in (401, 403) and not refused[1]["ok"]
    assert refused[0]["response"] and refused[0]["error"] is None
    assert refused[2]["delivered"] is False and refused[2]["delivered_on"] is None
    assert unanswered[0]["status"] is None and unanswered[0]["error"] == "connect_error"
    assert unanswered[0]["error_detail"] and unanswered[1]["last_result"] == "connect_error"
    [summary] = load
    assert summary["messages"] == summary["delivered"] == 3 and summary["results"] == {"200": 3}
    assert summary["latency_ms"]["p50"] is not None
    assert replayed[-1]["source"].startswith("replay of request #")
    assert replayed_all[-1]["type"] == "summary"
    assert (replayed_all[-1]["messages"], replayed_all[-1]["gave_up"]) == (5, 1)
    assert empty == [empty[0]] and empty[0]["attempts"] == 0
    assert empty[0]["latency_ms"] == dict.fromkeys(("p50", "p95", "p99", "max", "mean"))


def test_api_command_lines_match_the_doc(emu: EmulatorThread) -> None:
    """set-webhook (201, 207 with a failed number, --restore, --history, --dry-run),
    provision (202, 409, --dry-run) and auth login/status/logout against the API emulator."""
    seen: list[dict[str, Any]] = []
    api = ["--api-base", emu.api_base, "--auth-url", emu.auth_url]
    creds = cli_env(IPSMS_USERNAME="api-user", IPSMS_PASSWORD=PASSWORD)

    def run(*args: str, code: int = 0, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
        result = run_ipsms(*args, env=env)
        assert result.returncode == code, result.stderr
        lines = lines_of(result.stdout)
        seen.extend(lines)
        return lines

    login = run(
        "auth", "login", "--username", "api-user", *api, env=cli_env(IPSMS_PASSWORD=PASSWORD)
    )
    stored = run("auth", "status")
    with_token = run("auth", "status", env=cli_env(IPSMS_TOKEN="tok-zz-9999"))
    dry = run("set-webhook", NUMBER, "https://u:pw@example.com/a", "--dry-run", *api)
    dry += run("provision", NO_SMS, "--dry-run", *api)
    first = run("set-webhook", NUMBER, "https://example.com/a", *api, env=creds)
    second = run("set-webhook", NUMBER, "https://example.com/b", *api, env=creds)
    partial = run(
        "set-webhook", NUMBER, MISSING, "https://example.com/c", *api, env=creds, code=ExitCode.API
    )
    restored = run("set-webhook", "--restore", NUMBER, *api, env=creds)
    history = run("set-webhook", "--history")
    requested = run("provision", NO_SMS, *api, env=creds)
    busy = run("provision", NO_SMS, *api, env=creds, code=ExitCode.API)
    logout = run("auth", "logout")

    for line in seen:
        check(line)
    assert {line["type"] for line in seen} == API_TYPES
    assert login[0]["username"] == "api-user" and logout[0]["credentials_removed"] is True
    assert stored[0]["source"] == "stored" and stored[0]["tokens"]
    assert with_token[0]["source"] == "token" and with_token[0]["username"] is None
    assert [d["body"]["endpoints"] for d in dry] == [[NUMBER], [NO_SMS]]
    assert first[0]["previous"] is None and first[0]["reply_status"] == 201
    assert first[0]["reason"] is None
    assert second[0]["previous"] == "https://example.com/a"
    assert [(r["ok"], r["reply_status"]) for r in partial] == [(True, 207), (False, 207)]
    assert partial[1]["reason"] == f"{MISSING} was not found in the account"
    assert restored[0]["action"] == "restore"
    assert [h["previous"] for h in history][:2] == [None, "https://example.com/a"]
    assert (requested[0]["status"], requested[0]["reason"]) == (202, None)
    assert busy[0]["status"] == 409 and busy[0]["reason"]


def test_api_emulator_lines_match_the_doc() -> None:
    """``ipsms api-emulator``'s own lines: JSON, non-JSON and non-object request bodies."""
    process = EmulatorProcess("--number-no-sms", NO_SMS)
    try:
        env = cli_env(
            IPSMS_API_BASE=process.ready["api_base"],
            IPSMS_AUTH_URL=process.ready["auth_url"],
            IPSMS_USERNAME=DEMO_USER,
            IPSMS_PASSWORD=DEMO_PASSWORD,
        )
        result = run_ipsms("provision", NO_SMS, env=env)
        assert result.returncode == 0, result.stderr
        for body in (b"not json", b"[1, 2]", b'"text"'):
            status = post(process.ready["api_base"] + PROVISION_PATH, body)[0]
            assert status in (400, 401)
    finally:
        code, out, _ = process.stop()
    assert code == 0
    seen = [process.ready, *lines_of(out)]
    for line in seen:
        check(line)
    assert {line["type"] for line in seen} == EMULATOR_TYPES
    bodies = [line["json"] for line in seen[1:]]
    assert bodies[0]["password"] == "****" and DEMO_PASSWORD not in out
    assert bodies[-3:] == [None, [1, 2], "text"]


def test_every_type_in_the_code_is_documented_and_tested() -> None:
    """A new ``"type": "..."`` in ipsms fails here until docs/ndjson.md lists it and a test
    above prints it."""
    in_code = set()
    for path in (ROOT / "ipsms").rglob("*.py"):
        in_code |= set(re.findall(r'"type": "([a-z_]+)"', path.read_text()))
    assert in_code == set(SHAPES)
    assert set(SHAPES) == (
        RECORDING_TYPES
        | DELIVERY_TYPES
        | API_TYPES
        | EMULATOR_TYPES
        | TUNNEL_TYPES
        | INSPECTOR_TYPES
        | CHECK_TYPES
    )


TUNNEL_TYPES = {"tunnel"}
# Printed and checked against the doc in tests/inspect/test_listen_inspector.py.
INSPECTOR_TYPES = {"inspector"}
# Printed and checked against the doc in tests/check/test_check_cli.py.
CHECK_TYPES = {"check"}


def test_tunnel_lines_match_the_doc(tmp_path: Path) -> None:
    """`listen --tunnel` against the fake agent, which dies after a second: up, then down."""
    listener = ListenerProcess(
        "--tunnel",
        "--ngrok-path",
        str(fake_agent(tmp_path / "bin")),
        db=tmp_path / "t.sqlite3",
        env=cli_env(FAKE_NGROK_DIE_AFTER="1"),
    )
    try:
        up, down = listener.next_event(), listener.next_event()
        listener.proc.communicate(timeout=10)
    finally:
        listener.kill()
    assert (up["state"], down["state"]) == ("up", "down")
    for line in (up, down):
        assert line["type"] in TUNNEL_TYPES
        check_object(line, SHAPES[line["type"]], "", "tunnel")
