"""On publish, end to end: a CMS appends to the publish stream (or POSTs, or
PUBLISHes), Engage stores the content once, shows it over HTTP and announces
it once on the WebSocket feeds; nothing is lost while every process is down."""

from __future__ import annotations

import json
import time

import httpx
import pytest
import redis
import trio
from trio_websocket import open_websocket_url

from engage.store import Keys
from tests.conftest import BASE_REDIS_URL, JWT_SECRET
from tests.integration.test_realtime import Client, ws_url
from tests.support import ServerProcess, fetch, server_env

#: Seconds within which a publication must be visible.
VISIBLE_WITHIN = 2.0
POLL = 0.05

C9 = {"content": "c9", "title": "T", "url": "https://x/y", "author": "a1"}


def _redis(command: str, *args):
    """Run one command with a plain Redis client, as a CMS would."""
    client = redis.Redis.from_url(BASE_REDIS_URL)
    try:
        return getattr(client, command)(*args)
    finally:
        client.close()


async def _xadd(settings, fields: dict) -> str:
    key = Keys(settings.redis_prefix).publish_stream
    return (await trio.to_thread.run_sync(_redis, "xadd", key, fields)).decode()


async def _publish(settings, payload: dict) -> int:
    channel = Keys(settings.redis_prefix).publish_stream
    return await trio.to_thread.run_sync(_redis, "publish", channel, json.dumps(payload))


async def _wait_title(client, content_id: str, timeout: float = VISIBLE_WITHIN) -> dict:
    with trio.fail_after(timeout):
        while True:
            body = (await client.get(f"/v1/content/{content_id}")).json()
            if "title" in body:
                return body
            await trio.sleep(POLL)


async def test_an_xadd_shows_on_get_content_within_two_seconds(server, client, settings):
    with trio.fail_after(20):
        before = (await client.get("/v1/content/c9")).json()
        assert "title" not in before
        await _xadd(settings, {**C9, "tags": "a,b", "published_at": "2024-05-01T10:00:00+02:00"})
        body = await _wait_title(client, "c9")
        assert body["title"] == "T" and body["url"] == "https://x/y" and body["author"] == "a1"
        assert body["published_at"] == "2024-05-01T08:00:00.000Z" and body["tags"] == ["a", "b"]
        assert body["id"] == "c9" and body["views"] == 0  # counts stay as they are


async def test_feed_subscribers_get_published_once(server, client, settings):
    with trio.fail_after(20):
        async with open_websocket_url(ws_url(server)) as ws_all, \
                open_websocket_url(ws_url(server)) as ws_author:
            everyone, author = Client(ws_all), Client(ws_author)
            sub = await everyone.op({"op": "subscribe", "feed": "all"})
            assert sub["type"] == "subscribed" and sub["feed"] == "all"
            assert sub["recovered"] is False and "views" not in sub
            sub_a = await author.op({"op": "subscribe", "feed": "author:a1"})
            assert sub_a["feed"] == "author:a1"

            await _xadd(settings, C9)
            frame = await everyone.until(type="published")
            assert frame["feed"] == "all" and frame["offset"] == sub["offset"] + 1
            assert frame["epoch"] and frame["content"]["id"] == "c9"
            assert frame["content"]["title"] == "T" and frame["content"]["author"] == "a1"
            frame_a = await author.until(type="published")
            assert frame_a["feed"] == "author:a1" and frame_a["content"] == frame["content"]

            await _xadd(settings, C9)  # the same event again: no second announcement
            await _xadd(settings, {**C9, "content": "c10", "author": "a2"})
            nxt = await everyone.until(type="published")
            assert nxt["content"]["id"] == "c10" and nxt["offset"] == frame["offset"] + 1
            rows = fetch(settings.database_url, "SELECT id FROM content ORDER BY id")
            assert [r["id"] for r in rows] == ["c10", "c9"]

            # a2's publication is not on a1's feed; unsubscribe stops the feed
            await author.send({"op": "ping", "ref": "p"})
            assert (await author.next()) == {"type": "pong", "ref": "p"}
            ack = await author.op({"op": "unsubscribe", "feed": "author:a1"})
            assert ack["result"] == {"feed": "author:a1", "subscribed": False}

            bad = await everyone.op({"op": "subscribe", "feed": "authors"})
            assert bad["type"] == "error" and bad["code"] == "invalid_feed"

        # catch-up with since, as for content
        await _xadd(settings, {**C9, "content": "c11"})
        await _wait_title(client, "c11")
        async with open_websocket_url(ws_url(server)) as ws:
            c = Client(ws)
            sub2 = await c.op({"op": "subscribe", "feed": "all",
                               "since": {"offset": frame["offset"], "epoch": frame["epoch"]}})
            assert sub2["recovered"] is True and sub2["offset"] == frame["offset"] + 2
            missed = [await c.until(type="published") for _ in range(2)]
            assert [m["content"]["id"] for m in missed] == ["c10", "c11"]
            assert all(m["feed"] == "all" for m in missed)


async def test_post_content_needs_the_publisher_role(server, client, token, auth):
    with trio.fail_after(20):
        r = await client.post("/v1/content", json=C9)
        assert r.status_code == 401
        r = await client.post("/v1/content", json=C9, headers=auth("reader"))
        assert r.status_code == 403 and r.json()["code"] == "missing_role"
        publisher = {"Authorization": f"Bearer {token('cms', roles=['publisher'])}"}
        r = await client.post("/v1/content", json={**C9, "url": "nope"}, headers=publisher)
        assert r.status_code == 400 and r.json()["code"] == "invalid_publish_event"
        r = await client.post("/v1/content", json={**C9, "extra": "x"}, headers=publisher)
        assert r.status_code == 400 and r.json()["code"] == "unknown_field"
        r = await client.post("/v1/content", json={**C9, "tags": "x, y"}, headers=publisher)
        assert r.status_code == 202
        assert r.json()["content"] == "c9" and "-" in r.json()["id"]
        body = await _wait_title(client, "c9")
        assert body["tags"] == ["x", "y"]


async def test_plain_publish_is_accepted(server, client, settings):
    with trio.fail_after(20):
        async with open_websocket_url(ws_url(server)) as ws:
            c = Client(ws)
            await c.op({"op": "subscribe", "feed": "all"})
            # The router subscribes when it connects; wait until Redis has it.
            with trio.fail_after(5):
                while await _publish(settings, {**C9, "content": "ps1"}) == 0:
                    await trio.sleep(POLL)
            frame = await c.until(type="published")
            assert frame["content"]["id"] == "ps1"
        body = await _wait_title(client, "ps1")
        assert body["url"] == "https://x/y"


async def test_list_published_content(server, client, settings):
    with trio.fail_after(20):
        for i in range(7):
            await _xadd(settings, {**C9, "content": f"l{i}", "author": "odd" if i % 2 else "even",
                                   "published_at": f"2024-05-0{i + 1}T12:00:00Z"})
        await _wait_title(client, "l6")
        await _wait_title(client, "l0")
        pages, cursor = [], None
        while True:
            params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
            body = (await client.get("/v1/content", params=params)).json()
            pages.append([item["id"] for item in body["items"]])
            cursor = body["next"]
            if cursor is None:
                break
        assert pages == [["l6", "l5", "l4"], ["l3", "l2", "l1"], ["l0"]]
        odd = (await client.get("/v1/content", params={"author": "odd"})).json()
        assert [item["id"] for item in odd["items"]] == ["l5", "l3", "l1"]
        assert odd["next"] is None and odd["items"][0]["title"] == "T"
        r = await client.get("/v1/content", params={"cursor": "garbage!"})
        assert r.status_code == 400 and r.json()["code"] == "invalid_cursor"
        r = await client.get("/v1/content", params={"limit": 0})
        assert r.status_code == 400 and r.json()["code"] == "invalid_limit"


@pytest.mark.slow
def test_events_added_while_every_process_is_down_are_stored_once(database_url, redis_prefix):
    env = server_env(database_url, BASE_REDIS_URL, redis_prefix, JWT_SECRET)
    server = ServerProcess(env).start()
    assert server.stop() == 0, "".join(server.output)

    keys = Keys(redis_prefix)
    client = redis.Redis.from_url(BASE_REDIS_URL)
    try:
        for i in range(100):
            client.xadd(keys.publish_stream, {**C9, "content": f"d{i}"})
    finally:
        client.close()

    server = ServerProcess(env).start()
    try:
        deadline = time.monotonic() + 20
        rows: list = []
        while time.monotonic() < deadline:
            rows = fetch(database_url, "SELECT id FROM content")
            if len(rows) >= 100:
                break
            time.sleep(0.2)
        assert sorted(r["id"] for r in rows) == sorted(f"d{i}" for i in range(100))
        body = httpx.get(f"{server.url}/v1/content/d42", timeout=10).json()
        assert body["title"] == "T"
    finally:
        assert server.stop() == 0, "".join(server.output)

    client = redis.Redis.from_url(BASE_REDIS_URL)
    try:
        announced = [f for _, f in client.xrange(keys.events)
                     if f[b"type"] == b"content.published"]
        assert sorted(json.loads(f[b"data"])["id"] for f in announced) == \
            sorted(f"d{i}" for i in range(100))  # each announced exactly once
        assert client.xpending(keys.publish_stream, "publisher")["pending"] == 0
        assert client.xlen(keys.publish_dead) == 0
    finally:
        client.close()
