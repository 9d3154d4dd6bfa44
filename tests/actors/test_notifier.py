"""The notifier actor on its own: replies (and their cancellation), milestones,
follows, the rate cap, coalesced applause, and idempotency under replay."""

from __future__ import annotations

from contextlib import asynccontextmanager
from datetime import datetime, timezone

import trio

from engage.actors.notifier import NOTIFIER_GROUP, GetNotifierStatistics, NotifierActor
from engage.domain.content import ContentMeta

POLL = 0.02


def _notifier(stores, **changes) -> NotifierActor:
    options = {"instance_id": "t1", "coalesce_window": 0.3, "rate_per_minute": 30, **changes}
    return NotifierActor(stores.events, stores.history, stores.comments, stores.content_meta,
                         stores.notifications, **options)


@asynccontextmanager
async def _running(actor: NotifierActor):
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        yield actor
        nursery.cancel_scope.cancel()


async def _items(stores, user: str) -> list:
    items, _ = await stores.notifications.page(user, None, False, 100)
    return items


async def _wait_for(stores, user: str, count: int) -> list:
    while len(items := await _items(stores, user)) < count:
        await trio.sleep(POLL)
    return items


async def _settled(actor: NotifierActor, events: int) -> None:
    """Wait until the actor has acknowledged ``events`` events."""
    while True:
        stats = await actor.ref.ask(GetNotifierStatistics())
        if stats["acked"] >= events:
            return
        await trio.sleep(POLL)


async def _reply(stores, parent_author="ann", author="bob", content="c1"):
    parent = await stores.comments.create(content, parent_author, "parent", None)
    reply = await stores.comments.create(content, author, "a reply", parent.id)
    data = {"content": content, "comment": reply.public(), "parent_author": parent_author}
    return reply, data


async def _meta(stores, content_id: str, author: str) -> None:
    await stores.content_meta.store(ContentMeta(content_id, f"Title {content_id}",
                                                f"https://example.com/{content_id}", author,
                                                datetime.now(timezone.utc)))


async def test_reply_is_stored_pushed_and_not_duplicated_on_replay(stores, settings):
    with trio.fail_after(20):
        reply, data = await _reply(stores)
        _, own = await _reply(stores, parent_author="ann", author="ann")
        await stores.events.append("comment.created", own)  # replying to oneself: nothing
        await stores.events.append("comment.created", data)
        async with _running(_notifier(stores)) as actor:
            (n,) = await _wait_for(stores, "ann", 1)
            assert n.kind == "reply" and n.data["comment"]["id"] == str(reply.id)
            offset, _ = await stores.history.position("user:ann")
            assert offset == 1  # pushed once onto ann's real-time history
            await _settled(actor, 2)
            # Replay every event of the log with the same ids.
            await stores.bridge.call(stores.redis.xgroup_setid, stores.events.key,
                                     NOTIFIER_GROUP, "0")
            await _settled(actor, 4)
            assert len(await _items(stores, "ann")) == 1
            assert (await stores.history.position("user:ann"))[0] == 1
            assert await _items(stores, "bob") == []


async def test_deleted_comment_gets_no_reply(stores, settings):
    with trio.fail_after(20):
        gone, gone_data = await _reply(stores, author="bob")
        await stores.comments.delete(gone.id)
        await stores.events.append("comment.created", gone_data)
        await stores.events.append("comment.deleted",
                                   {"content": "c1", "comment_id": str(gone.id)})
        # Deleted in Postgres with no event seen yet: the last look catches it.
        quiet, quiet_data = await _reply(stores, author="cy")
        await stores.comments.delete(quiet.id)
        await stores.events.append("comment.created", quiet_data)
        kept, kept_data = await _reply(stores, author="dee")
        await stores.events.append("comment.created", kept_data)
        async with _running(_notifier(stores)) as actor:
            await _settled(actor, 4)
            items = await _items(stores, "ann")
            assert [n.data["comment"]["id"] for n in items] == [str(kept.id)]
            stats = await actor.ref.ask(GetNotifierStatistics())
            assert stats["comment_gone"] == 2


async def test_milestone_goes_to_the_author(stores, settings):
    with trio.fail_after(20):
        await _meta(stores, "m1", "ann")
        await stores.events.append("milestone", {"content": "m1", "metric": "likes", "value": 10})
        await stores.events.append("milestone", {"content": "nobody", "metric": "likes",
                                                 "value": 10})  # no metadata: no author
        async with _running(_notifier(stores)) as actor:
            (n,) = await _wait_for(stores, "ann", 1)
            assert n.kind == "milestone"
            assert n.data == {"content": "m1", "title": "Title m1", "metric": "likes",
                              "value": 10}
            await _settled(actor, 2)


async def test_new_content_goes_to_followers(stores, settings):
    with trio.fail_after(20):
        assert await stores.notifications.follow("bob", "ann")
        assert not await stores.notifications.follow("bob", "ann")  # idempotent
        await stores.notifications.follow("cy", "ann")
        await stores.notifications.follow("dee", "ann")
        assert await stores.notifications.unfollow("dee", "ann")
        await stores.events.append("content.published", {
            "id": "p1", "title": "Hello", "url": "https://example.com/p1", "author": "ann",
            "published_at": "2024-05-01T10:00:00.000Z", "tags": []})
        async with _running(_notifier(stores)):
            for user in ("bob", "cy"):
                (n,) = await _wait_for(stores, user, 1)
                assert n.kind == "new_content" and n.data["content"] == "p1"
                assert n.data["author"] == "ann" and n.data["title"] == "Hello"
            assert await _items(stores, "dee") == []


async def test_rate_cap_drops_and_counts(stores, settings):
    with trio.fail_after(20):
        await _meta(stores, "r1", "ann")
        for value in (10, 100, 1000, 10000, 100000):
            await stores.events.append("milestone", {"content": "r1", "metric": "applause",
                                                     "value": value})
        async with _running(_notifier(stores, rate_per_minute=2)) as actor:
            await _settled(actor, 5)
            assert len(await _items(stores, "ann")) == 2
            stats = await actor.ref.ask(GetNotifierStatistics())
            assert stats["rate_cap"] == 3 and stats["delivered"] == 2


async def test_applause_is_coalesced_and_its_events_acked_after(stores, settings):
    with trio.fail_after(20):
        await _meta(stores, "a1", "ann")
        await stores.events.append("applause", {"content": "a1", "user": "ann", "added": 5,
                                                "mine": 5, "total": 5})  # own: nothing
        async with _running(_notifier(stores, coalesce_window=0.5)) as actor:
            for i in range(100):
                await stores.events.append("applause", {"content": "a1", "user": f"u{i % 10}",
                                                        "added": 2, "mine": 2, "total": 0})
            (n,) = await _wait_for(stores, "ann", 1)
            assert n.kind == "applause"
            assert n.data["people"] == 10 and n.data["events"] == 100 and n.data["claps"] == 200
            assert n.data["users"] == ["u0", "u1", "u2"]
            await _settled(actor, 101)
        pending = await stores.bridge.call(stores.redis.xpending, stores.events.key,
                                           NOTIFIER_GROUP)
        assert pending["pending"] == 0


async def test_a_restart_rebuilds_open_groups_from_unacked_events(stores, settings):
    with trio.fail_after(20):
        await _meta(stores, "a2", "ann")
        for i in range(20):
            await stores.events.append("applause", {"content": "a2", "user": f"u{i}",
                                                    "added": 1, "mine": 1, "total": 0})
        # A long window: the first run holds the events and is then killed
        # without a chance to deliver (no shutdown budget).
        first = _notifier(stores, coalesce_window=60.0)
        async with trio.open_nursery() as nursery:
            await nursery.start(first.run)
            await _wait_held(first, 20)
            first._coalescer.clear()  # as if the process died: nothing to deliver on stop
            nursery.cancel_scope.cancel()
        assert await _items(stores, "ann") == []
        async with _running(_notifier(stores, coalesce_window=0.2)):  # same consumer name
            (n,) = await _wait_for(stores, "ann", 1)
            assert n.data["events"] == 20 and n.data["people"] == 20


async def _wait_held(actor: NotifierActor, events: int) -> None:
    while (await actor.ref.ask(GetNotifierStatistics()))["held_events"] < events:
        await trio.sleep(POLL)
