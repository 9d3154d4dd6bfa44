"""The publish stream: how a CMS tells Engage that content went live.

A CMS appends one entry per publication to the Redis Stream
``<prefix>publish`` with plain string fields (``content``, ``title``, ``url``,
``author``, optional ``published_at`` and ``tags``; see docs/publishing.md).
The publisher actor reads the stream through one consumer group, so any
instance can do the work, and acknowledges an entry only once its content is
committed to Postgres (at least once). Entries that cannot be handled go to
the dead-letter stream ``<prefix>publish:dead`` with a ``reason`` field.

Each method crosses the trio-asyncio bridge once, whatever the number of
entries it reads or settles.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from engage.store.bridge import Bridge
from engage.store.keys import Keys
from engage.store.base import RedisStore

#: Entries the publish stream keeps (approximately) when Engage appends to it.
PUBLISH_STREAM_MAX_LEN = 100_000
#: Entries the dead-letter stream keeps (approximately).
DEAD_LETTER_MAX_LEN = 10_000
#: Longest dead-letter ``reason`` stored, in characters.
MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class PublishEntry:
    """One entry of the publish stream.

    Attributes:
        id: the stream entry id (the event id); empty for a plain ``PUBLISH``.
        fields: the entry's fields; ``None`` where a field was not valid UTF-8.
        deliveries: how many times the group has delivered it, this time included.
    """

    id: str
    fields: dict[str, str | None]
    deliveries: int = 1


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An entry to move to the dead-letter stream, and why."""

    entry: PublishEntry
    reason: str


def _text(raw: bytes) -> str | None:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return None


def _entry(entry_id: bytes, fields: dict[bytes, bytes], deliveries: int = 1) -> PublishEntry:
    decoded = {_text(k) or repr(k): _text(v) for k, v in fields.items()}
    return PublishEntry(entry_id.decode(), decoded, deliveries)


class PublishStream(RedisStore):
    """Append to, consume and dead-letter the publish stream.

    Args:
        client: redis-py asyncio client on the bridge's loop.
        bridge: the trio-asyncio crossing.
        keys: key names (``publish_stream``, ``publish_dead``).
    """

    def __init__(self, client: aioredis.Redis, bridge: Bridge, keys: Keys) -> None:
        self.client = client
        self.bridge = bridge
        self.key = keys.publish_stream
        self.dead_key = keys.publish_dead

    async def append(self, fields: dict[str, str]) -> str:
        """Append one publish event (what ``XADD <prefix>publish *`` does); returns its id."""
        return await self._call(self._aio_append, fields)

    async def ensure_group(self, group: str) -> None:
        """Create ``group`` at the start of the stream if it does not exist.

        Starting at the beginning means events added before any Engage ever
        ran are still handled.
        """
        await self._call(self._aio_ensure_group, group)

    async def read(self, group: str, consumer: str, *, count: int, block: float,
                   own_pending: bool = False) -> list[PublishEntry]:
        """Entries for ``consumer``; waits up to ``block`` seconds for the first.

        Args:
            own_pending: instead of new entries, those already delivered to
                ``consumer`` and not acknowledged (after a restart of the actor).
        """
        return await self._call(self._aio_read, group, consumer, count, block, own_pending)

    async def claim_stale(self, group: str, consumer: str, *, idle: float,
                          count: int) -> list[PublishEntry]:
        """Take over entries some consumer read but did not acknowledge within ``idle`` s.

        Entries trimmed from the stream meanwhile are acknowledged and dropped.
        """
        return await self._call(self._aio_claim, group, consumer, idle, count)

    async def settle(self, group: str | None, done: list[str], dead: list[DeadLetter]) -> None:
        """Acknowledge ``done`` and move ``dead`` to the dead-letter stream, atomically.

        Args:
            group: the consumer group that read the entries; ``None`` for events
                that never were stream entries (plain ``PUBLISH``): nothing is
                acknowledged then.
        """
        if done or dead:
            await self._call(self._aio_settle, group, done, dead)

    async def dead_letters(self, count: int = 100) -> list[PublishEntry]:
        """The oldest dead letters (for operators and tests)."""
        return await self._call(self._aio_dead_letters, count)

    # -- asyncio side ------------------------------------------------------------

    async def _aio_append(self, fields):
        entry_id = await self.client.xadd(self.key, fields, maxlen=PUBLISH_STREAM_MAX_LEN,
                                          approximate=True)
        return entry_id.decode()

    async def _aio_ensure_group(self, group):
        try:
            await self.client.xgroup_create(self.key, group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _aio_read(self, group, consumer, count, block, own_pending):
        start = "0" if own_pending else ">"
        try:
            reply = await self.client.xreadgroup(
                group, consumer, {self.key: start}, count=count,
                block=None if own_pending else int(block * 1000))
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await self._aio_ensure_group(group)  # the stream was deleted: start again
            return []
        # Own pending entries that were trimmed away come back without fields.
        return [_entry(i, f) for _, entries in reply or () for i, f in entries if f]

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
        if gone:  # trimmed or deleted while pending: nothing left to handle
            await self.client.xack(self.key, group, *gone)
        return [_entry(i, f, deliveries.get(i, 0) + 1) for i, f in claimed if f]

    async def _aio_settle(self, group, done, dead):
        async with self.client.pipeline(transaction=True) as pipe:
            for letter in dead:
                fields = {k: v for k, v in letter.entry.fields.items()
                          if v is not None and k not in ("reason", "entry", "deliveries")}
                pipe.xadd(self.dead_key,
                          {**fields, "reason": letter.reason[:MAX_REASON],
                           "entry": letter.entry.id or "pubsub",
                           "deliveries": str(letter.entry.deliveries)},
                          maxlen=DEAD_LETTER_MAX_LEN, approximate=True)
            ids = list(done) + [letter.entry.id for letter in dead]
            if group is not None and ids:
                pipe.xack(self.key, group, *ids)
            await pipe.execute()

    async def _aio_dead_letters(self, count):
        entries = await self.client.xrange(self.dead_key, count=count)
        return [_entry(i, f) for i, f in entries]
