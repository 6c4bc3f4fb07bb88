# ruff: noqa
"""The same-work reference (same_work_listener.py) with its SQLite writer moved from a thread to
a child process, the way `ipsms listen` writes (ipsms/store/writer.py): the smallest program
doing the listener's core work with that design. It shows how close to the bare handler that
design can get when nothing else runs per request (no flags, no connection guard, no full NDJSON
shape).

    python bench/same_work_process_writer.py PORT [DB]     # PORT 0: a free one, said on stderr

Not part of bench/run.py; measure it next to the others, in the same rounds, with
`bench/bench_listen.py --extra bench/same_work_process_writer.py`.
"""

import asyncio, hashlib, hmac, json, marshal, os, sqlite3, struct, subprocess, sys, time
from aiohttp import web

SECRET = "bench-secret"
DB = (
    sys.argv[2]
    if len(sys.argv) > 2
    else os.path.join(os.environ.get("TMPDIR", "/tmp"), "proto.sqlite3")
)
enc = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
key = SECRET.encode()
L = struct.Struct("!I")

CHILD = r"""
import marshal, os, sqlite3, struct, sys
L = struct.Struct("!I")
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("pragma journal_mode=wal"); c.execute("pragma synchronous=full")
c.execute("create table if not exists r(id integer primary key, at real, path text, headers text, ctype text, body blob, status int, refid text, frm text, too text, msg text, verdict text, attempt int)")
c.execute("create index if not exists r_refid on r(refid)")
buf = bytearray()
while data := os.read(0, 1 << 20):
    buf += data; rows = []
    while len(buf) >= 4 and len(buf) >= 4 + L.unpack_from(buf)[0]:
        n = L.unpack_from(buf)[0]; rows += marshal.loads(bytes(buf[4:4 + n])); del buf[:4 + n]
    if not rows: continue
    c.execute("begin")
    c.executemany("insert into r(at,path,headers,ctype,body,status,refid,frm,too,msg,verdict,attempt) values (?,?,?,?,?,?,?,?,?,?,?,(select count(*)+1 from r r2 where r2.refid=?))", [row + (row[6],) for row in rows])
    c.execute("commit")
    os.write(1, L.pack(len(rows)))
"""


class Writer:
    def __init__(self, path):
        self.loop = asyncio.get_running_loop()
        self.p = subprocess.Popen(
            [sys.executable, "-c", CHILD, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self.w, self.r = self.p.stdin.fileno(), self.p.stdout.fileno()
        os.set_blocking(self.w, False)
        os.set_blocking(self.r, False)
        self.rows, self.futs, self.buf = [], [], bytearray()
        self.loop.add_reader(self.r, self.acked)

    def submit(self, row):
        fut = self.loop.create_future()
        if not self.rows:
            self.loop.call_soon(self.flush)
        self.rows.append(row)
        self.futs.append(fut)
        return fut

    def flush(self):
        data = marshal.dumps(self.rows)
        self.rows = []
        os.write(self.w, L.pack(len(data)) + data)  # a benchmark: the pipe never fills here

    def acked(self):
        self.buf += os.read(self.r, 65536)
        while len(self.buf) >= 4:
            n = L.unpack_from(self.buf)[0]
            del self.buf[:4]
            done, self.futs = self.futs[:n], self.futs[n:]
            for f in done:
                if not f.done():
                    f.set_result(1)


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
    await W.submit(row)
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
