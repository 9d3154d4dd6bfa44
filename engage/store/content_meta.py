"""Published content metadata in Postgres (asyncpg on the bridge)."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from engage.domain.content import ContentMeta
from engage.errors import StoreError
from engage.store.bridge import Bridge
from engage.store.postgres import PG_CONNECT_TIMEOUT

_COLUMNS = "id, title, url, author, published_at, tags"


def _meta(row: asyncpg.Record) -> ContentMeta:
    return ContentMeta(row["id"], row["title"], row["url"], row["author"], row["published_at"],
                       tuple(row["tags"]))


class PostgresContentMeta:
    """Stores and lists published content."""

    def __init__(self, pool: asyncpg.Pool, bridge: Bridge) -> None:
        self.pool = pool
        self.bridge = bridge

    async def _call(self, fn, *args):
        try:
            return await self.bridge.call(fn, *args)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            raise StoreError(f"postgres: {exc}") from exc

    async def store(self, meta: ContentMeta) -> bool:
        """Insert ``meta`` unless its id exists (then update it); True if new."""
        return await self._call(self._aio_store, meta)

    async def get(self, content_id: str) -> ContentMeta | None:
        return await self._call(self._aio_get, content_id)

    async def author_of(self, content_id: str) -> str | None:
        meta = await self.get(content_id)
        return meta.author if meta else None

    async def newest(self, author: str | None, after: tuple[datetime, str] | None,
                     limit: int) -> tuple[list[ContentMeta], bool]:
        """Newest first, optionally by one author, after a cursor; and whether more exist."""
        return await self._call(self._aio_newest, author, after, limit)

    async def _aio_store(self, meta: ContentMeta) -> bool:
        async with self.pool.acquire(timeout=PG_CONNECT_TIMEOUT) as conn:
            # xmax = 0 only for a freshly inserted row: tells new from update.
            return await conn.fetchval(
                "INSERT INTO content (id, title, url, author, published_at, tags) "
                "VALUES ($1, $2, $3, $4, $5, $6) "
                "ON CONFLICT (id) DO UPDATE SET title = EXCLUDED.title, url = EXCLUDED.url, "
                "author = EXCLUDED.author, published_at = EXCLUDED.published_at, "
                "tags = EXCLUDED.tags RETURNING (xmax = 0)",
                meta.id, meta.title, meta.url, meta.author, meta.published_at, list(meta.tags))

    async def _aio_get(self, content_id: str) -> ContentMeta | None:
        async with self.pool.acquire(timeout=PG_CONNECT_TIMEOUT) as conn:
            row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM content WHERE id = $1", content_id)
        return None if row is None else _meta(row)

    async def _aio_newest(self, author, after, limit):
        where, args = [], []
        if author is not None:
            args.append(author)
            where.append(f"author = ${len(args)}")
        if after is not None:
            args += list(after)
            where.append(f"(published_at, id) < (${len(args) - 1}, ${len(args)})")
        args.append(limit + 1)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        async with self.pool.acquire(timeout=PG_CONNECT_TIMEOUT) as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM content {clause} "
                f"ORDER BY published_at DESC, id DESC LIMIT ${len(args)}", *args)
        return [_meta(r) for r in rows[:limit]], len(rows) > limit
