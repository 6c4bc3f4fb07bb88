"""Shell completion scripts: Typer's, with two fixes, for every way a script is made
(``_IPSMS_COMPLETE=source_SHELL ipsms``, ``completions/generate.sh``, ``--install-completion``).

- zsh: ``#compdef ipsms`` must be the file's first line, or ``compinit`` does not pick the file
  up from ``$fpath``; Typer's script starts with a blank line, and when autoloaded it only
  registered itself, so the first Tab completed nothing (click's script has the same fix).
- fish: Typer's script runs ``ipsms`` twice per Tab (once to ask whether there are completions,
  once for them); this one runs it once and offers file names when ipsms has nothing to offer.
- descriptions (both): Typer's zsh quoting wrote an apostrophe as ``''``, which zsh reads as
  nothing inside single quotes ("IntelePeers API"), a double quote as ``""`` and a backslash
  as nothing; and it rendered each help as rich markup, which wraps a long one onto a second
  line (fish took it for another completion) and drops ``[...]``. Each description is now the
  help as one line, quoted for every reader zsh passes it through.
"""

from typing import Any


def one_line(text: str) -> str:
    """A help text as one line. It is plain text, as ``--help`` shows it (the app has no rich
    markup): Typer's rendering as markup would drop ``[...]`` and wrap at 80 columns."""
    return " ".join(text.split())


def zsh_word(text: str) -> str:
    r"""``text`` as one word of the ``_arguments '*: :((...))'`` line the zsh script evals,
    quoted for each reader in turn: ``_describe`` (a backslash escapes, a colon ends the
    value), the ``eval`` of the inside of ``((...))`` by ``_arguments`` (double quotes), and
    the script's own ``eval`` of the line (single quotes, an apostrophe as ``'\''``)."""
    text = text.replace("\\", "\\\\").replace(":", "\\:")
    for char in '\\"$`':
        text = text.replace(char, "\\" + char)
    return '"' + text.replace("'", "'\\''") + '"'


ZSH = """#compdef %(prog_name)s

%(complete_func)s() {
  eval "$(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" %(autocomplete_var)s=complete_zsh \
%(prog_name)s)"
}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  # autoloaded from $fpath by compinit: this is the first Tab, complete it now
  %(complete_func)s "$@"
else
  # sourced or eval'd: register the function for the next Tab
  compdef %(complete_func)s %(prog_name)s
fi
"""

FISH = """function %(complete_func)s
    set -l items (env %(autocomplete_var)s=complete_fish \
_TYPER_COMPLETE_FISH_ACTION=get-args _TYPER_COMPLETE_ARGS=(commandline -cp) %(prog_name)s)
    if test (count $items) -gt 0
        printf '%%s\\n' $items
    else
        __fish_complete_path (commandline -ct)
    end
end
complete --command %(prog_name)s --no-files --arguments '(%(complete_func)s)'
"""


def register() -> None:
    """Put ipsms's zsh and fish scripts in place of Typer's. Call after the app is built
    (building it registers Typer's)."""
    from ipsms.cli.click_compat import (
        FishComplete,
        ZshComplete,
        add_completion_class,
        set_completion_script,
    )

    class Zsh(ZshComplete):
        source_template = ZSH

        def format_completion(self, item: Any) -> str:
            if item.help:
                return f"{zsh_word(item.value)}:{zsh_word(one_line(item.help))}"
            return zsh_word(item.value)

    class Fish(FishComplete):
        source_template = FISH

        def format_completion(self, item: Any) -> str:
            return f"{item.value}\t{one_line(item.help)}" if item.help else str(item.value)

        def complete(self) -> Any:
            # One call per Tab: the completions, never the "is there any" question.
            args, incomplete = self.get_completion_args()
            return "\n".join(
                self.format_completion(item) for item in self.get_completions(args, incomplete)
            )

    add_completion_class(Zsh, "zsh")
    add_completion_class(Fish, "fish")
    # --install-completion and --show-completion read these instead of the classes.
    set_completion_script("zsh", ZSH)
    set_completion_script("fish", FISH)
