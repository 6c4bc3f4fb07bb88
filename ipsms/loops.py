"""Which event loop a command runs on: asyncio's own, or uvloop from the ``fast`` extra.

Used by ``listen --loop`` and by load mode (which always takes uvloop when it is there).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from ipsms.errors import UsageError, setting

LOOPS = ("auto", "asyncio", "uvloop")  # the event loops ``run_with_loop`` knows
FAST_INSTALL = "pip install 'ipsms[fast]'"

T = TypeVar("T")


def loop_factory(loop: str) -> tuple[str, Callable[[], asyncio.AbstractEventLoop] | None]:
    """The loop to run on: ``(name, factory)``; a factory of None means asyncio's default.

    ``auto`` takes uvloop when it is installed (the ``fast`` extra): it serves the same
    requests with less CPU each. ``uvloop`` without uvloop installed is the user's mistake,
    said with the command that fixes it rather than falling back quietly."""
    if loop not in LOOPS:
        raise UsageError(f"unknown event loop {loop!r}", hint=f"choose one of {', '.join(LOOPS)}")
    if loop == "asyncio":
        return "asyncio", None
    try:
        import uvloop  # type: ignore[import-not-found, unused-ignore]  # the fast extra
    except ImportError:
        if loop == "uvloop":
            raise UsageError(
                f"{setting('loop')} uvloop needs uvloop, which is not installed",
                hint=f"install it with: {FAST_INSTALL}",
            ) from None
        return "asyncio", None
    return "uvloop", uvloop.new_event_loop


def run_with_loop(main: Coroutine[Any, Any, T], loop: str = "auto") -> T:
    """``asyncio.run(main)`` on the loop ``loop_factory(loop)`` names."""
    try:
        _, factory = loop_factory(loop)
    except UsageError:
        main.close()  # never started: no "coroutine was never awaited" warning
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
