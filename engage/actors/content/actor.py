"""The content actor: the one place in this process that changes an item.

It is started on first use and passivates after ``idle_timeout`` seconds
without a message. All interactions queued for the item while one Redis write
is in flight are applied together in the next (group commit), so a hot item
costs one Redis script call per round trip, not one per click. Subscribers
hear of new counts at most once per ``counts_interval``, however hot it is.

Comments are durable before they are visible: Postgres first, then the item's
history of recent events in Redis (which is its buffer of recent comments,
shared by every process), then pub/sub, in one atomic script.

Several processes may each run an actor for the same item; Redis is where they
meet, and every change there is an atomic script, so they stay exact.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timezone
from typing import Callable

import trio

from engage import metrics
from engage.actors.content.messages import (DeleteComment, EditComment, GetCounts, Interact,
                                            PostComment)
from engage.actors.mirror.messages import Apply, Hydrate, PublishCounts, ReadCounts
from engage.actors.ref import ActorRef, Envelope, Mailbox
from engage.domain import Counts, Op
from engage.domain.comments import Comment, check_can_change
from engage.errors import ActorError, ClientError, NotFound, StoreError
from engage.store.comments import CommentStore
from engage.store.history import RedisHistory
from engage.store.protocols import ApplyOutcome, CounterDatabase

log = logging.getLogger(__name__)

CONTENT_MAILBOX_SIZE = 512
#: Most messages folded into one Redis write.
CONTENT_MAX_BATCH = 512
#: Seconds the actor waits on the mirror actor before failing the request.
MIRROR_TIMEOUT = 10.0
#: Reload-and-retry attempts when Redis turns out to have lost the item.
LOAD_ATTEMPTS = 3


class ContentActor:
    """Owns one content item: counters, comments, and what subscribers hear.

    Args:
        content_id: the item.
        mailbox: outlives restarts of this actor.
        mirror: the Redis group-commit writer.
        database: for reloading an item that Redis lost.
        comments: comment storage.
        history: the item's event history and channel.
        idle_timeout: seconds without messages before passivating.
        counts_interval: least seconds between two counts publications.
        edit_window: seconds an author may edit or delete a comment.
        passivate: called (synchronously) to release this id from the registry.
        after: an earlier incarnation's ``finished`` event to wait for, so
            messages it drained while passivating are applied first.
    """

    def __init__(self, content_id: str, mailbox: Mailbox, *, mirror: ActorRef,
                 database: CounterDatabase, comments: CommentStore, history: RedisHistory,
                 idle_timeout: float, counts_interval: float, edit_window: float,
                 passivate: Callable[[str], None], after: trio.Event | None = None) -> None:
        self.content_id = content_id
        self.subject = f"content:{content_id}"
        self.mailbox = mailbox
        self.ref = ActorRef(f"content:{content_id}", mailbox)
        self.mirror = mirror
        self.database = database
        self.comments = comments
        self.history = history
        self.idle_timeout = idle_timeout
        self.counts_interval = counts_interval
        self.edit_window = edit_window
        self._passivate = passivate
        self._after = after
        self._counts_dirty = False
        self._next_publish = 0.0
        self.finished = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started(self.ref)
        metrics.CONTENT_ACTORS.inc()
        try:
            if self._after is not None:
                await self._after.wait()
            await self._loop()
        finally:
            metrics.CONTENT_ACTORS.dec()
            self.finished.set()

    async def _loop(self) -> None:
        receive = self.mailbox.receive_channel
        idle_until = trio.current_time() + self.idle_timeout
        while True:
            wake = min(idle_until, self._next_publish) if self._counts_dirty else idle_until
            first: Envelope | None = None
            with trio.move_on_at(wake):
                first = await receive.receive()
            if first is not None:
                await self._handle([first, *self.mailbox.drain_nowait(CONTENT_MAX_BATCH - 1)])
                idle_until = trio.current_time() + self.idle_timeout
            if self._counts_dirty and trio.current_time() >= self._next_publish:
                self._publish_counts()
            if first is None and not self._counts_dirty and trio.current_time() >= idle_until:
                break
        # Idle: leave the registry first, so new messages start a fresh actor,
        # then take whatever was already queued. No await between the two, so
        # nothing can slip through.
        self._passivate(self.content_id)
        leftovers = self.mailbox.drain_nowait()
        self.mailbox.close()
        if leftovers:
            await self._handle(leftovers)
            if self._counts_dirty:
                self._publish_counts()

    def _publish_counts(self) -> None:
        self._counts_dirty = False
        self._next_publish = trio.current_time() + self.counts_interval
        try:
            self.mirror.tell_nowait(PublishCounts(self.content_id))
        except ActorError as exc:
            log.warning("content %s: counts not published: %s", self.content_id, exc)

    async def _handle(self, batch: list[Envelope]) -> None:
        interacts = [e for e in batch if isinstance(e.message, Interact)]
        if interacts:
            await self._guard(interacts, self._interact(interacts))
        for envelope in batch:
            message = envelope.message
            if isinstance(message, Interact):
                continue
            if isinstance(message, GetCounts):
                await self._guard([envelope], self._reply(envelope, self._counts()))
            elif isinstance(message, (PostComment, EditComment, DeleteComment)):
                await self._guard([envelope], self._reply(envelope, self._comment(message)))
            else:
                log.error("content %s: unexpected message %r", self.content_id, message)
                if envelope.reply is not None:
                    envelope.reply.fail(TypeError(f"content actor cannot handle {message!r}"))

    async def _guard(self, envelopes: list[Envelope], work) -> None:
        """Run ``work``; on failure, fail the waiting askers. Crash only on bugs."""
        try:
            await work
        except Exception as exc:
            for envelope in envelopes:
                if envelope.reply is not None:
                    envelope.reply.fail(exc)
            if not isinstance(exc, (StoreError, ActorError, ClientError)):
                raise  # a bug: crash, and let the supervisor restart us

    @staticmethod
    async def _reply(envelope: Envelope, work) -> None:
        result = await work
        if envelope.reply is not None:
            envelope.reply.set(result)

    # -- counters -----------------------------------------------------------------

    async def _interact(self, envelopes: list[Envelope]) -> None:
        ops: list[Op] = []
        for envelope in envelopes:
            ops.extend(envelope.message.ops)
        outcome = await self._apply(tuple(ops))
        assert outcome.results is not None
        start = 0
        for envelope in envelopes:
            end = start + len(envelope.message.ops)
            if envelope.reply is not None:
                envelope.reply.set(outcome.results[start:end])
            start = end
        for kind, count in Counter(op.kind for op in ops).items():
            metrics.INTERACTIONS.labels(kind).inc(count)
        self._counts_dirty = True

    async def _apply(self, ops: tuple[Op, ...]) -> ApplyOutcome:
        for _ in range(LOAD_ATTEMPTS):
            outcome = await self.mirror.ask(Apply(self.content_id, ops), MIRROR_TIMEOUT)
            if not outcome.needs_load:
                return outcome
            await self._load()
        raise StoreError(f"content {self.content_id}: redis keeps losing it")

    async def _counts(self) -> Counts:
        for _ in range(LOAD_ATTEMPTS):
            counts = await self.mirror.ask(ReadCounts(self.content_id), MIRROR_TIMEOUT)
            if counts is not None:
                return counts
            await self._load()
        raise StoreError(f"content {self.content_id}: redis keeps losing it")

    async def _load(self) -> None:
        """Refill Redis from Postgres: the cache was wiped or the item is new here."""
        snapshot = await self.database.load(self.content_id)
        installed = await self.mirror.ask(Hydrate(self.content_id, snapshot), MIRROR_TIMEOUT)
        log.debug("content %s: loaded from postgres (installed=%s)", self.content_id, installed)

    # -- comments -------------------------------------------------------------------

    async def _comment(self, message) -> Comment:
        if isinstance(message, PostComment):
            comment = await self.comments.create(self.content_id, message.author, message.body,
                                                 message.parent)
            event, delta = "comment", 1
            parent = await self.comments.get(comment.parent) if comment.parent else None
            log = ("comment.created", {"content": self.content_id, "comment": comment.public(),
                                       "parent_author": parent.author if parent else None})
        else:
            current = await self.comments.get(message.comment_id)
            if current is None or current.deleted or current.content_id != self.content_id:
                raise NotFound(f"comment {message.comment_id} does not exist",
                               code="comment_not_found")
            check_can_change(current, message.user, datetime.now(timezone.utc), self.edit_window)
            if isinstance(message, EditComment):
                comment = await self.comments.edit(message.comment_id, message.body)
                event, delta = "comment_updated", 0
                log = None
            else:
                comment = await self.comments.delete(message.comment_id)
                event, delta = "comment_deleted", -1
                log = ("comment.deleted", {"content": self.content_id,
                                           "comment_id": str(comment.id)})
        payload = comment.public()
        if event == "comment_deleted":  # a deleted body is not spread any further
            payload = {"id": payload["id"], "parent": payload["parent"]}
        await self.history.publish(self.subject, event, payload, content_id=self.content_id,
                                   comment_delta=delta, log=log)
        self._counts_dirty = delta != 0 or self._counts_dirty
        return comment
