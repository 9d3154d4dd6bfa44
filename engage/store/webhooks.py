"""The webhook delivery queue in Postgres (asyncpg on the bridge).

Rows are claimed with ``FOR UPDATE SKIP LOCKED`` and leased by pushing
``next_attempt_at`` forward, so several instances share the work and a
delivery whose instance died is tried again once its lease runs out.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from engage.store.base import PostgresStore
from engage.store.bridge import Bridge
from engage.store.postgres import PG_CONNECT_TIMEOUT


@dataclass(frozen=True, slots=True)
class Delivery:
    """One POST owed to one endpoint."""

    event_id: str
    url: str
    event_type: str
    body: bytes
    attempts: int


class PostgresWebhooks(PostgresStore):
    """The ``webhook_deliveries`` table: one row per (event id, endpoint URL).

    Args:
        pool: asyncpg pool on the bridge's loop.
        bridge: the trio-asyncio bridge.
    """

    def __init__(self, pool: asyncpg.Pool, bridge: Bridge) -> None:
        self.pool = pool
        self.bridge = bridge

    async def enqueue(self, items: list[tuple[str, str, str, bytes]]) -> None:
        """Queue ``(event_id, url, event_type, body)`` rows in one statement.

        A row whose (event id, url) is already queued is ignored, so an event
        read twice (a consumer died before its ack) is delivered once.
        """
        if items:
            await self._call(self._aio_enqueue, items)

    async def claim_due(self, limit: int, lease: float) -> list[Delivery]:
        """Up to ``limit`` due deliveries, leased to us for ``lease`` seconds.

        Rows another instance is claiming at the same moment are skipped
        (``FOR UPDATE SKIP LOCKED``); a claimed row is not due again until its
        lease ends, so it goes to no one else unless we die holding it.
        """
        return await self._call(self._aio_claim_due, limit, lease)

    async def delivered(self, event_id: str, url: str) -> None:
        """Record a successful POST (status ``delivered``)."""
        await self._call(self._aio_finish, event_id, url, "delivered", None, None)

    async def failed_attempt(self, event_id: str, url: str, error: str, *,
                             retry_in: float | None) -> None:
        """Record a failed try: retry in ``retry_in`` seconds, or give up (``None``)."""
        status = "pending" if retry_in is not None else "failed"
        await self._call(self._aio_finish, event_id, url, status, error[:500], retry_in)

    async def deliveries(self) -> list[dict]:
        """Every delivery row, oldest first (for operators and tests)."""
        return await self._call(self._aio_all)

    async def _aio_enqueue(self, items):
        async with self.pool.acquire(timeout=PG_CONNECT_TIMEOUT) as conn:
            await conn.execute(
                "INSERT INTO webhook_deliveries (event_id, url, event_type, body) "
                "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[]) "
                "ON CONFLICT DO NOTHING",
                [i[0] for i in items], [i[1] for i in items], [i[2] for i in items],
                [i[3] for i in items])

    async def _aio_claim_due(self, limit, lease):
        async with self.pool.acquire(timeout=PG_CONNECT_TIMEOUT) as conn:
            rows = await conn.fetch(
                "UPDATE webhook_deliveries d SET next_attempt_at = now() + make_interval(secs => $2::float8) "
                "FROM (SELECT event_id, url FROM webhook_deliveries "
                "      WHERE status = 'pending' AND next_attempt_at <= now() "
                "      ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) due "
                "WHERE d.event_id = due.event_id AND d.url = due.url "
                "RETURNING d.event_id, d.url, d.event_type, d.body, d.attempts", limit, lease)
        return [Delivery(r["event_id"], r["url"], r["event_type"], bytes(r["body"]),
                         r["attempts"]) for r in rows]

    async def _aio_finish(self, event_id, url, status, error, retry_in):
        async with self.pool.acquire(timeout=PG_CONNECT_TIMEOUT) as conn:
            await conn.execute(
                "UPDATE webhook_deliveries SET status = $3, last_error = $4, "
                "attempts = attempts + 1, "
                "next_attempt_at = now() + make_interval(secs => COALESCE($5::float8, 0)), "
                "finished_at = CASE WHEN $3 = 'pending' THEN NULL ELSE now() END "
                "WHERE event_id = $1 AND url = $2", event_id, url, status, error, retry_in)

    async def _aio_all(self):
        async with self.pool.acquire(timeout=PG_CONNECT_TIMEOUT) as conn:
            rows = await conn.fetch(
                "SELECT event_id, url, event_type, status, attempts, last_error, "
                "next_attempt_at, finished_at FROM webhook_deliveries "
                "ORDER BY created_at, event_id, url")
        return [dict(r) for r in rows]
