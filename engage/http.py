"""The HTTP gateway: routes, identity and validation, then a message to an actor.

Thin on purpose: each handler parses, validates (``engage.domain``), asks the
content actor, and shapes the reply. Errors become problem+json responses.
"""

from __future__ import annotations

import secrets
from typing import Any

import trio
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from engage import problems, routes, web
from engage.actors import DeleteComment, EditComment, GetCounts, Interact, PostComment
from engage.domain import Counts, Op, make_op, validate_content_id
from engage.auth import issue_token
from engage.domain.ingest import parse_events
from engage.domain.comments import (decode_cursor, encode_cursor, parse_comment_id, validate_body,
                                    validate_page)
from engage.domain.moderation import has_moderator_role
from engage.errors import (ActorError, ClientError, NotFound, StoreError, TooManyChildren,
                           Unauthorized, Unavailable, ValidationError)
from engage.schemas import (ApplauseBody, CommentBody, CommentEdit, EmptyBody, EventsBody,
                            ViewBody)
from engage.system import System
from engage.web import ok

from engage.web import REQUEST_TIMEOUT
#: Seconds ``/readyz`` gives each store to answer.
READY_TIMEOUT = 2.0
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
    cap = settings.applause_cap

    def user_id() -> str | None:
        return web.current_user(settings)

    async def interact(content_id: str, op: Op):
        validate_content_id(content_id)
        (result,) = await system.content.ask(content_id, Interact((op,)), REQUEST_TIMEOUT)
        if isinstance(result, ClientError):  # refused by a rate limit or a ban
            raise result
        return result

    # -- errors -------------------------------------------------------------------

    app.before_request(web.read_body_first)  # first: see its docstring
    app.before_request(web.refuse_non_json)

    @app.errorhandler(ClientError)
    async def _client_error(exc: ClientError):
        return problems.from_client_error(exc)

    @app.errorhandler(HTTPException)
    async def _http_error(exc: HTTPException):
        return problems.from_http_exception(exc)

    @app.errorhandler(StoreError)
    async def _store_error(exc: StoreError):
        return problems.from_client_error(Unavailable(
            "a backing store is unavailable; retry shortly", code="store_unavailable"))

    @app.errorhandler(ActorError)
    async def _actor_error(exc: ActorError):
        if isinstance(exc, TooManyChildren):
            detail = "too many active items on this server; retry shortly"
        else:
            detail = "the server is busy; retry shortly"
        return problems.from_client_error(Unavailable(detail, code="busy"))

    @app.errorhandler(Exception)
    async def _unexpected(exc: Exception):
        return problems.from_unexpected(exc)

    # -- counters -------------------------------------------------------------------

    @app.get("/v1/content/<content_id>")
    async def get_content(content_id: str):
        validate_content_id(content_id)
        counts: Counts = await system.content.ask(content_id, GetCounts(), REQUEST_TIMEOUT)
        body = counts.as_dict(content_id)
        meta = await system.stores.content_meta.get(content_id)
        if meta is not None:  # published through the publish stream
            body.update({k: v for k, v in meta.public().items() if k != "id"})
        return ok(body)

    @app.post("/v1/content/<content_id>/views")
    async def post_view(content_id: str):
        body = await web.body(ViewBody, required=False)
        op = make_op("view", user=user_id(), viewer=body.viewer if body else None, cap=cap,
                     address=web.client_ip(settings))
        result = await interact(content_id, op)
        return ok(result.public("view"), 202)

    @app.put("/v1/content/<content_id>/like")
    async def put_like(content_id: str):
        await web.body(EmptyBody, required=False)
        result = await interact(content_id, make_op("like", user=user_id(), cap=cap,
                                                    address=web.client_ip(settings)))
        return ok(result.public("like"))

    @app.delete("/v1/content/<content_id>/like")
    async def delete_like(content_id: str):
        result = await interact(content_id, make_op("unlike", user=user_id(), cap=cap,
                                                    address=web.client_ip(settings)))
        return ok(result.public("unlike"))

    @app.post("/v1/content/<content_id>/applause")
    async def post_applause(content_id: str):
        body = await web.body(ApplauseBody)
        op = make_op("applause", user=user_id(), count=body.count, cap=cap,
                     address=web.client_ip(settings))
        result = await interact(content_id, op)
        return ok(result.public("applause"))

    @app.post("/v1/events")
    async def post_events():
        body = await web.body(EventsBody | list[Any])  # type: ignore[arg-type]
        if isinstance(body, EventsBody):
            body = body.events
        if not 1 <= len(body) <= settings.events_max_batch:
            raise ValidationError(f"send 1-{settings.events_max_batch} events per batch",
                                  code="batch_size")
        address = web.client_ip(settings)
        if system.limits is not None:
            await system.limiter.enforce(system.limits.events_limits(address, len(body)),
                                         "event")
        # Each event counts against its sender's limits like the single routes.
        return ok({"results": await _ingest(body, user_id(), address)})

    async def _ingest(events: list, user: str | None, address: str) -> list[dict]:
        groups, errors = parse_events(events, user=user, cap=cap, address=address)
        results: list[dict | None] = [errors.get(i) for i in range(len(events))]
        replies = []
        for content_id, items in groups.items():
            ops = tuple(op for _, op in items)
            replies.append((items, await system.content.request(content_id, Interact(ops))))
        for items, reply in replies:
            try:
                op_results = await reply.get(REQUEST_TIMEOUT)
            except (StoreError, ActorError) as exc:
                for i, _ in items:
                    results[i] = {"ok": False, "status": 503, "code": "unavailable",
                                  "detail": f"not applied: {type(exc).__name__}"}
                continue
            for (i, op), res in zip(items, op_results):
                if isinstance(res, ClientError):  # refused by a rate limit or a ban
                    results[i] = {"ok": False, "status": res.status, "code": res.code,
                                  "detail": res.detail}
                elif op.kind == "view":  # most of a batch: skip the generic shaping
                    results[i] = {"ok": True, "views": res.views}
                else:
                    results[i] = {"ok": True, **res.public(op.kind)}
        return results  # type: ignore[return-value]

    # -- comments -------------------------------------------------------------------------

    def signed_in() -> str:
        user = user_id()
        if user is None:
            raise Unauthorized("sign in to comment (Authorization: Bearer <token>)")
        return user

    @app.post("/v1/content/<content_id>/comments")
    async def post_comment(content_id: str):
        validate_content_id(content_id)
        user = signed_in()
        body = await web.body(CommentBody)
        text = validate_body(body.body, settings.comment_max_chars)
        parent_id = None if body.parent is None else parse_comment_id(body.parent)
        if system.limits is not None:
            await system.limiter.enforce(
                system.limits.comment_limits(user, web.client_ip(settings)), "comment")
        comment = await system.content.ask(content_id, PostComment(user, text, parent_id),
                                           REQUEST_TIMEOUT)
        # 202: stored, but held for a moderator (engage/domain/moderation.py).
        return ok(comment.public(), 202 if comment.status == "held" else 201)

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

    @app.get("/healthz")
    async def healthz():
        return ok({"status": "ok", "instance": system.instance_id})

    @app.get("/readyz")
    async def readyz():
        checks = {"redis": system.stores.cache.ping, "postgres": system.stores.database.ping}
        status: dict[str, str] = {}

        async def check(name, fn):
            try:
                with trio.fail_after(READY_TIMEOUT):
                    await fn()
                status[name] = "ok"
            except (StoreError, trio.TooSlowError) as exc:
                status[name] = f"unavailable: {type(exc).__name__}"

        async with trio.open_nursery() as nursery:
            for name, fn in checks.items():
                nursery.start_soon(check, name, fn)
        if all(v == "ok" for v in status.values()):
            return ok({"status": "ready", **status})
        return problems.problem(503, "Not ready", "a backing store is unreachable",
                                code="not_ready", checks=status)

    @app.get("/metrics")
    async def metrics_endpoint():
        return Response(generate_latest(), content_type=CONTENT_TYPE_LATEST)

    for register in routes.MODULES:
        register(app, system)
    return app
