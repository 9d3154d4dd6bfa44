"""Assembles the process: stores, actors and the supervisor tree.

::

    root (rest_for_one)
    ├── mirror       Redis group-commit writer              (permanent)
    ├── flush        pending changes -> Postgres             (permanent, final flush on stop)
    ├── sweeper      batches left by dead processes          (permanent)
    ├── content      DynamicSupervisor of content actors     (permanent; children transient)
    ├── publisher    publish stream -> content + feeds       (permanent)
    ├── notifier     event log -> per-user notifications     (permanent)
    ├── webhooks     event log -> signed POSTs to site owners (permanent)
    ├── presence     "N watching" across instances           (permanent)
    ├── router       one Redis pub/sub connection, fan-out   (permanent)
    └── connections  DynamicSupervisor of WebSocket actors   (permanent; children temporary)

``rest_for_one``: if an actor restarts, everything started after it (which may
hold its state or talk to it) restarts too. Children stop in reverse:
sockets close with 1001 first, then content actors finish, then the final
flush, before Redis and Postgres close.
"""

from __future__ import annotations

import logging
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import AsyncIterator

import redis.asyncio as aioredis
import trio

from engage.actors import ContentDirectory, FlushActor, MirrorActor, SweeperActor
from engage.actors.connection import ConnectionContext, ConnectionDirectory
from engage.actors.notifier import NotifierActor
from engage.actors.presence import PresenceActor
from engage.actors.publisher import PublisherActor
from engage.actors.router import RouterActor
from engage.actors.webhooks import WebhookActor
from engage.auth import verifier_for
from engage.errors import StoreError
from engage.limits import RateLimits
from engage.domain.moderation import Policy
from engage.settings import Settings
from engage.store import Keys, PostgresCounters, RedisCounterCache
from engage.store.bridge import Bridge, open_bridge
from engage.store.comments import PostgresComments
from engage.store.content_meta import PostgresContentMeta
from engage.store.events import EventLog
from engage.store.history import RedisHistory
from engage.store.moderation import PostgresModeration
from engage.store.notifications import PostgresNotifications
from engage.store.presence import RedisPresence
from engage.store.webhooks import PostgresWebhooks
from engage.store.publishing import PublishStream
from engage.store.ratelimit import RedisRateLimiter
from engage.store.postgres import open_postgres
from engage.store.redis_cache import open_redis
from engage.store.pg import PgPool
from engage.store.resp import RespConnection
from engage.supervisor import ChildSpec, Supervisor

log = logging.getLogger(__name__)


@dataclass
class Stores:
    """Open connections to Redis and Postgres, behind their protocols."""

    bridge: Bridge
    cache: RedisCounterCache
    database: PostgresCounters
    comments: PostgresComments
    history: RedisHistory
    redis: aioredis.Redis  # for stores made per instance (presence)
    events: EventLog
    content_meta: PostgresContentMeta
    notifications: PostgresNotifications | None = None
    moderation: PostgresModeration | None = None


@asynccontextmanager
async def open_stores(settings: Settings) -> AsyncIterator[Stores]:
    """Open the trio-asyncio loop, the Postgres pool (migrated) and Redis."""
    async with open_bridge() as bridge:
        async with open_postgres(settings.database_url, bridge,
                                 pool_size=settings.database_pool_size) as pool:
            async with open_redis(settings.redis_url, bridge,
                                  pool_size=settings.redis_pool_size) as client, \
                    _open_native(settings.redis_url) as native, \
                    _open_native(settings.redis_url) as native_history, \
                    _open_native_postgres(settings) as hot_pool:
                cache = RedisCounterCache(client, bridge, Keys(settings.redis_prefix),
                                          applause_cap=settings.applause_cap,
                                          ttl=settings.counter_ttl,
                                          view_dedup_window=settings.view_dedup_window,
                                          limits=RateLimits.from_settings(settings),
                                          native=native)
                history = RedisHistory(client, bridge, Keys(settings.redis_prefix),
                                       size=settings.history_size, ttl=settings.history_ttl,
                                       native=native_history)
                events = EventLog(client, bridge, Keys(settings.redis_prefix).events,
                                  settings.redis_url)
                moderation = PostgresModeration(
                    pool, client, bridge, Keys(settings.redis_prefix),
                    Policy.from_lists(settings.moderation_mode, settings.hold_words,
                                      settings.block_words), native=hot_pool)
                await moderation.reinstall_bans()  # a Redis wipe must not lift bans
                try:
                    yield Stores(bridge, cache,
                                 PostgresCounters(pool, bridge, native=hot_pool),
                                 PostgresComments(pool, bridge, native=hot_pool), history,
                                 client, events,
                                 PostgresContentMeta(pool, bridge, native=hot_pool),
                                 notifications=PostgresNotifications(
                                     pool, bridge, keep=settings.notify_max_per_user),
                                 moderation=moderation)
                finally:
                    with trio.CancelScope(shield=True):
                        await events.aclose()


@asynccontextmanager
async def _open_native(url: str) -> AsyncIterator[RespConnection | None]:
    """A trio-native connection for a hot path (connects on first use); None
    where it cannot speak the URL, which keeps the bridge."""
    try:
        connection = RespConnection(url)
    except StoreError as exc:
        log.info("counter scripts go through redis-py: %s", exc)
        yield None
        return
    try:
        yield connection
    finally:
        await connection.aclose()


@asynccontextmanager
async def _open_native_postgres(settings: Settings) -> AsyncIterator[PgPool | None]:
    """The trio-native pool for the per-request statements (new comments,
    the flush, an item's load and author); None where it cannot follow the
    URL (asyncpg, on the bridge, keeps them)."""
    if settings.database_hot_pool_size <= 0:
        yield None
        return
    try:
        pool = PgPool.from_url(settings.database_url, settings.database_hot_pool_size)
    except StoreError as exc:
        log.info("the hot Postgres statements go through asyncpg: %s", exc)
        yield None
        return
    try:
        yield pool
    finally:
        with trio.CancelScope(shield=True):
            await pool.aclose()


@dataclass
class System:
    """Everything the gateway needs to reach, built but not yet running."""

    settings: Settings
    stores: Stores
    mirror: MirrorActor
    flush: FlushActor
    sweeper: SweeperActor
    content: ContentDirectory
    presence: PresenceActor
    router: RouterActor
    connections: ConnectionDirectory
    supervisor: Supervisor
    instance_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    publisher: PublisherActor | None = None
    notifier: NotifierActor | None = None
    webhooks: WebhookActor | None = None
    limiter: RedisRateLimiter | None = None
    limits: RateLimits | None = None


def build_system(settings: Settings, stores: Stores, *, instance_id: str | None = None) -> System:
    """Create the actors and the root supervisor; run ``system.supervisor.run``."""
    instance_id = instance_id or uuid.uuid4().hex[:12]
    verifier_for(settings)  # a bad secret or JWKS file fails at start, not on a request
    limits = RateLimits.from_settings(settings)
    limiter = RedisRateLimiter(stores.redis, stores.bridge, Keys(settings.redis_prefix))
    mirror = MirrorActor(stores.cache)
    flush = FlushActor(stores.cache, stores.database, instance_id=instance_id,
                       interval=settings.flush_interval,
                       max_retry_delay=settings.flush_max_retry_delay)
    sweeper = SweeperActor(stores.cache, stores.database, interval=settings.sweep_interval,
                           stale_after=settings.sweep_stale_after)
    content = ContentDirectory(mirror=mirror.ref, database=stores.database,
                               comments=stores.comments, history=stores.history,
                               moderation=stores.moderation,
                               limiter=limiter if limits is not None else None,
                               idle_timeout=settings.content_idle_timeout,
                               counts_interval=settings.counts_interval,
                               edit_window=settings.edit_window,
                               max_children=settings.max_content_actors)
    keys = Keys(settings.redis_prefix)
    presence = PresenceActor(
        RedisPresence(stores.redis, stores.bridge, keys, instance_id=instance_id,
                      ttl=settings.presence_ttl),
        refresh=settings.presence_refresh)
    router = RouterActor(settings.redis_url, keys, counts_interval=settings.counts_interval,
                         presence=presence.ref)
    presence.router = router.ref
    publisher = PublisherActor(
        PublishStream(stores.redis, stores.bridge, keys, settings.redis_url),
        stores.content_meta, stores.history,
        consumer=instance_id, max_deliveries=settings.publish_max_deliveries,
        claim_idle=settings.publish_claim_idle)
    router.publisher = publisher.ref
    notifier = NotifierActor(
        stores.events, stores.history, stores.comments, stores.content_meta,
        stores.notifications, instance_id=instance_id,
        coalesce_window=settings.notify_coalesce_window,
        rate_per_minute=settings.notify_rate_per_minute)
    connections = ConnectionDirectory(
        ConnectionContext(content=content, router=router.ref, history=stores.history,
                          settings=settings, limiter=limiter, limits=limits),
        max_connections=settings.max_connections, ping_interval=settings.ws_ping_interval,
        idle_timeout=settings.ws_idle_timeout)
    webhooks = WebhookActor(
        stores.events, PostgresWebhooks(stores.database.pool, stores.bridge),
        urls=settings.webhook_endpoints, secrets=settings.webhook_keys,
        max_attempts=settings.webhook_max_attempts, timeout=settings.webhook_timeout,
        consumer=instance_id)
    supervisor = Supervisor(
        [
            ChildSpec("mirror", mirror.run),
            ChildSpec("flush", flush.run, shutdown=settings.shutdown_timeout),
            ChildSpec("sweeper", sweeper.run, shutdown=1.0),
            ChildSpec("content", content.run, shutdown=settings.shutdown_timeout),
            ChildSpec("publisher", publisher.run, shutdown=1.0),
            ChildSpec("notifier", notifier.run, shutdown=2.0),
            ChildSpec("webhooks", webhooks.run, shutdown=2.0),
            ChildSpec("presence", presence.run, shutdown=2.0),
            ChildSpec("router", router.run, shutdown=1.0),
            ChildSpec("connections", connections.run, shutdown=settings.shutdown_timeout),
        ],
        strategy="rest_for_one", max_restarts=5, max_seconds=30.0, name="root",
    )
    return System(settings, stores, mirror, flush, sweeper, content, presence, router,
                  connections, supervisor, instance_id, publisher=publisher,
                  notifier=notifier, webhooks=webhooks, limiter=limiter, limits=limits)
