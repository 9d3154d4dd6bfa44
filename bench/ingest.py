"""Ingest load tool: how many interactions per second does one Engage take?

Modes:
  single  one interaction per HTTP request (views, likes, applause mixed)
  batch   POST /v1/events with --batch interactions per request

    .venv/bin/python bench/ingest.py --spawn --mode batch --batch 1000 --clients 8 --duration 20
    .venv/bin/python bench/ingest.py --url http://127.0.0.1:8080 --mode single --clients 64

With --spawn it starts ``python run.py`` itself against a fresh database and a
fresh Redis prefix, and removes both afterwards. It prints a live progress line
on stderr, then a report: requests/s, interactions/s, request latency p50/p99/
max, errors by status, the flush ratio scraped from /metrics (events and
Postgres statements per flush), and a correctness check (every item's views
equal the views acknowledged).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import secrets
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import jwt
import trio

ROOT = Path(__file__).resolve().parent.parent
PROGRESS_EVERY = 1.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Load:
    """Shared counters of one run."""

    def __init__(self, items: int) -> None:
        self.items = [f"bench-{i}" for i in range(items)]
        self.requests = 0
        self.interactions = 0
        self.latencies: list[float] = []
        self.errors: Counter[str] = Counter()
        self.views: Counter[str] = Counter()


def token(secret: str, user: str) -> str:
    return jwt.encode({"sub": user, "exp": int(time.time()) + 3600}, secret, algorithm="HS256")


async def single_client(http: httpx.AsyncClient, load: Load, secret: str, stop: float) -> None:
    headers = {"Authorization": f"Bearer {token(secret, 'u' + secrets.token_hex(4))}"}
    while time.monotonic() < stop:
        item = random.choice(load.items)
        kind = random.random()
        start = time.monotonic()
        if kind < 0.8:
            r = await http.post(f"/v1/content/{item}/views")
        elif kind < 0.9:
            r = await http.put(f"/v1/content/{item}/like", headers=headers)
        else:
            r = await http.post(f"/v1/content/{item}/applause", json={"count": 1}, headers=headers)
        load.latencies.append(time.monotonic() - start)
        load.requests += 1
        if r.status_code >= 300:
            load.errors[str(r.status_code)] += 1
            continue
        load.interactions += 1
        if kind < 0.8:
            load.views[item] += 1


async def batch_client(http: httpx.AsyncClient, load: Load, secret: str, stop: float,
                       size: int) -> None:
    headers = {"Authorization": f"Bearer {token(secret, 'u' + secrets.token_hex(4))}"}
    while time.monotonic() < stop:
        events = []
        for _ in range(size):
            item = random.choice(load.items)
            kind = random.random()
            if kind < 0.8:
                events.append({"type": "view", "content": item})
            elif kind < 0.9:
                events.append({"type": "like", "content": item})
            else:
                events.append({"type": "applause", "content": item, "count": 1})
        start = time.monotonic()
        r = await http.post("/v1/events", json={"events": events}, headers=headers)
        load.latencies.append(time.monotonic() - start)
        load.requests += 1
        if r.status_code != 200:
            load.errors[str(r.status_code)] += 1
            continue
        for event, result in zip(events, r.json()["results"]):
            if result["ok"]:
                load.interactions += 1
                if event["type"] == "view":
                    load.views[event["content"]] += 1
            else:
                load.errors[result.get("code", "item_error")] += 1


async def progress(load: Load, stop: float) -> None:
    begun = time.monotonic()
    while time.monotonic() < stop:
        await trio.sleep(PROGRESS_EVERY)
        elapsed = time.monotonic() - begun
        print(f"\r{elapsed:5.1f}s  {load.requests:8d} req  {load.interactions:10d} interactions"
              f"  {load.interactions / elapsed:9.0f}/s", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)


def scrape(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r'^(engage_flush\w*|engage_flushes_total\{result="(\w+)"\})\s+(\S+)$',
                         line)
        if match:
            out[match.group(1)] = float(match.group(3))
    return out


async def run(args: argparse.Namespace, url: str, secret: str) -> dict:
    load = Load(args.items)
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        before = scrape((await http.get("/metrics")).text)
        began = time.monotonic()
        stop = began + args.duration
        async with trio.open_nursery() as nursery:
            nursery.start_soon(progress, load, stop)
            for _ in range(args.clients):
                if args.mode == "single":
                    nursery.start_soon(single_client, http, load, secret, stop)
                else:
                    nursery.start_soon(batch_client, http, load, secret, stop, args.batch)
        elapsed = time.monotonic() - began
        await trio.sleep(args.flush_wait)  # let the last flushes land
        after = scrape((await http.get("/metrics")).text)
        mismatches = []
        for item in load.items:
            got = (await http.get(f"/v1/content/{item}")).json()["views"]
            if got != load.views[item]:
                mismatches.append((item, load.views[item], got))
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    flushes = delta.get('engage_flushes_total{result="applied"}', 0)
    report = {
        "mode": args.mode, "batch": args.batch if args.mode == "batch" else 1,
        "clients": args.clients, "items": args.items, "seconds": round(elapsed, 2),
        "requests_per_s": round(load.requests / elapsed, 1),
        "interactions_per_s": round(load.interactions / elapsed, 1),
        "latency_ms": {"p50": round(percentile(load.latencies, 0.5) * 1000, 1),
                       "p99": round(percentile(load.latencies, 0.99) * 1000, 1),
                       "max": round(max(load.latencies, default=0) * 1000, 1)},
        "errors": dict(load.errors),
        "flushes": flushes,
        "events_per_flush": round(delta.get("engage_flush_events_total", 0) / flushes, 1)
        if flushes else None,
        "statements_per_flush": round(delta.get("engage_flush_statements_total", 0) / flushes, 2)
        if flushes else None,
        "items_per_flush": round(delta.get("engage_flush_items_total", 0) / flushes, 1)
        if flushes else None,
        "rows_per_flush": round(delta.get("engage_flush_rows_total", 0) / flushes, 1)
        if flushes else None,
        "views_mismatches": mismatches[:10],
    }
    return report


def spawn(args: argparse.Namespace) -> tuple[subprocess.Popen, str, str, callable]:
    """Start run.py on a fresh database and Redis prefix; return it and a clean-up."""
    import asyncpg
    import asyncio
    import redis

    base = os.environ.get("ENGAGE_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1/postgres")
    redis_url = os.environ.get("ENGAGE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    name = f"engage_bench_{uuid.uuid4().hex[:8]}"
    prefix = f"engage-bench-{uuid.uuid4().hex[:8]}:"
    secret = secrets.token_urlsafe(32)

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(base)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    port = args.port
    env = {**os.environ, "ENGAGE_DATABASE_URL": base.rsplit("/", 1)[0] + "/" + name,
           "ENGAGE_REDIS_URL": redis_url, "ENGAGE_REDIS_PREFIX": prefix,
           "ENGAGE_JWT_SECRET": secret, "ENGAGE_PORT": str(port),
           "ENGAGE_LOG_LEVEL": "warning",
           # One load generator on 127.0.0.1 is not the crowd the limits are for.
           "ENGAGE_RATE_LIMITS": "false", "ENGAGE_MAX_CONNECTIONS_PER_IP": "0"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py")], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:  # type: ignore[union-attr]
        if line.startswith("Engage serving on"):
            break
    else:
        raise SystemExit("the server did not start")

    def cleanup() -> None:
        proc.terminate()
        proc.wait(timeout=30)
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i:i + 500])
        client.close()

    return proc, f"http://127.0.0.1:{port}", secret, cleanup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--secret", default=os.environ.get("ENGAGE_JWT_SECRET", ""))
    parser.add_argument("--spawn", action="store_true", help="start run.py on fresh stores")
    parser.add_argument("--port", type=int, default=18080, help="port for --spawn")
    parser.add_argument("--mode", choices=("single", "batch"), default="batch")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--flush-wait", type=float, default=3.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cleanup = None
    url, secret = args.url, args.secret
    if args.spawn:
        _, url, secret, cleanup = spawn(args)
    try:
        report = trio.run(run, args, url, secret)
    finally:
        if cleanup:
            cleanup()
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key:>20}: {value}")
    if report["views_mismatches"]:
        print("MISMATCH: acknowledged views differ from the server's counts", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
