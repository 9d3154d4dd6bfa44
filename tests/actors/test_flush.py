"""Exactly-once flushing, crash by crash, against real Redis and Postgres."""

from __future__ import annotations

import trio

from engage.actors import FlushActor, SweeperActor, apply_batch
from engage.domain import Op
from tests.support import fetch


def _views(n: int, who: str = "") -> tuple[Op, ...]:
    return tuple(Op("view", who) for _ in range(n))


async def _seed(stores, content_id: str) -> None:
    """Make sure the item exists in Redis (as a content actor would)."""
    from engage.domain import Snapshot
    await stores.cache.hydrate(content_id, Snapshot())


def _db_views(settings, content_id: str) -> int | None:
    rows = fetch(settings.database_url, "SELECT views FROM content_counters WHERE id=$1", content_id)
    return rows[0]["views"] if rows else None


async def test_flush_moves_pending_once_with_constant_statements(stores, settings):
    with trio.fail_after(20):
        ids = [f"item-{i}" for i in range(50)]
        for content_id in ids:
            await _seed(stores, content_id)
        outcomes = await stores.cache.apply_many([(c, _views(20)) for c in ids])
        assert all(o.results[-1].views == 20 for o in outcomes)

        flush = FlushActor(stores.cache, stores.database, instance_id="t", interval=60)
        report = await flush.flush_once()
        assert report.applied and report.events == 1000 and report.items == 50
        assert report.statements == 2  # batch record + one upsert for all items
        assert report.rows == 50
        assert await flush.flush_once() is None  # nothing left
        assert _db_views(settings, "item-7") == 20


async def test_batch_of_a_dead_process_is_swept_once(stores, settings):
    with trio.fail_after(20):
        await _seed(stores, "d")
        await stores.cache.apply_many([("d", _views(7))])
        # A process hands off a batch and dies before Postgres sees it.
        assert await stores.cache.hand_off("dead-1")
        assert _db_views(settings, "d") is None

        sweeper = SweeperActor(stores.cache, stores.database, interval=60, stale_after=0.0)
        assert await sweeper.sweep() == 1
        assert _db_views(settings, "d") == 7
        assert await sweeper.sweep() == 0
        assert await stores.cache.oldest_pending() is None


async def test_batch_applied_but_not_forgotten_is_not_applied_twice(stores, settings):
    with trio.fail_after(20):
        await _seed(stores, "e")
        await stores.cache.apply_many([("e", _views(5))])
        assert await stores.cache.hand_off("half-1")
        # Postgres commits, then the process dies before deleting the batch in Redis.
        batch, hlls = await stores.cache.load_batch("half-1")
        assert (await stores.database.apply_batch(batch, hlls)).applied

        report = await apply_batch(stores.cache, stores.database, "half-1")  # the sweeper's retry
        assert not report.applied
        assert _db_views(settings, "e") == 5
        assert await stores.cache.stale_batches(0.0) == []


async def test_two_flushers_racing_on_one_batch_apply_it_once(stores, settings):
    with trio.fail_after(20):
        await _seed(stores, "r")
        await stores.cache.apply_many([("r", _views(9))])
        assert await stores.cache.hand_off("race-1")
        reports = []

        async def flusher():
            reports.append(await apply_batch(stores.cache, stores.database, "race-1"))

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(flusher)
        assert sorted(r.applied for r in reports).count(True) == 1
        assert _db_views(settings, "r") == 9


async def test_older_like_batch_cannot_resurrect_an_unlike(stores, settings):
    with trio.fail_after(20):
        await _seed(stores, "l")
        await stores.cache.apply_many([("l", (Op("like", "ann"),))])
        assert await stores.cache.hand_off("old")  # like, handed off, its owner stalls
        await stores.cache.apply_many([("l", (Op("unlike", "ann"),))])
        assert await stores.cache.hand_off("new")
        await apply_batch(stores.cache, stores.database, "new")
        await apply_batch(stores.cache, stores.database, "old")  # applied late
        rows = fetch(settings.database_url,
                     "SELECT liked FROM content_likes WHERE content_id='l' AND user_id='ann'")
        assert rows[0]["liked"] is False
        counters = fetch(settings.database_url, "SELECT likes FROM content_counters WHERE id='l'")
        assert counters[0]["likes"] == 0
        snapshot = await stores.database.load("l")
        assert snapshot.likers == ()


async def test_final_flush_on_graceful_stop(stores, settings):
    with trio.fail_after(20):
        await _seed(stores, "f")
        flush = FlushActor(stores.cache, stores.database, instance_id="g", interval=3600)
        async with trio.open_nursery() as nursery:
            await nursery.start(flush.run)
            await stores.cache.apply_many([("f", _views(3))])
            nursery.cancel_scope.cancel()  # long before the next interval
        assert _db_views(settings, "f") == 3


async def test_flush_retries_the_same_batch_after_a_database_failure(stores, settings):
    with trio.fail_after(20):
        await _seed(stores, "p")
        await stores.cache.apply_many([("p", _views(4))])

        class Failing:
            def __init__(self, real):
                self.real, self.fail = real, True

            async def apply_batch(self, batch, hlls):
                if self.fail:
                    from engage.errors import StoreError
                    raise StoreError("postgres: down for the test")
                return await self.real.apply_batch(batch, hlls)

        db = Failing(stores.database)
        flush = FlushActor(stores.cache, db, instance_id="x", interval=60)
        from engage.errors import StoreError
        try:
            await flush.flush_once()
        except StoreError:
            pass
        else:
            raise AssertionError("expected the flush to fail")
        await stores.cache.apply_many([("p", _views(6))])  # more arrives meanwhile
        db.fail = False
        reports = await flush.flush_all()
        assert [r.events for r in reports] == [4, 6]  # the failed batch first, then the rest
        assert _db_views(settings, "p") == 10
