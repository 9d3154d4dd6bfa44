"""Presence in Redis: how many connections watch a subject, across instances."""

from __future__ import annotations

import time
from typing import Sequence

import redis.asyncio as aioredis

from engage.store.base import RedisStore
from engage.store.bridge import Bridge
from engage.store.keys import Keys
from engage.store.scripts import Scripts


class RedisPresence(RedisStore):
    """Writes this instance's watcher counts and reads totals, in one pipeline.

    Args:
        instance_id: this process.
        ttl: seconds an instance's entry outlives its last refresh.
    """

    def __init__(self, client: aioredis.Redis, bridge: Bridge, keys: Keys, *,
                 instance_id: str, ttl: float) -> None:
        self.client = client
        self.bridge = bridge
        self.keys = keys
        self.instance_id = instance_id
        self.ttl = ttl
        self.scripts = Scripts(client, ("presence",))

    async def refresh(self, local: Sequence[tuple[str, int]]) -> dict[str, int]:
        """Record ``(subject, local connections)`` pairs; return each subject's total."""
        return await self._call(self._aio_refresh, local)

    async def _aio_refresh(self, local):
        if not local:
            return {}
        now = int(time.time() * 1000)
        expiry = now + int(self.ttl * 1000)
        key_ttl = int(self.ttl * 4)
        totals = await self.scripts.run_many([
            ("presence", [self.keys.watchers(subject)],
             [self.instance_id, count, now, expiry, key_ttl, self.keys.channel(subject), subject])
            for subject, count in local])
        return {subject: int(total) for (subject, _), total in zip(local, totals)}
