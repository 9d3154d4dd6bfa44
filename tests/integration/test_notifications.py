"""Notifications end to end: live on the WebSocket, catch-up after being
offline, the HTTP list and read marks, coalesced applause under a burst,
milestones and follows."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import trio
from trio_websocket import open_websocket_url

from engage.actors.notifier import NOTIFIER_GROUP
from engage.domain.content import ContentMeta
from tests.integration.test_realtime import Client, ws_url

#: Coalescing window in these tests, in seconds (the default is 10).
WINDOW = 1.0
POLL = 0.05


@pytest.fixture
def settings(settings):
    return settings.replace(notify_coalesce_window=WINDOW)


async def _meta(stores, content_id: str, author: str) -> None:
    await stores.content_meta.store(ContentMeta(content_id, f"Title {content_id}",
                                                f"https://example.com/{content_id}", author,
                                                datetime.now(timezone.utc)))


async def _list(client, auth, user: str, **params) -> dict:
    r = await client.get("/v1/notifications", params=params, headers=auth(user))
    assert r.status_code == 200, r.text
    return r.json()


async def _drained(stores) -> None:
    """Wait until the notifier has read and acknowledged the whole event log."""
    while True:
        groups = await stores.bridge.call(stores.redis.xinfo_groups, stores.events.key)
        (group,) = [g for g in groups if g["name"].decode() == NOTIFIER_GROUP]
        if group["lag"] == 0 and group["pending"] == 0:
            return
        await trio.sleep(POLL)


async def _logged(stores, event_type: str, needle: str) -> None:
    """Wait until an event of ``event_type`` mentioning ``needle`` is in the event log."""
    while True:
        entries = await stores.bridge.call(stores.redis.xrevrange, stores.events.key, "+", "-",
                                           20)
        if any(f[b"type"].decode() == event_type and needle.encode() in f[b"data"]
               for _, f in entries):
            return
        await trio.sleep(POLL)


async def _comment(client, auth, user: str, content: str, parent: str | None = None) -> dict:
    body = {"body": f"from {user}"} | ({"parent": parent} if parent else {})
    r = await client.post(f"/v1/content/{content}/comments", json=body, headers=auth(user))
    assert r.status_code == 201, r.text
    return r.json()


async def test_reply_reaches_the_open_websocket_within_a_second(server, client, auth, token):
    with trio.fail_after(20):
        parent = await _comment(client, auth, "ann", "r1")
        async with open_websocket_url(ws_url(server, token=token("ann"))) as ws:
            ann = Client(ws)
            sub = await ann.op({"op": "subscribe", "notifications": True})
            assert sub["type"] == "subscribed" and sub["notifications"] is True
            assert sub["recovered"] is False and isinstance(sub["offset"], int)
            await _comment(client, auth, "ann", "r1", parent["id"])  # to oneself: nothing
            start = trio.current_time()
            reply = await _comment(client, auth, "bob", "r1", parent["id"])
            with trio.fail_after(1.0):
                frame = await ann.until(type="notification")
            assert trio.current_time() - start < 1.0
            n = frame["notification"]
            assert set(n) == {"id", "kind", "created_at", "read", "data"}
            assert n["kind"] == "reply" and n["read"] is False
            assert n["data"]["comment"]["id"] == reply["id"]
            assert n["data"]["comment"]["author"] == "bob" and n["data"]["content"] == "r1"
            assert frame["offset"] == sub["offset"] + 1 and frame["epoch"] == sub["epoch"]


async def test_offline_user_catches_up_and_reads_over_http(server, client, auth, token):
    with trio.fail_after(30):
        parent = await _comment(client, auth, "ann", "r2")
        async with open_websocket_url(ws_url(server, token=token("ann"))) as ws:
            sub = await Client(ws).op({"op": "subscribe", "notifications": True})
        replies = [await _comment(client, auth, u, "r2", parent["id"]) for u in ("bob", "cy")]
        while len((await _list(client, auth, "ann"))["items"]) < 2:
            await trio.sleep(POLL)
        async with open_websocket_url(ws_url(server, token=token("ann"))) as ws:
            ann = Client(ws)
            back = await ann.op({"op": "subscribe", "notifications": True,
                                 "since": {"offset": sub["offset"], "epoch": sub["epoch"]}})
            assert back["recovered"] is True and back["offset"] == sub["offset"] + 2
            missed = [await ann.until(type="notification") for _ in range(2)]
            assert [f["notification"]["data"]["comment"]["id"] for f in missed] == \
                [r["id"] for r in replies]

        page = await _list(client, auth, "ann")
        assert [n["data"]["comment"]["author"] for n in page["items"]] == ["cy", "bob"]  # newest first
        assert page["next"] is None
        first = await _list(client, auth, "ann", limit=1)
        assert len(first["items"]) == 1 and first["next"]
        second = await _list(client, auth, "ann", limit=1, cursor=first["next"])
        assert second["items"][0]["id"] == page["items"][1]["id"]

        newest = page["items"][0]["id"]
        r = await client.post("/v1/notifications/read", json={"ids": [newest]},
                              headers=auth("ann"))
        assert r.json() == {"marked": 1, "unread": 1}
        unread = await _list(client, auth, "ann", unread="true")
        assert [n["id"] for n in unread["items"]] == [page["items"][1]["id"]]
        assert (await _list(client, auth, "ann"))["items"][0]["read"] is True
        r = await client.post("/v1/notifications/read", json={"ids": [newest]},
                              headers=auth("bob"))  # not bob's
        assert r.json() == {"marked": 0, "unread": 0}
        r = await client.post("/v1/notifications/read", json={"all": True}, headers=auth("ann"))
        assert r.json() == {"marked": 1, "unread": 0}
        assert (await _list(client, auth, "ann", unread="true"))["items"] == []


async def test_signed_out_clients_are_refused(server, client):
    with trio.fail_after(20):
        async with open_websocket_url(ws_url(server)) as ws:
            reply = await Client(ws).op({"op": "subscribe", "notifications": True})
            assert reply["type"] == "error" and reply["code"] == "unauthorized"
        for method, path in (("GET", "/v1/notifications"), ("POST", "/v1/notifications/read"),
                             ("PUT", "/v1/follows/ann"), ("DELETE", "/v1/follows/ann")):
            r = await client.request(method, path)
            assert r.status_code == 401, (method, path)


async def test_an_applause_burst_becomes_a_few_notifications(server, client, auth, stores):
    """500 applause events from 50 users within 2 s: at most
    floor(2 s / window) + 1 = 3 applause notifications, whose counts add up."""
    with trio.fail_after(60):
        await _meta(stores, "burst", "ann")

        async def clap(user: str) -> None:
            events = [{"type": "applause", "content": "burst", "count": 3}] * 10
            r = await client.post("/v1/events", json={"events": events}, headers=auth(user))
            assert r.status_code == 200 and all(x["ok"] for x in r.json()["results"])

        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            for i in range(50):
                nursery.start_soon(clap, f"fan{i}")
        assert trio.current_time() - start < 2.0

        def applause(items):
            return [n for n in items if n["kind"] == "applause"]

        while sum(n["data"]["events"]
                  for n in applause((await _list(client, auth, "ann", limit=100))["items"])) < 500:
            await trio.sleep(POLL)
        await _drained(stores)
        items = applause((await _list(client, auth, "ann", limit=100))["items"])
        assert 1 <= len(items) <= 3
        assert sum(n["data"]["events"] for n in items) == 500
        assert sum(n["data"]["claps"] for n in items) == 1500
        assert 50 <= sum(n["data"]["people"] for n in items) <= 50 * len(items)
        assert all(n["data"]["content"] == "burst" for n in items)


async def test_milestone_at_ten_likes(server, client, auth, stores):
    with trio.fail_after(30):
        await _meta(stores, "liked", "ann")
        for i in range(10):
            r = await client.put("/v1/content/liked/like", headers=auth(f"liker{i}"))
            assert r.status_code == 200
        while not (items := (await _list(client, auth, "ann"))["items"]):
            await trio.sleep(POLL)
        (n,) = items
        assert n["kind"] == "milestone"
        assert n["data"] == {"content": "liked", "title": "Title liked", "metric": "likes",
                             "value": 10}


async def test_follow_then_new_content(server, client, auth, token, stores):
    with trio.fail_after(30):
        for _ in range(2):  # idempotent
            r = await client.put("/v1/follows/ann", headers=auth("bob"))
            assert r.status_code == 200 and r.json() == {"author": "ann", "following": True}
        r = await client.put("/v1/follows/bob", headers=auth("bob"))
        assert r.status_code == 400 and r.json()["code"] == "follow_self"
        publisher = {"Authorization": f"Bearer {token('cms', roles=['publisher'])}"}

        async def publish(content_id: str) -> None:
            r = await client.post("/v1/content", headers=publisher, json={
                "content": content_id, "title": f"Post {content_id}",
                "url": f"https://example.com/{content_id}", "author": "ann",
                "published_at": "2024-05-01T10:00:00Z"})
            assert r.status_code == 202, r.text

        async with open_websocket_url(ws_url(server, token=token("bob"))) as ws:
            bob = Client(ws)
            await bob.op({"op": "subscribe", "notifications": True})
            await publish("post1")
            frame = await bob.until(type="notification")
            n = frame["notification"]
            assert n["kind"] == "new_content"
            assert n["data"]["content"] == "post1" and n["data"]["author"] == "ann"
            assert n["data"]["title"] == "Post post1"

        for _ in range(2):
            r = await client.delete("/v1/follows/ann", headers=auth("bob"))
            assert r.status_code == 200 and r.json() == {"author": "ann", "following": False}
        await publish("post2")
        await _logged(stores, "content.published", "post2")
        await _drained(stores)
        items = (await _list(client, auth, "bob"))["items"]
        assert [n["data"]["content"] for n in items] == ["post1"]
