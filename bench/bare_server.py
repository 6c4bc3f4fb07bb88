"""Baseline for the benchmarks: a bare aiohttp handler that reads the body and answers 200.

    python bench/bare_server.py [PORT] [--loop asyncio|uvloop]   # default: asyncio's own loop
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys

from aiohttp import web


async def ok(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(text="ok")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("port", nargs="?", type=int, default=0)
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = ap.parse_args()
    if args.loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())  # run_app makes a new loop
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", ok)
    sock = socket.socket()
    sock.bind(("127.0.0.1", args.port))
    sock.listen(128)  # accept connections from the moment the URL is printed
    print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}/", file=sys.stderr,
          flush=True)
    web.run_app(app, sock=sock, print=None, access_log=None)


if __name__ == "__main__":
    main()
