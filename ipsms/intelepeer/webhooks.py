"""Pointing numbers at a webhook: checks before calling, the change itself, and its history.

IntelePeer has no documented call to read a number's current webhook (intelepeer.md 2.2), so
ipsms keeps a local history of every successful change it made (number, URL set, the URL ipsms
knew before, time, API base). ``restore`` undoes the latest change of a number that has not
been undone yet, like an undo stack. The history file holds URLs with their basic-auth
credentials (needed to put them back), so it is written atomically with mode 0600; every
display masks them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ipsms.errors import NotFoundError, StateError, UsageError, setting
from ipsms.home import ensure_dir, state_home
from ipsms.intelepeer.client import IntelePeerClient
from ipsms.intelepeer.credentials import read_json, write_private_json
from ipsms.numbers import NumberKind, check_number
from ipsms.redact import mask_url
from ipsms.text import iso_time

# Settings named in errors; the CLI words them as its flags.
_FORCE = setting("force")
_HISTORY = setting("history")
_RESTORE = setting("restore")

HISTORY_FILE = "webhook-history.json"
WARNED_FILE = "cpaas-warned.json"
CPAAS_WARNING = (
    "a number enabled for Atmosphere CPaaS stops delivering inbound messages to "
    "CPaaS once a webhook is set"
)
HTTP_WARNING = "the webhook URL uses http: IntelePeer highly recommends https"
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa")


# -- checks before calling ----------------------------------------------------------------


def check_endpoints(numbers: Sequence[str]) -> tuple[str, ...]:
    """Each number must be E.164 or a short code; explain anything else."""
    if not numbers:
        raise UsageError("no number given", hint="usage: ipsms set-webhook TN [TN ...] URL")
    for number in numbers:
        check = check_number(number)
        if check.kind is NumberKind.ALPHANUMERIC:
            raise UsageError(
                f"{check.problem}, so it cannot have an inbound webhook",
                hint="give the long code (+13038675309) or short code (1-1234) "
                "that receives the messages",
            )
        if not check.ok:
            raise UsageError(
                check.problem or f"{number!r} is not a valid number",
                hint="numbers are E.164 (+13038675309) or short codes (1-1234)",
            )
    if len(set(numbers)) != len(numbers):
        raise UsageError("a number is given twice", hint="give each number once")
    return tuple(numbers)


def check_long_code(number: str) -> str:
    """``provision`` takes exactly one E.164 long code."""
    check = check_number(number)
    if check.kind is NumberKind.SHORT_CODE:
        raise UsageError(
            f"{number!r} is a short code: only long codes (E.164) are provisioned through the API",
            hint="ask IntelePeer to enable SMS on a short code",
        )
    if not check.ok:
        raise UsageError(
            check.problem or f"{number!r} is not an E.164 number",
            hint="give one E.164 long code, e.g. +13038675309",
        )
    return number


def _unreachable(host: str) -> str | None:
    """Why IntelePeer cannot reach ``host``, or None when it might. No DNS lookup is made."""
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(_LOCAL_SUFFIXES):
        return f"{host} is a local name"
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return None if "." in name else f"{host} is not a public host name (no domain)"
    if address.is_loopback:
        return f"{host} is a loopback address"
    if address.is_link_local:
        return f"{host} is a link-local address"
    if not address.is_global or address.is_multicast:
        return f"{host} is a private or reserved address"
    return None


def check_webhook_url(url: str, *, force: bool = False) -> list[str]:
    """Refuse what IntelePeer cannot use; return warnings for what it may not like."""
    shown = mask_url(url)
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError as exc:
        raise UsageError(f"the webhook URL {shown!r} cannot be read: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"the webhook URL {shown!r} is not an absolute http(s) URL",
            hint="e.g. https://example.com/sms",
        )
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise UsageError(f"the webhook URL {shown!r} contains spaces or control characters")
    warnings = [HTTP_WARNING] if parts.scheme == "http" else []
    problem = _unreachable(parts.hostname)
    if problem and not force:
        raise UsageError(
            f"IntelePeer cannot reach {shown}: {problem}",
            hint="use a public URL (e.g. an ngrok tunnel in front of "
            f"`ipsms listen`), or {_FORCE} if you really mean it",
        )
    if problem:
        warnings.append(f"IntelePeer cannot reach {shown} ({problem}); set anyway (forced)")
    return warnings


# -- history ------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryEntry:
    id: int
    number: str
    url: str  # the URL set by this change
    previous: str | None  # the URL ipsms knew the number had before, if any
    time: float
    action: str  # "set" or "restore"
    api: str  # the API base the change went to

    def to_dict(self) -> dict[str, Any]:
        """The masked form, for display and NDJSON."""
        return {
            "type": "webhook_history",
            "id": self.id,
            "number": self.number,
            "url": mask_url(self.url),
            "previous": mask_url(self.previous) if self.previous else None,
            "time": iso_time(self.time),
            "action": self.action,
            "api": self.api,
        }


class WebhookHistory:
    """The history file (default: ``webhook-history.json`` in the state home)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else state_home() / HISTORY_FILE

    def entries(self, numbers: Sequence[str] = ()) -> list[HistoryEntry]:
        data = read_json(self.path)
        if data is None:
            return []
        items = data.get("entries") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise StateError(
                f"{self.path} is not a webhook history", hint="move it away; ipsms starts a new one"
            )
        out = []
        for item in items:
            try:
                out.append(
                    HistoryEntry(
                        int(item["id"]),
                        str(item["number"]),
                        str(item["url"]),
                        None if item.get("previous") is None else str(item["previous"]),
                        float(item["time"]),
                        str(item.get("action", "set")),
                        str(item.get("api", "")),
                    )
                )
            except (KeyError, TypeError, ValueError):
                raise StateError(
                    f"{self.path} has an unreadable entry: {item!r:.80}",
                    hint="fix or move the file away",
                ) from None
        return [e for e in out if not numbers or e.number in numbers]

    def _of(self, number: str, api: str) -> list[HistoryEntry]:
        return [e for e in self.entries((number,)) if e.api == api]

    def known_url(self, number: str, api: str) -> str | None:
        """The URL ipsms last set on ``number`` through ``api``, if any."""
        entries = self._of(number, api)
        return entries[-1].url if entries else None

    def _undoable(self, number: str, api: str) -> list[HistoryEntry]:
        """The changes of ``number`` through ``api`` not undone yet, oldest first."""
        stack: list[HistoryEntry] = []
        for entry in self._of(number, api):
            if entry.action == "restore":
                if stack:
                    stack.pop()
            else:
                stack.append(entry)
        return stack

    def restore_target(self, number: str, api: str) -> HistoryEntry:
        """The latest change of ``number`` through ``api`` not undone yet; its ``previous`` is
        what to set. A change kept under another API base is named, with how to select it:
        the history is per API (the emulator's numbers are not IntelePeer's)."""
        stack = self._undoable(number, api)
        if not stack:
            elsewhere = [
                e for e in self.entries((number,)) if e.api != api and self._undoable(number, e.api)
            ]
            if elsewhere:
                last = elsewhere[-1]
                raise NotFoundError(
                    f"no webhook change of {number} to restore through the API {api}; the "
                    f"history has one through {last.api} (#{last.id}, {iso_time(last.time)})",
                    hint=f"select that API: ipsms set-webhook {_RESTORE} {number} "
                    f"{setting('api_base')} {last.api} (with the {setting('auth_url')} that "
                    "goes with it)",
                )
            raise NotFoundError(
                f"no webhook change of {number} to restore in the history of the API {api}",
                hint=f"`ipsms set-webhook {_HISTORY}` lists what ipsms changed",
            )
        top = stack[-1]
        if top.previous is None:
            raise NotFoundError(
                f"ipsms does not know the webhook {number} had before it set "
                f"{mask_url(top.url)} on {iso_time(top.time)}",
                hint=f"set it yourself: ipsms set-webhook {number} URL",
            )
        return top

    def record(
        self,
        changes: Sequence[tuple[str, str, str | None, str]],
        api: str,
        now: float | None = None,
    ) -> list[HistoryEntry]:
        """Append (number, url, previous, action) changes; returns the new entries."""
        with self._locked():
            entries = self.entries()
            next_id = max((e.id for e in entries), default=0) + 1
            when = time.time() if now is None else now
            new = [
                HistoryEntry(next_id + i, number, url, previous, when, action, api)
                for i, (number, url, previous, action) in enumerate(changes)
            ]
            write_private_json(
                self.path,
                {
                    "version": 1,
                    "entries": [
                        {
                            "id": e.id,
                            "number": e.number,
                            "url": e.url,
                            "previous": e.previous,
                            "time": e.time,
                            "action": e.action,
                            "api": e.api,
                        }
                        for e in entries + new
                    ],
                },
            )
        return new

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise read-modify-write between ipsms processes (POSIX advisory lock)."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: last writer wins
            yield
            return
        ensure_dir(self.path.parent)
        lock = self.path.with_name(self.path.name + ".lock")
        try:
            fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o600)
        except OSError as exc:
            raise StateError(f"cannot open {lock}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


# -- the CPaaS warning, once per API base and account -------------------------------------------


class CpaasWarnings:
    """Which (API base, account) pairs were shown ``CPAAS_WARNING`` (``cpaas-warned.json`` in
    the state home): it matters the first time a webhook is set, and repeated on every call it
    trains people to skip warnings."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else state_home() / WARNED_FILE

    def _shown(self) -> list[list[str]]:
        try:
            data = read_json(self.path)
        except StateError:
            return []  # an unreadable file costs one more warning, nothing else
        items = data.get("shown") if isinstance(data, dict) else None
        return (
            [i for i in items if isinstance(i, list) and len(i) == 2]
            if isinstance(items, list)
            else []
        )

    def due(self, api: str, account: str) -> bool:
        return [api, account] not in self._shown()

    def mark(self, api: str, account: str) -> None:
        """Remember it was shown; a state home that cannot be written only means it is shown
        again next time, so that is not an error."""
        shown = self._shown()
        if [api, account] not in shown:
            with contextlib.suppress(StateError):
                write_private_json(self.path, {"version": 1, "shown": [*shown, [api, account]]})


# -- the change -----------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookChange:
    """Numbers to point at ``url``: what ``--dry-run`` shows and ``apply_change`` sends."""

    numbers: tuple[str, ...]
    url: str
    action: str = "set"  # "restore" puts back a URL from the history
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChangeResult:
    number: str
    url: str
    previous: str | None
    status: int
    reason: str | None
    action: str
    reply_status: int  # the HTTP status of the whole answer: 201, or 207 (multi-status)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "webhook_set",
            "number": self.number,
            "ok": self.ok,
            "status": self.status,
            "reply_status": self.reply_status,
            "reason": self.reason,
            "action": self.action,
            "url": mask_url(self.url),
            "previous": mask_url(self.previous) if self.previous else None,
        }


def plan_set(numbers: Sequence[str], url: str, *, force: bool = False) -> WebhookChange:
    endpoints = check_endpoints(numbers)
    warnings = check_webhook_url(url, force=force)
    return WebhookChange(endpoints, url, "set", tuple(warnings))


def plan_restore(numbers: Sequence[str], history: WebhookHistory, api: str) -> list[WebhookChange]:
    """One change per number, back to the URL its latest change replaced."""
    if not numbers:
        raise UsageError(
            f"{_RESTORE} needs the number to restore",
            hint=f"usage: ipsms set-webhook {_RESTORE} TN",
        )
    changes = []
    for number in check_endpoints(numbers):
        target = history.restore_target(number, api)
        assert target.previous is not None
        changes.append(WebhookChange((number,), target.previous, "restore"))
    return changes


async def apply_change(
    change: WebhookChange, client: IntelePeerClient, history: WebhookHistory
) -> list[ChangeResult]:
    """Send the change; record every number that was updated in the history."""
    api = client.settings.base_url
    previous = {n: history.known_url(n, api) for n in change.numbers}
    reply = await client.set_webhook(change.numbers, change.url)
    results = [
        ChangeResult(
            r.number,
            change.url,
            previous.get(r.number),
            r.status,
            r.reason,
            change.action,
            reply.status,
        )
        for r in reply.results
    ]
    done = [(r.number, r.url, r.previous, r.action) for r in results if r.ok]
    if done:
        try:
            history.record(done, api)
        except StateError as exc:
            raise StateError(
                f"IntelePeer updated {', '.join(d[0] for d in done)}, but the "
                f"history could not be saved: {exc.message}",
                hint=f"{_RESTORE} will not know this change; " + (exc.hint or ""),
            ) from None
    return results
