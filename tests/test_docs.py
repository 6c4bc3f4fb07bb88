"""The README documents every command, option variable and exit code the program has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from ipsms.cli.app import app
from ipsms.errors import ExitCode
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def command_names() -> list[str]:
    group = typer.main.get_command(app)
    names = []
    for name, cmd in group.commands.items():  # type: ignore[attr-defined]
        subs = getattr(cmd, "commands", None)
        names += [f"{name} {sub}" for sub in subs] if subs else [name]
    return names


def test_every_command_is_in_the_readme() -> None:
    names = command_names()
    assert "listen" in names and "messages list" in names
    for name in names:
        top, _, sub = name.partition(" ")
        assert f"ipsms {top}" in README, f"`ipsms {top}` is not documented in README.md"
        if sub:
            assert sub in README, f"`ipsms {name}` is not documented in README.md"


def test_every_environment_variable_is_in_the_readme() -> None:
    used = set()
    for path in (ROOT / "ipsms").rglob("*.py"):
        used |= set(re.findall(r"IPSMS_[A-Z_]+", path.read_text()))
    missing = sorted(v for v in used if v not in README)
    assert not missing, f"undocumented variables: {missing}"


def test_every_exit_code_is_in_the_readme() -> None:
    for code in ExitCode:
        assert re.search(rf"^\| {int(code)} \|", README, re.MULTILINE), code


def test_every_command_help_has_an_example() -> None:
    from typer.testing import CliRunner

    runner = CliRunner()
    for name in command_names():
        result = runner.invoke(app, [*name.split(), "--help"])
        assert result.exit_code == 0, name
        assert "Example" in result.output, f"`ipsms {name} --help` shows no example"


def test_every_relative_link_in_the_docs_resolves() -> None:
    for doc in [ROOT / "README.md", ROOT / "BENCHMARKS.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"


def test_the_cli_reference_is_current() -> None:
    """docs/cli.md is generated from the app; a new option or changed help makes it stale."""
    from ipsms.cli.reference import markdown

    assert (ROOT / "docs" / "cli.md").read_text() == markdown(), \
        "run: python -m ipsms.cli.reference > docs/cli.md"


def test_every_command_and_group_has_help_text_and_an_example() -> None:
    from ipsms.cli.reference import markdown

    pages = re.split(r'^<a id="[^"]+"></a>\n', markdown(), flags=re.MULTILINE)[1:]
    assert len(pages) >= len(command_names()) + 3  # the root and the two groups too
    for page in pages:
        name = page.split("`")[1]
        _usage, _, rest = page.partition("\n\n  ")
        assert rest.split("\n\n")[0].strip(), f"`{name}` has no help text"
        assert "\n  Examples:\n    " in page, f"`{name} --help` shows no example"
        assert f"{name} " in README or f"`{name}`" in README, f"`{name}` is not in README.md"


def readme_section(title: str) -> str:
    """The README's ``## title...`` section, up to the next ``## `` heading."""
    found = re.search(rf"^## {re.escape(title)}.*?\n(.*?)(?=^## )", README, re.M | re.S)
    assert found is not None, f"README.md has no section {title!r}"
    return found.group(1)


def sh_blocks(text: str) -> list[str]:
    return [block.strip() for block in re.findall(r"^```sh\n(.*?)^```", text, re.M | re.S)]


def words(command: str) -> list[str]:
    """A command's words, the way a reader compares two (pip's --quiet aside)."""
    return [word for word in command.split() if word != "--quiet"]


def test_the_setup_is_two_commands_and_ci_runs_the_readmes_test_command() -> None:
    """On a fresh machine: one command installs and runs the listener, one installs and
    passes the tests, and that second one is what `.ci/run` runs."""
    run, test = sh_blocks(readme_section("Set-up"))
    assert "\n" not in run and "\n" not in test
    assert run.startswith("python3 -m venv .venv && ") and run.endswith("ipsms listen")
    assert test.startswith("python3 -m venv .venv && ") and test.endswith(" -m pytest")
    ci = (ROOT / ".ci" / "run").read_text().replace("\\\n", " ")
    commands = [words(line) for line in ci.splitlines() if not line.lstrip().startswith("#")]
    assert words(test) in commands, f".ci/run does not run the README's `{test}`"


def test_the_quick_start_runs_as_written(tmp_path: Path) -> None:
    """The quick start's two terminals, each block run as written by bash in the project's
    directory (only the port moved off 8765, through IPSMS_PORT and IPSMS_SIMULATE_URL):
    the listener verifies the secret, simulate delivers on the third attempt, and `messages
    list` shows the three attempts."""
    import json
    import os
    import signal
    import socket
    import subprocess
    import time

    from tests.conftest import cli_env

    listen, deliver = sh_blocks(readme_section("Quick start"))
    for block in (listen, deliver):
        assert block.splitlines()[0] == ". .venv/bin/activate", block
    if not (ROOT / ".venv" / "bin" / "ipsms").exists():
        pytest.skip("no .venv in the project's directory (the README's set-up makes one)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in cli_env().items() if k != "VIRTUAL_ENV"}
    env.update(IPSMS_HOME=str(tmp_path / "home"), IPSMS_PORT=str(port),
               IPSMS_SIMULATE_URL=f"http://127.0.0.1:{port}/")
    listener = subprocess.Popen(["bash", "-e", "-c", listen], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert listener.poll() is None and time.monotonic() < deadline, \
                listener.communicate()[1]
            time.sleep(0.1)
        result = subprocess.run(["bash", "-e", "-c", deliver], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        outcome = next(line for line in lines if line["type"] == "outcome")
        assert outcome["delivered"] and outcome["attempts"] == 3
        recorded = [line for line in lines if line["type"] == "request"]
        assert [(r["attempt"], r["verdict"]) for r in recorded] == [(3, "valid"), (2, "valid"),
                                                                    (1, "valid")]
        os.killpg(listener.pid, signal.SIGINT)  # Ctrl-C
        _, err = listener.communicate(timeout=20)
        assert listener.returncode == 0, err
        assert "3 received" in err
    finally:
        if listener.poll() is None:
            os.killpg(listener.pid, signal.SIGKILL)
            listener.communicate()
