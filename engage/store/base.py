"""What every store shares: one crossing of the bridge per call, and driver
errors turned into :class:`~engage.errors.StoreError`."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import asyncpg
from redis.exceptions import RedisError

from engage.errors import StoreError
from engage.store.bridge import Bridge

_PG_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
_REDIS_ERRORS = (RedisError, OSError)


class PostgresStore:
    """Base of the Postgres stores: ``self.pool`` (asyncpg) and ``self.bridge``."""

    bridge: Bridge

    async def _call(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        try:
            return await self.bridge.call(fn, *args)
        except _PG_ERRORS as exc:
            raise StoreError(f"postgres: {exc}") from exc


class RedisStore:
    """Base of the Redis stores: ``self.client`` (redis-py asyncio) and ``self.bridge``."""

    bridge: Bridge

    async def _call(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        try:
            return await self.bridge.call(fn, *args)
        except _REDIS_ERRORS as exc:
            raise StoreError(f"redis: {exc}") from exc
