"""The event log: durable domain events in one Redis Stream, read through
consumer groups. This is the seed design's "notification queue".

Producers append facts (``comment.created``, ``applause`` ...) on the request
path in the same round trip as the change itself where they can (``apply.lua``
appends inside its script). Consumers (notifications, webhooks) each read the
log through their own consumer group, so any instance can do the work, a
burst only lengthens the log, and an entry is acknowledged only after it has
been handled (at least once; consumers are idempotent by event id).

Entry fields: ``type``, ``at`` (unix ms), ``data`` (JSON). The entry id is the
event id.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from engage.store.bridge import Bridge
from engage.store.base import RedisStore

#: Entries the log keeps (approximately) before trimming the oldest.
EVENT_LOG_MAX_LEN = 100_000

EVENT_TYPES = frozenset({
    "comment.created", "comment.deleted", "applause", "milestone", "content.published",
})


@dataclass(frozen=True, slots=True)
class Event:
    """One domain event from the log."""

    id: str
    type: str
    at: float
    data: dict
    deliveries: int = 1


def _event(entry_id: bytes, fields: dict[bytes, bytes], deliveries: int = 1) -> Event:
    return Event(entry_id.decode(), fields[b"type"].decode(), int(fields[b"at"]) / 1000,
                 json.loads(fields[b"data"]), deliveries)


class EventLog(RedisStore):
    """Append to and consume the event log.

    Args:
        client: redis-py asyncio client on the bridge's loop.
        key: the stream (``<prefix>events``).
    """

    def __init__(self, client: aioredis.Redis, bridge: Bridge, key: str) -> None:
        self.client = client
        self.bridge = bridge
        self.key = key

    async def append(self, event_type: str, data: dict[str, Any]) -> str:
        """Append one event; returns its id."""
        return await self._call(self._aio_append, event_type, data)

    async def ensure_group(self, group: str) -> None:
        """Create ``group`` at the start of the log if it does not exist."""
        await self._call(self._aio_ensure_group, group)

    async def read(self, group: str, consumer: str, *, count: int, block: float) -> list[Event]:
        """New events for ``group`` (waits up to ``block`` seconds for the first)."""
        return await self._call(self._aio_read, group, consumer, count, block)

    async def ack(self, group: str, ids: list[str]) -> None:
        if ids:
            await self._call(self._aio_ack, group, ids)

    async def claim_stale(self, group: str, consumer: str, *, idle: float,
                          count: int) -> list[Event]:
        """Take over events another consumer read but did not ack within ``idle`` s."""
        return await self._call(self._aio_claim, group, consumer, idle, count)

    async def read_pending(self, group: str, consumer: str, *, after: str = "0",
                           count: int) -> list[Event]:
        """Events ``consumer`` itself read but has not acked, after id ``after``.

        What a consumer that lost its in-memory state (a restart) reads again.
        """
        return await self._call(self._aio_read_pending, group, consumer, after, count)

    # -- asyncio side ------------------------------------------------------------

    async def _aio_append(self, event_type, data):
        entry_id = await self.client.xadd(
            self.key, {"type": event_type, "at": int(time.time() * 1000),
                       "data": json.dumps(data, separators=(",", ":"))},
            maxlen=EVENT_LOG_MAX_LEN, approximate=True)
        return entry_id.decode()

    async def _aio_ensure_group(self, group):
        try:
            await self.client.xgroup_create(self.key, group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _aio_read(self, group, consumer, count, block):
        try:
            reply = await self.client.xreadgroup(group, consumer, {self.key: ">"}, count=count,
                                                 block=int(block * 1000))
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await self._aio_ensure_group(group)  # the log was wiped: start again
            return []
        return [_event(i, f) for _, entries in reply or () for i, f in entries]

    async def _aio_read_pending(self, group, consumer, after, count):
        try:
            reply = await self.client.xreadgroup(group, consumer, {self.key: after}, count=count)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            return []
        entries = [(i, f) for _, page in reply or () for i, f in page]
        # An entry trimmed from the stream while pending comes back without
        # fields and can never be handled: acknowledge it so it stops coming back.
        gone = [i for i, f in entries if not f]
        if gone:
            await self.client.xack(self.key, group, *gone)
        return [_event(i, f) for i, f in entries if f]

    async def _aio_ack(self, group, ids):
        await self.client.xack(self.key, group, *ids)

    async def _aio_claim(self, group, consumer, idle, count):
        try:
            pending = await self.client.xpending_range(self.key, group, min="-", max="+",
                                                       count=count, idle=int(idle * 1000))
        except ResponseError as exc:
            if "NOGROUP" in str(exc):
                return []
            raise
        if not pending:
            return []
        deliveries = {p["message_id"]: p["times_delivered"] for p in pending}
        claimed = await self.client.xclaim(self.key, group, consumer, int(idle * 1000),
                                           list(deliveries))
        return [_event(i, f, deliveries.get(i, 1) + 1) for i, f in claimed if f]
