"""Notifications and follows in Postgres (asyncpg on the bridge; one crossing per call).

Each user's notifications are a bounded durable queue: after every write the
user keeps only the newest ``keep``. A notification is unique per
``(user_id, source_event)``, so replaying an event from the log creates
nothing new; ``pushed_at`` records that it reached the user's real-time
history, so a replay after a crash pushes exactly what was not pushed yet.
"""

from __future__ import annotations

import json

import asyncpg

from engage.domain.notifications import Draft, Notification
from engage.store.bridge import Bridge
from engage.store.postgres import PG_CONNECT_TIMEOUT
from engage.store.base import PostgresStore

_COLUMNS = "id, user_id, kind, data, created_at, read_at"

_INSERT = """
INSERT INTO notifications AS n (user_id, kind, data, source_event)
SELECT u, k, d::jsonb, s
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS t(u, k, d, s)
ON CONFLICT (user_id, source_event) DO UPDATE SET kind = n.kind
RETURNING id, user_id, kind, data, created_at, read_at, pushed_at
"""

# Keep each touched user's newest $2 notifications.
_PRUNE = """
DELETE FROM notifications n
 USING (SELECT DISTINCT unnest($1::text[]) AS u) t
 WHERE n.user_id = t.u
   AND n.id <= (SELECT id FROM notifications
                 WHERE user_id = t.u ORDER BY id DESC OFFSET $2 LIMIT 1)
"""


def _notification(row: asyncpg.Record) -> Notification:
    return Notification(row["id"], row["user_id"], row["kind"], json.loads(row["data"]),
                        row["created_at"], row["read_at"] is not None)


class PostgresNotifications(PostgresStore):
    """Per-user notification queues and the follow graph.

    Args:
        keep: notifications kept per user (the oldest beyond it are deleted).
    """

    def __init__(self, pool: asyncpg.Pool, bridge: Bridge, *, keep: int) -> None:
        self.pool = pool
        self.bridge = bridge
        self.keep = keep

    async def add(self, drafts: list[Draft]) -> list[Notification]:
        """Store ``drafts`` (duplicates of stored ones are not stored again).

        Returns:
            The notifications not yet pushed: the new ones and any earlier
            copy whose push never completed.
        """
        if not drafts:
            return []
        return await self._call(self._aio_add, drafts)

    async def mark_pushed(self, ids: list[int]) -> None:
        """Record that these notifications are in their users' real-time history."""
        if ids:
            await self._call(self._aio_mark_pushed, ids)

    async def page(self, user: str, before: int | None, unread: bool,
                   limit: int) -> tuple[list[Notification], bool]:
        """Newest first, below id ``before``; and whether more exist."""
        return await self._call(self._aio_page, user, before, unread, limit)

    async def mark_read(self, user: str, ids: list[int] | None) -> int:
        """Mark ``ids`` (or all, for None) of ``user``'s as read; returns how many changed."""
        return await self._call(self._aio_mark_read, user, ids)

    async def unread_count(self, user: str) -> int:
        return await self._call(self._aio_unread_count, user)

    async def follow(self, follower: str, author: str) -> bool:
        """``follower`` follows ``author``; True if that is new."""
        return await self._call(self._aio_follow, follower, author)

    async def unfollow(self, follower: str, author: str) -> bool:
        """``follower`` stops following ``author``; True if they did follow."""
        return await self._call(self._aio_unfollow, follower, author)

    async def followers(self, author: str) -> list[str]:
        return await self._call(self._aio_followers, author)

    # -- asyncio side ------------------------------------------------------------

    async def _aio_add(self, drafts: list[Draft]) -> list[Notification]:
        unique = list({(d.user, d.source_event): d for d in drafts}.values())
        async with self.pool.acquire(timeout=PG_CONNECT_TIMEOUT) as conn:
            async with conn.transaction():
                rows = await conn.fetch(
                    _INSERT, [d.user for d in unique], [d.kind for d in unique],
                    [json.dumps(d.data, separators=(",", ":")) for d in unique],
                    [d.source_event for d in unique])
                await conn.execute(_PRUNE, [d.user for d in unique], self.keep)
        return [_notification(r) for r in rows if r["pushed_at"] is None]

    async def _aio_mark_pushed(self, ids: list[int]) -> None:
        async with self.pool.acquire(timeout=PG_CONNECT_TIMEOUT) as conn:
            await conn.execute("UPDATE notifications SET pushed_at = now() "
                               "WHERE id = ANY($1::bigint[])", ids)

    async def _aio_page(self, user, before, unread, limit):
        where, args = ["user_id = $1"], [user]
        if before is not None:
            args.append(before)
            where.append(f"id < ${len(args)}")
        if unread:
            where.append("read_at IS NULL")
        args.append(limit + 1)
        async with self.pool.acquire(timeout=PG_CONNECT_TIMEOUT) as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM notifications WHERE {' AND '.join(where)} "
                f"ORDER BY id DESC LIMIT ${len(args)}", *args)
        return [_notification(r) for r in rows[:limit]], len(rows) > limit

    async def _aio_mark_read(self, user, ids):
        async with self.pool.acquire(timeout=PG_CONNECT_TIMEOUT) as conn:
            if ids is None:
                status = await conn.execute(
                    "UPDATE notifications SET read_at = now() "
                    "WHERE user_id = $1 AND read_at IS NULL", user)
            else:
                status = await conn.execute(
                    "UPDATE notifications SET read_at = now() "
                    "WHERE user_id = $1 AND id = ANY($2::bigint[]) AND read_at IS NULL",
                    user, ids)
        return int(status.split()[-1])

    async def _aio_unread_count(self, user):
        async with self.pool.acquire(timeout=PG_CONNECT_TIMEOUT) as conn:
            return await conn.fetchval("SELECT count(*) FROM notifications "
                                       "WHERE user_id = $1 AND read_at IS NULL", user)

    async def _aio_follow(self, follower, author):
        async with self.pool.acquire(timeout=PG_CONNECT_TIMEOUT) as conn:
            status = await conn.execute(
                "INSERT INTO follows (follower, author) VALUES ($1, $2) "
                "ON CONFLICT DO NOTHING", follower, author)
        return status.endswith(" 1")

    async def _aio_unfollow(self, follower, author):
        async with self.pool.acquire(timeout=PG_CONNECT_TIMEOUT) as conn:
            status = await conn.execute(
                "DELETE FROM follows WHERE follower = $1 AND author = $2", follower, author)
        return status.endswith(" 1")

    async def _aio_followers(self, author):
        async with self.pool.acquire(timeout=PG_CONNECT_TIMEOUT) as conn:
            rows = await conn.fetch("SELECT follower FROM follows WHERE author = $1 "
                                    "ORDER BY follower", author)
        return [r["follower"] for r in rows]
