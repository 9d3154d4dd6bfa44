"""Rate limits shared by every instance: GCRA keys in Redis.

An action is usually limited by several keys at once (per user AND per IP);
``ratelimit.lua`` checks them all and spends on all of them only if all have
room, on the Redis server's clock, so every instance enforces one limit.

A Redis failure raises :class:`~engage.errors.StoreError` like every other
store: limits fail closed (503), see docs/rate-limits.md.
"""

from __future__ import annotations

import math
from typing import Sequence

import redis.asyncio as aioredis

from engage.domain.ratelimit import ALLOWED, Decision, Limit, refusal_detail
from engage.errors import ClientError, PayloadTooLarge, TooManyRequests
from engage.store.base import RedisStore
from engage.store.bridge import Bridge
from engage.store.keys import Keys
from engage.store.scripts import Scripts

#: Milliseconds per second: the Lua side counts in ms, like Redis ``TIME`` and ``PX``.
_MS = 1000.0


def refusal(decision: Decision, what: str) -> ClientError:
    """The error a refused ``decision`` answers with: 429 with ``retry_after``, or
    413 ``over_rate_burst`` when waiting would never help."""
    detail = refusal_detail(decision, what)
    if math.isinf(decision.retry_after):
        return PayloadTooLarge(detail, code="over_rate_burst")
    return TooManyRequests(detail, retry_after=decision.retry_after)


class RedisRateLimiter(RedisStore):
    """Checks and spends :class:`~engage.domain.ratelimit.Limit` s in Redis.

    Args:
        client: a ``redis.asyncio.Redis`` living on the bridge's loop.
        bridge: the trio-asyncio crossing.
        keys: key names; limits live at ``keys.rate_limit(limit.name)``.
    """

    def __init__(self, client: aioredis.Redis, bridge: Bridge, keys: Keys) -> None:
        self.client = client
        self.bridge = bridge
        self.keys = keys
        self.scripts = Scripts(client, ("ratelimit",))

    # -- trio-facing -----------------------------------------------------------

    async def check(self, limits: Sequence[Limit]) -> Decision:
        """Spend one action on every limit, all or nothing.

        Returns:
            ``allowed`` and nothing else if every limit had room (all spent);
            otherwise nothing is spent, and ``retry_after`` and ``limit`` name
            the limit with the longest wait. No limits: allowed, no Redis call.

        Raises:
            StoreError: Redis failed or is unreachable.
        """
        (decision,) = await self.check_many([limits])
        return decision

    async def check_many(self, actions: Sequence[Sequence[Limit]]) -> list[Decision]:
        """:meth:`check` several actions in one pipeline (one bridge crossing);
        decisions in order. Each action is all or nothing on its own, and they
        are decided in order, so an earlier one may spend room a later one needed.
        """
        decisions: list[Decision | None] = [_decided_locally(limits) for limits in actions]
        todo = [(i, limits) for i, limits in enumerate(actions) if decisions[i] is None]
        if todo:
            replies = await self._call(self._aio_run, [self._call_spec(lim) for _, lim in todo])
            for (i, limits), reply in zip(todo, replies):
                decisions[i] = _decision(limits, reply)
        return decisions  # type: ignore[return-value]  # every slot is filled

    async def enforce(self, limits: Sequence[Limit], what: str) -> None:
        """:meth:`check`, raising if refused.

        Args:
            limits: the keys this action counts against.
            what: the singular noun of what is counted ("comment"), for the message.

        Raises:
            TooManyRequests: over a limit; ``retry_after`` is the wait in seconds
                and the detail says which limit: "at most 1 comment per 3 s
                (burst 5); retry in 2.1 s".
            PayloadTooLarge: the action costs more than a limit's burst, so
                waiting would never help (a batch too big for the events limit).
            StoreError: Redis failed or is unreachable.
        """
        decision = await self.check(limits)
        if not decision.allowed:
            raise refusal(decision, what)

    # -- both sides --------------------------------------------------------------

    def _call_spec(self, limits: Sequence[Limit],
                   now_ms: float | None = None) -> tuple[str, list[str], list[str]]:
        """The ``ratelimit.lua`` call for ``limits``; ``now_ms`` only from tests."""
        args: list[str] = []
        for limit in limits:
            args += (repr(limit.rate.interval * _MS), repr(limit.rate.tolerance * _MS),
                     str(limit.cost))
        if now_ms is not None:
            args.append(repr(float(now_ms)))
        return "ratelimit", [self.keys.rate_limit(limit.name) for limit in limits], args

    # -- asyncio side ------------------------------------------------------------

    async def _aio_run(self, calls):
        return await self.scripts.run_many(calls)


def _decided_locally(limits: Sequence[Limit]) -> Decision | None:
    """The decision when Redis need not be asked, else None."""
    if not limits:
        return ALLOWED
    for limit in limits:
        if limit.never:
            return Decision(False, math.inf, limit)
    return None


def _decision(limits: Sequence[Limit], reply: Sequence[int]) -> Decision:
    allowed, retry_ms, which = (int(x) for x in reply)
    if allowed:
        return ALLOWED
    limit = limits[which - 1] if 1 <= which <= len(limits) else None
    return Decision(False, math.inf if retry_ms < 0 else retry_ms / _MS, limit)
