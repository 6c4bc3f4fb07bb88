"""The shipped completion scripts match what `ipsms` generates, and completion works."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, cli_env, run_ipsms

SCRIPTS = {"bash": "ipsms.bash", "zsh": "_ipsms", "fish": "ipsms.fish", "powershell": "ipsms.ps1"}


@pytest.mark.parametrize("shell", sorted(SCRIPTS))
def test_shipped_scripts_are_current(shell: str) -> None:
    generated = run_ipsms(env=cli_env(_IPSMS_COMPLETE=f"source_{shell}")).stdout
    shipped = (ROOT / "completions" / SCRIPTS[shell]).read_text()
    assert generated == shipped, "run completions/generate.sh"


def test_bash_completes_command_names() -> None:
    result = run_ipsms(
        env=cli_env(_IPSMS_COMPLETE="complete_bash", COMP_WORDS="ipsms li", COMP_CWORD="1")
    )
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
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m ipsms "$@"\n')
    shim.chmod(0o755)
    script = (
        f"source {ROOT / 'completions' / 'ipsms.bash'}\n"
        "COMP_WORDS=(ipsms messages sh); COMP_CWORD=2; _ipsms_completion ipsms\n"
        'echo "${COMPREPLY[*]}"\n'
        "COMP_WORDS=(ipsms listen --for); COMP_CWORD=2; _ipsms_completion ipsms\n"
        'echo "${COMPREPLY[*]}"\n'
    )
    env = cli_env(PATH=f"{tmp_path}:{os.environ['PATH']}", PYTHONPATH=str(ROOT))
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert first.split() == ["show"]
    assert set(second.split()) == {"--format", "--forward-to", "--forward-timeout"}


def _ipsms_shim(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An `ipsms` on PATH that runs this checkout and logs each call (one line per call), and
    a home of the test's own: a shell writes its state there (fish makes ~/.config/fish and
    ~/.local/share/fish at start-up), never in the real one."""
    import sys

    calls = tmp_path / "calls"
    shim = tmp_path / "bin" / "ipsms"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\necho call >> {calls}\nexec {sys.executable} -m ipsms "$@"\n')
    shim.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    env = {
        k: v
        for k, v in cli_env(
            PATH=f"{shim.parent}:{os.environ['PATH']}", PYTHONPATH=str(ROOT), HOME=str(home)
        ).items()
        if not k.startswith(("XDG_", "ZDOTDIR"))
    }
    return env, calls


def _real_home_state() -> dict[str, bool]:
    """Which of the places shells keep state exist in the real home."""
    home = Path(os.path.expanduser("~"))
    return {
        name: (home / name).exists()
        for name in (".config/fish", ".local/share/fish", ".zcompdump", ".zsh_history")
    }


@pytest.fixture
def real_home_untouched() -> Iterator[None]:
    """The test leaves the real home as it found it (a shell it runs uses the test's home)."""
    before = _real_home_state()
    yield
    assert _real_home_state() == before, "a shell wrote into the real $HOME"


def test_the_shipped_fish_script_completes_with_one_call_per_tab(
    tmp_path: Path, real_home_untouched: None
) -> None:
    import shutil
    import subprocess

    if shutil.which("fish") is None:
        pytest.skip("fish is not installed (apt-get install fish)")
    env, calls = _ipsms_shim(tmp_path)
    script = f"source {ROOT / 'completions' / 'ipsms.fish'}\ncomplete -C 'ipsms li'\n"
    result = subprocess.run(
        ["fish", "--no-config", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == ["listen"]
    assert calls.read_text().count("call") == 1  # Typer's script ran ipsms twice per Tab


ZPTY = r"""
zmodload zsh/zpty zsh/datetime
setopt extendedglob
zpty z 'zsh -f -i'
zpty -w z 'PS1="> "; fpath=(%(dir)s $fpath); autoload -Uz compinit; compinit -u -D%(setup)s'
zpty -w -n z $'%(keys)s\t'
out=""
# Until the screen shows every line of $WANT (escapes removed), for 20 s at most.
deadline=$(( EPOCHREALTIME + 20 ))
while (( EPOCHREALTIME < deadline )); do
  while zpty -r -t z line; do out+="$line"; done
  plain=${${out//$'\r'/}//$'\e'\[[0-9;?]#[A-Za-z]/}
  missing=0
  for want in "${(@f)WANT}"; do [[ $plain == *"$want"* ]] || missing=1; done
  (( missing )) || break
  sleep 0.05
done
sleep 0.2  # anything still on its way: the rest of the list, a second call of ipsms
zpty -w -n z $'\x03'
while zpty -r -t z line; do out+="$line"; done
print -r -- "$out"
zpty -d z
"""


def _zsh_tab(tmp_path: Path, keys: str, want: list[str], setup: str = "") -> tuple[str, Path]:
    """What an interactive zsh shows for `keys` and one Tab, with `_ipsms` on $fpath and
    compinit as docs/completion.md sets it up (terminal escapes removed), and the shim's call
    log. It is read until it shows every text in ``want`` (what the test then looks for), or
    for 20 s: a fixed wait long enough for a loaded machine made every such test slow."""
    import re
    import shutil
    import subprocess

    if shutil.which("zsh") is None:
        pytest.skip("zsh is not installed (apt-get install zsh)")
    env, calls = _ipsms_shim(tmp_path)
    script = tmp_path / "drive.zsh"
    script.write_text(ZPTY % {"dir": ROOT / "completions", "keys": keys, "setup": setup})
    result = subprocess.run(
        ["zsh", "-f", str(script)],
        env={**env, "WANT": "\n".join(want)},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", result.stdout.replace("\r", "")), calls


def test_the_shipped_zsh_script_completes_on_the_first_tab_from_fpath(
    tmp_path: Path, real_home_untouched: None
) -> None:
    """docs/completion.md's zsh set-up: `_ipsms` in a directory on $fpath, then compinit. compinit
    needs `#compdef` on line 1, and the first Tab must complete (not only register)."""
    assert (ROOT / "completions" / "_ipsms").read_text().startswith("#compdef ipsms\n")
    shown, calls = _zsh_tab(tmp_path, "ipsms mess", ["ipsms messages"])
    assert "ipsms messages" in shown, shown[-500:]
    assert calls.read_text().count("call") == 1


def test_zsh_descriptions_keep_their_apostrophes(tmp_path: Path, real_home_untouched: None) -> None:
    """Typer wrote an apostrophe as '' inside single quotes, which zsh reads as nothing:
    the list said "IntelePeers API" and "a webhooks signature"."""
    lines = [
        "api-emulator  -- Run a local emulation of IntelePeer's API.",
        "verify        -- Check a webhook's signature against the secret.",
        "set-webhook   -- Point numbers' inbound SMS webhook at a URL.",
        "listen        -- Receive webhooks locally: verify, record and show each one.",
    ]
    shown, _ = _zsh_tab(tmp_path, "ipsms ", lines)
    for line in lines:
        assert line in shown, shown[-900:]


def test_zsh_descriptions_survive_every_shell_character(
    tmp_path: Path, real_home_untouched: None
) -> None:
    """The quoting ipsms's zsh completion writes, read by the real _arguments and _describe:
    each description is shown as written, whatever characters it holds."""
    from typer._click.shell_completion import CompletionItem, get_completion_class

    from ipsms.cli import completion
    from ipsms.cli.app import app_command

    completion.register()
    zsh = get_completion_class("zsh")
    assert zsh is not None
    complete = zsh(app_command(), {}, "ipsms", "_IPSMS_COMPLETE")
    texts = {
        "alpha": 'It\'s "q" $HOME `c` b\\s a:b *.t ~;&|(x)[y]{z}!',
        "be:ta": "a\\:b \\\\ end  of\nline",
    }
    items = "\n".join(
        complete.format_completion(CompletionItem(value, help=text))
        for value, text in texts.items()
    )
    (tmp_path / "line.zsh").write_text(f"_arguments '*: :(({items}))'")
    setup = f'; _tricky() {{ eval "$(<{tmp_path / "line.zsh"})" }}; compdef _tricky tricky'
    lines = [
        'alpha  -- It\'s "q" $HOME `c` b\\s a:b *.t ~;&|(x)[y]{z}!',
        "be:ta  -- a\\:b \\\\ end of line",
    ]
    shown, _ = _zsh_tab(tmp_path, "tricky ", lines, setup)
    for line in lines:
        assert line in shown, shown[-500:]


def test_fish_descriptions_are_one_line_each(tmp_path: Path, real_home_untouched: None) -> None:
    """A long help was wrapped onto a second line, which fish took for another candidate and
    the description was cut."""
    import shutil
    import subprocess

    if shutil.which("fish") is None:
        pytest.skip("fish is not installed (apt-get install fish)")
    env, _ = _ipsms_shim(tmp_path)
    script = f"source {ROOT / 'completions' / 'ipsms.fish'}\ncomplete -C 'ipsms simulate --payl'\n"
    result = subprocess.run(
        ["fish", "--no-config", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    [line] = result.stdout.splitlines()
    assert line.startswith("--payload\tA JSON object to start from (- reads stdin)")
    assert line.endswith(
        "; the flags above override its fields, extra fields are sent as they are."
    )


INSTALL_LINE = re.compile(r"^\| (bash|zsh|fish) \| `([^`]+)`", re.MULTILINE)


def test_the_documented_install_lines_work_in_a_new_home(tmp_path: Path) -> None:
    """Each shell's line of docs/completion.md's table, run as written in that shell with a
    home that has none of the shell's directories yet (the fish line wrote into
    ~/.config/fish/completions without making it)."""
    import shutil
    import subprocess

    lines = dict(INSTALL_LINE.findall((ROOT / "docs" / "completion.md").read_text()))
    assert set(lines) == {"bash", "zsh", "fish"}
    wrote = {
        "bash": ".bashrc",
        "zsh": ".zfunc/_ipsms",
        "fish": ".config/fish/completions/ipsms.fish",
    }
    for shell, line in lines.items():
        if shutil.which(shell) is None:
            continue
        where = tmp_path / shell
        where.mkdir()
        env, _ = _ipsms_shim(where)
        home = Path(env["HOME"])
        flags = {"bash": ["--norc", "--noprofile"], "zsh": ["-f"], "fish": ["--no-config"]}
        result = subprocess.run(
            [shell, *flags[shell], "-c", line],
            env=env,
            cwd=where,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, (shell, line, result.stderr)
        written = (home / wrote[shell]).read_text()
        if shell == "bash":
            assert "_IPSMS_COMPLETE=source_bash ipsms" in written
        else:
            assert written == (ROOT / "completions" / SCRIPTS[shell]).read_text()
