"""Admission: the per-process and per-address connection caps, alone and in serve_front."""

from __future__ import annotations

import json

import trio

from engage.http1.admission import Admission, connection_capacity, descriptor_limit

from tests.http1.support import TEST_TIMEOUT, RawClient, Reply, get, serving

HELLO = b'{"hello":"world"}\n'


def parse_refusal(data: bytes) -> tuple[int, dict[str, str], dict]:
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    assert int(headers["content-length"]) == len(body)
    return int(status_line.split(" ")[1]), headers, json.loads(body)


# -- unit --------------------------------------------------------------------------------------

def test_process_cap():
    admission = Admission(max_connections=2)
    assert admission.admit("10.0.0.1")
    assert admission.admit("10.0.0.2")
    assert not admission.admit("10.0.0.3")
    assert admission.open == 2
    assert admission.refused_full == 1
    assert admission.refused_address == 0
    admission.release("10.0.0.1")
    assert admission.open == 1
    assert admission.admit("10.0.0.3")
    assert admission.open == 2


def test_per_address_cap():
    admission = Admission(max_connections=100, per_address=2)
    assert admission.admit("10.0.0.1")
    assert admission.admit("10.0.0.1")
    assert not admission.admit("10.0.0.1")
    assert admission.refused_address == 1
    assert admission.open == 2
    # other addresses are not affected
    assert admission.admit("10.0.0.2")
    assert admission.admit("10.0.0.2")
    assert admission.open == 4
    assert admission.statistics()["addresses"] == 2


def test_per_address_cap_release():
    admission = Admission(max_connections=100, per_address=2)
    admission.admit("10.0.0.1")
    admission.admit("10.0.0.1")
    assert not admission.admit("10.0.0.1")
    admission.release("10.0.0.1")
    assert admission.admit("10.0.0.1")
    admission.release("10.0.0.1")
    admission.release("10.0.0.1")
    assert admission.open == 0
    assert admission.statistics()["addresses"] == 0  # no entry left behind


def test_refused_connection_is_not_counted():
    admission = Admission(max_connections=100, per_address=1)
    assert admission.admit("10.0.0.1")
    for _ in range(5):
        assert not admission.admit("10.0.0.1")
    assert admission.open == 1
    admission.release("10.0.0.1")
    assert admission.open == 0
    assert admission.admit("10.0.0.1")


def test_per_address_cap_off_by_default():
    admission = Admission(max_connections=100)
    for _ in range(50):
        assert admission.admit("10.0.0.1")
    assert admission.open == 50
    for _ in range(50):
        admission.release("10.0.0.1")
    assert admission.open == 0


def test_exempt_addresses_have_no_per_address_cap():
    admission = Admission(max_connections=5, per_address=1, exempt=frozenset({"10.0.0.9"}))
    for _ in range(4):
        assert admission.admit("10.0.0.9")
    assert admission.admit("10.0.0.1")
    assert not admission.admit("10.0.0.2")  # the process cap still holds for everyone
    assert not admission.admit("10.0.0.9")
    assert admission.refused_full == 2
    for _ in range(4):
        admission.release("10.0.0.9")
    assert admission.open == 1
    assert not admission.admit("10.0.0.1")  # its own cap
    assert admission.admit("10.0.0.9")


def test_process_cap_checked_before_address_cap():
    admission = Admission(max_connections=1, per_address=1)
    assert admission.admit("10.0.0.1")
    assert not admission.admit("10.0.0.1")
    assert admission.refused_full == 1
    assert admission.refused_address == 0


def test_refusal_answers():
    admission = Admission(max_connections=2, per_address=1)
    admission.admit("10.0.0.1")
    status, headers, body = parse_refusal(admission.refusal("10.0.0.1"))
    assert status == 429
    assert body["code"] == "too_many_connections"
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    assert headers["retry-after"] == "1"
    assert headers["x-content-type-options"] == "nosniff"
    admission.admit("10.0.0.2")
    status, headers, body = parse_refusal(admission.refusal("10.0.0.3"))
    assert status == 503
    assert body["code"] == "server_full"
    assert headers["connection"] == "close"
    assert headers["retry-after"] == "1"


def test_connection_capacity_stays_below_the_descriptor_limit():
    limit = descriptor_limit()
    assert connection_capacity(10, pools=20) == min(10, max(1, limit - 20 - 64))
    assert connection_capacity(10 ** 9, pools=20) < limit
    assert connection_capacity(10 ** 9, pools=10 ** 9) == 1


# -- through serve_front -----------------------------------------------------------------------

async def served(client: RawClient) -> Reply:
    reply = await client.request(get("/hello"))
    assert reply.status == 200
    assert reply.body == HELLO
    return reply


async def refused(client: RawClient) -> tuple[int, dict[str, str], dict]:
    """The refusal the server sends unasked on a new connection, then EOF."""
    with trio.fail_after(2.0):
        data = await client.read_to_eof()
    assert data, "the connection was closed without an answer"
    return parse_refusal(data)


async def admitted_after_release(port: int, attempts: int = 40) -> RawClient:
    """A new connection from 127.0.0.1 once the server has counted a close.

    A refused connection is answered at once, unasked; an admitted one hears
    nothing until it sends a request.
    """
    for _ in range(attempts):
        client = await RawClient.connect(port)
        with trio.move_on_after(0.1):
            data = await client.read_to_eof()
            await client.aclose()
            assert parse_refusal(data)[0] == 429
            continue
        return client
    raise AssertionError("the closed connection was never released")


async def test_per_address_cap_refuses_the_fourth_connection():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving(max_connections_per_ip=3) as port:
            held = [await RawClient.connect(port) for _ in range(3)]
            try:
                for client in held:
                    await served(client)
                async with await RawClient.connect(port) as fourth:
                    status, headers, body = await refused(fourth)
                assert status == 429
                assert body["code"] == "too_many_connections"
                assert body["status"] == 429
                assert headers["content-type"] == "application/problem+json"
                assert headers["connection"] == "close"
                # held connections are unaffected
                for client in held:
                    await served(client)
                # another address is served
                async with await RawClient.connect(port, source="127.0.0.2") as other:
                    await served(other)
                    await served(other)
                # closing one lets a new one in
                await held.pop().aclose()
                async with await admitted_after_release(port) as again:
                    await served(again)
                    # and the cap is back at three
                    async with await RawClient.connect(port) as extra:
                        status, _, body = await refused(extra)
                    assert status == 429
            finally:
                for client in held:
                    await client.aclose()


async def test_exempt_address_is_not_capped():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving(max_connections_per_ip=1, exempt=frozenset({"127.0.0.1"})) as port:
            clients = [await RawClient.connect(port) for _ in range(3)]
            try:
                for client in clients:
                    await served(client)
                async with await RawClient.connect(port, source="127.0.0.2") as one:
                    await served(one)
                    async with await RawClient.connect(port, source="127.0.0.2") as two:
                        status, _, body = await refused(two)
                assert status == 429
            finally:
                for client in clients:
                    await client.aclose()


async def test_process_cap_refuses_with_503_server_full():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving(max_connections=2) as port:
            first = await RawClient.connect(port)
            second = await RawClient.connect(port, source="127.0.0.2")
            try:
                await served(first)
                await served(second)
                for source in (None, "127.0.0.3"):
                    async with await RawClient.connect(port, source=source) as third:
                        status, headers, body = await refused(third)
                    assert status == 503
                    assert body["code"] == "server_full"
                    assert headers["retry-after"] == "1"
                    assert headers["connection"] == "close"
                    assert headers["x-content-type-options"] == "nosniff"
                await served(first)
            finally:
                await first.aclose()
                await second.aclose()


# -- accept failures are logged per state change ---------------------------------------------

async def test_a_run_of_failed_accepts_logs_one_line_when_it_starts_and_one_when_it_ends(caplog):
    import errno
    import logging

    from engage.ws.frontdoor import FrontConfig, _FrontDoor

    door = _FrontDoor(None, None, FrontConfig(), None)  # only its accept bookkeeping is used
    with caplog.at_level(logging.INFO, logger="engage.ws.frontdoor"):
        for _ in range(250):  # out of descriptors, again and again
            door._accept_failed(OSError(errno.EMFILE, "Too many open files"))
        door._accept_recovered()
        door._accept_recovered()  # nothing more to say while accepts succeed
        door._accept_failed(OSError(errno.ENFILE, "File table overflow"))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert lines[0].startswith("accept failing (") and "Too many open files" in lines[0]
    assert lines[1].startswith("accepting again after 250 failed accepts")
    assert "File table overflow" in lines[2]
