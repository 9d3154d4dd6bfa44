"""Messages of content actors (one actor per content id)."""

from __future__ import annotations

from dataclasses import dataclass

from engage.domain import Op


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
    """Store, then publish, a new comment; reply the stored ``Comment``.

    Sent (asked) by the gateway (HTTP and WebSocket). ``body`` is already
    validated.
    """

    author: str
    body: str
    parent: int | None = None


@dataclass(frozen=True, slots=True)
class EditComment:
    """Change a comment's body if ``user`` may; reply the updated ``Comment``.

    Sent (asked) by the gateway.
    """

    comment_id: int
    user: str
    body: str


@dataclass(frozen=True, slots=True)
class DeleteComment:
    """Delete a comment if ``user`` may; reply the deleted ``Comment``.

    Sent (asked) by the gateway.
    """

    comment_id: int
    user: str
