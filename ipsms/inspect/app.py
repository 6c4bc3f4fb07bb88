"""The inspector's aiohttp application: the page (``static/``), the local API of
docs/inspector.md, and the live stream. It reads the store the listener writes, in a thread of
its own, so the listener's event loop never waits for a query. ``create_inspector`` returns
the app; ``serve`` binds it."""

from __future__ import annotations

import asyncio
import base64
import errno
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from ipsms import records, store
from ipsms.errors import BindError, IpsmsError, UsageError
from ipsms.inspect.actions import Sends, Targets, replay_delivery, resend_delivery, sent
from ipsms.inspect.guard import SECURITY_HEADERS, guard, refused
from ipsms.inspect.stream import Hub, event
from ipsms.request import Request
from ipsms.segments import segments
from ipsms.text import dumps

STATIC = Path(__file__).resolve().parent / "static"
DEFAULT_LIMIT = 100
MAX_LIMIT = 500
CATCH_UP_MAX = 1000  # attempts a reconnecting page is sent from the store before the live ones
HEARTBEAT = 15.0  # seconds between comments on an idle stream (proxies close silent ones)
HUB = web.AppKey("hub", Hub)
MAX_POST = 2 * 1024 * 1024  # a resend's fields: a message of the listener's size and more
EXPORT_MAX = 100_000  # attempts in one HAR file


def summary(row: Request) -> dict[str, Any]:
    """An attempt as the list shows it: the request's JSON line, with its text as SMS."""
    out = row.to_dict(bodies=False)
    out["sms"] = segments(row.message or "").to_dict()
    return out


def detail(row: Request) -> dict[str, Any]:
    """An attempt whole: the body as text when UTF-8, and always its exact bytes."""
    out = row.to_dict(bodies=True)
    out["body_base64"] = base64.b64encode(row.body).decode("ascii")
    out["sms"] = segments(row.message or "").to_dict()
    return out


def create_inspector(
    db: Path, token: str, *, allow_remote: bool = False, targets: Targets | None = None
) -> web.Application:
    """The inspector over the store at ``db`` (which may not exist yet), guarded by
    ``token``; replays and resends go to ``targets`` only."""
    app = web.Application(
        middlewares=[guard(token, allow_remote=allow_remote)], client_max_size=MAX_POST
    )
    executor = ThreadPoolExecutor(1, thread_name_prefix="ipsms-inspect")
    hub = Hub(db, executor, summary)
    app[HUB] = hub
    reader = _Reader(db, executor)
    sends = Sends()
    actions = _Actions(reader, targets or Targets(), sends)

    async def lifecycle(_: web.Application) -> Any:
        await hub.start()
        yield
        executor.shutdown(wait=False)

    async def stop_streams(_: web.Application) -> None:
        await hub.close()  # open tabs must not hold the shutdown up
        await sends.close()

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(stop_streams)
    app.router.add_get("/", _page)
    app.router.add_get("/api/messages", reader.messages)
    app.router.add_get("/api/messages/{id}", reader.message)
    app.router.add_get("/api/refids/{refid}", reader.refid)
    app.router.add_get("/api/messages/{id}/fixture", reader.fixture)
    app.router.add_get("/api/messages/{id}/attempts", reader.attempts)
    app.router.add_get("/api/events", _events)
    app.router.add_get("/api/export", reader.export)
    app.router.add_post("/api/messages/{id}/replay", actions.replay)
    app.router.add_post("/api/resend", actions.resend)
    app.router.add_static("/static", STATIC, follow_symlinks=False)
    return app


async def _page(_: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Content-Type": "text/html"})


class _Reader:
    """The API's reads, each in the inspector's thread on a connection of its own."""

    def __init__(self, db: Path, executor: ThreadPoolExecutor) -> None:
        self.db = db
        self.executor = executor

    async def _run(self, work: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self._guarded, work)

    def _guarded(self, work: Any) -> Any:
        if not self.db.exists():
            return None
        with store.opened(self.db) as conn:
            return work(conn)

    async def messages(self, request: web.Request) -> web.Response:
        try:
            where, limit = query_filter(request.query)
        except (IpsmsError, ValueError) as exc:
            return refused(400, "bad_query", getattr(exc, "message", str(exc)))
        rows = await self._run(lambda conn: store.recent(conn, limit + 1, where=where)) or []
        more = len(rows) > limit
        rows = rows[:limit]
        return web.json_response(
            {
                "items": [summary(r) for r in rows],
                "next_before": rows[-1].id if more and rows else None,
            }
        )

    async def message(self, request: web.Request) -> web.Response:
        try:
            row_id = int(request.match_info["id"])
        except ValueError:
            return refused(400, "bad_id", "a message id is a whole number")
        row = await self.row(row_id)
        if row is None:
            return refused(404, "not_found", f"no attempt {row_id} in the store")
        return web.json_response(detail(row))

    async def row(self, row_id: int) -> Request | None:
        rows = await self._run(lambda conn: store.after(conn, row_id - 1, row_id, 1)) or []
        return rows[0] if rows else None

    async def export(self, request: web.Request) -> web.StreamResponse:
        """The filtered list, oldest first, as NDJSON (``messages export``'s lines) or HAR."""
        try:
            where, _ = query_filter({k: v for k, v in request.query.items() if k != "limit"})
        except (IpsmsError, ValueError) as exc:
            return refused(400, "bad_query", getattr(exc, "message", str(exc)))
        kind = request.query.get("format", "ndjson")
        redact = request.query.get("redact") in ("1", "true", "yes")
        if kind not in ("ndjson", "har"):
            return refused(400, "bad_format", "format is ndjson or har")
        rows = (
            await self._run(lambda conn: list(store.iter_all(conn, where=where, limit=EXPORT_MAX)))
            or []
        )
        if kind == "har":
            return web.json_response(
                har(rows, redact=redact),
                headers={"Content-Disposition": 'attachment; filename="ipsms.har"'},
            )
        body = "".join(dumps(records.export_dict(r, redact=redact)) + "\n" for r in rows)
        return web.Response(
            text=body,
            content_type="application/x-ndjson",
            headers={"Content-Disposition": 'attachment; filename="ipsms.ndjson"'},
        )

    async def fixture(self, request: web.Request) -> web.Response:
        """The attempt as a fixture the pytest plugin replays (``ipsms_deliver.replay``): its
        ``messages export`` line, exact body and signature included."""
        try:
            row_id = int(request.match_info["id"])
        except ValueError:
            return refused(400, "bad_id", "a message id is a whole number")
        row = await self.row(row_id)
        if row is None:
            return refused(404, "not_found", f"no attempt {row_id} in the store")
        name = f"ipsms-{row.refid or 'request'}-{row.attempt or row.id}.json"
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        return web.json_response(
            records.export_dict(row),
            headers={"Content-Disposition": f'attachment; filename="{safe}"'},
        )

    async def attempts(self, request: web.Request) -> web.Response:
        """Every attempt of the refid of attempt ``id``: for a refid no URL can carry (``..``,
        a lone surrogate). ``bodies=0`` leaves the bodies out."""
        try:
            row_id = int(request.match_info["id"])
        except ValueError:
            return refused(400, "bad_id", "a message id is a whole number")
        row = await self.row(row_id)
        if row is None:
            return refused(404, "not_found", f"no attempt {row_id} in the store")
        if row.refid is None:
            rows = [row]
        else:
            refid = row.refid
            rows = await self._run(lambda conn: store.attempts_for(conn, refid)) or [row]
        shape = summary if request.query.get("bodies") == "0" else detail
        return web.json_response({"refid": row.refid, "attempts": [shape(r) for r in rows]})

    async def refid(self, request: web.Request) -> web.Response:
        refid = request.match_info["refid"]
        rows = await self._run(lambda conn: store.attempts_for(conn, refid)) or []
        if not rows:
            return refused(404, "not_found", "no attempt of this refid in the store")
        return web.json_response({"refid": refid, "attempts": [detail(r) for r in rows]})


class _Actions:
    """Replay and resend: checked, started in the background, answered 202."""

    def __init__(self, reader: _Reader, targets: Targets, sends: Sends) -> None:
        self.reader = reader
        self.targets = targets
        self.sends = sends

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise UsageError("the body is not JSON") from None
        if not isinstance(body, dict):
            raise UsageError("the body is a JSON object")
        return body

    async def _row(self, value: Any) -> Request:
        if not isinstance(value, int) or isinstance(value, bool):
            raise UsageError("id is an attempt's id, a whole number")
        row = await self.reader.row(value)
        if row is None:
            raise _NotFound(f"no attempt {value} in the store")
        return row

    async def replay(self, request: web.Request) -> web.Response:
        try:
            body = await self._body(request) if request.can_read_body else {}
            row = await self._row(_int(request.match_info["id"]))
            delivery = replay_delivery(row, self.targets.check(body.get("to")))
        except _NotFound as exc:
            return refused(404, "not_found", exc.message)
        except IpsmsError as exc:
            return refused(400, "refused", exc.message)
        retries = body.get("retries") is True
        self.sends.start(delivery, retries=retries)
        return web.json_response(sent(delivery, retries=retries), status=202)

    async def resend(self, request: web.Request) -> web.Response:
        try:
            body = await self._body(request)
            row = await self._row(body.get("id"))
            changes = body.get("fields") or {}
            if not isinstance(changes, dict):
                raise UsageError("fields is a JSON object of the fields to change")
            delivery = resend_delivery(
                row,
                self.targets.check(body.get("to")),
                changes,
                sign=body.get("sign", True) is True,
                new_refid_=body.get("new_refid") is True,
                signing=self.targets.signing,
            )
        except _NotFound as exc:
            return refused(404, "not_found", exc.message)
        except IpsmsError as exc:
            return refused(400, "refused", exc.message)
        retries = body.get("retries") is True
        self.sends.start(delivery, retries=retries)
        return web.json_response(sent(delivery, retries=retries), status=202)


class _NotFound(IpsmsError):
    pass


def _int(text: str) -> int | str:
    try:
        return int(text)
    except ValueError:
        return text


def har(rows: list[Request], *, redact: bool = False) -> dict[str, Any]:
    """HAR 1.2 of the attempts: each request as it arrived, and what the poster was answered
    (the status; with --forward-to, the app's answer as far as it was kept)."""
    from ipsms import __version__

    entries = []
    for row in rows:
        doc = records.export_dict(row, redact=redact)
        forward = doc.get("forward") or {}
        text = doc.get("body")
        entries.append(
            {
                "startedDateTime": doc["received_at"],
                "time": float(forward.get("latency_ms") or 0),
                "request": {
                    "method": doc["method"],
                    "url": f"http://ipsms{doc['path']}",
                    "httpVersion": "HTTP/1.1",
                    "headers": [{"name": k, "value": v} for k, v in doc["headers"]],
                    "queryString": [],
                    "cookies": [],
                    "headersSize": -1,
                    "bodySize": doc["size"],
                    "postData": {
                        "mimeType": doc["content_type"] or "",
                        **(
                            {"text": text}
                            if text is not None
                            else {"text": doc.get("body_base64") or "", "encoding": "base64"}
                        ),
                    },
                },
                "response": {
                    "status": doc["status"],
                    "statusText": doc.get("error") or "",
                    "httpVersion": "HTTP/1.1",
                    "headers": [],
                    "cookies": [],
                    "content": {
                        "size": -1,
                        "mimeType": "application/json",
                        "text": forward.get("body_preview") or "",
                    },
                    "redirectURL": "",
                    "headersSize": -1,
                    "bodySize": -1,
                },
                "cache": {},
                "timings": {"send": 0, "wait": float(forward.get("latency_ms") or 0), "receive": 0},
                "comment": f"refid {doc['refid']} attempt {doc['attempt']}, verdict "
                f"{doc['verdict']}",
            }
        )
    return {
        "log": {
            "version": "1.2",
            "creator": {"name": "ipsms", "version": __version__},
            "entries": entries,
        }
    }


def query_filter(query: Any) -> tuple[store.Filter, int]:
    """The list's query parameters, read as ``messages list`` reads its options."""
    now = time.time()

    def one(name: str) -> str | None:
        value = query.get(name)
        return value if value else None

    limit = int(query.get("limit") or DEFAULT_LIMIT)
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
    before = one("before")
    where = store.Filter(
        since=records.parse_moment(s, now) if (s := one("since")) else None,
        until=records.parse_moment(u, now) if (u := one("until")) else None,
        refid_prefix=one("refid"),
        from_number=records.parse_number(f) if (f := one("from")) else None,
        to_number=records.parse_number(t) if (t := one("to")) else None,
        text=one("q"),
        statuses=records.parse_statuses(st) if (st := one("status")) else (),
        verdicts=records.parse_verdicts(v) if (v := one("verdict")) else (),
        flag=one("flag"),
        before=int(before) if before else None,
    )
    return where, limit


async def _events(request: web.Request) -> web.StreamResponse:
    """The live stream: what was committed after ``Last-Event-ID`` (or ``?after=``) first,
    from the store, then every new attempt as the hub sees it, each once."""
    hub = request.app[HUB]
    after_text = request.headers.get("Last-Event-ID") or request.query.get("after") or ""
    try:
        after = int(after_text) if after_text else None
    except ValueError:
        return refused(400, "bad_event_id", "Last-Event-ID is a row id")
    response = web.StreamResponse(
        headers={**SECURITY_HEADERS, "Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}
    )
    # Subscribed, and where the store stands read, before the page sees the stream open:
    # whatever is committed after that reaches it, from the store or from the hub.
    queue = hub.subscribe()
    try:
        loop = asyncio.get_running_loop()
        top = await loop.run_in_executor(hub.executor, _top, hub.db)
        await response.prepare(request)
        await response.write(b"retry: 1000\n\n")
        if after is not None and after > top:  # cleared while the page was away
            await response.write(event("cleared", {}, 0))
            after = 0
        sent = top if after is None else after  # a new page has what the list gave it
        if after is not None:
            if top - after > CATCH_UP_MAX:  # away for long: the newest, and what was left out
                gap = {
                    "after": after,
                    "before": top - CATCH_UP_MAX + 1,
                    "count": top - CATCH_UP_MAX - after,
                }
                await response.write(event("gap", gap, gap["before"] - 1))
                after = top - CATCH_UP_MAX
            catch_up = await loop.run_in_executor(hub.executor, _rows_after, hub.db, after, top)
            for row in catch_up:
                await response.write(event("request", summary(row), row.id))
                sent = row.id or sent
        while True:
            try:
                data = await asyncio.wait_for(queue.get(), HEARTBEAT)
            except TimeoutError:
                await response.write(b": idle\n\n")
                continue
            if data is None:  # shutdown, or this page fell behind: the browser reconnects
                break
            if b"event: cleared" in data:
                sent = 0
            elif b"event: gap" in data:
                sent = max(sent, _event_id(data) or 0)
            elif (event_id := _event_id(data)) is not None:
                if event_id <= sent:
                    continue  # already sent by the catch-up
                sent = event_id
            await response.write(data)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        hub.unsubscribe(queue)
    return response


def _event_id(data: bytes) -> int | None:
    if data.startswith(b"id: "):
        return int(data[4 : data.index(b"\n")])
    return None


def _top(db: Path) -> int:
    if not db.exists():
        return 0
    with store.opened(db) as conn:
        return store.last_row(conn)[0]


def _rows_after(db: Path, after: int, upto: int) -> list[Request]:
    if not db.exists():
        return []
    with store.opened(db) as conn:
        rows: list[Request] = []
        while True:
            batch = store.after(conn, after, upto, 500)
            rows += batch
            if len(batch) < 500:
                return rows
            after = batch[-1].id or after


@dataclass(frozen=True)
class Bound:
    host: str
    port: int
    fell_back: bool  # the port asked for was busy: another was taken

    def url(self, token: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/?token={token}"


async def serve(
    app: web.Application, host: str, port: int, *, fall_back: bool
) -> tuple[web.AppRunner, Bound]:
    """Bind the inspector. With ``fall_back``, a busy port gives way to a free one."""
    fell_back = False
    try:
        try:
            sock = _listening_socket(host, port)
        except OSError as exc:
            if not (fall_back and exc.errno == errno.EADDRINUSE):
                raise
            sock = _listening_socket(host, 0)
            fell_back = True
    except OSError as exc:
        raise BindError(
            f"cannot serve the inspector on {host}:{port}: {exc.strerror or exc}",
            hint="pick another address with the inspector's setting, or turn it off",
        ) from None
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner, Bound(host, int(sock.getsockname()[1]), fell_back)


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1" if host == "localhost" else host.strip("[]"), port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
