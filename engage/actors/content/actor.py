"""The content actor: the one place in this process that changes an item.

It is started on first use and passivates after ``idle_timeout`` seconds
without a message. All interactions queued for the item while one Redis write
is in flight are applied together in the next (group commit), so a hot item
costs one Redis script call per round trip, not one per click.

Several processes may each run an actor for the same item; Redis is where they
meet, and every change there is an atomic script, so they stay exact.
"""

from __future__ import annotations

import logging
from typing import Callable

import trio

from engage import metrics
from engage.actors.content.messages import GetCounts, Interact
from engage.actors.mirror.messages import Apply, Hydrate, ReadCounts
from engage.actors.ref import ActorRef, Envelope, Mailbox
from engage.domain import Counts, Op
from engage.errors import ActorError, StoreError
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
    """Owns one content item's counters.

    Args:
        content_id: the item.
        mailbox: outlives restarts of this actor.
        mirror: the Redis group-commit writer.
        database: for reloading an item that Redis lost.
        idle_timeout: seconds without messages before passivating.
        passivate: called (synchronously) to release this id from the registry.
        after: an earlier incarnation's ``finished`` event to wait for, so
            messages it drained while passivating are applied first.
    """

    def __init__(self, content_id: str, mailbox: Mailbox, *, mirror: ActorRef,
                 database: CounterDatabase, idle_timeout: float,
                 passivate: Callable[[str], None], after: trio.Event | None = None) -> None:
        self.content_id = content_id
        self.mailbox = mailbox
        self.ref = ActorRef(f"content:{content_id}", mailbox)
        self.mirror = mirror
        self.database = database
        self.idle_timeout = idle_timeout
        self._passivate = passivate
        self._after = after
        self.finished = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started(self.ref)
        metrics.CONTENT_ACTORS.inc()
        try:
            if self._after is not None:
                await self._after.wait()
            receive = self.mailbox.receive_channel
            while True:
                first: Envelope | None = None
                with trio.move_on_after(self.idle_timeout):
                    first = await receive.receive()
                if first is not None:
                    await self._handle([first, *self.mailbox.drain_nowait(CONTENT_MAX_BATCH - 1)])
                    continue
                # Idle: leave the registry first, so new messages start a fresh
                # actor, then take whatever was already queued. No await between
                # the two, so nothing can slip through.
                self._passivate(self.content_id)
                leftovers = self.mailbox.drain_nowait()
                self.mailbox.close()
                if leftovers:
                    await self._handle(leftovers)
                return
        finally:
            metrics.CONTENT_ACTORS.dec()
            self.finished.set()

    async def _handle(self, batch: list[Envelope]) -> None:
        interacts = [e for e in batch if isinstance(e.message, Interact)]
        reads = [e for e in batch if isinstance(e.message, GetCounts)]
        try:
            if interacts:
                await self._interact(interacts)
            if reads:
                counts = await self._counts()
                for envelope in reads:
                    envelope.reply and envelope.reply.set(counts)
        except Exception as exc:
            for envelope in batch:
                if envelope.reply is not None:
                    envelope.reply.fail(exc)
            if not isinstance(exc, (StoreError, ActorError)):
                raise  # a bug: crash, and let the supervisor restart us

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
        for op in ops:
            metrics.INTERACTIONS.labels(op.kind).inc()

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
