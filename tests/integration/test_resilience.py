"""Dependencies going away, dead peers, floods: the server keeps its promises."""

from __future__ import annotations

import json
import socket
import time
from contextlib import asynccontextmanager

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from engage.http import create_app
from engage.system import build_system, open_stores
from run import serve
from tests.conftest import BASE_REDIS_URL, JWT_SECRET
from tests.support import ServerProcess, free_port, server_env


@asynccontextmanager
async def serving(settings):
    """A whole server for custom settings; yields (system, base url).

    Stops in the same order as run.py: server and actors first, stores last.
    """
    async with open_stores(settings) as stores:
        system = build_system(settings, stores)
        async with trio.open_nursery() as nursery:
            await nursery.start(system.supervisor.run)
            urls = await nursery.start(serve, system, create_app(system), trio.sleep_forever)
            yield system, urls[0]
            nursery.cancel_scope.cancel()


async def test_readyz_is_503_while_redis_is_unreachable(settings):
    dead = settings.replace(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with trio.fail_after(30):
        async with serving(dead) as (_, url), httpx.AsyncClient(base_url=url) as client:
            r = await client.get("/readyz")
            assert r.status_code == 503
            assert r.headers["content-type"] == "application/problem+json"
            body = r.json()
            assert body["checks"]["postgres"] == "ok"
            assert body["checks"]["redis"].startswith("unavailable")
            assert (await client.get("/healthz")).status_code == 200
            r = await client.post("/v1/content/x/views")
            assert r.status_code == 503 and r.json()["code"] == "store_unavailable"


async def test_silent_peer_is_closed_by_heartbeat(settings):
    quick = settings.replace(ws_ping_interval=0.2, ws_idle_timeout=0.6)
    with trio.fail_after(30):
        async with serving(quick) as (_, url):
            host, port = url.removeprefix("http://").split(":")
            # A client that completes the handshake, then never reads or answers.
            sock = socket.create_connection((host, int(port)))
            sock.sendall(b"GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         b"Sec-WebSocket-Version: 13\r\n\r\n")
            await trio.sleep(1.5)
            sock.setblocking(False)
            data = b""
            try:
                while chunk := sock.recv(65536):
                    data += chunk
            except BlockingIOError:
                pass
            sock.close()
            assert data.startswith(b"HTTP/1.1 101")
            # close frame: 0x88, length, then the code 4009 (0x0FA9)
            assert b"\x88" in data and b"\x0f\xa9" in data


async def test_counts_are_coalesced(server, token, settings):
    with trio.fail_after(30):
        url = server.replace("http://", "ws://") + "/v1/ws"
        async with open_websocket_url(url) as watcher, \
                open_websocket_url(url) as clicker:
            await watcher.send_message(json.dumps({"op": "subscribe", "content": "hot"}))
            while json.loads(await watcher.get_message())["type"] != "subscribed":
                pass
            start = trio.current_time()
            for i in range(400):  # a burst of 400 clicks by 400 viewers (not de-duplicated)
                await clicker.send_message(json.dumps({"op": "view", "content": "hot",
                                                       "viewer": f"v{i}"}))
            for _ in range(400):
                await clicker.get_message()
            elapsed = trio.current_time() - start
            frames = []
            with trio.move_on_after(1.0):
                while True:
                    frame = json.loads(await watcher.get_message())
                    if frame["type"] == "counts":
                        frames.append(frame)
                        if frame["views"] == 400:
                            break
            assert frames and frames[-1]["views"] == 400
            # at most one frame per interval (+1 for the edges), never one per click
            assert len(frames) <= elapsed / settings.counts_interval + 2, (len(frames), elapsed)


@pytest.mark.slow
async def test_watchers_of_a_killed_instance_leave(database_url, redis_prefix):
    env = server_env(database_url, BASE_REDIS_URL, redis_prefix, JWT_SECRET,
                     presence_ttl="2", presence_refresh="0.5")
    stays, dies = ServerProcess(env).start(), ServerProcess(env).start()
    try:
        with trio.fail_after(60):
            async with open_websocket_url(stays.url.replace("http", "ws") + "/v1/ws") as ws:
                await ws.send_message(json.dumps({"op": "subscribe", "content": "p"}))
                async with trio.open_nursery() as nursery:
                    for _ in range(3):
                        nursery.start_soon(_watch_forever, dies.url, "p")
                    seen = await _until_watching(ws, 4)
                    assert seen == 4
                    killed_at = time.monotonic()
                    dies.kill()  # no goodbye from its three watchers
                    await _until_watching(ws, 1)
                    left_after = time.monotonic() - killed_at
                    nursery.cancel_scope.cancel()
            assert left_after < 10  # presence_ttl 2 s + refresh 0.5 s, generously
    finally:
        stays.stop()
        if dies.proc and dies.proc.poll() is None:
            dies.kill()


async def _watch_forever(url, content):
    try:
        async with open_websocket_url(url.replace("http", "ws") + "/v1/ws") as ws:
            await ws.send_message(json.dumps({"op": "subscribe", "content": content}))
            while True:
                await ws.get_message()
    except Exception:
        await trio.sleep_forever()  # the server died under us; that is the point


async def _until_watching(ws, n) -> int:
    while True:
        frame = json.loads(await ws.get_message())
        if frame.get("watching") == n:
            return n
