"""The notifier actor: reads the event log through the ``notifier`` consumer
group and turns events into per-user notifications.

* ``comment.created`` with a ``parent_author`` -> ``reply`` to that author
  (not for replying to oneself; not if the comment is gone by delivery:
  ``comment.deleted`` cancels it, and the comment is looked up right before).
* ``milestone`` -> ``milestone`` to the content's author.
* ``applause`` -> coalesced per (author, content) over ``coalesce_window``
  seconds into one ``applause`` notification (engage/domain/notifications.py).
* ``content.published`` -> ``new_content`` to each follower of the author.

Each notification is stored in Postgres (the durable per-user queue), then
published on the user's real-time history ``user:<id>`` (live frames and
catch-up), and only then are its events acknowledged. A crash anywhere in
between replays the events; the store's ``(user, source_event)`` uniqueness
and its ``pushed_at`` mark make the replay create and push nothing twice.

Applause events stay unacknowledged while their group is open. Another
instance takes over what a dead one left unacknowledged once it has been
idle for ``coalesce_window + CLAIM_MARGIN`` seconds; a restarted actor
re-reads its own unacknowledged events at once.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import trio

from engage import metrics
from engage.actors.notifier.messages import GetNotifierStatistics
from engage.actors.ref import ActorRef, Mailbox
from engage.domain.notifications import (
    ApplauseCoalescer,
    Draft,
    RateCap,
    milestone_draft,
    new_content_drafts,
    reply_comment_id,
    reply_draft,
    user_subject,
)
from engage.errors import StoreError
from engage.outage import Outage
from engage.store.comments import PostgresComments
from engage.store.content_meta import PostgresContentMeta
from engage.store.events import Event, EventLog
from engage.store.history import RedisHistory
from engage.store.notifications import PostgresNotifications
from engage.supervisor import shutdown_scope

log = logging.getLogger(__name__)

NOTIFIER_GROUP = "notifier"
NOTIFIER_MAILBOX_SIZE = 64
#: Events read from the log at a time.
READ_BATCH = 500
#: Longest wait for new events, in seconds (open groups and claims cut it short).
READ_BLOCK = 1.0
#: Shortest wait: a zero block would mean "forever" to Redis.
MIN_READ_BLOCK = 0.005
#: Seconds between looks for events a dead consumer left unacknowledged.
CLAIM_INTERVAL = 5.0
#: Seconds to let events gather after a read that found some (a read, its
#: handling and its ack per event cost more than the event at 100 comments/s).
READ_LINGER = 0.05
#: Seconds beyond the coalescing window before another consumer's
#: unacknowledged events count as abandoned.
CLAIM_MARGIN = 30.0
#: Back-off after a store failure, in seconds.
RETRY_MIN_DELAY = 0.5
RETRY_MAX_DELAY = 2.0  # back within 2 s of the store returning, however long it was gone
#: Seconds the "pushed" mark may take while the actor is being cancelled.
MARK_PUSHED_TIMEOUT = 5.0
#: Deleted comment ids remembered to cancel replies still in flight.
DELETED_REMEMBERED = 10_000


def _text(data: dict, key: str) -> str:
    value = data[key]
    if not isinstance(value, str) or not value:
        raise TypeError(f"{key} must be a non-empty string")
    return value


class NotifierActor:
    """Consumes the event log and delivers notifications.

    Args:
        events: the event log.
        history: per-user real-time histories (subject ``user:<id>``).
        comments: to check a reply's comment still exists before delivery.
        content_meta: who authored a content item.
        notifications: the durable per-user queues and the follow graph.
        instance_id: names this process's consumer in the group.
        coalesce_window: seconds applause on one item is gathered into one notification.
        rate_per_minute: most notifications per user per minute (0: no cap).
    """

    def __init__(self, events: EventLog, history: RedisHistory, comments: PostgresComments,
                 content_meta: PostgresContentMeta, notifications: PostgresNotifications, *,
                 instance_id: str, coalesce_window: float, rate_per_minute: int) -> None:
        self.events = events
        self._outage = Outage("notifier: event log or postgres", log)
        self.history = history
        self.comments = comments
        self.content_meta = content_meta
        self.notifications = notifications
        self.consumer = f"notifier-{instance_id}"
        self.coalesce_window = coalesce_window
        self.rate_per_minute = rate_per_minute
        self.claim_idle = coalesce_window + CLAIM_MARGIN
        self.mailbox = Mailbox(NOTIFIER_MAILBOX_SIZE)
        self.ref = ActorRef("notifier", self.mailbox)
        self._coalescer = ApplauseCoalescer(coalesce_window)
        self._rate = RateCap(rate_per_minute)
        self._deleted: dict[int, None] = {}  # insertion-ordered, bounded
        self.counters = {"events": 0, "acked": 0, "delivered": 0, "rate_cap": 0,
                         "comment_gone": 0, "malformed": 0}

    def statistics(self) -> dict[str, Any]:
        return {**self.counters, "open_groups": len(self._coalescer),
                "held_events": self._coalescer.held_events}

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        # A restart starts from what the log says: open groups are rebuilt from
        # this consumer's unacknowledged events.
        self._coalescer = ApplauseCoalescer(self.coalesce_window)
        self._rate = RateCap(self.rate_per_minute)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._mailbox_loop)
                task_status.started(self.ref)
                await self._consume()
        finally:
            # Deliver what is gathered rather than leave it for a claim later.
            with shutdown_scope() as scope:
                try:
                    await self._deliver_groups(self._coalescer.due(math.inf))
                except StoreError as exc:
                    log.warning("notifier: open applause groups left for replay: %s", exc)
            if scope.cancelled_caught:
                log.warning("notifier: final delivery overran; the rest will be replayed")

    async def _mailbox_loop(self) -> None:
        async for envelope in self.mailbox.receive_channel:
            message = envelope.message
            if isinstance(message, GetNotifierStatistics):
                if envelope.reply is not None:
                    envelope.reply.set(self.statistics())
            else:
                log.error("notifier: unexpected message %r", message)
                if envelope.reply is not None:
                    envelope.reply.fail(TypeError(f"notifier cannot handle {message!r}"))

    # -- the consumer loop -------------------------------------------------------------

    async def _consume(self) -> None:
        delay = RETRY_MIN_DELAY
        recovered = False
        next_claim = trio.current_time()
        while True:
            try:
                if not recovered:
                    await self.events.ensure_group(NOTIFIER_GROUP)
                    await self._recover()
                    recovered = True
                now = trio.current_time()
                if now >= next_claim:
                    next_claim = now + CLAIM_INTERVAL
                    self._rate.sweep(now)
                    await self._handle(await self.events.claim_stale(
                        NOTIFIER_GROUP, self.consumer, idle=self.claim_idle, count=READ_BATCH))
                batch = await self.events.read(NOTIFIER_GROUP, self.consumer, count=READ_BATCH,
                                               block=self._block(next_claim))
                await self._handle(batch)
                await self._deliver_groups(self._coalescer.due(trio.current_time()))
                delay = RETRY_MIN_DELAY
                self._outage.ok()
                if 0 < len(batch) < READ_BATCH:
                    await trio.sleep(READ_LINGER)
            except StoreError as exc:
                # What was read but not acknowledged is read again on recovery.
                self._outage.failed(exc)
                recovered = False
                await trio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_DELAY)

    def _block(self, next_claim: float) -> float:
        due = self._coalescer.next_due()
        until = min(next_claim, math.inf if due is None else due) - trio.current_time()
        return min(READ_BLOCK, max(MIN_READ_BLOCK, until))

    async def _recover(self) -> None:
        """Handle again every event this consumer read and did not acknowledge."""
        self._coalescer.clear()
        after = "0"
        while True:
            page = await self.events.read(NOTIFIER_GROUP, self.consumer, count=READ_BATCH,
                                          block=0, own_pending=True, after=after)
            if not page:
                return
            after = page[-1].id
            await self._handle(page)

    # -- events -> drafts ----------------------------------------------------------------

    async def _handle(self, events: list[Event]) -> None:
        """Turn ``events`` into notifications; acknowledge all but open applause."""
        if not events:
            return
        self.counters["events"] += len(events)
        for event in events:
            if event.type == "comment.deleted":
                self._remember_deleted(event.data.get("comment_id"))
        drafts: list[Draft] = []
        done: list[str] = []
        authors: dict[str, tuple[str | None, str | None]] = {}
        for event in events:
            held = False
            try:
                if event.type == "comment.created":
                    draft = reply_draft(event.id, event.data)
                    if draft is not None:
                        drafts.append(draft)
                elif event.type == "milestone":
                    author, title = await self._author(_text(event.data, "content"), authors)
                    draft = milestone_draft(event.id, event.data, author, title)
                    if draft is not None:
                        drafts.append(draft)
                elif event.type == "applause":
                    held = await self._gather(event, authors)
                elif event.type == "content.published":
                    followers = await self.notifications.followers(_text(event.data, "author"))
                    drafts.extend(new_content_drafts(event.id, event.data, followers))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                self.counters["malformed"] += 1
                log.error("notifier: skipping malformed %s event %s: %r", event.type, event.id,
                          exc)
            if not held:
                done.append(event.id)
        await self._deliver(drafts, done)

    async def _gather(self, event: Event, authors: dict) -> bool:
        """Add an applause event to its group; True if it is held there."""
        content = _text(event.data, "content")
        user = _text(event.data, "user")
        claps = int(event.data["added"])
        author, title = await self._author(content, authors)
        if author is None or author == user or claps <= 0:
            return False
        self._coalescer.add(recipient=author, content=content, user=user, claps=claps,
                            event_id=event.id, now=trio.current_time(), title=title)
        return True

    async def _author(self, content_id: str,
                      cache: dict[str, tuple[str | None, str | None]]) -> tuple[str | None, str | None]:
        if content_id not in cache:
            meta = await self.content_meta.get(content_id)
            cache[content_id] = (meta.author, meta.title) if meta else (None, None)
        return cache[content_id]

    def _remember_deleted(self, comment_id: Any) -> None:
        try:
            cid = int(comment_id)
        except (TypeError, ValueError):
            return
        self._deleted[cid] = None
        while len(self._deleted) > DELETED_REMEMBERED:
            del self._deleted[next(iter(self._deleted))]

    # -- delivery ----------------------------------------------------------------------------

    async def _deliver_groups(self, groups: list) -> None:
        if groups:
            await self._deliver([g.draft() for g in groups],
                                [i for g in groups for i in g.event_ids])

    async def _deliver(self, drafts: list[Draft], done: list[str]) -> None:
        """Store, push, then acknowledge ``done``: the events these drafts came from."""
        now = trio.current_time()
        allowed: list[Draft] = []
        for draft in drafts:
            if draft.kind == "reply" and not await self._comment_alive(reply_comment_id(draft)):
                self._skip(draft, "comment_gone")
            elif not self._rate.allow(draft.user, now):
                self._skip(draft, "rate_cap")
            else:
                allowed.append(draft)
        try:
            fresh = await self.notifications.add(allowed)
        except StoreError:
            for draft in allowed:  # nothing was stored: the replay may use the budget
                self._rate.give_back(draft.user)
            raise
        pushed: list[int] = []
        try:
            for notification in fresh:
                await self.history.publish(user_subject(notification.user), "notification",
                                           notification.public())
                pushed.append(notification.id)
                metrics.NOTIFICATIONS.labels(notification.kind).inc()
        finally:
            # Whatever reached the history is not pushed again on a replay.
            if pushed:
                with trio.CancelScope(shield=True,
                                      deadline=trio.current_time() + MARK_PUSHED_TIMEOUT):
                    await self.notifications.mark_pushed(pushed)
        self.counters["delivered"] += len(pushed)
        await self.events.ack(NOTIFIER_GROUP, done)
        self.counters["acked"] += len(done)

    async def _comment_alive(self, comment_id: int) -> bool:
        if comment_id in self._deleted:
            return False
        comment = await self.comments.get(comment_id)
        return comment is not None and comment.visible  # not deleted, held or hidden

    def _skip(self, draft: Draft, reason: str) -> None:
        self.counters[reason] += 1
        metrics.NOTIFICATIONS_SKIPPED.labels(draft.kind, reason).inc()
        log.debug("notifier: no %s notification for %s (%s)", draft.kind, draft.user, reason)
