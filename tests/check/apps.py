"""Real webhook apps on loopback for ``ipsms check`` to judge: each a small aiohttp app on its
own thread and port, standing in for a developer's app (good, wrong status, redirecting, slow,
crashing on some texts, checking signatures or not, replying through the send API)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def fields(request: web.Request) -> dict[str, Any]:
    """The delivery's fields, JSON or form, as an app would read them."""
    raw = await request.read()
    if request.content_type == "application/x-www-form-urlencoded":
        return dict(parse_qsl(raw.decode("utf-8", "surrogateescape"), keep_blank_values=True))
    data = json.loads(raw)
    assert isinstance(data, dict)
    return data


def answering(status: int, text: str = "ok", **headers: str) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        return web.Response(status=status, text=text, headers=headers)

    return handle


def slow(seconds: float) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        await asyncio.sleep(seconds)
        return web.Response(text="ok")

    return handle


async def fragile(request: web.Request) -> web.StreamResponse:
    """Crashes (500) on emoji, lone surrogates and long texts, as naive code does."""
    data = await fields(request)
    text = str(data.get("message", ""))
    text.encode("utf-8")  # a lone surrogate raises here
    if any(ord(c) > 0xFFFF for c in text) or len(text) > 1000:
        raise ValueError("cannot store this text")
    return web.Response(text="ok")


def checking(secret: str) -> Handler:
    """Checks the plain signature: 401 without the right one."""

    async def handle(request: web.Request) -> web.StreamResponse:
        data = await fields(request)
        if data.get("signature") != secret:
            return web.json_response({"error": "bad signature"}, status=401)
        return web.Response(text="ok")

    return handle


async def echoing(request: web.Request) -> web.StreamResponse:
    """Answers with the fields it received: the signature (the plain secret) included."""
    return web.json_response({"received": await fields(request)})


def replying(api_base: str, *, once: bool) -> Handler:
    """Texts the sender back through the send API: for every delivery, or once per refid."""
    seen: set[str] = set()
    token: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        data = await fields(request)
        refid = str(data.get("refid"))
        if once and refid in seen:
            return web.Response(text="ok")
        seen.add(refid)
        async with aiohttp.ClientSession() as session:
            if not token:
                async with session.post(
                    f"{api_base}/_rest/v4/authenticate",
                    json={"username": "demo", "password": "demo-password"},
                ) as resp:
                    token.append((await resp.json())["token"])
            async with session.post(
                f"{api_base}/_rest/v4/app/sms/send",
                json={"from": data["to"], "to": data["from"], "text": "thanks!"},
                headers={"Authorization": f"Bearer {token[0]}"},
            ) as resp:
                assert resp.status == 202, await resp.text()
        return web.Response(text="ok")

    return handle


@contextmanager
def serving(handler: Handler, path: str = "/sms") -> Iterator[str]:
    """``handler`` at ``path`` on a free loopback port; yields its URL."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    app = web.Application()
    app.router.add_route("*", path, handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)

    async def start() -> int:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return int(runner.addresses[0][1])

    port = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield f"http://127.0.0.1:{port}{path}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@contextmanager
def silent() -> Iterator[str]:
    """A server that accepts connections and reads, and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/sms"
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
