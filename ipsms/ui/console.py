"""The one way ipsms makes a rich ``Console``: on the stream it is given, told whether that
stream is a terminal (the CLI's ``Environment`` knows; tests choose), never highlighting
numbers or URLs on its own. rich honours ``NO_COLOR`` itself."""

from __future__ import annotations

import errno
from typing import TextIO

from rich.console import Console


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """rich exits the process with status 1 when the reader goes away (``| head -1``);
        ipsms ends every command the same way instead, wherever the output came from: the
        error travels up to the CLI's error boundary, which ends quietly."""
        self.quiet = True
        raise BrokenPipeError(errno.EPIPE, "the reader of the output went away")


def make_console(file: TextIO, *, terminal: bool, width: int | None = None) -> Console:
    return _Console(file=file, force_terminal=terminal, width=width, highlight=False)
