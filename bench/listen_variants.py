"""Servers for the cost breakdown in ``bench_listen.py --breakdown``: the real listener with
parts of its work switched off, so each part's cost shows up as a throughput difference.

    python bench/listen_variants.py VARIANT PORT

PORT 0 picks a free port. VARIANT: ``parse`` (read, parse and verify only, answer 200),
``handler`` (the listener's handler with a store that writes nothing), ``handler+ndjson``,
``handler+store``, ``full`` (store and NDJSON: what ``ipsms listen --format json`` runs).
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from pathlib import Path

from aiohttp import web

from ipsms.inbound import parse_message
from ipsms.listen.app import ListenConfig, create_app
from ipsms.request import Request
from ipsms.signature import Verifier
from ipsms.store.recorder import Recorded, Recorder
from ipsms.ui.lines import NdjsonSink

SECRET = "bench-secret"
VARIANTS = ("parse", "handler", "handler+ndjson", "handler+store", "full")


class NoStore(Recorder):
    """A recorder that writes nothing (for measuring the store's share only)."""

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def record(self, rec: Request) -> Recorded:
        return Recorded(1, 1)


def build(variant: str, db: Path) -> web.Application:
    config = ListenConfig(secret=SECRET)
    ndjson = [NdjsonSink(open(os.devnull, "w"))]  # noqa: SIM115 (lives as long as the server)
    if variant == "parse":
        verifier = Verifier(SECRET)

        async def parse_only(request: web.Request) -> web.Response:
            msg = parse_message(await request.read(), request.headers.get("Content-Type"))
            verifier.verify(msg.refid, msg.message, msg.signature)
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", parse_only)
        return app
    recorder = Recorder(db) if variant in ("handler+store", "full") else NoStore(db)
    sinks = ndjson if variant in ("handler+ndjson", "full") else []
    return create_app(config, recorder, sinks)  # type: ignore[arg-type]


def main() -> None:
    variant, port = sys.argv[1], int(sys.argv[2])
    if variant not in VARIANTS:
        raise SystemExit(f"variant must be one of {', '.join(VARIANTS)}")
    db = Path(tempfile.mkdtemp(prefix="ipsms-variant-")) / "v.sqlite3"
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    sock.listen(128)  # accept connections from the moment the URL is printed
    print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}/", file=sys.stderr, flush=True)
    web.run_app(build(variant, db), sock=sock, print=None, access_log=None)


if __name__ == "__main__":
    main()
