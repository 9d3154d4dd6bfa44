"""Rate limits in Redis: burst and refusal, all or nothing across keys, one
limit for every instance, the Lua twin of the Python GCRA, script reloads,
expiry, and failing closed."""

from __future__ import annotations

import math
import random

import pytest
import trio

from engage.domain.ratelimit import Limit, gcra, parse_rate
from engage.errors import PayloadTooLarge, StoreError, TooManyRequests
from engage.store import Keys, RedisRateLimiter, open_bridge, open_redis
from engage.store import scripts as scripts_module
from engage.store.scripts import _INCLUDE_RE, script_source
from tests.conftest import BASE_REDIS_URL
from tests.support import free_port

#: Every test's whole budget, seconds: a hung Redis call fails the test.
TEST_TIMEOUT = 20
#: Redis ``TIME``-like milliseconds the Lua-vs-Python test starts from.
BASE_MS = 1_700_000_000_000.0


@pytest.fixture
async def redis_side(redis_prefix):
    """(bridge, client) for the test Redis; no Postgres needed."""
    async with open_bridge() as bridge:
        async with open_redis(BASE_REDIS_URL, bridge, pool_size=4) as client:
            yield bridge, client


@pytest.fixture
def limiter(redis_side, redis_prefix):
    bridge, client = redis_side
    return RedisRateLimiter(client, bridge, Keys(redis_prefix))


async def _redis(bridge, client, method, *args):
    """One plain redis-py call from trio (for inspecting keys)."""
    return await bridge.call(getattr(client, method), *args)


async def test_burst_then_refusal_for_about_an_interval(limiter):
    with trio.fail_after(TEST_TIMEOUT):
        limits = [Limit("comment:u:alice", parse_rate("1/1s burst 3"))]
        for _ in range(3):
            assert (await limiter.check(limits)).allowed
        refused = await limiter.check(limits)
        assert not refused.allowed and refused.limit == limits[0]
        assert 0.9 < refused.retry_after <= 1.001
        await trio.sleep(refused.retry_after)
        assert (await limiter.check(limits)).allowed
        assert not (await limiter.check(limits)).allowed


async def test_all_or_nothing_across_keys(limiter):
    with trio.fail_after(TEST_TIMEOUT):
        user = Limit("comment:u:bob", parse_rate("1/10s burst 5"))
        ip = Limit("comment:ip:10.0.0.1", parse_rate("1/10s burst 1"))
        assert (await limiter.check([user, ip])).allowed
        for _ in range(10):
            refused = await limiter.check([user, ip])
            assert not refused.allowed and refused.limit == ip
            assert 9.0 < refused.retry_after <= 10.001
        # the refusals by the IP key spent nothing on the user key: 4 of 5 are left
        for _ in range(4):
            assert (await limiter.check([user])).allowed
        refused = await limiter.check([user])
        assert not refused.allowed and refused.limit == user


async def test_the_longest_wait_is_reported(limiter):
    with trio.fail_after(TEST_TIMEOUT):
        short = Limit("a", parse_rate("1/2s burst 1"))
        long = Limit("b", parse_rate("1/60s burst 1"))
        assert (await limiter.check([short, long])).allowed
        refused = await limiter.check([short, long])
        assert refused.limit == long and 59 < refused.retry_after <= 60.001


async def test_the_same_key_twice_counts_twice(limiter):
    with trio.fail_after(TEST_TIMEOUT):
        limit = Limit("x", parse_rate("1/10s burst 3"))
        assert (await limiter.check([limit, limit])).allowed
        assert (await limiter.check([limit])).allowed
        assert not (await limiter.check([limit])).allowed


async def test_two_instances_share_one_limit(redis_side, redis_prefix):
    with trio.fail_after(TEST_TIMEOUT):
        bridge, client = redis_side
        async with open_redis(BASE_REDIS_URL, bridge, pool_size=2) as other_client:
            one = RedisRateLimiter(client, bridge, Keys(redis_prefix))
            two = RedisRateLimiter(other_client, bridge, Keys(redis_prefix))
            limits = [Limit("like:u:carol", parse_rate("1/10s burst 6"))]
            verdicts = []
            for i in range(10):
                verdicts.append((await (one if i % 2 else two).check(limits)).allowed)
            assert verdicts == [True] * 6 + [False] * 4


async def test_check_many_decides_in_order_in_one_call(limiter):
    with trio.fail_after(TEST_TIMEOUT):
        rate = parse_rate("1/10s burst 2")
        a, b = Limit("a", rate), Limit("b", rate)
        decisions = await limiter.check_many([[a], [a, b], [], [a], [b], [Limit("c", rate, 3)]])
        assert [d.allowed for d in decisions] == [True, True, True, False, True, False]
        assert decisions[3].limit == a
        assert decisions[5].limit.name == "c" and math.isinf(decisions[5].retry_after)


async def test_enforce(limiter):
    with trio.fail_after(TEST_TIMEOUT):
        limits = [Limit("comment:u:dan", parse_rate("1/3s burst 1"))]
        await limiter.enforce(limits, "comment")
        with pytest.raises(TooManyRequests) as refused:
            await limiter.enforce(limits, "comment")
        assert 2.9 < refused.value.retry_after <= 3.001
        assert refused.value.detail.startswith("at most 1 comment per 3 s (burst 1); retry in ")
        with pytest.raises(PayloadTooLarge, match="counts 50001"):
            await limiter.enforce([Limit("events:ip:x", parse_rate("20000/1s burst 50000"),
                                         cost=50001)], "event")


async def test_keys_live_under_the_prefix_and_expire(limiter, redis_side, redis_prefix):
    with trio.fail_after(TEST_TIMEOUT):
        bridge, client = redis_side
        key = Keys(redis_prefix).rate_limit("view:ip:1.2.3.4")
        assert key == f"{redis_prefix}rl:view:ip:1.2.3.4"
        limits = [Limit("view:ip:1.2.3.4", parse_rate("1/0.2s burst 2"))]
        assert (await limiter.check(limits)).allowed
        assert (await limiter.check(limits)).allowed
        assert 0 < await _redis(bridge, client, "pttl", key) <= 400
        await trio.sleep(0.45)  # past the TAT: the key is idle, so it is gone
        assert await _redis(bridge, client, "exists", key) == 0


async def test_scripts_reload_after_script_flush(limiter, redis_side):
    with trio.fail_after(TEST_TIMEOUT):
        bridge, client = redis_side
        limits = [Limit("flush", parse_rate("1/10s burst 2"))]
        assert (await limiter.check(limits)).allowed
        await _redis(bridge, client, "script_flush")
        assert (await limiter.check(limits)).allowed
        assert not (await limiter.check(limits)).allowed


async def test_redis_down_fails_closed(redis_side, redis_prefix):
    with trio.fail_after(TEST_TIMEOUT):
        bridge, _ = redis_side
        async with open_redis(f"redis://127.0.0.1:{free_port()}/0", bridge,
                              pool_size=1) as dead:
            limiter = RedisRateLimiter(dead, bridge, Keys(redis_prefix))
            with pytest.raises(StoreError, match="redis"):
                await limiter.check([Limit("x", parse_rate("1/1s"))])
            with pytest.raises(StoreError):
                await limiter.enforce([Limit("x", parse_rate("1/1s"))], "request")
            # nothing to check: no Redis call, so no error
            assert (await limiter.check([])).allowed


# -- the Lua twin ------------------------------------------------------------------------


async def _aio_run_pinned(client, keys, args):
    """Run ratelimit.lua and read back the TATs with expiry removed, in one
    MULTI: the test's clock is fake, so Redis must not expire keys by its own."""
    sha = await client.script_load(script_source("ratelimit"))
    pipe = client.pipeline(transaction=True)
    pipe.evalsha(sha, len(keys), *keys, *args)
    for key in keys:
        pipe.persist(key)
    for key in keys:
        pipe.get(key)
    replies = await pipe.execute()
    return replies[0], replies[-len(keys):]


@pytest.mark.parametrize("text, cost", [
    ("1/3s burst 5", 1), ("10/1s burst 30", 1), ("3/1s burst 2", 1), ("300/1m burst 600", 7),
    ("20000/1s burst 40000", 900),
])
async def test_lua_agrees_with_python_gcra(limiter, redis_side, text, cost):
    with trio.fail_after(TEST_TIMEOUT):
        bridge, client = redis_side
        rate = parse_rate(text)
        limit = Limit(f"twin:{text}", rate, cost)
        interval_ms = rate.interval * 1000
        rng = random.Random(text)
        # Python runs on small times, as on trio's clock; Lua on epoch milliseconds,
        # as on Redis TIME, where a double's ulp is ~0.2 us and sums drift by that.
        elapsed_ms, tat = 0.0, None
        outcomes = set()
        for _ in range(400):
            # back to back (mostly, to fill big bursts), on the dot, just early, or
            # random: where the two could differ
            elapsed_ms += rng.choice([0.0, 0.0, 0.0, 0.0, interval_ms * cost,
                                      interval_ms * cost - 0.5,
                                      rng.uniform(0, 3 * interval_ms * cost)])
            verdict = gcra(tat, elapsed_ms / 1000, rate, cost)
            tat = verdict.tat
            _, keys, args = limiter._call_spec([limit], now_ms=BASE_MS + elapsed_ms)
            (allowed, retry_ms, which), (stored,) = await bridge.call(
                _aio_run_pinned, client, keys, args)
            outcomes.add(bool(allowed))
            assert bool(allowed) == verdict.allowed
            assert float(stored) - BASE_MS == pytest.approx(verdict.tat * 1000, abs=0.01)
            if verdict.allowed:
                assert (retry_ms, which) == (0, 0)
            else:
                assert which == 1
                assert abs(retry_ms - verdict.retry_after * 1000) <= 1.0
                assert retry_ms >= verdict.retry_after * 1000 - 0.01  # rounded up
        assert outcomes == {True, False}


async def test_the_snippet_stands_alone_in_any_script(redis_side, redis_prefix):
    """What apply.lua will do: include gcra and call the one-key helper."""
    with trio.fail_after(TEST_TIMEOUT):
        bridge, client = redis_side
        body = scripts_module._lua_file("_gcra.lua")
        source = body + "\nlocal a, r = gcra(KEYS[1], 1000, 2000, 1)\nreturn {a, math.ceil(r)}"
        key = Keys(redis_prefix).rate_limit("standalone")
        replies = [await bridge.call(client.eval, source, 1, key) for _ in range(3)]
        assert replies[:2] == [[1, 0], [1, 0]]
        assert replies[2][0] == 0 and 900 < replies[2][1] <= 1000


# -- includes (no Redis) -------------------------------------------------------------------


def test_ratelimit_script_is_expanded():
    source = script_source("ratelimit")
    assert not _INCLUDE_RE.search(source)
    assert "local function gcra_all(" in source and "local function gcra(" in source


def test_includes_nest_and_happen_once(monkeypatch):
    files = {
        "main.lua": "-- top\n--#include a\n--#include b\nreturn 1\n",
        "_a.lua": "local function a() end\n",
        "_b.lua": "--#include a\nlocal function b() end\n",
    }
    monkeypatch.setattr(scripts_module, "_lua_file", files.__getitem__)
    assert script_source("main") == (
        "-- top\nlocal function a() end\n-- (a already included)\nlocal function b() end\n"
        "return 1\n")


def test_an_include_line_must_stand_alone(monkeypatch):
    files = {"main.lua": "x = 1 --#include a\n  --#include a\n", "_a.lua": "boom"}
    monkeypatch.setattr(scripts_module, "_lua_file", files.__getitem__)
    assert script_source("main") == files["main.lua"]


def test_a_missing_snippet_is_an_error():
    with pytest.raises(FileNotFoundError):
        scripts_module._lua_file("_no_such_snippet.lua")
