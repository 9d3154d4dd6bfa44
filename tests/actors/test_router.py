"""The router's delivery step: frames that arrive together go out together."""

from __future__ import annotations

import json

import msgpack
import trio

from engage.actors.router.actor import MAX_CATCHUP_BUFFER, RouterActor
from engage.actors.router.subject import Subject
from engage.store import Keys
from engage.wire import SharedFrame


class Sink:
    """A connection as the router sees it: push bytes, or overflow."""

    def __init__(self, wire: str = "json", room: int = 10) -> None:
        self.wire = wire
        self.room = room
        self.writes: list[bytes] = []
        self.overflowed = False

    def push(self, data: bytes) -> bool:
        if len(self.writes) >= self.room:
            return False
        self.writes.append(data)
        return True

    def overflow(self) -> None:
        self.overflowed = True


def frames(n: int) -> list[tuple[int, SharedFrame]]:
    return [(i, SharedFrame({"type": "comment", "offset": i})) for i in range(1, n + 1)]


def payloads(data: bytes, wire: str) -> list:
    """Split concatenated unmasked server frames (all shorter than 126 bytes)."""
    out, i = [], 0
    while i < len(data):
        n = data[i + 1]
        body = data[i + 2:i + 2 + n]
        out.append(json.loads(body) if wire == "json" else msgpack.unpackb(body))
        i += 2 + n
    return out


def router() -> RouterActor:
    return RouterActor("redis://127.0.0.1:6379/0", Keys("t:"), counts_interval=0.25)


def test_a_batch_is_one_write_per_socket_built_once_per_wire():
    r = router()
    state = Subject()
    json_sinks = [Sink("json") for _ in range(3)]
    packed = Sink("msgpack")
    for sink in [*json_sinks, packed]:
        state.sinks[sink] = None
    r._deliver(state, frames(3))
    assert all(len(s.writes) == 1 for s in [*json_sinks, packed])
    assert len({id(s.writes[0]) for s in json_sinks}) == 1  # the same bytes object
    assert [p["offset"] for p in payloads(json_sinks[0].writes[0], "json")] == [1, 2, 3]
    assert [p["offset"] for p in payloads(packed.writes[0], "msgpack")] == [1, 2, 3]
    assert r.delivered == 12


def test_catching_up_sinks_buffer_every_frame_and_overflow_when_full():
    r = router()
    state = Subject()
    catching_up, full, refusing = Sink(), Sink(), Sink(room=0)
    state.sinks[catching_up] = []
    state.sinks[full] = [(0, None)] * MAX_CATCHUP_BUFFER
    state.sinks[refusing] = None
    r._deliver(state, frames(2))
    assert [offset for offset, _ in state.sinks[catching_up]] == [1, 2]
    assert full.overflowed and refusing.overflowed and not catching_up.overflowed


async def test_a_big_room_gets_counts_frames_within_the_write_budget(nursery, autojump_clock):
    from engage.actors.router.actor import COUNTS_WRITES_PER_SECOND
    r = router()
    small, big = Subject(), Subject()
    small_sink = Sink(room=10_000)
    small.sinks[small_sink] = None
    big_sinks = [Sink(room=10_000) for _ in range(COUNTS_WRITES_PER_SECOND // 2)]
    for sink in big_sinks:
        big.sinks[sink] = None
    r._subjects.update({"content:small": small, "content:big": big})
    nursery.start_soon(r._counts_loop)
    await trio.sleep(0.125)  # marks fall between the loop's ticks
    for tick in range(40):  # watching changes every 250 ms for 10 s
        for name, state in (("content:small", small), ("content:big", big)):
            state.counts = {"views": tick}
            state.watching = tick
            r._mark(name, state)
        await trio.sleep(0.25)
    assert 38 <= len(small_sink.writes) <= 40  # one per counts_interval
    assert 19 <= len(big_sinks[0].writes) <= 21  # 5,000 sinks: one per 0.5 s
    assert all(len(s.writes) == len(big_sinks[0].writes) for s in big_sinks)
    last = json.loads(big_sinks[0].writes[-1][2:])
    assert last["watching"] >= 38  # the frame that goes is the latest state
