"""Comment rules, with no I/O: body checks, edit window, cursors, the public shape."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from engage.domain.text import check_text
from engage.errors import Forbidden, ValidationError

MAX_PAGE = 100
DEFAULT_PAGE = 20
SORTS = ("newest", "oldest")


def validate_body(body: object, max_chars: int) -> str:
    """Return a comment body that is text, non-blank and within ``max_chars``.

    Raises:
        ValidationError: wrong type, blank, too long or with control characters.
    """
    if isinstance(body, str):
        body = body.replace("\r\n", "\n")
    return check_text(body, "body", max_chars=max_chars)


def parse_comment_id(value: object) -> int:
    """Comment ids are positive integers, carried as strings in the API."""
    text = str(value)
    # ASCII only: str.isdigit() also accepts "²" and "①", which int() refuses.
    if not text.isascii() or not text.isdigit() or len(text) > 18 or int(text) <= 0:
        raise ValidationError("comment id must be a positive integer string",
                              code="invalid_comment_id")
    return int(text)


@dataclass(frozen=True, slots=True)
class Comment:
    """A stored comment."""

    id: int
    content_id: str
    author: str
    body: str
    parent: int | None
    root: int | None
    created_at: datetime
    edited_at: datetime | None = None
    deleted: bool = False
    #: ``held``, ``visible``, ``hidden`` or ``rejected`` (engage/domain/moderation.py);
    #: a deleted comment keeps the status it had.
    status: str = "visible"

    @property
    def visible(self) -> bool:
        """Shown, counted, published live: visible and not deleted."""
        return self.status == "visible" and not self.deleted

    @property
    def state(self) -> str:
        """The moderation state: the status, or ``deleted``."""
        return "deleted" if self.deleted else self.status

    def public(self) -> dict:
        """The comment object of the API and of WebSocket frames."""
        return {
            "id": str(self.id),
            "author": self.author,
            "body": self.body,
            "parent": None if self.parent is None else str(self.parent),
            "created_at": _iso(self.created_at),
            "edited_at": None if self.edited_at is None else _iso(self.edited_at),
            "status": self.status,
        }


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_can_change(comment: Comment, user: str, now: datetime, window: float) -> None:
    """Authors may edit or delete their own comment within ``window`` seconds.

    Raises:
        Forbidden: not the author, or the window has passed.
    """
    if comment.author != user:
        raise Forbidden("only the author can change this comment", code="not_author")
    if now - comment.created_at > timedelta(seconds=window):
        raise Forbidden(f"comments can only be changed within {int(window)} s of posting",
                        code="edit_window_closed")


def check_can_delete(comment: Comment, user: str, now: datetime, window: float, *,
                     moderator: bool = False) -> None:
    """Moderators may delete any comment at any time; authors as for an edit.

    Raises:
        Forbidden: neither a moderator nor the author within ``window``.
    """
    if not moderator:
        check_can_change(comment, user, now, window)


def validate_page(sort: object, limit: object) -> tuple[str, int]:
    sort = sort or "newest"
    if sort not in SORTS:
        raise ValidationError("sort must be 'newest' or 'oldest'", code="invalid_sort")
    try:
        size = DEFAULT_PAGE if limit in (None, "") else int(limit)  # type: ignore[arg-type]
    except ValueError:
        size = 0
    if not 1 <= size <= MAX_PAGE:
        raise ValidationError(f"limit must be an integer from 1 to {MAX_PAGE}",
                              code="invalid_limit")
    return sort, size  # type: ignore[return-value]


def encode_cursor(created_at: datetime, comment_id: int) -> str:
    raw = f"{int(created_at.timestamp() * 1_000_000)}:{comment_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """Raises ValidationError for anything we did not issue."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        micros, comment_id = raw.split(":")
        moment = datetime.fromtimestamp(int(micros) / 1_000_000, tz=timezone.utc)
        # Bounded like any comment id: a larger one would reach Postgres (bigint) and fail there.
        return moment, parse_comment_id(comment_id)
    except (ValueError, binascii.Error, UnicodeDecodeError, OverflowError, OSError,
            ValidationError):
        raise ValidationError("cursor is not one this server issued",
                              code="invalid_cursor") from None
