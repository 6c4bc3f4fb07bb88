"""What every command shares: help that reads at 80 columns, one-line option errors, the
global --debug/--quiet wherever they are typed, a closed pipe handled the same way by every
command, plain output that is one record per line, and no colour where none is wanted."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ipsms.errors import ExitCode
from tests.cli.test_messages_cli import Recorded, record_with_listener
from tests.conftest import ROOT, cli_env, run_ipsms


def _command_paths() -> list[list[str]]:
    from ipsms.cli.reference import pages

    return [name.split()[1:] for name, _ in pages()]


COMMANDS = _command_paths()  # every command and group the app has, the root included


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    return record_with_listener(tmp_path_factory.mktemp("listened"))


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "ipsms")
def test_help_reads_well_at_80_columns(command: list[str]) -> None:
    result = run_ipsms(*command, "--help", env=cli_env(COLUMNS="80"))
    assert result.returncode == 0, result.stderr
    text = result.stdout
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in text and "<bool>" not in text and "<str>" not in text
    assert "╭" not in text  # no boxes: the plain layout a pipe and a narrow terminal read
    # Examples: each on its own line, whole, ready to copy; exit codes a line each.
    start = lines.index("  Examples:")
    examples = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        examples.append(line.strip())
    assert examples and all("ipsms " in e or e.endswith("ipsms") for e in examples), examples
    if command in ([], ["listen"], ["simulate"], ["messages"], ["auth"], ["verify"]):
        codes = lines[lines.index("  Exit codes:") + 1 :]
        assert all(re.match(r"^ +\d+  \S", line) for line in codes if line.strip()), codes


def test_root_help_lists_every_command_on_one_line_each() -> None:
    text = run_ipsms("--help", env=cli_env(COLUMNS="80")).stdout
    listed = text.split("Commands:\n")[1].split("\n\n")[0].splitlines()
    assert [line.split()[0] for line in listed] == [
        "listen",
        "simulate",
        "replay",
        "check",
        "messages",
        "inspect",
        "verify",
        "set-webhook",
        "provision",
        "auth",
        "api-emulator",
        "config",
    ]
    assert not any(line.rstrip().endswith("...") for line in listed)


@pytest.mark.parametrize(
    ("args", "starts"),
    [
        (["listen", "--port", "abc"], "ipsms: error: --port: "),
        (["listen", "--port", "99999"], "ipsms: error: --port: "),
        (["listen", "--format", "xml"], "ipsms: error: --format: 'xml' is not one of"),
        (["listen", "--prot", "1"], "ipsms: error: no such option: --prot"),
        (["simulate", "--count", "0"], "ipsms: error: --count: "),
        (["messages", "show"], "ipsms: error: missing argument REFID"),
        (["messages", "list", "--limit"], "ipsms: error: option '--limit' requires an argument"),
        (["lisen"], "ipsms: error: no such command 'lisen'; did you mean 'listen'?"),
    ],
)
def test_option_errors_are_one_line_with_what_to_read(args: list[str], starts: str) -> None:
    result = run_ipsms(*args)
    assert result.returncode == ExitCode.USAGE
    assert result.stderr.startswith(starts), result.stderr
    assert result.stderr.count("\n") == 1  # one line, no usage block, no box
    words = [a for a in args if not a.startswith("-") and not a[0].isdigit()][:2]
    if words != ["lisen"]:
        named = " ".join(
            w for w in words if w in ("listen", "simulate", "messages", "show", "list")
        )
        assert f"see `ipsms {named} --help`" in result.stderr


def test_an_option_error_from_the_environment_names_the_variable() -> None:
    result = run_ipsms("listen", env=cli_env(IPSMS_PORT="abc"))
    assert result.returncode == ExitCode.USAGE
    assert result.stderr.startswith("ipsms: error: --port (from IPSMS_PORT): ")


@pytest.mark.parametrize(
    "how",
    [
        ["--debug", "replay", "nosuch"],
        ["replay", "nosuch", "--debug"],
        ["messages", "show", "nosuch", "--debug"],
        "IPSMS_DEBUG=1",
        "IPSMS_DEBUG=true",
    ],
)
def test_debug_before_after_or_from_the_environment(tmp_path: Path, how: list[str] | str) -> None:
    db = ["--db", str(tmp_path / "none.sqlite3")]
    if isinstance(how, str):
        name, value = how.split("=")
        result = run_ipsms("replay", "nosuch", *db, env=cli_env(**{name: value}))
    else:
        result = run_ipsms(*how, *db)
    assert result.returncode == ExitCode.NOT_FOUND
    assert (
        "Traceback" in result.stderr and "ipsms: error: no messages recorded yet" in result.stderr
    )


def test_without_debug_there_is_no_traceback(tmp_path: Path) -> None:
    result = run_ipsms(
        "replay", "nosuch", "--db", str(tmp_path / "none.sqlite3"), env=cli_env(IPSMS_DEBUG="0")
    )
    assert result.returncode == ExitCode.NOT_FOUND and "Traceback" not in result.stderr


def test_quiet_is_accepted_before_and_after_and_never_hides_errors(tmp_path: Path) -> None:
    for args in (["-q", "replay", "x"], ["replay", "x", "--quiet"], ["replay", "x", "-q"]):
        result = run_ipsms(*args, "--db", str(tmp_path / "none.sqlite3"))
        assert result.returncode == ExitCode.NOT_FOUND
        assert result.stderr.startswith("ipsms: error: no messages recorded yet")


def _with_closed_stdout(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``ipsms ARGS | head -0``: stdout is a pipe whose reader has already gone."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [sys.executable, "-m", "ipsms", *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=30,
        )
    finally:
        os.close(write)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["listen", "--help"],
        ["messages"],
        ["--version"],
        ["messages", "list"],
        ["messages", "list", "--format", "table"],
        ["messages", "list", "--format", "plain"],
        ["messages", "export"],
        ["messages", "show", "REFID", "--format", "table"],
        ["messages", "show", "REFID", "--format", "plain"],
        ["set-webhook", "+13038675309", "https://example.com/sms", "--dry-run"],
        [
            "set-webhook",
            "+13038675309",
            "https://example.com/sms",
            "--dry-run",
            "--format",
            "table",
        ],
        ["auth", "status", "--token", "abc"],
        ["auth", "status", "--token", "abc", "--format", "table"],
    ],
    ids=" ".join,
)
def test_a_reader_that_goes_away_ends_every_command_quietly(
    recorded: Recorded, tmp_path: Path, args: list[str]
) -> None:
    env = cli_env(IPSMS_DB=str(recorded.db), IPSMS_HOME=str(tmp_path / "home"))
    if args == ["messages"]:  # the help of a group, shown when no command is given
        args = ["messages", "--help"]
    refid = next(line["refid"] for line in recorded.listen_lines if line.get("refid"))
    args = [refid if a == "REFID" else a for a in args]
    result = _with_closed_stdout(args, env)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert "BrokenPipe" not in result.stderr
    normal = subprocess.run(
        [sys.executable, "-m", "ipsms", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=30,
    )
    assert normal.stdout  # the command does print something
    # The same exit as when the output is read (0 unless the command itself failed).
    assert result.returncode == normal.returncode, (result.stderr, normal.stderr)


def test_plain_messages_are_one_whole_record_per_line(recorded: Recorded) -> None:
    result = run_ipsms(
        "messages", "list", "--format", "plain", "--db", str(recorded.db), env=cli_env(COLUMNS="80")
    )
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    table = run_ipsms("messages", "list", "--format", "json", "--db", str(recorded.db))
    assert len(lines) == len(table.stdout.splitlines()) == 6
    assert any(len(line) > 80 for line in lines)  # never cut to a terminal width
    for line in lines:
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \d{3} ", line), line
    accepted = [line for line in lines if " 200 #" in line]
    assert accepted and all(" -> " in line for line in accepted)


def test_plain_show_is_a_line_per_attempt(recorded: Recorded) -> None:
    listed = run_ipsms("messages", "list", "--format", "json", "--db", str(recorded.db)).stdout
    twice = [line for line in listed.splitlines() if '"attempt":2' in line]
    refid = re.search(r'"refid":"([^"]+)"', twice[0])
    assert refid
    result = run_ipsms(
        "messages", "show", refid.group(1), "--format", "plain", "--db", str(recorded.db)
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and " #1 " in lines[0] and " #2 " in lines[1]


COLOUR = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-9]|4[0-9]|9[0-7]|10[0-7])(?:;[0-9;]*)?m")


def test_no_color_is_honoured_on_a_terminal(recorded: Recorded) -> None:
    coloured = run_ipsms(
        "messages", "list", "--format", "table", "--db", str(recorded.db), tty=True, columns=160
    )
    assert COLOUR.search(coloured.stdout)  # the check can fail: a terminal gets colour
    plain = run_ipsms(
        "messages",
        "list",
        "--format",
        "table",
        "--db",
        str(recorded.db),
        tty=True,
        columns=160,
        env=cli_env(NO_COLOR="1"),
    )
    assert plain.returncode == 0 and not COLOUR.search(plain.stdout)


@pytest.mark.parametrize("command", [["messages", "list"], ["auth", "status"]])
def test_plain_format_never_emits_escape_codes(
    recorded: Recorded, tmp_path: Path, command: list[str]
) -> None:
    result = (
        run_ipsms(*command, "--format", "plain", "--db", str(recorded.db), tty=True, columns=160)
        if command[0] == "messages"
        else run_ipsms(*command, "--format", "plain", tty=True, columns=160)
    )
    assert "\x1b" not in result.stdout


def test_quiet_hides_warnings_not_the_error() -> None:
    from tests.deliver.test_delivery import closed_port

    url = f"http://127.0.0.1:{closed_port()}/sms"
    loud = run_ipsms("simulate", url, "--refid", "short", "--max-attempts", "1")
    quiet = run_ipsms("simulate", url, "--refid", "short", "--max-attempts", "1", "--quiet")
    assert loud.returncode == quiet.returncode == ExitCode.NOT_DELIVERED
    assert "warning" in loud.stderr  # the check can fail: there is a warning to hide
    assert "warning" not in quiet.stderr
    assert quiet.stderr.splitlines()[-1] == loud.stderr.splitlines()[-1]
    assert quiet.stderr.splitlines()[-1].startswith("ipsms: error: ")


def test_a_closed_pipe_does_not_change_a_verdict(tmp_path: Path) -> None:
    """`ipsms verify bad.json | head -0` still exits 6: the reader leaving is not a result."""
    body = tmp_path / "bad.json"
    body.write_text(
        '{"refid":"ABCDEF1234567890ABCDEF1234567890","from":"+13035550100",'
        '"to":"+13038675309","message":"hi","signature":"wrong"}'
    )
    result = _with_closed_stdout(["verify", str(body)], cli_env(IPSMS_SECRET="s3cret"))
    assert result.returncode == ExitCode.SIGNATURE_INVALID, result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("fmt", ["json", "plain", "table"])
def test_a_closed_pipe_does_not_stop_a_delivery(tmp_path: Path, fmt: str) -> None:
    """`ipsms simulate | head -1`: the retries still happen, and the exit code says whether
    the message was delivered (here: never, so 5), not that the reader left."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    hits: list[str] = []

    class Refuse(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            hits.append(self.path)
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    # shutdown() waits for this loop to look: every 50 ms, not the default 500.
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/sms"
        result = _with_closed_stdout(["simulate", url, "--no-wait", "--format", fmt], cli_env())
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == ExitCode.NOT_DELIVERED, result.stderr
    assert len(hits) == 5  # every attempt was made
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
