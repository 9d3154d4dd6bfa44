"""The small findings of the outside probe: cursors, nosniff, the demo CSP,
bidirectional controls, and the wording of a 429."""

from __future__ import annotations

import base64

import pytest
import trio

from engage.auth import issue_token
from tests.conftest import JWT_SECRET
from tests.security.support import TEST_TIMEOUT

BIDI_CONTROLS = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067",
                 "\u2068", "\u2069"]


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize("raw", ["1:99999999999999999999999", "1:9223372036854775808", "1:0",
                                 "99999999999999999999999999:1", "1:-5"])
async def test_a_cursor_out_of_range_is_400_not_503(client, raw):
    with trio.fail_after(TEST_TIMEOUT):
        response = await client.get("/v1/content/a/comments", params={"cursor": _cursor(raw)})
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "invalid_cursor"


async def test_every_answer_says_nosniff(client, server):
    with trio.fail_after(TEST_TIMEOUT):
        for method, path in [("GET", "/healthz"), ("GET", "/nope"), ("GET", "/"),
                             ("GET", "/static/engage.js"), ("PUT", "/v1/content/a/like"),
                             ("GET", "/v1/ws"), ("GET", "/openapi.json")]:
            response = await client.request(method, path)
            assert response.headers.get("x-content-type-options") == "nosniff", path
        refusal = await client.get("/v1/ws", headers={"Upgrade": "websocket",
                                                      "Connection": "Upgrade"})
        assert refusal.headers.get("x-content-type-options") == "nosniff"


async def test_the_demo_page_may_connect_only_to_its_own_origin(client):
    with trio.fail_after(TEST_TIMEOUT):
        csp = (await client.get("/")).headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["connect-src"] == "'self'"


@pytest.mark.parametrize("char", BIDI_CONTROLS)
async def test_bidi_controls_are_refused_in_comments(client, auth, char):
    with trio.fail_after(TEST_TIMEOUT):
        body = {"body": f"looks fine {char}txt.exe"}
        response = await client.post("/v1/content/a/comments", json=body, headers=auth("ann"))
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_characters"


async def test_direction_marks_stay_allowed(client, auth):
    with trio.fail_after(TEST_TIMEOUT):
        body = {"body": "שלום \u200fworld\u200e ok"}
        response = await client.post("/v1/content/a/comments", json=body, headers=auth("ann"))
        assert response.status_code == 201


async def test_a_token_whose_subject_has_bidi_controls_is_refused(client):
    with trio.fail_after(TEST_TIMEOUT):
        token = issue_token(JWT_SECRET, "admin\u202egnp.exe")
        response = await client.post("/v1/content/a/comments", json={"body": "hi"},
                                     headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        assert response.json()["code"] == "invalid_token"


@pytest.fixture
def settings(settings):
    return settings.replace(rate_limits=True, rate_view="1/1s burst 1")


async def test_a_429_detail_reads_well(client):
    with trio.fail_after(TEST_TIMEOUT):
        await client.post("/v1/content/a/views")
        response = await client.post("/v1/content/a/views")
        assert response.status_code == 429
        detail = response.json()["detail"]
        assert "at most at most" not in detail and "at most 1 view per" in detail
