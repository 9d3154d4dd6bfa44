"""The webhook actor and its queue on their own (real Postgres and Redis, POSTs
answered by an in-process httpx transport): queueing and acks, idempotency
per (event, url), shared claiming, timeouts, retries, and store failures."""

from __future__ import annotations

import json

import httpx
import pytest
import trio

from engage.actors.webhooks import WebhookActor
from engage.actors.webhooks.actor import WEBHOOK_GROUP, WEBHOOK_LEASE
from engage.domain.webhooks import verify
from engage.errors import StoreError
from engage.store.webhooks import PostgresWebhooks

URLS = ["http://a.example/hook", "http://b.example/hook"]
SECRETS = ["s-new", "s-old"]


def _actor(stores, **changes) -> WebhookActor:
    options = {"urls": URLS, "secrets": SECRETS, "max_attempts": 3, "timeout": 0.5,
               "consumer": "t1", **changes}
    return WebhookActor(stores.events, PostgresWebhooks(stores.database.pool, stores.bridge),
                        **options)


async def _comment_event(stores, n: int = 1) -> str:
    return await stores.events.append(
        "comment.created", {"content": "c1", "comment": {"id": str(n), "body": "hi"},
                            "parent_author": None})


async def _read(actor: WebhookActor) -> list:
    await actor.events.ensure_group(WEBHOOK_GROUP)
    return await actor.events.read(WEBHOOK_GROUP, actor.consumer, count=100, block=0.1)


async def _unacked(actor: WebhookActor) -> list:
    return await actor.events.read(WEBHOOK_GROUP, actor.consumer, count=100, block=0,
                                   own_pending=True)


async def test_events_become_one_delivery_per_endpoint_then_are_acked(stores):
    actor = _actor(stores)
    wanted = await _comment_event(stores)
    await stores.events.append("applause", {"content": "c1", "user": "u", "count": 1})
    published = await stores.events.append(
        "content.published", {"id": "c2", "title": "T", "url": "https://x/c2", "author": "a",
                              "published_at": "2026-01-01T00:00:00Z", "tags": []})
    events = await _read(actor)
    assert len(events) == 3
    await actor._queue(events)
    assert await _unacked(actor) == []
    rows = await actor.store.deliveries()
    assert sorted((r["event_id"], r["url"]) for r in rows) == sorted(
        (e, u) for e in (wanted, published) for u in URLS)
    assert {r["status"] for r in rows} == {"pending"}

    await actor._queue(events)  # read again (a consumer died before its ack)
    assert len(await actor.store.deliveries()) == 4  # idempotent per (event id, url)


async def test_without_urls_events_are_only_acked(stores):
    actor = _actor(stores, urls=[])
    await _comment_event(stores)
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        with trio.fail_after(10):
            while True:
                await actor.events.ensure_group(WEBHOOK_GROUP)
                info = await stores.bridge.call(stores.redis.xinfo_groups, stores.events.key)
                group = next(g for g in info if g["name"] in (b"webhooks", "webhooks"))
                if group["entries-read"] == 1 and group["pending"] == 0:
                    break
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    assert await actor.store.deliveries() == []


async def test_instances_claim_disjoint_deliveries(stores):
    store = PostgresWebhooks(stores.database.pool, stores.bridge)
    await store.enqueue([(f"{i}-0", url, "comment.created", b"{}")
                         for i in range(40) for url in URLS])
    claimed: list[list] = []

    async def claim():
        claimed.append(await store.claim_due(50, WEBHOOK_LEASE))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(claim)
    keys = [(d.event_id, d.url) for batch in claimed for d in batch]
    assert len(keys) == 80 and len(set(keys)) == 80  # all of them, each once
    assert await store.claim_due(50, WEBHOOK_LEASE) == []  # leased: due for no one else


async def test_posts_are_signed_and_outcomes_recorded(stores):
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204 if "a.example" in str(request.url) else 503)

    actor = _actor(stores)
    event_id = await _comment_event(stores)
    await actor._queue(await _read(actor))
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        assert await actor.deliver_due(http) == 2
        assert await actor.deliver_due(http) == 0  # the failed one waits its back-off
    for request in seen:
        body = json.loads(request.content)
        assert body["id"] == event_id and body["type"] == "comment.created"
        header = request.headers["Engage-Signature"]
        assert all(verify(header, request.content, [s]) for s in SECRETS)
        assert request.headers["Content-Type"] == "application/json"
    rows = {r["url"]: r for r in await actor.store.deliveries()}
    assert rows[URLS[0]]["status"] == "delivered" and rows[URLS[0]]["attempts"] == 1
    assert rows[URLS[1]]["status"] == "pending" and rows[URLS[1]]["last_error"] == "HTTP 503"
    assert rows[URLS[1]]["attempts"] == 1


async def test_a_hanging_endpoint_times_out_as_a_failed_attempt(stores):
    async def handler(request: httpx.Request) -> httpx.Response:
        await trio.sleep(60)
        return httpx.Response(204)

    actor = _actor(stores, urls=URLS[:1], max_attempts=1, timeout=0.3)
    await _comment_event(stores)
    await actor._queue(await _read(actor))
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        with trio.fail_after(5):
            assert await actor.deliver_due(http) == 1
    (row,) = await actor.store.deliveries()
    assert row["status"] == "failed" and row["attempts"] == 1
    assert row["last_error"] == "timed out after 0.3 s"


async def test_a_store_failure_while_recording_is_a_store_error(stores):
    """Not an ExceptionGroup: the delivery loop must be able to catch it."""

    class Flaky(PostgresWebhooks):
        async def delivered(self, event_id, url):
            raise StoreError("postgres: gone")

    actor = _actor(stores)
    actor.store = Flaky(stores.database.pool, stores.bridge)
    await _comment_event(stores)
    await actor._queue(await _read(actor))
    async with httpx.AsyncClient(
            transport=httpx.MockTransport(lambda r: httpx.Response(200))) as http:
        with pytest.raises(StoreError):
            await actor.deliver_due(http)
    rows = await actor.store.deliveries()
    assert [r["status"] for r in rows] == ["pending", "pending"]  # retried after the lease


def test_the_lease_outlasts_a_round_of_slow_posts():
    def lease(timeout: float) -> float:
        return WebhookActor(None, None, urls=URLS, secrets=SECRETS, max_attempts=3,
                            timeout=timeout, consumer="t1").lease

    assert lease(1.0) == WEBHOOK_LEASE
    assert lease(30.0) > 4 * 30.0  # four rounds of 16 hanging POSTs per claim
