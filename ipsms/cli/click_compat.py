"""The parts of Typer's click, and of Typer's shell completion, that Typer does not export.

Typer ships click inside itself, as ``typer._click``: no ``click`` distribution is installed,
and one installed beside it would be other classes (Typer raises its own copy's exceptions
and builds its own copy's contexts). What Typer exports, ipsms takes from it
(``typer.Context``, ``typer.BadParameter``, ``typer.Abort``, ``typer.core.TyperGroup``);
the rest is taken here, from where Typer keeps it, and nowhere else in ipsms.

What this relies on (checked with typer 0.29.2, as constraints.txt pins it;
tests/cli/test_click_compat.py fails when an upgrade changes any of it):

- ``typer._click.exceptions``: ``ClickException``, its subclass ``UsageError``, its subclass
  ``typer.BadParameter`` and that one's ``MissingParameter``: what a command run with
  ``standalone_mode=False`` raises for a bad or a missing value; ``NoArgsIsHelpError``, the
  ``UsageError`` a group with ``no_args_is_help`` raises when run with no arguments, its help
  as its message.
- ``typer._click.core.Context``: the class of the contexts click makes and hands to callbacks
  (``typer.Context`` subclasses it for annotations; a context's ``parent`` is click's), for
  annotations only.
- ``typer._click.core.ParameterSource``: what ``Context.get_parameter_source`` returns, with
  the members ``COMMANDLINE``, ``ENVIRONMENT``, ``DEFAULT_MAP`` and ``DEFAULT`` (``config
  resolve`` reads them by name: a command module imports no module but the shared ones).
- ``typer._click.utils.PacifyFlushWrapper``: what Typer's main loop wraps ``sys.stdout`` in
  when printing meets a closed pipe, before it exits 1.
- ``typer._click.shell_completion.add_completion_class``, and ``ZshComplete`` and
  ``FishComplete`` of ``typer._completion_classes``: the classes Typer registers for zsh and
  fish (a subclass replaces one by registering under its shell's name).
- ``typer._completion_shared._completion_scripts``: the scripts, by shell name, that
  ``--show-completion`` and ``--install-completion`` print and install.

All of it is loaded by ``import typer`` already: importing this module costs no start-up.
"""

from __future__ import annotations

from typer import _completion_shared
from typer._click.core import Context, ParameterSource
from typer._click.exceptions import (
    ClickException,
    MissingParameter,
    NoArgsIsHelpError,
    UsageError,
)
from typer._click.shell_completion import add_completion_class
from typer._click.utils import PacifyFlushWrapper
from typer._completion_classes import FishComplete, ZshComplete

__all__ = [
    "ClickException",
    "Context",
    "FishComplete",
    "MissingParameter",
    "NoArgsIsHelpError",
    "PacifyFlushWrapper",
    "ParameterSource",
    "UsageError",
    "ZshComplete",
    "add_completion_class",
    "set_completion_script",
]


def set_completion_script(shell: str, script: str) -> None:
    """``script`` (a ``%``-template of Typer's) as what ``--show-completion`` prints and
    ``--install-completion`` installs for ``shell``."""
    scripts: dict[str, str] = _completion_shared._completion_scripts
    scripts[shell] = script
