"""The process's streams, terminal and environment variables, as one object every command uses.

Like httpie's ``Environment``: the real process gets one built from ``sys`` and ``os``; a test
builds its own (in-memory streams, chosen ``isatty`` flags, a terminal width, variables) and
runs a command in-process with ``ipsms.cli.app.run``. Commands never touch ``sys.stdout`` or
``os.environ`` directly: they ask ``current()``.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO, cast

if TYPE_CHECKING:
    from rich.console import Console


def _isatty(stream: TextIO | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (ValueError, OSError):  # a closed stream
        return False


# Ctrl-C, SIGTERM and SIGHUP (a closed terminal): each ends a long-running command cleanly.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def ignore_stop_signals() -> None:
    """For a process that is ending (the console script only): SIGINT, SIGTERM and SIGHUP do
    nothing more, so a key held down cannot kill it while it reports or exits."""
    env = _CURRENT.get()
    if env is not None and not env.exits_after:
        return
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


@dataclass
class Environment:
    stdin: TextIO
    stdout: TextIO
    stderr: TextIO
    stdin_isatty: bool = False
    stdout_isatty: bool = False
    stderr_isatty: bool = False
    variables: Mapping[str, str] = field(default_factory=dict)
    columns: int | None = None  # terminal width; None: ask the terminal (rich does)
    quiet: bool = False  # --quiet: notices (warnings, banners, progress) are not printed
    debug: bool = False  # --debug / IPSMS_DEBUG=1: tracebacks on errors
    stdout_closed: bool = False  # its reader went away: nothing more is written
    # The process ends with the command (the console script): once a command is ending, its
    # stop signals are ignored (``ignore_stop_signals``), so that one more cannot cut it short.
    exits_after: bool = False

    @classmethod
    def from_process(cls, exits_after: bool = False) -> Environment:
        return cls(
            exits_after=exits_after,
            stdin=sys.stdin,
            stdout=sys.stdout,
            stderr=sys.stderr,
            stdin_isatty=_isatty(sys.stdin),
            stdout_isatty=_isatty(sys.stdout),
            stderr_isatty=_isatty(sys.stderr),
            variables=os.environ,
        )

    def getenv(self, name: str) -> str | None:
        return self.variables.get(name) or None

    def out(self, text: str) -> None:
        """Results on stdout. A lone surrogate (from a server's ``"\\ud800"``) is written as
        its escape, which also stays valid inside JSON. A reader that went away silences the
        rest of the output without ending the command: what it did (a webhook set, a message
        delivered or not) decides its exit code, not who read about it."""
        if self.stdout_closed:
            return
        try:
            self.stdout.write(_encodable(text))
            self.stdout.flush()
        except BrokenPipeError:
            self.silence_stdout()

    def result_stream(self) -> TextIO:
        """stdout as a stream for renderers that write as they go (simulate's attempts), with
        ``out``'s rule: a closed pipe silences it, it does not stop the command."""
        return cast(TextIO, _ResultStream(self))

    def err(self, line: str) -> None:
        """One line of banner, progress, warning or error on stderr."""
        self.stderr.write(_encodable(line) + "\n")
        self.stderr.flush()

    def notice(self, line: str) -> None:
        """A line on stderr that ``--quiet`` hides: a warning, a banner, progress. Errors use
        ``err`` and are never hidden."""
        if not self.quiet:
            self.err(line)

    def read_stdin_bytes(self) -> bytes:
        """All of stdin, as bytes (a body to verify need not be UTF-8)."""
        buffer = getattr(self.stdin, "buffer", None)
        if buffer is not None:
            return bytes(buffer.read())
        return self.stdin.read().encode("utf-8", "surrogateescape")

    def write_lines(self, lines: Iterable[str]) -> bool:
        """Stream result lines to stdout. A reader that went away (``| head -1``) ends the
        stream quietly: returns False, and stdout is pointed at /dev/null so the flush at
        exit does not fail."""
        if self.stdout_closed:
            return False
        try:
            for line in lines:
                self.stdout.write(_encodable(line) + "\n")
            self.stdout.flush()
        except BrokenPipeError:
            self.silence_stdout()
            return False
        return True

    def silence_stdout(self) -> None:
        """The one answer to a reader that went away (``| head -1``): nothing more is written,
        and stdout is pointed at /dev/null so the flush at exit cannot fail either."""
        self.stdout_closed = True
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stdout.fileno())
            os.close(devnull)

    def console(self, *, stderr: bool = False) -> Console:
        """A rich console on stdout (or stderr) that knows whether it is a terminal."""
        from ipsms.ui.console import make_console

        if stderr:
            return make_console(self.stderr, terminal=self.stderr_isatty, width=self.columns)
        return make_console(self.stdout, terminal=self.stdout_isatty, width=self.columns)


class _ResultStream(io.TextIOBase):
    """``Environment.result_stream``: writes through ``Environment.out``'s rule."""

    def __init__(self, env: Environment) -> None:
        self._env = env

    def write(self, text: str) -> int:
        if not self._env.stdout_closed:
            try:
                self._env.stdout.write(_encodable(text))
            except BrokenPipeError:
                self._env.silence_stdout()
        return len(text)

    def flush(self) -> None:
        if not self._env.stdout_closed:
            try:
                self._env.stdout.flush()
            except BrokenPipeError:
                self._env.silence_stdout()

    def isatty(self) -> bool:
        return self._env.stdout_isatty

    def writable(self) -> bool:
        return True


def _encodable(text: str) -> str:
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


_CURRENT: ContextVar[Environment | None] = ContextVar("ipsms_environment", default=None)


def current() -> Environment:
    """The environment of the command being run: a test's, or the process's."""
    return _CURRENT.get() or Environment.from_process()


@contextlib.contextmanager
def using(env: Environment) -> Iterator[Environment]:
    """Run with ``env`` as the process: its streams are also ``sys.std*`` (click writes usage
    errors there) and its variables ``os.environ`` (click reads ``envvar=`` options there)."""
    token = _CURRENT.set(env)
    saved = sys.stdin, sys.stdout, sys.stderr
    saved_vars = None
    if env.variables is not os.environ:
        saved_vars = dict(os.environ)
        wanted = dict(env.variables)
        os.environ.clear()
        os.environ.update(wanted)
    sys.stdin, sys.stdout, sys.stderr = env.stdin, env.stdout, env.stderr
    try:
        yield env
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
        if saved_vars is not None:
            os.environ.clear()
            os.environ.update(saved_vars)
        _CURRENT.reset(token)


def emit(as_json: bool, record: Mapping[str, object], human: str) -> None:
    """One result on stdout: an NDJSON object, or a line for people."""
    from ipsms.text import dumps

    current().out((dumps(dict(record)) if as_json else human) + "\n")
