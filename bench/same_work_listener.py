# ruff: noqa
# The same-work reference of bench/bench_listen.py and bench/bench_latency.py, kept in the
# repository so a clean checkout can run them. Its per-request work is kept as written; only
# start-up was adapted: PORT 0 picks a free port and the URL is printed on stderr the way
# bench_listen.py waits for it. Not part of the package (not linted, hence the noqa above).
"""A same-work reference listener for benchmarks: it does the core of what `ipsms listen` does per message
(parse JSON, plain or HMAC-SHA256 signature check, group commit to SQLite in a writer thread
with synchronous=FULL, one NDJSON line, a JSON answer) and nothing else. Run it next to a bare
aiohttp handler and `ipsms listen` under the same load to see how close ipsms is to the same
work done plainly.

    python same_work_listener.py PORT [DB]      # secret: bench-secret; prints "ready"
"""

import asyncio, hmac, hashlib, json, os, sqlite3, sys, threading, time, queue
from aiohttp import web

SECRET = "bench-secret"
DB = (
    sys.argv[2]
    if len(sys.argv) > 2
    else os.path.join(os.environ.get("TMPDIR", "/tmp"), "proto.sqlite3")
)
enc = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
key = SECRET.encode()


class Writer:
    def __init__(self, path):
        self.q = []
        self.cv = threading.Condition()
        self.loop = asyncio.get_running_loop()
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.conn.execute("pragma journal_mode=wal")
        self.conn.execute("pragma synchronous=full")
        self.conn.execute(
            "create table if not exists r(id integer primary key, at real, path text, headers text, ctype text, body blob, status int, refid text, frm text, too text, msg text, verdict text, attempt int)"
        )
        self.conn.execute("create index if not exists r_refid on r(refid)")
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def submit(self, row):
        fut = self.loop.create_future()
        with self.cv:
            self.q.append((row, fut))
            self.cv.notify()
        return fut

    def run(self):
        c = self.conn
        while True:
            with self.cv:
                while not self.q:
                    self.cv.wait()
                batch, self.q = self.q, []
            try:
                c.execute("begin")
                c.executemany(
                    "insert into r(at,path,headers,ctype,body,status,refid,frm,too,msg,verdict,attempt) values (?,?,?,?,?,?,?,?,?,?,?,(select count(*)+1 from r r2 where r2.refid=?))",
                    [row + (row[7],) for row, _ in batch],
                )
                c.execute("commit")
                ok = True
            except Exception:
                if c.in_transaction:
                    c.execute("rollback")
                ok = False
            self.loop.call_soon_threadsafe(self.done, batch, ok)

    def done(self, batch, ok):
        for _, f in batch:
            if not f.done():
                f.set_result(1) if ok else f.set_exception(RuntimeError("store failed"))


out = open(os.devnull, "w")
pending = []


def flush():
    out.write("".join(pending))
    pending.clear()


async def handle(request):
    raw = await request.read()
    d = json.loads(raw)
    sig = d.get("signature", "")
    ok = hmac.compare_digest(sig.encode(), key)
    if not ok:
        mac = hmac.new(key, (d["refid"] + d["message"]).encode(), hashlib.sha256).hexdigest()
        ok = hmac.compare_digest(sig, mac)
    headers = enc(dict(request.headers))
    row = (
        time.time(),
        request.raw_path,
        headers,
        request.content_type,
        raw,
        200,
        d["refid"],
        d["from"],
        d["to"],
        d["message"],
        "valid" if ok else "invalid",
    )
    try:
        await W.submit(row)
    except RuntimeError:
        return web.Response(status=503)
    line = (
        enc(
            {
                "type": "request",
                "refid": d["refid"],
                "from": d["from"],
                "to": d["to"],
                "message": d["message"],
                "verdict": "valid" if ok else "invalid",
                "status": 200,
            }
        )
        + "\n"
    )
    if not pending:
        asyncio.get_running_loop().call_soon(flush)
    pending.append(line)
    return web.Response(
        body=enc({"status": "received", "refid": d["refid"]}).encode(),
        content_type="application/json",
    )


async def main():
    global W
    W = Writer(DB)
    app = web.Application()
    app.router.add_route("*", "/{t:.*}", handle)
    r = web.AppRunner(app, access_log=None)
    await r.setup()
    site = web.TCPSite(r, "127.0.0.1", int(sys.argv[1]))
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    print("ready", flush=True)
    print(f"listening on http://127.0.0.1:{port}/", file=sys.stderr, flush=True)
    await asyncio.Event().wait()


asyncio.run(main())
