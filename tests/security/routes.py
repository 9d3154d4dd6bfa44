"""The routes the security tests go through, and how to set the scene for each.

``ROUTES`` lists every state-changing HTTP route (and the moderation GETs):
its method, who may use it, the status it answers when allowed, and a
``prepare`` that creates what the request acts on (a comment in the right
state, a ban to lift...) and returns the path and JSON body. A :class:`Ctx`
is one test's own content item and users, and reads back everything a
refused request must leave unchanged (:meth:`Ctx.state`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Awaitable, Callable

from tests.security.support import LiveServer, bearer, token_for

#: A word that puts a comment on hold (the servers here are started with it).
HOLD = "holdme"
ANYONE = "anyone"        # anonymous callers allowed (tokens, if sent, must be valid)
SIGNED_IN = "signed-in"  # any valid token


class Ctx:
    """One test's own content item and users, talking to ``server`` through ``http``."""

    def __init__(self, http, server: LiveServer, actor: str | None = None) -> None:
        self.http = http
        self.server = server
        tag = uuid.uuid4().hex[:10]
        self.content = f"az-{tag}"
        self.target = f"target-{tag}"  # whom a moderation route acts on
        self.actor = actor             # who makes the request (None: anonymous / bad token)
        self.someone = f"author-{tag}"
        self.admin = bearer(token_for(f"root-{tag}", "admin"))

    async def comment(self, author: str, body: str = "a comment", status: int = 201) -> dict:
        r = await self.http.post(f"/v1/content/{self.content}/comments", json={"body": body},
                                 headers=bearer(token_for(author)))
        assert r.status_code == status, r.text
        return r.json()

    async def as_admin(self, method: str, path: str, json=None, status: int = 200):
        r = await self.http.request(method, path, json=json, headers=self.admin)
        assert r.status_code == status, (method, path, r.text)
        return r

    async def ban(self, user: str) -> None:
        await self.as_admin("PUT", f"/v1/moderation/bans/{user}",
                            {"seconds": 600, "reason": "matrix"})

    async def state(self) -> dict:
        """Everything a refused request must leave as it was."""
        counts = (await self.http.get(f"/v1/content/{self.content}")).json()
        comments = (await self.http.get(f"/v1/content/{self.content}/comments",
                                        params={"sort": "oldest"})).json()["items"]
        ban = await self.http.get(f"/v1/moderation/bans/{self.target}", headers=self.admin)
        queue, cursor = [], None
        while True:
            params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            page = (await self.http.get("/v1/moderation/queue", params=params,
                                        headers=self.admin)).json()
            queue += [(c["id"], c["body"]) for c in page["items"]
                      if c["content"] == self.content]
            cursor = page["next"]
            if not cursor:
                break
        return {"counts": counts, "comments": comments, "queue": queue,
                "ban": (ban.status_code, ban.json())}


# -- the routes ----------------------------------------------------------------------

Prepare = Callable[[Ctx], Awaitable[tuple[str, dict | None]]]


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    rule: str           # as the app's url map has it
    who: str            # ANYONE, SIGNED_IN or the role it needs
    ok: int             # the status when allowed
    prepare: Prepare    # sets the scene; returns the path and JSON body

    def allows(self, roles: tuple[str, ...]) -> bool:
        return self.who in (ANYONE, SIGNED_IN) or self.who in roles or "admin" in roles


def _fixed(path: str, body: dict | None = None) -> Prepare:
    async def prepare(ctx: Ctx):
        return path.format(c=ctx.content, target=ctx.target), body
    return prepare


def _own_comment(body: dict | None = None) -> Prepare:
    """A comment by the actor (by someone else when there is none)."""
    async def prepare(ctx: Ctx):
        c = await ctx.comment(ctx.actor or ctx.someone)
        return f"/v1/comments/{c['id']}", body
    return prepare


def _moderate(action: str, start: str) -> Prepare:
    """A comment by the target in state ``start``, and ``action`` on it."""
    async def prepare(ctx: Ctx):
        if start == "held":
            c = await ctx.comment(ctx.target, f"{HOLD} please", 202)
        else:
            c = await ctx.comment(ctx.target)
        if start == "hidden":
            await ctx.as_admin("POST", f"/v1/moderation/comments/{c['id']}/hide")
        return f"/v1/moderation/comments/{c['id']}/{action}", None
    return prepare


def _banned_target(path: str) -> Prepare:
    """The target banned first."""
    async def prepare(ctx: Ctx):
        await ctx.ban(ctx.target)
        return path.format(target=ctx.target), None
    return prepare


def _target_with_comments(path: str) -> Prepare:
    """The target has written a comment."""
    async def prepare(ctx: Ctx):
        await ctx.comment(ctx.target)
        return path.format(target=ctx.target), None
    return prepare


ROUTES = [
    Route("view", "POST", "/v1/content/<content_id>/views", ANYONE, 202,
          _fixed("/v1/content/{c}/views")),
    Route("like", "PUT", "/v1/content/<content_id>/like", SIGNED_IN, 200,
          _fixed("/v1/content/{c}/like")),
    Route("unlike", "DELETE", "/v1/content/<content_id>/like", SIGNED_IN, 200,
          _fixed("/v1/content/{c}/like")),
    Route("applause", "POST", "/v1/content/<content_id>/applause", SIGNED_IN, 200,
          _fixed("/v1/content/{c}/applause", {"count": 1})),
    Route("events", "POST", "/v1/events", ANYONE, 200,
          _fixed("/v1/events", {"events": [{"type": "view", "content": "{c}"}]})),
    Route("comment", "POST", "/v1/content/<content_id>/comments", SIGNED_IN, 201,
          _fixed("/v1/content/{c}/comments", {"body": "hello"})),
    Route("edit_comment", "PATCH", "/v1/comments/<comment_id>", SIGNED_IN, 200,
          _own_comment({"body": "edited"})),
    Route("delete_comment", "DELETE", "/v1/comments/<comment_id>", SIGNED_IN, 204,
          _own_comment()),
    Route("read_notifications", "POST", "/v1/notifications/read", SIGNED_IN, 200,
          _fixed("/v1/notifications/read", {"all": True})),
    Route("follow", "PUT", "/v1/follows/<author>", SIGNED_IN, 200,
          _fixed("/v1/follows/{target}")),
    Route("unfollow", "DELETE", "/v1/follows/<author>", SIGNED_IN, 200,
          _fixed("/v1/follows/{target}")),
    Route("publish", "POST", "/v1/content", "publisher", 202,
          _fixed("/v1/content", {"content": "{c}", "title": "T", "url": "https://example.com/a",
                                 "author": "writer"})),
    *(Route(action, "POST", "/v1/moderation/comments/<comment_id>/<action>", "moderator", 200,
            _moderate(action, start))
      for action, start in (("approve", "held"), ("reject", "held"), ("hide", "visible"),
                            ("restore", "hidden"))),
    Route("ban", "PUT", "/v1/moderation/bans/<user>", "moderator", 200,
          _fixed("/v1/moderation/bans/{target}", {"seconds": 60, "reason": "r"})),
    Route("lift_ban", "DELETE", "/v1/moderation/bans/<user>", "moderator", 204,
          _banned_target("/v1/moderation/bans/{target}")),
    Route("delete_user_comments", "DELETE", "/v1/moderation/users/<user>/comments",
          "moderator", 200, _target_with_comments("/v1/moderation/users/{target}/comments")),
    Route("get_ban", "GET", "/v1/moderation/bans/<user>", "moderator", 200,
          _banned_target("/v1/moderation/bans/{target}")),
    Route("queue", "GET", "/v1/moderation/queue", "moderator", 200,
          _fixed("/v1/moderation/queue")),
]


def fill(body, ctx: Ctx):
    """``{c}`` in string values of ``body`` replaced by the cell's content id."""
    if isinstance(body, dict):
        return {k: fill(v, ctx) for k, v in body.items()}
    if isinstance(body, list):
        return [fill(v, ctx) for v in body]
    if isinstance(body, str):
        return body.replace("{c}", ctx.content)
    return body


async def call_route(ctx: Ctx, route: Route, headers: dict):
    """Set the scene for ``route``, note the state, send the request with
    ``headers``; the response and the state before it."""
    path, body = await route.prepare(ctx)
    before = await ctx.state()
    r = await ctx.http.request(route.method, path, json=fill(body, ctx), headers=headers)
    return r, before


def problem(r, status: int, code: str) -> None:
    """``r`` is a problem+json answer with ``status`` and ``code``."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["status"] == status and body["code"] == code, body
