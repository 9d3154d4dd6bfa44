"""The client address behind a proxy: X-Forwarded-For is believed only from
``trusted_proxies``, on the hot routes (engage/hot) and the quart ones alike."""

from __future__ import annotations

import pytest
import trio

from tests.security.support import TEST_TIMEOUT


@pytest.fixture
def settings(settings):
    # Every request comes from 127.0.0.1: make it the trusted proxy, and give
    # each address room for two views and two comments.
    return settings.replace(rate_limits=True, trusted_proxies="127.0.0.1",
                            rate_view="1/10s burst 2", rate_comment_ip="1/10s burst 2",
                            rate_comment="100/1s burst 100")


def _from(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": f"{address}, 127.0.0.1"}


async def test_views_are_limited_per_forwarded_client_address(client):
    with trio.fail_after(TEST_TIMEOUT):
        for _ in range(2):
            r = await client.post("/v1/content/p/views", headers=_from("203.0.113.7"))
            assert r.status_code == 202
        refused = await client.post("/v1/content/p/views", headers=_from("203.0.113.7"))
        assert refused.status_code == 429 and "Retry-After" in refused.headers
        # Another client behind the same proxy has its own allowance.
        other = await client.post("/v1/content/p/views", headers=_from("198.51.100.9"))
        assert other.status_code == 202


async def test_comments_are_limited_per_forwarded_client_address(client, auth):
    with trio.fail_after(TEST_TIMEOUT):
        for i in range(2):
            r = await client.post("/v1/content/p/comments", json={"body": f"hi {i}"},
                                  headers={**auth(f"u{i}"), **_from("203.0.113.8")})
            assert r.status_code == 201
        refused = await client.post("/v1/content/p/comments", json={"body": "again"},
                                    headers={**auth("u9"), **_from("203.0.113.8")})
        assert refused.status_code == 429
        other = await client.post("/v1/content/p/comments", json={"body": "me too"},
                                  headers={**auth("u9"), **_from("198.51.100.10")})
        assert other.status_code == 201


class TestAnUntrustedPeer:
    """The same limits with no trusted proxy: the header buys no new allowance."""

    @pytest.fixture
    def settings(self, settings):
        return settings.replace(trusted_proxies="")

    async def test_its_forwarded_address_is_ignored(self, client):
        with trio.fail_after(TEST_TIMEOUT):
            codes = [(await client.post("/v1/content/q/views",
                                        headers=_from(f"192.0.2.{i}"))).status_code
                     for i in range(1, 5)]
            assert codes[:2] == [202, 202] and codes[2:] == [429, 429]
