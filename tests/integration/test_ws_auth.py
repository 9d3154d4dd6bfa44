"""Tokens on long-lived WebSockets: expiry, the grace period, re-auth, schemas."""

from __future__ import annotations

import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from engage.auth import issue_token
from tests.conftest import JWT_SECRET
from tests.integration.test_realtime import Client, ws_url


@pytest.fixture
def settings(settings):
    return settings.replace(ws_auth_grace=1.5, ws_ping_interval=0.5)


def short_token(user: str, seconds: float = 1.0) -> str:
    return issue_token(JWT_SECRET, user, expires_in=seconds)


async def test_expired_token_is_told_refused_writes_then_closed_4401(server):
    with trio.fail_after(20):
        async with open_websocket_url(ws_url(server, token=short_token("eve"))) as ws:
            c = Client(ws)
            assert (await c.op({"op": "like", "content": "x1"}))["type"] == "ack"
            told = await c.until(type="error", code="token_expired")
            assert told["ref"] is None and "4401" in told["message"]
            refused = await c.op({"op": "like", "content": "x1"})
            assert refused["type"] == "error" and refused["code"] == "token_expired"
            assert (await c.op({"op": "view", "content": "x1"}))["type"] == "ack"  # reads go on
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await c.next()
            assert closed.value.reason.code == 4401


async def test_a_fresh_auth_within_the_grace_keeps_the_socket(server, token):
    with trio.fail_after(20):
        async with open_websocket_url(ws_url(server, token=short_token("fay"))) as ws:
            c = Client(ws)
            await c.until(type="error", code="token_expired")
            ack = await c.op({"op": "auth", "token": token("fay")})
            assert ack["result"] == {"user": "fay"}
            await trio.sleep(2.5)  # past the grace period of the old token
            assert (await c.op({"op": "like", "content": "x2"}))["type"] == "ack"


async def test_frames_are_checked_against_their_schema(server, token):
    with trio.fail_after(20):
        async with open_websocket_url(ws_url(server, token=token("gus"))) as ws:
            c = Client(ws)
            cases = [
                ({"op": "teleport"}, "unknown_op"),
                ({"op": "like", "content": "a", "extra": 1}, "unknown_field"),
                ({"op": "like"}, "invalid_content_id"),
                ({"op": "applaud", "content": "a", "count": "9"}, "invalid_count"),
                ({"op": "subscribe", "content": "a", "since": {"offset": -1, "epoch": "e"}},
                 "invalid_since"),
                ({"op": "subscribe", "content": "a", "feed": "all"}, "invalid_frame"),
                ({"op": "comment", "content": "a", "body": "bell\x07"}, "invalid_characters"),
            ]
            for frame, code in cases:
                reply = await c.op(frame)
                assert (reply["type"], reply["code"]) == ("error", code), (frame, reply)
            await ws.send_message("{not json")
            assert (await c.next())["code"] == "malformed"
            # A lone surrogate escape is not text anything downstream could store.
            await ws.send_message('{"op": "comment", "content": "a", "body": "\\ud800", "ref": 1}')
            assert (await c.next())["code"] == "malformed"
            await ws.send_message(b"\x00binary")
            assert (await c.next())["code"] == "malformed"
            assert (await c.op({"op": "ping"}))["type"] == "pong"
