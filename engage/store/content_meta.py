"""Published content metadata in Postgres (asyncpg on the bridge).

``GET /v1/content/{id}`` adds an item's title, url and author when it was
published: reading them from Postgres on every counts read cost a database
round trip per request for data that changes about never. :meth:`get`
therefore remembers each answer briefly (:data:`META_TTL` seconds when
published, :data:`ABSENT_TTL` for "not published", so a new publication
shows within that on every other instance); :meth:`store` on this instance
updates the memory at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import asyncpg
import trio

from engage.domain.content import ContentMeta
from engage.store.bridge import Bridge
from engage.store.postgres import PG_CONNECT_TIMEOUT
from engage.store.base import PostgresStore
from engage.store.pg import PgPool

_COLUMNS = "id, title, url, author, published_at, tags"
#: ``announce_step`` of content announced on every feed.
ANNOUNCED = 2
#: Seconds a published item's metadata is reused by :meth:`PostgresContentMeta.get`.
META_TTL: Final = 5.0
#: Seconds "not published" is reused: a publication shows in other instances'
#: counts reads within this (each unpublished item read costs a query this often).
ABSENT_TTL: Final = 2.0
#: Most content ids remembered; the oldest entry makes room.
META_CACHE_SIZE: Final = 10_000


def _meta(row: asyncpg.Record) -> ContentMeta:
    return ContentMeta(row["id"], row["title"], row["url"], row["author"], row["published_at"],
                       tuple(row["tags"]))


class PostgresContentMeta(PostgresStore):
    """Stores and lists published content."""

    def __init__(self, pool: asyncpg.Pool, bridge: Bridge, *,
                 native: PgPool | None = None) -> None:
        self.pool = pool
        self.bridge = bridge
        self.native = native
        self._remembered: dict[str, tuple[float, ContentMeta | None]] = {}
        #: Reads under way: concurrent misses for one id wait for the same query.
        self._reading: dict[str, trio.Event] = {}

    async def store(self, meta: ContentMeta) -> int:
        """Insert or update ``meta``; return how far its announcement has got.

        Returns:
            0 for new content (nothing announced yet), 1 if only ``feed:all``
            was announced, 2 if fully announced (:data:`ANNOUNCED`).
        """
        step = await self._call(self._aio_store, meta)
        self._remember(meta.id, meta)
        return step

    async def mark_announced(self, content_id: str, step: int) -> None:
        """Record that announcement ``step`` (1 or 2) of ``content_id`` is done."""
        await self._call(self._aio_mark, content_id, step)

    async def get(self, content_id: str) -> ContentMeta | None:
        """The item's metadata (None: not published), at most a few seconds old."""
        entry = self._remembered.get(content_id)
        if entry is not None and entry[0] > trio.current_time():
            return entry[1]
        reading = self._reading.get(content_id)
        if reading is not None:  # a hot item's expiry must not start one query per reader
            await reading.wait()
            entry = self._remembered.get(content_id)
            if entry is not None and entry[0] > trio.current_time():
                return entry[1]
        self._reading[content_id] = reading = trio.Event()
        try:
            meta = await self._run(self._get, content_id)
        finally:
            del self._reading[content_id]
            reading.set()
        self._remember(content_id, meta)
        return meta

    def _remember(self, content_id: str, meta: ContentMeta | None) -> None:
        remembered = self._remembered
        if content_id not in remembered and len(remembered) >= META_CACHE_SIZE:
            del remembered[next(iter(remembered))]  # the oldest insertion
        ttl = META_TTL if meta is not None else ABSENT_TTL
        remembered[content_id] = (trio.current_time() + ttl, meta)

    async def author_of(self, content_id: str) -> str | None:
        meta = await self.get(content_id)
        return meta.author if meta else None

    async def newest(self, author: str | None, after: tuple[datetime, str] | None,
                     limit: int) -> tuple[list[ContentMeta], bool]:
        """Newest first, optionally by one author, after a cursor; and whether more exist."""
        return await self._call(self._aio_newest, author, after, limit)

    async def _aio_store(self, meta: ContentMeta) -> int:
        async with self.pool.acquire(timeout=PG_CONNECT_TIMEOUT) as conn:
            return await conn.fetchval(
                "INSERT INTO content (id, title, url, author, published_at, tags, announce_step) "
                "VALUES ($1, $2, $3, $4, $5, $6, 0) "
                "ON CONFLICT (id) DO UPDATE SET title = EXCLUDED.title, url = EXCLUDED.url, "
                "author = EXCLUDED.author, published_at = EXCLUDED.published_at, "
                "tags = EXCLUDED.tags RETURNING announce_step",
                meta.id, meta.title, meta.url, meta.author, meta.published_at, list(meta.tags))

    async def _aio_mark(self, content_id: str, step: int) -> None:
        async with self.pool.acquire(timeout=PG_CONNECT_TIMEOUT) as conn:
            await conn.execute(
                "UPDATE content SET announce_step = GREATEST(announce_step, $2) WHERE id = $1",
                content_id, step)

    @staticmethod
    async def _get(conn, content_id: str) -> ContentMeta | None:
        """On ``conn`` (either driver's): an applause's or comment's notification
        asks who wrote the item, so it is on the interaction path."""
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
