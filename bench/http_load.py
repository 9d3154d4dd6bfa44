"""Side-by-side HTTP benchmark: Engage vs a Starlette/uvicorn reference on this machine.

(Named ``http_load.py``, not ``http.py``: a script run as ``python bench/X.py``
has ``bench/`` first on its import path, where an ``http.py`` would shadow the
standard library's ``http`` for every bench tool.)

The reference (``bench/http_reference.py``) is Starlette on uvicorn with uvloop
and httptools, one worker, a ``redis.asyncio`` pool: ``HINCRBY`` per view,
``HGETALL`` for counts. Both servers run for the whole benchmark and are
measured one at a time, alternating (engage, reference, engage, reference),
all traffic on 127.0.0.1.

Scenarios (``--scenarios``, default all):

* ``healthz``   ``GET /healthz``
* ``views``     ``POST /v1/content/{id}/views`` with no body (202 ``{"views": n}``);
                afterwards the views counted must equal the 202s sent
* ``counts``    ``GET /v1/content/{id}`` (items seeded with one view each)
* ``like``      ``PUT`` then ``DELETE /v1/content/{id}/like``, alternating, each
                connection signed in as its own user (HS256 JWT). Engage only:
                compared with the reference's ``views`` of the same round
* ``applause``  ``POST /v1/content/{id}/applause`` ``{"count": 1}``, signed in.
                Engage only, compared with the reference's ``views``

Load: ``--connections`` keep-alive connections (64), one request in flight
each, over 100 content ids (round robin, a fresh set of ids per run so runs
don't mix), ``--warmup`` seconds of load before each ``--duration`` second
window. The load generator is ``--load-procs`` OS processes, each a raw-socket
asyncio client (uvloop when installed) sending pre-built request bytes and
parsing responses minimally (header end, Content-Length, body).

Per run: req/s in the window, latency p50/p99, server CPU (``/proc/<pid>/stat``
utime+stime over the window) per request and in %, the load generator's CPU
(``getrusage`` over the window) in %, and ``stalls``: the share of 10 ms slices
of the window in which no response completed (a server working in waves shows
up there and in p99/p50).

Usage::

    .venv/bin/python bench/http_load.py                        # everything, ~4 minutes
    .venv/bin/python bench/http_load.py --quick                # 3 s windows, one round
    .venv/bin/python bench/http_load.py --scenarios views,like --duration 20 --load-procs 2
    .venv/bin/python bench/http_load.py --engage-url http://127.0.0.1:8080 --secret "$ENGAGE_JWT_SECRET"

Prints one line per run, then machine info and a Markdown table (for
docs/benchmarks.md), then one JSON line with everything.
"""

from __future__ import annotations

import os
import sys

import argparse
import datetime
import gc
import json
import platform
import resource
import secrets
import selectors
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
TICK = os.sysconf("SC_CLK_TCK")
SCENARIOS = ("healthz", "views", "counts", "like", "applause")
#: Scenarios the reference serves; the others are compared with its ``views``.
REFERENCE_SCENARIOS = ("healthz", "views", "counts")
ITEMS = 100
#: Width of the slices ``stalls`` counts, seconds.
SLICE = 0.010
#: Applause: sign in as a new user every this many requests of a connection, so a
#: server with the default per-user cap (50 per item) keeps doing the real work.
APPLAUSE_USER_EVERY = 40 * ITEMS


# -- load generator (runs in its own process: ``http_load.py --worker CONFIG``) --------------------


def build_requests(scenario: str, host: str, ids: list[str], conn: int,
                   token: str | None) -> list[bytes]:
    """The request cycle of one connection, as bytes (starting at its own offset)."""
    head = f"Host: {host}\r\n"
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    n = len(ids)
    order = [ids[(conn + k) % n] for k in range(n)]
    out: list[bytes] = []
    if scenario == "healthz":
        return [f"GET /healthz HTTP/1.1\r\n{head}\r\n".encode()]
    for cid in order:
        if scenario == "views":
            out.append(f"POST /v1/content/{cid}/views HTTP/1.1\r\n{head}"
                       f"Content-Length: 0\r\n\r\n".encode())
        elif scenario == "counts":
            out.append(f"GET /v1/content/{cid} HTTP/1.1\r\n{head}\r\n".encode())
        elif scenario == "like":
            out.append(f"PUT /v1/content/{cid}/like HTTP/1.1\r\n{head}{auth}"
                       f"Content-Length: 0\r\n\r\n".encode())
            out.append(f"DELETE /v1/content/{cid}/like HTTP/1.1\r\n{head}{auth}\r\n".encode())
        elif scenario == "applause":
            body = b'{"count":1}'
            out.append(f"POST /v1/content/{cid}/applause HTTP/1.1\r\n{head}{auth}"
                       f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                       f"\r\n".encode() + body)
        else:
            raise ValueError(scenario)
    return out


def worker_main(config: dict) -> None:
    """One load-generator process: connect, report ready, wait for ``go``, load, report."""
    import asyncio

    try:
        import uvloop
        uvloop.install()
        loop_name = "uvloop"
    except ImportError:
        loop_name = "asyncio"

    perf = time.perf_counter
    scenario = config["scenario"]
    host, port = config["host"], config["port"]
    secret = config.get("secret")
    user_tag = config["user_tag"]

    def token_for(user: str) -> str | None:
        if scenario not in ("like", "applause"):
            return None
        from engage.auth import issue_token
        return issue_token(secret, user, expires_in=7200)

    class Shared:
        start = stop = float("inf")  # the window, perf_counter seconds
        sending = True
        done = 0
        latencies: list[float] = []
        slices = [0] * (int(config["duration"] / SLICE) + 2)
        status_window: dict[int, int] = {}
        status_all: dict[int, int] = {}
        lost = 0
        conns: list = []

    shared = Shared()

    class Conn(asyncio.Protocol):
        def __init__(self, index: int) -> None:
            self.index = index
            self.user_no = 0
            self.requests = build_requests(scenario, f"{host}:{port}", config["ids"],
                                           config["first_conn"] + index, self.new_token())
            self.count = len(self.requests)
            self.next = 0
            self.sent_on_user = 0
            self.buf = b""
            self.need = -1
            self.t0 = 0.0
            self.transport = None
            self.busy = False
            self.finished = asyncio.get_running_loop().create_future()

        def new_token(self) -> str | None:
            self.user_no += 1
            return token_for(f"bench-{user_tag}-{config['first_conn'] + self.index}"
                             f"-{self.user_no}")

        def connection_made(self, transport) -> None:
            self.transport = transport

        def connection_lost(self, exc) -> None:
            if self.busy or shared.sending:
                shared.lost += 1
            self.busy = False
            self.transport = None
            if not self.finished.done():
                self.finished.set_result(None)

        def send(self) -> None:
            if scenario == "applause":
                self.sent_on_user += 1
                if self.sent_on_user > APPLAUSE_USER_EVERY:
                    self.sent_on_user = 1
                    self.requests = build_requests(scenario, f"{host}:{port}", config["ids"],
                                                   config["first_conn"] + self.index,
                                                   self.new_token())
            req = self.requests[self.next]
            self.next += 1
            if self.next == self.count:
                self.next = 0
            self.busy = True
            self.t0 = perf()
            self.transport.write(req)

        def data_received(self, data: bytes) -> None:
            buf = self.buf + data if self.buf else data
            if self.need < 0:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    self.buf = buf
                    return
                head = buf[:end].lower()
                at = head.find(b"content-length:")
                length = 0
                if at >= 0:
                    eol = head.find(b"\r\n", at)
                    length = int(head[at + 15:eol if eol >= 0 else end])
                self.need = end + 4 + length
            if len(buf) < self.need:
                self.buf = buf
                return
            status = int(buf[9:12])
            self.buf = buf[self.need:]  # one request in flight: nothing should follow
            self.need = -1
            self.busy = False
            t = perf()
            sa = shared.status_all
            sa[status] = sa.get(status, 0) + 1
            if shared.start <= t <= shared.stop:
                shared.latencies.append(t - self.t0)
                shared.slices[int((t - shared.start) / SLICE)] += 1
                sw = shared.status_window
                sw[status] = sw.get(status, 0) + 1
            if shared.sending and t < shared.stop:
                self.send()
            elif not self.finished.done():
                self.finished.set_result(None)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        conns = []
        for i in range(config["connections"]):
            conn = Conn(i)
            await loop.create_connection(lambda c=conn: c, host, port)
            conns.append(conn)
        shared.conns = conns
        print(json.dumps({"event": "ready", "connected": len(conns), "loop": loop_name}),
              flush=True)
        line = await loop.run_in_executor(None, sys.stdin.readline)
        _, t_go, t_start, t_stop = line.split()
        # CLOCK_MONOTONIC is shared by processes: turn the orchestrator's times into ours.
        offset = perf() - time.monotonic()
        go, shared.start, shared.stop = (float(t_go) + offset, float(t_start) + offset,
                                         float(t_stop) + offset)
        gc.collect()
        gc.freeze()
        gc.disable()
        usage: dict[str, float] = {}

        def sample(name: str) -> None:
            ru = resource.getrusage(resource.RUSAGE_SELF)
            usage[name] = ru.ru_utime + ru.ru_stime

        await asyncio.sleep(max(0.0, go - perf()))
        for conn in conns:
            conn.send()
        loop.call_later(max(0.0, shared.start - perf()), sample, "start")
        await asyncio.sleep(max(0.0, shared.stop - perf()))
        sample("stop")
        shared.sending = False
        timeout = False
        try:
            await asyncio.wait_for(
                asyncio.gather(*(c.finished for c in conns if c.busy)), 30.0)
        except asyncio.TimeoutError:
            timeout = True
        gc.enable()
        in_flight = sum(1 for c in conns if c.busy)
        for conn in conns:
            if conn.transport is not None:
                conn.transport.close()
        print(json.dumps({
            "event": "result", "loop": loop_name,
            "latencies": [round(x * 1000, 4) for x in shared.latencies],
            "slices": shared.slices[:int(round(config["duration"] / SLICE))],
            "status_window": shared.status_window, "status_all": shared.status_all,
            "lost": shared.lost, "in_flight_at_end": in_flight, "timeout": timeout,
            "cpu_s": usage.get("stop", 0.0) - usage.get("start", 0.0)}), flush=True)

    asyncio.run(run())


# -- orchestrator ----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime (fields 14, 15)


def pid_listening_on(port: int) -> int | None:
    """The process with a socket listening on ``port`` (for ``--engage-url``), if visible."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(f"socket:[{parts[9]}]")
        except OSError:
            continue
    if not inodes:
        return None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return int(pid)
        except OSError:
            continue
    return None


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already in user
    return total - idle, total


def backend_cpu(database: str | None) -> dict[int, float]:
    """CPU seconds of each Postgres backend serving ``database`` (by process title)."""
    out: dict[int, float] = {}
    if not database:
        return out
    needle = f" {database} ".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read()
            if title.startswith(b"postgres:") and needle in title:
                out[int(pid)] = cpu_seconds(int(pid))
        except OSError:
            continue
    return out


def pid_named(name: str) -> int | None:
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == name:
                    return int(pid)
        except OSError:
            continue
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_line(logfile: Path, proc: subprocess.Popen, marker: str, what: str,
                  timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while marker not in logfile.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start:\n" + logfile.read_text()[-3000:])
        time.sleep(0.1)


class Server:
    name = ""
    host = "127.0.0.1"
    port = 0
    pid: int | None = None
    secret: str | None = None
    db: str | None = None

    def views_of(self, ids: list[str]) -> int:
        raise NotImplementedError

    def seed(self, ids: list[str]) -> None:
        import httpx
        with httpx.Client(base_url=f"http://{self.host}:{self.port}", timeout=30) as http:
            for cid in ids:
                http.post(f"/v1/content/{cid}/views").raise_for_status()

    def stop(self) -> None:
        pass


class Engage(Server):
    """``python run.py`` on a fresh database and Redis prefix (or one already running)."""

    name = "engage"

    def __init__(self, tag: str, logdir: Path, url: str | None = None,
                 secret: str | None = None) -> None:
        self.proc = None
        self.out = None
        if url:
            parts = urlsplit(url)
            self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
            self.secret = secret or None
            self.pid = pid_listening_on(self.port)
            return
        from tests.support import admin_execute

        self.db = f"engage_bench_http_{tag}"
        self.prefix = f"engage-bench-http-{tag}:"
        self.secret = secrets.token_urlsafe(32)
        self.port = free_port()
        self.logfile = logdir / f"http-engage-{tag}.log"
        admin_execute(ADMIN_DSN, f'CREATE DATABASE "{self.db}"')
        env = {**os.environ,
               "ENGAGE_DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{self.db}",
               "ENGAGE_REDIS_URL": REDIS_URL, "ENGAGE_REDIS_PREFIX": self.prefix,
               "ENGAGE_JWT_SECRET": self.secret, "ENGAGE_LOG_LEVEL": "warning",
               "ENGAGE_HOST": self.host, "ENGAGE_PORT": str(self.port),
               # One load generator on 127.0.0.1 is not the crowd the limits are for.
               "ENGAGE_RATE_LIMITS": "false", "ENGAGE_MAX_CONNECTIONS_PER_IP": "0",
               # Every clap does the full work (the cap would turn late claps into no-ops).
               "ENGAGE_APPLAUSE_CAP": "1000000",
               "PYTHONUNBUFFERED": "1"}
        self.out = open(self.logfile, "w")
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "run.py")], cwd=ROOT, env=env,
                                     stdout=self.out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        wait_for_line(self.logfile, self.proc, "Engage serving on", "engage")
        self.pid = self.proc.pid

    def views_of(self, ids: list[str]) -> int:
        import httpx
        # Engage answers 202 once the view is in Redis, and reads come from Redis:
        # nothing to wait for.
        with httpx.Client(base_url=f"http://{self.host}:{self.port}", timeout=30) as http:
            return sum(http.get(f"/v1/content/{cid}").raise_for_status().json()["views"]
                       for cid in ids)

    def stop(self) -> None:
        if self.proc is None:
            return
        from tests.support import admin_execute, delete_prefix

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


class Reference(Server):
    """``bench/http_reference.py``: Starlette on uvicorn (uvloop, httptools), one worker."""

    name = "reference"

    def __init__(self, tag: str, logdir: Path) -> None:
        self.prefix = f"ref-bench-http-{tag}:"
        self.port = free_port()
        self.logfile = logdir / f"http-reference-{tag}.log"
        self.out = open(self.logfile, "w")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "http_reference.py"), "--host", self.host,
             "--port", str(self.port), "--redis", REDIS_URL, "--prefix", self.prefix],
            cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=self.out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_for_line(self.logfile, self.proc, "reference serving on", "reference")
        self.pid = self.proc.pid

    def views_of(self, ids: list[str]) -> int:
        import redis
        client = redis.Redis.from_url(REDIS_URL)
        try:
            return sum(int(client.hget(f"{self.prefix}content:{cid}", "views") or 0)
                       for cid in ids)
        finally:
            client.close()

    def stop(self) -> None:
        from tests.support import delete_prefix

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()
        delete_prefix(REDIS_URL, self.prefix)


class Worker:
    def __init__(self, config: dict) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(config)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.proc.stdout, selectors.EVENT_READ)

    def read(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sel.select(left):
                raise TimeoutError("load generator: no answer")
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"load generator exited rc={self.proc.wait()}")
            try:
                return json.loads(line)
            except ValueError:
                continue

    def send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.sel.close()


def percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(server: Server, scenario: str, rnd: int, args, redis_pid: int | None) -> dict:
    tag = secrets.token_hex(3)
    ids = [f"bh-{tag}-{i}" for i in range(ITEMS)]
    if scenario == "counts":
        server.seed(ids)  # one view each: there is something to read
    procs = max(1, min(args.load_procs, args.connections))
    workers: list[Worker] = []
    first = 0
    try:
        for p in range(procs):
            n = args.connections // procs + (1 if p < args.connections % procs else 0)
            workers.append(Worker({
                "scenario": scenario, "host": server.host, "port": server.port,
                "secret": server.secret, "ids": ids, "connections": n, "first_conn": first,
                "user_tag": tag, "duration": args.duration}))
            first += n
        loops = {w.read(60)["loop"] for w in workers}
        now = time.monotonic()
        t_go = now + 0.2
        t_start = t_go + args.warmup
        t_stop = t_start + args.duration
        for w in workers:
            w.send(f"go {t_go!r} {t_start!r} {t_stop!r}")
        time.sleep(max(0.0, t_start - time.monotonic()))
        cpu0 = cpu_seconds(server.pid) if server.pid else None
        redis0 = cpu_seconds(redis_pid) if redis_pid else None
        busy0, total0 = machine_busy()
        pg0 = backend_cpu(server.db)
        time.sleep(max(0.0, t_stop - time.monotonic()))
        cpu1 = cpu_seconds(server.pid) if server.pid else None
        redis1 = cpu_seconds(redis_pid) if redis_pid else None
        busy1, total1 = machine_busy()
        pg1 = backend_cpu(server.db)
        results = [w.read(args.duration + 90) for w in workers]
    finally:
        for w in workers:
            w.close()
    latencies = sorted(x for r in results for x in r["latencies"])
    slices = [sum(col) for col in zip(*(r["slices"] for r in results))]
    status_window: dict[str, int] = {}
    status_all: dict[str, int] = {}
    for r in results:
        for k, v in r["status_window"].items():
            status_window[k] = status_window.get(k, 0) + v
        for k, v in r["status_all"].items():
            status_all[k] = status_all.get(k, 0) + v
    done = len(latencies)
    ok = sum(v for k, v in status_window.items() if 200 <= int(k) < 300)
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    ncpu = os.cpu_count() or 1
    pg_pct = 100 * sum(v - pg0.get(k, 0.0) for k, v in pg1.items()) / args.duration
    machine_pct = 100 * ncpu * (busy1 - busy0) / (total1 - total0) if total1 > total0 else None
    loadgen_pct = 100 * sum(r["cpu_s"] for r in results) / args.duration
    server_pct = 100 * (cpu1 - cpu0) / args.duration if cpu0 is not None else None
    redis_pct = 100 * (redis1 - redis0) / args.duration if redis0 is not None else None
    row = {
        "scenario": scenario, "server": server.name, "round": rnd + 1,
        "requests": done, "ok": ok, "errors": done - ok,
        "status": status_window,
        "req_per_s": round(done / args.duration, 1),
        "p50_ms": round(p50, 2), "p99_ms": round(p99, 2),
        "mean_ms": round(sum(latencies) / done, 2) if done else None,
        "p90_ms": round(percentile(latencies, 0.9), 2),
        "max_ms": round(latencies[-1], 2) if latencies else None,
        "p99_over_p50": round(p99 / p50, 1) if p50 else None,
        "stalls_pct": round(100 * sum(1 for s in slices if s == 0) / len(slices), 1)
        if slices else None,
        "server_cpu_pct": round(server_pct, 1) if server_pct is not None else None,
        "server_us_per_req": round((cpu1 - cpu0) / done * 1e6, 1)
        if cpu0 is not None and done else None,
        "loadgen_cpu_pct": round(loadgen_pct, 1),
        "redis_cpu_pct": round(redis_pct, 1) if redis_pct is not None else None,
        "server_postgres_cpu_pct": round(pg_pct, 1) if server.db else None,
        # All CPUs, in % of one core (up to 100 × nproc), and what none of the above
        # used: other programs on the machine (other people's tests, ...).
        "machine_cpu_pct": round(machine_pct, 1) if machine_pct is not None else None,
        "other_cpu_pct": round(machine_pct - (server_pct or 0) - loadgen_pct - (redis_pct or 0)
                               - pg_pct, 1) if machine_pct is not None else None,
        "connections_lost": sum(r["lost"] for r in results),
        "timeouts": sum(1 for r in results if r["timeout"]),
        "loop": ",".join(sorted(loops)),
    }
    if scenario == "views":
        acked = int(status_all.get("202", 0))
        if args.engage_url and server.name == "engage":
            time.sleep(0.1)
        counted = server.views_of(ids)
        row["views_check"] = {"acked_202": acked, "counted": counted, "ok": acked == counted}
    return row


# -- report ----------------------------------------------------------------------------------


def machine_info() -> dict:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass

    def version(dist: str) -> str | None:
        from importlib import metadata
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                capture_output=True, text=True, timeout=10).stdout.strip()
        # Uncommitted changes to the server's code make the commit alone misleading.
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "engage", "run.py"],
                                    cwd=ROOT, capture_output=True, text=True,
                                    timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", False
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "kernel": platform.release(), "commit": commit, "engage_dirty": dirty,
            "versions": {d: version(d) for d in ("trio", "quart-trio", "httptools", "starlette",
                                                 "uvicorn", "uvloop", "redis", "hiredis")}}


def fmt(value, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def add_ratios(rows: list[dict]) -> None:
    ref = {(r["scenario"], r["round"]): r for r in rows if r["server"] == "reference"}
    for r in rows:
        if r["server"] != "engage":
            continue
        base = ref.get((r["scenario"], r["round"]))
        against = r["scenario"]
        if base is None and r["scenario"] not in REFERENCE_SCENARIOS:
            base, against = ref.get(("views", r["round"])), "views"
        if base and base["req_per_s"]:
            r["ratio_vs_reference"] = round(r["req_per_s"] / base["req_per_s"], 2)
            r["ratio_against"] = against
            if r["server_us_per_req"] and base["server_us_per_req"]:
                r["cpu_ratio_vs_reference"] = round(
                    r["server_us_per_req"] / base["server_us_per_req"], 2)


def run_line(r: dict) -> str:
    check = ""
    if "views_check" in r:
        c = r["views_check"]
        check = (f"  views {c['counted']}/{c['acked_202']} "
                 f"{'OK' if c['ok'] else 'MISMATCH'}")
    return (f"{r['scenario']:>8} {r['server']:>9} r{r['round']}  {r['req_per_s']:9,.0f} req/s"
            f"  mean {fmt(r['mean_ms'], 2):>6} p50 {r['p50_ms']:6.2f} p99 {r['p99_ms']:6.2f} ms"
            f"  server {fmt(r['server_us_per_req'], 1):>6} µs/req {fmt(r['server_cpu_pct'], 0):>4}%"
            f"  loadgen {r['loadgen_cpu_pct']:4.0f}%  redis {fmt(r['redis_cpu_pct'], 0):>3}%"
            f"  pg {fmt(r['server_postgres_cpu_pct'], 0):>2}%"
            f"  other {fmt(r['other_cpu_pct'], 0):>3}%"
            f"  stalls {fmt(r['stalls_pct'], 1)}%  errors {r['errors']}{check}")


def markdown(rows: list[dict], info: dict, args) -> str:
    lines = [
        f"HTTP benchmark, {info['date']}: {info['nproc']} × {info['cpu'] or 'unknown CPU'}, "
        f"Python {info['python']}, Linux {info['kernel']}"
        + (f", commit {info['commit']}" if info["commit"] else "")
        + (" with uncommitted changes in engage/" if info.get("engage_dirty") else ""),
        "",
        f"{args.connections} keep-alive connections, one request in flight each, "
        f"{ITEMS} content ids, {args.duration:g} s per run after {args.warmup:g} s warm-up, "
        f"{args.load_procs} load-generator process(es), runs alternating engage/reference. "
        "Reference: Starlette on uvicorn (uvloop, httptools), one worker, redis.asyncio; "
        "it has no like/applause, so those Engage rows are compared with its `views`. "
        "Ratio: Engage req/s ÷ reference req/s in the same round. "
        "Stalls: share of 10 ms slices with no response completed.",
        "",
        "| scenario | server | round | req/s | p50 ms | p99 ms | server CPU µs/req "
        "| server CPU % | loadgen CPU % | ratio vs reference (same round) | stalls % |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "ratio_vs_reference" in r:
            ratio = f"{r['ratio_vs_reference']:.2f}"
            if r.get("ratio_against") != r["scenario"]:
                ratio += f" (vs {r['ratio_against']})"
        else:
            ratio = "—"
        noisy = (r.get("other_cpu_pct") or 0) > args.noisy
        lines.append(
            f"| {r['scenario']} | {r['server']} | {r['round']}{' †' if noisy else ''} "
            f"| {fmt(r['req_per_s'])} "
            f"| {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {fmt(r['server_us_per_req'])} "
            f"| {fmt(r['server_cpu_pct'])} | {fmt(r['loadgen_cpu_pct'])} | {ratio} "
            f"| {fmt(r['stalls_pct'], 1)} |")
    # Means over rounds.
    lines += ["", "Mean over rounds:", "",
              "| scenario | engage req/s | reference req/s | ratio | engage µs/req "
              "| reference µs/req | CPU per request ratio |",
              "|---|---:|---:|---:|---:|---:|---:|"]

    def mean(values):
        values = [v for v in values if v is not None]
        return sum(values) / len(values) if values else None

    for scenario in dict.fromkeys(r["scenario"] for r in rows):
        eng = [r for r in rows if r["scenario"] == scenario and r["server"] == "engage"]
        against = scenario if scenario in REFERENCE_SCENARIOS else "views"
        ref = [r for r in rows if r["scenario"] == against and r["server"] == "reference"]
        e_rps, r_rps = mean([r["req_per_s"] for r in eng]), mean([r["req_per_s"] for r in ref])
        e_us = mean([r["server_us_per_req"] for r in eng])
        r_us = mean([r["server_us_per_req"] for r in ref])
        label = scenario if against == scenario else f"{scenario} (reference: views)"
        lines.append(
            f"| {label} | {fmt(e_rps)} | {fmt(r_rps)} "
            f"| {fmt(e_rps / r_rps if e_rps and r_rps else None, 2)} | {fmt(e_us)} "
            f"| {fmt(r_us)} | {fmt(e_us / r_us if e_us and r_us else None, 2)} |")
    noisy = [r for r in rows if (r.get("other_cpu_pct") or 0) > args.noisy]
    if noisy:
        lines += ["", f"† {len(noisy)} of {len(rows)} runs shared the machine: other programs "
                      f"used more than {args.noisy:g}% of a core during the window "
                      f"(up to {max(r['other_cpu_pct'] for r in noisy):.0f}%); "
                      "their figures are less reliable."]
    checks = [r for r in rows if "views_check" in r]
    if checks:
        bad = [r for r in checks if not r["views_check"]["ok"]]
        lines += ["", f"Views check: {len(checks) - len(bad)}/{len(checks)} runs counted "
                      "exactly the views acknowledged with 202."]
    return "\n".join(lines)


def main() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # engage, tests.support
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker_main(json.loads(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"comma-separated, from {','.join(SCENARIOS)}")
    parser.add_argument("--duration", type=float, default=None,
                        help="seconds measured per run (10; 3 with --quick)")
    parser.add_argument("--warmup", type=float, default=None,
                        help="seconds of load before each window (1; 0.5 with --quick)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=None, help="(2; 1 with --quick)")
    parser.add_argument("--load-procs", type=int, default=1,
                        help="load-generator processes (the connections are split)")
    parser.add_argument("--servers", default="engage,reference")
    parser.add_argument("--engage-url", default=None,
                        help="use this already-running Engage instead of starting one")
    parser.add_argument("--secret", default=os.environ.get("ENGAGE_JWT_SECRET"),
                        help="its ENGAGE_JWT_SECRET, for like/applause with --engage-url")
    parser.add_argument("--quick", action="store_true", help="3 s windows, one round")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between runs")
    parser.add_argument("--noisy", type=float, default=20.0,
                        help="flag runs where other programs used more than this %% of a core")
    args = parser.parse_args()
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if args.quick else 1.0)
    args.rounds = args.rounds or (1 if args.quick else 2)
    scenarios = [s for s in args.scenarios.split(",") if s]
    for s in scenarios:
        if s not in SCENARIOS:
            parser.error(f"unknown scenario {s!r}")
    names = [s for s in args.servers.split(",") if s]

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    tag = secrets.token_hex(4)
    logdir = ROOT / "var" / "bench"
    logdir.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    redis_pid = pid_named("redis-server")
    servers: dict[str, Server] = {}
    rows: list[dict] = []
    failed = False
    try:
        for name in names:
            servers[name] = (Engage(tag, logdir, args.engage_url, args.secret)
                             if name == "engage" else Reference(tag, logdir))
            s = servers[name]
            print(f"# started {name}: pid {s.pid} port {s.port}", file=sys.stderr, flush=True)
        for scenario in scenarios:
            for rnd in range(args.rounds):
                for name in names:
                    server = servers[name]
                    if name == "reference" and scenario not in REFERENCE_SCENARIOS:
                        continue
                    if scenario in ("like", "applause") and not server.secret:
                        print(f"# {scenario}: no JWT secret for {name} (--secret): skipped",
                              file=sys.stderr, flush=True)
                        continue
                    row = measure(server, scenario, rnd, args, redis_pid)
                    rows.append(row)
                    print(run_line(row), flush=True)
                    if row.get("views_check", {}).get("ok") is False:
                        failed = True
                    time.sleep(args.pause)
    finally:
        for server in servers.values():
            try:
                server.stop()
            except Exception as exc:  # keep cleaning the others
                print(f"# clean-up of {server.name} failed: {exc!r}", file=sys.stderr)
    add_ratios(rows)
    print()
    print(markdown(rows, info, args))
    print()
    print(json.dumps({"bench": "http", "machine": info,
                      "config": {"connections": args.connections, "duration": args.duration,
                                 "warmup": args.warmup, "rounds": args.rounds,
                                 "load_procs": args.load_procs, "items": ITEMS,
                                 "scenarios": scenarios,
                                 "engage_url": args.engage_url},
                      "runs": rows}), flush=True)
    if failed:
        print("MISMATCH: views counted differ from the 202s sent", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
