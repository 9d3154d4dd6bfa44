"""What the actors need from the stores, as small protocols.

Actors depend on these, not on redis-py or asyncpg, so a native-trio Redis
client (coredis) or another database driver can be dropped in and measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from engage.domain import Counts, FlushBatch, Op, OpResult, Snapshot


@dataclass(frozen=True, slots=True)
class ApplyOutcome:
    """Result of applying one item's ops: ``None`` results mean "reload me"."""

    results: tuple[OpResult, ...] | None
    unique_viewers: int = 0
    comments: int = 0

    @property
    def needs_load(self) -> bool:
        return self.results is None


@dataclass(frozen=True, slots=True)
class FlushReport:
    """What one flush did, for metrics and benchmarks."""

    batch_id: str
    applied: bool
    events: int
    items: int
    statements: int
    rows: int


class CounterCache(Protocol):
    """The Redis side of counters: live totals and the pending-change log."""

    async def apply_many(self, work: Sequence[tuple[str, Sequence[Op]]]) -> list[ApplyOutcome]:
        """Apply each item's ops atomically, all in one round trip."""

    async def read_many(self, content_ids: Sequence[str]) -> list[Counts | None]:
        """Current counts, ``None`` where the item is not in the cache."""

    async def hydrate(self, content_id: str, snapshot: Snapshot) -> bool:
        """Install ``snapshot`` unless the item is already cached."""

    async def publish_counts(self, content_ids: Sequence[str]) -> None:
        """Publish each item's current counts on its channel."""

    async def hand_off(self, batch_id: str) -> bool:
        """Atomically move all pending changes into batch ``batch_id``."""

    async def load_batch(self, batch_id: str) -> tuple[FlushBatch, dict[str, bytes]]:
        """A handed-off batch and the current HyperLogLog of its dirty items."""

    async def finish_batch(self, batch_id: str) -> None:
        """Forget a batch that Postgres has."""

    async def stale_batches(self, older_than: float) -> list[str]:
        """Ids of batches handed off more than ``older_than`` seconds ago."""

    async def oldest_pending(self) -> float | None:
        """Unix time of the oldest change not yet in Postgres."""

    async def ping(self) -> None: ...


class CounterDatabase(Protocol):
    """The Postgres side of counters: the durable truth."""

    async def apply_batch(self, batch: FlushBatch, hlls: dict[str, bytes]) -> FlushReport:
        """Apply ``batch`` in one transaction, once, whatever the retries."""

    async def load(self, content_id: str) -> Snapshot:
        """An item's persisted state (zeros if never seen)."""

    async def ping(self) -> None: ...
