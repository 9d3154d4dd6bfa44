"""Comments in Postgres (asyncpg on the bridge; one crossing per call)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import asyncpg

from engage.domain.comments import Comment
from engage.errors import NotFound, ValidationError
from engage.store.bridge import Bridge
from engage.store.postgres import PG_CONNECT_TIMEOUT
from engage.store.base import PostgresStore

_COLUMNS = "id, content_id, author, body, parent_id, root_id, created_at, edited_at, deleted_at"


def _comment(row: asyncpg.Record) -> Comment:
    return Comment(row["id"], row["content_id"], row["author"], row["body"], row["parent_id"],
                   row["root_id"], row["created_at"], row["edited_at"],
                   row["deleted_at"] is not None)


class CommentStore(Protocol):
    async def create(self, content_id: str, author: str, body: str,
                     parent: int | None) -> Comment: ...

    async def get(self, comment_id: int) -> Comment | None: ...

    async def edit(self, comment_id: int, body: str) -> Comment: ...

    async def delete(self, comment_id: int) -> Comment: ...

    async def threads(self, content_id: str, sort: str, after: tuple[datetime, int] | None,
                      limit: int) -> tuple[list[tuple[Comment, list[Comment]]], bool]: ...


class PostgresComments(PostgresStore):
    """:class:`CommentStore` on asyncpg."""

    def __init__(self, pool: asyncpg.Pool, bridge: Bridge) -> None:
        self.pool = pool
        self.bridge = bridge

    async def create(self, content_id, author, body, parent):
        return await self._call(self._aio_create, content_id, author, body, parent)

    async def get(self, comment_id):
        return await self._call(self._aio_get, comment_id)

    async def edit(self, comment_id, body):
        return await self._call(self._aio_edit, comment_id, body)

    async def delete(self, comment_id):
        return await self._call(self._aio_delete, comment_id)

    async def threads(self, content_id, sort, after, limit):
        return await self._call(self._aio_threads, content_id, sort, after, limit)

    # -- asyncio side ------------------------------------------------------------

    async def _aio_create(self, content_id: str, author: str, body: str,
                          parent: int | None) -> Comment:
        async with self.pool.acquire(timeout=PG_CONNECT_TIMEOUT) as conn:
            root = None
            if parent is not None:
                row = await conn.fetchrow(
                    "SELECT content_id, root_id, deleted_at FROM comments WHERE id = $1", parent)
                if row is None or row["deleted_at"] is not None:
                    raise NotFound(f"parent comment {parent} does not exist",
                                   code="parent_not_found")
                if row["content_id"] != content_id:
                    raise ValidationError("parent comment belongs to another content item",
                                          code="parent_elsewhere")
                root = row["root_id"] or parent
            row = await conn.fetchrow(
                f"INSERT INTO comments (content_id, author, body, parent_id, root_id) "
                f"VALUES ($1, $2, $3, $4, $5) RETURNING {_COLUMNS}",
                content_id, author, body, parent, root)
        return _comment(row)

    async def _aio_get(self, comment_id: int) -> Comment | None:
        async with self.pool.acquire(timeout=PG_CONNECT_TIMEOUT) as conn:
            row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM comments WHERE id = $1", comment_id)
        return None if row is None else _comment(row)

    async def _aio_edit(self, comment_id: int, body: str) -> Comment:
        async with self.pool.acquire(timeout=PG_CONNECT_TIMEOUT) as conn:
            row = await conn.fetchrow(
                f"UPDATE comments SET body = $2, edited_at = now() "
                f"WHERE id = $1 AND deleted_at IS NULL RETURNING {_COLUMNS}", comment_id, body)
        if row is None:
            raise NotFound(f"comment {comment_id} does not exist", code="comment_not_found")
        return _comment(row)

    async def _aio_delete(self, comment_id: int) -> Comment:
        async with self.pool.acquire(timeout=PG_CONNECT_TIMEOUT) as conn:
            row = await conn.fetchrow(
                f"UPDATE comments SET deleted_at = now() "
                f"WHERE id = $1 AND deleted_at IS NULL RETURNING {_COLUMNS}", comment_id)
        if row is None:
            raise NotFound(f"comment {comment_id} does not exist", code="comment_not_found")
        return _comment(row)

    async def _aio_threads(self, content_id: str, sort: str, after, limit: int):
        newest = sort == "newest"
        order = "DESC" if newest else "ASC"
        where = "content_id = $1 AND parent_id IS NULL AND deleted_at IS NULL"
        args: list = [content_id, limit + 1]
        if after is not None:
            where += f" AND (created_at, id) {'<' if newest else '>'} ($3, $4)"
            args += list(after)
        async with self.pool.acquire(timeout=PG_CONNECT_TIMEOUT) as conn:
            roots = await conn.fetch(
                f"SELECT {_COLUMNS} FROM comments WHERE {where} "
                f"ORDER BY created_at {order}, id {order} LIMIT $2", *args)
            more = len(roots) > limit
            roots = roots[:limit]
            replies = await conn.fetch(
                f"SELECT {_COLUMNS} FROM comments WHERE root_id = ANY($1::bigint[]) "
                f"AND deleted_at IS NULL ORDER BY created_at, id",
                [r["id"] for r in roots]) if roots else []
        by_root: dict[int, list[Comment]] = {}
        for row in replies:
            by_root.setdefault(row["root_id"], []).append(_comment(row))
        return [(_comment(r), by_root.get(r["id"], [])) for r in roots], more
