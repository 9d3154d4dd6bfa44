"""Several run.py processes sharing Redis and Postgres behave as one service."""

from __future__ import annotations

import json
import time

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from tests.conftest import BASE_REDIS_URL, JWT_SECRET
from tests.support import ServerProcess, server_env

pytestmark = pytest.mark.slow

CLIENTS_PER_INSTANCE = 200


def _env(database_url: str, redis_prefix: str) -> dict[str, str]:
    return server_env(database_url, BASE_REDIS_URL, redis_prefix, JWT_SECRET)


async def test_two_instances_act_as_one(database_url, redis_prefix, token):
    env = _env(database_url, redis_prefix)
    servers = [ServerProcess(env).start(), ServerProcess(env).start()]
    try:
        with trio.fail_after(90):
            await _exercise(servers, token)
    finally:
        for server in servers:
            assert server.stop() == 0, "".join(server.output)


async def _exercise(servers, token):
    ready = 0
    all_ready = trio.Event()
    timing: dict[str, float] = {}
    arrivals: list[float] = []
    counts_seen: list[dict] = []
    n_clients = CLIENTS_PER_INSTANCE * len(servers)

    async def subscriber(server, i):
        nonlocal ready
        url = server.url.replace("http://", "ws://") + f"/v1/ws?token={token(f'user{i}')}"
        async with open_websocket_url(url) as ws:
            await ws.send_message(json.dumps({"op": "subscribe", "content": "multi", "ref": "s"}))
            while json.loads(await ws.get_message())["type"] != "subscribed":
                pass
            ready += 1
            if ready == n_clients:
                all_ready.set()
            got_comment = False
            last_counts = None
            while not got_comment or last_counts is None or last_counts["likes"] < 10:
                frame = json.loads(await ws.get_message())
                if frame["type"] == "comment":
                    arrivals.append(time.monotonic())
                    got_comment = True
                elif frame["type"] == "counts":
                    last_counts = frame
            counts_seen.append(last_counts)

    async def actor():
        await all_ready.wait()
        # A comment posted on the first instance ...
        async with httpx.AsyncClient() as http:
            headers = {"Authorization": f"Bearer {token('poster')}"}
            start = time.monotonic()
            r = await http.post(f"{servers[0].url}/v1/content/multi/comments",
                                json={"body": "hello everyone"}, headers=headers)
            assert r.status_code == 201
        timing['posted'] = start
        # ... and likes sent over WebSocket to the second one.
        url = servers[1].url.replace("http://", "ws://") + "/v1/ws"
        async with open_websocket_url(url) as ws:
            for i in range(10):
                await ws.send_message(json.dumps({"op": "auth", "token": token(f"liker{i}")}))
                await ws.send_message(json.dumps({"op": "like", "content": "multi", "ref": i}))
            acks = 0
            while acks < 10:
                frame = json.loads(await ws.get_message())
                if frame.get("type") == "ack" and isinstance(frame.get("ref"), int):
                    assert frame["result"]["liked"] is True
                    acks += 1

    async with trio.open_nursery() as nursery:
        for i in range(n_clients):
            nursery.start_soon(subscriber, servers[i % len(servers)], i)
        nursery.start_soon(actor)

    assert len(arrivals) == n_clients
    slowest = max(arrivals) - timing['posted']
    print(f"comment reached {n_clients} clients on {len(servers)} instances; "
          f"slowest after {slowest * 1000:.0f} ms")
    assert slowest < 1.0
    assert len(counts_seen) == n_clients
    assert all(c["likes"] == 10 and c["comments"] == 1 for c in counts_seen)
    assert max(c["watching"] for c in counts_seen) >= n_clients - 1
