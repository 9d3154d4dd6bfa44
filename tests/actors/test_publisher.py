"""The publisher actor: stream entries stored once and announced once, dead
letters for what cannot be handled, and entries a dead consumer left behind."""

from __future__ import annotations

import json

import redis
import trio

from engage.actors.publisher import PUBLISH_GROUP, PublisherActor, PublishPayload
from engage.errors import StoreError
from engage.store import Keys
from engage.store.publishing import PublishStream
from tests.conftest import BASE_REDIS_URL
from tests.support import fetch

#: Seconds a test waits for the consumer to catch up.
SETTLE_TIMEOUT = 5.0
POLL = 0.05

C9 = {"content": "c9", "title": "T", "url": "https://x/y", "author": "a1"}


def _stream(stores, settings) -> PublishStream:
    return PublishStream(stores.redis, stores.bridge, Keys(settings.redis_prefix),
                         settings.redis_url)


async def _start(stores, settings, nursery, *, consumer="me", max_deliveries=3,
                 claim_idle=0.3) -> PublisherActor:
    actor = PublisherActor(_stream(stores, settings), stores.content_meta, stores.history,
                           consumer=consumer, max_deliveries=max_deliveries,
                           claim_idle=claim_idle, read_block=0.2)
    await nursery.start(actor.run)
    return actor


async def _xadd(settings, fields: dict) -> str:
    """Append as a CMS would, with a plain Redis client."""
    def add():
        client = redis.Redis.from_url(BASE_REDIS_URL)
        try:
            return client.xadd(Keys(settings.redis_prefix).publish_stream, fields).decode()
        finally:
            client.close()
    return await trio.to_thread.run_sync(add)


async def _until(predicate, timeout: float = SETTLE_TIMEOUT):
    with trio.fail_after(timeout):
        while not (result := await predicate()):
            await trio.sleep(POLL)
        return result


async def _published_events(stores, settings) -> list:
    log = stores.events  # the log of this test's prefix, closed with the stores
    await log.ensure_group("test-reader")
    events = await log.read("test-reader", "t", count=1000, block=0.05)
    return [e for e in events if e.type == "content.published"]


async def test_stored_and_announced_exactly_once(stores, settings, nursery):
    with trio.fail_after(20):
        actor = await _start(stores, settings, nursery)
        await _xadd(settings, {**C9, "tags": "news, local", "published_at": "2024-05-01T10:00:00Z"})
        await _until(lambda: _announced_on(stores, "feed:author:a1"))
        meta = await stores.content_meta.get("c9")
        assert (meta.title, meta.author, meta.tags) == ("T", "a1", ("news", "local"))
        assert (await stores.history.position("feed:all"))[0] == 1

        await _xadd(settings, {**C9, "tags": "news, local", "published_at": "2024-05-01T10:00:00Z"})
        await _xadd(settings, {**C9, "content": "c10"})
        await _until(lambda: _stats_reach(actor, announced=2))
        await _until(lambda: _no_pending(stores, settings))  # everything acknowledged
        rows = fetch(settings.database_url, "SELECT id FROM content ORDER BY id")
        assert [r["id"] for r in rows] == ["c10", "c9"]
        assert (await stores.history.position("feed:all"))[0] == 2  # c9 once, c10 once
        published = await _published_events(stores, settings)
        assert sorted(e.data["id"] for e in published) == ["c10", "c9"]
        assert actor.statistics() == {"stored": 2, "announced": 2, "dead": 0}


async def test_malformed_events_are_dead_lettered_and_the_consumer_goes_on(
        stores, settings, nursery):
    with trio.fail_after(20):
        await _start(stores, settings, nursery)
        bad_url = await _xadd(settings, {**C9, "content": "bad1", "url": "ftp://nope"})
        await _xadd(settings, {"content": "bad2", "title": "no url or author"})
        await _xadd(settings, {**C9, "content": "bad3", "published_at": "yesterday"})
        await _xadd(settings, {**C9, "content": "bad4", "title": "nul\x00byte"})
        await _xadd(settings, {**C9, "content": "not an id!"})
        await _xadd(settings, {**C9, "content": "good"})
        await _until(lambda: stores.content_meta.get("good"))
        stream = _stream(stores, settings)
        dead = await _until(lambda: _at_least(stream, 5))
        reasons = {d.fields.get("content"): d.fields["reason"] for d in dead}
        assert set(reasons) == {"bad1", "bad2", "bad3", "bad4", "not an id!"}
        assert all(r.startswith("malformed: ") for r in reasons.values())
        assert "http(s)" in reasons["bad1"] and "published_at" in reasons["bad3"]
        assert dead[0].fields["entry"] == bad_url
        for content_id in ("bad1", "bad2", "bad3", "bad4"):
            assert await stores.content_meta.get(content_id) is None


async def _at_least(stream: PublishStream, n: int):
    letters = await stream.dead_letters()
    return letters if len(letters) >= n else None


async def test_an_entry_left_pending_by_a_dead_consumer_is_claimed(stores, settings, nursery):
    with trio.fail_after(20):
        stream = _stream(stores, settings)
        await stream.ensure_group(PUBLISH_GROUP)
        entry_id = await _xadd(settings, {**C9, "content": "orphan"})
        (taken,) = await stream.read(PUBLISH_GROUP, "dead", count=10, block=0.1)
        assert taken.id == entry_id  # read by a consumer that then "dies"
        await _start(stores, settings, nursery, consumer="alive", claim_idle=0.3)
        await _until(lambda: _announced_on(stores, "feed:author:a1"))
        assert (await stores.content_meta.get("orphan")).title == "T"
        assert (await stores.history.position("feed:all"))[0] == 1
        await _until(lambda: _no_pending(stores, settings))


async def _no_pending(stores, settings):
    info = await stores.bridge.call(stores.redis.xpending,
                                    Keys(settings.redis_prefix).publish_stream, PUBLISH_GROUP)
    return info if info["pending"] == 0 else None


async def test_an_entry_delivered_too_often_goes_to_the_dead_letters(stores, settings, nursery):
    with trio.fail_after(20):
        stream = _stream(stores, settings)
        key = Keys(settings.redis_prefix).publish_stream
        await stream.ensure_group(PUBLISH_GROUP)
        entry_id = await _xadd(settings, {**C9, "content": "cursed"})
        await stream.read(PUBLISH_GROUP, "dead", count=10, block=0.1)
        for _ in range(3):  # three more deliveries to consumers that all die
            await stores.bridge.call(stores.redis.xclaim, key, PUBLISH_GROUP, "dead", 0,
                                     [entry_id])
        await _start(stores, settings, nursery, max_deliveries=3, claim_idle=0.2)
        (letter,) = await _until(lambda: _at_least(stream, 1))
        assert letter.fields["entry"] == entry_id and letter.fields["content"] == "cursed"
        assert letter.fields["reason"].startswith("not handled after 4 deliveries")
        assert await stores.content_meta.get("cursed") is None
        await _until(lambda: _no_pending(stores, settings))


async def test_plain_publish_payloads(stores, settings, nursery):
    with trio.fail_after(20):
        actor = await _start(stores, settings, nursery)
        await actor.ref.tell(PublishPayload(json.dumps({**C9, "content": "p1"}).encode()))
        await actor.ref.tell(PublishPayload(b"not json"))
        await actor.ref.tell(PublishPayload(json.dumps({**C9, "content": "p2",
                                                        "tags": ["a"]}).encode()))
        await actor.ref.tell(PublishPayload(json.dumps({**C9, "content": "p1"}).encode()))
        dead = await _until(lambda: _at_least(_stream(stores, settings), 2))
        assert all(d.fields["entry"] == "pubsub" and d.fields["reason"].startswith("malformed")
                   for d in dead)
        assert "not JSON" in dead[0].fields["reason"] and dead[0].fields["payload"] == "not json"
        assert "'tags' must be a UTF-8 string" in dead[1].fields["reason"]
        await actor.ref.tell(PublishPayload(json.dumps({**C9, "content": "p3"}).encode()))
        await _until(lambda: _stats_reach(actor, announced=2))  # handled in order
        assert await stores.content_meta.get("p1") is not None
        assert actor.statistics() == {"stored": 2, "announced": 2, "dead": 2}  # p1 once, p3
        assert (await stores.history.position("feed:all"))[0] == 2


class _FlakyHistory:
    """A history whose first ``failures`` publishes fail, as if Redis blinked."""

    def __init__(self, history, failures: int) -> None:
        self.history = history
        self.failures = failures

    async def publish(self, *args, **kwargs):
        if self.failures:
            self.failures -= 1
            raise StoreError("redis: connection reset")
        return await self.history.publish(*args, **kwargs)


async def test_a_failed_announcement_is_finished_on_retry(stores, settings, nursery):
    with trio.fail_after(20):
        actor = PublisherActor(_stream(stores, settings), stores.content_meta,
                               _FlakyHistory(stores.history, 1), consumer="me",
                               max_deliveries=5, claim_idle=0.2, read_block=0.2)
        await nursery.start(actor.run)
        await _xadd(settings, {**C9, "content": "flaky"})
        # stored on the first try, announced on the retry although no longer new
        await _until(lambda: _stats_reach(actor, announced=1))
        await _until(lambda: _no_pending(stores, settings))
        assert await stores.content_meta.get("flaky") is not None
        assert (await stores.history.position("feed:all"))[0] == 1
        assert (await stores.history.position("feed:author:a1"))[0] == 1
        assert actor.statistics() == {"stored": 1, "announced": 1, "dead": 0}
        assert [e.data["id"] for e in await _published_events(stores, settings)] == ["flaky"]


async def _announced_on(stores, subject: str, times: int = 1) -> bool:
    return (await stores.history.position(subject))[0] >= times


async def _stats_reach(actor: PublisherActor, **least: int) -> bool:
    stats = actor.statistics()
    return all(stats[k] >= v for k, v in least.items())
