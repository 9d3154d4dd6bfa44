"""The counter cache on Redis through redis-py's asyncio client.

Each public method is a trio coroutine that crosses the bridge once; the
``_aio_*`` methods it runs are plain asyncio and talk to Redis in one pipeline.
"""

from __future__ import annotations

import time
import uuid
from contextlib import asynccontextmanager
from typing import AsyncIterator, Sequence

import msgpack
import trio
import redis.asyncio as aioredis

from engage.domain import Counts, FlushBatch, Op, OpResult, Snapshot, parse_batch
from engage.domain.counters import KIND_CODES, coalesce_anonymous_views
from engage.store.bridge import Bridge
from engage.store.events import EVENT_LOG_MAX_LEN
from engage.store.keys import Keys
from engage.store.resp import NativeScripts, RespConnection
from engage.store.scripts import Scripts
from engage.store.protocols import ApplyOutcome
from engage.errors import ClientError, Forbidden, TooManyRequests
from engage.limits import RateLimits
from engage.store.base import RedisStore

#: Socket timeout for ordinary request/response connections, in seconds.
REDIS_SOCKET_TIMEOUT = 5.0
REDIS_CONNECT_TIMEOUT = 5.0
#: Members per command when staging a large item back into Redis.
HYDRATE_CHUNK = 1000


class RedisCounterCache(RedisStore):
    """:class:`~engage.store.protocols.CounterCache` on redis-py.

    Args:
        client: a ``redis.asyncio.Redis`` living on the bridge's loop.
        bridge: the trio-asyncio crossing.
        keys: key names.
        applause_cap: per-user applause limit.
        ttl: seconds an item's keys live after its last change.
        view_dedup_window: seconds within which one user's or viewer's views of
            an item count once (0: every view counts).
        limits: per-user and per-address limits on likes, applause and views,
            enforced in the same script; ``None``: none. Bans are enforced
            there either way.
        native: a trio-native connection for :meth:`apply_many` and
            :meth:`publish_counts` (the mirror's rounds, docs/decisions.md
            §12); ``None``: through the bridge.
    """

    def __init__(self, client: aioredis.Redis, bridge: Bridge, keys: Keys, *,
                 applause_cap: int, ttl: int, view_dedup_window: float = 0.0,
                 limits: RateLimits | None = None,
                 native: RespConnection | None = None) -> None:
        self.client = client
        self.bridge = bridge
        self.keys = keys
        self.applause_cap = applause_cap
        self.ttl = ttl
        self.view_dedup_ms = int(view_dedup_window * 1000)
        self.limits = limits
        # Bans are looked up in the script whether or not rate limits are on.
        prefixes = [keys.rate_limit(""), keys.ban("")]
        self._limits_arg = msgpack.packb(prefixes if limits is None else [
            *prefixes,
            limits.like.interval * 1000, limits.like.tolerance * 1000,
            limits.view.interval * 1000, limits.view.tolerance * 1000,
            limits.ip.interval * 1000, limits.ip.tolerance * 1000])
        self.scripts = Scripts(client, ("apply", "hydrate", "handoff", "counts"))
        #: ``apply`` and ``counts`` over a native trio connection, if given.
        self.native = NativeScripts(native, ("apply", "counts")) if native is not None else None

    # -- trio-facing -----------------------------------------------------------

    async def apply_many(self, work: Sequence[tuple[str, Sequence[Op]]]) -> list[ApplyOutcome]:
        calls, folded = self._apply_calls(work)
        return self._outcomes(folded, await self._run_scripts(calls))

    async def read_many(self, content_ids: Sequence[str]) -> list[Counts | None]:
        return await self._call(self._aio_read_many, content_ids)

    async def hydrate(self, content_id: str, snapshot: Snapshot) -> bool:
        return await self._call(self._aio_hydrate, content_id, snapshot)

    async def publish_counts(self, content_ids: Sequence[str]) -> None:
        await self._run_scripts(self._counts_calls(content_ids))

    async def hand_off(self, batch_id: str) -> bool:
        return await self._call(self._aio_hand_off, batch_id)

    async def load_batch(self, batch_id: str) -> tuple[FlushBatch, dict[str, bytes]]:
        return await self._call(self._aio_load_batch, batch_id)

    async def finish_batch(self, batch_id: str) -> None:
        await self._call(self._aio_finish_batch, batch_id)

    async def stale_batches(self, older_than: float) -> list[str]:
        return await self._call(self._aio_stale_batches, older_than)

    async def oldest_pending(self) -> float | None:
        return await self._call(self._aio_oldest_pending)

    async def ping(self) -> None:
        await self._call(self.client.ping)

    # -- asyncio side ------------------------------------------------------------

    def _apply_calls(self, work) -> tuple[list, list]:
        """The ``apply`` script calls for ``work``, and each item's folded ops."""
        k = self.keys
        now_ms = str(int(time.time() * 1000))
        calls = []
        folded = []
        for content_id, ops in work:
            steps = coalesce_anonymous_views(ops)
            folded.append(steps)
            flat: list = []
            for op, _ in steps:
                flat += (KIND_CODES[op.kind], op.who, op.count, op.address)
            args = [content_id, now_ms, self.applause_cap, self.ttl, EVENT_LOG_MAX_LEN,
                    msgpack.packb(flat), self.view_dedup_ms, k.view_seen_prefix(content_id),
                    self._limits_arg]
            calls.append(("apply", [*k.content_keys(content_id), k.pending, k.pending_since,
                                    k.like_seq, k.events], args))
        return calls, folded

    def _outcomes(self, folded: list, replies: list) -> list[ApplyOutcome]:
        """Each item's :class:`ApplyOutcome` from its ``apply`` reply."""
        out = []
        for steps, reply in zip(folded, replies):
            if reply[0] == 0:
                out.append(ApplyOutcome(None))
                continue
            results = []
            for i, (op, n) in enumerate(steps):
                v, l, a, extra, refused = reply[3 + 5 * i: 8 + 5 * i]
                if refused:
                    results.extend([self._refusal(op, refused)] * n)
                elif op.kind == "applause":
                    results.append(OpResult(v, l, a, mine=extra))
                elif op.kind in ("like", "unlike"):
                    results.append(OpResult(v, l, a, liked=bool(extra)))
                else:  # n folded views: each saw the total as it was after it
                    make = tuple.__new__  # OpResult's own __new__ costs more per item
                    results.extend(make(OpResult, (views, l, a, None, None))
                                   for views in range(v - n + 1, v + 1))
            out.append(ApplyOutcome(tuple(results), reply[1], reply[2]))
        return out

    def _refusal(self, op: Op, refused: int) -> ClientError:
        """The error a refused op answers with (see apply.lua's ``refused``)."""
        if refused < 0:
            return Forbidden(f"{op.who} is banned from interacting", code="banned")
        wait = refused / 1000
        rate = self.limits.view if op.kind == "view" else self.limits.like  # type: ignore[union-attr]
        noun = "view" if op.kind == "view" else "interaction"
        return TooManyRequests(f"too many: {rate.describe(noun)}; retry in {wait:.1f} s",
                               retry_after=wait)

    def _counts_calls(self, content_ids: Sequence[str]) -> list:
        k = self.keys
        return [("counts", [k.counts(c), k.hll(c)], [k.channel(f"content:{c}"), f"content:{c}"])
                for c in content_ids]

    async def _aio_read_many(self, content_ids):
        pipe = self.client.pipeline(transaction=False)
        for content_id in content_ids:
            pipe.hmget(self.keys.counts(content_id), "views", "likes", "applause", "comments")
            pipe.pfcount(self.keys.hll(content_id))
        replies = await pipe.execute()
        out: list[Counts | None] = []
        for i in range(len(content_ids)):
            (v, l, a, c), unique = replies[2 * i], replies[2 * i + 1]
            if v is None and l is None and a is None:
                out.append(None)
            else:
                out.append(Counts(int(v or 0), unique, int(l or 0), int(a or 0), int(c or 0)))
        return out

    async def _aio_hydrate(self, content_id: str, snap: Snapshot) -> bool:
        token = uuid.uuid4().hex
        staged = [self.keys.stage(token, p) for p in ("likers", "clap", "hll")]
        pipe = self.client.pipeline(transaction=False)
        for i in range(0, len(snap.likers), HYDRATE_CHUNK):
            pipe.sadd(staged[0], *snap.likers[i:i + HYDRATE_CHUNK])
        for i in range(0, len(snap.applauders), HYDRATE_CHUNK):
            chunk = snap.applauders[i:i + HYDRATE_CHUNK]
            pipe.hset(staged[1], mapping=dict(chunk))
        if snap.hll:
            pipe.set(staged[2], snap.hll)
        for key in staged:
            pipe.expire(key, 60)  # a crash mid-hydrate leaves no litter
        await pipe.execute()
        keys = [*self.keys.content_keys(content_id), *staged]
        (installed,) = await self.scripts.run_many(
            [("hydrate", keys, [snap.views, snap.likes, snap.applause, self.ttl, snap.comments])])
        return bool(installed)

    async def _aio_hand_off(self, batch_id: str) -> bool:
        k = self.keys
        (made,) = await self.scripts.run_many([(
            "handoff", [k.pending, k.pending_since, k.batch(batch_id), k.batches, k.batches_since],
            [batch_id, int(time.time() * 1000)])])
        return bool(made)

    async def _aio_load_batch(self, batch_id: str):
        fields = await self.client.hgetall(self.keys.batch(batch_id))
        batch = parse_batch(batch_id, fields)
        hlls: dict[str, bytes] = {}
        if batch.hll_dirty:
            ids = sorted(batch.hll_dirty)
            blobs = await self.client.mget([self.keys.hll(c) for c in ids])
            hlls = {c: b for c, b in zip(ids, blobs) if b is not None}
        return batch, hlls

    async def _aio_finish_batch(self, batch_id: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self.keys.batch(batch_id))
        pipe.zrem(self.keys.batches, batch_id)
        pipe.hdel(self.keys.batches_since, batch_id)
        await pipe.execute()

    async def _aio_stale_batches(self, older_than: float) -> list[str]:
        cutoff = int((time.time() - older_than) * 1000)
        ids = await self.client.zrangebyscore(self.keys.batches, "-inf", cutoff)
        return [i.decode() for i in ids]

    async def _aio_oldest_pending(self) -> float | None:
        pipe = self.client.pipeline(transaction=False)
        pipe.get(self.keys.pending_since)
        pipe.hvals(self.keys.batches_since)
        since, batch_times = await pipe.execute()
        times = [int(t) for t in batch_times] + ([int(since)] if since else [])
        return min(times) / 1000 if times else None


def make_redis_client(url: str, *, pool_size: int) -> aioredis.Redis:
    """A redis-py asyncio client with deliberate timeouts (see docs/decisions.md).

    The pool blocks (up to ``REDIS_SOCKET_TIMEOUT``) when all ``pool_size``
    connections are busy: a burst of requests queues for a connection instead
    of failing with "Too many connections" (measured: 1,000 WebSocket upgrades
    at once, each checking its rate limit).
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=pool_size,
        timeout=REDIS_SOCKET_TIMEOUT,
        socket_timeout=REDIS_SOCKET_TIMEOUT,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT,
        health_check_interval=30,
    )
    return aioredis.Redis(connection_pool=pool)


@asynccontextmanager
async def open_redis(url: str, bridge: Bridge, *, pool_size: int) -> AsyncIterator[aioredis.Redis]:
    """A redis-py asyncio client on the bridge's loop, closed on exit.

    The client connects lazily, so start-up does not fail while Redis is down;
    ``/readyz`` reports it instead.
    """
    client = await bridge.call(_make_async, url, pool_size)
    try:
        yield client
    finally:
        with trio.CancelScope(shield=True):
            await bridge.call(client.aclose)


async def _make_async(url: str, pool_size: int) -> aioredis.Redis:
    return make_redis_client(url, pool_size=pool_size)
