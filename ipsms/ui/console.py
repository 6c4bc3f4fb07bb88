"""The one way ipsms makes a rich ``Console``: on the stream it is given, told whether that
stream is a terminal (the CLI's ``Environment`` knows; tests choose), never highlighting
numbers or URLs on its own."""

from __future__ import annotations

from typing import TextIO

from rich.console import Console


def make_console(file: TextIO, *, terminal: bool, width: int | None = None) -> Console:
    return Console(file=file, force_terminal=terminal, width=width, highlight=False)
