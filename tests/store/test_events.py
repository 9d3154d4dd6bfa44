"""The event log: facts appended with the change, read once per consumer group."""

from __future__ import annotations

import trio

from engage.domain import Op, Snapshot


async def test_applause_and_milestones_are_logged_with_the_change(stores, settings):
    with trio.fail_after(20):
        log = stores.events  # the log of this test's prefix, closed with the stores
        await log.ensure_group("g")
        await stores.cache.hydrate("m", Snapshot(likes=8))
        ops = tuple(Op("like", f"u{i}") for i in range(3)) + (Op("applause", "ann", 12),
                                                             Op("applause", "ann", 60))
        await stores.cache.apply_many([("m", ops)])
        events = await log.read("g", "c1", count=100, block=0.1)
        kinds = [(e.type, e.data) for e in events]
        assert ("applause", {"content": "m", "user": "ann", "added": 12, "mine": 12,
                             "total": 12}) in kinds
        assert ("applause", {"content": "m", "user": "ann", "added": 38, "mine": 50,
                             "total": 50}) in kinds
        assert ("milestone", {"content": "m", "metric": "likes", "value": 10}) in kinds
        assert ("milestone", {"content": "m", "metric": "applause", "value": 10}) in kinds
        assert len(events) == 4  # capped applause beyond 50 adds nothing, logs nothing


async def test_unacked_events_are_claimed_by_another_consumer(stores, settings):
    with trio.fail_after(20):
        log = stores.events  # the log of this test's prefix, closed with the stores
        await log.ensure_group("g")
        first = await log.append("comment.created", {"n": 1})
        (got,) = await log.read("g", "dies", count=10, block=0.1)
        assert got.id == first and got.data == {"n": 1}
        assert await log.read("g", "other", count=10, block=0.05) == []  # delivered once
        await trio.sleep(0.2)
        (claimed,) = await log.claim_stale("g", "other", idle=0.1, count=10)
        assert claimed.id == first and claimed.deliveries == 2
        await log.ack("g", [claimed.id])
        assert await log.claim_stale("g", "other", idle=0.0, count=10) == []
