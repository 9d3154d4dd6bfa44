"""Rate limits, bans and de-duplication through the gateway (HTTP and WebSocket)."""

from __future__ import annotations

import pytest
import redis
import trio
from trio_websocket import ConnectionRejected, open_websocket_url

from engage.store import Keys
from tests.conftest import BASE_REDIS_URL
from tests.integration.test_realtime import Client, ws_url


@pytest.fixture
def settings(settings):
    return settings.replace(rate_limits=True, rate_like="2/1s burst 3", rate_view="5/1s burst 5",
                            rate_ip="1000/1s burst 1000", rate_events_ip="10/1s burst 20",
                            rate_connect_ip="1/1s burst 3", rate_ws_frames="5/1s burst 10",
                            rate_comment="1/3s burst 5")


def ban(settings, user: str) -> None:
    """A ban as the moderation API mirrors it into Redis."""
    client = redis.Redis.from_url(BASE_REDIS_URL)
    try:
        client.set(Keys(settings.redis_prefix).ban(user), "spam", px=60_000)
    finally:
        client.close()


async def test_http_likes_over_the_limit_get_429_with_retry_after(client, auth):
    with trio.fail_after(20):
        statuses = []
        for i in range(5):
            r = await client.put(f"/v1/content/rl{i}/like", headers=auth("liker"))
            statuses.append(r.status_code)
        assert statuses == [200, 200, 200, 429, 429]
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers["retry-after"] == "1"
        body = r.json()
        assert body["code"] == "rate_limited" and 0 < body["retry_after"] <= 1.0
        assert "at most 2" in body["detail"]
        # Another user is not affected; the limited one passes again after the wait.
        assert (await client.put("/v1/content/rl0/like", headers=auth("other"))).status_code == 200
        await trio.sleep(body["retry_after"] + 0.05)
        assert (await client.put("/v1/content/rl9/like", headers=auth("liker"))).status_code == 200
        counts = (await client.get("/v1/content/rl3")).json()
        assert counts["likes"] == 0  # the refused like changed nothing


async def test_a_banned_users_like_is_refused_but_reading_works(client, auth, settings):
    with trio.fail_after(20):
        ban(settings, "troll")
        r = await client.put("/v1/content/b1/like", headers=auth("troll"))
        assert r.status_code == 403 and r.json()["code"] == "banned"
        r = await client.post("/v1/content/b1/applause", json={"count": 3}, headers=auth("troll"))
        assert r.status_code == 403
        assert (await client.get("/v1/content/b1")).json()["likes"] == 0
        assert (await client.post("/v1/content/b1/views", headers=auth("troll"))).status_code == 202


async def test_events_batches_count_every_event_against_the_address(client, auth):
    with trio.fail_after(20):
        events = [{"type": "view", "content": "e1"}] * 15
        assert (await client.post("/v1/events", json=events)).status_code == 200
        r = await client.post("/v1/events", json=events)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        r = await client.post("/v1/events", json=[{"type": "view", "content": "e1"}] * 21)
        assert r.status_code == 413 and r.json()["code"] == "over_rate_burst"


async def test_websocket_like_over_the_limit_is_an_error_frame(server, token):
    with trio.fail_after(20):
        async with open_websocket_url(ws_url(server, token=token("wsliker"))) as ws:
            c = Client(ws)
            replies = [await c.op({"op": "like", "content": f"w{i}"}) for i in range(4)]
            assert [r["type"] for r in replies] == ["ack", "ack", "ack", "error"]
            assert replies[3]["code"] == "rate_limited" and replies[3]["retry_after"] > 0
            pong = await c.op({"op": "ping"})  # the connection is fine
            assert pong["type"] == "pong"


async def test_websocket_frames_per_connection_are_limited(server):
    with trio.fail_after(20):
        async with open_websocket_url(ws_url(server)) as ws:
            c = Client(ws)
            for i in range(14):
                await c.send({"op": "ping", "ref": i})
            replies = [await c.next() for _ in range(14)]
            kinds = [r["type"] for r in replies]
            assert kinds.count("pong") == 10 and kinds.count("error") == 4
            assert all(r["code"] == "rate_limited" for r in replies if r["type"] == "error")


async def test_websocket_connection_attempts_per_address(server):
    with trio.fail_after(20):
        for _ in range(3):
            async with open_websocket_url(ws_url(server)):
                pass
        with pytest.raises(ConnectionRejected) as refused:
            async with open_websocket_url(ws_url(server)):
                pass
        assert refused.value.status_code == 429
        assert dict(refused.value.headers).get(b"retry-after") == b"1"


async def test_views_from_one_address_are_limited_but_deduplicated_views_still_count(
        client, auth):
    with trio.fail_after(20):
        statuses = [(await client.post("/v1/content/v1/views", json={"viewer": f"x{i}"}))
                    .status_code for i in range(7)]
        assert statuses == [202] * 5 + [429] * 2
        assert (await client.get("/v1/content/v1")).json()["views"] == 5
