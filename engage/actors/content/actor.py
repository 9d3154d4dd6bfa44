"""The content actor: the one place in this process that changes an item.

It is started on first use and passivates after ``idle_timeout`` seconds
without a message. All interactions queued for the item while one Redis write
is in flight are applied together in the next (group commit), so a hot item
costs one Redis script call per round trip, not one per click. Subscribers
hear of new counts at most once per ``counts_interval``, however hot it is.

Comments are durable before they are visible: Postgres first, then the item's
history of recent events in Redis (which is its buffer of recent comments,
shared by every process), then pub/sub, in one atomic script. A comment the
moderation screen holds (engage/domain/moderation.py) is stored but published
only once a moderator approves it; every moderation change of a comment's
visibility is a message to this actor, so it is ordered with new comments.

Several processes may each run an actor for the same item; Redis is where they
meet, and every change there is an atomic script, so they stay exact.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from datetime import datetime, timezone
from typing import Callable

import trio

from engage import metrics
from engage.actors.content.messages import (MODERATION_ACTIONS, ApproveComment, DeleteComment,
                                            DeleteUserComments, EditComment, GetCounts,
                                            HideComment, Interact, PostComment, RejectComment,
                                            RestoreComment)
from engage.actors.mirror.messages import Apply, Hydrate, PublishCounts, ReadCounts
from engage.actors.ref import ActorRef, Envelope, Mailbox
from engage.domain import Counts, Op
from engage.domain.counters import OpResult
from engage.domain.comments import Comment, check_can_change, check_can_delete
from engage.domain.moderation import (DELETED, HELD, VISIBLE, Standing, Verdict,
                                      check_not_banned, check_not_blocked, live_effect, screen,
                                      transition)
from engage.errors import ActorError, ClientError, Conflict, NotFound, StoreError
from engage.store.comments import CommentStore
from engage.store.history import RedisHistory
from engage.store.moderation import PostgresModeration
from engage.store.ratelimit import RedisRateLimiter, refusal
from engage.store.protocols import ApplyOutcome, CounterDatabase

log = logging.getLogger(__name__)

CONTENT_MAILBOX_SIZE = 512
#: Most messages folded into one Redis write.
CONTENT_MAX_BATCH = 512
#: Seconds the actor waits on the mirror actor before failing the request.
MIRROR_TIMEOUT = 10.0
#: Reload-and-retry attempts when Redis turns out to have lost the item.
LOAD_ATTEMPTS = 3
#: Messages about comments, each handled on its own in arrival order.
COMMENT_MESSAGES = (PostComment, EditComment, DeleteComment, ApproveComment, RejectComment,
                    HideComment, RestoreComment, DeleteUserComments)


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
        moderation: bans, trusted commenters and the screening policy;
            ``None``: no screening, no bans (actor tests).
        limiter: checks the comment limits :class:`PostComment` carries.
    """

    def __init__(self, content_id: str, mailbox: Mailbox, *, mirror: ActorRef,
                 database: CounterDatabase, comments: CommentStore, history: RedisHistory,
                 idle_timeout: float, counts_interval: float, edit_window: float,
                 passivate: Callable[[str], None], after: trio.Event | None = None,
                 moderation: PostgresModeration | None = None,
                 limiter: RedisRateLimiter | None = None) -> None:
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
        self.moderation = moderation
        self.limiter = limiter
        self._counts_dirty = False
        self._next_publish = 0.0
        #: The item's counts as Redis last told us, and when (``trio.current_time()``).
        self._known: Counts | None = None
        self._known_at = -math.inf
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
        posts: list[Envelope] = []  # a run of new comments, handled together
        for envelope in batch:
            message = envelope.message
            if isinstance(message, Interact):
                continue
            if isinstance(message, PostComment):
                posts.append(envelope)
                continue
            if posts:
                await self._guard(posts, self._post_many(posts))
                posts = []
            if isinstance(message, GetCounts):
                await self._guard([envelope], self._reply(envelope, self._counts()))
            elif isinstance(message, COMMENT_MESSAGES):
                self._known = None  # the comment count may change: read it afresh
                await self._guard([envelope], self._reply(envelope, self._comment(message)))
            else:
                log.error("content %s: unexpected message %r", self.content_id, message)
                if envelope.reply is not None:
                    envelope.reply.fail(TypeError(f"content actor cannot handle {message!r}"))
        if posts:
            self._known = None
            await self._guard(posts, self._post_many(posts))

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
        self._remember(outcome)
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

    def _remember(self, outcome: ApplyOutcome) -> None:
        """Keep the totals Redis answered the last applied op with."""
        for result in reversed(outcome.results or ()):
            if isinstance(result, OpResult):
                self._known = Counts(result.views, outcome.unique_viewers, result.likes,
                                     result.applause, outcome.comments)
                self._known_at = trio.current_time()
                return

    async def _counts(self) -> Counts:
        """The item's counts: from memory when Redis told us within
        ``counts_interval`` (what this instance did is always in; another
        instance's changes show within that time), else read from Redis."""
        if self._known is not None and \
                trio.current_time() - self._known_at <= self.counts_interval:
            return self._known
        for _ in range(LOAD_ATTEMPTS):
            counts = await self.mirror.ask(ReadCounts(self.content_id), MIRROR_TIMEOUT)
            if counts is not None:
                self._known, self._known_at = counts, trio.current_time()
                return counts
            await self._load()
        raise StoreError(f"content {self.content_id}: redis keeps losing it")

    async def _load(self) -> None:
        """Refill Redis from Postgres: the cache was wiped or the item is new here."""
        snapshot = await self.database.load(self.content_id)
        installed = await self.mirror.ask(Hydrate(self.content_id, snapshot), MIRROR_TIMEOUT)
        log.debug("content %s: loaded from postgres (installed=%s)", self.content_id, installed)

    # -- comments -------------------------------------------------------------------
    #
    # Every change to a comment's visibility happens here, in the item's order:
    # a comment that becomes visible is published as "comment" (counted, and
    # announced to notifications and webhooks when it is new or approved); one
    # that stops being visible is published as "comment_deleted" (uncounted,
    # and "comment.deleted" cancels any reply notification still in flight).
    # Held, hidden and rejected comments are never published.

    async def _comment(self, message) -> Comment | int:
        if isinstance(message, EditComment):
            return await self._edit(message)
        if isinstance(message, DeleteComment):
            return await self._delete(message)
        if isinstance(message, DeleteUserComments):
            return await self._delete_user(message)
        return await self._moderate(message, MODERATION_ACTIONS[type(message)])

    async def _post_many(self, envelopes: list[Envelope]) -> None:
        """Post a run of new comments: one query for their authors' standing,
        one crossing to store them, one pipeline to publish them, however many
        there are (a hot item's comments no longer queue behind each other's
        round trips). Each is screened, stored and answered on its own; a
        refusal fails only its own asker."""
        envelopes, messages = await self._within_limits(envelopes)
        if not envelopes:
            return
        standings = (await self.moderation.standings([m.author for m in messages])
                     if self.moderation is not None else {})
        now = datetime.now(timezone.utc)
        rows, accepted = [], []
        for envelope, message in zip(envelopes, messages):
            try:
                verdict = self._verdict(standings.get(message.author, Standing()),
                                        message.body, now)
            except ClientError as exc:
                envelope.refuse(exc)
                continue
            rows.append((message.author, message.body, message.parent, verdict.status))
            accepted.append(envelope)
        if not rows:
            return
        created = await self.comments.create_many(self.content_id, rows)
        events, answers = [], []
        for envelope, result in zip(accepted, created):
            if isinstance(result, ClientError):
                envelope.refuse(result)
                continue
            comment, parent_author = result
            if comment.visible:
                events.append((self.subject, "comment", comment.public(), self.content_id, 1,
                               self._created(comment, parent_author)))
            answers.append((envelope, comment))
        if events:
            await self.history.publish_many(events)
            self._counts_dirty = True
        for envelope, comment in answers:
            envelope.answer(comment)

    async def _within_limits(self, envelopes: list[Envelope]
                             ) -> tuple[list[Envelope], list[PostComment]]:
        """The posts within their rate limits (one Redis call for the whole run);
        the others are refused with 429."""
        messages: list[PostComment] = [e.message for e in envelopes]
        if self.limiter is None or not any(m.limits for m in messages):
            return envelopes, messages
        decisions = await self.limiter.check_many([m.limits for m in messages])
        kept: tuple[list[Envelope], list[PostComment]] = ([], [])
        for envelope, message, decision in zip(envelopes, messages, decisions):
            if decision.allowed:
                kept[0].append(envelope)
                kept[1].append(message)
            else:
                envelope.refuse(refusal(decision, "comment"))
        return kept

    async def _edit(self, message: EditComment) -> Comment:
        current = await self._current(message.comment_id)
        check_can_change(current, message.user, datetime.now(timezone.utc), self.edit_window)
        transition(current.state, "edit")
        verdict = await self._screen(message.user, message.body)
        # A held comment stays held until a moderator decides, whatever its new text.
        status = HELD if current.status == HELD or verdict.action == "hold" else VISIBLE
        comment = await self.comments.edit(message.comment_id, message.body,
                                           expected=current.status, status=status)
        if comment is None:
            raise Conflict(f"comment {message.comment_id} was moderated meanwhile; retry",
                           code="invalid_transition")
        if current.status == VISIBLE and comment.status == VISIBLE:
            await self._publish("comment_updated", comment.public(), 0, None)
        elif current.status == VISIBLE:
            await self._disappeared(comment)
        return comment

    async def _delete(self, message: DeleteComment) -> Comment:
        current = await self._current(message.comment_id)
        check_can_delete(current, message.user, datetime.now(timezone.utc), self.edit_window,
                         moderator=message.moderator)
        comment = await self.comments.delete(message.comment_id)
        if comment.status == VISIBLE:  # the status it had when deleted
            await self._disappeared(comment)
        return comment

    async def _delete_user(self, message: DeleteUserComments) -> int:
        deleted = await self.comments.delete_by_author(self.content_id, message.user)
        for comment in deleted:
            if comment.status == VISIBLE:
                await self._disappeared(comment)
        if deleted:
            log.info("content %s: %s deleted %d comments of %s", self.content_id,
                     message.moderator, len(deleted), message.user)
        return len(deleted)

    async def _moderate(self, message, action: str) -> Comment:
        current = await self.comments.get(message.comment_id)
        if current is None or current.content_id != self.content_id:
            raise NotFound(f"comment {message.comment_id} does not exist",
                           code="comment_not_found")
        target = transition(current.state, action)
        comment = await self.comments.set_status(message.comment_id, current.status, target,
                                                 message.moderator, trust=action == "approve")
        if comment is None:  # another process moderated it between our read and write
            latest = await self.comments.get(message.comment_id)
            transition(DELETED if latest is None else latest.state, action)
            raise Conflict(f"comment {message.comment_id} was moderated meanwhile; retry",
                           code="invalid_transition")
        effect = live_effect(current.status, target)
        if effect == "comment":
            await self._appeared(comment, announce=action == "approve")
        elif effect == "comment_deleted":
            await self._disappeared(comment)
        return comment

    async def _current(self, comment_id: int) -> Comment:
        current = await self.comments.get(comment_id)
        if current is None or current.deleted or current.content_id != self.content_id:
            raise NotFound(f"comment {comment_id} does not exist", code="comment_not_found")
        return current

    async def _screen(self, user: str, body: str) -> Verdict:
        """Refuse banned users and blocked words; say whether to hold the comment."""
        if self.moderation is None:
            return Verdict("publish", "clean")
        standing = await self.moderation.standing(user)
        return self._verdict(standing, body, datetime.now(timezone.utc))

    def _verdict(self, standing: Standing, body: str, now: datetime) -> Verdict:
        if self.moderation is None:
            return Verdict("publish", "clean")
        check_not_banned(standing, now)
        verdict = screen(self.moderation.policy, body, trusted=standing.trusted)
        check_not_blocked(verdict)
        return verdict

    async def _appeared(self, comment: Comment, *, announce: bool) -> None:
        """Publish a comment that has become visible; ``announce`` it as created."""
        event_log = None
        if announce:
            parent = await self.comments.get(comment.parent) if comment.parent else None
            event_log = self._created(comment, parent.author if parent else None)
        await self._publish("comment", comment.public(), 1, event_log)

    def _created(self, comment: Comment, parent_author: str | None) -> tuple[str, dict]:
        """The event-log entry announcing a comment (notifications, webhooks)."""
        return ("comment.created", {"content": self.content_id, "comment": comment.public(),
                                    "parent_author": parent_author})

    async def _disappeared(self, comment: Comment) -> None:
        """Take a comment that was visible out of live views (its body is not
        spread any further) and cancel notifications still owed for it."""
        await self._publish("comment_deleted",
                            {"id": str(comment.id),
                             "parent": None if comment.parent is None else str(comment.parent)},
                            -1, ("comment.deleted", {"content": self.content_id,
                                                     "comment_id": str(comment.id)}))

    async def _publish(self, event: str, payload: dict, delta: int,
                       event_log: tuple[str, dict] | None) -> None:
        await self.history.publish(self.subject, event, payload, content_id=self.content_id,
                                   comment_delta=delta, log=event_log)
        self._counts_dirty = delta != 0 or self._counts_dirty
