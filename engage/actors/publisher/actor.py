"""The publisher actor: consumes publish events and announces new content.

A CMS publishes by appending to the Redis Stream ``<prefix>publish`` (or,
at most once, by a plain ``PUBLISH`` on the channel of the same name, which
the router forwards here as :class:`PublishPayload`). For each event this
actor:

1. validates it (:func:`~engage.domain.content.parse_publish_fields`); a
   malformed event is logged and moved to ``<prefix>publish:dead`` at once;
2. stores the metadata in Postgres, idempotently by content id;
3. if the content is new, announces it on ``feed:all`` (which also appends
   ``content.published`` to the event log) and ``feed:author:<id>``;
4. acknowledges the stream entry (at least once: only after the commit).

Every instance runs one, all in the consumer group ``publisher``, so any
instance can do the work. Entries another consumer read but never
acknowledged (it died, or Postgres failed) are claimed after ``claim_idle``
seconds and retried; an entry delivered more than ``max_deliveries`` times is
dead-lettered with the last error as its ``reason``.

Sending an event again is harmless: the row is updated and nothing is
announced twice. Each announcement step is recorded in Postgres
(``content.announce_step``), so a process that dies between storing and
announcing leaves the rest owed to the retry, from any process; a crash right
between publishing a step and recording it repeats that one step.
"""

from __future__ import annotations

import json
import logging

import trio

from engage.actors.publisher.messages import PublishPayload
from engage.actors.ref import ActorRef, Mailbox
from engage.domain.content import ContentMeta, parse_publish_fields
from engage.errors import StoreError, ValidationError
from engage.outage import Outage
from engage.store.content_meta import ANNOUNCED, PostgresContentMeta
from engage.store.history import RedisHistory
from engage.store.publishing import DeadLetter, PublishEntry, PublishStream

log = logging.getLogger(__name__)

#: The consumer group every instance's publisher reads the stream through.
PUBLISH_GROUP = "publisher"
PUBLISHER_MAILBOX_SIZE = 1024
#: Seconds one XREADGROUP waits for new entries; well under redis-py's socket timeout.
READ_BLOCK = 1.0
#: Entries read (or claimed) per round trip.
READ_COUNT = 100
#: Back-off after a failed round, in seconds.
RETRY_MIN_DELAY = 0.2
RETRY_MAX_DELAY = 2.0  # back within 2 s of the store returning, however long it was gone
#: Least seconds between two looks for stale pending entries.
MIN_CLAIM_INTERVAL = 0.1
#: Last errors remembered for entries awaiting a retry (for dead-letter reasons).
MAX_REMEMBERED_ERRORS = 10_000


class PublisherActor:
    """Consumes the publish stream and plain ``PUBLISH`` payloads.

    Args:
        stream: the publish stream (and its dead letters).
        content_meta: where content metadata is stored.
        history: announces new content on the feeds.
        consumer: this instance's consumer name in the group.
        max_deliveries: deliveries of one entry before it is dead-lettered.
        claim_idle: seconds an entry stays unacknowledged before it is claimed.
        read_block: seconds each read waits for new entries.
    """

    def __init__(self, stream: PublishStream, content_meta: PostgresContentMeta,
                 history: RedisHistory, *, consumer: str, max_deliveries: int,
                 claim_idle: float, read_block: float = READ_BLOCK) -> None:
        self.stream = stream
        self._outage = Outage("publisher: publish stream or postgres", log)
        self.content_meta = content_meta
        self.history = history
        self.consumer = consumer
        self.group = PUBLISH_GROUP
        self.max_deliveries = max_deliveries
        self.claim_idle = claim_idle
        self.read_block = read_block
        self.mailbox = Mailbox(PUBLISHER_MAILBOX_SIZE)
        self.ref = ActorRef("publisher", self.mailbox)
        self._lock = trio.Lock()  # one event at a time: store + announce are one step
        self._errors: dict[str, str] = {}  # entry id -> last error, until settled
        self.stored = 0
        self.announced = 0
        self.dead = 0

    def statistics(self) -> dict[str, int]:
        return {"stored": self.stored, "announced": self.announced, "dead": self.dead}

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._mailbox_loop)
                task_status.started(self.ref)
                await self._stream_loop()
        finally:
            with trio.CancelScope(shield=True):
                await self.stream.aclose()  # its group connection

    # -- the stream ----------------------------------------------------------------

    async def _stream_loop(self) -> None:
        delay = RETRY_MIN_DELAY
        started = False
        claim_every = max(MIN_CLAIM_INTERVAL, self.claim_idle / 2)
        next_claim = trio.current_time()
        while True:
            try:
                if not started:
                    await self.stream.ensure_group(self.group)
                    # What this consumer read before a restart and never acknowledged.
                    await self._handle_entries(await self.stream.read(
                        self.group, self.consumer, count=READ_COUNT, block=0,
                        own_pending=True))
                    started = True
                if trio.current_time() >= next_claim:
                    next_claim = trio.current_time() + claim_every
                    await self._handle_entries(await self.stream.claim_stale(
                        self.group, self.consumer, idle=self.claim_idle, count=READ_COUNT))
                await self._handle_entries(await self.stream.read(
                    self.group, self.consumer, count=READ_COUNT, block=self.read_block))
                delay = RETRY_MIN_DELAY
                self._outage.ok()
            except StoreError as exc:
                self._outage.failed(exc)
                await trio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_DELAY)

    async def _handle_entries(self, entries: list[PublishEntry]) -> None:
        """Handle a batch, then acknowledge and dead-letter it in one round trip.

        Raises:
            StoreError: a store failed; what was handled so far is settled
                first, the rest stays pending and is claimed later.
        """
        done: list[str] = []
        dead: list[DeadLetter] = []
        failure: StoreError | None = None
        for entry in entries:
            if entry.deliveries > self.max_deliveries:
                last = self._errors.get(entry.id, "its consumers failed or died")
                dead.append(DeadLetter(entry, f"not handled after {entry.deliveries - 1} "
                                              f"deliveries: {last}"))
                log.error("publisher: giving up on publish event %s (content %r) after %d "
                          "deliveries: %s; moved to %s", entry.id, entry.fields.get("content"),
                          entry.deliveries - 1, last, self.stream.dead_key)
                continue
            try:
                meta = parse_publish_fields(entry.fields)
            except ValidationError as exc:
                dead.append(DeadLetter(entry, f"malformed: {exc.detail}"))
                log.warning("publisher: malformed publish event %s (content %r): %s; moved to %s",
                            entry.id, entry.fields.get("content"), exc.detail,
                            self.stream.dead_key)
                continue
            try:
                await self._store_and_announce(meta)
            except StoreError as exc:
                self._remember(entry.id, str(exc))
                log.warning("publisher: publish event %s (content %s) not stored, will retry: %s",
                            entry.id, meta.id, exc)
                failure = exc
                break
            done.append(entry.id)
        await self.stream.settle(self.group, done, dead)
        for letter in dead:
            self._forget(letter.entry)
        for entry_id in done:
            self._errors.pop(entry_id, None)
        self.dead += len(dead)
        if failure is not None:
            raise failure

    def _remember(self, entry_id: str, error: str) -> None:
        if len(self._errors) >= MAX_REMEMBERED_ERRORS:
            self._errors.pop(next(iter(self._errors)))
        self._errors[entry_id] = error

    def _forget(self, entry: PublishEntry) -> None:
        self._errors.pop(entry.id, None)

    # -- storing and announcing --------------------------------------------------------

    async def _store_and_announce(self, meta: ContentMeta) -> None:
        """Store ``meta``; if it is new, announce it on both feeds.

        How far the announcement got is recorded in Postgres step by step, so
        a failure (or a crash) between storing and announcing leaves the rest
        owed to the next attempt, from any process: at least once, never lost.
        """
        async with self._lock:
            step = await self.content_meta.store(meta)
            if step >= ANNOUNCED:
                return  # known content, updated: nothing to announce
            public = meta.public()
            if step == 0:
                await self.history.publish("feed:all", "published", public,
                                           log=("content.published", public))
                await self.content_meta.mark_announced(meta.id, 1)
                self.stored += 1  # new content, counted once its first step is done
            await self.history.publish(f"feed:author:{meta.author}", "published", public)
            await self.content_meta.mark_announced(meta.id, ANNOUNCED)
            self.announced += 1

    # -- plain PUBLISH (at most once) ------------------------------------------------------

    async def _mailbox_loop(self) -> None:
        async for envelope in self.mailbox.receive_channel:
            message = envelope.message
            if isinstance(message, PublishPayload):
                await self._handle_payload(message.data)
            else:
                log.error("publisher: unexpected message %r", message)

    async def _handle_payload(self, data: bytes) -> None:
        """Handle one pub/sub payload: retried in place, never acknowledged."""
        try:
            fields = _payload_fields(data)
            meta = parse_publish_fields(fields)
        except ValidationError as exc:
            log.warning("publisher: malformed PUBLISH payload %r: %s; moved to %s",
                        data[:200], exc.detail, self.stream.dead_key)
            entry = PublishEntry("", {"payload": data.decode("utf-8", "replace")})
            await self._bury(DeadLetter(entry, f"malformed: {exc.detail}"))
            return
        delay = RETRY_MIN_DELAY
        for attempt in range(1, self.max_deliveries + 1):
            try:
                await self._store_and_announce(meta)
                return
            except StoreError as exc:
                error = exc
                log.warning("publisher: PUBLISH of content %s not stored (attempt %d of %d): %s",
                            meta.id, attempt, self.max_deliveries, exc)
            if attempt < self.max_deliveries:
                await trio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_DELAY)
        self._owed.pop(meta.id, None)
        log.error("publisher: giving up on PUBLISH of content %s; moved to %s",
                  meta.id, self.stream.dead_key)
        await self._bury(DeadLetter(PublishEntry("", fields, self.max_deliveries),
                                    f"not handled after {self.max_deliveries} attempts: {error}"))

    async def _bury(self, letter: DeadLetter) -> None:
        try:
            await self.stream.settle(None, [], [letter])
        except StoreError as exc:
            log.error("publisher: dead letter lost (%s): %s", letter.reason, exc)
            return
        self.dead += 1


def _payload_fields(data: bytes) -> dict[str, str]:
    """The fields of a plain ``PUBLISH`` payload: a JSON object of strings.

    Raises:
        ValidationError: not such an object.
    """
    try:
        fields = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError(f"payload is not JSON: {exc}",
                              code="invalid_publish_event") from None
    if not isinstance(fields, dict):
        raise ValidationError("payload must be a JSON object", code="invalid_publish_event")
    return fields

