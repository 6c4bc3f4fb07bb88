"""The shipped completion scripts match what `ipsms` generates, and completion works."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT, cli_env, run_ipsms

SCRIPTS = {"bash": "ipsms.bash", "zsh": "_ipsms", "fish": "ipsms.fish"}


@pytest.mark.parametrize("shell", sorted(SCRIPTS))
def test_shipped_scripts_are_current(shell: str) -> None:
    generated = run_ipsms(env=cli_env(_IPSMS_COMPLETE=f"source_{shell}")).stdout
    shipped = (ROOT / "completions" / SCRIPTS[shell]).read_text()
    assert generated == shipped, "run completions/generate.sh"


def test_bash_completes_command_names() -> None:
    result = run_ipsms(env=cli_env(_IPSMS_COMPLETE="complete_bash", COMP_WORDS="ipsms li",
                                   COMP_CWORD="1"))
    assert result.stdout.split() == ["listen"]
