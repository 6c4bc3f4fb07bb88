"""Baseline for the benchmarks: a bare aiohttp handler that reads the body and answers 200.

    python bench/bare_server.py [PORT] [--loop asyncio|uvloop]   # default: asyncio's own loop
    python bench/bare_server.py [PORT] --durable FILE

``--durable FILE``: the smallest server that answers only once a message is on disk. The
handler appends the body to FILE and answers after the ``fdatasync`` that covers it; a thread
writes and syncs the bodies that arrived meanwhile in one go (group commit). Nothing is
parsed, checked or indexed, so its answer time is the floor for any listener that answers 200
only once the message is durable (``bench/bench_latency.py`` reports it next to bare).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import threading

from aiohttp import web


async def ok(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(text="ok")


class GroupSync:
    """Appends bodies to a file in a thread: one write and one fdatasync per group."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.loop = asyncio.get_running_loop()
        self.waiting: list[tuple[bytes, asyncio.Future[None]]] = []
        self.ready = threading.Condition()
        threading.Thread(target=self.run, daemon=True).start()

    def append(self, body: bytes) -> asyncio.Future[None]:
        done: asyncio.Future[None] = self.loop.create_future()
        with self.ready:
            self.waiting.append((len(body).to_bytes(4, "big") + body, done))
            self.ready.notify()
        return done

    def run(self) -> None:
        while True:
            with self.ready:
                while not self.waiting:
                    self.ready.wait()
                group, self.waiting = self.waiting, []
            os.write(self.fd, b"".join(body for body, _ in group))
            os.fdatasync(self.fd)
            self.loop.call_soon_threadsafe(self.answer, [done for _, done in group])

    @staticmethod
    def answer(group: list[asyncio.Future[None]]) -> None:
        for done in group:
            if not done.done():
                done.set_result(None)


def durable(path: str) -> web.Application:
    app = web.Application()
    sync: list[GroupSync] = []  # made on the server's loop, at start-up

    async def start(_: web.Application) -> None:
        sync.append(GroupSync(path))

    async def stored(request: web.Request) -> web.Response:
        await sync[0].append(await request.read())
        return web.Response(text="ok")

    app.on_startup.append(start)
    app.router.add_route("*", "/{tail:.*}", stored)
    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("port", nargs="?", type=int, default=0)
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    ap.add_argument(
        "--durable",
        metavar="FILE",
        help="answer each message only once it is appended to FILE and synced",
    )
    args = ap.parse_args()
    if args.loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())  # run_app makes a new loop
    if args.durable:
        app = durable(args.durable)
    else:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", ok)
    sock = socket.socket()
    sock.bind(("127.0.0.1", args.port))
    sock.listen(128)  # accept connections from the moment the URL is printed
    print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}/", file=sys.stderr, flush=True)
    web.run_app(app, sock=sock, print=None, access_log=None)


if __name__ == "__main__":
    main()
