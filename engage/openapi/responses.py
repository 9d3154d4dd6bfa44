"""Response bodies of the HTTP API as msgspec structs (they only describe:
nothing decodes with them), and the patterns and types they share."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from engage.domain.moderation import MAX_USER_ID
from engage.schemas import (ApplauseBody, BanBody, CommentBody, CommentEdit, EmptyBody, Event,
                            EventsBody, PublishBody, ReadBody, ViewBody)


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
