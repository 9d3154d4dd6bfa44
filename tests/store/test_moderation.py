"""Moderation storage: bans in Postgres mirrored in Redis (expiry, reinstall
after a wipe), trusted commenters, comment statuses and the held queue."""

from __future__ import annotations

import pytest
import trio

from engage.domain.comments import encode_cursor
from engage.errors import NotFound
from engage.store import Keys
from engage.system import open_stores
from tests.conftest import BASE_REDIS_URL
from tests.support import delete_prefix, fetch


async def _redis(stores, method: str, *args):
    return await stores.bridge.call(getattr(stores.redis, method), *args)


async def test_a_ban_is_durable_and_mirrored_with_its_expiry(stores, settings):
    with trio.fail_after(20):
        moderation = stores.moderation
        key = Keys(settings.redis_prefix).ban("bob")
        assert key == f"{settings.redis_prefix}ban:bob"
        ban = await moderation.ban("bob", 60, "spam", "mod")
        assert (ban.user, ban.reason, ban.by) == ("bob", "spam", "mod")
        assert 59.0 < (ban.until - ban.created_at).total_seconds() <= 60.0
        assert await _redis(stores, "get", key) == b"spam"
        assert 55_000 < await _redis(stores, "pttl", key) <= 60_000
        assert await moderation.active_ban("bob") == ban
        standing = await moderation.standing("bob")
        assert standing.ban == ban and standing.trusted is False
        rows = fetch(settings.database_url, "SELECT user_id, reason, banned_by FROM bans")
        assert [tuple(r) for r in rows] == [("bob", "spam", "mod")]

        again = await moderation.ban("bob", 3600, "worse", "boss")  # replaces
        assert again.reason == "worse" and again.by == "boss"
        assert await _redis(stores, "get", key) == b"worse"
        assert await _redis(stores, "pttl", key) > 3_500_000
        assert len(fetch(settings.database_url, "SELECT 1 FROM bans")) == 1

        assert await moderation.lift("bob") is True
        assert await _redis(stores, "exists", key) == 0
        assert await moderation.active_ban("bob") is None
        assert (await moderation.standing("bob")).ban is None
        assert await moderation.lift("bob") is False  # nothing to lift
        assert await moderation.active_ban("nobody") is None


async def test_a_ban_expires_in_both_places(stores, settings):
    with trio.fail_after(20):
        key = Keys(settings.redis_prefix).ban("brief")
        await stores.moderation.ban("brief", 1, "", "mod")
        assert await _redis(stores, "get", key) == b""  # no reason: the key still exists
        await trio.sleep(1.2)
        assert await _redis(stores, "exists", key) == 0
        assert await stores.moderation.active_ban("brief") is None
        assert (await stores.moderation.standing("brief")).ban is None
        assert await stores.moderation.lift("brief") is False  # expired: not in force


async def test_reinstall_after_a_redis_wipe(stores, settings):
    with trio.fail_after(20):
        keys = Keys(settings.redis_prefix)
        await stores.moderation.ban("long", 3600, "abuse", "mod")
        await stores.moderation.ban("short", 1, "spam", "mod")
        await trio.sleep(1.1)  # "short" is over
        delete_prefix(BASE_REDIS_URL, settings.redis_prefix)
        assert await _redis(stores, "exists", keys.ban("long")) == 0
        assert await stores.moderation.reinstall_bans() == 1
        assert await _redis(stores, "get", keys.ban("long")) == b"abuse"
        assert 3_590_000 < await _redis(stores, "pttl", keys.ban("long")) <= 3_600_000
        assert await _redis(stores, "exists", keys.ban("short")) == 0

        delete_prefix(BASE_REDIS_URL, settings.redis_prefix)
        async with open_stores(settings) as reopened:  # as a restarting server does
            assert await _redis(reopened, "get", keys.ban("long")) == b"abuse"


async def test_approving_with_trust_and_compare_and_set(stores):
    with trio.fail_after(20):
        comments = stores.comments
        held = await comments.create("q1", "newbie", "hello", None, "held")
        assert held.status == "held" and not held.visible
        assert (await stores.moderation.standing("newbie")).trusted is False
        assert await comments.set_status(held.id, "visible", "hidden", "mod") is None  # not visible
        approved = await comments.set_status(held.id, "held", "visible", "mod", trust=True)
        assert approved.status == "visible" and approved.visible
        assert (await stores.moderation.standing("newbie")).trusted is True
        assert await comments.set_status(held.id, "held", "visible", "mod") is None  # once only
        hidden = await comments.set_status(held.id, "visible", "hidden", "mod")
        assert hidden.status == "hidden"
        deleted = await comments.delete(held.id)
        assert deleted.deleted and deleted.status == "hidden"  # the status it had
        assert await comments.set_status(held.id, "hidden", "visible", "mod") is None
        got = await comments.get(held.id)
        assert got.state == "deleted"


async def test_edits_compare_the_status(stores):
    with trio.fail_after(20):
        comments = stores.comments
        c = await comments.create("e1", "ann", "one", None)
        held = await comments.edit(c.id, "two", expected="visible", status="held")
        assert (held.body, held.status) == ("two", "held") and held.edited_at
        assert await comments.edit(c.id, "three", expected="visible", status="visible") is None
        assert (await comments.get(c.id)).body == "two"
        plain = await comments.edit(c.id, "four")  # no compare: status kept
        assert (plain.body, plain.status) == ("four", "held")
        await comments.delete(c.id)
        with pytest.raises(NotFound):
            await comments.edit(c.id, "five", expected="held", status="held")


async def test_only_visible_comments_are_listed_or_replied_to(stores):
    with trio.fail_after(20):
        comments = stores.comments
        shown = await comments.create("l1", "ann", "shown", None)
        held = await comments.create("l1", "bob", "held", None, "held")
        hidden = await comments.create("l1", "cy", "hidden", None)
        await comments.set_status(hidden.id, "visible", "hidden", "mod")
        reply = await comments.create("l1", "dee", "reply", shown.id)
        held_reply = await comments.create("l1", "eve", "held reply", shown.id, "held")
        threads, more = await comments.threads("l1", "oldest", None, 10)
        assert not more
        assert [(root.id, [r.id for r in replies]) for root, replies in threads] == \
            [(shown.id, [reply.id])]
        for parent in (held, hidden, held_reply):
            with pytest.raises(NotFound) as caught:
                await comments.create("l1", "x", "re", parent.id)
            assert caught.value.code == "parent_not_found"


async def test_the_queue_is_held_comments_oldest_first_by_cursor(stores):
    with trio.fail_after(20):
        comments = stores.comments
        held = []
        for i in range(7):
            await comments.create(f"c{i % 3}", f"u{i}", f"fine {i}", None)  # visible: not queued
            held.append(await comments.create(f"c{i % 3}", f"u{i}", f"held {i}", None, "held"))
        await comments.set_status(held[1].id, "held", "visible", "mod")  # approved: gone
        await comments.set_status(held[2].id, "held", "rejected", "mod")  # rejected: gone
        await comments.delete(held[3].id)  # deleted: gone
        expected = [held[i].id for i in (0, 4, 5, 6)]

        page, more = await comments.held(None, 3)
        assert [c.id for c in page] == expected[:3] and more
        assert all(c.status == "held" for c in page)
        assert {c.content_id for c in page} == {"c0", "c1", "c2"}
        last = page[-1]
        rest, more = await comments.held((last.created_at, last.id), 3)
        assert [c.id for c in rest] == expected[3:] and not more
        everything, more = await comments.held(None, 100)
        assert [c.id for c in everything] == expected and not more
        assert encode_cursor(last.created_at, last.id)  # the routes' cursor of this page


async def test_removing_a_users_comments(stores):
    with trio.fail_after(20):
        comments = stores.comments
        mine = [await comments.create("a", "spammer", "1", None),
                await comments.create("a", "spammer", "2", None, "held"),
                await comments.create("b", "spammer", "3", None)]
        other = await comments.create("a", "ann", "keep", None)
        assert await comments.contents_by_author("spammer") == ["a", "b"]
        gone = await comments.delete_by_author("a", "spammer")
        assert [(c.id, c.status, c.deleted) for c in gone] == \
            [(mine[0].id, "visible", True), (mine[1].id, "held", True)]
        assert await comments.delete_by_author("a", "spammer") == []
        assert await comments.contents_by_author("spammer") == ["b"]
        assert not (await comments.get(other.id)).deleted
