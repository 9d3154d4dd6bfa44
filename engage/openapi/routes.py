"""The route table: one :class:`Route` per method and path, saying who may
call it, what it takes and what it answers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from engage.domain.comments import MAX_PAGE as MAX_COMMENT_PAGE
from engage.domain.content import MAX_CONTENT_PAGE
from engage.domain.moderation import MAX_USER_ID
from engage.domain.notifications import MAX_NOTIFICATION_PAGE, MAX_READ_IDS
from engage.openapi.responses import (
    COMMENT_ID_PATTERN, CONTENT_ID_PATTERN, NO_NUL_PATTERN, USER_ID_PATTERN, ApplauseResult, Ban,
    Comment, CommentPage, ContentPage, Counts, DevToken, Document, EventResults, Follow, Health,
    LikeResult, ModeratedComment, ModerationPage, NotificationPage, Published, ReadResult, Ready,
    RemovedComments, ViewResult)
from engage.schemas import (ApplauseBody, BanBody, CommentBody, CommentEdit, EmptyBody,
                            PublishBody, ReadBody, ViewBody)


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
