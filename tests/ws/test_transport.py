"""WebSocketConnection behind serve_front, over real sockets on 127.0.0.1."""

from __future__ import annotations

import json

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from engage.errors import WebSocketClosed
from engage.ws import binary_frame, text_frame
from tests.ws.support import TEST_TIMEOUT, serving, ws_url


async def echo(conn):
    await conn.accept("engage.json" if "engage.json" in conn.subprotocols else None)
    while True:
        message = await conn.receive()
        frame = text_frame(message) if isinstance(message, str) else binary_frame(message)
        await conn.send(frame)


async def test_handshake_and_echo():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving(echo) as port:
            async with open_websocket_url(ws_url(port)) as ws:
                await ws.send_message("hello")
                assert await ws.get_message() == "hello"
                await ws.send_message(b"\x00\x01bin")
                assert await ws.get_message() == b"\x00\x01bin"
                big = "x" * 60_000
                await ws.send_message(big)
                assert await ws.get_message() == big


async def test_http_routes_share_the_port():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving(echo) as port:
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base) as http:
                for _ in range(3):  # keep-alive: same connection, several requests
                    response = await http.get("/hello")
                    assert response.status_code == 200
                    assert response.json() == {"hello": "world"}
                assert (await http.get("/v1/wsx")).status_code == 404
            # Routing happens on a connection's first request (see frontdoor), so
            # the plain GET on the ws path uses a fresh connection.
            async with httpx.AsyncClient(base_url=base) as http:
                plain = await http.get("/v1/ws?x=1")
                assert plain.status_code == 426
                assert plain.headers["content-type"] == "application/problem+json"
                assert plain.headers["upgrade"] == "websocket"
                assert plain.json()["code"] == "upgrade_required"
            async with open_websocket_url(ws_url(port)) as ws:  # still serving ws after
                await ws.send_message("after")
                assert await ws.get_message() == "after"


async def test_request_details_and_subprotocol():
    seen = {}

    async def handler(conn):
        if not seen:
            seen.update(path=conn.path, query=conn.query, origin=conn.origin,
                        offered=conn.subprotocols, ua=conn.headers.get("x-test"))
        await echo(conn)

    with trio.fail_after(TEST_TIMEOUT):
        async with serving(handler) as port:
            async with open_websocket_url(
                    ws_url(port, "/v1/ws?token=abc&since=4"),
                    subprotocols=["engage.msgpack", "engage.json"],
                    extra_headers=[(b"origin", b"https://example.test"),
                                   (b"x-test", b"yes")]) as ws:
                assert ws.subprotocol == "engage.json"
                await ws.send_message("hi")
                assert await ws.get_message() == "hi"
            async with open_websocket_url(ws_url(port)) as ws:
                assert ws.subprotocol is None
    assert seen["path"] == "/v1/ws"
    assert seen["query"] == {"token": "abc", "since": "4"}
    assert seen["origin"] == "https://example.test"
    assert seen["ua"] == "yes"
    assert seen["offered"] == ["engage.msgpack", "engage.json"]


async def test_reject_with_403_problem():
    async def handler(conn):
        body = json.dumps({"status": 403, "code": "forbidden"}).encode()
        await conn.reject(403, body)

    with trio.fail_after(TEST_TIMEOUT):
        async with serving(handler) as port:
            with pytest.raises(ConnectionRejected) as rejected:
                async with open_websocket_url(ws_url(port)):
                    pass
    assert rejected.value.status_code == 403
    assert json.loads(rejected.value.body)["code"] == "forbidden"
    assert (b"content-type", b"application/problem+json") in rejected.value.headers


async def test_message_too_big_closes_with_1009():
    closed = []

    async def handler(conn):
        await conn.accept()
        try:
            await conn.receive()
        except WebSocketClosed as exc:
            closed.append(exc.code)
            raise

    with trio.fail_after(TEST_TIMEOUT):
        async with serving(handler) as port:
            async with open_websocket_url(ws_url(port)) as ws:
                await ws.send_message(b"x" * (64 * 1024 + 1))
                with pytest.raises(ConnectionClosed) as exc:
                    await ws.get_message()
                assert exc.value.reason.code == 1009
    assert closed == [1009]


async def test_handler_error_closes_with_1011_and_unaccepted_gets_500():
    async def handler(conn):
        if conn.query.get("accept") == "no":
            return
        await conn.accept()
        raise RuntimeError("boom (expected by the test)")

    with trio.fail_after(TEST_TIMEOUT):
        async with serving(handler) as port:
            async with open_websocket_url(ws_url(port)) as ws:
                with pytest.raises(ConnectionClosed) as exc:
                    await ws.get_message()
                assert exc.value.reason.code == 1011
            with pytest.raises(ConnectionRejected) as rejected:
                async with open_websocket_url(ws_url(port, "/v1/ws?accept=no")):
                    pass
            assert rejected.value.status_code == 500


async def test_pings_both_ways():
    conns = []

    async def handler(conn):
        conns.append(conn)
        await echo(conn)

    with trio.fail_after(TEST_TIMEOUT):
        async with serving(handler) as port:
            async with open_websocket_url(ws_url(port)) as ws:
                await ws.ping(b"client")  # returns once the server's pong arrives
                conn = conns[0]
                before = conn.last_seen
                await trio.sleep(0.05)
                await conn.ping(b"server")  # the client pongs; any inbound bytes count
                while conn.last_seen <= before + 0.04:
                    await trio.sleep(0.01)
                assert conn.statistics()["state"] == "open"


async def test_graceful_shutdown_closes_with_1001():
    shutting = []

    async def handler(conn):
        await conn.accept()
        shutting.append(conn.shutting_down)
        await trio.sleep_forever()  # ignores shutting_down: the door cancels it

    stop = trio.Event()
    with trio.fail_after(TEST_TIMEOUT):
        async with serving(handler, stop=stop, ws_shutdown_grace=0.1) as port:
            async with open_websocket_url(ws_url(port)) as ws:
                await ws.send_message("x")
                while not shutting:
                    await trio.sleep(0.01)
                stop.set()
                with pytest.raises(ConnectionClosed) as exc:
                    await ws.get_message()
                assert exc.value.reason.code == 1001
                assert shutting[0].is_set()


async def test_close_while_another_task_receives():
    seen = []

    async def handler(conn):
        await conn.accept()
        async with trio.open_nursery() as nursery:
            async def reader():
                try:
                    while True:
                        await conn.receive()
                except WebSocketClosed as exc:
                    seen.append(exc.code)

            nursery.start_soon(reader)
            await trio.sleep(0.05)
            await conn.close(4000, "bye")  # the reader reads the peer's close reply

    with trio.fail_after(TEST_TIMEOUT):
        async with serving(handler) as port:
            async with open_websocket_url(ws_url(port)) as ws:
                with pytest.raises(ConnectionClosed) as exc:
                    await ws.get_message()
                assert exc.value.reason.code == 4000
                assert exc.value.reason.reason == "bye"
    assert seen == [4000]
