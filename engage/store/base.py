"""What every store shares: one crossing of the bridge per call, and driver
errors turned into :class:`~engage.errors.StoreError`; for the hot
statements, the trio-native drivers instead of the bridge."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable, Sequence

import asyncpg
from redis.exceptions import RedisError

from engage.errors import StoreError
from engage.store.bridge import Bridge

if TYPE_CHECKING:
    from engage.store.pg import PgPool
    from engage.store.resp import NativeScripts
    from engage.store.scripts import Scripts

#: Seconds to wait for a pooled connection or a statement.
PG_COMMAND_TIMEOUT = 30.0
PG_CONNECT_TIMEOUT = 10.0

_PG_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
_REDIS_ERRORS = (RedisError, OSError)


class PostgresStore:
    """Base of the Postgres stores: ``self.pool`` (asyncpg) and ``self.bridge``;
    a store with hot statements may set ``self.native`` (a trio-native pool).
    """

    bridge: Bridge
    pool: asyncpg.Pool
    native: PgPool | None = None

    async def _run(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """``await fn(connection, *args)`` on one connection: the native pool's
        when the store has one (no bridge crossing), else asyncpg's. ``fn``
        uses only what both connections offer (``fetch``, ``fetchrow``,
        ``fetchval``, ``execute``; rows by column name)."""
        if self.native is not None:
            return await self.native.run(fn, *args)
        return await self._call(self._aio_run, fn, *args)

    async def _aio_run(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        async with self.pool.acquire(timeout=PG_CONNECT_TIMEOUT) as conn:
            return await fn(conn, *args)

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
