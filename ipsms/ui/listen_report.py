"""What ``ipsms listen`` says while it runs (``ipsms.listen.session.Hooks``): the banner and
the warnings on stderr, the ``listening``/``tunnel``/``webhook_set`` lines of its NDJSON, the
live table taking and giving back the screen, and the summary at the end."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ipsms.listen.session import Hooks
from ipsms.redact import mask_url
from ipsms.text import dumps

if TYPE_CHECKING:
    from ipsms.intelepeer.lease import WebhookLease
    from ipsms.intelepeer.webhooks import ChangeResult
    from ipsms.listen.app import ListenConfig
    from ipsms.listen.events import ListenStats
    from ipsms.listen.server import Bound
    from ipsms.ui.live import LiveView
    from ipsms.ui.stream_sink import StreamSink


class Say(Protocol):
    def __call__(self, line: str, *, always: bool = False) -> None: ...


class ListenReport(Hooks):
    """``say`` writes a line on stderr (``always``: even with ``--quiet``); ``word`` turns a
    core message's setting names into flags; ``ndjson`` is stdout's NDJSON sink, if any;
    ``view`` the live table, if any; ``said`` the lines said so far (the table keeps them
    above itself when stderr is the same terminal)."""

    def __init__(
        self,
        config: ListenConfig,
        db: Path,
        say: Say,
        word: Callable[[str], str],
        *,
        ndjson: StreamSink | None = None,
        view: LiveView | None = None,
        loop_name: str = "asyncio",
        said: list[str] | None = None,
        keep_said: bool = False,
        after_change: Callable[[WebhookLease], None] | None = None,
    ) -> None:
        self.config = config
        self.db = db
        self.say = say
        self.word = word
        self.ndjson = ndjson
        self.view = view
        self.loop_name = loop_name
        self.said = said if said is not None else []
        self.keep_said = keep_said
        self.after_change = after_change
        self.serving_hooks: list[Callable[[], None]] = []

    def _line(self, document: dict[str, object]) -> None:
        if self.ndjson is not None:
            self.ndjson.write_line(dumps(document))

    def listening(self, bound: Bound, local_url: str) -> None:
        banner(self.say, self.word, bound, self.config, self.db, local_url)
        self._line(
            {
                "type": "listening",
                "url": local_url,
                "host": bound.host,
                "port": bound.port,
                "db": str(self.db),
                "faults": self.config.faults.to_dict(),
                "forward_to": self.config.forward_to,
                "loop": self.loop_name,
            }
        )
        if self.view is not None:
            self.view.url = local_url

    def tunnel_up(self, public_url: str, local_url: str) -> None:
        self.say(f"ipsms listen: tunnel {mask_url(public_url)} -> {local_url}")
        if not self.config.secret and self.config.basic_auth is None:
            self.say(
                "ipsms listen: warning: the tunnel is public and there is no secret: "
                "anyone who finds the URL can post; set IPSMS_SECRET"
            )
        self._line(
            {"type": "tunnel", "state": "up", "public_url": mask_url(public_url), "detail": None}
        )
        if self.view is not None:
            self.view.url = f"{mask_url(public_url)} → {local_url}"

    def tunnel_down(self, public_url: str, detail: str) -> None:
        self.say(f"ipsms listen: error: {detail}; stopping", always=True)
        self._line({"type": "tunnel", "state": "down", "public_url": public_url, "detail": detail})

    def webhooks(self, results: list[ChangeResult], lease: WebhookLease) -> None:
        for r in results:
            verb = "put back to" if r.action == "restore" else "pointed at"
            # A number left pointing somewhere unexpected is never hidden.
            self.say(
                f"ipsms listen: {r.number} {verb} {mask_url(r.url)}"
                if r.ok
                else f"ipsms listen: warning: {r.number} was not changed ({r.status}): {r.reason}",
                always=not r.ok,
            )
            self._line(r.to_dict())
        if self.after_change is not None and any(r.ok and r.action == "set" for r in results):
            self.after_change(lease)

    def inspector(self, url: str, asked: str | None) -> None:
        if asked is not None:
            self.say(f"ipsms listen: {asked} is busy: the inspector took another port")
        self.say(f"ipsms listen: inspector {url}")
        self._line({"type": "inspector", "url": url})

    def serving(self) -> None:
        for hook in self.serving_hooks:
            hook()
        if self.view is not None:
            if self.keep_said:  # the lines above the table, on the same terminal
                self.view.preamble = list(self.said)
            self.view.start()

    def stopping(self) -> None:
        if self.view is not None:
            self.view.stop()

    def notice(self, text: str) -> None:
        self.say(f"ipsms listen: warning: {self.word(text)}")

    def store_problem(self, text: str) -> None:
        self.say(f"ipsms listen: warning: {self.word(text)}", always=True)

    def still_stopping(self, held: tuple[str, ...]) -> None:
        self.say(
            f"ipsms listen: still stopping: putting the webhook of {', '.join(held)} back; "
            "press Ctrl-C again to quit now and leave it (`ipsms set-webhook --restore "
            f"{' '.join(held)}` puts it back later)",
            always=True,
        )


def banner(
    say: Say,
    word: Callable[[str], str],
    bound: Bound,
    config: ListenConfig,
    db: Path,
    local_url: str,
) -> None:
    from ipsms.hosts import is_loopback
    from ipsms.signature import Mode, fingerprint
    from ipsms.store import shared_dir_warning

    if config.secret:
        mode = config.signature_mode.value
        if config.signature_mode is Mode.HMAC:
            mode = config.hmac_variant.name
        check = f"secret {fingerprint(config.secret)}, signature mode {mode}"
    else:
        check = "no secret: signatures are not checked (set --secret or IPSMS_SECRET)"
    where = "any path" if config.path_prefix is None else "under this random path only"
    guard = "" if config.basic_auth is None else ", basic auth required"
    say(f"ipsms listen: listening on {local_url} ({where}, POST{guard})")
    say(f"ipsms listen: {check}; recording to {db}")
    shared = shared_dir_warning(db)
    if shared:
        say(f"ipsms listen: warning: {word(shared)}")
    if config.forward_to:
        say(
            f"ipsms listen: forwarding accepted messages to {config.forward_to} (answers come "
            f"from the app; {config.forward_timeout:g} s to answer, then 504)"
        )
    if config.faults.active:
        say(f"ipsms listen: warning: fault injection is on: {config.faults.describe()}")
    if not is_loopback(bound.host):
        say(
            f"ipsms listen: warning: listening on {bound.host}, reachable from other machines"
            + ("" if config.secret else " and without a secret: anyone can post to it")
        )


def summary(stats: ListenStats, db: Path, reader: str) -> list[str]:
    """The lines said when the run is over."""
    return [
        f"ipsms listen: stopped. {stats.summary()}",
        f"ipsms listen: the requests are recorded in {db}; `{reader}` shows them",
    ]
