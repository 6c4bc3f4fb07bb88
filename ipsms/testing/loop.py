"""An event loop in a background thread, so a sync test can run a server next to its own code."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

START_TIMEOUT = 10.0  # seconds a server may take to start or stop on a loaded machine


class LoopThread:
    """``run(coro)`` runs a coroutine on the loop and waits for its result; ``close()`` stops
    the loop and joins the thread."""

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = START_TIMEOUT) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=START_TIMEOUT)
        if not self._thread.is_alive():
            self._loop.close()


def refuse_inside_loop(instead: str) -> None:
    """A blocking helper called from an async test would block that test's event loop, and
    with it an app served on that loop: say which awaitable to use instead."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(
        f"called from a running event loop (an async test): this call blocks; "
        f"use `await {instead}` instead"
    )
