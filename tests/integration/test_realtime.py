"""The real-time path end to end: WebSocket ops, live comments and counts,
catch-up, msgpack, presence and the upgrade's checks."""

from __future__ import annotations

import json

import msgpack
import pytest
import trio
from trio_websocket import ConnectionRejected, open_websocket_url


def ws_url(server: str, **query) -> str:
    url = server.replace("http://", "ws://") + "/v1/ws"
    if query:
        url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return url


class Client:
    """A test client that reads frames until one matches."""

    def __init__(self, ws, wire="json"):
        self.ws = ws
        self.wire = wire
        self.seen: list[dict] = []

    async def send(self, frame: dict) -> None:
        if self.wire == "msgpack":
            await self.ws.send_message(msgpack.packb(frame))
        else:
            await self.ws.send_message(json.dumps(frame))

    async def next(self) -> dict:
        raw = await self.ws.get_message()
        frame = msgpack.unpackb(raw) if self.wire == "msgpack" else json.loads(raw)
        self.seen.append(frame)
        return frame

    async def until(self, **match) -> dict:
        while True:
            frame = await self.next()
            if all(frame.get(k) == v for k, v in match.items()):
                return frame

    async def op(self, frame: dict) -> dict:
        ref = str(len(self.seen)) + frame["op"]
        await self.send({**frame, "ref": ref})
        while True:
            reply = await self.next()
            if reply.get("ref") == ref:
                return reply


async def test_live_comment_counts_and_acks(server, client, auth, token):
    with trio.fail_after(20):
        async with open_websocket_url(ws_url(server, token=token("ann"))) as ws:
            c = Client(ws)
            sub = await c.op({"op": "subscribe", "content": "live1"})
            assert sub["type"] == "subscribed" and sub["recovered"] is False
            assert sub["views"] == 0 and sub["watching"] in (0, 1)
            assert isinstance(sub["offset"], int) and sub["epoch"]

            ack = await c.op({"op": "like", "content": "live1"})
            assert ack == {"type": "ack", "ref": ack["ref"],
                           "result": {"content": "live1", "liked": True, "likes": 1}}
            ack = await c.op({"op": "applaud", "content": "live1", "count": 70})
            assert ack["type"] == "error" and ack["code"] == "invalid_count"

            r = await client.post("/v1/content/live1/comments", json={"body": "<b>hi</b>"},
                                  headers=auth("bob"))
            assert r.status_code == 201
            frame = await c.until(type="comment")
            assert frame["content"] == "live1" and frame["offset"] == sub["offset"] + 1
            assert frame["comment"] == r.json()
            counts = await c.until(type="counts", likes=1, comments=1)
            assert counts["watching"] == 1 and counts["content"] == "live1"


async def test_catch_up_after_reconnect(server, client, auth):
    with trio.fail_after(30):
        async with open_websocket_url(ws_url(server)) as ws:
            c = Client(ws)
            await c.op({"op": "subscribe", "content": "cu"})
            await client.post("/v1/content/cu/comments", json={"body": "seen"}, headers=auth("a"))
            seen = await c.until(type="comment")
        missed = []
        for i in range(5):
            r = await client.post("/v1/content/cu/comments", json={"body": f"missed {i}"},
                                  headers=auth("a"))
            missed.append(r.json()["id"])
        async with open_websocket_url(ws_url(server)) as ws:
            c = Client(ws)
            sub2 = await c.op({"op": "subscribe", "content": "cu",
                               "since": {"offset": seen["offset"], "epoch": seen["epoch"]}})
            assert sub2["recovered"] is True and sub2["offset"] == seen["offset"] + 5
            got = [await c.until(type="comment") for _ in range(5)]
            assert [f["comment"]["id"] for f in got] == missed
            assert [f["offset"] for f in got] == list(range(seen["offset"] + 1, seen["offset"] + 6))
            # and live again afterwards, with nothing repeated
            await client.post("/v1/content/cu/comments", json={"body": "live"}, headers=auth("a"))
            live = await c.until(type="comment")
            assert live["offset"] == seen["offset"] + 6 and live["comment"]["body"] == "live"

        async with open_websocket_url(ws_url(server)) as ws:
            c = Client(ws)
            stale = await c.op({"op": "subscribe", "content": "cu",
                                "since": {"offset": 0, "epoch": "some-other-epoch"}})
            assert stale["recovered"] is False


async def test_too_far_behind_is_not_recovered(server, stores, settings):
    with trio.fail_after(60):
        async with open_websocket_url(ws_url(server)) as ws:
            sub = await Client(ws).op({"op": "subscribe", "content": "far"})
        for i in range(settings.history_size + 100):  # more than the history keeps
            await stores.history.publish("content:far", "comment", {"id": str(i)},
                                         content_id="far")
        async with open_websocket_url(ws_url(server)) as ws:
            c = Client(ws)
            reply = await c.op({"op": "subscribe", "content": "far",
                                "since": {"offset": sub["offset"], "epoch": sub["epoch"]}})
            assert reply["recovered"] is False
            assert reply["offset"] == sub["offset"] + settings.history_size + 100
            # nothing partial follows: the next frame is a live one
            await c.send({"op": "ping", "ref": "after"})
            assert (await c.next())["type"] == "pong"


async def test_msgpack_wire(server, token):
    with trio.fail_after(20):
        async with open_websocket_url(ws_url(server, token=token("mp")),
                                      subprotocols=["engage.msgpack"]) as ws:
            assert ws.subprotocol == "engage.msgpack"
            raw_frames = []
            c = Client(ws, wire="msgpack")
            await c.send({"op": "ping", "ref": 1})
            raw = await ws.get_message()
            raw_frames.append(raw)
            assert isinstance(raw, bytes) and msgpack.unpackb(raw) == {"type": "pong", "ref": 1}
            ack = await c.op({"op": "view", "content": "mp1"})
            assert ack["result"] == {"content": "mp1", "views": 1}


async def test_anonymous_may_view_but_not_like(server):
    with trio.fail_after(20):
        async with open_websocket_url(ws_url(server)) as ws:
            c = Client(ws)
            assert (await c.op({"op": "view", "content": "an"}))["type"] == "ack"
            err = await c.op({"op": "like", "content": "an"})
            assert err["type"] == "error" and err["code"] == "unauthorized"
            err = await c.op({"op": "comment", "content": "an", "body": "x"})
            assert err["code"] == "unauthorized"
            err = await c.op({"op": "fly", "content": "an"})
            assert err["code"] == "unknown_op"
            await ws.send_message("{nope")
            bad = await c.next()
            assert bad["type"] == "error" and bad["code"] == "malformed"
            # auth later, then liking works
            from engage.auth import issue_token
            from tests.conftest import JWT_SECRET
            ok = await c.op({"op": "auth", "token": issue_token(JWT_SECRET, "late")})
            assert ok["result"] == {"user": "late"}
            assert (await c.op({"op": "like", "content": "an"}))["result"]["liked"] is True


async def test_upgrade_checks(server):
    with trio.fail_after(20):
        with pytest.raises(ConnectionRejected) as rejected:
            async with open_websocket_url(ws_url(server), extra_headers=[
                    ("Origin", "https://evil.example")]):
                pass
        assert rejected.value.status_code == 403
        with pytest.raises(ConnectionRejected) as rejected:
            async with open_websocket_url(ws_url(server, token="garbage")):
                pass
        assert rejected.value.status_code == 401
        host = server.removeprefix("http://")
        async with open_websocket_url(ws_url(server), extra_headers=[("Origin", f"http://{host}")]) as ws:
            await Client(ws).op({"op": "ping"})


async def test_oversized_frame_closes_1009(server):
    with trio.fail_after(20):
        async with open_websocket_url(ws_url(server)) as ws:
            await ws.send_message("x" * (70 * 1024))
            with pytest.raises(Exception):
                while True:
                    await ws.get_message()
            assert ws.closed.code == 1009


async def test_presence_counts_watchers(server, client):
    with trio.fail_after(20):
        async with open_websocket_url(ws_url(server)) as ws1, \
                open_websocket_url(ws_url(server)) as ws2:
            a, b = Client(ws1), Client(ws2)
            await a.op({"op": "subscribe", "content": "pr"})
            await b.op({"op": "subscribe", "content": "pr"})
            frame = await a.until(type="counts", watching=2)
            assert frame["content"] == "pr"
        async with open_websocket_url(ws_url(server)) as ws3:
            c = Client(ws3)
            sub = await c.op({"op": "subscribe", "content": "pr"})
            if sub["watching"] != 1:
                await c.until(type="counts", watching=1)


async def test_one_socket_pipelines_its_comments(server, client, token):
    """200 comment ops sent back to back on one socket: every one is acked with
    its ref, they are stored in the order sent, and the socket did not wait for
    each one (they go out before the first ack is read)."""
    n = 200
    with trio.fail_after(30):
        async with open_websocket_url(ws_url(server, token=token("poster"))) as ws:
            c = Client(ws)
            for i in range(n):
                await c.send({"op": "comment", "content": "busy", "body": f"c{i}", "ref": i})
            acks: dict[int, dict] = {}
            while len(acks) < n:
                frame = await c.next()
                if frame.get("type") == "ack":
                    acks[frame["ref"]] = frame["result"]["comment"]
            ids = [int(acks[i]["id"]) for i in range(n)]
            assert ids == sorted(ids)  # stored in the order sent
            assert [acks[i]["body"] for i in range(n)] == [f"c{i}" for i in range(n)]
        listed = (await client.get("/v1/content/busy/comments",
                                   params={"sort": "oldest", "limit": 100})).json()
        assert [item["body"] for item in listed["items"]] == [f"c{i}" for i in range(100)]
