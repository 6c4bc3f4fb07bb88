"""A real ``ipsms`` listener on a free loopback port, keeping every request it received so a test
can wait for a message and assert on it (by refid, number, text, signature verdict, attempt).

It is the listener ``ipsms listen`` runs (same parsing, verification, store and answers), on an
event loop in a background thread. Waits poll what arrived; a wait that times out fails with
the list of what was received instead, and why each one did not match.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ipsms.listen.app import ListenConfig
from ipsms.listen.events import ListenEvent, RejectedEvent
from ipsms.listen.server import ListenServer
from ipsms.request import Request
from ipsms.testing.loop import LoopThread, refuse_inside_loop
from ipsms.text import printable

DEFAULT_WAIT = 5.0  # seconds a wait gives a message to arrive
POLL = 0.005  # seconds between looks at what arrived, in async waits
SHOWN = 20  # received requests listed in a failure message


@dataclass(frozen=True)
class Criteria:
    """What a test is waiting for; a field left None matches anything. ``text`` is the exact
    message text, or a compiled pattern searched in it."""

    refid: str | None = None
    from_: str | None = None
    to: str | None = None
    text: str | re.Pattern[str] | None = None
    verdict: str | None = None  # valid / invalid / missing / unchecked
    attempt: int | None = None  # 1 for the first delivery of a refid, 2 for its first retry...
    status: int | None = None  # the HTTP status the listener answered

    def mismatches(self, request: Request) -> list[str]:
        """Why ``request`` does not match, one phrase per field: empty when it does."""
        got: dict[str, Any] = {
            "refid": request.refid,
            "from_": request.from_number,
            "to": request.to_number,
            "text": request.message,
            "verdict": request.verdict,
            "attempt": request.attempt,
            "status": request.status,
        }
        wrong = []
        for item in fields(self):
            wanted = getattr(self, item.name)
            value = got[item.name]
            if wanted is None:
                continue
            if isinstance(wanted, re.Pattern):
                ok = isinstance(value, str) and wanted.search(value) is not None
                shown = f"/{wanted.pattern}/"
            else:
                ok = value == wanted
                shown = repr(str(wanted) if isinstance(wanted, str) else wanted)
            if not ok:
                wrong.append(f"{item.name} {_short(value)} (wanted {shown})")
        return wrong

    def matches(self, request: Request) -> bool:
        return not self.mismatches(request)

    def describe(self) -> str:
        parts = []
        for item in fields(self):
            value = getattr(self, item.name)
            if value is not None:
                shown = (
                    f"/{value.pattern}/"
                    if isinstance(value, re.Pattern)
                    else repr(str(value) if isinstance(value, str) else value)
                )
                parts.append(f"{item.name}={shown}")
        return ", ".join(parts) or "any request"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return printable(text if len(text) <= limit else text[: limit - 1] + "…")


def describe_request(request: Request) -> str:
    """One line a person can read: the fields a test asserts on."""
    if request.refid is None:
        what = f"{request.method} {_short(request.path)} ({request.error or 'not a message'})"
    else:
        what = (
            f"refid {request.refid} attempt {request.attempt} from {request.from_number} "
            f"to {request.to_number} text {_short(request.message)}"
        )
    return f"{what}, verdict {request.verdict}, answered {request.status}"


class RunningListener:
    """The listener, started. ``url`` is where to post; ``requests`` every request it read (a
    message with a bad signature too: it is answered 403 and kept); ``messages`` those that
    were IntelePeer messages; ``rejected`` connections turned away before they were a request.

    Sync waits (``wait_for``) are for plain tests; from an async test use ``wait_for_async``,
    which does not block the test's event loop.
    """

    def __init__(
        self, db: Path, config: ListenConfig | None = None, host: str = "127.0.0.1"
    ) -> None:
        self.config = config if config is not None else ListenConfig()
        self._events: list[ListenEvent] = []
        self._changed = threading.Condition()
        self._loop = LoopThread("ipsms-listener")
        try:
            self._server = self._loop.run(self._start(db, host))
        except BaseException:
            self._loop.close()
            raise
        self._closed = False
        assert self._server.bound is not None
        self.port = self._server.bound.port
        self.url = self._server.bound.url

    async def _start(self, db: Path, host: str) -> ListenServer:
        server = ListenServer(self.config, db, host, 0, sinks=[self._received])
        await server.start()
        return server

    def _received(self, event: ListenEvent) -> None:  # runs on the listener's thread
        with self._changed:
            self._events.append(event)
            self._changed.notify_all()

    def close(self) -> None:
        """Stop: requests in flight finish, the store is closed. Closing twice is harmless
        (a test may stop it early to see how the app copes with a dead URL)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._loop.run(self._server.stop())
        finally:
            self._loop.close()

    def __enter__(self) -> RunningListener:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- what arrived -------------------------------------------------------------------

    @property
    def events(self) -> list[ListenEvent]:
        with self._changed:
            return list(self._events)

    @property
    def requests(self) -> list[Request]:
        return [e for e in self.events if isinstance(e, Request)]

    @property
    def messages(self) -> list[Request]:
        """Requests that were IntelePeer messages (they had a refid), whatever the answer."""
        return [r for r in self.requests if r.refid is not None]

    @property
    def rejected(self) -> list[RejectedEvent]:
        return [e for e in self.events if isinstance(e, RejectedEvent)]

    def clear(self) -> None:
        """Forget what was received so far (the store keeps it)."""
        with self._changed:
            self._events.clear()

    def matching(
        self,
        refid: str | None = None,
        *,
        from_: str | None = None,
        to: str | None = None,
        text: str | re.Pattern[str] | None = None,
        verdict: str | None = None,
        attempt: int | None = None,
        status: int | None = None,
    ) -> list[Request]:
        """The requests received so far that match, oldest first (no waiting)."""
        criteria = Criteria(refid, from_, to, text, verdict, attempt, status)
        return [r for r in self.requests if criteria.matches(r)]

    # -- waiting ------------------------------------------------------------------------

    def wait_for(
        self,
        refid: str | None = None,
        *,
        from_: str | None = None,
        to: str | None = None,
        text: str | re.Pattern[str] | None = None,
        verdict: str | None = None,
        attempt: int | None = None,
        status: int | None = None,
        timeout: float = DEFAULT_WAIT,
    ) -> Request:
        """The first request that matches, waiting up to ``timeout`` seconds for it."""
        __tracebackhide__ = True
        criteria = Criteria(refid, from_, to, text, verdict, attempt, status)
        return self._wait(criteria, 1, timeout)[0]

    def wait_for_many(
        self,
        count: int,
        refid: str | None = None,
        *,
        from_: str | None = None,
        to: str | None = None,
        text: str | re.Pattern[str] | None = None,
        verdict: str | None = None,
        attempt: int | None = None,
        status: int | None = None,
        timeout: float = DEFAULT_WAIT,
    ) -> list[Request]:
        """The first ``count`` requests that match (e.g. every attempt of a refid)."""
        __tracebackhide__ = True
        criteria = Criteria(refid, from_, to, text, verdict, attempt, status)
        return self._wait(criteria, count, timeout)

    async def wait_for_async(
        self,
        refid: str | None = None,
        *,
        from_: str | None = None,
        to: str | None = None,
        text: str | re.Pattern[str] | None = None,
        verdict: str | None = None,
        attempt: int | None = None,
        status: int | None = None,
        timeout: float = DEFAULT_WAIT,
    ) -> Request:
        """``wait_for`` for async tests."""
        __tracebackhide__ = True
        criteria = Criteria(refid, from_, to, text, verdict, attempt, status)
        return (await self._wait_async(criteria, 1, timeout))[0]

    async def wait_for_many_async(
        self,
        count: int,
        refid: str | None = None,
        *,
        from_: str | None = None,
        to: str | None = None,
        text: str | re.Pattern[str] | None = None,
        verdict: str | None = None,
        attempt: int | None = None,
        status: int | None = None,
        timeout: float = DEFAULT_WAIT,
    ) -> list[Request]:
        """``wait_for_many`` for async tests."""
        __tracebackhide__ = True
        criteria = Criteria(refid, from_, to, text, verdict, attempt, status)
        return await self._wait_async(criteria, count, timeout)

    def _wait(self, criteria: Criteria, count: int, timeout: float) -> list[Request]:
        __tracebackhide__ = True
        refuse_inside_loop("listener.wait_for_async(...)")
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [e for e in self._events if isinstance(e, Request) and criteria.matches(e)]
                left = deadline - time.monotonic()
                if len(found) >= count or left <= 0:
                    break
                self._changed.wait(left)
        if len(found) < count:
            raise AssertionError(self._missing(criteria, count, len(found), timeout))
        return found[:count]

    async def _wait_async(self, criteria: Criteria, count: int, timeout: float) -> list[Request]:
        __tracebackhide__ = True
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.requests if criteria.matches(r)]
            if len(found) >= count or time.monotonic() >= deadline:
                break
            await asyncio.sleep(POLL)
        if len(found) < count:
            raise AssertionError(self._missing(criteria, count, len(found), timeout))
        return found[:count]

    # -- asserting ----------------------------------------------------------------------

    def assert_received(
        self,
        refid: str | None = None,
        *,
        from_: str | None = None,
        to: str | None = None,
        text: str | re.Pattern[str] | None = None,
        verdict: str | None = None,
        attempt: int | None = None,
        status: int | None = None,
        count: int | None = None,
    ) -> list[Request]:
        """The matching requests received so far; fails unless there is at least one (or
        exactly ``count``). Does not wait: after your code returned, use ``wait_for``."""
        __tracebackhide__ = True
        criteria = Criteria(refid, from_, to, text, verdict, attempt, status)
        found = [r for r in self.requests if criteria.matches(r)]
        if (count is None and not found) or (count is not None and len(found) != count):
            raise AssertionError(
                self._missing(criteria, count or 1, len(found), None, exactly=count is not None)
            )
        return found

    def assert_not_received(
        self,
        refid: str | None = None,
        *,
        from_: str | None = None,
        to: str | None = None,
        text: str | re.Pattern[str] | None = None,
        verdict: str | None = None,
        attempt: int | None = None,
        status: int | None = None,
        within: float = 0.0,
    ) -> None:
        """Fails if a matching request arrived, or arrives within ``within`` seconds."""
        __tracebackhide__ = True
        criteria = Criteria(refid, from_, to, text, verdict, attempt, status)
        if within > 0:
            refuse_inside_loop("asyncio.sleep(...) then listener.assert_not_received(...)")
            deadline = time.monotonic() + within
            with self._changed:
                while not any(isinstance(e, Request) and criteria.matches(e) for e in self._events):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._changed.wait(left)
        found = [r for r in self.requests if criteria.matches(r)]
        if found:
            lines = "\n".join(f"  {describe_request(r)}" for r in found[:SHOWN])
            raise AssertionError(
                f"expected no request matching {criteria.describe()}, "
                f"received {len(found)}:\n{lines}"
            )

    def _missing(
        self,
        criteria: Criteria,
        count: int,
        found: int,
        timeout: float | None,
        *,
        exactly: bool = False,
    ) -> str:
        when = "" if timeout is None else f" within {timeout:g} s"
        wanted = f"exactly {count}" if exactly else (f"{count}" if count > 1 else "a")
        head = (
            f"expected {wanted} request{'s' if count > 1 or exactly else ''} matching "
            f"{criteria.describe()}{when}; {found} matched"
        )
        return head + "\n" + self._received_report(criteria)

    def _received_report(self, criteria: Criteria) -> str:
        events = self.events
        if not events:
            return f"the listener at {self.url} received nothing"
        lines = [f"the listener at {self.url} received {len(events)}:"]
        for event in events[:SHOWN]:
            if isinstance(event, RejectedEvent):
                lines.append(f"  rejected before it was a request: {event.status} {event.reason}")
                continue
            wrong = criteria.mismatches(event)
            note = f"  <- {'; '.join(wrong)}" if wrong else "  <- matches"
            lines.append(f"  {describe_request(event)}{note}")
        if len(events) > SHOWN:
            lines.append(f"  ... and {len(events) - SHOWN} more")
        return "\n".join(lines)


def listen_config(options: dict[str, Any] | ListenConfig) -> ListenConfig:
    """A ``ListenConfig`` from keyword options (its field names), or the config itself."""
    if isinstance(options, ListenConfig):
        return options
    known = {f.name for f in fields(ListenConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown listener option {unknown[0]!r}: use {', '.join(sorted(known))}")
    return ListenConfig(**options)
