"""Moderation routes: the queue of held comments, approve / reject / hide /
restore, bans, and removing all of a user's comments (see docs/moderation.md).

Every route needs the ``moderator`` role (``admin`` passes too). Whatever
changes what readers see is a message to the comment's content actor, so it
is ordered with that item's new comments and reaches live views.
"""

from __future__ import annotations

from quart import Response, request
from quart_trio import QuartTrio

from engage import web
from engage.actors.content.messages import (ApproveComment, DeleteUserComments, HideComment,
                                            RejectComment, RestoreComment)
from engage.domain.comments import decode_cursor, encode_cursor, parse_comment_id, validate_page
from engage.domain.moderation import parse_ban, validate_user_id
from engage.errors import ActorError, NotFound, StoreError, Unavailable
from engage.system import System
from engage.schemas import BanBody, EmptyBody
from engage.web import REQUEST_TIMEOUT, ok

#: Content actors asked at once when removing a user's comments.
BULK_ROUND = 64
ACTIONS = {"approve": ApproveComment, "reject": RejectComment, "hide": HideComment,
           "restore": RestoreComment}


def _item(comment) -> dict:
    """A comment as moderators see it: with its content id."""
    return {**comment.public(), "content": comment.content_id}


def register(app: QuartTrio, system: System) -> None:
    """Add the moderation routes to ``app``."""
    settings = system.settings
    comments = system.stores.comments

    def moderation():
        if system.stores.moderation is None:
            raise Unavailable("moderation is not set up on this server", code="no_moderation")
        return system.stores.moderation

    @app.get("/v1/moderation/queue")
    async def moderation_queue():
        web.require_user(settings, "moderator")
        _, limit = validate_page("oldest", request.args.get("limit"))
        cursor = request.args.get("cursor")
        after = decode_cursor(cursor) if cursor else None
        items, more = await comments.held(after, limit)
        last = items[-1] if items else None
        next_cursor = encode_cursor(last.created_at, last.id) if more and last else None
        return ok({"items": [_item(c) for c in items], "next": next_cursor})

    @app.post("/v1/moderation/comments/<comment_id>/<action>")
    async def moderate_comment(comment_id: str, action: str):
        identity = web.require_user(settings, "moderator")
        message_type = ACTIONS.get(action)
        if message_type is None:
            raise NotFound(f"no moderation action {action!r} (approve, reject, hide, restore)",
                           code="not_found")
        await web.body(EmptyBody, required=False)
        cid = parse_comment_id(comment_id)
        current = await comments.get(cid)  # deleted ones too: acting on them is a 409
        if current is None:
            raise NotFound(f"comment {comment_id} does not exist", code="comment_not_found")
        comment = await system.content.ask(current.content_id,
                                           message_type(cid, identity.user), REQUEST_TIMEOUT)
        return ok(_item(comment))

    @app.put("/v1/moderation/bans/<user>")
    async def put_ban(user: str):
        identity = web.require_user(settings, "moderator")
        validate_user_id(user)
        body = await web.body(BanBody)
        seconds, reason = parse_ban({"seconds": body.seconds, "reason": body.reason})
        ban = await moderation().ban(user, seconds, reason, identity.user)
        return ok(ban.public())

    @app.get("/v1/moderation/bans/<user>")
    async def get_ban(user: str):
        web.require_user(settings, "moderator")
        validate_user_id(user)
        ban = await moderation().active_ban(user)
        if ban is None:
            raise NotFound(f"{user} is not banned", code="ban_not_found")
        return ok(ban.public())

    @app.delete("/v1/moderation/bans/<user>")
    async def delete_ban(user: str):
        web.require_user(settings, "moderator")
        validate_user_id(user)
        await moderation().lift(user)
        return Response("", status=204)

    @app.delete("/v1/moderation/users/<user>/comments")
    async def delete_user_comments(user: str):
        identity = web.require_user(settings, "moderator")
        validate_user_id(user)
        contents = await comments.contents_by_author(user)
        message = DeleteUserComments(user, identity.user)
        deleted = failed = 0
        for start in range(0, len(contents), BULK_ROUND):
            # Ask a round of items' actors at once, then gather their answers.
            replies = [await system.content.request(content_id, message)
                       for content_id in contents[start:start + BULK_ROUND]]
            for reply in replies:
                try:
                    deleted += await reply.get(REQUEST_TIMEOUT)
                except (StoreError, ActorError):
                    failed += 1
        if failed:
            raise Unavailable(f"deleted {deleted} comments, but {failed} items failed; "
                              f"send the request again", code="store_unavailable")
        return ok({"user": user, "deleted": deleted, "contents": len(contents)})
