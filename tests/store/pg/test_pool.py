"""The native Postgres pool: its deadline, and connections that die."""

from __future__ import annotations

import pytest
import trio

from engage.errors import StoreError
from engage.store.pg import PgPool
from tests.conftest import BASE_DATABASE_URL
from tests.support import free_port


async def _pid(conn) -> int:
    return await conn.fetchval("SELECT pg_backend_pid()")


async def test_connections_are_reused_and_counted():
    with trio.fail_after(10):
        pool = PgPool.from_url(BASE_DATABASE_URL, 2)
        try:
            first = await pool.run(_pid)
            assert await pool.run(_pid) == first
            assert pool.statistics() == {"size": 2, "idle": 1, "in_use": 0}
        finally:
            await pool.aclose()


async def test_waiting_for_a_connection_counts_against_the_deadline():
    with trio.fail_after(10):
        pool = PgPool.from_url(BASE_DATABASE_URL, 1)
        held = trio.Event()
        release = trio.Event()

        async def hold(conn):
            held.set()
            await release.wait()

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(pool.run, hold)
                await held.wait()
                with pytest.raises(StoreError, match="no answer"):
                    await pool.run(_pid, timeout=0.2)
                release.set()
            assert await pool.run(_pid)
        finally:
            await pool.aclose()


async def test_a_connection_the_server_closed_is_replaced():
    with trio.fail_after(10):
        pool = PgPool.from_url(BASE_DATABASE_URL, 2)
        other = PgPool.from_url(BASE_DATABASE_URL, 1)
        try:
            victim = await pool.run(_pid)

            async def terminate(conn):
                assert await conn.fetchval("SELECT pg_terminate_backend($1::int4)", victim)

            await other.run(terminate)
            await trio.sleep(0.1)  # the FATAL message and the close reach us
            assert await pool.run(_pid) != victim
        finally:
            await pool.aclose()
            await other.aclose()


async def test_a_statement_past_the_deadline_drops_its_connection():
    with trio.fail_after(10):
        pool = PgPool.from_url(BASE_DATABASE_URL, 1)
        try:
            first = await pool.run(_pid)

            async def slow(conn):
                await conn.fetch("SELECT pg_sleep(5)")

            with pytest.raises(StoreError, match="no answer"):
                await pool.run(slow, timeout=0.2)
            assert pool.statistics()["idle"] == 0
            assert await pool.run(_pid) != first
        finally:
            await pool.aclose()


async def test_a_closed_pool_refuses():
    pool = PgPool.from_url(BASE_DATABASE_URL, 1)
    await pool.aclose()
    with pytest.raises(StoreError, match="closed"):
        await pool.run(_pid)


async def test_an_unreachable_server_is_a_store_error():
    with trio.fail_after(10):
        pool = PgPool.from_url(f"postgresql://postgres@127.0.0.1:{free_port()}/x", 1)
        with pytest.raises(StoreError, match="cannot connect"):
            await pool.run(_pid)
        await pool.aclose()
