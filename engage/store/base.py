"""What every store shares: one crossing of the bridge per call, and driver
errors turned into :class:`~engage.errors.StoreError`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable, Sequence

import asyncpg
from redis.exceptions import RedisError

from engage.errors import StoreError
from engage.store.bridge import Bridge

if TYPE_CHECKING:
    from engage.store.resp import NativeScripts
    from engage.store.scripts import Scripts

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
    """Base of the Redis stores: ``self.client`` (redis-py asyncio) and ``self.bridge``.

    A store with Lua scripts sets ``self.scripts`` (redis-py, on the bridge)
    and, for its hot calls, ``self.native`` (a trio-native connection).
    """

    bridge: Bridge
    scripts: Scripts
    native: NativeScripts | None = None

    async def _run_scripts(self, calls: Sequence[tuple[str, Sequence, Sequence]]) -> list:
        """Run ``(name, keys, args)`` calls in one pipeline: over the native
        connection when the store has one (no bridge crossing), else redis-py's."""
        if self.native is not None:
            return await self.native.run_many(calls)
        return await self._call(self.scripts.run_many, calls)

    async def _call(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        try:
            return await self.bridge.call(fn, *args)
        except _REDIS_ERRORS as exc:
            raise StoreError(f"redis: {exc}") from exc
