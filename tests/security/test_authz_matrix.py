"""Who may do what, one test per cell, against a real ``run.py`` server.

Three tables:

* ``ROUTES`` (every state-changing HTTP route, and the moderation GETs)
  against callers without a token, with a bad token (malformed, not Bearer,
  expired, signed with another secret, ``alg: none``, a rewritten payload,
  another algorithm), and signed in as a plain user, a publisher, a moderator
  and an admin. A refused request answers 401 / 403 ``missing_role`` and
  changes nothing that can be read back (counts, comments, the moderation
  queue, bans).
* ``OWNERSHIP``: PATCH stays with the author (moderators and admins too are
  refused); DELETE is the author's within ``edit_window`` and a moderator's
  (or admin's) at any time.
* ``BANNED``: a banned user may still read and subscribe, but every way of
  commenting, liking and applauding (HTTP, ``/v1/events``, WebSocket) is
  refused with 403 / ``banned`` until the ban is lifted, with rate limits off
  and on (bans must not depend on rate limits being enabled).

A last test fails when a state-changing route is added without a row in
``ROUTES`` (tests/security/routes.py).
"""

from __future__ import annotations

import base64
import time
from typing import Awaitable, Callable

import jwt
import pytest
import trio
from trio_websocket import open_websocket_url

from engage.auth import issue_token
from tests.conftest import JWT_SECRET
from tests.integration.test_realtime import Client
from tests.security.routes import ANYONE, HOLD, ROUTES, Ctx, call_route, problem
from tests.security.support import (TEST_TIMEOUT, bearer, client, live_server, tampered_token,
                                    token_for, unsigned_token)
from tests.support import fetch


@pytest.fixture(scope="module")
def live():
    with live_server(moderation_hold_words=HOLD) as server:
        yield server


# -- anonymous and bad tokens: 401, nothing changed ------------------------------------


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


OTHER_SECRET = "another-secret-" + "y" * 32
#: name -> (Authorization header, the code of the 401). Each claims admin.
BAD_TOKENS: dict[str, tuple[Callable[[], str], str]] = {
    "garbage": (lambda: "Bearer not.a.jwt", "invalid_token"),
    "not_bearer": (lambda: "Basic " + _b64("root:password"), "bad_authorization"),
    "expired": (lambda: "Bearer " + token_for("root", "admin", expires_in=-3600),
                "token_expired"),
    "wrong_secret": (lambda: "Bearer " + issue_token(OTHER_SECRET, "root", roles=["admin"]),
                     "invalid_token"),
    "alg_none": (lambda: "Bearer " + unsigned_token("root", "admin"), "invalid_token"),
    "alg_None": (lambda: "Bearer " + unsigned_token("root", "admin", alg="None"),
                 "invalid_token"),
    "tampered": (lambda: "Bearer " + tampered_token("ann", "admin"), "invalid_token"),
    "hs512": (lambda: "Bearer " + jwt.encode(
        {"sub": "root", "roles": ["admin"], "exp": int(time.time()) + 3600},
        JWT_SECRET, algorithm="HS512"), "invalid_token"),
}

ANONYMOUS_CELLS = [pytest.param(r, id=r.name) for r in ROUTES if r.who != ANYONE]
BAD_TOKEN_CELLS = [pytest.param(r, bad, id=f"{r.name}-{bad}") for r in ROUTES
                   for bad in BAD_TOKENS]


@pytest.mark.parametrize("route", ANONYMOUS_CELLS)
async def test_anonymous_is_401(live, route):
    with trio.fail_after(TEST_TIMEOUT):
        async with client(live) as http:
            ctx = Ctx(http, live)
            r, before = await call_route(ctx, route, {})
            problem(r, 401, "unauthorized")
            assert await ctx.state() == before


@pytest.mark.parametrize("route, bad", BAD_TOKEN_CELLS)
async def test_bad_token_is_401(live, route, bad):
    header, code = BAD_TOKENS[bad]
    with trio.fail_after(TEST_TIMEOUT):
        async with client(live) as http:
            ctx = Ctx(http, live)
            r, before = await call_route(ctx, route, {"Authorization": header()})
            problem(r, 401, code)
            assert await ctx.state() == before


@pytest.mark.parametrize("route", [pytest.param(r, id=r.name) for r in ROUTES
                                   if r.who == ANYONE])
async def test_anonymous_may_count_views(live, route):
    with trio.fail_after(TEST_TIMEOUT):
        async with client(live) as http:
            ctx = Ctx(http, live)
            r, before = await call_route(ctx, route, {})
            assert r.status_code == route.ok, r.text
            assert (await http.get(f"/v1/content/{ctx.content}")).json()["views"] == \
                before["counts"]["views"] + 1


# -- signed in: roles ---------------------------------------------------------------

IDENTITIES = {"user": (), "publisher": ("publisher",), "moderator": ("moderator",),
              "admin": ("admin",)}
ROLE_CELLS = [pytest.param(r, who, id=f"{r.name}-{who}") for r in ROUTES
              for who in IDENTITIES]


@pytest.mark.parametrize("route, who", ROLE_CELLS)
async def test_roles(live, route, who):
    roles = IDENTITIES[who]
    with trio.fail_after(TEST_TIMEOUT):
        async with client(live) as http:
            ctx = Ctx(http, live)
            ctx.actor = f"{who}-{ctx.target}"
            r, before = await call_route(ctx, route, bearer(token_for(ctx.actor, *roles)))
            if route.allows(roles):
                assert r.status_code == route.ok, r.text
            else:
                problem(r, 403, "missing_role")
                assert await ctx.state() == before


def test_the_matrix_covers_every_state_changing_route():
    """A new state-changing route (or moderation GET) must get a row in ROUTES.
    (``POST /v1/dev/token`` exists only in development mode: off here.)"""
    from engage.http import create_app
    from engage.hot import HOT_RULES
    from engage.settings import load_settings

    class _Stores:
        def __getattr__(self, name):
            return None

    class _System:  # just enough to register the routes
        settings = load_settings(env={}, jwt_secret=JWT_SECRET)
        stores = _Stores()

        def __getattr__(self, name):
            return None

    app = create_app(_System())
    every = [*app.url_map.iter_rules(), *HOT_RULES]  # quart's routes and the fast lane's
    changing = {(m, rule.rule) for rule in every
                for m in rule.methods or () if m in ("POST", "PUT", "PATCH", "DELETE")}
    changing |= {("GET", rule.rule) for rule in every
                 if "GET" in (rule.methods or ()) and rule.rule.startswith("/v1/moderation/")}
    listed = {(r.method, r.rule) for r in ROUTES}
    assert changing - listed == set(), "add them to ROUTES"
    assert listed - changing == set(), "gone from the app"
    assert len({r.name for r in ROUTES}) == len(ROUTES)


# -- comments: who may edit and delete whose ----------------------------------------

#: (action, who, age of the comment, status, code of a refusal)
OWNERSHIP = [
    ("patch", "author", "fresh", 200, None),
    ("patch", "other", "fresh", 403, "not_author"),
    ("patch", "publisher", "fresh", 403, "not_author"),
    ("patch", "moderator", "fresh", 403, "not_author"),
    ("patch", "admin", "fresh", 403, "not_author"),
    ("patch", "author", "old", 403, "edit_window_closed"),
    ("patch", "moderator", "old", 403, "not_author"),
    ("patch", "admin", "old", 403, "not_author"),
    ("delete", "author", "fresh", 204, None),
    ("delete", "other", "fresh", 403, "not_author"),
    ("delete", "publisher", "fresh", 403, "not_author"),
    ("delete", "moderator", "fresh", 204, None),
    ("delete", "admin", "fresh", 204, None),
    ("delete", "author", "old", 403, "edit_window_closed"),
    ("delete", "other", "old", 403, "not_author"),
    ("delete", "moderator", "old", 204, None),
    ("delete", "admin", "old", 204, None),
]
OWNER_ROLES = {"author": (), "other": (), "publisher": ("publisher",),
               "moderator": ("moderator",), "admin": ("admin",)}


@pytest.mark.parametrize("action, who, age, status, code", [
    pytest.param(*cell, id="-".join(cell[:3])) for cell in OWNERSHIP])
async def test_comment_ownership(live, action, who, age, status, code):
    with trio.fail_after(TEST_TIMEOUT):
        async with client(live) as http:
            ctx = Ctx(http, live)
            c = await ctx.comment(ctx.someone, "the original words")
            if age == "old":  # past edit_window (300 s)
                fetch(live.database_url, "UPDATE comments SET created_at = now() - "
                      "interval '1 hour' WHERE id = $1", int(c["id"]))
            user = ctx.someone if who == "author" else f"{who}-{ctx.target}"
            headers = bearer(token_for(user, *OWNER_ROLES[who]))
            path = f"/v1/comments/{c['id']}"
            if action == "patch":
                r = await http.patch(path, json={"body": "new words"}, headers=headers)
            else:
                r = await http.delete(path, headers=headers)
            listed = (await http.get(f"/v1/content/{ctx.content}/comments")).json()["items"]
            if status >= 400:
                problem(r, status, code)
                assert [(x["id"], x["body"]) for x in listed] == [(c["id"], "the original words")]
            elif action == "patch":
                assert r.status_code == status and r.json()["body"] == "new words", r.text
                assert [(x["id"], x["body"]) for x in listed] == [(c["id"], "new words")]
            else:
                assert r.status_code == status, r.text
                assert listed == []


# -- bans ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_limited():
    """Rate limits on (the production default), generous enough for the tests."""
    with live_server(rate_limits="true", rate_comment="100/1s burst 100",
                     rate_comment_ip="1000/1s burst 1000", rate_like="100/1s burst 100",
                     rate_ip="10000/1s burst 10000") as server:
        yield server


@pytest.fixture(params=["limits_off", "limits_on"])
def banning(request):
    return request.getfixturevalue("live" if request.param == "limits_off" else "live_limited")


class Outcome:
    """What an attempt came to: ``ok``, or refused with a status and code."""

    def __init__(self, ok: bool, status: int | None = None, code: str | None = None,
                 detail: str = "") -> None:
        self.ok, self.status, self.code, self.detail = ok, status, code, detail

    def __repr__(self) -> str:
        return f"Outcome(ok={self.ok}, status={self.status}, code={self.code}, {self.detail!r})"


def _http_outcome(r, ok: int) -> Outcome:
    if r.status_code == ok:
        return Outcome(True, r.status_code)
    body = r.json() if r.headers.get("content-type", "").endswith("json") else {}
    return Outcome(False, r.status_code, body.get("code"), r.text)


async def _ws_op(ctx: Ctx, user: str, frame: dict) -> Outcome:
    url = f"{ctx.server.ws}?token={token_for(user)}"
    async with open_websocket_url(url) as ws:
        reply = await Client(ws).op(frame)
    if reply["type"] == "ack":
        return Outcome(True)
    return Outcome(False, None, reply.get("code"), str(reply))  # frames carry no status


async def _events(ctx: Ctx, user: str, event: dict) -> Outcome:
    r = await ctx.http.post("/v1/events", json={"events": [event]},
                            headers=bearer(token_for(user)))
    assert r.status_code == 200, r.text
    (result,) = r.json()["results"]
    if result["ok"]:
        return Outcome(True)
    return Outcome(False, result["status"], result["code"], str(result))


Attempt = Callable[[Ctx, str, dict], Awaitable[Outcome]]


async def _http_comment(ctx, user, own):
    r = await ctx.http.post(f"/v1/content/{ctx.content}/comments", json={"body": "words"},
                            headers=bearer(token_for(user)))
    return _http_outcome(r, 201)


async def _http_edit(ctx, user, own):
    r = await ctx.http.patch(f"/v1/comments/{own['id']}", json={"body": "changed"},
                             headers=bearer(token_for(user)))
    return _http_outcome(r, 200)


async def _http_like(ctx, user, own):
    r = await ctx.http.put(f"/v1/content/{ctx.content}/like", headers=bearer(token_for(user)))
    return _http_outcome(r, 200)


async def _http_applause(ctx, user, own):
    r = await ctx.http.post(f"/v1/content/{ctx.content}/applause", json={"count": 2},
                            headers=bearer(token_for(user)))
    return _http_outcome(r, 200)


async def _events_like(ctx, user, own):
    return await _events(ctx, user, {"type": "like", "content": ctx.content})


async def _events_applause(ctx, user, own):
    return await _events(ctx, user, {"type": "applause", "content": ctx.content, "count": 2})


async def _ws_comment(ctx, user, own):
    return await _ws_op(ctx, user, {"op": "comment", "content": ctx.content, "body": "ws words"})


async def _ws_like(ctx, user, own):
    return await _ws_op(ctx, user, {"op": "like", "content": ctx.content})


async def _ws_applaud(ctx, user, own):
    return await _ws_op(ctx, user, {"op": "applaud", "content": ctx.content, "count": 2})


#: name -> an attempt at writing, by the banned user
BANNED_WRITES: dict[str, Attempt] = {
    "http_comment": _http_comment, "http_edit": _http_edit, "http_like": _http_like,
    "http_applause": _http_applause, "events_like": _events_like,
    "events_applause": _events_applause, "ws_comment": _ws_comment, "ws_like": _ws_like,
    "ws_applaud": _ws_applaud,
}


async def _banned_user(ctx: Ctx) -> tuple[str, dict]:
    """A user with one comment of their own, then banned by a moderator."""
    user = f"banned-{ctx.target}"
    own = await ctx.comment(user, "written before the ban")
    moderator = bearer(token_for(f"mod-{ctx.target}", "moderator"))
    r = await ctx.http.put(f"/v1/moderation/bans/{user}", json={"seconds": 600, "reason": "x"},
                           headers=moderator)
    assert r.status_code == 200, r.text
    return user, own


async def _visible(ctx: Ctx) -> tuple:
    counts = (await ctx.http.get(f"/v1/content/{ctx.content}")).json()
    comments = (await ctx.http.get(f"/v1/content/{ctx.content}/comments",
                                   params={"sort": "oldest"})).json()["items"]
    return (counts["likes"], counts["applause"], counts["comments"],
            [(c["id"], c["body"]) for c in comments])


@pytest.mark.parametrize("write", list(BANNED_WRITES))
async def test_banned_user_cannot_write_until_the_ban_is_lifted(banning, write):
    attempt = BANNED_WRITES[write]
    with trio.fail_after(TEST_TIMEOUT):
        async with client(banning) as http:
            ctx = Ctx(http, banning)
            user, own = await _banned_user(ctx)
            before = await _visible(ctx)
            refused = await attempt(ctx, user, own)
            status = None if write.startswith("ws_") else 403
            assert not refused.ok and (refused.status, refused.code) == (status, "banned"), \
                refused
            assert await _visible(ctx) == before

            moderator = bearer(token_for(f"mod-{ctx.target}", "moderator"))
            r = await http.delete(f"/v1/moderation/bans/{user}", headers=moderator)
            assert r.status_code == 204, r.text
            allowed = await attempt(ctx, user, own)
            assert allowed.ok, allowed
            assert await _visible(ctx) != before


async def _read_content(ctx, user, own):
    r = await ctx.http.get(f"/v1/content/{ctx.content}", headers=bearer(token_for(user)))
    return _http_outcome(r, 200)


async def _read_comments(ctx, user, own):
    r = await ctx.http.get(f"/v1/content/{ctx.content}/comments",
                           headers=bearer(token_for(user)))
    outcome = _http_outcome(r, 200)
    if outcome.ok:
        assert [c["id"] for c in r.json()["items"]] == [own["id"]]
    return outcome


async def _ws_subscribe(ctx, user, own):
    url = f"{ctx.server.ws}?token={token_for(user)}"
    async with open_websocket_url(url) as ws:
        reply = await Client(ws).op({"op": "subscribe", "content": ctx.content})
    assert reply["type"] == "subscribed" and reply["comments"] == 1, reply
    return Outcome(True)


async def _delete_own(ctx, user, own):
    r = await ctx.http.delete(f"/v1/comments/{own['id']}", headers=bearer(token_for(user)))
    return _http_outcome(r, 204)


BANNED_READS = {"get_content": _read_content, "get_comments": _read_comments,
                "ws_subscribe": _ws_subscribe, "delete_own_comment": _delete_own}


@pytest.mark.parametrize("read", list(BANNED_READS))
async def test_banned_user_may_still_read(banning, read):
    with trio.fail_after(TEST_TIMEOUT):
        async with client(banning) as http:
            ctx = Ctx(http, banning)
            user, own = await _banned_user(ctx)
            outcome = await BANNED_READS[read](ctx, user, own)
            assert outcome.ok, outcome


@pytest.mark.parametrize("op", [
    pytest.param({"op": "comment", "body": "still here"}, id="comment"),
    pytest.param({"op": "like"}, id="like"),
    pytest.param({"op": "applaud", "count": 3}, id="applaud")])
async def test_a_socket_opened_before_the_ban_is_refused_too(banning, op):
    """The ban is checked per op, not at the upgrade: a socket that was
    already open is refused from the moment of the ban until it is lifted."""
    with trio.fail_after(TEST_TIMEOUT):
        async with client(banning) as http:
            ctx = Ctx(http, banning)
            user = f"early-{ctx.target}"
            moderator = bearer(token_for(f"mod-{ctx.target}", "moderator"))
            frame = {**op, "content": ctx.content}
            async with open_websocket_url(f"{banning.ws}?token={token_for(user)}") as ws:
                live = Client(ws)
                assert (await live.op({"op": "ping"}))["type"] == "pong"
                r = await http.put(f"/v1/moderation/bans/{user}", json={"seconds": 600},
                                   headers=moderator)
                assert r.status_code == 200, r.text
                before = await _visible(ctx)
                reply = await live.op(frame)
                assert reply["type"] == "error" and reply["code"] == "banned", reply
                assert await _visible(ctx) == before
                r = await http.delete(f"/v1/moderation/bans/{user}", headers=moderator)
                assert r.status_code == 204, r.text
                reply = await live.op(frame)
                assert reply["type"] == "ack", reply
