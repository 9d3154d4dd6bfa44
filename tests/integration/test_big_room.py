"""5,000 subscribers in one room, held with structured concurrency: every
comment reaches every one of them once and in order (issue 10).

The server is a ``run.py`` child (as in production, its own process and core
share), the clients raw WebSocket sockets in this process: a few hundred
bytes of state each, so that 5,000 of them fit in one test.
"""

from __future__ import annotations

import base64
import json
import os
import resource
import struct

import httpx
import pytest
import trio

from tests.conftest import BASE_REDIS_URL
from tests.support import ServerProcess, server_env

pytestmark = pytest.mark.slow

CLIENTS = 5000
COMMENTS = 5
CONNECTING_AT_ONCE = 200
JWT_SECRET = "big-room-secret-big-room-secret-0123"


class RawClient:
    """The least a WebSocket client does: handshake, masked frames out, frames in."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    @classmethod
    async def connect(cls, port: int) -> "RawClient":
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        client = cls(stream)
        key = base64.b64encode(os.urandom(16)).decode()
        await stream.send_all(
            (f"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
             f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
             f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
        while b"\r\n\r\n" not in client.buffer:
            client.buffer += await client._receive()
        head, _, rest = bytes(client.buffer).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head[:80]
        client.buffer = bytearray(rest)
        return client

    async def _receive(self) -> bytes:
        data = await self.stream.receive_some(65536)
        if not data:
            raise EOFError("the server closed the connection")
        return data

    async def send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        assert len(payload) < 126
        await self.stream.send_all(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    async def frame(self) -> tuple[int, bytes]:
        """The next whole frame from the server (unmasked, unfragmented)."""
        while True:
            buffer = self.buffer
            if len(buffer) >= 2:
                size, start = buffer[1] & 0x7F, 2
                if size == 126 and len(buffer) >= 4:
                    size, start = struct.unpack_from("!H", buffer, 2)[0], 4
                elif size == 127 and len(buffer) >= 10:
                    size, start = struct.unpack_from("!Q", buffer, 2)[0], 10
                if size < 126 or start > 2:
                    if len(buffer) >= start + size:
                        opcode = buffer[0] & 0x0F
                        payload = bytes(buffer[start:start + size])
                        del buffer[:start + size]
                        return opcode, payload
            self.buffer += await self._receive()

    async def message(self) -> dict:
        """The next JSON message; pings are answered on the way."""
        while True:
            opcode, payload = await self.frame()
            if opcode == 0x9:
                await self.send(0xA, payload)
            elif opcode == 0x1:
                return json.loads(payload)


@pytest.fixture
def descriptors():
    """5,000 sockets in this process: the soft limit up to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < CLIENTS + 500:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below {CLIENTS + 500}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_five_thousand_subscribers_get_every_comment_in_order(
        database_url, redis_prefix, descriptors):
    env = server_env(database_url, BASE_REDIS_URL, redis_prefix, JWT_SECRET,
                     max_connections_per_ip="0")
    server = await trio.to_thread.run_sync(ServerProcess(env).start)
    try:
        await _run_room(server)
    finally:
        await trio.to_thread.run_sync(server.stop)


async def _run_room(server: ServerProcess) -> None:
    joined = 0
    all_joined = trio.Event()
    got = [0] * CLIENTS  # comments each client received, in order
    slots = trio.Semaphore(CONNECTING_AT_ONCE)

    async def subscriber(i: int) -> None:
        nonlocal joined
        async with slots:
            client = await RawClient.connect(server.port)
        async with client.stream:
            await client.send(0x1, json.dumps({"op": "subscribe", "content": "big-room"}).encode())
            while (message := await client.message())["type"] != "subscribed":
                pass
            last = message["offset"]
            joined += 1
            if joined == CLIENTS:
                all_joined.set()
            while got[i] < COMMENTS:
                message = await client.message()
                if message["type"] == "comment":
                    assert message["offset"] == last + 1, (i, last, message["offset"])
                    last = message["offset"]
                    assert message["comment"]["body"] == f"to all {got[i]}"
                    got[i] += 1

    with trio.fail_after(240):
        async with trio.open_nursery() as nursery:
            for i in range(CLIENTS):
                nursery.start_soon(subscriber, i)
            await all_joined.wait()
            token = _token("host")
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                for n in range(COMMENTS):
                    r = await http.post("/v1/content/big-room/comments",
                                        json={"body": f"to all {n}"},
                                        headers={"Authorization": f"Bearer {token}"})
                    assert r.status_code == 201, r.text
    assert sum(got) == CLIENTS * COMMENTS


def _token(user: str) -> str:
    from engage.auth import issue_token
    return issue_token(JWT_SECRET, user, expires_in=600)
