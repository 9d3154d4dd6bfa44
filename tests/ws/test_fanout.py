"""The fan-out hot path: write_nowait, the bounded outbox, slow consumers, order."""

from __future__ import annotations

import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from engage.errors import WebSocketClosed
from engage.ws import SLOW_CONSUMER_CLOSE, text_frame
from tests.ws.support import TEST_TIMEOUT, serving, ws_url

OUTBOX = 64 * 1024
PAYLOAD = "p" * 1000


class Hub:
    """Test server side: accepted connections, read until they close."""

    def __init__(self) -> None:
        self.conns = []
        self.arrived = trio.Condition()

    async def handler(self, conn) -> None:
        await conn.accept()
        self.conns.append(conn)
        async with self.arrived:
            self.arrived.notify_all()
        try:
            while True:
                await conn.receive()
        except WebSocketClosed:
            pass

    async def wait_for(self, n: int) -> None:
        async with self.arrived:
            while len(self.conns) < n:
                await self.arrived.wait()


async def _read_all(ws, into: list, until: str) -> None:
    while True:
        message = await ws.get_message()
        if message == until:
            return
        into.append(int(message.split(":", 1)[0]))


async def test_slow_consumer_is_closed_and_others_keep_receiving():
    hub = Hub()
    outbox_high = 0
    with trio.fail_after(TEST_TIMEOUT):
        async with serving(hub.handler, max_outbox_bytes=OUTBOX) as port:
            got_b, got_c = [], []
            async with open_websocket_url(ws_url(port)) as slow, \
                    open_websocket_url(ws_url(port)) as b, \
                    open_websocket_url(ws_url(port)) as c, \
                    trio.open_nursery() as nursery:
                await hub.wait_for(3)
                slow_conn, fast = hub.conns[0], hub.conns[1:]
                nursery.start_soon(_read_all, b, got_b, "end")
                nursery.start_soon(_read_all, c, got_c, "end")
                sent = 0
                while not slow_conn.slow_consumer:
                    frame = text_frame(f"{sent}:{PAYLOAD}")  # framed once, shared
                    assert all(conn.write_nowait(frame) for conn in fast)
                    if not slow_conn.write_nowait(frame):
                        nursery.start_soon(slow_conn.close, SLOW_CONSUMER_CLOSE, "slow consumer")
                    outbox_high = max(outbox_high, slow_conn.statistics()["outbox_bytes"])
                    sent += 1
                    while any(conn.statistics()["writer_active"] for conn in fast):
                        await trio.sleep(0.001)  # pace to the healthy clients
                    if sent % 16 == 0:
                        await trio.sleep(0)
                assert sent < 10_000, "the slow client was never detected"
                for conn in fast:
                    assert conn.write_nowait(text_frame("end"))
                # The slow client reads again: it gets an in-order prefix, then 4008.
                got_slow: list[int] = []
                try:
                    await _read_all(slow, got_slow, "never")
                except ConnectionClosed as exc:
                    assert exc.reason.code == SLOW_CONSUMER_CLOSE
                else:  # pragma: no cover
                    raise AssertionError("slow client was not closed")
                assert got_slow == list(range(len(got_slow)))
                assert 0 < len(got_slow) < sent
    assert outbox_high <= OUTBOX
    assert got_b == got_c == list(range(sent))
    assert slow_conn.state == "closed"


async def test_order_is_kept_across_direct_and_outbox_writes():
    hub = Hub()
    count = 3000  # write_nowait frames, then one send()
    with trio.fail_after(TEST_TIMEOUT):
        async with serving(hub.handler) as port:
            async with open_websocket_url(ws_url(port)) as ws:
                await hub.wait_for(1)
                conn = hub.conns[0]
                got: list[int] = []
                async with trio.open_nursery() as nursery:
                    async def reader():
                        # read in bursts with pauses, so the socket fills and drains
                        while len(got) < count + 1:
                            if len(got) % 500 == 0:
                                await trio.sleep(0.02)
                            got.append(int((await ws.get_message()).split(":", 1)[0]))

                    nursery.start_soon(reader)
                    for i in range(count):
                        assert conn.write_nowait(text_frame(f"{i}:{PAYLOAD}"))
                        if i % 50 == 0:
                            await trio.sleep(0)
                        while conn.statistics()["outbox_bytes"] > conn.max_outbox_bytes // 2:
                            await trio.sleep(0.001)  # stay clear of the slow-consumer bound
                    # the awaiting path queues behind the outbox too
                    await conn.send(text_frame(f"{count}:{PAYLOAD}"))
                stats = conn.statistics()
    assert got == list(range(count + 1))
    assert stats["frames_direct"] > 0 and stats["frames_queued"] > 0, stats
    assert stats["outbox_bytes"] == 0
