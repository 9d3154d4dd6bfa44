"""Messages of content actors (one actor per content id)."""

from __future__ import annotations

from dataclasses import dataclass

from engage.domain import Op
from engage.domain.ratelimit import Limit


@dataclass(frozen=True, slots=True)
class Interact:
    """Apply these ops to the item; reply a tuple of ``OpResult``, one per op.

    Sent (asked) by the HTTP gateway, for single requests and ``/v1/events``.
    """

    ops: tuple[Op, ...]


@dataclass(frozen=True, slots=True)
class GetCounts:
    """Reply the item's current ``Counts``.

    Sent (asked) by the HTTP gateway.
    """


@dataclass(frozen=True, slots=True)
class PostComment:
    """Screen, store, then (if visible) publish a new comment; reply the stored
    ``Comment``, whose ``status`` is ``visible`` or ``held``.

    Refused over a comment rate limit (``limits``, checked for a whole run of
    comments in one Redis call: 429 ``rate_limited``), while the author is
    banned (403 ``banned``) and for a block word (422 ``blocked_content``).
    Sent (asked) by the gateway (HTTP and WebSocket). ``body`` is already
    validated.
    """

    author: str
    body: str
    parent: int | None = None
    limits: tuple[Limit, ...] = ()


@dataclass(frozen=True, slots=True)
class EditComment:
    """Change a comment's body if ``user`` (its author, not banned) may,
    screening the new body like a new comment; reply the updated ``Comment``.
    A visible comment the screening holds disappears from live views.

    Sent (asked) by the gateway.
    """

    comment_id: int
    user: str
    body: str


@dataclass(frozen=True, slots=True)
class DeleteComment:
    """Delete a comment if ``user`` may (its author within the edit window, or
    any time if ``moderator``); reply the deleted ``Comment``.

    Sent (asked) by the gateway; ``moderator`` is set when the caller has the
    moderator (or admin) role.
    """

    comment_id: int
    user: str
    moderator: bool = False


# -- moderation: each asked by the moderation routes (engage/routes/moderation.py),
# -- ``moderator`` being who acts. Each replies the changed ``Comment`` or fails
# -- with 404 ``comment_not_found`` / 409 ``invalid_transition``.


@dataclass(frozen=True, slots=True)
class ApproveComment:
    """Make a held comment visible: publish it live, count it, announce it
    (``comment.created``) and trust its author.

    Sent (asked) by the moderation routes.
    """

    comment_id: int
    moderator: str


@dataclass(frozen=True, slots=True)
class RejectComment:
    """Reject a held comment: it is never shown.

    Sent (asked) by the moderation routes.
    """

    comment_id: int
    moderator: str


@dataclass(frozen=True, slots=True)
class HideComment:
    """Hide a visible comment: it disappears from live views and lists and is
    no longer counted.

    Sent (asked) by the moderation routes.
    """

    comment_id: int
    moderator: str


@dataclass(frozen=True, slots=True)
class RestoreComment:
    """Make a hidden comment visible again: published live and counted.

    Sent (asked) by the moderation routes.
    """

    comment_id: int
    moderator: str


@dataclass(frozen=True, slots=True)
class DeleteUserComments:
    """Delete every comment of ``user`` on this item (the visible ones
    disappear from live views); reply how many were deleted.

    Sent (asked) by the moderation routes, once per item the user commented on.
    """

    user: str
    moderator: str


#: Messages that change a comment's moderation state, and the action each is.
MODERATION_ACTIONS = {ApproveComment: "approve", RejectComment: "reject",
                      HideComment: "hide", RestoreComment: "restore"}
