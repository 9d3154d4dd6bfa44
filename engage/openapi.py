"""The OpenAPI 3.1 document of the HTTP API (served at ``GET /openapi.json``).

:data:`ROUTES` is the table: one :class:`Route` per method and path, saying
who may call it, what it takes and what it answers. Request bodies are the
msgspec structs the routes decode with (:mod:`engage.schemas.http`); response
bodies are the structs below, which only describe (nothing decodes with
them). Value rules that live in :mod:`engage.domain` rather than in the
structs (content id syntax, ranges, lengths) are added to the generated
schemas by :func:`_refine`, with the configured limits.

:func:`build_document` runs once at start-up (``engage/routes/openapi.py``);
:func:`undocumented` lists the app's routes the table does not cover, so
tests/test_openapi.py can fail when a route is added without a row here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Iterable, Literal

import msgspec

from engage import __version__
from engage.domain.comments import MAX_PAGE as MAX_COMMENT_PAGE
from engage.domain.content import MAX_CONTENT_PAGE
from engage.domain.counters import MAX_VIEWER_ID
from engage.domain.moderation import MAX_BAN_REASON, MAX_BAN_SECONDS, MAX_USER_ID
from engage.domain.notifications import MAX_NOTIFICATION_PAGE, MAX_READ_IDS
from engage.schemas import (ApplauseBody, BanBody, CommentBody, CommentEdit, EmptyBody, Event,
                            EventsBody, PublishBody, ReadBody, ViewBody)
from engage.settings import Settings

PROBLEM_JSON = "application/problem+json"
CONTENT_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
#: Comment and notification ids: positive integers, carried as strings.
ID_PATTERN = COMMENT_ID_PATTERN = r"^[1-9][0-9]{0,17}$"
#: User ids in paths: printable, no spaces (as in tokens' ``sub``).
USER_ID_PATTERN = r"^[^\s\x00-\x1f\x7f]{1,%d}$" % MAX_USER_ID
NO_NUL_PATTERN = r"^[^\x00]*$"
#: Rules the document does not describe (they are not API operations).
UNDOCUMENTED = ("/static/",)
REF = "#/components/schemas/{name}"

Time = Annotated[str, msgspec.Meta(description="ISO 8601 UTC, milliseconds: "
                                   "2024-05-01T10:00:00.000Z")]
Count = Annotated[int, msgspec.Meta(ge=0)]
Id = Annotated[str, msgspec.Meta(pattern=ID_PATTERN)]
ContentId = Annotated[str, msgspec.Meta(pattern=CONTENT_ID_PATTERN)]
Cursor = Annotated[str | None, msgspec.Meta(
    description="pass as ?cursor= for the next page; null on the last page")]


# -- response bodies (descriptions only) -------------------------------------------------

class Problem(msgspec.Struct):
    """An error (RFC 9457 problem details). Branch on ``code``, not on ``detail``."""

    type: str
    title: str
    status: Annotated[int, msgspec.Meta(ge=400, le=599)]
    detail: str
    code: Annotated[str, msgspec.Meta(description="stable and machine-readable, e.g. "
                                      "invalid_content_id, unauthorized, missing_role, "
                                      "rate_limited, comment_not_found")]
    retry_after: Annotated[float, msgspec.Meta(
        ge=0, description="429 only: seconds until a retry can pass (also the "
                          "Retry-After header, rounded up)")] | msgspec.UnsetType = msgspec.UNSET


class NotReady(Problem):
    """``/readyz`` when a store does not answer: which one."""

    checks: dict[str, str] | msgspec.UnsetType = msgspec.UNSET


class Counts(msgspec.Struct):
    """An item's totals; unknown ids read as zeros. Published content also
    carries its metadata (``title``, ``url``, ``author``, ``published_at``, ``tags``)."""

    id: ContentId
    views: Count
    unique_viewers: Count
    likes: Count
    applause: Count
    comments: Count
    title: str | msgspec.UnsetType = msgspec.UNSET
    url: str | msgspec.UnsetType = msgspec.UNSET
    author: str | msgspec.UnsetType = msgspec.UNSET
    published_at: Time | msgspec.UnsetType = msgspec.UNSET
    tags: list[str] | msgspec.UnsetType = msgspec.UNSET


class ViewResult(msgspec.Struct):
    views: Count


class LikeResult(msgspec.Struct):
    liked: bool
    likes: Count


class ApplauseResult(msgspec.Struct):
    applause: Count
    mine: Annotated[int, msgspec.Meta(ge=0, description="the caller's own total, at most "
                                      "applause_cap")]


class EventResult(msgspec.Struct):
    """One event's outcome: ``ok`` with the fields of its kind (``views``;
    ``liked`` and ``likes``; ``applause`` and ``mine``), or not ``ok`` with
    ``status``, ``code`` and ``detail`` as in a problem."""

    ok: bool
    views: Count | msgspec.UnsetType = msgspec.UNSET
    liked: bool | msgspec.UnsetType = msgspec.UNSET
    likes: Count | msgspec.UnsetType = msgspec.UNSET
    applause: Count | msgspec.UnsetType = msgspec.UNSET
    mine: Count | msgspec.UnsetType = msgspec.UNSET
    status: int | msgspec.UnsetType = msgspec.UNSET
    code: str | msgspec.UnsetType = msgspec.UNSET
    detail: str | msgspec.UnsetType = msgspec.UNSET


class EventResults(msgspec.Struct):
    """One result per event, in the order sent."""

    results: list[EventResult]


class Comment(msgspec.Struct):
    """A comment (the same object as in WebSocket frames). ``body`` is plain
    text: render it as text, never as HTML."""

    id: Id
    author: str
    body: str
    parent: Id | None
    created_at: Time
    edited_at: Time | None
    status: Literal["held", "visible", "hidden", "rejected"]


class Thread(Comment):
    """A top-level comment with its replies, oldest first."""

    replies: list[Comment]


class CommentPage(msgspec.Struct):
    items: list[Thread]
    next: Cursor


class ModeratedComment(Comment):
    """A comment as moderators see it: with its content id."""

    content: ContentId


class ModerationPage(msgspec.Struct):
    """Held comments, oldest first."""

    items: list[ModeratedComment]
    next: Cursor


class Ban(msgspec.Struct):
    user: str
    until: Time
    reason: str
    by: str
    created_at: Time


class RemovedComments(msgspec.Struct):
    user: str
    deleted: Count
    contents: Annotated[int, msgspec.Meta(ge=0, description="items the user had commented on")]


class Published(msgspec.Struct):
    """Accepted into the publish stream (stored shortly after)."""

    id: Annotated[str, msgspec.Meta(description="the stream entry id")]
    content: ContentId


class ContentMeta(msgspec.Struct):
    """Published content. Treat ``title`` and ``url`` as untrusted text."""

    id: ContentId
    title: str
    url: str
    author: str
    published_at: Time
    tags: list[str]


class ContentPage(msgspec.Struct):
    """Published content, newest first."""

    items: list[ContentMeta]
    next: Cursor


class Notification(msgspec.Struct):
    """See docs/notifications.md for each kind's ``data``."""

    id: Id
    kind: Literal["reply", "milestone", "applause", "new_content"]
    created_at: Time
    read: bool
    data: dict[str, Any]


class NotificationPage(msgspec.Struct):
    """The caller's notifications, newest first."""

    items: list[Notification]
    next: Cursor


class ReadResult(msgspec.Struct):
    marked: Annotated[int, msgspec.Meta(ge=0, description="notifications newly marked read")]
    unread: Count


class Follow(msgspec.Struct):
    author: str
    following: bool


class DevToken(msgspec.Struct):
    user: str
    token: str


class Health(msgspec.Struct):
    status: Literal["ok"]
    instance: str


class Ready(msgspec.Struct):
    status: Literal["ready"]
    redis: Literal["ok"]
    postgres: Literal["ok"]


class Document(msgspec.Struct):
    """This document."""

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]
    components: dict[str, Any]


REQUEST_STRUCTS = (ViewBody, EmptyBody, ApplauseBody, Event, EventsBody, CommentBody,
                   CommentEdit, PublishBody, ReadBody, BanBody)
RESPONSE_STRUCTS = (Problem, NotReady, Counts, ViewResult, LikeResult, ApplauseResult,
                    EventResult, EventResults, Comment, Thread, CommentPage, ModeratedComment,
                    ModerationPage, Ban, RemovedComments, Published, ContentMeta, ContentPage,
                    Notification, NotificationPage, ReadResult, Follow, DevToken, Health,
                    Ready, Document)


# -- the route table ------------------------------------------------------------------------

#: Who may call a route: ``public`` (no token read), ``optional`` (anonymous or
#: signed in; a bad token is 401), ``user`` (any valid token), or a role.
Access = Literal["public", "optional", "user", "publisher", "moderator"]


@dataclass(frozen=True)
class Route:
    """One operation of the API.

    Attributes:
        method, path: as in the document (``{name}`` path parameters).
        summary: one line.
        tag: the group it is listed under.
        access: see :data:`Access`.
        ok: success status -> (description, schema: a struct, ``None`` for no
            body, or ``(media type, schema dict)``).
        errors: error statuses this route can answer with (problem+json);
            400/401/403/413/415/429 are added from the other attributes.
        body: the request body's schema (a struct or a schema dict).
        body_required: whether an empty body is refused.
        query: names of query parameters (:data:`QUERY`).
        limited: counted against a rate limit (429 with ``Retry-After``).
        stores: touches Redis or Postgres (503 when one is down or busy).
        description: more words, if needed.
        dev_only: registered only with ``dev_mode = true``.
        example: a request body that works.
    """

    method: str
    path: str
    summary: str
    tag: str
    access: Access = "public"
    ok: dict[int, tuple[str, Any]] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    body: Any = None
    body_required: bool = True
    query: tuple[str, ...] = ()
    limited: bool = False
    stores: bool = True
    description: str = ""
    dev_only: bool = False
    example: Any = None

    @property
    def operation_id(self) -> str:
        words = re.sub(r"[{}]", "", self.path).strip("/").replace(".", "_")
        return self.method.lower() + "_" + re.sub(r"[^A-Za-z0-9]+", "_", words or "root")


#: Path parameters by name: (schema, description).
PATH_PARAMETERS: dict[str, tuple[dict, str]] = {
    "content_id": ({"type": "string", "pattern": CONTENT_ID_PATTERN},
                   "a content id: 1-128 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-' "
                   "(400 invalid_content_id otherwise)"),
    "comment_id": ({"type": "string", "pattern": COMMENT_ID_PATTERN},
                   "a comment id: a positive integer string (400 invalid_comment_id otherwise)"),
    "user": ({"type": "string", "minLength": 1, "maxLength": MAX_USER_ID,
              "pattern": NO_NUL_PATTERN},
             f"a user id (a token's sub): 1-{MAX_USER_ID} characters, no NUL "
             "(400 invalid_user otherwise)"),
    "author": ({"type": "string", "pattern": USER_ID_PATTERN},
               f"the author's user id: 1-{MAX_USER_ID} printable characters, no spaces "
               "(400 invalid_user otherwise; 400 follow_self for yourself)"),
    "action": ({"type": "string", "enum": ["approve", "reject", "hide", "restore"]},
               "what to do (any other word is 404); see docs/moderation.md for the "
               "allowed moves (409 invalid_transition otherwise)"),
}

LIMIT_DESCRIPTION = "page size (400 invalid_limit outside the range)"
#: Query parameters by name: (schema, description); per-route bounds in :func:`_query`.
QUERY: dict[str, tuple[dict, str]] = {
    "sort": ({"type": "string", "enum": ["newest", "oldest"], "default": "newest"},
             "thread order (400 invalid_sort otherwise)"),
    "cursor": ({"type": "string"},
               "the `next` of the previous page (400 invalid_cursor for anything else)"),
    "limit": ({"type": "integer", "minimum": 1, "default": 20}, LIMIT_DESCRIPTION),
    "unread": ({"type": "string", "enum": ["true", "false"], "default": "false"},
               "true: unread notifications only (400 invalid_unread otherwise)"),
    "author": ({"type": "string", "pattern": NO_NUL_PATTERN},
               "only this author's content (400 invalid_author for a NUL)"),
}
QUERY_LIMITS = {"/v1/content/{content_id}/comments": MAX_COMMENT_PAGE,
                "/v1/moderation/queue": MAX_COMMENT_PAGE,
                "/v1/content": MAX_CONTENT_PAGE,
                "/v1/notifications": MAX_NOTIFICATION_PAGE}

ROUTES: tuple[Route, ...] = (
    # counters
    Route("GET", "/v1/content/{content_id}", "An item's counts (and metadata, if published)",
          "counters", ok={200: ("the item's totals", Counts)}, errors=(400,)),
    Route("POST", "/v1/content/{content_id}/views", "Count a view", "counters",
          access="optional", body=ViewBody, body_required=False, limited=True,
          example={"viewer": "v-5f2a"},
          ok={202: ("counted (views by one viewer within view_dedup_window count once)",
                    ViewResult)},
          description="Anonymous callers may name themselves with `viewer` so their "
                      "views are de-duplicated; a signed-in caller is its user."),
    Route("PUT", "/v1/content/{content_id}/like", "Like (idempotent)", "counters",
          access="user", body=EmptyBody, body_required=False, limited=True,
          ok={200: ("liked", LikeResult)}, errors=(403,),
          description="403 banned when a moderator banned the caller."),
    Route("DELETE", "/v1/content/{content_id}/like", "Unlike (idempotent)", "counters",
          access="user", limited=True, ok={200: ("not liked", LikeResult)}, errors=(403,)),
    Route("POST", "/v1/content/{content_id}/applause", "Applaud", "counters",
          access="user", body=ApplauseBody, limited=True, errors=(403,), example={"count": 3},
          ok={200: ("applied; the caller's total is capped at applause_cap", ApplauseResult)}),
    Route("POST", "/v1/events", "A batch of interactions", "counters", access="optional",
          body="events", limited=True, ok={200: ("one result per event", EventResults)},
          example={"events": [{"type": "view", "content": "post-1", "viewer": "v-5f2a"},
                              {"type": "applause", "content": "post-1", "count": 2}]},
          description="Each event is checked and applied on its own: one bad event fails "
                      "only itself (its result says why). Likes and applause need a token. "
                      "A bare JSON array of events is accepted too."),
    # comments
    Route("POST", "/v1/content/{content_id}/comments", "Post a comment", "comments",
          access="user", body=CommentBody, limited=True, errors=(403, 404, 422),
          example={"body": "Nice piece.", "parent": "1"},
          ok={201: ("published", Comment),
              202: ("stored but held for a moderator (status held)", Comment)},
          description="403 banned; 404 parent_not_found (replies go to visible comments "
                      "only); 422 blocked_content (not saved). See docs/moderation.md."),
    Route("GET", "/v1/content/{content_id}/comments", "List comment threads", "comments",
          query=("sort", "cursor", "limit"), errors=(400,),
          ok={200: ("visible threads, replies oldest first under each", CommentPage)}),
    Route("PATCH", "/v1/comments/{comment_id}", "Edit one's comment", "comments",
          access="user", body=CommentEdit, errors=(403, 404, 409, 422),
          example={"body": "Nice piece, really."},
          ok={200: ("edited", Comment),
              202: ("edited, and held for a moderator (status held)", Comment)},
          description="The author only (403 not_author), within edit_window "
                      "(403 edit_window_passed); screened again like a new comment."),
    Route("DELETE", "/v1/comments/{comment_id}", "Delete a comment", "comments",
          access="user", errors=(403, 404), ok={204: ("deleted", None)},
          description="The author within edit_window, or a moderator at any time."),
    # moderation
    Route("GET", "/v1/moderation/queue", "Held comments, oldest first", "moderation",
          access="moderator", query=("cursor", "limit"),
          ok={200: ("held comments", ModerationPage)}),
    Route("POST", "/v1/moderation/comments/{comment_id}/{action}", "Moderate a comment",
          "moderation", access="moderator", body=EmptyBody, body_required=False,
          errors=(404, 409), ok={200: ("the comment in its new state", ModeratedComment)}),
    Route("PUT", "/v1/moderation/bans/{user}", "Ban a user", "moderation",
          access="moderator", body=BanBody, ok={200: ("the ban", Ban)},
          example={"seconds": 86400, "reason": "spam"},
          description="Bans stop comments, edits, likes and applause until `until`."),
    Route("GET", "/v1/moderation/bans/{user}", "A user's ban", "moderation",
          access="moderator", errors=(404,), ok={200: ("the active ban", Ban)},
          description="404 ban_not_found when the user is not banned."),
    Route("DELETE", "/v1/moderation/bans/{user}", "Lift a ban", "moderation",
          access="moderator", ok={204: ("lifted (or there was none)", None)}),
    Route("DELETE", "/v1/moderation/users/{user}/comments", "Remove all of a user's comments",
          "moderation", access="moderator",
          ok={200: ("what was removed", RemovedComments)},
          description="503 store_unavailable when some items failed: send it again."),
    # publishing
    Route("POST", "/v1/content", "Publish content (as a CMS)", "publishing",
          access="publisher", body=PublishBody,
          example={"content": "post-1", "title": "A title", "url": "https://example.com/p/1",
                   "author": "a1", "published_at": "2024-05-01T10:00:00Z",
                   "tags": "news,sport"},
          ok={202: ("accepted into the publish stream", Published)},
          description="400 invalid_publish_event for a field the publisher would refuse. "
                      "See docs/publishing.md."),
    Route("GET", "/v1/content", "Published content, newest first", "publishing",
          query=("author", "cursor", "limit"), errors=(400,),
          ok={200: ("a page of published content", ContentPage)}),
    # notifications
    Route("GET", "/v1/notifications", "The caller's notifications", "notifications",
          access="user", query=("cursor", "unread", "limit"),
          ok={200: ("newest first", NotificationPage)}),
    Route("POST", "/v1/notifications/read", "Mark notifications read", "notifications",
          access="user", body=ReadBody, ok={200: ("marked", ReadResult)},
          example={"ids": ["42", "43"]},
          description='`{"ids": [...]}` (1-%d ids) or `{"all": true}`, not both.'
                      % MAX_READ_IDS),
    Route("PUT", "/v1/follows/{author}", "Follow an author", "notifications",
          access="user", ok={200: ("following", Follow)},
          description="Their new content then notifies the caller (docs/notifications.md)."),
    Route("DELETE", "/v1/follows/{author}", "Unfollow an author", "notifications",
          access="user", ok={200: ("not following", Follow)}),
    # development
    Route("POST", "/v1/dev/token", "A token for a random user (dev_mode only)", "development",
          stores=False, dev_only=True, ok={200: ("a fresh user and token", DevToken)}),
    # operations
    Route("GET", "/healthz", "Liveness", "operations", stores=False,
          ok={200: ("the process is serving", Health)}),
    Route("GET", "/readyz", "Readiness", "operations", stores=False, errors=(503,),
          ok={200: ("Redis and Postgres answer", Ready)},
          description="503 not_ready (with `checks`) while Redis or Postgres does not answer."),
    Route("GET", "/metrics", "Prometheus metrics", "operations", stores=False,
          ok={200: ("the text exposition format", ("text/plain", {"type": "string"}))}),
    Route("GET", "/openapi.json", "This document", "operations", stores=False,
          ok={200: ("OpenAPI 3.1", Document)}),
    Route("GET", "/v1/ws", "The WebSocket (docs/protocol.md)", "operations", stores=False,
          errors=(426,), ok={101: ("switching protocols", None)},
          description="Upgrade with `Connection: Upgrade`, `Upgrade: websocket`; optional "
                      "`?token=<JWT>` and subprotocol `engage.msgpack`. The frames are in "
                      "docs/protocol.md. A plain GET is 426 upgrade_required."),
    Route("GET", "/", "The demo page", "operations", stores=False,
          ok={200: ("HTML", ("text/html", {"type": "string"}))}),
)


# -- building the document ----------------------------------------------------------------

def _refine(components: dict[str, dict], settings: Settings) -> None:
    """Add the value rules of :mod:`engage.domain` to the generated schemas."""
    def prop(struct: str, name: str, **rules: Any) -> None:
        components[struct]["properties"][name].update(rules)

    cap = settings.applause_cap
    prop("ViewBody", "viewer", maxLength=MAX_VIEWER_ID, minLength=1,
         description="an anonymous viewer's own id (printable); ignored when signed in")
    prop("ApplauseBody", "count", minimum=1, maximum=cap)
    prop("Event", "type", enum=["view", "like", "unlike", "applause"])
    prop("Event", "content", pattern=CONTENT_ID_PATTERN)
    prop("Event", "viewer", maxLength=MAX_VIEWER_ID, minLength=1)
    prop("Event", "count", minimum=1, maximum=cap, description="applause only")
    prop("EventsBody", "events", minItems=1, maxItems=settings.events_max_batch,
         items={"$ref": REF.format(name="Event")})
    body = dict(minLength=1, maxLength=settings.comment_max_chars,
                description="plain text, not blank, no control characters but newlines "
                            "and tabs")
    prop("CommentBody", "body", **body)
    prop("CommentBody", "parent", pattern=COMMENT_ID_PATTERN, minimum=1,
         description="the comment replied to (a visible top-level or reply comment)")
    prop("CommentEdit", "body", **body)
    prop("PublishBody", "content", pattern=CONTENT_ID_PATTERN)
    prop("PublishBody", "published_at", description="ISO 8601 (default: now)")
    prop("PublishBody", "tags", description="comma-separated")
    prop("ReadBody", "ids", minItems=1, maxItems=MAX_READ_IDS,
         items={"anyOf": [{"type": "string", "pattern": ID_PATTERN},
                          {"type": "integer", "minimum": 1}]})
    prop("ReadBody", "all", description="true marks every notification read")
    prop("BanBody", "seconds", minimum=1, maximum=MAX_BAN_SECONDS)
    prop("BanBody", "reason", maxLength=MAX_BAN_REASON)


def _ref(struct: type) -> dict:
    return {"$ref": REF.format(name=struct.__name__)}


def _content(media: str, schema: Any) -> dict:
    if isinstance(schema, type):
        schema = _ref(schema)
    return {media: {"schema": schema}}


ERRORS = {
    400: ("BadRequest", "invalid request: malformed JSON, a field that does not fit, an "
                        "invalid path or query value (see `code`)"),
    401: ("Unauthorized", "no valid token (`unauthorized`, `invalid_token`, `token_expired`)"),
    403: ("Forbidden", "not allowed (`missing_role`, `banned`, `not_author`, ...)"),
    404: ("NotFound", "not found (see `code`)"),
    409: ("Conflict", "not allowed in the current state (`invalid_transition`)"),
    413: ("TooLarge", "the body is larger than max_body_bytes (`too_large`)"),
    415: ("UnsupportedMediaType", "a declared body type other than application/json"),
    422: ("Unprocessable", "refused for what it says (`blocked_content`)"),
    426: ("UpgradeRequired", "not a WebSocket upgrade (`upgrade_required`)"),
    429: ("TooManyRequests", "over a rate limit (`rate_limited`); wait Retry-After seconds"),
    503: ("Unavailable", "a backing store is down or the server is busy "
                        "(`store_unavailable`, `busy`, `unavailable`); retry shortly"),
}
RETRY_AFTER = {"Retry-After": {"description": "whole seconds until a retry can pass",
                               "required": True,
                               "schema": {"type": "integer", "minimum": 1}}}


def _error_responses() -> dict[str, dict]:
    """``components.responses``: one problem+json response per error status."""
    responses = {}
    for status, (name, description) in ERRORS.items():
        response: dict[str, Any] = {"description": description,
                                    "content": _content(PROBLEM_JSON, Problem)}
        if status == 429:
            response["headers"] = RETRY_AFTER
        responses[name] = response
    responses["NotReady"] = {"description": "Redis or Postgres does not answer (`not_ready`)",
                             "content": _content(PROBLEM_JSON, NotReady)}
    return responses


def _operation(route: Route, settings: Settings) -> dict:
    names = re.findall(r"{([^}]+)}", route.path)
    parameters = []
    for name in names:
        schema, description = PATH_PARAMETERS[name]
        parameters.append({"name": name, "in": "path", "required": True,
                           "description": description, "schema": dict(schema)})
    for name in route.query:
        schema, description = QUERY[name]
        schema = dict(schema)
        if name == "limit":
            schema["maximum"] = QUERY_LIMITS[route.path]
        parameters.append({"name": name, "in": "query", "required": False,
                           "description": description, "schema": schema})

    errors = set(route.errors)
    if route.body is not None:
        errors |= {400, 413, 415}
    if route.method in ("POST", "PUT", "PATCH", "DELETE"):
        errors.add(415)  # a declared non-JSON body type, body or not
    if names and names != ["action"]:
        errors.add(400)  # a path parameter that does not fit
    if route.access != "public":
        errors.add(401)
    if route.access in ("publisher", "moderator"):
        errors.add(403)
    if route.limited:
        errors.add(429)
    if route.stores:
        errors.add(503)
    if "action" in names:
        errors.add(404)
    if route.query:
        errors.add(400)

    responses: dict[str, Any] = {}
    for status, (description, schema) in sorted(route.ok.items()):
        response: dict[str, Any] = {"description": description}
        if isinstance(schema, tuple):
            response["content"] = _content(*schema)
        elif schema is not None:
            response["content"] = _content("application/json", schema)
        responses[str(status)] = response
    for status in sorted(errors):
        name = "NotReady" if route.path == "/readyz" else ERRORS[status][0]
        responses[str(status)] = {"$ref": f"#/components/responses/{name}"}

    operation: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": [route.tag],
        "responses": responses,
    }
    description = route.description
    if route.access in ("publisher", "moderator"):
        role = f"Needs the `{route.access}` role (`admin` passes too)."
        description = f"{role} {description}".strip()
    if description:
        operation["description"] = description
    if parameters:
        operation["parameters"] = parameters
    if route.access == "public":
        operation["security"] = []
    elif route.access == "optional":
        operation["security"] = [{}, {"bearer": []}]
    elif route.access == "user":
        operation["security"] = [{"bearer": []}]
    else:
        operation["security"] = [{"bearer": [route.access]}]
        operation["x-engage-role"] = route.access
    if route.body is not None:
        if route.body == "events":
            schema = {"anyOf": [_ref(EventsBody),
                                {"type": "array", "minItems": 1,
                                 "maxItems": settings.events_max_batch,
                                 "items": _ref(Event)}]}
        else:
            schema = _ref(route.body)
        content = _content("application/json", schema)
        if route.example is not None:
            content["application/json"]["example"] = route.example
        operation["requestBody"] = {"required": route.body_required, "content": content}
    return operation


def routes_for(settings: Settings) -> list[Route]:
    """The routes a server with ``settings`` registers."""
    return [r for r in ROUTES if settings.dev_mode or not r.dev_only]


def build_document(settings: Settings) -> dict:
    """The OpenAPI 3.1 document of a server running with ``settings``."""
    _, components = msgspec.json.schema_components(REQUEST_STRUCTS + RESPONSE_STRUCTS,
                                                   ref_template=REF)
    _refine(components, settings)
    paths: dict[str, dict] = {}
    for route in routes_for(settings):
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, settings)
    tags = []
    for route in ROUTES:
        if route.tag not in [t["name"] for t in tags]:
            tags.append({"name": route.tag})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Engage",
            "version": __version__,
            "summary": "Real-time engagement: counts, applause, comments, moderation, "
                       "publishing and notifications.",
            "description": (
                "Bodies are JSON; a state-changing request declaring any other body type "
                "is 415. Every error is `application/problem+json` (`Problem`) with a "
                "stable `code`; over a rate limit it is 429 with `Retry-After`. Identity "
                "is `Authorization: Bearer <JWT>` (`sub` is the user id, `roles` the "
                "roles). The WebSocket protocol at `/v1/ws` is in docs/protocol.md; "
                "more in docs/api.md."),
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": components,
            "responses": _error_responses(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                           "description": "HS256 (jwt_secret) or RS256 / ES256 (jwt_jwks_file). "
                                          "The `roles` claim may hold publisher, moderator, "
                                          "admin; admin passes every role check."},
            },
        },
    }


def encode_document(document: dict) -> bytes:
    """The document as JSON bytes, ready to serve."""
    return msgspec.json.encode(document)


# -- keeping up with the app --------------------------------------------------------------

def rule_path(rule: str) -> str:
    """A werkzeug rule as an OpenAPI path: ``/v1/comments/<comment_id>`` ->
    ``/v1/comments/{comment_id}``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def undocumented(rules: Iterable[Any], document: dict) -> list[str]:
    """``METHOD path`` of each rule in ``rules`` (werkzeug ``Rule`` objects) that
    ``document`` lacks, static files aside. HEAD and OPTIONS are implied."""
    missing = []
    for rule in rules:
        if rule.rule.startswith(UNDOCUMENTED):
            continue
        path = rule_path(rule.rule)
        for method in sorted(rule.methods or ()):
            if method in ("HEAD", "OPTIONS"):
                continue
            if method.lower() not in document["paths"].get(path, {}):
                missing.append(f"{method} {path}")
    return missing
