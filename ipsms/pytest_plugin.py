"""The ipsms pytest plugin: fixtures for testing an app that receives IntelePeer SMS webhooks.

Registered through the ``pytest11`` entry point, so installing ipsms makes the fixtures
available; without installing, ``-p ipsms.pytest_plugin``. See docs/pytest-plugin.md.

* ``ipsms_listener``: a real ipsms listener on a free loopback port; what it received, waits
  and assertions (``ipsms_listener_config`` configures it, ``ipsms_make_listener`` makes more).
* ``ipsms_deliver``: delivers signed, IntelePeer-shaped messages with IntelePeer's retry rule
  and returns the attempts and the outcome (``fail_first`` included).
* ``ipsms_emulator``: the IntelePeer API emulator, its account and its recorded calls.
* ``ipsms_check``: runs the report card of ``ipsms check`` against an app's URL.
* ``ipsms_secret``: the shared secret the listener checks and the deliverer signs with.

Loading this module costs nothing a run that does not use it would notice: the servers, aiohttp
and the store are imported by the fixtures, when a test asks for one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ipsms.check.runner import Card
    from ipsms.listen.app import ListenConfig
    from ipsms.testing.deliver import Deliverer
    from ipsms.testing.emulator import RunningEmulator
    from ipsms.testing.listener import RunningListener

TEST_SECRET = "ipsms-test-secret"


@pytest.fixture
def ipsms_secret() -> str | None:
    """The shared secret: the listener verifies with it and ``ipsms_deliver`` signs with it.
    Override this fixture with your app's test secret (None: unsigned, unchecked)."""
    return TEST_SECRET


@pytest.fixture
def ipsms_listener_config(ipsms_secret: str | None) -> dict[str, Any]:
    """Options of ``ipsms_listener`` (``ipsms.listen.app.ListenConfig`` fields: ``secret``,
    ``signature_mode``, ``faults``, ``forward_to``...). Override it to change them."""
    return {"secret": ipsms_secret}


@pytest.fixture
def ipsms_make_listener(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., RunningListener]]:
    """Start another listener: ``ipsms_make_listener(secret=..., faults=Faults(...))``.
    Each has its own store; all are stopped at the end of the test."""
    from ipsms.testing.listener import RunningListener, listen_config

    started: list[RunningListener] = []

    def make(config: ListenConfig | None = None, /, **options: Any) -> RunningListener:
        listener = RunningListener(
            tmp_path_factory.mktemp("ipsms-listener") / "ipsms.db",
            listen_config(config if config is not None else options),
        )
        started.append(listener)
        return listener

    yield make
    for listener in reversed(started):
        listener.close()


@pytest.fixture
def ipsms_listener(
    ipsms_make_listener: Callable[..., RunningListener], ipsms_listener_config: dict[str, Any]
) -> RunningListener:
    """A listener on a free loopback port (``.url``), recording what it receives."""
    return ipsms_make_listener(**ipsms_listener_config)


@pytest.fixture
def ipsms_deliver(ipsms_secret: str | None) -> Deliverer:
    """``ipsms_deliver(url, "text", fail_first=1)`` delivers a message signed with
    ``ipsms_secret`` and returns its attempts and outcome. No wait between attempts by
    default (IntelePeer's are slower): pass ``retry_delays``. Async tests:
    ``await ipsms_deliver.deliver_async(...)``."""
    from ipsms.testing.deliver import Deliverer

    return Deliverer(ipsms_secret)


@pytest.fixture
def ipsms_emulator() -> Iterator[RunningEmulator]:
    """The IntelePeer API emulator with the demo account: ``.api_base``, ``.auth_url``,
    ``.username``/``.password``, ``.numbers``, ``.webhooks``, ``.calls``."""
    from ipsms.testing.emulator import RunningEmulator

    with RunningEmulator() as emulator:
        yield emulator


class CheckResult:
    """What ``ipsms_check`` found: ``passed`` and ``failed`` (check ids), ``warnings``,
    ``skipped``, the whole ``card``, and ``report``: a readable text for an assertion message
    (each failure with what the app did, its evidence and a command that reproduces it)."""

    def __init__(self, card: Card) -> None:
        from ipsms.check.runner import Verdict

        self.card = card
        self.passed = card.passed
        self.failed = card.failed
        self.warnings = card.ids(Verdict.WARNING)
        self.skipped = card.ids(Verdict.SKIPPED)

    @property
    def report(self) -> str:
        from ipsms.check.report import evidence_text
        from ipsms.check.runner import Verdict
        from ipsms.cli.options import flag
        from ipsms.errors import word_settings

        lines = [
            f"ipsms check {self.card.url}: {len(self.failed)} failed, "
            f"{len(self.warnings)} warnings, {len(self.passed)} passed, "
            f"{len(self.skipped)} skipped"
        ]
        for result in self.card.results:
            if result.verdict is Verdict.PASSED:
                continue
            text = result.reason if result.verdict is Verdict.SKIPPED else result.did
            lines.append(f"{result.verdict.value} {result.id}: {word_settings(text or '', flag)}")
            if result.verdict is Verdict.SKIPPED:
                continue
            lines += [f"    {evidence_text(e)}" for e in result.evidence if not e.ok][:5]
            if result.reproduce:
                lines.append(f"    reproduce: {word_settings(result.reproduce, flag)}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report

    def __repr__(self) -> str:
        return f"<CheckResult failed={self.failed!r}>"


@pytest.fixture
def ipsms_check(ipsms_secret: str | None) -> Callable[..., CheckResult]:
    """``result = ipsms_check(url)`` runs the checks of ``ipsms check`` against ``url``,
    signed with ``ipsms_secret`` (pass ``secret=``, ``signature_mode="hmac"``, ``timeout``,
    ``only``, ``skip``, ``concurrency``, ``replies_via`` to change them). Then
    ``assert not result.failed, result.report``."""

    def check(
        url: str,
        *,
        secret: str | bool | None = True,
        signature_mode: str = "plain",
        hmac: str = "sha256",
        timeout: float = 10.0,
        only: tuple[str, ...] = (),
        skip: tuple[str, ...] = (),
        concurrency: int = 20,
        replies_via: str | None = None,
    ) -> CheckResult:
        import asyncio
        import concurrent.futures

        from ipsms.check.runner import Settings, run_card
        from ipsms.signature import Mode, parse_variant

        chosen = ipsms_secret if secret is True else (secret or None)
        settings = Settings(
            url,
            chosen,
            Mode(signature_mode),
            parse_variant(hmac),
            timeout,
            concurrency,
            replies_via,
            tuple(only),
            tuple(skip),
        )
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return CheckResult(asyncio.run(run_card(settings)))
        # Inside an async test: the card runs on a loop of its own, in a thread.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return CheckResult(pool.submit(asyncio.run, run_card(settings)).result())

    return check
