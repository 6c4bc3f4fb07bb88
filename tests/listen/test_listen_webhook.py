"""`listen --set-webhook TN --public-url URL`: the number points at the listener while it runs
and is put back on exit; a lease file survives a `kill -9`, so `set-webhook --restore` and the
next listener know what is outstanding. Real listener processes against the API emulator."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ipsms.errors import ExitCode
from ipsms.intelepeer.client import WEBHOOK_PATH
from ipsms.intelepeer.emulator import EmulatorState, EmulatorThread, Fault
from tests.conftest import cli_env, run_ipsms
from tests.procs import ListenerProcess

NUMBER = "+13038675309"
APP = "https://app.example.com/sms"
PUBLIC = "https://tunnel.example.com/hook"
PASSWORD = "pw-lease-9"


@pytest.fixture
def emu() -> Iterator[EmulatorThread]:
    state = EmulatorState()
    state.add_user("api-user", PASSWORD)
    state.add_number(NUMBER)
    state.add_number("+13038675310")
    with EmulatorThread(state) as thread:
        yield thread


def env(emu: EmulatorThread, home: Path) -> dict[str, str]:
    return cli_env(
        IPSMS_API_BASE=emu.api_base,
        IPSMS_AUTH_URL=emu.auth_url,
        IPSMS_USERNAME="api-user",
        IPSMS_PASSWORD=PASSWORD,
        IPSMS_HOME=str(home),
    )


def webhooks_set(emu: EmulatorThread) -> list[str]:
    """The URLs the emulator was asked to set, in order."""
    return [r.json["webhook"] for r in emu.state.requests_to(WEBHOOK_PATH)]


def lines_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_the_number_points_at_the_listener_and_is_put_back_on_exit(
    emu: EmulatorThread, ipsms_home: Path, tmp_path: Path
) -> None:
    e = env(emu, ipsms_home)
    assert run_ipsms("set-webhook", NUMBER, APP, env=e).returncode == 0  # what it had before
    listener = ListenerProcess(
        "--set-webhook", NUMBER, "--public-url", PUBLIC, db=tmp_path / "l.sqlite3", env=e
    )
    try:
        change = listener.next_event()  # right after the "listening" line
        assert (change["type"], change["action"], change["url"]) == ("webhook_set", "set", PUBLIC)
        assert emu.state.numbers[NUMBER].webhook == PUBLIC
        lease = json.loads((ipsms_home / "webhook-leases.json").read_text())["leases"]
        assert [(x["numbers"], x["url"]) for x in lease] == [([NUMBER], PUBLIC)]
        code, out, err = listener.stop(signal.SIGTERM)
    finally:
        listener.kill()
    assert code == 0, err
    assert webhooks_set(emu) == [APP, PUBLIC, APP]
    assert emu.state.numbers[NUMBER].webhook == APP
    assert f"{NUMBER} pointed at {PUBLIC}" in err and f"{NUMBER} put back to {APP}" in err
    assert [x["action"] for x in lines_of(out) if x["type"] == "webhook_set"] == ["restore"]
    assert not [x for x in lines_of(out) if x["type"] == "listening"]  # it came first
    assert json.loads((ipsms_home / "webhook-leases.json").read_text())["leases"] == []


def test_the_cpaas_warning_is_shown_once_like_set_webhooks(
    emu: EmulatorThread, ipsms_home: Path, tmp_path: Path
) -> None:
    """Pointing a number's webhook anywhere stops CPaaS delivery for it: `listen
    --set-webhook` says so the first time for this API and account, as `set-webhook` does."""
    errs = []
    for run in range(2):
        listener = ListenerProcess(
            "--set-webhook",
            NUMBER,
            "--public-url",
            PUBLIC,
            "--keep-webhook",
            db=tmp_path / f"{run}.sqlite3",
            env=env(emu, ipsms_home),
        )
        try:
            listener.next_event()
            code, _, err = listener.stop(signal.SIGTERM)
        finally:
            listener.kill()
        assert code == 0, err
        errs.append(err)
    assert "ipsms listen: warning: a number enabled for Atmosphere CPaaS" in errs[0]
    assert "CPaaS" not in errs[1]
    assert (
        run_ipsms("set-webhook", NUMBER, APP, env=env(emu, ipsms_home)).stderr.count("CPaaS") == 0
    )  # the same API and account: already told


def test_after_kill_9_the_lease_says_what_to_put_back(
    emu: EmulatorThread, ipsms_home: Path, tmp_path: Path
) -> None:
    e = env(emu, ipsms_home)
    run_ipsms("set-webhook", NUMBER, APP, env=e)
    listener = ListenerProcess(
        "--set-webhook", NUMBER, "--public-url", PUBLIC, db=tmp_path / "k.sqlite3", env=e
    )
    assert listener.next_event()["type"] == "webhook_set"
    listener.proc.kill()
    listener.proc.communicate()
    assert emu.state.numbers[NUMBER].webhook == PUBLIC  # nobody put it back
    again = ListenerProcess(
        "--set-webhook", "+13038675310", "--public-url", PUBLIC, db=tmp_path / "k2.sqlite3", env=e
    )
    try:
        code, _, err = again.stop()
    finally:
        again.kill()
    assert code == 0
    assert (
        f"pointed {NUMBER} at {PUBLIC} and did not put it back; run `ipsms set-webhook "
        f"--restore {NUMBER}`"
    ) in err
    restored = run_ipsms("set-webhook", "--restore", NUMBER, env=e)
    assert restored.returncode == 0, restored.stderr
    assert emu.state.numbers[NUMBER].webhook == APP
    assert json.loads((ipsms_home / "webhook-leases.json").read_text())["leases"] == []


def test_keep_webhook_and_restore_to(emu: EmulatorThread, ipsms_home: Path, tmp_path: Path) -> None:
    e = env(emu, ipsms_home)
    kept = ListenerProcess(
        "--set-webhook",
        NUMBER,
        "--public-url",
        PUBLIC,
        "--keep-webhook",
        db=tmp_path / "a.sqlite3",
        env=e,
    )
    try:
        assert kept.stop()[0] == 0
    finally:
        kept.kill()
    assert emu.state.numbers[NUMBER].webhook == PUBLIC
    other = "https://other.example.com/in"
    moved = ListenerProcess(
        "--set-webhook",
        NUMBER,
        "--public-url",
        PUBLIC,
        "--restore-to",
        other,
        db=tmp_path / "b.sqlite3",
        env=e,
    )
    try:
        assert moved.stop()[0] == 0
    finally:
        moved.kill()
    assert emu.state.numbers[NUMBER].webhook == other


def test_an_unknown_previous_webhook_is_said_up_front_and_left(
    emu: EmulatorThread, ipsms_home: Path, tmp_path: Path
) -> None:
    listener = ListenerProcess(
        "--set-webhook",
        NUMBER,
        "--public-url",
        PUBLIC,
        db=tmp_path / "u.sqlite3",
        env=env(emu, ipsms_home),
    )
    try:
        code, _, err = listener.stop()
    finally:
        listener.kill()
    assert code == 0
    assert "ipsms does not know the webhook +13038675309 has now" in err
    assert f"{NUMBER} still points at {PUBLIC}" in err
    assert emu.state.numbers[NUMBER].webhook == PUBLIC


def test_lease_options_are_checked(emu: EmulatorThread, ipsms_home: Path) -> None:
    e = env(emu, ipsms_home)
    for args, words in (
        (["--set-webhook", NUMBER], "needs the URL IntelePeer reaches"),
        (["--keep-webhook"], "go with --set-webhook"),
        (
            [
                "--set-webhook",
                NUMBER,
                "--public-url",
                PUBLIC,
                "--keep-webhook",
                "--restore-to",
                APP,
            ],
            "do not go together",
        ),
        (["--set-webhook", "12", "--public-url", PUBLIC], "12"),
    ):
        result = run_ipsms("listen", *args, env=e)
        assert result.returncode == ExitCode.USAGE, (args, result.stderr)
        assert words in result.stderr, (args, result.stderr)
    assert webhooks_set(emu) == []  # nothing was changed by a refused command


def test_a_missing_public_url_is_said_before_credentials_are_looked_for(
    emu: EmulatorThread, ipsms_home: Path
) -> None:
    """`listen --set-webhook TN` alone: the missing URL is named first, with no credentials
    anywhere (not "no IntelePeer credentials", then the URL once logged in), and with
    credentials nothing is asked of the API."""
    alone = run_ipsms("listen", "--set-webhook", NUMBER, env=cli_env(IPSMS_HOME=str(ipsms_home)))
    assert alone.returncode == ExitCode.USAGE, alone.stderr
    assert "--set-webhook needs the URL IntelePeer reaches this listener at" in alone.stderr
    assert "--tunnel, or --public-url URL" in alone.stderr
    assert "credentials" not in alone.stderr and "auth login" not in alone.stderr
    bad_number = run_ipsms(
        "listen",
        "--set-webhook",
        "303-8675309",
        "--public-url",
        PUBLIC,
        env=cli_env(IPSMS_HOME=str(ipsms_home)),
    )
    assert bad_number.returncode == ExitCode.USAGE, bad_number.stderr
    assert "+13038675309" in bad_number.stderr and "credentials" not in bad_number.stderr
    e = env(emu, ipsms_home)
    for args in (
        ["--set-webhook", NUMBER],
        ["--set-webhook", NUMBER, "--public-url", "http://localhost:9/hook"],
    ):
        assert run_ipsms("listen", *args, env=e).returncode == ExitCode.USAGE
    assert emu.state.requests == []  # not even a login


def test_wrong_credentials_stop_the_listener_before_anything_changes(
    emu: EmulatorThread, ipsms_home: Path, tmp_path: Path
) -> None:
    e = {**env(emu, ipsms_home), "IPSMS_PASSWORD": "wrong"}
    result = run_ipsms(
        "listen",
        "--port",
        "0",
        "--db",
        str(tmp_path / "w.sqlite3"),
        "--set-webhook",
        NUMBER,
        "--public-url",
        PUBLIC,
        env=e,
    )
    assert result.returncode == ExitCode.AUTH, result.stderr
    assert emu.state.numbers[NUMBER].webhook != PUBLIC


def test_signals_while_the_webhook_is_put_back_say_so_then_quit_leaving_the_lease(
    emu: EmulatorThread, ipsms_home: Path, tmp_path: Path
) -> None:
    """Stopping waits for the API to put the number back (up to its timeout). A second signal
    says so, even with --quiet; a third quits at once, exit 130, and the lease still says what
    to put back."""
    e = env(emu, ipsms_home)
    run_ipsms("set-webhook", NUMBER, APP, env=e)
    listener = ListenerProcess(
        "--set-webhook", NUMBER, "--public-url", PUBLIC, "--quiet", db=tmp_path / "s.sqlite3", env=e
    )
    try:
        assert listener.next_event()["type"] == "webhook_set"
        emu.state.inject_fault(Fault(status=200, body="{}", path=WEBHOOK_PATH, delay=30))
        assert listener.proc.stderr is not None
        fd = listener.proc.stderr.fileno()
        os.set_blocking(fd, False)

        def more() -> str:
            try:
                return os.read(fd, 65536).decode()
            except BlockingIOError:
                return ""

        listener.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        # A signal while the server stops is ignored: one a second until one is answered
        # (the API holds the restore for 30 s).
        said = ""
        while "still stopping" not in said and time.monotonic() < deadline:
            listener.proc.send_signal(signal.SIGINT)
            for _ in range(20):
                time.sleep(0.05)
                said += more()
                if "still stopping" in said:
                    break
        assert (
            f"ipsms listen: still stopping: putting the webhook of {NUMBER} back; press Ctrl-C "
            f"again to quit now and leave it (`ipsms set-webhook --restore {NUMBER}` puts it "
            "back later)"
        ) in said
        assert listener.proc.poll() is None  # still waiting for the API
        started = time.monotonic()
        listener.proc.send_signal(signal.SIGHUP)
        assert listener.proc.wait(timeout=10) == ExitCode.INTERRUPTED
        assert time.monotonic() - started < 5  # not the API's 30 s
        said += more()
        assert said.rstrip().endswith(
            f"ipsms: error: stopped before the webhook of {NUMBER} was put back"
        ), said
    finally:
        listener.kill()
    leases = json.loads((ipsms_home / "webhook-leases.json").read_text())["leases"]
    assert [lease["numbers"] for lease in leases] == [[NUMBER]], leases


def test_a_burst_of_signals_stops_the_listener_once_cleanly(tmp_path: Path) -> None:
    """Thirty Ctrl-Cs 2 ms apart (a key held down, a supervisor that insists): one stop, the
    summary, exit 0; never a death by the signal."""
    listener = ListenerProcess("--inspect", "127.0.0.1:0", db=tmp_path / "b.sqlite3")
    try:
        for _ in range(30):
            listener.proc.send_signal(signal.SIGINT)
            time.sleep(0.002)
        _, err = listener.proc.communicate(timeout=20)
    finally:
        listener.kill()
    assert listener.proc.returncode == 0, err
    assert "ipsms listen: stopped. 0 received" in err
    assert "Traceback" not in err and "still stopping" not in err
