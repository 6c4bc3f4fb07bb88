"""The shipped completion scripts match what `ipsms` generates, and completion works."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import ROOT, cli_env, run_ipsms

SCRIPTS = {"bash": "ipsms.bash", "zsh": "_ipsms", "fish": "ipsms.fish",
           "powershell": "ipsms.ps1"}


@pytest.mark.parametrize("shell", sorted(SCRIPTS))
def test_shipped_scripts_are_current(shell: str) -> None:
    generated = run_ipsms(env=cli_env(_IPSMS_COMPLETE=f"source_{shell}")).stdout
    shipped = (ROOT / "completions" / SCRIPTS[shell]).read_text()
    assert generated == shipped, "run completions/generate.sh"


def test_bash_completes_command_names() -> None:
    result = run_ipsms(env=cli_env(_IPSMS_COMPLETE="complete_bash", COMP_WORDS="ipsms li",
                                   COMP_CWORD="1"))
    assert result.stdout.split() == ["listen"]


def test_the_shipped_bash_script_completes_in_a_real_bash(tmp_path: Path) -> None:
    """What a user gets after `source completions/ipsms.bash`: bash itself calls the
    completion function for `ipsms messages sh<Tab>` and `ipsms listen --for<Tab>`."""
    import shutil
    import subprocess
    import sys

    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    shim = tmp_path / "ipsms"  # the `ipsms` on PATH: this checkout's
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} -m ipsms \"$@\"\n")
    shim.chmod(0o755)
    script = (f"source {ROOT / 'completions' / 'ipsms.bash'}\n"
              "COMP_WORDS=(ipsms messages sh); COMP_CWORD=2; _ipsms_completion ipsms\n"
              "echo \"${COMPREPLY[*]}\"\n"
              "COMP_WORDS=(ipsms listen --for); COMP_CWORD=2; _ipsms_completion ipsms\n"
              "echo \"${COMPREPLY[*]}\"\n")
    env = cli_env(PATH=f"{tmp_path}:{os.environ['PATH']}", PYTHONPATH=str(ROOT))
    result = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], env=env,
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert first.split() == ["show"]
    assert set(second.split()) == {"--format", "--forward-to", "--forward-timeout"}
