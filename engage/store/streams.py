"""Redis Streams read through consumer groups: the part every consumer shares.

A subclass names its stream (``self.key``) and turns raw entries into its own
objects (:meth:`GroupStream._parse`). Reads, acknowledgements and claims go
over a trio-native connection per consumer group (:class:`RespConnection`),
not through the bridge: every applause and comment is an event-log entry read
by two consumers, and on the bridge those reads cost about a tenth of an
applause's CPU (docs/decisions.md §14). A group's connection is its own
because ``XREADGROUP ... BLOCK`` holds a connection while it waits; one task
per group reads, so calls on it never overlap. Appends stay on redis-py
(``self.client``): they ride on request paths that already use it.

Entries trimmed away while pending (they come back without fields) can never
be handled, so they are acknowledged and dropped instead of coming back.
"""

from __future__ import annotations

from typing import Any, Final, Sequence

import hiredis
import redis.asyncio as aioredis

from engage.errors import StoreError
from engage.store.base import RedisStore
from engage.store.bridge import Bridge
from engage.store.resp import RespConnection

#: Seconds a blocking read may take beyond the block it asked Redis for.
READ_MARGIN: Final = 5.0


class GroupStream(RedisStore):
    """Consumer-group reads, acks and claims on ``key``.

    Args:
        client: redis-py asyncio client on the bridge's loop (appends).
        bridge: the trio-asyncio crossing.
        key: the stream.
        url: the Redis URL the group connections open. Whoever reads calls
            :meth:`aclose` when done.
    """

    def __init__(self, client: aioredis.Redis, bridge: Bridge, key: str, url: str) -> None:
        self.client = client
        self.bridge = bridge
        self.key = key
        self.url = url
        self._connections: dict[str, RespConnection] = {}

    def _parse(self, entry_id: bytes, fields: dict[bytes, bytes], deliveries: int) -> Any:
        raise NotImplementedError

    async def ensure_group(self, group: str) -> None:
        """Create ``group`` at the start of the stream if it does not exist, so
        entries added before any consumer ran are handled too."""
        (reply,) = await self._connection(group).pipeline(
            [("XGROUP", "CREATE", self.key, group, "0", "MKSTREAM")])
        if isinstance(reply, hiredis.ReplyError) and not str(reply).startswith("BUSYGROUP"):
            raise StoreError(f"redis: {reply}")

    async def read(self, group: str, consumer: str, *, count: int, block: float,
                   own_pending: bool = False, after: str = "0") -> list:
        """New entries for ``consumer`` (waiting up to ``block`` s for the first),
        or, with ``own_pending``, those it read but has not acknowledged yet
        (after id ``after``): what a restarted consumer must handle again."""
        entries = await self._read(group, consumer, count, block, own_pending, after)
        gone = [entry[0] for entry in entries if not entry[1]]
        if gone:
            await self.ack(group, gone)
        return [self._parse(i, _fields(f), 1) for i, f in entries if f]

    async def skip(self, group: str, consumer: str, *, count: int, block: float) -> int:
        """Read new entries and acknowledge them unparsed (a consumer with
        nothing to do for any); returns how many."""
        entries = await self._read(group, consumer, count, block, False, "0")
        await self.ack(group, [entry[0] for entry in entries])
        return len(entries)

    async def _read(self, group: str, consumer: str, count: int, block: float,
                    own_pending: bool, after: str) -> list:
        """``XREADGROUP``'s entries as ``[id, [field, value, ...] or None]``."""
        command: list[str] = ["XREADGROUP", "GROUP", group, consumer, "COUNT", str(count)]
        if not own_pending:
            command += ["BLOCK", str(int(block * 1000))]
        command += ["STREAMS", self.key, after if own_pending else ">"]
        connection = self._connection(group)
        (reply,) = await connection.pipeline([command], timeout=block + READ_MARGIN)
        if isinstance(reply, hiredis.ReplyError):
            if not str(reply).startswith("NOGROUP"):
                raise StoreError(f"redis: {reply}")
            await self.ensure_group(group)  # the stream was wiped: start again
            return []
        return [entry for _, page in reply or () for entry in page]

    async def ack(self, group: str, ids: Sequence[str | bytes]) -> None:
        if ids:
            await self._checked(group, [("XACK", self.key, group, *ids)])

    async def claim_stale(self, group: str, consumer: str, *, idle: float,
                          count: int) -> list:
        """Take over entries some consumer read but did not acknowledge within ``idle`` s."""
        idle_ms = str(int(idle * 1000))
        (pending,) = await self._connection(group).pipeline(
            [("XPENDING", self.key, group, "IDLE", idle_ms, "-", "+", str(count))])
        if isinstance(pending, hiredis.ReplyError):
            if str(pending).startswith("NOGROUP"):
                return []
            raise StoreError(f"redis: {pending}")
        if not pending:
            return []
        deliveries = {p[0]: p[3] for p in pending}
        (claimed,) = await self._checked(
            group, [("XCLAIM", self.key, group, consumer, idle_ms, *deliveries)])
        # Entries deleted meanwhile come back as nil (older Redis) or not at all.
        found = [c for c in claimed if c and c[1]]
        gone = set(deliveries) - {c[0] for c in found}
        if gone:
            await self.ack(group, sorted(gone))
        return [self._parse(i, _fields(f), deliveries.get(i, 0) + 1) for i, f in found]

    async def aclose(self) -> None:
        """Close the group connections (they reopen if used again)."""
        connections, self._connections = self._connections, {}
        for connection in connections.values():
            await connection.aclose()

    def _connection(self, group: str) -> RespConnection:
        connection = self._connections.get(group)
        if connection is None:
            connection = self._connections[group] = RespConnection(self.url)
        return connection

    async def _checked(self, group: str, commands: Sequence[Sequence[str | bytes]]) -> list:
        """``commands``' replies; an error reply raises :class:`StoreError`."""
        replies = await self._connection(group).pipeline(commands)
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                raise StoreError(f"redis: {reply}")
        return replies


def _fields(flat: list[bytes]) -> dict[bytes, bytes]:
    """A stream entry's ``[field, value, field, value ...]`` as a dict."""
    return dict(zip(flat[::2], flat[1::2]))
