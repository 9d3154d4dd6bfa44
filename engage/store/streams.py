"""Redis Streams read through consumer groups: the part every consumer shares.

A subclass names its stream (``self.key``) and turns raw entries into its own
objects (:meth:`GroupStream._parse`). Reads cross the bridge once per call.
Entries trimmed away while pending (they come back without fields) can never
be handled, so they are acknowledged and dropped instead of coming back.
"""

from __future__ import annotations

from typing import Any

from redis.exceptions import ResponseError

from engage.store.base import RedisStore


class GroupStream(RedisStore):
    """Consumer-group reads, acks and claims on ``self.key``."""

    key: str

    def _parse(self, entry_id: bytes, fields: dict[bytes, bytes], deliveries: int) -> Any:
        raise NotImplementedError

    async def ensure_group(self, group: str) -> None:
        """Create ``group`` at the start of the stream if it does not exist, so
        entries added before any consumer ran are handled too."""
        await self._call(self._aio_ensure_group, group)

    async def read(self, group: str, consumer: str, *, count: int, block: float,
                   own_pending: bool = False, after: str = "0") -> list:
        """New entries for ``consumer`` (waiting up to ``block`` s for the first),
        or, with ``own_pending``, those it read but has not acknowledged yet
        (after id ``after``): what a restarted consumer must handle again."""
        return await self._call(self._aio_read, group, consumer, count, block, own_pending,
                                after)

    async def ack(self, group: str, ids: list[str]) -> None:
        if ids:
            await self._call(self._aio_ack, group, ids)

    async def claim_stale(self, group: str, consumer: str, *, idle: float,
                          count: int) -> list:
        """Take over entries some consumer read but did not acknowledge within ``idle`` s."""
        return await self._call(self._aio_claim, group, consumer, idle, count)

    # -- asyncio side ------------------------------------------------------------

    async def _aio_ensure_group(self, group: str) -> None:
        try:
            await self.client.xgroup_create(self.key, group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _aio_read(self, group, consumer, count, block, own_pending, after):
        start = after if own_pending else ">"
        try:
            reply = await self.client.xreadgroup(
                group, consumer, {self.key: start}, count=count,
                block=None if own_pending else int(block * 1000))
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await self._aio_ensure_group(group)  # the stream was wiped: start again
            return []
        entries = [(i, f) for _, page in reply or () for i, f in page]
        gone = [i for i, f in entries if not f]
        if gone:
            await self.client.xack(self.key, group, *gone)
        return [self._parse(i, f, 1) for i, f in entries if f]

    async def _aio_ack(self, group, ids):
        await self.client.xack(self.key, group, *ids)

    async def _aio_claim(self, group, consumer, idle, count):
        idle_ms = int(idle * 1000)
        try:
            pending = await self.client.xpending_range(self.key, group, min="-", max="+",
                                                       count=count, idle=idle_ms)
        except ResponseError as exc:
            if "NOGROUP" in str(exc):
                return []
            raise
        if not pending:
            return []
        deliveries = {p["message_id"]: p["times_delivered"] for p in pending}
        claimed = await self.client.xclaim(self.key, group, consumer, idle_ms, list(deliveries))
        found = {i for i, f in claimed if f}
        gone = [i for i in deliveries if i not in found]
        if gone:
            await self.client.xack(self.key, group, *gone)
        return [self._parse(i, f, deliveries.get(i, 0) + 1) for i, f in claimed if f]
