"""The IntelePeer configuration API emulator (``ipsms api-emulator``) on a free loopback port,
for testing code that authenticates, sets webhooks or provisions numbers.

It starts with the demo account (user ``demo``, password ``demo-password``, the numbers of
docs/api-emulator.md) unless given a state. Every API call is recorded exactly (``calls``);
the account (``numbers``, ``webhooks``) shows what the calls changed. Change the state
between requests only: the emulator answers on its own thread.
"""

from __future__ import annotations

from typing import Any

from ipsms.intelepeer.client import AUTH_PATH, PROVISION_PATH, WEBHOOK_PATH
from ipsms.intelepeer.emulator import (
    DEMO_PASSWORD,
    DEMO_USER,
    MDR_PATH,
    SEND_PATH,
    EmulatedNumber,
    EmulatorState,
    EmulatorThread,
    Fault,
    RecordedRequest,
    SentMessage,
    build_state,
)


class RunningEmulator:
    """The emulator, started. ``api_base``/``auth_url`` are what to point a client at;
    ``username``/``password`` the demo credentials (or set your own users on ``state``)."""

    AUTH_PATH = AUTH_PATH
    WEBHOOK_PATH = WEBHOOK_PATH
    PROVISION_PATH = PROVISION_PATH
    SEND_PATH = SEND_PATH
    MDR_PATH = MDR_PATH

    def __init__(self, state: EmulatorState | None = None) -> None:
        self.state = state if state is not None else build_state()
        self.username = DEMO_USER
        self.password = DEMO_PASSWORD
        self._thread = EmulatorThread(self.state).__enter__()
        self.api_base = self._thread.api_base
        self.auth_url = self._thread.auth_url

    def close(self) -> None:
        self._thread.__exit__(None, None, None)

    def __enter__(self) -> RunningEmulator:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def webhook_url(self) -> str:
        """Where set-webhook requests go."""
        return self.api_base + WEBHOOK_PATH

    @property
    def provision_url(self) -> str:
        return self.api_base + PROVISION_PATH

    @property
    def env(self) -> dict[str, str]:
        """Environment variables that point ``ipsms`` (the CLI) at this emulator, logged in."""
        return {
            "IPSMS_API_BASE": self.api_base,
            "IPSMS_AUTH_URL": self.auth_url,
            "IPSMS_USERNAME": self.username,
            "IPSMS_PASSWORD": self.password,
        }

    # -- the record ---------------------------------------------------------------------

    @property
    def calls(self) -> list[RecordedRequest]:
        """Every API request received, oldest first: method, path, headers, text, parsed
        ``json`` and the status answered (``header(name)`` reads one header)."""
        return list(self.state.requests)

    def calls_to(self, path: str) -> list[RecordedRequest]:
        """The calls to one API path, e.g. ``emulator.WEBHOOK_PATH``."""
        return self.state.requests_to(path)

    def clear_calls(self) -> None:
        self.state.clear_requests()

    @property
    def sent(self) -> list[SentMessage]:
        """Every message an app sent through the send API, oldest first (``from_number``,
        ``to_number``, ``text``, ``refid``...)."""
        return list(self.state.sent)

    def sent_to(self, number: str) -> list[SentMessage]:
        """The messages sent to ``number``: an app's replies to a delivery from it."""
        return self.state.sent_to(number)

    # -- the account --------------------------------------------------------------------

    @property
    def numbers(self) -> dict[str, EmulatedNumber]:
        """The account's numbers (``sms_enabled``, ``webhook``, provisioning)."""
        return {n: e for n in list(self.state.numbers) if (e := self.state.number(n)) is not None}

    @property
    def webhooks(self) -> dict[str, str]:
        """The webhook URL set on each number that has one."""
        return {n: e.webhook for n, e in self.numbers.items() if e.webhook is not None}

    def add_number(
        self, number: str, *, sms_enabled: bool = True, webhook: str | None = None
    ) -> EmulatedNumber:
        return self.state.add_number(number, sms_enabled=sms_enabled, webhook=webhook)

    def fail_next(
        self,
        status: int = 503,
        *,
        path: str | None = None,
        times: int = 1,
        delay: float = 0.0,
        **fault: Any,
    ) -> None:
        """Answer the next ``times`` API requests (to ``path``, or any) with ``status``; a
        ``delay`` in seconds tests a client's timeout. ``body``/``content_type`` as ``Fault``."""
        self.state.inject_fault(Fault(status=status, path=path, times=times, delay=delay, **fault))

    def expire_tokens(self) -> int:
        """Every token issued so far stops working, as after 24 hours."""
        return self.state.expire_tokens()
