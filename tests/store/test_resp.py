"""The trio-native Redis connection and scripts of the counter hot path, on real Redis."""

from __future__ import annotations

import pytest
import redis as sync_redis
import trio

from engage.domain import Op, Snapshot
from engage.errors import StoreError
from engage.store import Keys
from engage.store.redis_cache import RedisCounterCache
from engage.store.resp import NativeScripts, RespConnection
from tests.conftest import BASE_REDIS_URL
from tests.support import free_port


async def test_a_pipeline_answers_in_order_with_error_replies_in_place(redis_prefix):
    with trio.fail_after(10):
        conn = RespConnection(BASE_REDIS_URL)
        try:
            key = redis_prefix + "k"
            replies = await conn.pipeline([("SET", key, "1"), ("INCRBY", key, "41"),
                                           ("HGET", key, "x"), ("GET", key)])
            assert replies[:2] == [b"OK", 42]
            assert "WRONGTYPE" in str(replies[2])
            assert replies[3] == b"42"
        finally:
            await conn.aclose()


async def test_the_db_number_in_the_url_is_selected(redis_prefix):
    with trio.fail_after(10):
        conn = RespConnection(BASE_REDIS_URL.rsplit("/", 1)[0] + "/3")
        key = redis_prefix + "db3"
        try:
            await conn.pipeline([("SET", key, "here")])
        finally:
            await conn.aclose()
        url = BASE_REDIS_URL.rsplit("/", 1)[0]
        assert sync_redis.Redis.from_url(url + "/3").get(key) == b"here"
        assert sync_redis.Redis.from_url(url + "/0").get(key) is None
        sync_redis.Redis.from_url(url + "/3").delete(key)


async def test_an_unreachable_redis_is_a_store_error_and_the_next_call_reconnects(redis_prefix):
    with trio.fail_after(10):
        dead = RespConnection(f"redis://127.0.0.1:{free_port()}/0")
        with pytest.raises(StoreError):
            await dead.pipeline([("PING",)])
        conn = RespConnection(BASE_REDIS_URL)
        try:
            assert await conn.pipeline([("CLIENT", "SETNAME", "engage-resp-test")]) == [b"OK"]
            _kill_named("engage-resp-test")  # the server drops our connection
            with pytest.raises(StoreError):
                await conn.pipeline([("PING",)])
            assert await conn.pipeline([("PING",)]) == [b"PONG"]  # a fresh connection
        finally:
            await conn.aclose()


def _kill_named(name: str) -> None:
    client = sync_redis.Redis.from_url(BASE_REDIS_URL)
    for info in client.client_list():
        if info.get("name") == name:
            client.client_kill_filter(_id=info["id"])


async def test_scripts_are_reloaded_after_a_flush_and_nothing_runs_twice(redis_prefix):
    with trio.fail_after(10):
        conn = RespConnection(BASE_REDIS_URL)
        scripts = NativeScripts(conn, ("apply",))
        cache_keys = Keys(redis_prefix)
        try:
            await scripts.run_many([])  # loads the script
            sync_redis.Redis.from_url(BASE_REDIS_URL).script_flush()
            # A call with the flushed script: refused with NOSCRIPT, loaded, run once.
            replies = await scripts.run_many([("apply", [*cache_keys.content_keys("x"),
                                                         cache_keys.pending,
                                                         cache_keys.pending_since,
                                                         cache_keys.like_seq,
                                                         cache_keys.events],
                                               ["x", 0, 50, 60, 100, b"\x90", 0,
                                                cache_keys.view_seen_prefix("x"), ""])])
            assert replies == [[0]]  # the item is not in Redis yet: "reload me"
        finally:
            await conn.aclose()


async def test_the_counter_cache_applies_through_the_native_connection(stores, settings):
    with trio.fail_after(20):
        native = RespConnection(settings.redis_url)
        cache = RedisCounterCache(stores.redis, stores.bridge, Keys(settings.redis_prefix),
                                  applause_cap=50, ttl=3600, native=native)
        try:
            await cache.hydrate("n1", Snapshot())
            (outcome,) = await cache.apply_many([("n1", (
                Op("view"), Op("view"), Op("like", "ann"), Op("applause", "ann", 7)))])
            assert [r.views for r in outcome.results] == [1, 2, 2, 2]
            assert outcome.results[2].liked is True and outcome.results[3].mine == 7
            sync_redis.Redis.from_url(settings.redis_url).script_flush()
            (again,) = await cache.apply_many([("n1", (Op("view"),))])
            assert again.results[0].views == 3  # reloaded, applied once
            (counts,) = await cache.read_many(["n1"])  # the bridge sees the same item
            assert (counts.views, counts.likes, counts.applause) == (3, 1, 7)
        finally:
            await native.aclose()
