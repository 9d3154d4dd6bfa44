"""Rate limits are shared: one user alternating between two instances is
limited as if there were one."""

from __future__ import annotations

import httpx
import pytest
import trio

from tests.conftest import BASE_REDIS_URL, JWT_SECRET
from tests.support import ServerProcess, server_env

pytestmark = pytest.mark.slow


async def test_fifty_comments_in_five_seconds_across_two_instances(database_url, redis_prefix,
                                                                   auth):
    # The defaults: 1 comment per 3 s per user, burst 5.
    env = server_env(database_url, BASE_REDIS_URL, redis_prefix, JWT_SECRET,
                     rate_limits="true")
    servers = [ServerProcess(env).start(), ServerProcess(env).start()]
    try:
        with trio.fail_after(60):
            statuses, retry_afters = [], []
            async with httpx.AsyncClient(timeout=10) as http:
                start = trio.current_time()
                for i in range(50):
                    server = servers[i % 2]
                    r = await http.post(f"{server.url}/v1/content/shared/comments",
                                        json={"body": f"comment {i}"}, headers=auth("chatty"))
                    statuses.append(r.status_code)
                    if r.status_code == 429:
                        assert r.headers["content-type"] == "application/problem+json"
                        assert r.json()["code"] == "rate_limited"
                        retry_afters.append(int(r.headers["retry-after"]))
                    await trio.sleep_until(start + (i + 1) * 0.1)
                elapsed = trio.current_time() - start
                listed = (await http.get(f"{servers[0].url}/v1/content/shared/comments?limit=100")
                          ).json()["items"]
        allowed = statuses.count(201)
        # Burst 5, then one per 3 s: never more than 5 + elapsed / 3 (+1 for the edge).
        assert 5 <= allowed <= 5 + int(elapsed / 3) + 1, statuses
        assert statuses.count(429) == 50 - allowed
        assert all(1 <= s <= 3 for s in retry_afters)
        assert {201, 429} >= set(statuses[::2]) and 429 in statuses[1::2]  # both instances refuse
        assert len(listed) == allowed  # refused comments were not stored
    finally:
        for server in servers:
            assert server.stop() == 0, "".join(server.output)
