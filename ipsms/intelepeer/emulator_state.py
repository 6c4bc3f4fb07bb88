"""The emulator's model: the account it emulates (users, numbers, tokens), the record of
every request it received, and the faults a test has asked for. ``ipsms.intelepeer.emulator`` serves
it over HTTP; tests change it between requests.

A ``Fault`` is checked when it is made, not when it is answered: a status outside 100-599, a
delay that is not a finite number of seconds from 0 to 60, a content type that cannot be a
header, or text that is not Unicode is a ``ValueError`` at once, and the control endpoint
answers 400, so a bad fault never turns a later answer into a 500 or an endless wait.
"""

from __future__ import annotations

import math
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ipsms import defaults
from ipsms.intelepeer.settings import MultiStatus
from ipsms.redact import MASK, mask_headers, mask_url

TOKEN_LIFETIME = defaults.EMULATOR_TOKEN_LIFETIME
PROVISION_SECONDS = defaults.EMULATOR_PROVISION_SECONDS
MAX_FAULT_DELAY = 60.0
MAX_FAULT_TIMES = 10_000
# type/subtype with optional parameters, printable ASCII only: it becomes a header line
_CONTENT_TYPE = re.compile(
    r"[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+"
    r"(\s*;[ -~]*)?"
)
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass
class EmulatedNumber:
    number: str
    sms_enabled: bool = True
    webhook: str | None = None
    provisioning_until: float | None = None  # SMS provisioning in progress until this time


@dataclass(frozen=True)
class RecordedRequest:
    """One API request exactly as received, and the status the emulator answered."""

    time: float
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    text: str
    json: Any  # the parsed body; None when it is not JSON
    status: int

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def to_dict(self) -> dict[str, Any]:
        """The masked view served by ``GET /_emulator/requests``."""
        body = self.json
        if isinstance(body, dict):
            body = dict(body)
            if "password" in body:
                body["password"] = MASK
            if isinstance(body.get("webhook"), str):
                body["webhook"] = mask_url(body["webhook"])
        return {
            "time": self.time,
            "method": self.method,
            "path": _unicode(self.path),
            "headers": {_unicode(k): _unicode(v) for k, v in mask_headers(self.headers)},
            "json": body,
            "status": self.status,
        }


def _unicode(text: str) -> str:
    """aiohttp keeps header bytes that are not UTF-8 as lone surrogates (surrogateescape);
    the view shows them as U+FFFD, so it stays valid Unicode for any JSON reader."""
    return _SURROGATE.sub("\ufffd", text)


@dataclass(frozen=True)
class SentMessage:
    """A message an app sent through the emulated send API (intelepeer.md 2.5)."""

    refid: str
    time: float
    from_number: str
    to_number: str
    text: str
    guid: str | None = None
    dlr: bool = False
    media: tuple[str, ...] = ()
    status: str = "DLR:Delivered"  # the MDR's RCC_en: the emulator delivers at once

    def to_dict(self) -> dict[str, Any]:
        """The view of ``GET /_emulator/sent`` and of the MDR call."""
        return {
            "refid": self.refid,
            "time": self.time,
            "from": self.from_number,
            "to": self.to_number,
            "text": self.text,
            "guid": self.guid,
            "dlr": self.dlr,
            "media": list(self.media),
            "RCC_en": self.status,
        }


@dataclass(frozen=True)
class Fault:
    """A canned answer for the next ``times`` API requests (to ``path``, or any)."""

    status: int = 503
    body: str = "<html><body>Service Unavailable</body></html>"
    content_type: str = "text/html"
    path: str | None = None
    times: int = 1
    delay: float = 0.0  # seconds to wait before answering (client timeouts)

    def __post_init__(self) -> None:
        problem = fault_problem(self)
        if problem:
            raise ValueError(problem)


def fault_problem(fault: Fault) -> str | None:
    """What makes ``fault`` unusable, or None."""
    status, delay, times = fault.status, fault.delay, fault.times
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        return "status must be an HTTP status from 100 to 599"
    if (
        not isinstance(delay, int | float)
        or isinstance(delay, bool)
        or not math.isfinite(delay)
        or not 0 <= delay <= MAX_FAULT_DELAY
    ):
        return f"delay must be a number of seconds from 0 to {MAX_FAULT_DELAY:g}"
    if not isinstance(times, int) or isinstance(times, bool) or not 1 <= times <= MAX_FAULT_TIMES:
        return f"times must be a whole number from 1 to {MAX_FAULT_TIMES}"
    if not isinstance(fault.body, str) or _SURROGATE.search(fault.body):
        return "body must be a string of Unicode text"
    if not isinstance(fault.content_type, str) or not _CONTENT_TYPE.fullmatch(fault.content_type):
        return "content_type must be a media type such as text/html or application/json"
    if fault.path is not None and (
        not isinstance(fault.path, str)
        or not fault.path.startswith("/")
        or not fault.path.isprintable()
        or not fault.path.isascii()
    ):
        return "path must be an absolute path such as /_rest/v4/authenticate"
    return None


@dataclass
class EmulatorState:
    """Everything the emulator knows. Tests change it between requests."""

    users: dict[str, str] = field(default_factory=dict)
    numbers: dict[str, EmulatedNumber] = field(default_factory=dict)
    token_lifetime: float = TOKEN_LIFETIME
    provision_seconds: float = PROVISION_SECONDS
    multi_status: MultiStatus = MultiStatus.always
    clock: Callable[[], float] = time.time
    requests: list[RecordedRequest] = field(default_factory=list)
    tokens: dict[str, tuple[str, float]] = field(default_factory=dict)  # token -> user, expiry
    faults: list[Fault] = field(default_factory=list)
    observers: list[Callable[[RecordedRequest], None]] = field(default_factory=list)
    sent: list[SentMessage] = field(default_factory=list)  # the send API's messages, in order

    # -- set-up ---------------------------------------------------------------------------

    def add_user(self, username: str, password: str) -> None:
        self.users[username] = password

    def add_number(
        self,
        number: str,
        *,
        sms_enabled: bool = True,
        webhook: str | None = None,
        provisioning: bool = False,
    ) -> EmulatedNumber:
        until = self.clock() + self.provision_seconds if provisioning else None
        entry = EmulatedNumber(number, sms_enabled and not provisioning, webhook, until)
        self.numbers[number] = entry
        return entry

    def number(self, number: str) -> EmulatedNumber | None:
        entry = self.numbers.get(number)
        if (
            entry is not None
            and entry.provisioning_until is not None
            and self.clock() >= entry.provisioning_until
        ):
            entry.provisioning_until, entry.sms_enabled = None, True
        return entry

    def inject_fault(self, fault: Fault) -> None:
        self.faults.append(fault)

    # -- tokens ---------------------------------------------------------------------------

    def issue_token(self, username: str) -> str:
        token = "emu-" + secrets.token_urlsafe(24)
        self.tokens[token] = (username, self.clock() + self.token_lifetime)
        return token

    def token_user(self, token: str) -> str | None:
        entry = self.tokens.get(token)
        if entry is None:
            return None
        if self.clock() >= entry[1]:
            del self.tokens[token]
            return None
        return entry[0]

    def expire_tokens(self) -> int:
        """Every token issued so far stops working (as after 24 hours)."""
        count = len(self.tokens)
        self.tokens.clear()
        return count

    def revoke_token(self, token: str) -> bool:
        return self.tokens.pop(token, None) is not None

    def finish_provisioning(self) -> int:
        """Complete every provisioning in progress now."""
        done = [n for n in self.numbers.values() if n.provisioning_until is not None]
        for entry in done:
            entry.provisioning_until, entry.sms_enabled = None, True
        return len(done)

    # -- the record -----------------------------------------------------------------------

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.split("?")[0] == path]

    def clear_requests(self) -> int:
        count = len(self.requests)
        self.requests.clear()
        return count

    def record_sent(self, message: SentMessage) -> None:
        self.sent.append(message)

    def sent_to(self, number: str) -> list[SentMessage]:
        """The messages sent to ``number``: the replies to a delivery from it."""
        return [m for m in self.sent if m.to_number == number]

    def sent_message(self, refid: str) -> SentMessage | None:
        return next((m for m in self.sent if m.refid == refid), None)

    def clear_sent(self) -> int:
        count = len(self.sent)
        self.sent.clear()
        return count

    def take_fault(self, path: str) -> Fault | None:
        for index, fault in enumerate(self.faults):
            if fault.path in (None, path):
                if fault.times <= 1:
                    del self.faults[index]
                else:
                    self.faults[index] = replace(fault, times=fault.times - 1)
                return fault
        return None
