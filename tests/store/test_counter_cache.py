"""The counter cache's apply script: view de-duplication."""

from __future__ import annotations

from functools import partial

import trio

from engage.domain import Op, Snapshot
from engage.store import Keys
from engage.limits import RateLimits
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


def cache_with_limits(stores, settings, **rates) -> RedisCounterCache:
    limits = RateLimits.from_settings(settings.replace(rate_limits=True, **rates))
    return RedisCounterCache(stores.redis, stores.bridge, Keys(settings.redis_prefix),
                             applause_cap=50, ttl=3600, limits=limits)


async def test_limits_within_one_batch_and_across_batches(stores, settings):
    """Ops of one call share the limit's state: a user's fourth like in one
    batch is refused exactly as if it had come alone."""
    with trio.fail_after(20):
        cache = cache_with_limits(stores, settings, rate_like="1/10s burst 3",
                                  rate_ip="1000/1s burst 1000")
        await cache.hydrate("L1", Snapshot())
        ops = tuple(Op("like", "ann", 1, "10.0.0.1") if i % 2 == 0 else
                    Op("unlike", "ann", 1, "10.0.0.1") for i in range(5))
        (outcome,) = await cache.apply_many([("L1", ops)])
        kinds = [type(r).__name__ for r in outcome.results]
        assert kinds == ["OpResult"] * 3 + ["TooManyRequests"] * 2
        assert 9.0 < outcome.results[3].retry_after <= 10.0
        (counts,) = await cache.read_many(["L1"])
        assert counts.likes == 1  # like, unlike, like applied; the rest changed nothing
        (later,) = await cache.apply_many([("L1", (Op("like", "ann", 1, "10.0.0.1"),))])
        assert type(later.results[0]).__name__ == "TooManyRequests"  # the TAT was stored
        (other,) = await cache.apply_many([("L1", (Op("like", "bob", 1, "10.0.0.1"),))])
        assert other.results[0].liked


async def test_the_address_limit_spans_users(stores, settings):
    with trio.fail_after(20):
        cache = cache_with_limits(stores, settings, rate_like="100/1s burst 100",
                                  rate_ip="1/10s burst 2")
        await cache.hydrate("L2", Snapshot())
        ops = tuple(Op("like", f"u{i}", 1, "10.0.0.2") for i in range(3))
        (outcome,) = await cache.apply_many([("L2", ops)])
        assert [type(r).__name__ for r in outcome.results] == ["OpResult", "OpResult",
                                                               "TooManyRequests"]
        (elsewhere,) = await cache.apply_many([("L2", (Op("like", "u9", 1, "10.0.0.3"),))])
        assert elsewhere.results[0].liked


async def test_banned_users_cannot_like_or_applaud_but_views_count(stores, settings):
    with trio.fail_after(20):
        cache = cache_with_limits(stores, settings)
        await _set_ban(stores, settings, "mal")
        await cache.hydrate("L3", Snapshot())
        (outcome,) = await cache.apply_many([("L3", (Op("like", "mal", 1, "10.0.0.4"),
                                                     Op("applause", "mal", 5, "10.0.0.4"),
                                                     Op("view", "mal", 1, "10.0.0.4"),
                                                     Op("like", "nice", 1, "10.0.0.4")))])
        names = [type(r).__name__ for r in outcome.results]
        assert names == ["Forbidden", "Forbidden", "OpResult", "OpResult"]
        assert outcome.results[0].code == "banned"
        (counts,) = await cache.read_many(["L3"])
        assert (counts.likes, counts.applause, counts.views) == (1, 0, 1)


async def _set_ban(stores, settings, user: str) -> None:
    key = Keys(settings.redis_prefix).ban(user)
    await stores.bridge.call(partial(stores.redis.set, key, "spam", px=60000))
