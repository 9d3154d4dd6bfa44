"""The webhook actor: site owners hear of new comments and new content.

Two loops. The first reads the event log through the consumer group
``webhooks`` (any instance can), turns each ``comment.created`` and
``content.published`` into one queued delivery per endpoint in Postgres, and
acknowledges the events only after that commit. The second claims due
deliveries (``FOR UPDATE SKIP LOCKED``), POSTs them signed, and records the
outcome: delivered, retry later with exponential back-off and jitter, or
failed for good after ``max_attempts``. Nothing here runs on a request path.
"""

from __future__ import annotations

import logging
import time

import httpx
import trio

from engage.actors.ref import ActorRef, Mailbox
from engage.actors.webhooks.messages import DeliverDue
from engage.domain.webhooks import SIGNATURE_HEADER, WEBHOOK_EVENTS, payload, retry_delay, sign
from engage.errors import StoreError
from engage.store.events import EventLog
from engage.store.webhooks import Delivery, PostgresWebhooks

log = logging.getLogger(__name__)

WEBHOOK_GROUP = "webhooks"
WEBHOOK_MAILBOX_SIZE = 16
#: Seconds between looks for due deliveries.
WEBHOOK_POLL_INTERVAL = 0.5
#: Seconds a claimed delivery is ours before another instance may retry it.
WEBHOOK_LEASE = 60.0
#: Events read per round, and seconds a read waits for the first.
READ_BATCH = 100
READ_BLOCK = 1.0
#: Seconds an unacknowledged event waits before another consumer claims it.
CLAIM_IDLE = 60.0
#: Deliveries in flight at once.
MAX_CONCURRENT_POSTS = 16
#: Back-off after a store failure, seconds.
STORE_RETRY_DELAY = 1.0


class WebhookActor:
    """Queues and delivers signed webhook POSTs.

    Args:
        events: the event log.
        store: the delivery queue.
        urls: endpoints; none means events are acknowledged and dropped.
        secrets: the first signs; each adds a ``v1=`` during a rotation.
        max_attempts: tries before a delivery is recorded as failed.
        timeout: seconds one POST may take.
        consumer: this instance's consumer name.
    """

    def __init__(self, events: EventLog, store: PostgresWebhooks, *, urls: list[str],
                 secrets: list[str], max_attempts: int, timeout: float, consumer: str) -> None:
        self.events = events
        self.store = store
        self.urls = urls
        self.secrets = secrets
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.consumer = consumer
        self.mailbox = Mailbox(WEBHOOK_MAILBOX_SIZE)
        self.ref = ActorRef("webhooks", self.mailbox)

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        async with httpx.AsyncClient(timeout=self.timeout) as http:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._ingest_loop)
                nursery.start_soon(self._delivery_loop, http)
                task_status.started(self.ref)

    # -- events -> queue -------------------------------------------------------------

    async def _ingest_loop(self) -> None:
        while True:
            try:
                await self.events.ensure_group(WEBHOOK_GROUP)
                while True:
                    await self._queue(await self.events.claim_stale(
                        WEBHOOK_GROUP, self.consumer, idle=CLAIM_IDLE, count=READ_BATCH))
                    await self._queue(await self.events.read(
                        WEBHOOK_GROUP, self.consumer, count=READ_BATCH, block=READ_BLOCK))
            except StoreError as exc:
                log.warning("webhooks: event log unavailable: %s", exc)
                await trio.sleep(STORE_RETRY_DELAY)

    async def _queue(self, events) -> None:
        if not events:
            return
        items = []
        for event in events:
            if event.type in WEBHOOK_EVENTS:
                body = payload(event.type, event.id, event.at, event.data)
                items += [(event.id, url, event.type, body) for url in self.urls]
        await self.store.enqueue(items)  # committed before the ack: at least once
        await self.events.ack(WEBHOOK_GROUP, [e.id for e in events])

    # -- queue -> endpoints ---------------------------------------------------------------

    async def _delivery_loop(self, http: httpx.AsyncClient) -> None:
        while True:
            request = await self.mailbox.tick(WEBHOOK_POLL_INTERVAL, DeliverDue)
            try:
                attempted = await self.deliver_due(http)
            except StoreError as exc:
                log.warning("webhooks: delivery queue unavailable: %s", exc)
                if request is not None:
                    request.refuse(exc)
                continue
            if request is not None:
                request.answer(attempted)

    async def deliver_due(self, http: httpx.AsyncClient) -> int:
        """POST every due delivery (bounded concurrency); return how many were tried."""
        due = await self.store.claim_due(MAX_CONCURRENT_POSTS * 4, WEBHOOK_LEASE)
        limiter = trio.CapacityLimiter(MAX_CONCURRENT_POSTS)

        async def one(delivery: Delivery) -> None:
            async with limiter:
                await self._post(http, delivery)

        async with trio.open_nursery() as nursery:
            for delivery in due:
                nursery.start_soon(one, delivery)
        return len(due)

    async def _post(self, http: httpx.AsyncClient, delivery: Delivery) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": "Engage-Webhooks/1",
                   SIGNATURE_HEADER: sign(delivery.body, self.secrets, int(time.time()))}
        try:
            response = await http.post(delivery.url, content=delivery.body, headers=headers)
            error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" or type(exc).__name__
        if error is None:
            await self.store.delivered(delivery.event_id, delivery.url)
            return
        attempts = delivery.attempts + 1
        retry_in = None if attempts >= self.max_attempts else retry_delay(attempts)
        if retry_in is None:
            log.error("webhook %s to %s failed for good after %d attempts: %s",
                      delivery.event_id, delivery.url, attempts, error)
        await self.store.failed_attempt(delivery.event_id, delivery.url, error,
                                        retry_in=retry_in)
