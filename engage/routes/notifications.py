"""Notification routes: a signed-in user's notifications and whom they follow.

``GET /v1/notifications`` pages the durable per-user queue newest first;
``POST /v1/notifications/read`` marks some or all read; ``PUT`` and
``DELETE /v1/follows/{author}`` follow and unfollow an author (their new
content then notifies, or stops notifying). See docs/notifications.md.
"""

from __future__ import annotations

import msgspec
from quart import request
from quart_trio import QuartTrio

from engage import web
from engage.domain.notifications import (
    decode_notification_cursor,
    parse_read_body,
    parse_unread,
    validate_notification_page,
    validate_user_id,
)
from engage.errors import ValidationError
from engage.system import System
from engage.schemas import ReadBody
from engage.web import ok


def register(app: QuartTrio, system: System) -> None:
    """Add the notification and follow routes to ``app``."""
    settings = system.settings
    store = system.stores.notifications

    @app.get("/v1/notifications")
    async def list_notifications():
        user = web.require_user(settings).user
        limit = validate_notification_page(request.args.get("limit"))
        unread = parse_unread(request.args.get("unread"))
        cursor = request.args.get("cursor")
        before = decode_notification_cursor(cursor) if cursor else None
        items, more = await store.page(user, before, unread, limit)
        return ok({"items": [n.public() for n in items],
                   "next": str(items[-1].id) if more and items else None})

    @app.post("/v1/notifications/read")
    async def mark_read():
        user = web.require_user(settings).user
        body = await web.body(ReadBody)
        ids = parse_read_body({k: v for k, v in msgspec.structs.asdict(body).items()
                               if v is not None})
        changed = await store.mark_read(user, ids)
        return ok({"marked": changed, "unread": await store.unread_count(user)})

    def author_arg(author: str) -> str:
        follower = web.require_user(settings).user
        validate_user_id(author)
        if author == follower:
            raise ValidationError("you cannot follow yourself", code="follow_self")
        return follower

    @app.put("/v1/follows/<author>")
    async def follow(author: str):
        follower = author_arg(author)
        await store.follow(follower, author)
        return ok({"author": author, "following": True})

    @app.delete("/v1/follows/<author>")
    async def unfollow(author: str):
        follower = author_arg(author)
        await store.unfollow(follower, author)
        return ok({"author": author, "following": False})
