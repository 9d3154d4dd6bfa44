"""The counter cache's apply script: view de-duplication."""

from __future__ import annotations

import trio

from engage.domain import Op, Snapshot
from engage.store import Keys
from engage.store.redis_cache import RedisCounterCache

ANON = "anon\x1f"


def cache_with_window(stores, settings, window: float) -> RedisCounterCache:
    return RedisCounterCache(stores.redis, stores.bridge, Keys(settings.redis_prefix),
                             applause_cap=50, ttl=3600, view_dedup_window=window)


async def views_of(cache: RedisCounterCache, content_id: str) -> tuple[int, int]:
    (counts,) = await cache.read_many([content_id])
    return counts.views, counts.unique_viewers


async def test_twenty_views_from_one_viewer_count_once(stores, settings):
    with trio.fail_after(20):
        cache = cache_with_window(stores, settings, 600)
        await cache.hydrate("d1", Snapshot())
        for _ in range(20):
            (outcome,) = await cache.apply_many([("d1", (Op("view", ANON + "v1"),))])
            assert outcome.results[0].views == 1
        await cache.apply_many([("d1", tuple(Op("view", "alice") for _ in range(20)))])
        assert await views_of(cache, "d1") == (2, 2)


async def test_views_without_a_viewer_id_count_every_time(stores, settings):
    with trio.fail_after(20):
        cache = cache_with_window(stores, settings, 600)
        await cache.hydrate("d2", Snapshot())
        await cache.apply_many([("d2", tuple(Op("view") for _ in range(7)))])
        await cache.apply_many([("d2", (Op("view"), Op("view", "bob"), Op("view")))])
        assert await views_of(cache, "d2") == (10, 1)


async def test_a_view_counts_again_after_the_window(stores, settings):
    with trio.fail_after(20):
        cache = cache_with_window(stores, settings, 0.2)
        await cache.hydrate("d3", Snapshot())
        await cache.apply_many([("d3", (Op("view", "carol"), Op("view", "carol")))])
        assert await views_of(cache, "d3") == (1, 1)
        await trio.sleep(0.3)
        await cache.apply_many([("d3", (Op("view", "carol"),))])
        assert await views_of(cache, "d3") == (2, 1)


async def test_window_zero_counts_every_view(stores, settings):
    with trio.fail_after(20):
        cache = cache_with_window(stores, settings, 0)
        await cache.hydrate("d4", Snapshot())
        await cache.apply_many([("d4", tuple(Op("view", "dave") for _ in range(5)))])
        assert await views_of(cache, "d4") == (5, 1)


async def test_de_duplication_is_per_item(stores, settings):
    with trio.fail_after(20):
        cache = cache_with_window(stores, settings, 600)
        for item in ("d5", "d6"):
            await cache.hydrate(item, Snapshot())
            await cache.apply_many([(item, (Op("view", "erin"), Op("view", "erin")))])
            assert await views_of(cache, item) == (1, 1)
