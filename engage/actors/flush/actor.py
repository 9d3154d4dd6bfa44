"""The flush actor: moves pending counter changes from Redis to Postgres.

Every ``interval`` seconds it hands all pending changes off into a batch with
one atomic script, applies the batch to Postgres in one transaction that also
records the batch id, then deletes the batch from Redis. A crash at any point
leaves either the pending hash or the batch in Redis, and a re-applied batch
is refused by its recorded id: each acknowledged change lands exactly once.
"""

from __future__ import annotations

import itertools
import logging

import trio

from engage import metrics
from engage.outage import Outage
from engage.actors.flush.messages import FlushNow
from engage.actors.ref import ActorRef, Mailbox
from engage.errors import StoreError
from engage.store.protocols import CounterCache, CounterDatabase, FlushReport
from engage.supervisor import shutdown_scope

log = logging.getLogger(__name__)

FLUSH_MAILBOX_SIZE = 64
#: First retry delay after a failed flush; doubles up to ``max_retry_delay``.
FLUSH_RETRY_DELAY = 0.5
#: Most batches a final flush makes before giving up on an endless stream.
FINAL_FLUSH_MAX_BATCHES = 100


async def apply_batch(cache: CounterCache, database: CounterDatabase, batch_id: str) -> FlushReport:
    """Apply a handed-off batch to Postgres, then forget it in Redis.

    Safe to call again for the same batch, from any process.
    """
    with metrics.FLUSH_SECONDS.time():
        batch, hlls = await cache.load_batch(batch_id)
        report = await database.apply_batch(batch, hlls)
        await cache.finish_batch(batch_id)
    if report.applied:
        metrics.FLUSH_EVENTS.inc(report.events)
        metrics.FLUSH_ITEMS.inc(report.items)
        metrics.FLUSH_ROWS.inc(report.rows)
    metrics.FLUSH_STATEMENTS.inc(report.statements)
    return report


class FlushActor:
    """Periodically persists pending changes.

    Args:
        cache: Redis side.
        database: Postgres side.
        instance_id: this process's id, part of every batch id.
        interval: seconds between flushes.
        max_retry_delay: cap on the back-off after failures.
    """

    def __init__(self, cache: CounterCache, database: CounterDatabase, *, instance_id: str,
                 interval: float, max_retry_delay: float = 2.0) -> None:
        self.cache = cache
        self.database = database
        self.instance_id = instance_id
        self.interval = interval
        self.max_retry_delay = max_retry_delay
        self._outage = Outage("flush: redis or postgres", log)
        self.mailbox = Mailbox(FLUSH_MAILBOX_SIZE)
        self.ref = ActorRef("flush", self.mailbox)
        self._seq = itertools.count(1)
        self._current: str | None = None  # handed off but not yet applied
        self.reports: list[FlushReport] = []  # the last few, for statistics()

    def statistics(self) -> dict:
        return {"current_batch": self._current, "recent": list(self.reports)}

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started(self.ref)
        delay = self.interval
        try:
            while True:
                request = await self.mailbox.tick(delay, FlushNow)
                try:
                    reports = await self.flush_all()
                except StoreError as exc:
                    metrics.FLUSHES.labels("error").inc()
                    delay = min(max(delay * 2, FLUSH_RETRY_DELAY), self.max_retry_delay)
                    self._outage.failed(exc)
                    if request is not None:
                        request.refuse(exc)
                    continue
                self._outage.ok()
                delay = self.interval
                if request is not None:
                    request.answer(reports)
        finally:
            # The one shielded piece: what is acknowledged should reach
            # Postgres before we go, within the shutdown budget.
            with shutdown_scope() as scope:
                try:
                    await self.flush_all()
                except StoreError as exc:
                    log.error("final flush failed; changes stay in Redis for the next start: %s", exc)
            if scope.cancelled_caught:
                log.error("final flush overran its deadline; the rest stays in Redis")

    async def flush_all(self) -> list[FlushReport]:
        """Flush until nothing is pending (bounded); return what each batch did."""
        reports = []
        for _ in range(FINAL_FLUSH_MAX_BATCHES):
            report = await self.flush_once()
            if report is None:
                break
            reports.append(report)
        return reports

    async def flush_once(self) -> FlushReport | None:
        """Hand off and apply one batch; ``None`` if nothing was pending.

        A batch that failed to apply is retried (same id) before a new one is
        handed off, so batches reach Postgres in order from this process.
        """
        if self._current is None:
            batch_id = f"{self.instance_id}-{next(self._seq)}"
            if not await self.cache.hand_off(batch_id):
                return None
            self._current = batch_id
        report = await apply_batch(self.cache, self.database, self._current)
        self._current = None
        metrics.FLUSHES.labels("applied" if report.applied else "duplicate").inc()
        self.reports = [*self.reports[-9:], report]
        return report
