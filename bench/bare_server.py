"""Baseline for the benchmarks: a bare aiohttp handler that reads the body and answers 200."""

from __future__ import annotations

import socket
import sys

from aiohttp import web


async def ok(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(text="ok")


def main() -> None:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", ok)
    sock = socket.socket()
    sock.bind(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0))
    sock.listen(128)  # accept connections from the moment the URL is printed
    print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}/", file=sys.stderr,
          flush=True)
    web.run_app(app, sock=sock, print=None, access_log=None)


if __name__ == "__main__":
    main()
