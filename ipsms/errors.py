"""One error hierarchy for ipsms, with one documented exit code per kind.

The CLI turns any ``IpsmsError`` into a single ``ipsms: error: ...`` line on stderr and exits
with the error's code; the core only raises. The README's exit-code table mirrors ``ExitCode``.

The core knows no command-line flag. When an error is about a setting (the retry schedule, the
authenticate URL), its text names the setting with ``setting("auth_url")``; the CLI words that
as its flag (``--auth-url``), a library user sees the setting's name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import IntEnum

_SETTING_RE = re.compile("\u27e8([a-z_]+)\u27e9")


def setting(name: str) -> str:
    """A setting named inside an error's message or hint, for the CLI to word as its flag."""
    return f"\u27e8{name}\u27e9"


def word_settings(text: str, word: Callable[[str], str]) -> str:
    return _SETTING_RE.sub(lambda m: word(m.group(1)), text)


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1  # a bug in ipsms: rerun with --debug and report it
    USAGE = 2  # bad option, argument or input value (phone number, URL, payload)
    STATE = 3  # state home or database cannot be created, opened or written
    NETWORK = 4  # cannot bind a port, or cannot reach a server
    NOT_DELIVERED = 5  # simulate/replay: at least one message was not delivered
    SIGNATURE_INVALID = 6  # verify: the signature does not match
    API = 7  # IntelePeer's API refused the request
    AUTH = 8  # missing or wrong credentials
    TUNNEL = 9  # the ngrok agent is missing, refused or failed
    NOT_FOUND = 10  # no such recorded message / number / history entry
    CHECK_FAILED = 11  # check: at least one check of the card failed
    INTERRUPTED = 130  # stopped by Ctrl-C before finishing (except listen, which exits 0)


class IpsmsError(Exception):
    """Base class: ``message`` says what was wrong, ``hint`` what to do about it."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.worded(str)

    def worded(self, word: Callable[[str], str]) -> str:
        """The message and hint, each setting they name worded by ``word``."""
        text = f"{self.message}; {self.hint}" if self.hint else self.message
        return word_settings(text, word)

    @property
    def settings(self) -> tuple[str, ...]:
        """The settings the message and hint name, in order."""
        return tuple(_SETTING_RE.findall(f"{self.message} {self.hint or ''}"))


class UsageError(IpsmsError):
    exit_code = ExitCode.USAGE


class StateError(IpsmsError):
    exit_code = ExitCode.STATE


class NetworkError(IpsmsError):
    exit_code = ExitCode.NETWORK


class BindError(NetworkError):
    """The listener could not bind its host and port."""


class NotDeliveredError(IpsmsError):
    exit_code = ExitCode.NOT_DELIVERED


class SignatureInvalidError(IpsmsError):
    exit_code = ExitCode.SIGNATURE_INVALID


class ApiError(IpsmsError):
    exit_code = ExitCode.API


class AuthError(IpsmsError):
    exit_code = ExitCode.AUTH


class TunnelError(IpsmsError):
    exit_code = ExitCode.TUNNEL


class NotFoundError(IpsmsError):
    exit_code = ExitCode.NOT_FOUND


class CheckFailedError(IpsmsError):
    exit_code = ExitCode.CHECK_FAILED


class StoppedError(IpsmsError):
    """Stopped by the user before it finished (``listen``: a third Ctrl-C while it was still
    putting a webhook back)."""

    exit_code = ExitCode.INTERRUPTED
