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

from engage.store.bridge import Bridge
from engage.store.keys import Keys
from engage.store.streams import GroupStream

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


class PublishStream(GroupStream):
    """Append to, consume and dead-letter the publish stream.

    Args:
        client: redis-py asyncio client on the bridge's loop.
        bridge: the trio-asyncio crossing.
        keys: key names (``publish_stream``, ``publish_dead``).
        url: the Redis URL consumer-group reads connect to.
    """

    def __init__(self, client: aioredis.Redis, bridge: Bridge, keys: Keys, url: str) -> None:
        super().__init__(client, bridge, keys.publish_stream, url)
        self.dead_key = keys.publish_dead

    def _parse(self, entry_id: bytes, fields: dict[bytes, bytes],
               deliveries: int) -> PublishEntry:
        return _entry(entry_id, fields, deliveries)

    async def append(self, fields: dict[str, str]) -> str:
        """Append one publish event (what ``XADD <prefix>publish *`` does); returns its id."""
        return await self._call(self._aio_append, fields)

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
