"""Counters in Postgres through asyncpg on the trio-asyncio bridge.

Each public method crosses the bridge once and does all its work in one
asyncio coroutine: one pool acquire, one transaction. A flush costs a fixed
number of statements, whatever the number of events or items in it: rows are
passed as arrays and expanded with ``unnest``.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import AsyncIterator

import asyncpg
import trio

from engage.domain import FlushBatch, Snapshot
from engage.errors import StoreError
from engage.store.bridge import Bridge
from engage.store.migrations import migrate
from engage.store.pg import PgPool
from engage.store.protocols import FlushReport
from engage.store.base import PG_COMMAND_TIMEOUT, PG_CONNECT_TIMEOUT, PostgresStore

log = logging.getLogger(__name__)


_UPSERT_COUNTERS = """
INSERT INTO content_counters AS c (id, views, likes, applause, viewers_hll, updated_at)
SELECT id, v, l, a, h, now()
  FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bytea[]) AS t(id, v, l, a, h)
ON CONFLICT (id) DO UPDATE SET
    views = c.views + EXCLUDED.views,
    likes = c.likes + EXCLUDED.likes,
    applause = c.applause + EXCLUDED.applause,
    viewers_hll = COALESCE(EXCLUDED.viewers_hll, c.viewers_hll),
    updated_at = now()
"""

_UPSERT_LIKES = """
INSERT INTO content_likes AS k (content_id, user_id, liked, seq)
SELECT * FROM unnest($1::text[], $2::text[], $3::boolean[], $4::bigint[])
ON CONFLICT (content_id, user_id) DO UPDATE
    SET liked = EXCLUDED.liked, seq = EXCLUDED.seq
    WHERE k.seq < EXCLUDED.seq
"""

_UPSERT_APPLAUSE = """
INSERT INTO content_applause AS p (content_id, user_id, total)
SELECT * FROM unnest($1::text[], $2::text[], $3::integer[])
ON CONFLICT (content_id, user_id) DO UPDATE
    SET total = GREATEST(p.total, EXCLUDED.total)
"""


class PostgresCounters(PostgresStore):
    """:class:`~engage.store.protocols.CounterDatabase` on asyncpg; the flush
    and the load of an item through the trio-native pool when there is one
    (a flush a second crossed the bridge: a tenth of an applause run's CPU
    went to the trio-asyncio loop, docs/decisions.md §15)."""

    def __init__(self, pool: asyncpg.Pool, bridge: Bridge, *,
                 native: PgPool | None = None) -> None:
        self.pool = pool
        self.bridge = bridge
        self.native = native

    async def apply_batch(self, batch: FlushBatch, hlls: dict[str, bytes]) -> FlushReport:
        return await self._run(self._apply_batch, batch, hlls)

    async def load(self, content_id: str) -> Snapshot:
        return await self._run(self._load, content_id)

    async def ping(self) -> None:
        await self._call(self._aio_ping)

    # -- asyncio side ------------------------------------------------------------

    async def _aio_ping(self) -> None:
        async with self.pool.acquire(timeout=PG_CONNECT_TIMEOUT) as conn:
            await conn.fetchval("SELECT 1")

    @staticmethod
    async def _apply_batch(conn, batch: FlushBatch, hlls: dict[str, bytes]) -> FlushReport:
        """One transaction on ``conn`` (either driver's)."""
        ids = sorted(set(batch.deltas) | set(hlls))
        zero = [0, 0, 0]
        rows = 0
        statements = 1
        async with conn.transaction():
            fresh = await conn.fetchval(
                "INSERT INTO flush_batches (id, events, items) VALUES ($1, $2, $3) "
                "ON CONFLICT (id) DO NOTHING RETURNING true",
                batch.id, batch.events, batch.items,
            )
            if not fresh:
                return FlushReport(batch.id, False, batch.events, batch.items, 1, 0)
            if ids:
                deltas = [batch.deltas.get(i, zero) for i in ids]
                await conn.execute(
                    _UPSERT_COUNTERS, ids, [d[0] for d in deltas], [d[1] for d in deltas],
                    [d[2] for d in deltas], [hlls.get(i) for i in ids])
                statements += 1
                rows += len(ids)
            if batch.likes:
                keys = list(batch.likes)
                await conn.execute(
                    _UPSERT_LIKES, [c for c, _ in keys], [u for _, u in keys],
                    [batch.likes[k][0] for k in keys], [batch.likes[k][1] for k in keys])
                statements += 1
                rows += len(keys)
            if batch.applause:
                keys = list(batch.applause)
                await conn.execute(
                    _UPSERT_APPLAUSE, [c for c, _ in keys], [u for _, u in keys],
                    [batch.applause[k] for k in keys])
                statements += 1
                rows += len(keys)
        return FlushReport(batch.id, True, batch.events, batch.items, statements, rows)

    @staticmethod
    async def _load(conn, content_id: str) -> Snapshot:
        """An item's durable counters, likers and applauders, on ``conn``."""
        row = await conn.fetchrow(
            "SELECT views, likes, applause, viewers_hll FROM content_counters WHERE id = $1",
            content_id)
        likers = await conn.fetch(
            "SELECT user_id FROM content_likes WHERE content_id = $1 AND liked", content_id)
        claps = await conn.fetch(
            "SELECT user_id, total FROM content_applause WHERE content_id = $1", content_id)
        comments = await conn.fetchval(  # visible ones only (see 0007_moderation.sql)
            "SELECT count(*) FROM comments "
            "WHERE content_id = $1 AND deleted_at IS NULL AND status = 'visible'",
            content_id)
        likers_ = tuple(r["user_id"] for r in likers)
        claps_ = tuple((r["user_id"], r["total"]) for r in claps)
        if row is None:
            return Snapshot(likers=likers_, applauders=claps_, comments=comments)
        return Snapshot(row["views"], row["likes"], row["applause"], row["viewers_hll"],
                        likers_, claps_, comments)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release a connection to the pool as it is (asyncpg still rolls back an open
    transaction first). Engage never changes session state (no ``SET``, no
    ``LISTEN``, only transaction-scoped advisory locks), so asyncpg's default
    reset (``RESET ALL; UNLISTEN *; ...``) was a wasted round trip on every
    release: about a third of the CPU of a short query (docs/decisions.md §12)."""


async def _aio_open_pool(dsn: str, size: int) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=size,
                                     command_timeout=PG_COMMAND_TIMEOUT,
                                     timeout=PG_CONNECT_TIMEOUT, reset=_keep_session)
    async with pool.acquire() as conn:
        applied = await migrate(conn)
    if applied:
        log.info("applied migrations %s", applied)
    return pool


@asynccontextmanager
async def open_postgres(dsn: str, bridge: Bridge, *, pool_size: int) -> AsyncIterator[asyncpg.Pool]:
    """An asyncpg pool with the schema migrated, closed on exit.

    Raises:
        StoreError: Postgres is unreachable or the migration failed.
    """
    try:
        pool = await bridge.call(_aio_open_pool, dsn, pool_size)
    except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
        raise StoreError(f"postgres: cannot connect or migrate: {exc}") from exc
    try:
        yield pool
    finally:
        with trio.CancelScope(shield=True):
            with trio.move_on_after(PG_CONNECT_TIMEOUT):
                await bridge.call(pool.close)
