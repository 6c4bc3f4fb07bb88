"""`ipsms verify` as a real process: fixed signature vectors, exit codes, explanations, and
the secret never printed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ipsms.errors import ExitCode
from tests.cli.test_messages_cli import (
    HMAC_HELLO,
    REFID_A,
    REFID_B,
    REFID_C,
    SECRET,
    TEXT_HELLO,
    Recorded,
    record_with_listener,
)
from tests.conftest import cli_env, run_ipsms

WRONG = "not-the-secret-42"
# hmac-sha1 over message + refid, base64 (openssl dgst -sha1 -hmac SECRET -binary | base64).
SHA1_B64_MSG_REFID = "EzhgavOPCCu59WYbjVZMhG+Hy08="


def body(signature: str | None, message: str = TEXT_HELLO) -> bytes:
    fields = {"refid": REFID_A, "from": "+13038675309", "to": "+12161112222", "message": message}
    if signature is not None:
        fields["signature"] = signature
    return json.dumps(fields).encode()


def verify(
    *args: str,
    stdin: bytes | None = None,
    secret: str | None = SECRET,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    extra = ("--secret", secret) if secret is not None else ()
    result = run_ipsms("verify", *args, *extra, input=stdin, env=env)
    for secret_value in (SECRET, WRONG):  # whatever happens, no secret is ever printed
        assert secret_value not in result.stdout + result.stderr
    return result


def one(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    [line] = result.stdout.splitlines()
    return json.loads(line)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    return record_with_listener(tmp_path_factory.mktemp("listened"))


def test_plain_secret_is_valid(tmp_path: Path) -> None:
    file = tmp_path / "body.json"
    file.write_bytes(body(SECRET))
    result = verify(str(file), "--format", "json")
    assert result.returncode == 0, result.stderr
    doc = one(result)
    assert (doc["type"], doc["verdict"], doc["matched"]) == ("verification", "valid", "plain")
    assert doc["refid"] == REFID_A and doc["source"] == str(file)
    assert doc["secret_fingerprint"].startswith("sha256:") and doc["mode"] == "auto"
    human = verify(str(file), "--format", "table")
    assert human.returncode == 0
    assert human.stdout.startswith("valid ") and "matched plain" in human.stdout


@pytest.mark.parametrize("mode", ["auto", "hmac"])
def test_hmac_sha256_hex_vector(tmp_path: Path, mode: str) -> None:
    file = tmp_path / "body.json"
    file.write_bytes(body(HMAC_HELLO))
    result = verify(str(file), "--signature-mode", mode, "--format", "json")
    assert result.returncode == 0, result.stderr
    assert one(result)["matched"] == "hmac-sha256"


def test_other_hmac_variant_from_environment(tmp_path: Path) -> None:
    file = tmp_path / "body.json"
    file.write_bytes(body(SHA1_B64_MSG_REFID))
    env = cli_env(
        IPSMS_SECRET=SECRET, IPSMS_SIGNATURE_MODE="hmac", IPSMS_HMAC="sha1:message+refid:base64"
    )
    result = verify(str(file), "--format", "json", secret=None, env=env)
    assert result.returncode == 0, result.stderr
    assert one(result)["matched"] == "hmac-sha1:message+refid:base64"


def test_wrong_secret_is_invalid_and_explained(tmp_path: Path) -> None:
    file = tmp_path / "body.json"
    file.write_bytes(body(HMAC_HELLO))
    result = verify(str(file), "--format", "json", secret=WRONG)
    assert result.returncode == ExitCode.SIGNATURE_INVALID
    doc = one(result)
    assert doc["verdict"] == "invalid" and doc["matched"] is None
    assert "hex, the length of an hmac-sha256" in doc["explanation"]
    assert doc["secret_fingerprint"] in doc["explanation"]
    assert "ipsms: error: signature invalid" in result.stderr


def test_mode_mismatch_points_at_the_matching_mode(tmp_path: Path) -> None:
    file = tmp_path / "body.json"
    file.write_bytes(body(HMAC_HELLO))
    result = verify(str(file), "--signature-mode", "plain", "--format", "table")
    assert result.returncode == ExitCode.SIGNATURE_INVALID
    assert result.stdout.startswith("invalid ")
    assert "it matches hmac-sha256" in result.stdout


def test_changed_message_is_invalid(tmp_path: Path) -> None:
    file = tmp_path / "body.json"
    file.write_bytes(body(HMAC_HELLO, message=TEXT_HELLO + "!"))
    result = verify(str(file), "--format", "json")
    assert result.returncode == ExitCode.SIGNATURE_INVALID
    assert "message changed after signing" in one(result)["explanation"]


def test_missing_signature(tmp_path: Path) -> None:
    file = tmp_path / "body.json"
    file.write_bytes(body(None))
    result = verify(str(file), "--format", "json")
    assert result.returncode == ExitCode.SIGNATURE_INVALID
    assert one(result)["verdict"] == "missing"
    assert "signature missing" in result.stderr


def test_form_body_on_stdin_with_trailing_newline() -> None:
    from urllib.parse import urlencode

    form = urlencode(
        {
            "refid": REFID_A,
            "from": "+13038675309",
            "to": "+12161112222",
            "message": TEXT_HELLO,
            "signature": HMAC_HELLO,
        }
    ).encode()
    result = verify("-", "--format", "json", stdin=form + b"\n")
    assert result.returncode == 0, result.stderr
    assert one(result)["source"] == "stdin" and one(result)["matched"] == "hmac-sha256"


def test_json_file_with_a_byte_order_mark(tmp_path: Path) -> None:
    file = tmp_path / "body.json"
    file.write_bytes(b"\xef\xbb\xbf" + body(HMAC_HELLO) + b"\r\n")
    result = verify(str(file), "--format", "json")
    assert result.returncode == 0, result.stderr
    assert one(result)["matched"] == "hmac-sha256"


def test_secret_is_required() -> None:
    result = verify("-", stdin=body(SECRET), secret=None)
    assert result.returncode == ExitCode.USAGE
    assert "no secret" in result.stderr and "IPSMS_SECRET" in result.stderr


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b'{"refid": "A", "from": "+1",', "is not valid JSON"),
        (b'{"refid": "A", "from": "+1", "to": "+2"}', "missing required field(s): message"),
        (b"[1, 2]", "body is JSON list, expected an object"),
        (b"   \n", "is empty"),
    ],
)
def test_malformed_input_is_a_usage_error(tmp_path: Path, content: bytes, problem: str) -> None:
    file = tmp_path / "bad.json"
    file.write_bytes(content)
    result = verify(str(file))
    assert result.returncode == ExitCode.USAGE
    assert problem in result.stderr and str(file) in result.stderr
    assert result.stdout == ""


def test_unreadable_file_is_a_usage_error(tmp_path: Path) -> None:
    result = verify(str(tmp_path / "nope.json"))
    assert result.returncode == ExitCode.USAGE
    assert "cannot read" in result.stderr and "nope.json" in result.stderr


def test_recorded_refid_from_the_store(recorded: Recorded) -> None:
    result = verify("--refid", REFID_A, "--db", str(recorded.db), "--format", "json")
    assert result.returncode == 0, result.stderr
    docs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(d["attempt"], d["verdict"], d["matched"]) for d in docs] == [
        (1, "valid", "plain"),
        (2, "valid", "plain"),
    ]
    bad = verify("--refid", REFID_C, "--db", str(recorded.db))
    assert bad.returncode == ExitCode.SIGNATURE_INVALID
    assert "message changed after signing" in bad.stdout
    unknown = verify("--refid", "Z" * 32, "--db", str(recorded.db))
    assert unknown.returncode == ExitCode.NOT_FOUND


def test_messages_export_lines(recorded: Recorded) -> None:
    exported = run_ipsms("messages", "export", "--db", str(recorded.db)).stdout
    lines = exported.splitlines()
    form_line = next(line for line in lines if json.loads(line)["refid"] == REFID_B)
    single = verify("-", "--format", "json", stdin=form_line.encode())
    assert single.returncode == 0, single.stderr
    assert one(single)["refid"] == REFID_B and one(single)["matched"] == "plain"
    # The whole export: the rejected request is skipped, C (tampered) and D (unsigned) fail.
    everything = verify("-", "--format", "json", stdin=exported.encode())
    assert everything.returncode == ExitCode.SIGNATURE_INVALID
    verdicts = [json.loads(line)["verdict"] for line in everything.stdout.splitlines()]
    assert verdicts == ["valid", "valid", "valid", "invalid", "missing"]
    assert "skipped stdin line 5" in everything.stderr
    assert "2 of 5 signatures did not verify" in everything.stderr


def test_redacted_and_listen_lines_cannot_be_verified(recorded: Recorded) -> None:
    redacted = run_ipsms("messages", "export", "--redact", "--db", str(recorded.db))
    first = redacted.stdout.splitlines()[0].encode()
    result = verify("-", stdin=first)
    assert result.returncode == ExitCode.USAGE and "redacted export" in result.stderr
    assert "export without --redact, or use --refid" in result.stderr
    listen_line = json.dumps(recorded.listen_lines[0]).encode()  # signature masked there
    result = verify("-", stdin=listen_line)
    assert result.returncode == ExitCode.USAGE
    assert "has its signature masked" in result.stderr
    refid = recorded.listen_lines[0]["refid"]
    assert f"verify the recorded message instead: ipsms verify --refid {refid}" in result.stderr


def test_nothing_to_verify_on_a_terminal_does_not_wait_for_input() -> None:
    from tests.cli.test_messages_cli import run_with_terminal_stdin

    code, out, err = run_with_terminal_stdin(["verify", "--secret", SECRET], b"")
    assert code == ExitCode.USAGE
    assert "nothing to verify" in err and "--refid" in err
    assert out == "" and SECRET not in err


def test_file_and_refid_together_is_a_usage_error(tmp_path: Path) -> None:
    file = tmp_path / "body.json"
    file.write_bytes(body(SECRET))
    result = verify(str(file), "--refid", REFID_A)
    assert result.returncode == ExitCode.USAGE and "either FILE or --refid" in result.stderr
