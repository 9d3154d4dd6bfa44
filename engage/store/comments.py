"""Comments in Postgres (asyncpg on the bridge; one crossing per call; new
comments through the trio-native pool when there is one, see
:meth:`~engage.store.base.PostgresStore._run`).

Only ``visible`` comments are listed (see engage/domain/moderation.py for
the states); a status change is a compare-and-set on the status the caller
saw, so two processes moderating one comment cannot both win.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, Sequence

import asyncpg

from engage.domain.comments import Comment
from engage.errors import ClientError, NotFound, ValidationError
from engage.store.bridge import Bridge
from engage.store.postgres import PG_CONNECT_TIMEOUT
from engage.store.base import PostgresStore
from engage.store.pg import PgPool

_COLUMNS = ("id, content_id, author, body, parent_id, root_id, created_at, edited_at, "
            "deleted_at, status")
#: Shown in lists: visible and not deleted.
_SHOWN = "status = 'visible' AND deleted_at IS NULL"


def _comment(row: asyncpg.Record) -> Comment:
    return Comment(row["id"], row["content_id"], row["author"], row["body"], row["parent_id"],
                   row["root_id"], row["created_at"], row["edited_at"],
                   row["deleted_at"] is not None, row["status"])


class CommentStore(Protocol):
    async def create(self, content_id: str, author: str, body: str,
                     parent: int | None, status: str = "visible") -> Comment: ...

    async def create_many(self, content_id: str,
                          rows: Sequence[tuple[str, str, int | None, str]]
                          ) -> list[tuple[Comment, str | None] | ClientError]: ...

    async def get(self, comment_id: int) -> Comment | None: ...

    async def edit(self, comment_id: int, body: str, *, expected: str | None = None,
                   status: str | None = None) -> Comment | None: ...

    async def delete(self, comment_id: int) -> Comment: ...

    async def set_status(self, comment_id: int, expected: str, status: str, by: str, *,
                         trust: bool = False) -> Comment | None: ...

    async def delete_by_author(self, content_id: str, author: str) -> list[Comment]: ...

    async def contents_by_author(self, author: str) -> list[str]: ...

    async def held(self, after: tuple[datetime, int] | None,
                   limit: int) -> tuple[list[Comment], bool]: ...

    async def threads(self, content_id: str, sort: str, after: tuple[datetime, int] | None,
                      limit: int) -> tuple[list[tuple[Comment, list[Comment]]], bool]: ...


class PostgresComments(PostgresStore):
    """:class:`CommentStore` on asyncpg."""

    def __init__(self, pool: asyncpg.Pool, bridge: Bridge, *,
                 native: PgPool | None = None) -> None:
        self.pool = pool
        self.bridge = bridge
        self.native = native

    async def create(self, content_id, author, body, parent, status="visible"):
        """Store a comment with ``status`` (``visible`` or ``held``).

        Raises:
            NotFound: ``parent_not_found`` (missing, deleted or not visible).
            ValidationError: ``parent_elsewhere``.
        """
        comment, _ = await self._run(self._insert, content_id, author, body, parent, status)
        return comment

    async def create_many(self, content_id: str,
                          rows: Sequence[tuple[str, str, int | None, str]]
                          ) -> list[tuple[Comment, str | None] | ClientError]:
        """Store several comments ``(author, body, parent, status)`` in order,
        in one crossing and on one connection (a burst of comments on one item).

        Returns, per row, ``(comment, the parent's author or None)`` or the
        :class:`ClientError` that :meth:`create` would have raised for it.
        """
        return await self._run(self._insert_many, content_id, list(rows))

    async def get(self, comment_id):
        """The comment in any state (deleted ones too), or ``None``."""
        return await self._call(self._aio_get, comment_id)

    async def edit(self, comment_id, body, *, expected=None, status=None):
        """Change the body (and the status to ``status``, if given) of a comment
        not deleted and, if ``expected`` is given, still in that status.

        Returns ``None`` when ``expected`` no longer holds.

        Raises:
            NotFound: the comment does not exist or is deleted.
        """
        return await self._call(self._aio_edit, comment_id, body, expected, status)

    async def delete(self, comment_id):
        """Delete; the returned comment keeps the status it had before.

        Raises:
            NotFound: the comment does not exist or is already deleted.
        """
        return await self._call(self._aio_delete, comment_id)

    async def set_status(self, comment_id, expected, status, by, *, trust=False):
        """Move a comment not deleted from ``expected`` to ``status``, recording
        the moderator ``by``; with ``trust``, its author becomes a trusted
        commenter in the same transaction. ``None`` if it was not in ``expected``.
        """
        return await self._call(self._aio_set_status, comment_id, expected, status, by, trust)

    async def delete_by_author(self, content_id, author):
        """Delete every comment of ``author`` on ``content_id``; each returned
        comment keeps the status it had before."""
        return await self._call(self._aio_delete_by_author, content_id, author)

    async def contents_by_author(self, author):
        """The content ids on which ``author`` has comments not deleted."""
        return await self._call(self._aio_contents_by_author, author)

    async def held(self, after, limit):
        """The moderation queue: held comments, oldest first, after the
        ``(created_at, id)`` cursor; and whether more follow."""
        return await self._call(self._aio_held, after, limit)

    async def threads(self, content_id, sort, after, limit):
        return await self._call(self._aio_threads, content_id, sort, after, limit)

    # -- asyncio side ------------------------------------------------------------

    @classmethod
    async def _insert_many(cls, conn, content_id: str, rows: list
                           ) -> list[tuple[Comment, str | None] | ClientError]:
        """:meth:`_insert` each row on ``conn`` (either driver's)."""
        out: list[tuple[Comment, str | None] | ClientError] = []
        for author, body, parent, status in rows:
            try:
                out.append(await cls._insert(conn, content_id, author, body, parent, status))
            except ClientError as exc:
                out.append(exc)
        return out

    @staticmethod
    async def _insert(conn, content_id: str, author: str, body: str, parent: int | None,
                      status: str) -> tuple[Comment, str | None]:
        """Insert one comment; returns it and its parent's author.

        Raises:
            NotFound: ``parent_not_found`` (missing, deleted or not visible).
            ValidationError: ``parent_elsewhere``.
        """
        root = parent_author = None
        if parent is not None:
            row = await conn.fetchrow(
                "SELECT content_id, root_id, deleted_at, status, author FROM comments "
                "WHERE id = $1", parent)
            if row is None or row["deleted_at"] is not None or row["status"] != "visible":
                raise NotFound(f"parent comment {parent} does not exist",
                               code="parent_not_found")
            if row["content_id"] != content_id:
                raise ValidationError("parent comment belongs to another content item",
                                      code="parent_elsewhere")
            root = row["root_id"] or parent
            parent_author = row["author"]
        row = await conn.fetchrow(
            f"INSERT INTO comments (content_id, author, body, parent_id, root_id, status) "
            f"VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_COLUMNS}",
            content_id, author, body, parent, root, status)
        return _comment(row), parent_author

    async def _aio_get(self, comment_id: int) -> Comment | None:
        async with self.pool.acquire(timeout=PG_CONNECT_TIMEOUT) as conn:
            row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM comments WHERE id = $1", comment_id)
        return None if row is None else _comment(row)

    async def _aio_edit(self, comment_id: int, body: str, expected: str | None,
                        status: str | None) -> Comment | None:
        async with self.pool.acquire(timeout=PG_CONNECT_TIMEOUT) as conn:
            row = await conn.fetchrow(
                f"UPDATE comments SET body = $2, edited_at = now(), "
                f"status = COALESCE($4, status) "
                f"WHERE id = $1 AND deleted_at IS NULL AND ($3::text IS NULL OR status = $3) "
                f"RETURNING {_COLUMNS}", comment_id, body, expected, status)
            if row is None and expected is not None:
                exists = await conn.fetchval(
                    "SELECT true FROM comments WHERE id = $1 AND deleted_at IS NULL", comment_id)
                if exists:
                    return None
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

    async def _aio_set_status(self, comment_id: int, expected: str, status: str, by: str,
                              trust: bool) -> Comment | None:
        async with self.pool.acquire(timeout=PG_CONNECT_TIMEOUT) as conn:
            async with conn.transaction():
                row = await conn.fetchrow(
                    f"UPDATE comments SET status = $3, moderated_at = now(), moderated_by = $4 "
                    f"WHERE id = $1 AND status = $2 AND deleted_at IS NULL "
                    f"RETURNING {_COLUMNS}", comment_id, expected, status, by)
                if row is not None and trust:
                    await conn.execute(
                        "INSERT INTO trusted_commenters (user_id, approved_by) VALUES ($1, $2) "
                        "ON CONFLICT (user_id) DO NOTHING", row["author"], by)
        return None if row is None else _comment(row)

    async def _aio_delete_by_author(self, content_id: str, author: str) -> list[Comment]:
        async with self.pool.acquire(timeout=PG_CONNECT_TIMEOUT) as conn:
            rows = await conn.fetch(
                f"UPDATE comments SET deleted_at = now() "
                f"WHERE content_id = $1 AND author = $2 AND deleted_at IS NULL "
                f"RETURNING {_COLUMNS}", content_id, author)
        return sorted((_comment(r) for r in rows), key=lambda c: (c.created_at, c.id))

    async def _aio_contents_by_author(self, author: str) -> list[str]:
        async with self.pool.acquire(timeout=PG_CONNECT_TIMEOUT) as conn:
            rows = await conn.fetch(
                "SELECT DISTINCT content_id FROM comments "
                "WHERE author = $1 AND deleted_at IS NULL ORDER BY content_id", author)
        return [r["content_id"] for r in rows]

    async def _aio_held(self, after, limit: int):
        where = "status = 'held' AND deleted_at IS NULL"
        args: list = [limit + 1]
        if after is not None:
            where += " AND (created_at, id) > ($2, $3)"
            args += list(after)
        async with self.pool.acquire(timeout=PG_CONNECT_TIMEOUT) as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM comments WHERE {where} "
                f"ORDER BY created_at, id LIMIT $1", *args)
        return [_comment(r) for r in rows[:limit]], len(rows) > limit

    async def _aio_threads(self, content_id: str, sort: str, after, limit: int):
        newest = sort == "newest"
        order = "DESC" if newest else "ASC"
        where = f"content_id = $1 AND parent_id IS NULL AND {_SHOWN}"
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
                f"AND {_SHOWN} ORDER BY created_at, id",
                [r["id"] for r in roots]) if roots else []
        by_root: dict[int, list[Comment]] = {}
        for row in replies:
            by_root.setdefault(row["root_id"], []).append(_comment(row))
        return [(_comment(r), by_root.get(r["id"], [])) for r in roots], more
