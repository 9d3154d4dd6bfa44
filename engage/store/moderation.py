"""Bans and trusted commenters: Postgres is the truth, Redis a mirror of bans.

Each active ban is mirrored as ``<prefix>ban:<user>`` (value: the reason)
expiring with the ban (``PX``), so Lua scripts on the interaction path can
refuse banned users with one ``EXISTS``. A Redis wipe would lift those
mirrors; :meth:`PostgresModeration.reinstall_bans` puts the active ones back
(one query, one pipeline) and runs when the stores open. The comment path
reads Postgres (:meth:`standing`), so a wipe never lets a banned user comment.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Sequence

import asyncpg
import redis.asyncio as aioredis

from engage.domain.moderation import Ban, Policy, Standing
from engage.errors import StoreError
from engage.store.base import _PG_ERRORS, _REDIS_ERRORS, PostgresStore
from engage.store.bridge import Bridge
from engage.store.keys import Keys
from engage.store.pg import PgPool
from engage.store.postgres import PG_CONNECT_TIMEOUT

_BAN_COLUMNS = "user_id, until, reason, banned_by, created_at"
#: Mirrors written per pipeline round when reinstalling.
REINSTALL_CHUNK = 1000


def _ban(row: asyncpg.Record) -> Ban:
    return Ban(row["user_id"], row["until"], row["reason"], row["banned_by"], row["created_at"])


def _remaining_ms(row: asyncpg.Record) -> int:
    return max(1, int(row["remaining_ms"]))


class PostgresModeration(PostgresStore):
    """Bans (Postgres + Redis mirror) and trusted commenters, with the
    screening :class:`~engage.domain.moderation.Policy` from the settings.

    Args:
        pool: asyncpg pool.
        client: redis-py asyncio client on the bridge's loop.
        bridge: the trio-asyncio crossing.
        keys: Redis key names.
        policy: how comments are screened (mode and word lists).
        native: the trio-native pool for the standings of new comments' authors.
    """

    def __init__(self, pool: asyncpg.Pool, client: aioredis.Redis, bridge: Bridge, keys: Keys,
                 policy: Policy | None = None, *, native: PgPool | None = None) -> None:
        self.pool = pool
        self.native = native
        self.client = client
        self.bridge = bridge
        self.keys = keys
        self.policy = policy or Policy()

    async def _call(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        try:
            return await self.bridge.call(fn, *args)
        except _PG_ERRORS as exc:
            raise StoreError(f"postgres: {exc}") from exc
        except _REDIS_ERRORS as exc:
            raise StoreError(f"redis: {exc}") from exc

    async def ban(self, user: str, seconds: int, reason: str, by: str) -> Ban:
        """Ban ``user`` for ``seconds`` from now (replacing any ban), durably,
        then mirror it in Redis."""
        return await self._call(self._aio_ban, user, seconds, reason, by)

    async def lift(self, user: str) -> bool:
        """Lift ``user``'s ban; False if there was none in force."""
        return await self._call(self._aio_lift, user)

    async def active_ban(self, user: str) -> Ban | None:
        """``user``'s ban if it is in force (from Postgres)."""
        return await self._call(self._aio_active_ban, user)

    async def standing(self, user: str) -> Standing:
        """``user``'s ban in force, if any, and whether they are trusted: one query."""
        return (await self.standings([user]))[user]

    async def standings(self, users: Sequence[str]) -> dict[str, Standing]:
        """:meth:`standing` of several users in one query (a batch of comments)."""
        return await self._run(self._standings, list(dict.fromkeys(users)))

    async def trusted(self, user: str) -> bool:
        return (await self.standing(user)).trusted

    async def reinstall_bans(self) -> int:
        """Write the Redis mirror of every ban in force; returns how many."""
        return await self._call(self._aio_reinstall)

    # -- asyncio side ------------------------------------------------------------

    async def _aio_ban(self, user: str, seconds: int, reason: str, by: str) -> Ban:
        async with self.pool.acquire(timeout=PG_CONNECT_TIMEOUT) as conn:
            row = await conn.fetchrow(
                f"INSERT INTO bans AS b (user_id, until, reason, banned_by) "
                f"VALUES ($1, now() + make_interval(secs => $2), $3, $4) "
                f"ON CONFLICT (user_id) DO UPDATE SET until = EXCLUDED.until, "
                f"reason = EXCLUDED.reason, banned_by = EXCLUDED.banned_by, created_at = now() "
                f"RETURNING {_BAN_COLUMNS}, "
                f"extract(epoch FROM until - now()) * 1000 AS remaining_ms",
                user, float(seconds), reason, by)
        await self.client.set(self.keys.ban(user), reason, px=_remaining_ms(row))
        return _ban(row)

    async def _aio_lift(self, user: str) -> bool:
        async with self.pool.acquire(timeout=PG_CONNECT_TIMEOUT) as conn:
            lifted = await conn.fetchval(
                "DELETE FROM bans WHERE user_id = $1 RETURNING until > now()", user)
        await self.client.delete(self.keys.ban(user))
        return bool(lifted)

    async def _aio_active_ban(self, user: str) -> Ban | None:
        async with self.pool.acquire(timeout=PG_CONNECT_TIMEOUT) as conn:
            row = await conn.fetchrow(
                f"SELECT {_BAN_COLUMNS} FROM bans WHERE user_id = $1 AND until > now()", user)
        return None if row is None else _ban(row)

    @staticmethod
    async def _standings(conn, users: list[str]) -> dict[str, Standing]:
        """On ``conn`` (either driver's): one query for all of ``users``."""
        rows = await conn.fetch(
            "SELECT u.who, b.user_id, b.until, b.reason, b.banned_by, b.created_at, "
            "EXISTS (SELECT 1 FROM trusted_commenters t WHERE t.user_id = u.who) AS trusted "
            "FROM unnest($1::text[]) AS u(who) "
            "LEFT JOIN bans b ON b.user_id = u.who AND b.until > now()", users)
        return {row["who"]: Standing(_ban(row) if row["user_id"] is not None else None,
                                     row["trusted"]) for row in rows}

    async def _aio_reinstall(self) -> int:
        async with self.pool.acquire(timeout=PG_CONNECT_TIMEOUT) as conn:
            rows = await conn.fetch(
                "SELECT user_id, reason, extract(epoch FROM until - now()) * 1000 AS remaining_ms "
                "FROM bans WHERE until > now()")
        for start in range(0, len(rows), REINSTALL_CHUNK):
            async with self.client.pipeline(transaction=False) as pipe:
                for row in rows[start:start + REINSTALL_CHUNK]:
                    pipe.set(self.keys.ban(row["user_id"]), row["reason"],
                             px=_remaining_ms(row))
                await pipe.execute()
        return len(rows)
