"""Shared fixtures: a fresh Postgres database and Redis key prefix per test.

Tests talk to real servers. Where they are comes from
``ENGAGE_TEST_DATABASE_URL`` (a database to connect to for CREATE DATABASE)
and ``ENGAGE_TEST_REDIS_URL``; the defaults are the local services. Each test
gets its own database and prefix and removes them afterwards.
"""

from __future__ import annotations

import os
import uuid
from functools import partial

import pytest
import trio

from tests.support import admin_execute, delete_prefix, free_port

from engage.settings import load_settings
from engage.system import build_system, open_stores

BASE_DATABASE_URL = os.environ.get(
    "ENGAGE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BASE_REDIS_URL = os.environ.get("ENGAGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
JWT_SECRET = "test-secret-" + "x" * 32


def _database_url(name: str) -> str:
    head, _, _ = BASE_DATABASE_URL.rpartition("/")
    return f"{head}/{name}"


@pytest.fixture
def database_url():
    """A new, empty Postgres database, dropped after the test."""
    name = f"engage_test_{uuid.uuid4().hex[:12]}"
    admin_execute(BASE_DATABASE_URL, f'CREATE DATABASE "{name}"')
    yield _database_url(name)
    admin_execute(BASE_DATABASE_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_prefix():
    """A unique Redis key prefix; every key under it is deleted afterwards."""
    prefix = f"engage-test-{uuid.uuid4().hex[:12]}:"
    yield prefix
    delete_prefix(BASE_REDIS_URL, prefix)


@pytest.fixture
def settings(database_url, redis_prefix):
    return load_settings(
        env={},
        host="127.0.0.1",
        port=free_port(),
        database_url=database_url,
        redis_url=BASE_REDIS_URL,
        redis_prefix=redis_prefix,
        jwt_secret=JWT_SECRET,
        flush_interval=0.2,
        sweep_interval=0.5,
        sweep_stale_after=2.0,
        content_idle_timeout=30.0,
        shutdown_timeout=5.0,
        # Tests drive many requests from one address; tests/gateway turn limits on.
        rate_limits=False,
    )


@pytest.fixture
async def stores(settings):
    async with open_stores(settings) as opened:
        yield opened


@pytest.fixture
async def system(settings, stores, nursery):
    """The running supervisor tree (no HTTP)."""
    built = build_system(settings, stores)
    scope = trio.CancelScope()

    async def run(*, task_status):
        with scope:
            await built.supervisor.run(task_status=task_status)

    await nursery.start(run)
    yield built
    scope.cancel()


@pytest.fixture
async def server(system, nursery):
    """The HTTP gateway on an ephemeral 127.0.0.1 port; yields its base URL."""
    from engage.http import create_app
    from run import serve

    done = trio.Event()
    stop = trio.Event()

    async def run(*, task_status):
        try:
            await serve(system, create_app(system), stop.wait, task_status=task_status)
        finally:
            done.set()

    urls = await nursery.start(run)
    yield urls[0]
    stop.set()
    with trio.move_on_after(5):
        await done.wait()


@pytest.fixture
async def client(server):
    import httpx
    async with httpx.AsyncClient(base_url=server, timeout=10.0) as c:
        yield c


@pytest.fixture
def token():
    """Sign a token for a user id: ``token("alice")``."""
    from engage.auth import issue_token
    return partial(issue_token, JWT_SECRET)


@pytest.fixture
def auth(token):
    """Headers for a user: ``auth("alice")``."""
    return lambda user: {"Authorization": f"Bearer {token(user)}"}
