"""Content actors: on-demand start, passivation without loss, reload after a
Redis wipe, and two processes on one item staying exact."""

from __future__ import annotations

import trio

from engage.actors import FlushNow, GetCounts, Interact
from engage.domain import Op
from engage.system import build_system
from tests.conftest import BASE_REDIS_URL
from tests.support import delete_prefix


async def _running(settings, stores, nursery, **changes):
    system = build_system(settings.replace(**changes), stores)
    await nursery.start(system.supervisor.run)
    return system


async def test_started_on_demand_and_passivated_when_idle(settings, stores, nursery):
    with trio.fail_after(20):
        system = await _running(settings, stores, nursery, content_idle_timeout=0.2)
        assert len(system.content) == 0
        await system.content.ask("a", Interact((Op("view"),)))
        assert len(system.content) == 1
        await trio.sleep(0.5)
        assert len(system.content) == 0  # passivated, registry key dropped
        counts = await system.content.ask("a", GetCounts())
        assert counts.views == 1
        nursery.cancel_scope.cancel()


async def test_messages_racing_passivation_are_not_lost(settings, stores, nursery):
    with trio.fail_after(30):
        system = await _running(settings, stores, nursery, content_idle_timeout=0.01)
        sent = 0

        async def sender(k):
            nonlocal sent
            for i in range(200):
                await system.content.ask("hot", Interact((Op("view"),)))
                sent += 1
                if i % 7 == k:
                    await trio.sleep(0.012)  # idle just long enough to passivate

        async with trio.open_nursery() as inner:
            for k in range(5):
                inner.start_soon(sender, k)
        counts = await system.content.ask("hot", GetCounts())
        assert counts.views == sent == 1000
        assert system.content.statistics()["passivations"] >= 5  # the race really happened
        nursery.cancel_scope.cancel()


async def test_redis_wipe_reloads_from_postgres(settings, stores, nursery):
    with trio.fail_after(20):
        system = await _running(settings, stores, nursery)
        ops = (Op("view", "v1"), Op("view", "v2"), Op("like", "ann"), Op("applause", "bob", 40))
        await system.content.ask("w", Interact(ops))
        await system.flush.ref.ask(FlushNow())
        delete_prefix(BASE_REDIS_URL, settings.redis_prefix)  # while the actor is alive
        results = await system.content.ask(
            "w", Interact((Op("applause", "bob", 40), Op("like", "ann"), Op("view", "v1"))))
        assert results[0].mine == 50 and results[0].applause == 50  # cap survives the wipe
        assert results[1].likes == 1  # ann already liked
        counts = await system.content.ask("w", GetCounts())
        assert (counts.views, counts.unique_viewers, counts.likes, counts.applause) == (3, 2, 1, 50)
        nursery.cancel_scope.cancel()


async def test_two_processes_on_one_item_stay_exact(settings, stores, nursery):
    with trio.fail_after(30):
        one = await _running(settings, stores, nursery)
        two = await _running(settings, stores, nursery)

        async def hammer(system, user):
            for _ in range(30):
                await system.content.ask("shared", Interact((Op("applause", user, 3),)))
            for _ in range(50):
                await system.content.ask("shared", Interact((Op("view"), Op("like", user))))

        async with trio.open_nursery() as inner:
            for i in range(10):
                inner.start_soon(hammer, one if i % 2 else two, f"u{i % 5}")
        counts = await one.content.ask("shared", GetCounts())
        # 5 distinct users, each capped at 50 applause, one like each.
        assert (counts.views, counts.likes, counts.applause) == (500, 5, 250)
        await one.flush.ref.ask(FlushNow())
        await two.flush.ref.ask(FlushNow())
        snapshot = await stores.database.load("shared")
        assert (snapshot.views, snapshot.likes, snapshot.applause) == (500, 5, 250)
        nursery.cancel_scope.cancel()
