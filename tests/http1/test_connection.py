"""HttpConnection through serve_front, over raw sockets: exact bytes in, exact bytes out."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

import pytest
import trio

from engage.http1.parser import MAX_HEAD_BYTES

from tests.http1.support import (SLOW_SECONDS, TEST_TIMEOUT, RawClient, Reply, get, make_app,
                                 post, serving)

HELLO = b'{"hello":"world"}\n'


def assert_common(reply: Reply) -> None:
    """What every response carries: one date (a valid one) and nosniff."""
    assert reply.header_count("date") == 1, reply.headers
    assert parsedate_to_datetime(reply.header("date")).tzinfo is not None
    assert reply.header("x-content-type-options") == "nosniff"
    assert reply.version == "HTTP/1.1"


def assert_problem(reply: Reply, status: int, code: str) -> None:
    assert reply.status == status, (reply.status, reply.body)
    assert reply.header("content-type") == "application/problem+json"
    document = reply.json()
    assert document["status"] == status
    assert document["code"] == code
    assert_common(reply)


async def assert_closed_soon(client: RawClient, within: float = 1.0) -> None:
    """The server closes the connection (EOF, nothing more sent) within ``within`` s."""
    with trio.fail_after(within):
        assert await client.read_to_eof() == b""


# -- keep-alive and closing --------------------------------------------------------------------

async def test_keep_alive_serves_two_requests_on_one_socket():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving() as port, await RawClient.connect(port) as client:
            first = await client.request(get("/hello"))
            second = await client.request(get("/hello"))
            for reply in (first, second):
                assert reply.status == 200
                assert reply.body == HELLO
                assert reply.header("content-length") == str(len(HELLO))
                assert reply.header("connection") is None
                assert_common(reply)


async def test_connection_close_request_is_answered_then_closed():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving() as port, await RawClient.connect(port) as client:
            reply = await client.request(get("/hello", "Connection: close"))
            assert reply.status == 200
            assert reply.body == HELLO
            assert reply.header("connection") == "close"
            await assert_closed_soon(client)


async def test_http10_without_keep_alive_is_closed_after_the_answer():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving() as port, await RawClient.connect(port) as client:
            reply = await client.request(get("/hello", version="1.0"))
            assert reply.status == 200
            assert reply.body == HELLO
            assert reply.header("connection") == "close"
            await assert_closed_soon(client)


async def test_http10_with_keep_alive_stays_open():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving() as port, await RawClient.connect(port) as client:
            for _ in range(2):
                reply = await client.request(get("/hello", "Connection: keep-alive",
                                                 version="1.0"))
                assert reply.status == 200
                assert reply.body == HELLO
                assert reply.header("connection") == "keep-alive"
            # and it ends like any HTTP/1.0 request without keep-alive
            reply = await client.request(get("/hello", version="1.0"))
            assert reply.header("connection") == "close"
            await assert_closed_soon(client)


async def test_idle_keep_alive_connection_closed_after_keep_alive_timeout():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving(keep_alive_timeout=0.5) as port, \
                await RawClient.connect(port) as client:
            reply = await client.request(get("/hello"))
            assert reply.status == 200
            start = trio.current_time()
            with trio.fail_after(2.0):
                rest = await client.read_to_eof()
            elapsed = trio.current_time() - start
            assert rest == b""  # silently: no 408 between requests
            assert elapsed >= 0.4, elapsed


async def test_keep_alive_timeout_restarts_with_each_request():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving(keep_alive_timeout=0.5) as port, \
                await RawClient.connect(port) as client:
            for _ in range(3):
                assert (await client.request(get("/hello"))).status == 200
                await trio.sleep(0.3)  # 0.9 s in all, each gap under the timeout
            assert (await client.request(get("/hello"))).status == 200


# -- pipelining --------------------------------------------------------------------------------

async def test_three_pipelined_requests_answered_in_order():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving() as port, await RawClient.connect(port) as client:
            await client.send(get("/hello") + post("/echo", b"second") + get("/fast"))
            first = await client.read_response()
            second = await client.read_response()
            third = await client.read_response()
            assert (first.status, first.body) == (200, HELLO)
            assert second.status == 200
            assert second.json() == {"length": 6, "body": "second"}
            assert (third.status, third.body) == (200, b'{"fast":true}')
            # the connection is still good
            assert (await client.request(get("/fast"))).status == 200


async def test_pipelined_slow_request_still_answered_before_a_fast_one():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving() as port, await RawClient.connect(port) as client:
            await client.send(get("/slow") + get("/fast") + get("/hello", "Connection: close"))
            slow = await client.read_response()
            fast = await client.read_response()
            last = await client.read_response()
            assert slow.json() == {"slow": True}
            assert fast.body == b'{"fast":true}'
            assert last.body == HELLO
            assert last.header("connection") == "close"
            assert slow.header("connection") is None and fast.header("connection") is None
            await assert_closed_soon(client)


async def test_pipelined_requests_after_connection_close_are_not_answered():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving() as port, await RawClient.connect(port) as client:
            await client.send(get("/hello", "Connection: close") + get("/fast"))
            reply = await client.read_response()
            assert reply.body == HELLO
            assert reply.header("connection") == "close"
            await assert_closed_soon(client)


# -- deadlines ---------------------------------------------------------------------------------

async def test_slowloris_partial_head_gets_408_after_request_timeout():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving(request_timeout=0.5) as port, \
                await RawClient.connect(port) as client:
            await client.send(b"GET /hello HTTP/1.1\r\nHost: test\r\nX-Slow: ")
            start = trio.current_time()
            with trio.fail_after(2.0):
                reply = await client.read_response()
            elapsed = trio.current_time() - start
            assert elapsed >= 0.4, elapsed
            assert_problem(reply, 408, "request_timeout")
            assert reply.header("connection") == "close"
            await assert_closed_soon(client)


async def test_slow_body_gets_408_after_request_timeout():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving(request_timeout=0.5) as port, \
                await RawClient.connect(port) as client:
            await client.send(b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\n"
                              b"abc")
            with trio.fail_after(2.0):
                reply = await client.read_response()
            assert_problem(reply, 408, "request_timeout")
            await assert_closed_soon(client)


async def test_trickling_slowloris_gets_408_after_request_timeout():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving(request_timeout=0.4) as port, \
                await RawClient.connect(port) as client:
            await client.send(b"GET /hello HTTP/1.1\r\n")

            async def trickle():
                for byte in b"X-Slow: x\r\n" * 100:
                    await trio.sleep(0.1)
                    try:
                        await client.send(bytes([byte]))
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        return

            async with trio.open_nursery() as nursery:
                nursery.start_soon(trickle)
                with trio.move_on_after(2.0):
                    reply = await client.read_response()
                    nursery.cancel_scope.cancel()
                    assert_problem(reply, 408, "request_timeout")
                    return
                nursery.cancel_scope.cancel()
            pytest.fail("a request trickling in for 2 s was not refused (request_timeout 0.4)")


async def test_connection_that_sends_nothing_is_closed_silently():
    # A fresh connection's first bytes are awaited by the front door (request_timeout).
    with trio.fail_after(TEST_TIMEOUT):
        async with serving(request_timeout=0.5, keep_alive_timeout=0.5) as port, \
                await RawClient.connect(port) as client:
            start = trio.current_time()
            with trio.fail_after(2.0):
                rest = await client.read_to_eof()
            assert rest == b""
            assert trio.current_time() - start >= 0.4


# -- 100-continue and HEAD ---------------------------------------------------------------------

async def test_expect_100_continue():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving() as port, await RawClient.connect(port) as client:
            await client.send(b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n"
                              b"Expect: 100-continue\r\n\r\n")
            interim = await client.read_response()
            assert interim.status == 100
            assert interim.raw_head == b"HTTP/1.1 100 Continue"
            assert not client.buffer  # nothing else until the body is sent
            await client.send(b"hello")
            reply = await client.read_response()
            assert reply.status == 200
            assert reply.json() == {"length": 5, "body": "hello"}
            assert_common(reply)
            # the connection carries on
            assert (await client.request(get("/hello"))).body == HELLO


async def test_expect_100_continue_with_body_already_sent_gets_no_100():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving() as port, await RawClient.connect(port) as client:
            reply = await client.request(post("/echo", b"hello", "Expect: 100-continue"))
            assert reply.status == 200
            assert reply.json() == {"length": 5, "body": "hello"}


async def test_expect_100_continue_with_too_large_body_is_413_without_100():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving(max_body_bytes=100) as port, await RawClient.connect(port) as client:
            await client.send(b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5000\r\n"
                              b"Expect: 100-continue\r\n\r\n")
            reply = await client.read_response()
            assert_problem(reply, 413, "too_large")
            assert reply.header("connection") == "close"
            await assert_closed_soon(client)


async def test_head_has_content_length_but_no_body_and_connection_stays_usable():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving() as port, await RawClient.connect(port) as client:
            await client.send(get("/hello", method="HEAD"))
            head = await client.read_response(head=True)
            assert head.status == 200
            assert head.header("content-length") == str(len(HELLO))
            assert_common(head)
            # no body follows: the next bytes are the next response's status line
            reply = await client.request(get("/hello"))
            assert reply.status == 200
            assert reply.body == HELLO
            assert client.buffer == b""


# -- refusals ----------------------------------------------------------------------------------

async def test_header_too_large_is_431_and_closed():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving() as port, await RawClient.connect(port) as client:
            await client.send(b"GET /hello HTTP/1.1\r\nHost: test\r\nX-Big: "
                              + b"a" * (MAX_HEAD_BYTES + 100) + b"\r\n\r\n")
            reply = await client.read_response()
            assert_problem(reply, 431, "head_too_large")
            assert reply.header("connection") == "close"
            await assert_closed_soon(client, within=2.0)


async def test_body_too_large_is_413_and_closed():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving(max_body_bytes=100) as port, await RawClient.connect(port) as client:
            reply = await client.request(post("/echo", b"x" * 101))
            assert_problem(reply, 413, "too_large")
            assert reply.header("connection") == "close"
            await assert_closed_soon(client, within=2.0)


async def test_http2_request_line_is_505():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving() as port, await RawClient.connect(port) as client:
            reply = await client.request(get("/hello", version="2.0"))
            assert_problem(reply, 505, "http_version")
            assert reply.header("connection") == "close"
            await assert_closed_soon(client)


async def test_conflicting_framing_is_400_and_smuggled_request_is_not_answered():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving() as port, await RawClient.connect(port) as client:
            smuggled = get("/fast")
            await client.send(b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: "
                              + str(5 + len(smuggled)).encode() + b"\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled)
            reply = await client.read_response()
            assert_problem(reply, 400, "bad_request")
            assert reply.header("connection") == "close"
            with trio.fail_after(2.0):
                rest = await client.read_to_eof()
            assert rest == b"", f"more than one response on the socket: {rest!r}"


async def test_duplicate_content_length_is_400_and_closed():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving() as port, await RawClient.connect(port) as client:
            await client.send(b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n"
                              b"Content-Length: 30\r\n\r\nabc" + get("/fast"))
            reply = await client.read_response()
            assert_problem(reply, 400, "bad_request")
            with trio.fail_after(2.0):
                assert await client.read_to_eof() == b""


async def test_requests_before_a_refused_one_are_answered_and_it_is_not():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving() as port, await RawClient.connect(port) as client:
            await client.send(get("/hello") + b"\x00garbage\r\n\r\n")
            reply = await client.read_response()
            assert reply.status == 200
            assert reply.body == HELLO
            with trio.fail_after(2.0):
                rest = await client.read_to_eof()
            # The refusal is said, then the connection ends: nothing after it is served.
            assert rest.startswith(b"HTTP/1.1 400 ") and rest.count(b"HTTP/1.1 ") == 1, rest


# -- bodies, headers, routing ------------------------------------------------------------------

async def test_chunked_request_body_reaches_the_app_intact():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving() as port, await RawClient.connect(port) as client:
            payload = bytes(range(32, 127)) * 3
            chunks = [payload[i:i + 40] for i in range(0, len(payload), 40)]
            body = b"".join(b"%x;ext=%d\r\n%s\r\n" % (len(c), i, c) for i, c in enumerate(chunks))
            await client.send(b"POST /echo HTTP/1.1\r\nHost: test\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n" + body
                              + b"0\r\nX-Trailer: t\r\n\r\n")
            reply = await client.read_response()
            assert reply.status == 200
            assert reply.json() == {"length": len(payload), "body": payload.decode("latin-1")}
            assert (await client.request(get("/hello"))).body == HELLO


async def test_body_sent_in_pieces_reaches_the_app_intact():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving() as port, await RawClient.connect(port) as client:
            data = post("/echo", b"0123456789" * 100)
            for i in range(0, len(data), 97):
                await client.send(data[i:i + 97])
                await trio.sleep(0.001)
            reply = await client.read_response()
            assert reply.json()["length"] == 1000


async def test_every_response_has_nosniff_and_date():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving() as port:
            async with await RawClient.connect(port) as client:
                replies = [await client.request(get("/hello")),
                           await client.request(get("/fast")),
                           await client.request(post("/echo", b"x")),
                           await client.request(get("/missing")),
                           await client.request(get("/boom")),
                           await client.request(get("/hello", method="HEAD"), head=True)]
            async with await RawClient.connect(port) as client:
                replies.append(await client.request(b"\x00nonsense\r\n\r\n"))
            for reply in replies:
                assert_common(reply)
                assert reply.header_count("x-content-type-options") == 1


async def test_route_cannot_set_framing_headers():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving() as port, await RawClient.connect(port) as client:
            reply = await client.request(get("/framing"))
            assert reply.status == 200
            assert reply.body == b"abc"
            assert reply.header("content-length") == "3"
            assert reply.header_count("content-length") == 1
            assert reply.header("transfer-encoding") is None
            assert reply.header("connection") is None
            assert reply.header("date") != "yesterday"
            assert reply.header("x-route") == "kept"
            assert_common(reply)
            assert (await client.request(get("/fast"))).status == 200


async def test_fast_lane_answers_its_path_and_the_rest_falls_through():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving() as port, await RawClient.connect(port) as client:
            fast = await client.request(get("/fast"))
            assert fast.status == 200
            assert fast.body == b'{"fast":true}'
            hello = await client.request(get("/hello"))
            assert hello.status == 200
            assert hello.body == HELLO
            # the fast lane passes POST /fast on; Quart has no such route
            assert_problem(await client.request(post("/fast", b"")), 404, "not_found")


async def test_app_without_fast_lane():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving(routes=None) as port, await RawClient.connect(port) as client:
            assert (await client.request(get("/hello"))).body == HELLO
            assert_problem(await client.request(get("/fast")), 404, "not_found")


async def test_quart_404_is_problem_json():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving() as port, await RawClient.connect(port) as client:
            reply = await client.request(get("/no/such/path?x=1"))
            assert_problem(reply, 404, "not_found")
            assert reply.header("connection") is None
            assert (await client.request(get("/hello"))).status == 200


async def test_route_failure_is_500_problem_and_connection_stays_usable():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving() as port, await RawClient.connect(port) as client:
            reply = await client.request(get("/boom"))
            assert_problem(reply, 500, "internal")
            assert (await client.request(get("/hello"))).body == HELLO


# -- shutdown ----------------------------------------------------------------------------------

async def test_shutdown_closes_idle_connections_and_finishes_in_flight_ones():
    with trio.fail_after(TEST_TIMEOUT):
        stop = trio.Event()
        slow_started = trio.Event()
        app = make_app(slow_started=slow_started)
        async with serving(app=app, stop=stop, graceful_timeout=5.0) as port:
            async with await RawClient.connect(port) as idle, \
                    await RawClient.connect(port) as busy:
                assert (await idle.request(get("/hello"))).status == 200
                await busy.send(get("/slow"))
                await slow_started.wait()
                stopped_at = trio.current_time()
                stop.set()
                with trio.fail_after(1.0):
                    assert await idle.read_to_eof() == b""
                assert trio.current_time() - stopped_at < 1.0
                reply = await busy.read_response()
                assert reply.status == 200
                assert reply.json() == {"slow": True}
                assert reply.header("connection") == "close"
                await assert_closed_soon(busy)
                # the slow request took its time: it was not cut short
                assert trio.current_time() - stopped_at >= SLOW_SECONDS * 0.5
            # no new connections once shut down
        with pytest.raises(OSError):
            await trio.open_tcp_stream("127.0.0.1", port)


async def test_upgrade_on_plain_http_is_answered_then_closed():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving() as port, await RawClient.connect(port) as client:
            await client.send(get("/hello", "Connection: Upgrade, HTTP2-Settings",
                                  "Upgrade: h2c", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA")
                              + get("/fast"))
            reply = await client.read_response()
            assert reply.status == 200  # served as HTTP/1.1, not switched
            assert reply.body == HELLO
            assert reply.header("connection") == "close"
            with trio.fail_after(2.0):
                assert await client.read_to_eof() == b""
