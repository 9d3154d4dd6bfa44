"""Counts stay exact across a graceful restart with Redis wiped, and across
``kill -9``: nothing acknowledged is lost, nothing is counted twice."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import BASE_REDIS_URL, JWT_SECRET
from tests.support import ServerProcess, delete_prefix, fetch, server_env

pytestmark = pytest.mark.slow


def _env(database_url: str, redis_prefix: str) -> dict[str, str]:
    return server_env(database_url, BASE_REDIS_URL, redis_prefix, JWT_SECRET,
                      flush_interval="0.3", sweep_interval="0.5", sweep_stale_after="1.0")


def _counts(url: str, content_id: str) -> dict:
    r = httpx.get(f"{url}/v1/content/{content_id}", timeout=10)
    r.raise_for_status()
    return r.json()


def _views(url: str, content_id: str, n: int) -> None:
    """``n`` acknowledged views, 100 per /v1/events batch."""
    with httpx.Client(base_url=url, timeout=10) as client:
        for start in range(0, n, 100):
            batch = [{"type": "view", "content": content_id}] * min(100, n - start)
            r = client.post("/v1/events", json={"events": batch})
            r.raise_for_status()
            assert all(item["ok"] for item in r.json()["results"])


def _wait_persisted(database_url: str, content_id: str, views: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = fetch(database_url, "SELECT views FROM content_counters WHERE id = $1", content_id)
        if rows and rows[0]["views"] == views:
            return
        time.sleep(0.2)
    raise AssertionError(f"postgres never reached {views} views for {content_id}: {rows}")


def test_graceful_restart_with_redis_wiped(database_url, redis_prefix, token):
    env = _env(database_url, redis_prefix)
    server = ServerProcess(env).start()
    try:
        _views(server.url, "doc", 2000)
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for i in range(300):
                h = {"Authorization": f"Bearer {token(f'u{i}')}"}
                assert client.put("/v1/content/doc/like", headers=h).status_code == 200
                if i % 3 == 0:
                    client.put("/v1/content/doc/like", headers=h)
                if i % 10 == 0:
                    assert client.delete("/v1/content/doc/like", headers=h).status_code == 200
            h = {"Authorization": f"Bearer {token('clapper')}"}
            for _ in range(60):
                client.post("/v1/content/doc/applause", json={"count": 1}, headers=h)
        before = _counts(server.url, "doc")
        assert (before["views"], before["likes"], before["applause"]) == (2000, 270, 50)
    finally:
        assert server.stop() == 0, "".join(server.output)

    delete_prefix(BASE_REDIS_URL, redis_prefix)  # Postgres must now hold the truth
    server = ServerProcess(env).start()
    try:
        assert _counts(server.url, "doc") == before
        # the reloaded per-user state still enforces the rules
        h = {"Authorization": f"Bearer {token('clapper')}"}
        r = httpx.post(f"{server.url}/v1/content/doc/applause", json={"count": 5}, headers=h)
        assert r.json() == {"applause": 50, "mine": 50}
        h = {"Authorization": f"Bearer {token('u1')}"}
        r = httpx.put(f"{server.url}/v1/content/doc/like", headers=h)
        assert r.json() == {"liked": True, "likes": 270}  # u1 already liked: idempotent
    finally:
        assert server.stop() == 0


def test_kill_9_loses_nothing_and_doubles_nothing(database_url, redis_prefix):
    env = _env(database_url, redis_prefix)
    server = ServerProcess(env).start()
    try:
        _views(server.url, "k9", 500)
        _wait_persisted(database_url, "k9", 500)  # some history already in Postgres
        _views(server.url, "k9", 1000)  # acknowledged ...
    finally:
        server.kill()  # ... and then kill -9, mid-flush or not

    server = ServerProcess(env).start()
    try:
        assert _counts(server.url, "k9")["views"] == 1500
        # the new process (flush or sweeper) moves everything left over to Postgres
        _wait_persisted(database_url, "k9", 1500)
    finally:
        assert server.stop() == 0

    # With Redis wiped, Postgres alone must give exactly the same.
    delete_prefix(BASE_REDIS_URL, redis_prefix)
    server = ServerProcess(env).start()
    try:
        assert _counts(server.url, "k9")["views"] == 1500
    finally:
        assert server.stop() == 0
    batches = fetch(database_url, "SELECT sum(events) AS events FROM flush_batches")
    assert batches[0]["events"] == 1500
