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
from typing import Any, NamedTuple

import msgspec

from engage.store.streams import GroupStream

#: Entries the log keeps (approximately) before trimming the oldest.
EVENT_LOG_MAX_LEN = 100_000

EVENT_TYPES = frozenset({
    "comment.created", "comment.deleted", "applause", "milestone", "content.published",
})


class Event(NamedTuple):
    """One domain event from the log.

    A named tuple, not a frozen dataclass: every applause and comment is an
    event read by each consumer, and a frozen dataclass's ``__init__`` (one
    ``object.__setattr__`` per field) was a third of parsing one.
    """

    id: str
    type: str
    at: float
    data: dict
    deliveries: int = 1


_decode_data = msgspec.json.Decoder(dict).decode


def _event(entry_id: bytes, fields: dict[bytes, bytes], deliveries: int = 1) -> Event:
    return Event(entry_id.decode(), fields[b"type"].decode(), int(fields[b"at"]) / 1000,
                 _decode_data(fields[b"data"]), deliveries)


class EventLog(GroupStream):
    """Append to and consume the event log.

    Args: as :class:`GroupStream`'s; ``key`` is ``<prefix>events``.
    """

    def _parse(self, entry_id: bytes, fields: dict[bytes, bytes], deliveries: int) -> Event:
        return _event(entry_id, fields, deliveries)

    async def append(self, event_type: str, data: dict[str, Any]) -> str:
        """Append one event; returns its id."""
        return await self._call(self._aio_append, event_type, data)

    # -- asyncio side ------------------------------------------------------------

    async def _aio_append(self, event_type, data):
        entry_id = await self.client.xadd(
            self.key, {"type": event_type, "at": int(time.time() * 1000),
                       "data": json.dumps(data, separators=(",", ":"))},
            maxlen=EVENT_LOG_MAX_LEN, approximate=True)
        return entry_id.decode()
