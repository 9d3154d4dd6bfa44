"""Side-by-side benchmark: Engage vs Socket.IO (+ Redis adapter) on this machine.

Three parts, each bounded in time, all traffic on 127.0.0.1:

1. ``fanout``: S subscribers of one content item (Engage: ``subscribe``;
   Socket.IO: ``join`` a room). A ladder of publish rates; each comment carries
   its publish time (``@T<ms since epoch>@`` in the body) and the receiver
   measures latency. Engage comments are published over HTTP,
   ``POST /v1/content/{id}/comments`` with an HS256 JWT (the full path:
   validation, Postgres insert, Redis history + pub/sub, fan-out); Socket.IO
   comments over ``POST /publish/<room>`` on the Node server, which does
   ``io.to(room).emit(...)`` through the Redis adapter. For every step: delivered
   messages/s, latency p50/p99/max, loss, and the server process's CPU
   (``/proc/<pid>/stat`` utime+stime) per delivered message. Both servers hold
   their S subscribers at the same time and the rate steps alternate
   Engage / Socket.IO, so both see the same background load.
2. ``ingest``: 1,000 clients each keep ``--inflight`` ops in flight
   (like, view, unlike, view, ...) for ``--ingest-duration`` seconds;
   acknowledged ops/s. Socket.IO: an event handler does HINCRBY and acks.
   Rounds alternate Engage / Socket.IO.
3. ``idle``: ``--idle-connections`` idle WebSockets to one server process;
   RSS delta per connection.
4. ``storm`` (Engage only; not in the default ``--parts``): ``--storm-clients``
   subscribers see 20 events live, then all drop at once; ``--storm-missed``
   events are published while they are away; after ``--storm-waits`` seconds
   (a short wait finds the room still warm on the server, one past its
   5 s linger finds it cold) all reconnect, 200 at a time, and subscribe
   with ``since``: the time until every one has caught up to the last
   offset, how many were told ``recovered: false``, and any event missed,
   repeated or out of order.
5. ``wscomment`` (Engage only; not in the default ``--parts``): one signed-in
   WebSocket sends ``comment`` ops at each of ``--ws-comment-rates`` for
   ``--duration`` seconds without waiting for acks; ack latency p50/p99 and
   the server's CPU per comment (all in: storing, publishing, the event-log
   consumers).

The load generator is one Node process per server (``bench/loadgen/``, raw
``ws`` clients speaking each server's wire protocol), so both servers get the
same client. Run ``npm ci`` in ``bench/socketio`` and ``bench/loadgen`` first.

Usage::

    .venv/bin/python bench/fanout.py                       # everything
    .venv/bin/python bench/fanout.py --parts fanout --subscribers 1000 --rates 10,100
    .venv/bin/python bench/fanout.py --parts idle --idle-connections 10000

Prints JSON lines as it goes and a summary (JSON) at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import admin_execute, delete_prefix, free_port  # noqa: E402

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
NODE = os.environ.get("NODE", "node")
CONTENT = "bench-fanout"
TICK = os.sysconf("SC_CLK_TCK")
#: Seconds to wait after the last publish for deliveries still in flight.
DRAIN_TIMEOUT = 5.0
CONNECT_TIMEOUT = 120.0


def log(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


# -- /proc -----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """CPU of ``pid`` and of its live descendants (``--engage-workers``: the
    parent and its workers)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / TICK  # utime + stime (fields 14, 15)
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except FileNotFoundError:
            continue
        for child in children:
            try:
                total += cpu_seconds(int(child))
            except FileNotFoundError:
                pass  # ended meanwhile
    return total


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


# -- child processes -------------------------------------------------------------------------


class LineProc:
    """A child speaking JSON lines on stdout; commands on stdin."""

    def __init__(self, cmd: list[str], *, env=None, cwd=None, stderr=None) -> None:
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=stderr, env=env, cwd=cwd, text=True, bufsize=1)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.proc.stdout, selectors.EVENT_READ)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def readline(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sel.select(left):
                raise TimeoutError(f"no output from {self.proc.args[:2]} in {timeout}s")
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{self.proc.args[:2]} exited rc={self.proc.poll()}")
            try:
                return json.loads(line)
            except ValueError:
                continue  # not ours

    def expect(self, event: str, timeout: float) -> dict:
        while True:
            msg = self.readline(timeout)
            if msg.get("event") == event:
                return msg

    def send(self, cmd: str) -> None:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()

    def close(self, sig=signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.proc.poll() is None:
            try:
                self.send("quit")
            except (BrokenPipeError, ValueError):
                pass
            try:
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(sig)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()


#: Rate limits for the Engage server. All clients come from 127.0.0.1 and a
#: user sends far more than a person would, so real limits would refuse most
#: of the load; "unreached" keeps every check (the Redis work included) but
#: with rates the load generator never hits.
_HUGE = "100000000/1s burst 100000000"
LIMIT_ENV = {
    "off": {"ENGAGE_RATE_LIMITS": "false"},
    "unreached": {"ENGAGE_RATE_LIMITS": "true", **{
        f"ENGAGE_RATE_{name.upper()}": _HUGE for name in (
            "comment", "comment_ip", "like", "view", "ip", "events_ip", "connect_ip",
            "ws_frames")}},
}


class Engage:
    name = "engage"

    def __init__(self, tag: str, logdir: Path, limits: str = "off", workers: int = 1) -> None:
        self.db = f"engage_bench_{tag}"
        self.prefix = f"engage-bench-{tag}:"
        self.secret = secrets.token_urlsafe(24)
        self.port = free_port()
        self.logfile = logdir / f"engage-{tag}.log"
        admin_execute(ADMIN_DSN, f'CREATE DATABASE "{self.db}"')
        self.env = env = {**os.environ, "ENGAGE_DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{self.db}",
               "ENGAGE_REDIS_URL": REDIS_URL, "ENGAGE_REDIS_PREFIX": self.prefix,
               "ENGAGE_JWT_SECRET": self.secret, "ENGAGE_LOG_LEVEL": "warning",
               "ENGAGE_HOST": "127.0.0.1", "ENGAGE_PORT": str(self.port),
               "PYTHONUNBUFFERED": "1",
               # thousands of clients from 127.0.0.1: no per-address connection cap
               "ENGAGE_MAX_CONNECTIONS_PER_IP": "0", "ENGAGE_WORKERS": str(workers),
               **LIMIT_ENV[limits]}
        self.out = open(self.logfile, "w")
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "run.py")], cwd=ROOT, env=env,
                                     stdout=self.out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while "Engage serving on" not in self.logfile.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("engage did not start:\n" + self.logfile.read_text())
            time.sleep(0.1)
        self.pid = self.proc.pid

    def token(self, user: str) -> str:
        from engage.auth import issue_token
        return issue_token(self.secret, user, expires_in=7200)

    def publish_target(self):
        return (f"http://127.0.0.1:{self.port}/v1/content/{CONTENT}/comments",
                {"Authorization": f"Bearer {self.token('bench-publisher')}"})

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()
        try:
            admin_execute(ADMIN_DSN, f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')
        finally:
            delete_prefix(REDIS_URL, self.prefix)


class ChildServer:
    """A reference server run as a child that prints ``{"port": N}`` when it listens."""

    name = ""
    stop_signal = signal.SIGTERM

    def _start(self, cmd: list[str], logfile: Path, **popen) -> None:
        self.secret = ""
        self.logfile = logfile
        self.err = open(logfile, "w")
        self.lp = LineProc(cmd, stderr=self.err, **popen)
        self.port = self.lp.readline(30)["port"]
        self.pid = self.lp.pid

    def publish_target(self):
        return f"http://127.0.0.1:{self.port}/publish/{CONTENT}", {}

    def stop(self) -> None:
        self.lp.proc.send_signal(self.stop_signal)
        try:
            self.lp.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.lp.proc.kill()
            self.lp.proc.wait()
        self.err.close()


class SocketIO(ChildServer):
    name = "socketio"

    def __init__(self, tag: str, logdir: Path) -> None:
        self.prefix = f"sio-bench-{tag}:"
        env = {**os.environ, "PORT": "0", "REDIS_URL": REDIS_URL, "PREFIX": self.prefix}
        self._start([NODE, "server.js"], logdir / f"socketio-{tag}.log", env=env,
                    cwd=ROOT / "bench" / "socketio")

    def stop(self) -> None:
        super().stop()
        delete_prefix(REDIS_URL, self.prefix)


class TrioFloor(ChildServer):
    """``bench/floor_server.py``: raw trio + wsproto, one frame written to every member."""

    name = "floor"
    stop_signal = signal.SIGINT

    def __init__(self, tag: str, logdir: Path) -> None:
        self._start([sys.executable, str(ROOT / "bench" / "floor_server.py")],
                    logdir / f"floor-{tag}.log")


class LoadGroup:
    """Several load generator processes driven as one (a process holds at most
    ``RLIMIT_NOFILE`` sockets: 20,000 on the reference machine). Replies are
    merged: counts add up; latency percentiles and seconds are the worst of
    the processes' (an upper bound, not a merged distribution)."""

    _SUM = ("connected", "failed", "received", "other", "errors", "closed", "disorder", "acks",
            "acks_per_s", "clients", "unrecovered")
    _MAX = ("p50", "p99", "max", "seconds")

    def __init__(self, procs: list[LineProc]) -> None:
        self.procs = procs

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.procs)

    def send(self, cmd: str) -> None:
        for proc in self.procs:
            proc.send(cmd)

    def expect(self, event: str, timeout: float) -> dict:
        replies = [proc.expect(event, timeout) for proc in self.procs]
        merged = dict(replies[0])
        for key in self._SUM:
            if key in merged:
                merged[key] = sum(r[key] for r in replies)
        for key in self._MAX:
            if key in merged:
                values = [r[key] for r in replies if r[key] is not None]
                merged[key] = max(values) if values else None
        return merged

    def close(self) -> None:
        for proc in self.procs:
            proc.close()


def loadgen(server, *, n: int, processes: int = 1, **config) -> LoadGroup:
    config = {"server": "sio" if server.name == "socketio" else "engage", "port": server.port,
              "secret": server.secret, "content": CONTENT, "contents": 100, "parallel": 200,
              **config}
    procs, first = [], 0
    for k in range(processes):
        share = n // processes + (1 if k < n % processes else 0)
        procs.append(LineProc([NODE, str(ROOT / "bench" / "loadgen" / "loadgen.js"),
                               json.dumps({**config, "n": share, "first": first})]))
        first += share
    return LoadGroup(procs)


# -- publisher -------------------------------------------------------------------------------


class HttpPublisher:
    """POST each comment (Engage: the comments API with a JWT; Socket.IO: /publish)."""

    def __init__(self, server) -> None:
        self.server = server

    async def __aenter__(self):
        import httpx

        self.errors = (httpx.HTTPError,)
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
        self.client = httpx.AsyncClient(limits=limits, timeout=60.0)
        await self.client.__aenter__()
        self.url, self.headers = self.server.publish_target()
        return self

    async def __aexit__(self, *exc):
        await self.client.__aexit__(*exc)

    async def __call__(self, seq: int, stamp: float) -> bool:
        resp = await self.client.post(self.url, headers=self.headers,
                                      json={"body": f"bench {seq} @T{stamp:.3f}@"})
        if resp.status_code not in (200, 201):
            raise RuntimeError(f"HTTP {resp.status_code}: {resp.text[:200]}")
        return True


class ApiPublisher:
    """Engage only: ``RedisHistory.publish`` from this process (no HTTP, no Postgres).

    The event goes into the item's history and out on its pub/sub channel
    exactly as a posted comment's does; the server's router fans it out.
    """

    def __init__(self, server) -> None:
        self.server = server

    async def __aenter__(self):
        from contextlib import AsyncExitStack

        from engage.settings import load_settings
        from engage.system import open_stores

        self.errors = (Exception,)
        settings = load_settings(env=self.server.env)
        self.stack = AsyncExitStack()
        self.stores = await self.stack.enter_async_context(open_stores(settings))
        return self

    async def __aexit__(self, *exc):
        await self.stack.__aexit__(*exc)

    async def __call__(self, seq: int, stamp: float) -> bool:
        payload = {"id": str(10**9 + seq), "author": "bench-publisher",
                   "body": f"bench {seq} @T{stamp:.3f}@", "parent": None,
                   "created_at": "2026-01-01T00:00:00.000Z", "edited_at": None}
        await self.stores.history.publish(f"content:{CONTENT}", "comment", payload,
                                          content_id=CONTENT, comment_delta=1)
        return True


async def _publish(server, rate: float, duration: float, mode: str) -> dict:
    """Open loop: comment k is due at start + k/rate and carries that due time as its
    stamp, so a publisher stuck behind a slow server shows up as latency (no
    coordinated omission)."""
    n = int(rate * duration)
    ok = failed = 0
    lat: list[float] = []
    publisher = ApiPublisher(server) if mode == "api" else HttpPublisher(server)
    async with publisher as pub:
        sem = trio.Semaphore(256)
        wall0 = time.time() * 1e3

        async def one(seq: int) -> None:
            nonlocal ok, failed
            stamp = wall0 + seq / rate * 1e3
            async with sem:
                t = time.monotonic()
                try:
                    await pub(seq, stamp)
                    ok += 1
                except pub.errors as exc:
                    failed += 1
                    if failed <= 3:
                        log({"publish_error": repr(exc)[:300]})
                lat.append(time.monotonic() - t)

        start = trio.current_time()
        t0 = time.monotonic()
        async with trio.open_nursery() as nursery:
            for seq in range(n):
                await trio.sleep_until(start + seq / rate)
                nursery.start_soon(one, seq)
            sent_s = time.monotonic() - t0
    lat.sort()
    return {"ok": ok, "failed": failed, "send_window_s": sent_s,
            "http_p99_ms": round(lat[int(0.99 * (len(lat) - 1))] * 1e3, 1) if lat else None}


def fanout_step(server, lg: LoadGroup, subscribers: int, rate: float, duration: float,
                mode: str) -> dict:
    lg.send("reset")
    cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
    lg_cpu0 = lg.cpu_seconds()
    pub = trio.run(_publish, server, rate, duration, mode)
    expected = pub["ok"] * subscribers
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while True:
        lg.send("report")
        rep = lg.expect("report", 30)
        if rep["received"] >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    cpu1, t1 = cpu_seconds(server.pid), time.monotonic()
    lg_cpu = lg.cpu_seconds() - lg_cpu0
    received = rep["received"]
    return {"part": "fanout", "server": server.name, "publish": mode,
            "subscribers": subscribers, "rate": rate,
            "published": pub["ok"], "publish_failed": pub["failed"],
            "publish_call_p99_ms": pub["http_p99_ms"],
            "expected": expected, "received": received, "lost": expected - received,
            "loss_pct": round(100 * (expected - received) / expected, 3) if expected else None,
            "delivered_per_s": round(received / (t1 - t0)),
            "p50_ms": rep["p50"], "p99_ms": rep["p99"], "max_ms": round(rep["max"], 1),
            "other_frames": rep["other"], "closed": rep["closed"],
            # Engage: events missed, repeated or out of order, over all subscribers
            "out_of_order": rep["disorder"] if server.name != "socketio" else None,
            "server_cpu_s": round(cpu1 - cpu0, 2), "window_s": round(t1 - t0, 2),
            "server_cpu_pct": round(100 * (cpu1 - cpu0) / (t1 - t0), 1),
            "loadgen_cpu_pct": round(100 * lg_cpu / (t1 - t0), 1),
            "us_per_delivery": round((cpu1 - cpu0) / received * 1e6, 2) if received else None}


def connect(server, mode: str, n: int, **config) -> tuple[LoadGroup, dict]:
    rss0 = rss_bytes(server.pid)
    t = time.monotonic()
    lg = loadgen(server, mode=mode, n=n, **config)
    ready = lg.expect("ready", CONNECT_TIMEOUT)
    connect_s = time.monotonic() - t
    time.sleep(2.0)  # let the server settle (presence, first pings, GC)
    rss1 = rss_bytes(server.pid)
    info = {"server": server.name, "mode": mode, "connections": ready["connected"],
            "failed": ready["failed"], "connect_s": round(connect_s, 2),
            "rss_before_mib": round(rss0 / 2**20, 1), "rss_after_mib": round(rss1 / 2**20, 1),
            "rss_per_conn_kib": round((rss1 - rss0) / max(ready["connected"], 1) / 1024, 2)}
    return lg, info


# -- parts -----------------------------------------------------------------------------------


def part_fanout(servers, args, results) -> None:
    for subs in args.subscribers:
        lgs = {}
        try:
            for server in servers:
                lg, info = connect(server, "fanout", subs,
                                   processes=-(-subs // args.clients_per_loadgen))
                lgs[server.name] = lg
                info.update(part="fanout_connect", subscribers=subs)
                log(info)
                results.append(info)
            for server in servers:  # all subscribed, nothing published: heartbeats & co.
                cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
                time.sleep(args.idle_window)
                cpu, wall = cpu_seconds(server.pid) - cpu0, time.monotonic() - t0
                row = {"part": "fanout_idle", "server": server.name, "subscribers": subs,
                       "seconds": round(wall, 1), "server_cpu_pct": round(100 * cpu / wall, 2)}
                log(row)
                results.append(row)
            for i, rate in enumerate(args.rates):
                order = servers if i % 2 == 0 else servers[::-1]
                for server in order:
                    if subs * rate > args.max_deliveries:
                        continue
                    modes = (args.engage_publish.split(",") if server.name == "engage"
                             else ["http"])
                    for mode in modes:
                        row = fanout_step(server, lgs[server.name], subs, rate, args.duration, mode)
                        log(row)
                        results.append(row)
                        time.sleep(1.0)
        finally:
            for lg in lgs.values():
                lg.close()
            time.sleep(2.0)


def part_ingest(servers, args, results) -> None:
    for rnd in range(args.ingest_rounds):
        order = servers if rnd % 2 == 0 else servers[::-1]
        for server in order:
            lg, info = connect(server, "ingest", args.ingest_clients, inflight=args.inflight,
                               duration=args.ingest_duration)
            try:
                cpu0 = cpu_seconds(server.pid)
                lg.send("go")
                res = lg.expect("ingest", args.ingest_duration + 30)
                cpu = cpu_seconds(server.pid) - cpu0
            finally:
                lg.close()
            row = {"part": "ingest", "server": server.name, "round": rnd,
                   "clients": info["connections"], "inflight": args.inflight,
                   "acks": res["acks"], "errors": res["errors"],
                   "first_error": res.get("first_error"),
                   "acks_per_s": round(res["acks_per_s"]), "closed": res["closed"],
                   "server_cpu_pct": round(100 * cpu / res["seconds"], 1),
                   "us_per_ack": round(cpu / max(res["acks"], 1) * 1e6, 1)}
            log(row)
            results.append(row)
            time.sleep(2.0)


async def _ws_comments(server, rate: float, duration: float) -> dict:
    """One signed-in WebSocket sends ``comment`` ops at ``rate`` for ``duration``
    without waiting for acks; the ack latency of each (matched by ref)."""
    from trio_websocket import open_websocket_url

    url = f"ws://127.0.0.1:{server.port}/v1/ws?token={server.token('ws-poster')}"
    n = int(rate * duration)
    sent_at: dict[int, float] = {}
    latencies: list[float] = []
    errors = 0
    async with open_websocket_url(url) as ws:
        async def reader() -> None:
            nonlocal errors
            while len(latencies) + errors < n:
                frame = json.loads(await ws.get_message())
                ref = frame.get("ref")
                if ref in sent_at and frame.get("type") in ("ack", "error"):
                    if frame["type"] == "ack":
                        latencies.append(time.monotonic() - sent_at.pop(ref))
                    else:
                        errors += 1
                        sent_at.pop(ref)

        with trio.fail_after(duration + 60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                start = trio.current_time()
                for i in range(n):
                    await trio.sleep_until(start + i / rate)
                    sent_at[i] = time.monotonic()
                    await ws.send_message(json.dumps({"op": "comment", "content": "wscomments",
                                                      "body": f"ws comment {i}", "ref": i}))
    latencies.sort()
    return {"sent": n, "acked": len(latencies), "errors": errors,
            "p50_ms": round(1000 * latencies[len(latencies) // 2], 1) if latencies else None,
            "p99_ms": round(1000 * latencies[int(len(latencies) * 0.99) - 1], 1)
            if latencies else None}


def part_wscomment(servers, args, results) -> None:
    """Engage only (Socket.IO stores no comments): one socket posting comments."""
    for server in servers:
        if server.name != "engage":
            continue
        for rate in args.ws_comment_rates:
            cpu0, wall0 = cpu_seconds(server.pid), time.monotonic()
            res = trio.run(_ws_comments, server, rate, args.duration)
            cpu, wall = cpu_seconds(server.pid) - cpu0, time.monotonic() - wall0
            row = {"part": "wscomment", "server": server.name, "rate": rate, **res,
                   "server_cpu_pct": round(100 * cpu / wall, 1),
                   "ms_per_comment": round(1000 * cpu / max(res["acked"], 1), 2)}
            log(row)
            results.append(row)
            time.sleep(1.0)


def _history_offset(server) -> int:
    import redis

    from engage.store import Keys
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return int(client.hget(Keys(server.prefix).history_meta(f"content:{CONTENT}"),
                               "offset") or 0)
    finally:
        client.close()


def _wait_received(lg: LoadGroup, expected: int, timeout: float = DRAIN_TIMEOUT) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        lg.send("report")
        rep = lg.expect("report", 30)
        if rep["received"] >= expected or time.monotonic() > deadline:
            return rep
        time.sleep(0.2)


def part_storm(servers, args, results) -> None:
    """Engage only: a reconnect storm with catch-up (see the module docstring)."""
    for server in servers:
        if server.name != "engage":
            continue
        for wait in args.storm_waits:
            lg, info = connect(server, "storm", args.storm_clients)
            try:
                lg.send("reset")
                trio.run(_publish, server, 20.0, 1.0, "api")
                live = _wait_received(lg, 20 * info["connections"])
                lg.send("drop")
                lg.expect("dropped", 30)
                time.sleep(0.5)
                trio.run(_publish, server, float(args.storm_missed), 1.0, "api")
                target = _history_offset(server)
                time.sleep(max(0.0, wait - 1.5))
                cpu0 = cpu_seconds(server.pid)
                lg.send(f"reconnect {target}")
                res = lg.expect("storm", CONNECT_TIMEOUT)
                cpu = cpu_seconds(server.pid) - cpu0
            finally:
                lg.close()
            row = {"part": "storm", "server": server.name, "clients": res["clients"],
                   "wait_s": wait, "missed_each": args.storm_missed,
                   "live_out_of_order": live["disorder"], "seconds": round(res["seconds"], 2),
                   "unrecovered": res["unrecovered"], "out_of_order": res["disorder"],
                   "server_cpu_s": round(cpu, 2)}
            log(row)
            results.append(row)
            time.sleep(2.0)


def part_idle(servers, args, results) -> None:
    for server in servers:
        if server.name not in args.idle_servers:
            continue
        lg, info = connect(server, "idle", args.idle_connections, parallel=100)
        lg.close()
        info.update(part="idle")
        log(info)
        results.append(info)
        time.sleep(3.0)


def summary(results: list[dict]) -> dict:
    out: dict = {"fanout": {}, "ingest": {}, "idle": {}}
    by = {}
    for r in results:
        if r["part"] == "fanout":
            by.setdefault((r["subscribers"], r["rate"]), {})[(r["server"], r["publish"])] = r
    for (subs, rate), pair in sorted(by.items()):
        s = pair.get(("socketio", "http"))
        for mode in ("http", "api"):
            e = pair.get(("engage", mode))
            if e is None:
                continue
            ratio = (round(e["us_per_delivery"] / s["us_per_delivery"], 2)
                     if s and e["us_per_delivery"] and s["us_per_delivery"] else None)
            out["fanout"][f"S={subs} rate={rate:g} engage-publish={mode}"] = {
                "engage_us": e["us_per_delivery"], "socketio_us": s and s["us_per_delivery"],
                "cpu_ratio_engage_over_sio": ratio,
                "engage_p99_ms": e["p99_ms"], "socketio_p99_ms": s and s["p99_ms"],
                "engage_loss_pct": e["loss_pct"], "socketio_loss_pct": s and s["loss_pct"]}
    ing = {}
    for r in results:
        if r["part"] == "ingest":
            ing.setdefault(r["server"], []).append(r["acks_per_s"])
    if ing:
        out["ingest"] = {k: {"acks_per_s": v, "mean": round(sum(v) / len(v))} for k, v in ing.items()}
        if "engage" in ing and "socketio" in ing:
            out["ingest"]["ratio_engage_over_sio"] = round(
                (sum(ing["engage"]) / len(ing["engage"])) / (sum(ing["socketio"]) / len(ing["socketio"])), 2)
    for r in results:
        if r["part"] in ("idle", "fanout_connect"):
            out["idle"].setdefault(r["server"], []).append(
                {"connections": r["connections"], "rss_per_conn_kib": r["rss_per_conn_kib"],
                 "from": r["part"]})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="fanout,ingest,idle")
    parser.add_argument("--servers", default="engage,socketio")
    parser.add_argument("--subscribers", default="1000,5000")
    parser.add_argument("--rates", default="10,50,100,200", help="comments/s ladder")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per rate step")
    parser.add_argument("--engage-publish", default="http,api",
                        help="how Engage comments are published: http (POST comments API), "
                             "api (RedisHistory.publish from the bench process), or both")
    parser.add_argument("--max-deliveries", type=float, default=250000,
                        help="skip steps with subscribers*rate above this")
    parser.add_argument("--limits", choices=sorted(LIMIT_ENV), default="off",
                        help="Engage's rate limits: off, or on with rates no load "
                             "generator reaches (to measure what checking them costs)")
    parser.add_argument("--ws-comment-rates", default="100,200",
                        help="comments/s one WebSocket posts (part wscomment)")
    parser.add_argument("--engage-workers", type=int, default=1,
                        help="Engage's worker processes (run.py --workers); CPU is the sum")
    parser.add_argument("--clients-per-loadgen", type=int, default=10000,
                        help="most sockets one load generator process holds")
    parser.add_argument("--idle-window", type=float, default=10.0,
                        help="seconds of server CPU measured with every subscriber idle")
    parser.add_argument("--storm-clients", type=int, default=5000)
    parser.add_argument("--storm-missed", type=int, default=10,
                        help="events published while the storm's clients are away")
    parser.add_argument("--storm-waits", default="1.5,7",
                        help="seconds from the drop to the reconnect, one storm each")
    parser.add_argument("--ingest-clients", type=int, default=1000)
    parser.add_argument("--inflight", type=int, default=4)
    parser.add_argument("--ingest-duration", type=float, default=10.0)
    parser.add_argument("--ingest-rounds", type=int, default=2)
    parser.add_argument("--idle-connections", type=int, default=10000)
    parser.add_argument("--idle-servers", default="engage,socketio")
    parser.add_argument("--hold", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.subscribers = [int(x) for x in args.subscribers.split(",") if x]
    args.rates = [float(x) for x in args.rates.split(",") if x]
    args.ws_comment_rates = [float(x) for x in args.ws_comment_rates.split(",") if x]
    args.idle_servers = set(args.idle_servers.split(","))
    args.storm_waits = [float(x) for x in args.storm_waits.split(",") if x]

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children inherit it

    tag = secrets.token_hex(4)
    logdir = ROOT / "var" / "bench"
    logdir.mkdir(parents=True, exist_ok=True)
    servers: list = []
    results: list[dict] = []
    try:
        for name in args.servers.split(","):
            servers.append(Engage(tag, logdir, args.limits, args.engage_workers)
                           if name == "engage"
                           else TrioFloor(tag, logdir) if name == "floor"
                           else SocketIO(tag, logdir))
            log({"started": name, "pid": servers[-1].pid, "port": servers[-1].port})
        for part in args.parts.split(","):
            {"fanout": part_fanout, "ingest": part_ingest, "idle": part_idle,
             "wscomment": part_wscomment, "storm": part_storm}[part](
                servers, args, results)
    finally:
        for server in servers:
            try:
                server.stop()
            except Exception as exc:  # keep cleaning the others
                log({"cleanup_error": server.name, "error": repr(exc)})
    print(json.dumps({"summary": summary(results)}, indent=2), flush=True)


if __name__ == "__main__":
    main()
