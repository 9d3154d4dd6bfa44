"""The sweeper: finishes flushes that a dead process left half done.

A batch still in Redis ``stale_after`` seconds after its hand-off belongs to a
process that died (or is stuck); any process may re-apply it, because Postgres
records batch ids and refuses a second application. The sweeper also reports
the age of the oldest change not yet in Postgres.
"""

from __future__ import annotations

import logging
import time

import trio

from engage import metrics
from engage.actors.flush.actor import apply_batch
from engage.actors.flush.messages import SweepNow
from engage.actors.ref import ActorRef, Mailbox
from engage.errors import StoreError
from engage.outage import Outage
from engage.store.protocols import CounterCache, CounterDatabase

log = logging.getLogger(__name__)

SWEEPER_MAILBOX_SIZE = 16


class SweeperActor:
    """Re-applies stale batches and measures flush lag.

    Args:
        interval: seconds between sweeps.
        stale_after: a batch this old (seconds since hand-off) is swept.
    """

    def __init__(self, cache: CounterCache, database: CounterDatabase, *, interval: float,
                 stale_after: float) -> None:
        self.cache = cache
        self.database = database
        self.interval = interval
        self.stale_after = stale_after
        self.mailbox = Mailbox(SWEEPER_MAILBOX_SIZE)
        self.ref = ActorRef("sweeper", self.mailbox)
        self._outage = Outage("sweeper: redis or postgres", log)

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started(self.ref)
        while True:
            request = await self.mailbox.tick(self.interval, SweepNow)
            try:
                swept = await self.sweep()
            except StoreError as exc:
                self._outage.failed(exc)
                if request is not None:
                    request.refuse(exc)
                continue
            self._outage.ok()
            if request is not None:
                request.answer(swept)

    async def sweep(self) -> int:
        """Re-apply every stale batch; update the lag gauge. Returns batches swept."""
        swept = 0
        for batch_id in await self.cache.stale_batches(self.stale_after):
            report = await apply_batch(self.cache, self.database, batch_id)
            log.warning("swept batch %s left by a dead process (%d events, applied=%s)",
                        batch_id, report.events, report.applied)
            metrics.SWEPT_BATCHES.inc()
            swept += 1
        oldest = await self.cache.oldest_pending()
        metrics.OLDEST_UNFLUSHED.set(0 if oldest is None else max(0.0, time.time() - oldest))
        return swept
