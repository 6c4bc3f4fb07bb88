"""One ``ipsms listen`` run: the store and its recorder, the server, the ngrok tunnel and the
webhook lease, started in that order and always stopped in the reverse one. What the user
should see goes to the run's ``Hooks``; the command line only builds a ``Session`` and calls
``run``. (uvicorn's ``run()`` over its ``Server``, and aiohttp-devtools' ``runserver``, are
the models.)"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit, urlunsplit

from aiohttp import web

from ipsms.errors import ApiError, StoppedError, TunnelError, setting
from ipsms.listen.app import EventSink, ListenConfig
from ipsms.listen.events import ListenStats
from ipsms.listen.server import Bound, ListenServer, handle_signals, run_listener

if TYPE_CHECKING:
    from ipsms.intelepeer.lease import WebhookLease
    from ipsms.intelepeer.webhooks import ChangeResult
    from ipsms.listen.tunnel import Tunnel, TunnelConfig

TUNNEL_POLL = 0.5  # seconds between looks at whether the ngrok agent is still running


@dataclass(frozen=True)
class Session:
    """What one run serves: the listener's settings, where, the store, and optionally a
    tunnel and a webhook lease (``lease.url`` is the public URL; with a tunnel it becomes the
    tunnel's once it is open)."""

    config: ListenConfig
    host: str
    port: int
    db: Path
    lease: WebhookLease | None = None
    tunnel: TunnelConfig | None = None
    inspect: Inspect | None = None


@dataclass(frozen=True)
class Inspect:
    """Where the web inspector is served beside the listener (its own port, never the
    listener's), and its token. ``fall_back``: a busy port gives way to a free one."""

    host: str
    port: int
    token: str
    fall_back: bool = True
    allow_remote: bool = False


class Hooks:
    """What a run tells its user. Each method does nothing here: a view overrides what it
    shows. They are called in this order: ``listening``, ``tunnel_up``, ``webhooks`` (the
    lease taken), ``serving``; and on the way out ``stopping``, ``webhooks`` (given back).
    ``notice`` and ``tunnel_down`` may come at any time."""

    def listening(self, bound: Bound, local_url: str) -> None:
        """The port is bound and answering."""

    def tunnel_up(self, public_url: str, local_url: str) -> None:
        """The tunnel is open; ``public_url`` carries the random path and credentials."""

    def tunnel_down(self, public_url: str, detail: str) -> None:
        """The ngrok agent ended: the run stops (exit 9)."""

    def webhooks(self, results: list[ChangeResult], lease: WebhookLease) -> None:
        """The lease pointed numbers at the listener, or put them back."""

    def inspector(self, url: str, asked: str | None) -> None:
        """The inspector answers at ``url`` (with its token); ``asked``: the address asked
        for, when it was busy and another port was taken."""

    def serving(self) -> None:
        """Everything is up: a live view may take the screen now."""

    def stopping(self) -> None:
        """The server stopped; the view gives the screen back before the lease is undone."""

    def notice(self, text: str) -> None:
        """A warning while it runs (a webhook that could not be put back)."""

    def still_stopping(self, held: tuple[str, ...]) -> None:
        """A signal came while the run was putting back the webhooks of ``held``: the next
        one quits at once, leaving them. Said even when warnings are hidden."""

    def store_problem(self, text: str) -> None:
        """The store's writer stalled or was replaced, the store was removed under it: said
        even when warnings are hidden."""


class Control:
    """Stops a run from outside it (a reader of stdout gone, a test): ``request_stop()``
    before or after the run started."""

    def __init__(self) -> None:
        self._server: ListenServer | None = None
        self._stop_early = False

    def request_stop(self) -> None:
        if self._server is None:
            self._stop_early = True
        else:
            self._server.request_stop()

    def attach(self, server: ListenServer) -> None:
        self._server = server
        if self._stop_early:
            server.request_stop()


def public_address(base: str, config: ListenConfig) -> str:
    """``base`` (a tunnel's or the public URL) with the random path and the basic-auth
    credentials the listener requires: the URL IntelePeer must post to."""
    parts = urlsplit(base)
    path = parts.path or "/"
    if config.path_prefix is not None:
        path = parts.path.rstrip("/") + config.path_prefix + "/"
    netloc = parts.netloc.rpartition("@")[2]
    if config.basic_auth is not None:
        user, password = config.basic_auth
        netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{netloc}"
    return urlunsplit((parts.scheme, netloc, path, parts.query, ""))


async def run(
    session: Session,
    sinks: list[EventSink],
    hooks: Hooks | None = None,
    stats: ListenStats | None = None,
    control: Control | None = None,
    hold_signals: bool = False,
) -> ListenStats:
    """Serve ``session`` until a signal, a ``control.request_stop()`` or a dropped tunnel,
    then stop everything it started. Raises ``TunnelError`` when the tunnel dropped, and
    ``ApiError`` when no number's webhook could be pointed at the listener.
    ``hold_signals``: for a process that exits after the run: SIGINT, SIGTERM and SIGHUP are
    ignored once it is over (until the loop closes: then the caller ignores them), so that
    one more cannot cut its report short."""
    hooks = hooks or Hooks()
    config = session.config
    server = ListenServer(
        config,
        session.db,
        session.host,
        session.port,
        sinks=sinks,
        stats=stats,
        notice=hooks.store_problem,
    )
    if control is not None:
        control.attach(server)
    held: list[Tunnel] = []
    watch: list[asyncio.Future[None]] = []
    failures: list[Exception] = []
    inspectors: list[web.AppRunner] = []
    lease = session.lease

    async def ready(bound: Bound) -> None:
        local_url = bound.url.rstrip("/") + (config.path_prefix or "") + "/"
        hooks.listening(bound, local_url)
        if session.inspect is not None:
            inspectors.append(await _inspector(session, local_url, hooks))
        public = None
        if session.tunnel is not None:
            from ipsms.listen.tunnel import open_tunnel

            opened = await open_tunnel(session.tunnel, bound.url)
            held.append(opened)
            public = public_address(opened.public_url, config)
            hooks.tunnel_up(public, local_url)
            watch.append(asyncio.ensure_future(_watch(opened, server, failures, hooks)))
        if lease is not None:  # the listener answers already: IntelePeer may post at once
            lease.url = public or public_address(lease.url, config)
            taken = await lease.take()
            hooks.webhooks(taken, lease)
            if taken and not any(r.ok for r in taken) and all(r.action == "set" for r in taken):
                raise ApiError(
                    "no number's webhook could be pointed at the listener",
                    hint="see the reasons above",
                )
        hooks.serving()

    async def clean_up() -> None:
        for task in watch:
            task.cancel()
        for opened in held:
            opened.close()  # the agent never outlives the listener
        for runner in inspectors:
            await runner.cleanup()  # its open tabs end at once
        hooks.stopping()
        if lease is not None:
            results, warnings = await lease.give_back()
            hooks.webhooks(results, lease)
            for warning in warnings:
                hooks.notice(warning)

    signals = _Signals(server, hooks, lease)
    installed = handle_signals(signals)
    loop = asyncio.get_running_loop()
    try:
        try:
            result = await run_listener(server, ready)
            if failures:
                raise failures[0]
            return result
        finally:
            signals.cleaning = asyncio.ensure_future(clean_up())
            try:
                await signals.cleaning
            except asyncio.CancelledError:
                if not signals.forced:
                    raise
                # The lease file keeps what was not put back: the next run says so.
                left = lease.held if lease is not None else ()
                raise StoppedError(
                    f"stopped before the webhook of {', '.join(left)} was put back"
                ) from None
    finally:
        for sig in installed:
            if hold_signals:  # ignored until the loop closes; the caller ignores them after
                loop.add_signal_handler(sig, _ignore)
            else:
                loop.remove_signal_handler(sig)


def _ignore() -> None:
    """A stop signal once the run is over."""


class _Signals:
    """SIGINT, SIGTERM and SIGHUP for the whole run. The first stops it; more while the server
    stops are ignored (the messages in flight are being recorded). Once the server is down,
    what is left is short (the tunnel, the inspector) unless webhooks are being put back
    through the API, which may take its timeout: then the next signal says so, and the one
    after quits at once (``StoppedError``, exit 130), leaving them where they point."""

    def __init__(self, server: ListenServer, hooks: Hooks, lease: WebhookLease | None) -> None:
        self.server = server
        self.hooks = hooks
        self.lease = lease
        self.cleaning: asyncio.Future[None] | None = None
        self.warned = False
        self.forced = False

    def __call__(self) -> None:
        cleaning = self.cleaning
        if cleaning is None:
            self.server.request_stop()
        elif cleaning.done() or not (self.lease is not None and self.lease.held):
            return  # without a webhook to put back, stopping is short: it is left to finish
        elif not self.warned:
            self.warned = True
            self.hooks.still_stopping(self.lease.held if self.lease is not None else ())
        else:
            self.forced = True
            cleaning.cancel()


async def _inspector(session: Session, local_url: str, hooks: Hooks) -> web.AppRunner:
    """The inspector over the session's store; its replays go through this listener (which
    records them), or to the app behind it."""
    from ipsms.inspect.actions import Targets
    from ipsms.inspect.app import create_inspector, serve

    plan = session.inspect
    assert plan is not None
    config = session.config
    # With the listener's random path and basic-auth credentials, as IntelePeer posts to it.
    targets = Targets(
        listener=public_address(local_url, config),
        forward=config.forward_to,
        secret=config.secret,
        mode=config.signature_mode,
        variant=config.hmac_variant,
    )
    app = create_inspector(session.db, plan.token, allow_remote=plan.allow_remote, targets=targets)
    runner, bound = await serve(app, plan.host, plan.port, fall_back=plan.fall_back)
    hooks.inspector(bound.url(plan.token), f"{plan.host}:{plan.port}" if bound.fell_back else None)
    return runner


async def _watch(
    tunnel: Tunnel, server: ListenServer, failures: list[Exception], hooks: Hooks
) -> None:
    """A tunnel that drops stops the listener (exit 9): IntelePeer can no longer reach it."""
    while (code := tunnel.agent_exit_code()) is None:
        await asyncio.sleep(TUNNEL_POLL)
    detail = f"the ngrok agent exited (code {code}): the tunnel is closed"
    with contextlib.suppress(Exception):  # a view that fails must not keep the run going
        hooks.tunnel_down(tunnel.public_url, detail)
    failures.append(TunnelError(detail, hint=f"restart `ipsms listen {setting('tunnel')}`"))
    server.request_stop()
