"""The HTTP gateway: routes, identity and validation, then a message to an actor.

Thin on purpose: each handler parses, validates (``engage.domain``), asks the
content actor, and shapes the reply. Errors become problem+json responses.
The hot routes (views, likes, applause, events, counts reads, health) are not
here: the front door answers them itself (:mod:`engage.hot`).
"""

from __future__ import annotations

import secrets

from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from engage import metrics, problems, routes, web
from engage.actors import DeleteComment, EditComment
from engage.auth import issue_token
from engage.domain import validate_content_id
from engage.domain.comments import (decode_cursor, encode_cursor, parse_comment_id, validate_body,
                                    validate_page)
from engage.domain.moderation import has_moderator_role
from engage.errors import ActorError, ClientError, NotFound, StoreError, Unauthorized
from engage.schemas import CommentEdit
from engage.system import System
from engage.web import REQUEST_TIMEOUT, ok

#: The demo page runs only our own scripts; comment text can never execute. It
#: talks only to its own origin: CSP 3 lets 'self' match ws:/wss: on the same host.
DEMO_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
            "frame-ancestors 'self'")


def create_app(system: System) -> QuartTrio:
    """The ASGI app for one running :class:`~engage.system.System`."""
    settings = system.settings
    app = QuartTrio("engage")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = True

    def user_id() -> str | None:
        return web.current_user(settings)

    # -- errors -------------------------------------------------------------------

    app.before_request(web.refuse_non_json)

    @app.errorhandler(ClientError)
    async def _client_error(exc: ClientError):
        return problems.from_client_error(exc)

    @app.errorhandler(HTTPException)
    async def _http_error(exc: HTTPException):
        return problems.from_http_exception(exc)

    @app.errorhandler(StoreError)
    @app.errorhandler(ActorError)
    async def _unavailable(exc: Exception):
        error = problems.as_client_error(exc)
        assert error is not None
        return problems.from_client_error(error)

    @app.errorhandler(Exception)
    async def _unexpected(exc: Exception):
        return problems.from_unexpected(exc)

    # -- comments -------------------------------------------------------------------------

    def signed_in() -> str:
        user = user_id()
        if user is None:
            raise Unauthorized("sign in to comment (Authorization: Bearer <token>)")
        return user

    # POST /v1/content/<content_id>/comments is a hot route (engage/hot/routes.py).

    @app.get("/v1/content/<content_id>/comments")
    async def list_comments(content_id: str):
        validate_content_id(content_id)
        sort, limit = validate_page(request.args.get("sort"), request.args.get("limit"))
        cursor = request.args.get("cursor")
        after = decode_cursor(cursor) if cursor else None
        threads, more = await system.stores.comments.threads(content_id, sort, after, limit)
        items = [{**root.public(), "replies": [r.public() for r in replies]}
                 for root, replies in threads]
        last = threads[-1][0] if threads else None
        next_cursor = encode_cursor(last.created_at, last.id) if more and last else None
        return ok({"items": items, "next": next_cursor})

    async def comment_owner(comment_id: str) -> tuple[int, str]:
        cid = parse_comment_id(comment_id)
        comment = await system.stores.comments.get(cid)
        if comment is None or comment.deleted:
            raise NotFound(f"comment {comment_id} does not exist", code="comment_not_found")
        return cid, comment.content_id

    @app.patch("/v1/comments/<comment_id>")
    async def patch_comment(comment_id: str):
        user = signed_in()
        text = validate_body((await web.body(CommentEdit)).body, settings.comment_max_chars)
        cid, content_id = await comment_owner(comment_id)
        comment = await system.content.ask(content_id, EditComment(cid, user, text),
                                           REQUEST_TIMEOUT)
        return ok(comment.public(), 202 if comment.status == "held" else 200)

    @app.delete("/v1/comments/<comment_id>")
    async def delete_comment(comment_id: str):
        user = signed_in()
        moderator = has_moderator_role(web.require_user(settings).roles)
        cid, content_id = await comment_owner(comment_id)
        await system.content.ask(content_id, DeleteComment(cid, user, moderator),
                                 REQUEST_TIMEOUT)
        return Response("", status=204)

    # -- browser client and demo -------------------------------------------------------

    @app.get("/")
    async def demo_page():
        response = await app.send_static_file("demo.html")
        response.headers["Content-Security-Policy"] = DEMO_CSP
        return response

    if settings.dev_mode:
        @app.post("/v1/dev/token")
        async def dev_token():
            """Development mode only: a token for a random user."""
            user = "dev-" + secrets.token_hex(4)
            return ok({"user": user, "token": issue_token(settings.jwt_secrets[0], user)})

    # -- operations ---------------------------------------------------------------------

    @app.get("/v1/ws")
    async def websocket_without_upgrade():
        # Upgrades are taken by the front door; a plain GET arriving on a reused
        # keep-alive connection lands here.
        return problems.problem(426, "Upgrade required",
                                "this endpoint speaks WebSocket only (see docs/protocol.md)",
                                code="upgrade_required", headers={"Upgrade": "websocket"})

    @app.get("/metrics")
    async def metrics_endpoint():
        return Response(metrics.exposition(), content_type=metrics.CONTENT_TYPE_LATEST)

    for register in routes.MODULES:
        register(app, system)
    return app
