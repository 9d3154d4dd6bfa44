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
import math
import time

import httpx
import trio

from engage import metrics
from engage.actors.ref import ActorRef, Mailbox
from engage.actors.webhooks.messages import DeliverDue
from engage.domain.webhooks import (SIGNATURE_HEADER, WEBHOOK_EVENTS, payload, redact_url,
                                    retry_delay, sign)
from engage.errors import StoreError
from engage.outage import Outage
from engage.store.events import EventLog
from engage.store.webhooks import Delivery, PostgresWebhooks

log = logging.getLogger(__name__)
# httpx logs every request's whole URL at INFO, a webhook URL's password and
# query string (often a token) included; _post logs outcomes with redact_url.
logging.getLogger("httpx").setLevel(logging.WARNING)

WEBHOOK_GROUP = "webhooks"
WEBHOOK_MAILBOX_SIZE = 16
#: Seconds between looks for due deliveries.
WEBHOOK_POLL_INTERVAL = 0.5
#: Least seconds a claimed delivery is ours before another instance may retry
#: it; longer when the POST timeout needs it (see ``WebhookActor.lease``).
WEBHOOK_LEASE = 60.0
#: Seconds of store round trips a lease allows for on top of the POSTs.
WEBHOOK_LEASE_MARGIN = 30.0
#: Events read per round, and seconds a read waits for the first.
READ_BATCH = 100
READ_BLOCK = 1.0
#: Seconds an unacknowledged event waits before another consumer claims it.
CLAIM_IDLE = 60.0
#: Seconds between looks for events a dead consumer left unacknowledged.
CLAIM_INTERVAL = 5.0
#: Seconds to let events gather after a read that found some: at 100 comments/s
#: a read per event cost three Redis round trips each (read, queue, ack).
READ_LINGER = 0.05
#: Deliveries in flight at once, and claimed per round.
MAX_CONCURRENT_POSTS = 16
CLAIM_BATCH = MAX_CONCURRENT_POSTS * 4
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
        timeout: seconds one POST may take, all of it (connect, send, answer).
        consumer: this instance's consumer name.
    """

    def __init__(self, events: EventLog, store: PostgresWebhooks, *, urls: list[str],
                 secrets: list[str], max_attempts: int, timeout: float, consumer: str) -> None:
        self.events = events
        self.store = store
        self.urls = urls
        self._log_outage = Outage("webhooks: event log", log)
        self._queue_outage = Outage("webhooks: delivery queue", log)
        self.secrets = secrets
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.consumer = consumer
        self.mailbox = Mailbox(WEBHOOK_MAILBOX_SIZE)
        self.ref = ActorRef("webhooks", self.mailbox)
        # A round runs its claimed deliveries MAX_CONCURRENT_POSTS at a time;
        # the lease must outlast the slowest round or another instance could
        # POST the same delivery while ours is still in flight.
        rounds = math.ceil(CLAIM_BATCH / MAX_CONCURRENT_POSTS)
        self.lease = max(WEBHOOK_LEASE, rounds * timeout + WEBHOOK_LEASE_MARGIN)

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """Run both loops until cancelled; ``task_status.started(self.ref)``."""
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
                next_claim = trio.current_time()
                while True:
                    if trio.current_time() >= next_claim:
                        next_claim = trio.current_time() + CLAIM_INTERVAL
                        await self._queue(await self.events.claim_stale(
                            WEBHOOK_GROUP, self.consumer, idle=CLAIM_IDLE, count=READ_BATCH))
                    if self.urls:
                        events = await self.events.read(WEBHOOK_GROUP, self.consumer,
                                                        count=READ_BATCH, block=READ_BLOCK)
                        await self._queue(events)
                        read = len(events)
                    else:  # nothing to deliver: keep the group's place without parsing
                        read = await self.events.skip(WEBHOOK_GROUP, self.consumer,
                                                      count=READ_BATCH, block=READ_BLOCK)
                    self._log_outage.ok()
                    if 0 < read < READ_BATCH:
                        await trio.sleep(READ_LINGER)
            except StoreError as exc:
                self._log_outage.failed(exc)
                await trio.sleep(STORE_RETRY_DELAY)

    async def _queue(self, events: list) -> None:
        """Queue one delivery per endpoint for each relevant event, then ack them all."""
        if not events:
            return
        items = []
        for event in events:
            if event.type in WEBHOOK_EVENTS and self.urls:
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
                self._queue_outage.failed(exc)
                if request is not None:
                    request.refuse(exc)
                continue
            self._queue_outage.ok()
            if request is not None:
                request.answer(attempted)

    async def deliver_due(self, http: httpx.AsyncClient) -> int:
        """POST every due delivery (bounded concurrency); return how many were tried.

        Raises:
            StoreError: the queue could not be read, or an outcome could not be
                recorded (that delivery is tried again when its lease runs out).
        """
        due = await self.store.claim_due(CLAIM_BATCH, self.lease)
        limiter = trio.CapacityLimiter(MAX_CONCURRENT_POSTS)
        store_errors: list[StoreError] = []

        async def one(delivery: Delivery) -> None:
            async with limiter:
                try:
                    await self._post(http, delivery)
                except StoreError as exc:  # keep the other POSTs of this round going
                    store_errors.append(exc)

        async with trio.open_nursery() as nursery:
            for delivery in due:
                nursery.start_soon(one, delivery)
        if store_errors:
            raise store_errors[0]
        return len(due)

    async def _post(self, http: httpx.AsyncClient, delivery: Delivery) -> None:
        """One signed POST, then its outcome recorded in the queue."""
        headers = {"Content-Type": "application/json", "User-Agent": "Engage-Webhooks/1",
                   SIGNATURE_HEADER: sign(delivery.body, self.secrets, int(time.time()))}
        error = f"timed out after {self.timeout:g} s"
        with trio.move_on_after(self.timeout):  # httpx's timeout is per phase, not total
            try:
                response = await http.post(delivery.url, content=delivery.body,
                                           headers=headers)
                error = (None if 200 <= response.status_code < 300
                         else f"HTTP {response.status_code}")
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if error is None:
            await self.store.delivered(delivery.event_id, delivery.url)
            metrics.WEBHOOK_DELIVERIES.labels("delivered").inc()
            return
        attempts = delivery.attempts + 1
        retry_in = None if attempts >= self.max_attempts else retry_delay(attempts)
        await self.store.failed_attempt(delivery.event_id, delivery.url, error,
                                        retry_in=retry_in)
        if retry_in is None:
            metrics.WEBHOOK_DELIVERIES.labels("failed").inc()
            log.error("webhook %s to %s failed for good after %d attempts: %s",
                      delivery.event_id, redact_url(delivery.url), attempts, error)
        else:
            metrics.WEBHOOK_DELIVERIES.labels("retry").inc()
            log.info("webhook %s to %s: %s; try %d in %.1f s", delivery.event_id,
                     redact_url(delivery.url), error, attempts + 1, retry_in)
