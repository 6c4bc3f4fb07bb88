#!/usr/bin/env python3
"""A fake ngrok agent (stdlib only, loopback only) honouring what pyngrok relies on of the
real agent: `start --none --log stdout ...` prints logfmt lines once its API answers; POST
/api/endpoints opens a relay port standing in for the public URL; DELETE closes it. Each relay
passes method, path, headers and exact body to the upstream and returns its exact answer (502
when it is down).

The authtoken is read as the real agent reads it: ``--authtoken``, else NGROK_AUTHTOKEN, else
``authtoken`` in the configuration files ``--config`` names (``agent:`` of a version 3 file, or
top-level).

Hooks for tests (environment variables):
- FAKE_NGROK_ARGV=FILE   append this process's argv (one JSON line) to FILE
- FAKE_NGROK_SEEN=FILE   append {"pid", "argv", "authtoken", "config_modes"} (one JSON line) to
                         FILE: what this agent was given, and where
- FAKE_NGROK_SILENT=1    print nothing and wait (an agent that never becomes ready)
- FAKE_NGROK_DIE_AFTER=S exit S seconds after start (the tunnel drops while listening)
- FAKE_NGROK_PUBLIC_URL=URL  answer URL as the endpoint's public URL (a hostile agent)
- an authtoken "bad-token" prints ngrok's auth error (ERR_NGROK_105) and exits 1
"""

from __future__ import annotations

import http.client
import json
import os
import re
import stat
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
}


def log(**fields: Any) -> None:
    parts = [f"t={time.strftime('%Y-%m-%dT%H:%M:%S')}"]
    for key, value in fields.items():
        text = str(value)
        parts.append(f'{key}="{text}"' if " " in text or not text else f"{key}={text}")
    print(" ".join(parts), flush=True)


def relay_server(upstream: str) -> ThreadingHTTPServer:
    target = urllib.parse.urlsplit(upstream)

    class Relay(BaseHTTPRequestHandler):
        def _relay(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
            headers["X-Forwarded-Proto"] = "https"
            headers["X-Forwarded-For"] = self.client_address[0]
            try:
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                self.send_response(502)
                self.send_header("Content-Length", "0")
                self.end_headers()

        do_POST = do_GET = do_PUT = _relay

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Relay)
    # DELETE answers after shutdown(), which waits for this loop to look: every 50 ms, not
    # the default 500.
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


def config_files(argv: list[str]) -> list[str]:
    files: list[str] = []
    for i, arg in enumerate(argv[:-1]):
        if arg == "--config":
            files += argv[i + 1].split(",")
    return files


def authtoken(argv: list[str]) -> str | None:
    if "--authtoken" in argv:
        return argv[argv.index("--authtoken") + 1]
    if os.environ.get("NGROK_AUTHTOKEN"):
        return os.environ["NGROK_AUTHTOKEN"]
    token = None
    for path in config_files(argv):  # later files win, as the agent merges them
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                found = re.match(r"\s*authtoken:\s*(.*?)\s*$", line)
                if found:
                    value = found.group(1)
                    token = json.loads(value) if value.startswith('"') else value
    return token


def main() -> None:
    argv = sys.argv[1:]
    if os.environ.get("FAKE_NGROK_ARGV"):
        with open(os.environ["FAKE_NGROK_ARGV"], "a") as fh:
            fh.write(json.dumps(argv) + "\n")
    if argv[:1] != ["start"]:
        print("ngrok version 3.99.0-fake", flush=True)
        return
    token = authtoken(argv)
    if os.environ.get("FAKE_NGROK_SEEN"):
        modes = {path: stat.S_IMODE(os.stat(path).st_mode) for path in config_files(argv)}
        with open(os.environ["FAKE_NGROK_SEEN"], "a") as fh:
            fh.write(
                json.dumps(
                    {"pid": os.getpid(), "argv": argv, "authtoken": token, "config_modes": modes}
                )
                + "\n"
            )
    if os.environ.get("FAKE_NGROK_SILENT"):
        time.sleep(3600)
        return
    if token == "bad-token":
        log(
            lvl="eror",
            msg="session closing",
            obj="tunnels.session",
            err="authentication failed: The authtoken you specified does not look like a "
            "proper ngrok tunnel authtoken.\\r\\n\\r\\nERR_NGROK_105\\r\\n",
        )
        sys.exit(1)
    endpoints: dict[str, dict[str, Any]] = {}
    relays: dict[str, ThreadingHTTPServer] = {}

    class Api(BaseHTTPRequestHandler):
        def _send(self, status: int, data: Any = None) -> None:
            body = b"" if data is None else json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._send(200, {"endpoints": list(endpoints.values()), "uri": "/api/endpoints"})

        def do_POST(self) -> None:
            options = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            name = options.get("name", "default")
            upstream = (options.get("upstream") or {}).get("url") or options.get("addr")
            relay = relay_server(upstream)
            relays[name] = relay
            public = (
                os.environ.get("FAKE_NGROK_PUBLIC_URL")
                or f"http://127.0.0.1:{relay.server_address[1]}"
            )
            endpoints[name] = {
                "name": name,
                "url": public,
                "public_url": public,
                "uri": f"/api/endpoints/{name}",
                "proto": "http",
                "upstream": {"url": upstream},
                "config": {"addr": upstream},
            }
            self._send(201, endpoints[name])

        def do_DELETE(self) -> None:
            name = self.path.rsplit("/", 1)[-1]
            endpoints.pop(name, None)
            relay = relays.pop(name, None)
            if relay is not None:
                relay.shutdown()
            self._send(204)

        def log_message(self, *args: Any) -> None:
            pass

    api = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    addr = f"127.0.0.1:{api.server_address[1]}"
    log(lvl="info", msg="open config file", path="fake", err="nil")
    log(lvl="info", msg="starting web service", obj="web", addr=addr, allow_hosts="[]")
    log(lvl="info", msg="tunnel session started", obj="tunnels.session")
    log(lvl="info", msg="client session established", obj="csess", id="fake")
    die_after = float(os.environ.get("FAKE_NGROK_DIE_AFTER") or 0)
    if die_after:
        time.sleep(die_after)
        os._exit(3)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
