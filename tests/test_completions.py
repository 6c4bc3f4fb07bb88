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


def _ipsms_shim(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An `ipsms` on PATH that runs this checkout and logs each call (one line per call)."""
    import sys

    calls = tmp_path / "calls"
    shim = tmp_path / "bin" / "ipsms"
    shim.parent.mkdir()
    shim.write_text(f"#!/bin/sh\necho call >> {calls}\nexec {sys.executable} -m ipsms \"$@\"\n")
    shim.chmod(0o755)
    env = cli_env(PATH=f"{shim.parent}:{os.environ['PATH']}", PYTHONPATH=str(ROOT))
    return env, calls


def test_the_shipped_fish_script_completes_with_one_call_per_tab(tmp_path: Path) -> None:
    import shutil
    import subprocess

    if shutil.which("fish") is None:
        pytest.skip("fish is not installed (apt-get install fish)")
    env, calls = _ipsms_shim(tmp_path)
    script = (f"source {ROOT / 'completions' / 'ipsms.fish'}\n"
              "complete -C 'ipsms li'\n")
    result = subprocess.run(["fish", "--no-config", "-c", script], env=env, capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == ["listen"]
    assert calls.read_text().count("call") == 1  # Typer's script ran ipsms twice per Tab


ZPTY = r"""
zmodload zsh/zpty
zpty z 'zsh -f -i'
zpty -w z 'PS1="> "; fpath=(%(dir)s $fpath); autoload -Uz compinit; compinit -u -D'
zpty -w -n z $'ipsms mess\t'
sleep 3
zpty -w -n z $'\x03'
out=""
while zpty -r -t z line; do out+="$line"; done
print -r -- "$out"
zpty -d z
"""


def test_the_shipped_zsh_script_completes_on_the_first_tab_from_fpath(tmp_path: Path) -> None:
    """The README's zsh set-up: `_ipsms` in a directory on $fpath, then compinit. compinit
    needs `#compdef` on line 1, and the first Tab must complete (not only register)."""
    import shutil
    import subprocess

    if shutil.which("zsh") is None:
        pytest.skip("zsh is not installed (apt-get install zsh)")
    assert (ROOT / "completions" / "_ipsms").read_text().startswith("#compdef ipsms\n")
    env, calls = _ipsms_shim(tmp_path)
    script = tmp_path / "drive.zsh"
    script.write_text(ZPTY % {"dir": ROOT / "completions"})
    result = subprocess.run(["zsh", "-f", str(script)], env=env, capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    assert "ipsms messages" in result.stdout.replace("\r", ""), result.stdout[-500:]
    assert calls.read_text().count("call") == 1
