"""The webhook lease of ``listen --set-webhook``: written before a number's webhook is pointed
at the listener, removed once it is put back.

A listener that dies without putting the webhook back (``kill -9``, a crash, a power cut)
leaves its lease: the next ``listen --set-webhook`` names it as stale, and
``ipsms set-webhook --restore TN`` still knows what to put back (the history records every
change ipsms made, the lease says which ones are outstanding).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ipsms.errors import NotFoundError, StateError
from ipsms.home import state_home
from ipsms.intelepeer.credentials import AuthSource, read_json, write_private_json
from ipsms.intelepeer.settings import ApiSettings
from ipsms.intelepeer.webhooks import (
    ChangeResult,
    WebhookChange,
    WebhookHistory,
    apply_change,
    plan_restore,
    plan_set,
)
from ipsms.redact import mask_url

LEASE_FILE = "webhook-leases.json"


@dataclass(frozen=True)
class Lease:
    pid: int  # the listener holding it
    numbers: tuple[str, ...]
    url: str  # what the numbers point at while it is held (credentials masked)
    api: str  # the API base the change went through
    created: float
    restore_to: str | None = None  # put this back on exit instead of the previous URL
    keep: bool = False  # leave the new URL in place on exit

    @property
    def alive(self) -> bool:
        """Whether the process that holds it still runs."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # somebody else's process: running
            return True
        return True


class Leases:
    """The lease file (default: ``webhook-leases.json`` in the state home)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else state_home() / LEASE_FILE

    def all(self) -> list[Lease]:
        data = read_json(self.path)
        if data is None:
            return []
        try:
            return [
                Lease(
                    int(d["pid"]),
                    tuple(str(n) for n in d["numbers"]),
                    str(d["url"]),
                    str(d["api"]),
                    float(d["created"]),
                    d.get("restore_to"),
                    bool(d.get("keep", False)),
                )
                for d in data["leases"]
            ]
        except (KeyError, TypeError, ValueError):
            raise StateError(
                f"{self.path} is not a webhook lease file",
                hint="move it away; ipsms starts a new one",
            ) from None

    def stale(self) -> list[Lease]:
        """Leases whose listener is gone without putting the webhook back."""
        return [lease for lease in self.all() if not lease.alive]

    def take(self, lease: Lease) -> None:
        """Write ``lease`` down: before anything is changed."""
        self._write([*(x for x in self.all() if x.pid != lease.pid), lease])

    def release(self, pid: int, numbers: tuple[str, ...] | None = None) -> None:
        """Forget the lease of ``pid`` (only ``numbers`` of it, when given)."""
        kept: list[Lease] = []
        for lease in self.all():
            if lease.pid == pid:
                left = (
                    () if numbers is None else tuple(n for n in lease.numbers if n not in numbers)
                )
                if left:
                    kept.append(
                        Lease(
                            lease.pid,
                            left,
                            lease.url,
                            lease.api,
                            lease.created,
                            lease.restore_to,
                            lease.keep,
                        )
                    )
                continue
            kept.append(lease)
        self._write(kept)

    def release_numbers(self, numbers: tuple[str, ...]) -> None:
        """``set-webhook --restore`` put these numbers back: no lease holds them any more."""
        for lease in self.all():
            if set(lease.numbers) & set(numbers):
                self.release(lease.pid, numbers)

    def _write(self, leases: list[Lease]) -> None:
        if not leases and not self.path.exists():
            return
        write_private_json(
            self.path,
            {
                "version": 1,
                "leases": [{**asdict(lease), "numbers": list(lease.numbers)} for lease in leases],
            },
        )


def new_lease(
    numbers: tuple[str, ...], url: str, api: str, *, restore_to: str | None, keep: bool
) -> Lease:
    return Lease(os.getpid(), numbers, url, api, time.time(), restore_to, keep)


class WebhookLease:
    """Points ``numbers`` at ``url`` for as long as a listener runs, and puts them back.

    ``take`` writes the lease, then sets the webhooks; ``give_back`` restores (the URL each
    number had before, as the history knows it, or ``restore_to``), or leaves them (``keep``),
    then releases the lease. Both return what changed; the history records every change."""

    def __init__(
        self,
        settings: ApiSettings,
        auth: AuthSource,
        numbers: tuple[str, ...],
        url: str,
        *,
        restore_to: str | None = None,
        keep: bool = False,
        trusted_url: bool = False,
        leases: Leases | None = None,
        history: WebhookHistory | None = None,
    ) -> None:
        self.settings = settings
        self.auth = auth
        self.numbers = numbers
        self.url = url
        self.restore_to = restore_to
        self.keep = keep
        self.trusted_url = trusted_url  # a tunnel's URL: public by definition, not checked
        self.leases = leases or Leases()
        self.history = history or WebhookHistory()
        self.held: tuple[str, ...] = ()  # numbers pointed at url, not put back yet

    def unknown_previous(self) -> list[str]:
        """Numbers whose current webhook ipsms does not know (IntelePeer's API cannot read
        it): without ``restore_to`` they cannot be put back."""
        api = self.settings.base_url
        return [n for n in self.numbers if self.history.known_url(n, api) is None]

    async def take(self) -> list[ChangeResult]:
        change = plan_set(self.numbers, self.url, force=self.trusted_url)
        self.leases.take(
            new_lease(
                self.numbers,
                mask_url(self.url),
                self.settings.base_url,
                restore_to=self.restore_to,
                keep=self.keep,
            )
        )
        results = await self._apply([change])
        self.held = tuple(r.number for r in results if r.ok)
        if not self.held:
            self.leases.release(os.getpid())
        return results

    async def give_back(self) -> tuple[list[ChangeResult], list[str]]:
        """What was restored, and a warning for each number that could not be."""
        if not self.held:
            return [], []
        if self.keep:
            self.leases.release(os.getpid())
            return [], []
        warnings: list[str] = []
        unknown: list[str] = []  # nothing to put back: released, with a warning
        changes: list[WebhookChange] = []
        if self.restore_to is not None:
            changes.append(WebhookChange(self.held, self.restore_to, "restore"))
        else:
            for number in self.held:
                try:
                    changes += plan_restore([number], self.history, self.settings.base_url)
                except NotFoundError as exc:
                    unknown.append(number)
                    warnings.append(f"{number} still points at {mask_url(self.url)}: {exc}")
        results = await self._apply(changes) if changes else []
        restored = tuple(r.number for r in results if r.ok)
        self.leases.release(os.getpid(), restored + tuple(unknown))
        self.held = tuple(n for n in self.held if n not in restored and n not in unknown)
        return results, warnings

    async def _apply(self, changes: list[WebhookChange]) -> list[ChangeResult]:
        from ipsms.intelepeer.client import IntelePeerClient
        from ipsms.intelepeer.credentials import CredentialStore

        results: list[ChangeResult] = []
        async with IntelePeerClient(self.settings, self.auth, store=CredentialStore()) as client:
            for change in changes:
                results.extend(await apply_change(change, client, self.history))
        return results
