"""The mirror actor: group commit of counter changes into Redis.

Every content actor in the process asks this one actor to apply its ops. While
one pipeline is in flight the next requests queue up, and the whole queue goes
out as the next pipeline: one bridge crossing and one Redis round trip for
many items, however many requests arrive.
"""

from __future__ import annotations

import logging

import trio

from engage import metrics
from engage.actors.mirror.messages import Apply, Hydrate, PublishCounts, ReadCounts
from engage.actors.ref import ActorRef, Envelope, Mailbox
from engage.outage import Outage
from engage.store.protocols import CounterCache

log = logging.getLogger(__name__)

MIRROR_MAILBOX_SIZE = 8192
#: Most requests folded into one pipeline.
MIRROR_MAX_BATCH = 1024
#: Pipelines (rounds) written to Redis and not yet answered, at most.
MIRROR_ROUNDS_IN_FLIGHT = 4


class MirrorActor:
    """Owns the Redis writes for counters.

    Args:
        cache: the Redis counter cache.
    """

    def __init__(self, cache: CounterCache, *, mailbox_size: int = MIRROR_MAILBOX_SIZE) -> None:
        self.cache = cache
        self.mailbox = Mailbox(mailbox_size)
        self.ref = ActorRef("mirror", self.mailbox)
        self._outage = Outage("mirror: redis", log)

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started(self.ref)
        receive = self.mailbox.receive_channel
        # Rounds on the wire at once: while one round's replies are coming
        # back, the next is already written, so the process is not idle for a
        # Redis round trip. A content actor waits for its own Apply, so one
        # item is never in two rounds at once; its order holds.
        in_flight = trio.Semaphore(MIRROR_ROUNDS_IN_FLIGHT)
        async with trio.open_nursery() as nursery:
            while True:
                batch = [await receive.receive()]
                await in_flight.acquire()
                batch += self.mailbox.drain_nowait(MIRROR_MAX_BATCH - 1)
                metrics.MIRROR_BATCH_SIZE.observe(len(batch))
                nursery.start_soon(self._round, batch, in_flight)

    async def _round(self, batch: list[Envelope], in_flight: trio.Semaphore) -> None:
        try:
            await self._process(batch)
        finally:
            in_flight.release()

    async def _process(self, batch: list[Envelope]) -> None:
        applies = [e for e in batch if isinstance(e.message, Apply)]
        reads = [e for e in batch if isinstance(e.message, ReadCounts)]
        publishes = [e for e in batch if isinstance(e.message, PublishCounts)]
        for envelope in batch:
            if isinstance(envelope.message, Hydrate):
                msg = envelope.message
                await self._answer([envelope], self._hydrate_one, msg)
            elif not isinstance(envelope.message, (Apply, ReadCounts, PublishCounts)):
                log.error("mirror: unexpected message %r", envelope.message)
                if envelope.reply is not None:
                    envelope.reply.fail(TypeError(f"mirror cannot handle {envelope.message!r}"))
        if applies:
            await self._answer(applies, self.cache.apply_many,
                               [(e.message.content_id, e.message.ops) for e in applies])
        if reads:
            await self._answer(reads, self.cache.read_many,
                               [e.message.content_id for e in reads])
        if publishes:
            ids = sorted({e.message.content_id for e in publishes})
            await self._answer([], self.cache.publish_counts, ids)

    async def _hydrate_one(self, msg: Hydrate) -> list[bool]:
        return [await self.cache.hydrate(msg.content_id, msg.snapshot)]

    async def _answer(self, envelopes: list[Envelope], call, arg) -> None:
        try:
            results = await call(arg)
        except Exception as exc:  # StoreError and bugs alike: every asker hears of it
            self._outage.failed(exc)
            for envelope in envelopes:
                if envelope.reply is not None:
                    envelope.reply.fail(exc)
            return
        self._outage.ok()
        for envelope, result in zip(envelopes, results or ()):
            if envelope.reply is not None:
                envelope.reply.set(result)
