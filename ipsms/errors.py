"""One error hierarchy for ipsms, with one documented exit code per kind.

The CLI turns any ``IpsmsError`` into a single ``ipsms: error: ...`` line on stderr and exits
with the error's code; the core only raises. The README's exit-code table mirrors ``ExitCode``.
"""

from __future__ import annotations

from enum import IntEnum


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
    TUNNEL = 9  # the ngrok agent is missing or failed
    NOT_FOUND = 10  # no such recorded message / number / history entry
    INTERRUPTED = 130  # stopped by Ctrl-C before finishing (except listen, which exits 0)


class IpsmsError(Exception):
    """Base class: ``message`` says what was wrong, ``hint`` what to do about it."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


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
