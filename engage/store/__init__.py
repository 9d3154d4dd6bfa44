"""Stores: Redis and Postgres behind small protocols."""

from engage.store.bridge import Bridge, open_bridge
from engage.store.keys import Keys
from engage.store.postgres import PostgresCounters, open_postgres
from engage.store.protocols import ApplyOutcome, CounterCache, CounterDatabase, FlushReport
from engage.store.ratelimit import RedisRateLimiter
from engage.store.redis_cache import RedisCounterCache, open_redis

__all__ = [
    "ApplyOutcome", "Bridge", "CounterCache", "CounterDatabase", "FlushReport", "Keys",
    "PostgresCounters", "RedisCounterCache", "RedisRateLimiter", "open_bridge", "open_postgres",
    "open_redis",
]
