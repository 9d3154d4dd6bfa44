"""Content actors: on-demand start, passivation without loss, reload after a
Redis wipe, and two processes on one item staying exact."""

from __future__ import annotations

import trio

from engage.actors import FlushNow, GetCounts, Interact, PostComment
from engage.domain import Op
from engage.errors import ClientError
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
        # A counts read may come from the actor's memory for counts_interval
        # (docs/decisions.md §13): the other process's last ops show after that.
        await trio.sleep(settings.counts_interval)
        counts = await one.content.ask("shared", GetCounts())
        # 5 distinct users, each capped at 50 applause, one like each.
        assert (counts.views, counts.likes, counts.applause) == (500, 5, 250)
        await one.flush.ref.ask(FlushNow())
        await two.flush.ref.ask(FlushNow())
        snapshot = await stores.database.load("shared")
        assert (snapshot.views, snapshot.likes, snapshot.applause) == (500, 5, 250)
        nursery.cancel_scope.cancel()


async def test_a_burst_of_comments_is_stored_and_published_in_order(settings, stores, nursery):
    """Comments that queue up together are handled as one run (one standing
    query, one crossing to store, one pipeline to publish), yet each is
    screened, stored, answered and published on its own, in order."""
    with trio.fail_after(30):
        system = await _running(settings, stores, nursery)
        await system.content.ask("burst", GetCounts())  # the actor exists
        await stores.moderation.ban("spammer", 600, "spam", "mod")
        messages = [PostComment(f"u{i}", f"comment {i}", None) for i in range(40)]
        messages[7] = PostComment("u7", "a reply to nothing", 999_999)
        messages[9] = PostComment("spammer", "buy now", None)
        # Requested back to back, before the actor runs: they sit in one batch.
        replies = [await system.content.request("burst", m) for m in messages]
        results = []
        for reply in replies:
            try:
                results.append(await reply.get(10))
            except ClientError as exc:
                results.append(exc.code)
        assert results[7] == "parent_not_found" and results[9] == "banned"
        posted = [r for i, r in enumerate(results) if i not in (7, 9)]
        assert [c.body for c in posted] == [f"comment {i}" for i in range(40) if i not in (7, 9)]
        assert [c.id for c in posted] == sorted(c.id for c in posted)
        recovery = await stores.history.recover("content:burst", 0, (
            await stores.history.position("content:burst"))[1], 100)
        assert [e.data["body"] for e in recovery.events] == [c.body for c in posted]
        counts = await system.content.ask("burst", GetCounts())
        assert counts.comments == 38
        nursery.cancel_scope.cancel()
