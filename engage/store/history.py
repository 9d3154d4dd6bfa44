"""Per-channel event history in Redis Streams: offsets, epochs and catch-up.

The model follows Centrifugo's: every event published on a channel gets the
next offset of that channel's history, within an epoch. A bounded stream keeps
the recent events (``history_size``, ``history_ttl``). A client that comes back
with ``since = {offset, epoch}`` gets exactly what it missed if the epoch is
the same and nothing was trimmed; otherwise it is told ``recovered: false``.
Stream entry ids are ``<offset>-1``, so a range read starts at an offset.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Sequence

import msgpack
import redis.asyncio as aioredis

from engage.store.bridge import Bridge
from engage.store.events import EVENT_LOG_MAX_LEN
from engage.store.keys import Keys
from engage.store.resp import NativeScripts, RespConnection
from engage.store.scripts import Scripts
from engage.store.base import RedisStore


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """One event from a history: its type, offset and decoded payload."""

    type: str
    offset: int
    data: object


@dataclass(frozen=True, slots=True)
class Recovery:
    """The answer to "what did I miss since (offset, epoch)?"."""

    offset: int
    epoch: str
    recovered: bool
    events: tuple[HistoryEvent, ...] = ()


def new_epoch() -> str:
    return uuid.uuid4().hex[:8]


class RedisHistory(RedisStore):
    """Publishes events with offsets and answers catch-up queries.

    Args:
        client: redis-py asyncio client on the bridge's loop.
        size: events kept per channel (approximate, trimmed in whole nodes).
        ttl: seconds a quiet history lives.
    """

    def __init__(self, client: aioredis.Redis, bridge: Bridge, keys: Keys, *,
                 size: int, ttl: int, native: RespConnection | None = None) -> None:
        self.client = client
        self.bridge = bridge
        self.keys = keys
        self.size = size
        self.ttl = ttl
        names = ("publish", "position", "recover")
        self.scripts = Scripts(client, names)
        #: ``publish`` (every comment's), ``position`` and ``recover`` (every
        #: subscribe's) over a trio-native connection, if given.
        self.native = NativeScripts(native, names) if native is not None else None

    async def publish(self, subject: str, event_type: str, payload: object, *,
                      content_id: str | None = None, comment_delta: int = 0,
                      log: tuple[str, dict] | None = None) -> tuple[int, str]:
        """Append and publish one event on ``subject``'s channel; returns (offset, epoch).

        Args:
            content_id: whose comment count changes by ``comment_delta``.
            log: ``(type, data)`` to append to the event log in the same step.
        """
        (result,) = await self.publish_many(
            [(subject, event_type, payload, content_id, comment_delta, log)])
        return result

    async def publish_many(self, events: Sequence[tuple[str, str, object, str | None, int,
                                                         tuple[str, dict] | None]]
                           ) -> list[tuple[int, str]]:
        """:meth:`publish` several ``(subject, type, payload, content_id,
        comment_delta, log)`` events in order, in one pipeline."""
        return self._positions(await self._run_scripts(self._publish_calls(events)))

    async def position(self, subject: str) -> tuple[int, str]:
        """Where ``subject``'s history stands: (offset, epoch)."""
        (reply,) = await self._run_scripts([self._position_call(subject)])
        return _position(reply)

    async def recover(self, subject: str, offset: int, epoch: str, limit: int) -> Recovery:
        """Events after ``offset`` if they are all still there (at most ``limit``)."""
        k = self.keys
        (reply,) = await self._run_scripts([(
            "recover", [k.history(subject), k.history_meta(subject)],
            [new_epoch(), self.ttl, offset, epoch, limit])])
        return _recovery(offset, epoch, reply)

    # -- script calls ------------------------------------------------------------

    def _publish_calls(self, events) -> list:
        """The ``publish`` script calls for ``events``."""
        k = self.keys
        calls = []
        for subject, event_type, payload, content_id, comment_delta, log in events:
            counts_key = k.counts(content_id) if content_id else k.prefix + "none"
            log_type, log_data = log if log else ("", {})
            calls.append((
                "publish", [k.history(subject), k.history_meta(subject), counts_key, k.events],
                [k.channel(subject), subject, event_type, msgpack.packb(payload), self.size,
                 self.ttl, new_epoch(), comment_delta, log_type,
                 json.dumps(log_data, separators=(",", ":")), int(time.time() * 1000),
                 EVENT_LOG_MAX_LEN]))
        return calls

    @staticmethod
    def _positions(replies: list) -> list[tuple[int, str]]:
        return [(int(offset), epoch.decode()) for offset, epoch in replies]

    def _position_call(self, subject: str) -> tuple[str, list, list]:
        k = self.keys
        return ("position", [k.history(subject), k.history_meta(subject)],
                [new_epoch(), self.ttl])


def _recovery(since: int, epoch: str, reply: list) -> Recovery:
    """The ``recover`` script's ``[offset, epoch, entries]`` as a :class:`Recovery`:
    recovered only when every event after ``since`` is there."""
    raw_offset, raw_epoch, entries = reply
    current, current_epoch = int(raw_offset), raw_epoch.decode()
    if epoch != current_epoch or since > current:
        return Recovery(current, current_epoch, False)
    if since == current:
        return Recovery(current, current_epoch, True)
    events = []
    for entry_id, flat in entries:
        fields = dict(zip(flat[::2], flat[1::2]))
        events.append(HistoryEvent(fields[b"t"].decode(), int(entry_id.split(b"-")[0]),
                                   msgpack.unpackb(fields[b"d"])))
    if [e.offset for e in events] != list(range(since + 1, current + 1)):
        return Recovery(current, current_epoch, False)  # trimmed, or too far behind
    return Recovery(current, current_epoch, True, tuple(events))


def _position(reply: list) -> tuple[int, str]:
    """The ``position`` script's ``[offset, epoch]`` as (int, str)."""
    offset, epoch = reply
    return int(offset), epoch.decode()
