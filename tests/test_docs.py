"""The README documents every command, option variable and exit code the program has."""

from __future__ import annotations

import re

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
