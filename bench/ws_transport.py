"""Micro-benchmark: server CPU per delivered WebSocket message under fan-out.

One event is published ``--rate`` times a second to ``--subscribers``
WebSocket clients for ``--duration`` seconds. The server runs in a
subprocess and measures its own CPU time (``time.process_time()``) over the
publishing window, so the figure is server CPU per delivery. The clients
(this process, a minimal raw-socket client) measure delivered messages per
second and latency (publish -> client receive, both on CLOCK_MONOTONIC).

Modes:

* ``front``: :func:`engage.ws.serve_front`; the publisher frames each event
  once and calls ``write_nowait`` for every subscriber.
* ``quart``: a plain quart-trio ``@app.websocket`` route under hypercorn's
  ``serve``; the publisher awaits ``websocket.send`` for every subscriber.

Usage::

    python bench/ws_transport.py --mode front --subscribers 1000 --rate 10 --duration 10
    python bench/ws_transport.py --mode quart --subscribers 1000 --rate 10 --duration 10
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: Seconds to wait for outboxes to drain and late messages to arrive.
DRAIN_TIMEOUT = 3.0
#: Seconds the whole client side may take to connect.
CONNECT_TIMEOUT = 60.0
#: Parallel connection attempts while connecting the subscribers.
CONNECT_PARALLEL = 100


# -- server process ---------------------------------------------------------------------------


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _event(seq: int, pad: str) -> str:
    return json.dumps({"type": "event", "seq": seq, "t": time.monotonic(), "pad": pad},
                      separators=(",", ":"))


async def _publish(send_all, args) -> dict:
    """Publish ``rate`` events/s for ``duration`` s; CPU over the window."""
    pad = "x" * args.payload
    cpu0, wall0 = time.process_time(), time.monotonic()
    start = trio.current_time()
    n = int(args.rate * args.duration)
    deliveries = 0
    for seq in range(n):
        await trio.sleep_until(start + seq / args.rate)
        deliveries += await send_all(_event(seq, pad))
    return {"cpu0": cpu0, "wall0": wall0, "published": n, "deliveries": deliveries}


async def _serve_front(args, conns: set, control) -> None:
    from quart_trio import QuartTrio

    from engage.errors import WebSocketClosed
    from engage.ws import serve_front, text_frame

    async def handler(conn):
        await conn.accept()
        conns.add(conn)
        try:
            while True:
                await conn.receive()
        except WebSocketClosed:
            pass
        finally:
            conns.discard(conn)

    slow: list = []

    async def send_all(text: str) -> int:
        frame = text_frame(text)  # framed once, shared by every subscriber
        sent = 0
        for conn in list(conns):
            if conn.write_nowait(frame):
                sent += 1
            elif conn.slow_consumer:
                slow.append(conn)
        return sent

    async def drained() -> dict:
        with trio.move_on_after(DRAIN_TIMEOUT):
            while any(c.statistics()["writer_active"] for c in conns):
                await trio.sleep(0.001)
        stats = [c.statistics() for c in conns]
        return {"frames_direct": sum(s["frames_direct"] for s in stats),
                "frames_queued": sum(s["frames_queued"] for s in stats),
                "slow_consumers": len(slow)}

    from engage.ws import FrontConfig

    config = FrontConfig(backlog=2048)  # no per-address cap: every client is 127.0.0.1
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve_front, QuartTrio("bench"), config, handler))
        await control(binds, send_all, drained)
        nursery.cancel_scope.cancel()


async def _serve_quart(args, conns: set, control) -> None:
    from hypercorn.trio import serve
    from quart import websocket
    from quart_trio import QuartTrio

    app = QuartTrio("bench")

    @app.websocket("/v1/ws")
    async def ws():
        await websocket.accept()
        sock = websocket._get_current_object()
        conns.add(sock)
        try:
            while True:
                await websocket.receive()
        finally:
            conns.discard(sock)

    async def send_all(text: str) -> int:
        sent = 0
        for sock in list(conns):
            await sock.send(text)
            sent += 1
        return sent

    async def drained() -> dict:
        return {}

    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, app, _config(args)))
        await control(binds, send_all, drained)
        nursery.cancel_scope.cancel()


def _config(args):
    from hypercorn.config import Config

    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.backlog = 2048
    config.accesslog = None
    config.errorlog = None
    config.websocket_ping_interval = None
    return config


async def server_main(args) -> None:
    conns: set = set()

    async def control(binds, send_all, drained) -> None:
        gc.collect()
        rss_empty = _rss_bytes()  # everything imported, no client yet
        print(json.dumps({"port": int(binds[0].rsplit(":", 1)[1])}), flush=True)
        line = await trio.to_thread.run_sync(sys.stdin.readline)  # "start"
        assert line.strip() == "start", line
        gc.collect()
        rss_idle = _rss_bytes()
        result = await _publish(send_all, args)
        extra = await drained()
        result.update(cpu_s=time.process_time() - result.pop("cpu0"),
                      wall_s=time.monotonic() - result.pop("wall0"),
                      subscribers=len(conns), rss_empty=rss_empty, rss_idle=rss_idle, **extra)
        print(json.dumps(result), flush=True)
        await trio.to_thread.run_sync(sys.stdin.readline)  # "stop"

    serve = _serve_front if args.mode == "front" else _serve_quart
    await serve(args, conns, control)


# -- client side ------------------------------------------------------------------------------


class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.received = 0


async def _client(port: int, stats: Stats, ready: trio.Semaphore, connected: list) -> None:
    async with ready:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        await stream.send_all((
            f"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
        buf = bytearray()
        while b"\r\n\r\n" not in buf:
            chunk = await stream.receive_some(4096)
            if not chunk:
                raise RuntimeError("server closed during handshake")
            buf += chunk
        head, _, rest = bytes(buf).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head[:80]
        buf = bytearray(rest)
        connected.append(stream)
    while True:
        while len(buf) >= 2:
            length = buf[1] & 0x7F
            offset = 2
            if length == 126:
                if len(buf) < 4:
                    break
                length, offset = int.from_bytes(buf[2:4], "big"), 4
            elif length == 127:
                if len(buf) < 10:
                    break
                length, offset = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < offset + length:
                break
            opcode = buf[0] & 0x0F
            payload = bytes(buf[offset:offset + length])
            del buf[:offset + length]
            if opcode == 0x1:
                now = time.monotonic()
                stats.latencies.append(now - json.loads(payload)["t"])
                stats.received += 1
            elif opcode == 0x8:
                return
        chunk = await stream.receive_some(65536)
        if not chunk:
            return
        buf += chunk


async def client_main(args) -> dict:
    cmd = [sys.executable, __file__, "--serve", "--mode", args.mode, "--rate", str(args.rate),
           "--duration", str(args.duration), "--payload", str(args.payload)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        port = json.loads(await trio.to_thread.run_sync(proc.stdout.readline))["port"]
        stats = Stats()
        connected: list = []
        async with trio.open_nursery() as nursery:
            ready = trio.Semaphore(CONNECT_PARALLEL)
            with trio.fail_after(CONNECT_TIMEOUT):
                for _ in range(args.subscribers):
                    nursery.start_soon(_client, port, stats, ready, connected)
                while len(connected) < args.subscribers:
                    await trio.sleep(0.05)
            await trio.sleep(0.5)  # let the server register the last handlers
            t0 = time.monotonic()
            proc.stdin.write("start\n")
            proc.stdin.flush()
            server = json.loads(await trio.to_thread.run_sync(proc.stdout.readline))
            expected = server["deliveries"]
            with trio.move_on_after(DRAIN_TIMEOUT):
                while stats.received < expected:
                    await trio.sleep(0.01)
            elapsed = time.monotonic() - t0
            nursery.cancel_scope.cancel()
    finally:
        if proc.poll() is None:
            proc.stdin.write("stop\n")
            proc.stdin.flush()
            proc.stdin.close()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
    lat = sorted(stats.latencies)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1e3 if lat else float("nan")

    subs = max(server["subscribers"], 1)
    return {
        "mode": args.mode, "subscribers": server["subscribers"], "rate": args.rate,
        "published": server["published"], "deliveries": server["deliveries"],
        "received": stats.received,
        "server_cpu_s": round(server["cpu_s"], 3),
        "server_us_per_delivery": round(server["cpu_s"] / max(server["deliveries"], 1) * 1e6, 2),
        "publish_wall_s": round(server["wall_s"], 2),
        "delivered_per_s": round(stats.received / elapsed, 0),
        "latency_p50_ms": round(pct(0.50), 2), "latency_p99_ms": round(pct(0.99), 2),
        "rss_per_idle_conn_kib": round((server["rss_idle"] - server["rss_empty"]) / subs / 1024, 1),
        **{k: server[k] for k in ("frames_direct", "frames_queued", "slow_consumers")
           if k in server},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["front", "quart"], default="front")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=10.0, help="events published per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of publishing")
    parser.add_argument("--payload", type=int, default=100, help="padding bytes per event")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        trio.run(server_main, args)
    else:
        print(json.dumps(trio.run(client_main, args), indent=2))


if __name__ == "__main__":
    main()
