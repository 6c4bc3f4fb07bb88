"""Shell completion scripts: Typer's, with two fixes, for every way a script is made
(``_IPSMS_COMPLETE=source_SHELL ipsms``, ``completions/generate.sh``, ``--install-completion``).

- zsh: ``#compdef ipsms`` must be the file's first line, or ``compinit`` does not pick the file
  up from ``$fpath``; Typer's script starts with a blank line, and when autoloaded it only
  registered itself, so the first Tab completed nothing (click's script has the same fix).
- fish: Typer's script runs ``ipsms`` twice per Tab (once to ask whether there are completions,
  once for them); this one runs it once and offers file names when ipsms has nothing to offer.
"""

from typing import Any

ZSH = """#compdef %(prog_name)s

%(complete_func)s() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" %(autocomplete_var)s=complete_zsh \
%(prog_name)s)
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
    from typer import _completion_shared
    from typer._click.shell_completion import add_completion_class
    from typer._completion_classes import FishComplete, ZshComplete

    class Zsh(ZshComplete):
        source_template = ZSH

    class Fish(FishComplete):
        source_template = FISH

        def complete(self) -> Any:
            # One call per Tab: the completions, never the "is there any" question.
            args, incomplete = self.get_completion_args()
            return "\n".join(self.format_completion(item)
                             for item in self.get_completions(args, incomplete))

    add_completion_class(Zsh, "zsh")
    add_completion_class(Fish, "fish")
    # --install-completion and --show-completion read these instead of the classes.
    scripts: dict[str, str] = _completion_shared._completion_scripts
    scripts["zsh"] = ZSH
    scripts["fish"] = FISH
