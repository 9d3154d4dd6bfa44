"""Request bodies of the HTTP API, one struct each (also the OpenAPI schemas).

Decoded by :func:`engage.web.body`; the struct checks shape and types and
refuses unknown fields, :mod:`engage.domain` checks the values.
"""

from __future__ import annotations

from typing import Any

from engage.schemas.base import Body


class ViewBody(Body):
    """``POST /v1/content/{id}/views`` (the body is optional)."""

    viewer: str | None = None


class EmptyBody(Body):
    """``PUT`` / ``DELETE /v1/content/{id}/like``: nothing, or ``{}``."""


class ApplauseBody(Body):
    """``POST /v1/content/{id}/applause``."""

    count: int


class Event(Body):
    """One interaction in a ``POST /v1/events`` batch (checked item by item)."""

    type: str
    content: str
    viewer: str | None = None
    count: int | None = None


class EventsBody(Body):
    """``POST /v1/events``: ``{"events": [...]}`` (a bare JSON array is also accepted).

    Items are checked one by one, so one bad event fails only itself.
    """

    events: list[Any]


class CommentBody(Body):
    """``POST /v1/content/{id}/comments``."""

    body: str
    parent: str | int | None = None


class CommentEdit(Body):
    """``PATCH /v1/comments/{cid}``."""

    body: str


class PublishBody(Body):
    """``POST /v1/content``: a publish event, as a CMS would append it."""

    content: str
    title: str
    url: str
    author: str
    published_at: str | None = None
    #: Comma-separated, as in the stream.
    tags: str | None = None


class ReadBody(Body):
    """``POST /v1/notifications/read``: ``{"ids": [...]}`` or ``{"all": true}``."""

    ids: list[Any] | None = None
    all: bool | None = None


class BanBody(Body):
    """``PUT /v1/moderation/bans/{user}``."""

    seconds: int
    reason: str = ""
