"""Finds or starts the content actor for an id.

Content actors are children of a :class:`~engage.supervisor.DynamicSupervisor`
keyed by content id. Each id's mailbox is made once per incarnation and kept
across crash restarts, so queued messages survive a crash; a passivated
actor's mailbox is closed, and a caller that raced with it just asks again.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import trio

from engage.actors.content.actor import CONTENT_MAILBOX_SIZE, ContentActor
from engage.actors.ref import DEFAULT_ASK_TIMEOUT, ActorRef, Callback, Mailbox, Reply
from engage.errors import ActorDeadError
from engage.store.comments import CommentStore
from engage.store.history import RedisHistory
from engage.store.moderation import PostgresModeration
from engage.store.ratelimit import RedisRateLimiter
from engage.store.protocols import CounterDatabase
from engage.supervisor import DynamicSupervisor

#: How often a caller retries after finding the actor it had just passivated.
DEAD_RETRIES = 5


class ContentDirectory:
    """The registry of content actors in this process.

    Args:
        mirror: the mirror actor's ref, handed to every content actor.
        database, comments, history, moderation, limiter: the stores each content
            actor uses.
        idle_timeout, counts_interval, edit_window: see :class:`ContentActor`.
        max_children: most content actors at once.
        shutdown: seconds each actor gets to finish on stop.
    """

    def __init__(self, *, mirror: ActorRef, database: CounterDatabase, comments: CommentStore,
                 history: RedisHistory, idle_timeout: float, counts_interval: float,
                 edit_window: float, max_children: int, shutdown: float = 5.0,
                 moderation: PostgresModeration | None = None,
                 limiter: RedisRateLimiter | None = None) -> None:
        self.mirror = mirror
        self._actor_options = dict(mirror=mirror, database=database, comments=comments,
                                   history=history, moderation=moderation, limiter=limiter,
                                   idle_timeout=idle_timeout,
                                   counts_interval=counts_interval, edit_window=edit_window)
        self.supervisor = DynamicSupervisor(
            name="content", max_children=max_children, restart="transient", shutdown=shutdown,
            max_restarts=100, max_seconds=10.0)
        self._finishing: dict[str, trio.Event] = {}
        self._passivations = 0

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.supervisor.run)
            task_status.started(self)

    def __len__(self) -> int:
        return len(self.supervisor)

    def statistics(self) -> dict[str, int]:
        return {**self.supervisor.statistics(), "passivations": self._passivations}

    async def ref(self, content_id: str) -> ActorRef:
        """The running actor for ``content_id``, started if need be."""
        ref = self.supervisor.lookup(content_id)
        if ref is not None:
            return ref
        mailbox = Mailbox(CONTENT_MAILBOX_SIZE)
        return await self.supervisor.start_child(
            content_id, partial(self._run_actor, content_id, mailbox))

    async def ask(self, content_id: str, message: Any, timeout: float = DEFAULT_ASK_TIMEOUT) -> Any:
        """Ask the item's actor, following it across a passivation."""
        reply = await self.request(content_id, message)
        return await reply.get(timeout)

    async def request(self, content_id: str, message: Any,
                      reply: Reply | Callback | None = None) -> Reply | Callback:
        """Deliver ``message`` to the item's actor and return the reply slot
        (``reply`` if given, such as a :class:`Callback`)."""
        for _ in range(DEAD_RETRIES):
            ref = await self.ref(content_id)
            try:
                return await ref.request(message, reply)
            except ActorDeadError:
                continue  # it passivated between lookup and send; the next one is fresh
        raise ActorDeadError(f"content:{content_id}")

    async def _run_actor(self, content_id: str, mailbox: Mailbox, *,
                         task_status: trio.TaskStatus) -> None:
        actor = ContentActor(content_id, mailbox, passivate=self._passivate,
                             after=self._finishing.get(content_id), **self._actor_options)
        self._finishing[content_id] = actor.finished
        try:
            await actor.run(task_status=task_status)
        finally:
            if self._finishing.get(content_id) is actor.finished:
                del self._finishing[content_id]

    def _passivate(self, content_id: str) -> None:
        self._passivations += 1
        self.supervisor.release(content_id)
