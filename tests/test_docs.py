"""The README is the front door (every command in its table, a set-up and a quick start that
run as written, at most 200 lines); the pages of docs/ document every environment variable and
exit code; every relative link, and its anchor, resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from ipsms.cli.app import app
from ipsms.errors import ExitCode
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"


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


def test_the_readmes_command_table_links_each_command_to_its_page_and_reference() -> None:
    """A row per command: its name linking to a page of docs/ that exists, and its --help in
    docs/cli.md."""
    rows = re.findall(
        r"^\| \[`(ipsms [^`]+)`\]\((docs/[^)#]+\.md)(?:#[^)]*)?\) \|.*"
        r"\[`--help`\]\(docs/cli\.md#([a-z-]+)\) \|$",
        readme_section("Commands"),
        re.MULTILINE,
    )
    linked = {}
    for shown, page, anchor in rows:
        assert (ROOT / page).exists(), page
        words = [w for w in shown.split() if re.fullmatch(r"[a-z][a-z-]*", w)]
        linked[" ".join(words[1:])] = anchor
    for name in command_names():
        assert name in linked, f"`ipsms {name}` has no row in the README's command table"
        assert linked[name] == "ipsms-" + name.replace(" ", "-"), name


def test_every_environment_variable_is_on_the_settings_page() -> None:
    used = set()
    for path in (ROOT / "ipsms").rglob("*.py"):
        used |= set(re.findall(r"IPSMS_[A-Z_]+", path.read_text()))
    page = (DOCS / "settings.md").read_text()
    missing = sorted(v for v in used if v not in page)
    assert not missing, f"variables docs/settings.md does not name: {missing}"


def test_every_exit_code_is_on_the_exit_codes_page() -> None:
    page = (DOCS / "exit-codes.md").read_text()
    for code in ExitCode:
        assert re.search(rf"^\| {int(code)} \|", page, re.MULTILINE), code


def test_every_command_help_has_an_example() -> None:
    from typer.testing import CliRunner

    runner = CliRunner()
    for name in command_names():
        result = runner.invoke(app, [*name.split(), "--help"])
        assert result.exit_code == 0, name
        assert "Example" in result.output, f"`ipsms {name} --help` shows no example"


def test_the_readme_is_a_front_door_of_at_most_200_lines() -> None:
    lines = len(README.splitlines())
    assert lines <= 200, f"README.md has {lines} lines; move the detail to a page of docs/"


def outside_code(text: str) -> str:
    """The Markdown text without its fenced code blocks."""
    return re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", text, flags=re.MULTILINE | re.DOTALL)


def anchors(path: Path) -> set[str]:
    """The anchors a page has, as GitHub makes them: each heading's slug (lower case, what is
    neither a word character, a space nor a hyphen dropped, spaces as hyphens; a repeated one
    gets -1, -2, ...), and every explicit <a id> or <a name>."""
    text = outside_code(path.read_text())
    found = set(re.findall(r"<a (?:id|name)=\"([^\"]+)\"", text))
    seen: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6} +(.+?) *#* *$", text, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def test_anchors_are_made_as_github_makes_them(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# `ipsms listen`: receive\n## 1.1 The signature: two\n## Flags: a, b\n"
        '## Flags: a, b\n```sh\n# not a heading\n```\n<a id="x-y"></a>\n'
    )
    assert anchors(page) == {
        "ipsms-listen-receive",
        "11-the-signature-two",
        "flags-a-b",
        "flags-a-b-1",
        "x-y",
    }


def test_every_relative_link_in_the_docs_resolves() -> None:
    """In README.md, BENCHMARKS.md and docs/*.md: every link to a file names one that exists,
    and every #anchor (on another page or its own) is one that page has."""
    for doc in [ROOT / "README.md", ROOT / "BENCHMARKS.md", *DOCS.glob("*.md")]:
        links = re.findall(r"\]\(([^)\s]*)\)", outside_code(doc.read_text()))
        for link in links:
            if "://" in link or link.startswith("mailto:"):
                continue
            target, _, anchor = link.partition("#")
            page = (doc.parent / target) if target else doc
            assert page.exists(), f"{doc.name} links to missing {target}"
            if anchor:
                assert page.suffix == ".md", f"{doc.name}: an anchor into {target}"
                assert anchor in anchors(page), f"{doc.name} links to missing {link}"


def test_the_cli_reference_is_current() -> None:
    """docs/cli.md is generated from the app; a new option or changed help makes it stale."""
    from ipsms.cli.reference import markdown

    assert (ROOT / "docs" / "cli.md").read_text() == markdown(), (
        "run: python -m ipsms.cli.reference > docs/cli.md"
    )


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
    env.update(
        IPSMS_HOME=str(tmp_path / "home"),
        IPSMS_PORT=str(port),
        IPSMS_SIMULATE_URL=f"http://127.0.0.1:{port}/",
    )
    listener = subprocess.Popen(
        ["bash", "-e", "-c", listen],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert listener.poll() is None and time.monotonic() < deadline, listener.communicate()[
                1
            ]
            time.sleep(0.1)
        result = subprocess.run(
            ["bash", "-e", "-c", deliver],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        outcome = next(line for line in lines if line["type"] == "outcome")
        assert outcome["delivered"] and outcome["attempts"] == 3
        recorded = [line for line in lines if line["type"] == "request"]
        assert [(r["attempt"], r["verdict"]) for r in recorded] == [
            (3, "valid"),
            (2, "valid"),
            (1, "valid"),
        ]
        os.killpg(listener.pid, signal.SIGINT)  # Ctrl-C
        _, err = listener.communicate(timeout=20)
        assert listener.returncode == 0, err
        assert "3 received" in err
    finally:
        if listener.poll() is None:
            os.killpg(listener.pid, signal.SIGKILL)
            listener.communicate()
