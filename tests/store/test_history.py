"""History streams: gap-free offsets, epochs, and honest catch-up."""

from __future__ import annotations

import msgpack
import pytest
import redis
import trio

from engage.store import Keys
from engage.store.history import RedisHistory
from engage.store.pubsub import connect_pubsub
from engage.store.resp import RespConnection
from tests.conftest import BASE_REDIS_URL


@pytest.fixture(params=["bridge", "native"])
async def native(request):
    """Each history test runs over redis-py on the bridge and over a trio-native connection."""
    if request.param == "bridge":
        yield None
        return
    connection = RespConnection(BASE_REDIS_URL)
    try:
        yield connection
    finally:
        await connection.aclose()


def _history(stores, settings, size=1000, native=None):
    return RedisHistory(stores.redis, stores.bridge, Keys(settings.redis_prefix), size=size,
                        ttl=3600, native=native)


async def test_offsets_and_exact_recovery(stores, settings, native):
    with trio.fail_after(20):
        history = _history(stores, settings, native=native)
        start, epoch = await history.position("content:a")
        assert start == 0
        for i in range(8):
            offset, e = await history.publish("content:a", "comment", {"n": i})
            assert (offset, e) == (i + 1, epoch)
        got = await history.recover("content:a", 3, epoch, 100)
        assert got.recovered and got.offset == 8
        assert [(e.offset, e.data["n"]) for e in got.events] == [(4, 3), (5, 4), (6, 5), (7, 6), (8, 7)]
        same = await history.recover("content:a", 8, epoch, 100)
        assert same.recovered and same.events == ()


async def test_unrecoverable_gaps_give_nothing_partial(stores, settings, native):
    with trio.fail_after(20):
        history = _history(stores, settings, size=10, native=native)
        _, epoch = await history.position("content:b")
        for i in range(300):
            await history.publish("content:b", "comment", {"n": i})
        trimmed = await history.recover("content:b", 5, epoch, 1000)
        assert not trimmed.recovered and trimmed.events == () and trimmed.offset == 300
        wrong_epoch = await history.recover("content:b", 299, "not-it", 1000)
        assert not wrong_epoch.recovered
        future = await history.recover("content:b", 301, epoch, 1000)
        assert not future.recovered
        too_far = await history.recover("content:b", 200, epoch, 50)
        assert not too_far.recovered


async def test_lost_history_changes_epoch(stores, settings, native):
    with trio.fail_after(20):
        history = _history(stores, settings, native=native)
        await history.publish("content:c", "comment", {"n": 1})
        _, epoch = await history.position("content:c")
        keys = Keys(settings.redis_prefix)
        client = redis.Redis.from_url(BASE_REDIS_URL)
        client.delete(keys.history("content:c"), keys.history_meta("content:c"))
        client.close()
        offset, new_epoch = await history.publish("content:c", "comment", {"n": 2})
        assert offset == 1 and new_epoch != epoch
        assert not (await history.recover("content:c", 1, epoch, 100)).recovered


async def test_publish_reaches_a_subscriber_with_its_offset(stores, settings):
    with trio.fail_after(20):
        history = _history(stores, settings)
        keys = Keys(settings.redis_prefix)
        conn = await connect_pubsub(BASE_REDIS_URL)
        try:
            # nobody iterates messages() yet, so do not wait for the confirmation
            await conn.subscribe(keys.channel("content:d").encode(), wait=False)
            offset, epoch = await history.publish("content:d", "comment", {"body": "hi"})
            async for channel, data in conn.messages():
                event = msgpack.unpackb(data, raw=True)
                assert channel == keys.channel("content:d").encode()
                assert event[b"o"] == offset and event[b"e"].decode() == epoch
                assert msgpack.unpackb(event[b"d"]) == {"body": "hi"}
                break
        finally:
            await conn.aclose()
