"""``POST /v1/events`` counts every event against the limits of the single routes.

Found from outside: ten anonymous batches of 1,000 views, each with its own
viewer id, took an item from 0 to 10,000 views in 0.4 s, while the same
client was limited after 61 ``POST /views``. Now each event spends its
sender's per-user (per-address when anonymous) and per-address allowance.
"""

from __future__ import annotations

import pytest
import trio

from tests.security.support import TEST_TIMEOUT

VIEW_BURST = 60  # rate_view's default burst ("10/1s burst 60")
LIKE_BURST = 30  # rate_like's default burst ("10/1s burst 30")


@pytest.fixture
def settings(settings):
    # The default bursts, refilled slowly: what passes does not depend on how
    # fast this machine runs the batches.
    return settings.replace(rate_limits=True, rate_view=f"1/10s burst {VIEW_BURST}",
                            rate_like=f"1/10s burst {LIKE_BURST}")


def _views(n: int, content: str = "target", batch: int = 0) -> dict:
    """``n`` anonymous views, each with a viewer id of its own (none de-duplicated)."""
    return {"events": [{"type": "view", "content": content, "viewer": f"bot-{batch}-{i}"}
                       for i in range(n)]}


async def test_an_anonymous_batch_of_views_is_limited_like_that_many_single_views(client):
    with trio.fail_after(TEST_TIMEOUT):
        accepted = refused = 0
        for batch in range(10):
            response = await client.post("/v1/events", json=_views(1000, batch=batch))
            assert response.status_code == 200
            for result in response.json()["results"]:
                if result["ok"]:
                    accepted += 1
                else:
                    assert result["status"] == 429 and result["code"] == "rate_limited"
                    refused += 1
        # The burst, plus at most what the slow refill adds while the batches run.
        assert VIEW_BURST <= accepted <= VIEW_BURST + 2
        assert accepted + refused == 10_000
        views = (await client.get("/v1/content/target")).json()["views"]
        assert views == accepted


async def test_events_and_single_views_share_one_allowance(client):
    with trio.fail_after(TEST_TIMEOUT):
        results = (await client.post("/v1/events", json=_views(VIEW_BURST + 20))).json()
        assert sum(r["ok"] for r in results["results"]) <= VIEW_BURST + 5
        response = await client.post("/v1/content/other/views", json={"viewer": "someone"})
        assert response.status_code == 429
        assert "Retry-After" in response.headers


async def test_signed_in_events_count_against_the_user(client, auth):
    with trio.fail_after(TEST_TIMEOUT):
        batch = {"events": [{"type": "applause", "content": f"item-{i}", "count": 1}
                            for i in range(100)]}
        results = (await client.post("/v1/events", json=batch, headers=auth("clapper"))).json()
        accepted = sum(r["ok"] for r in results["results"])
        assert LIKE_BURST <= accepted <= LIKE_BURST + 2
        like = await client.put("/v1/content/item-0/like", headers=auth("clapper"))
        assert like.status_code == 429
