"""The hot routes, answered straight from :class:`~engage.http1.Request` objects.

Most traffic an engagement server sees is a view ping per page load, a
counts read per server-side render, a like or an applause. Through quart-trio
each of these cost about a millisecond of framework (tasks, cancel scopes,
werkzeug) before any of our code ran (docs/decisions.md §12). Here they are
plain coroutines: match the path, check, ask the content actor, answer.
Posting a comment is here too (its cost is the issue-9 target of a
millisecond all in); listing them stays on quart.

Same contract as before, proven by the same suites: the paths, methods (405
with ``Allow``, ``HEAD`` and ``OPTIONS`` as quart answered them), bodies,
problem+json codes, rate limits, auth and trusted-proxy rules. Everything
else falls through to the quart app (``None``).
"""

from __future__ import annotations

from typing import Any, Final

import trio

from engage.actors import GetCounts, Interact, PostComment
from engage.domain import Op, make_op, validate_content_id
from engage.domain.comments import parse_comment_id, validate_body
from engage.domain.ingest import parse_events
from engage.errors import ActorError, ClientError, StoreError, Unauthorized, ValidationError
from engage.hot.request import (address, body, error_response, identity, json_response,
                                refuse_non_json)
from engage.http1 import Request, Response, problem
from engage.schemas import ApplauseBody, CommentBody, EmptyBody, EventsBody, ViewBody
from engage.system import System
from engage.web import REQUEST_TIMEOUT

#: Seconds ``/readyz`` gives each store to answer.
READY_TIMEOUT: Final = 2.0
_CONTENT: Final = "/v1/content/"


class _Rule:
    """One hot route, shaped like a werkzeug rule for the OpenAPI check.

    A ``shared`` rule's path also has quart routes: the methods it does not
    list (and ``OPTIONS``, whose ``Allow`` quart knows whole) go to quart.
    """

    __slots__ = ("rule", "methods", "handler", "shared")

    def __init__(self, rule: str, methods: set[str], handler: str, *,
                 shared: bool = False) -> None:
        self.rule = rule
        self.methods = methods
        self.handler = handler
        self.shared = shared


#: Every hot route (``engage.openapi.undocumented`` walks these with the quart rules).
HOT_RULES: Final = (
    _Rule("/healthz", {"GET", "HEAD", "OPTIONS"}, "healthz"),
    _Rule("/readyz", {"GET", "HEAD", "OPTIONS"}, "readyz"),
    _Rule("/v1/events", {"POST", "OPTIONS"}, "events"),
    _Rule("/v1/content/<content_id>", {"GET", "HEAD", "OPTIONS"}, "counts"),
    _Rule("/v1/content/<content_id>/views", {"POST", "OPTIONS"}, "view"),
    _Rule("/v1/content/<content_id>/like", {"PUT", "DELETE", "OPTIONS"}, "like"),
    _Rule("/v1/content/<content_id>/applause", {"POST", "OPTIONS"}, "applause"),
    # Listing comments (GET) stays on quart: posting is the busy half.
    _Rule("/v1/content/<content_id>/comments", {"POST"}, "comment", shared=True),
)
_BY_PATH: Final = {r.rule: r for r in HOT_RULES}
_ALLOW: Final = {r.rule: ", ".join(sorted(r.methods)) for r in HOT_RULES}


def match(path: str) -> tuple[_Rule, str | None] | None:
    """The hot rule for ``path`` and its content id, or None (not a hot path)."""
    if path.startswith(_CONTENT):
        content_id, slash, tail = path[len(_CONTENT):].partition("/")
        if not content_id:
            return None
        key = _CONTENT + "<content_id>" + (slash + tail if slash else "")
        rule = _BY_PATH.get(key)
        return (rule, content_id) if rule is not None else None
    rule = _BY_PATH.get(path)
    return (rule, None) if rule is not None else None


class HotRoutes:
    """The fast lane of the front door: ``await routes(request)`` answers a hot
    route, or returns None to hand the request to the quart app."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.settings = system.settings
        self.cap = system.settings.applause_cap

    async def __call__(self, request: Request) -> Response | None:
        found = match(request.path)
        if found is None:
            return None
        rule, content_id = found
        method = request.method
        if method not in rule.methods:
            if rule.shared:
                return None
            return problem(405, "The method is not allowed for the requested URL.",
                           code="method_not_allowed", title="Method Not Allowed",
                           headers=[("allow", _ALLOW[rule.rule])])
        if method == "OPTIONS":
            return Response(200, b"", [("allow", _ALLOW[rule.rule])])
        try:
            refuse_non_json(request)
            handler = getattr(self, rule.handler)
            return await (handler(request) if content_id is None
                          else handler(request, content_id))
        except Exception as exc:  # answered as problem+json; bugs logged as 500
            return error_response(exc, request)

    # -- counters ------------------------------------------------------------------------

    async def _interact(self, content_id: str, op: Op) -> Any:
        validate_content_id(content_id)
        (result,) = await self.system.content.ask(content_id, Interact((op,)), REQUEST_TIMEOUT)
        if isinstance(result, ClientError):  # refused by a rate limit or a ban
            raise result
        return result

    def _user(self, request: Request) -> str | None:
        who = identity(request, self.settings)
        return who.user if who else None

    async def counts(self, request: Request, content_id: str) -> Response:
        validate_content_id(content_id)
        counts = await self.system.content.ask(content_id, GetCounts(), REQUEST_TIMEOUT)
        answer = counts.as_dict(content_id)
        meta = await self.system.stores.content_meta.get(content_id)
        if meta is not None:  # published through the publish stream
            answer.update({k: v for k, v in meta.public().items() if k != "id"})
        return json_response(answer)

    async def view(self, request: Request, content_id: str) -> Response:
        sent = body(request, ViewBody, required=False)
        op = make_op("view", user=self._user(request), viewer=sent.viewer if sent else None,
                     cap=self.cap, address=address(request, self.settings))
        result = await self._interact(content_id, op)
        return json_response(result.public("view"), 202)

    async def like(self, request: Request, content_id: str) -> Response:
        kind = "like" if request.method == "PUT" else "unlike"
        if kind == "like":
            body(request, EmptyBody, required=False)
        op = make_op(kind, user=self._user(request), cap=self.cap,
                     address=address(request, self.settings))
        return json_response((await self._interact(content_id, op)).public(kind))

    async def applause(self, request: Request, content_id: str) -> Response:
        sent = body(request, ApplauseBody)
        op = make_op("applause", user=self._user(request), count=sent.count, cap=self.cap,
                     address=address(request, self.settings))
        return json_response((await self._interact(content_id, op)).public("applause"))

    async def comment(self, request: Request, content_id: str) -> Response:
        validate_content_id(content_id)
        user = self._user(request)
        if user is None:
            raise Unauthorized("sign in to comment (Authorization: Bearer <token>)")
        sent = body(request, CommentBody)
        settings, system = self.settings, self.system
        text = validate_body(sent.body, settings.comment_max_chars)
        parent_id = None if sent.parent is None else parse_comment_id(sent.parent)
        limits = () if system.limits is None else tuple(
            system.limits.comment_limits(user, address(request, settings)))
        # The content actor checks the limits of a run of comments in one call.
        comment = await system.content.ask(content_id, PostComment(user, text, parent_id, limits),
                                           REQUEST_TIMEOUT)
        # 202: stored, but held for a moderator (engage/domain/moderation.py).
        return json_response(comment.public(), 202 if comment.status == "held" else 201)

    async def events(self, request: Request) -> Response:
        sent = body(request, EventsBody | list[Any])  # type: ignore[arg-type]
        events = sent.events if isinstance(sent, EventsBody) else sent
        settings = self.settings
        if not 1 <= len(events) <= settings.events_max_batch:
            raise ValidationError(f"send 1-{settings.events_max_batch} events per batch",
                                  code="batch_size")
        sender = address(request, settings)
        system = self.system
        if system.limits is not None:
            await system.limiter.enforce(system.limits.events_limits(sender, len(events)),
                                         "event")
        # Each event counts against its sender's limits like the single routes.
        results = await self._ingest(events, self._user(request), sender)
        return json_response({"results": results})

    async def _ingest(self, events: list, user: str | None, sender: str) -> list[dict]:
        groups, errors = parse_events(events, user=user, cap=self.cap, address=sender)
        results: list[dict | None] = [errors.get(i) for i in range(len(events))]
        replies = []
        for content_id, items in groups.items():
            ops = tuple(op for _, op in items)
            replies.append((items, await self.system.content.request(content_id, Interact(ops))))
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

    # -- operations ----------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        return json_response({"status": "ok", "instance": self.system.instance_id})

    async def readyz(self, request: Request) -> Response:
        stores = self.system.stores
        checks = {"redis": stores.cache.ping, "postgres": stores.database.ping}
        status: dict[str, str] = {}

        async def check(name, ping) -> None:
            try:
                with trio.fail_after(READY_TIMEOUT):
                    await ping()
                status[name] = "ok"
            except (StoreError, trio.TooSlowError) as exc:
                status[name] = f"unavailable: {type(exc).__name__}"

        async with trio.open_nursery() as nursery:
            for name, ping in checks.items():
                nursery.start_soon(check, name, ping)
        if all(v == "ok" for v in status.values()):
            return json_response({"status": "ready", **status})
        return problem(503, "a backing store is unreachable", code="not_ready",
                       title="Not ready", checks=status)
