"""Notification rules as plain code, with no I/O: who is told what, applause
coalescing, the per-user rate cap, ids, cursors and the public shape.

The notifier actor (engage/actors/notifier) feeds events from the event log
through these functions and classes and does the reading and writing around
them. Times passed in are seconds on one monotonic clock chosen by the caller.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone

from engage.errors import ValidationError

KINDS = ("reply", "milestone", "applause", "new_content")
#: Seconds of the rate cap's sliding window.
RATE_WINDOW = 60.0
#: Names an applause notification lists ("ann, bob, cy and 34 others").
APPLAUSE_NAMES_SHOWN = 3
#: A coalesced applause group is closed early once it holds this many events,
#: so the events it holds unacknowledged (and its memory) stay bounded.
MAX_GROUP_EVENTS = 10_000
#: Longest comment excerpt a reply notification carries.
REPLY_EXCERPT_CHARS = 280
#: Longest user id (same bound as a content author).
MAX_USER_ID = 128
#: Page sizes of ``GET /v1/notifications``.
DEFAULT_NOTIFICATION_PAGE = 20
MAX_NOTIFICATION_PAGE = 100
#: Most ids one ``POST /v1/notifications/read`` may name.
MAX_READ_IDS = 500
_MAX_ID_DIGITS = 18
_USER_RE = re.compile(r"[^\s\x00-\x1f\x7f]{1,%d}" % MAX_USER_ID)


def validate_user_id(value: object) -> str:
    """A user id as it appears in tokens and URLs: printable, no spaces.

    Raises:
        ValidationError: anything else.
    """
    if not isinstance(value, str) or not _USER_RE.fullmatch(value):
        raise ValidationError(f"user id must be 1-{MAX_USER_ID} printable characters "
                              "without spaces", code="invalid_user")
    return value


def user_subject(user: str) -> str:
    """The real-time subject carrying ``user``'s notifications."""
    return f"user:{user}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Draft:
    """A notification the notifier wants to create.

    Attributes:
        user: who receives it.
        kind: one of :data:`KINDS`.
        data: the kind's payload (JSON-able).
        source_event: the event-log id it comes from (for a coalesced
            applause, the group's first event); with ``user`` it makes the
            notification unique, so a replayed event creates nothing new.
    """

    user: str
    kind: str
    data: dict
    source_event: str


@dataclass(frozen=True, slots=True)
class Notification:
    """A stored notification."""

    id: int
    user: str
    kind: str
    data: dict
    created_at: datetime
    read: bool = False

    def public(self) -> dict:
        """The notification object of the HTTP API and of WebSocket frames."""
        return {"id": str(self.id), "kind": self.kind, "created_at": _iso(self.created_at),
                "read": self.read, "data": self.data}


# -- who is told what -------------------------------------------------------------


def reply_draft(event_id: str, data: dict) -> Draft | None:
    """The ``reply`` notification for a ``comment.created`` event, if any.

    None for a top-level comment, a reply whose parent's author is unknown, and
    a reply to one's own comment.

    Raises:
        KeyError, TypeError: the event is malformed.
    """
    comment = data["comment"]
    recipient = data.get("parent_author")
    if not comment.get("parent") or not recipient or recipient == comment["author"]:
        return None
    body = comment.get("body") or ""
    excerpt = body if len(body) <= REPLY_EXCERPT_CHARS else body[:REPLY_EXCERPT_CHARS - 1] + "…"
    return Draft(recipient, "reply", {
        "content": data["content"],
        "comment": {"id": str(comment["id"]), "author": comment["author"], "body": excerpt,
                    "parent": str(comment["parent"]), "created_at": comment.get("created_at")},
    }, event_id)


def reply_comment_id(draft: Draft) -> int:
    """The id of the comment a ``reply`` draft announces."""
    return int(draft.data["comment"]["id"])


def milestone_draft(event_id: str, data: dict, author: str | None,
                    title: str | None = None) -> Draft | None:
    """The ``milestone`` notification for the content's author (none without one).

    Raises:
        KeyError, TypeError, ValueError: the event is malformed.
    """
    if not author:
        return None
    metric = data["metric"]
    if metric not in ("likes", "applause"):
        raise ValueError(f"unknown milestone metric {metric!r}")
    return Draft(author, "milestone", {"content": data["content"], "title": title,
                                       "metric": metric, "value": int(data["value"])}, event_id)


def new_content_drafts(event_id: str, data: dict, followers: list[str]) -> list[Draft]:
    """One ``new_content`` notification per follower of the author (never the author).

    Raises:
        KeyError: the event is malformed.
    """
    author = data["author"]
    payload = {"content": data["id"], "title": data.get("title"), "url": data.get("url"),
               "author": author, "published_at": data.get("published_at")}
    return [Draft(f, "new_content", payload, event_id) for f in followers if f != author]


# -- applause coalescing ---------------------------------------------------------------


@dataclass(slots=True)
class ApplauseGroup:
    """Applause on one content item for its author, gathered over one window."""

    recipient: str
    content: str
    title: str | None
    opened_at: float
    event_ids: list[str] = field(default_factory=list)
    claps: dict[str, int] = field(default_factory=dict)  # user -> claps, first come first

    @property
    def events(self) -> int:
        return len(self.event_ids)

    def draft(self) -> Draft:
        """The one notification this group becomes."""
        names = list(self.claps)
        return Draft(self.recipient, "applause", {
            "content": self.content, "title": self.title, "people": len(names),
            "users": names[:APPLAUSE_NAMES_SHOWN], "claps": sum(self.claps.values()),
            "events": self.events,
        }, self.event_ids[0])


class ApplauseCoalescer:
    """Gathers applause per (author, content) into one group per window.

    The first applause on an item opens a group; every applause on it until
    ``window`` seconds later joins that group; then the group is due and
    becomes one notification. A group also falls due once it holds
    :data:`MAX_GROUP_EVENTS` events.

    So applause on one item, arriving over ``T`` seconds, becomes at most
    ``floor(T / window) + 1 + floor(events / MAX_GROUP_EVENTS)`` notifications.

    Args:
        window: seconds a group stays open.
    """

    def __init__(self, window: float) -> None:
        if window < 0:
            raise ValueError("window must be >= 0")
        self.window = window
        self._groups: dict[tuple[str, str], ApplauseGroup] = {}

    def __len__(self) -> int:
        return len(self._groups)

    @property
    def held_events(self) -> int:
        """Events held in open groups (read, not yet acknowledged)."""
        return sum(g.events for g in self._groups.values())

    def add(self, *, recipient: str, content: str, user: str, claps: int, event_id: str,
            now: float, title: str | None = None) -> None:
        """Count ``user``'s ``claps`` on ``content`` towards ``recipient``'s group."""
        key = (recipient, content)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = ApplauseGroup(recipient, content, title, now)
        group.event_ids.append(event_id)
        group.claps[user] = group.claps.get(user, 0) + claps

    def next_due(self) -> float | None:
        """When the earliest open group falls due; None if there is none."""
        if not self._groups:
            return None
        return min(self._due_at(g) for g in self._groups.values())

    def due(self, now: float) -> list[ApplauseGroup]:
        """Remove and return the groups whose window has closed by ``now``."""
        ready = [k for k, g in self._groups.items() if self._due_at(g) <= now]
        return [self._groups.pop(k) for k in ready]

    def clear(self) -> None:
        """Forget every open group (their events will be read again)."""
        self._groups.clear()

    def _due_at(self, group: ApplauseGroup) -> float:
        if group.events >= MAX_GROUP_EVENTS:
            return group.opened_at
        return group.opened_at + self.window


# -- the per-user rate cap -------------------------------------------------------------


class RateCap:
    """At most ``per_minute`` notifications per user in any 60-second window.

    A sliding window of the times each user was last notified; what is over
    the cap is refused (the caller drops it and counts it).

    Args:
        per_minute: the cap; 0 means no cap.
    """

    def __init__(self, per_minute: int) -> None:
        if per_minute < 0:
            raise ValueError("per_minute must be >= 0")
        self.per_minute = per_minute
        self._sent: dict[str, deque[float]] = {}

    def __len__(self) -> int:
        return len(self._sent)

    def allow(self, user: str, now: float) -> bool:
        """True (and counted) if ``user`` may get one more notification at ``now``."""
        if self.per_minute == 0:
            return True
        sent = self._sent.setdefault(user, deque())
        while sent and sent[0] <= now - RATE_WINDOW:
            sent.popleft()
        if len(sent) >= self.per_minute:
            return False
        sent.append(now)
        return True

    def give_back(self, user: str) -> None:
        """Undo the latest :meth:`allow` of ``user`` (nothing was sent after all)."""
        sent = self._sent.get(user)
        if sent:
            sent.pop()

    def sweep(self, now: float) -> None:
        """Forget users with nothing in the window (bounds memory)."""
        for user in [u for u, s in self._sent.items() if not s or s[-1] <= now - RATE_WINDOW]:
            del self._sent[user]


# -- the HTTP API's parameters ---------------------------------------------------------


def validate_notification_page(limit: object) -> int:
    """The page size (default 20, at most 100)."""
    try:
        size = DEFAULT_NOTIFICATION_PAGE if limit in (None, "") else int(limit)  # type: ignore[arg-type]
    except ValueError:
        size = 0
    if not 1 <= size <= MAX_NOTIFICATION_PAGE:
        raise ValidationError(f"limit must be an integer from 1 to {MAX_NOTIFICATION_PAGE}",
                              code="invalid_limit")
    return size


def parse_notification_id(value: object) -> int:
    """Notification ids are positive integers, carried as strings."""
    text = str(value)
    # ASCII only: str.isdigit() also accepts "²" and "①", which int() refuses.
    if not isinstance(value, (str, int)) or isinstance(value, bool) or not text.isascii() \
            or not text.isdigit() or len(text) > _MAX_ID_DIGITS or int(text) <= 0:
        raise ValidationError("notification id must be a positive integer string",
                              code="invalid_notification_id")
    return int(text)


def decode_notification_cursor(cursor: str) -> int:
    """The id a page continues below (the cursor is the last id of the page before)."""
    try:
        return parse_notification_id(cursor)
    except ValidationError:
        raise ValidationError("cursor is not one this server issued",
                              code="invalid_cursor") from None


def parse_unread(value: str | None) -> bool:
    """``unread=true`` lists only unread notifications; absent or ``false`` lists all."""
    if value in (None, "", "false"):
        return False
    if value == "true":
        return True
    raise ValidationError("unread must be true or false", code="invalid_unread")


def parse_read_body(body: dict) -> list[int] | None:
    """The ids of ``{"ids": [...]}``, or None for ``{"all": true}``.

    Raises:
        ValidationError: neither, both, or a bad id.
    """
    if set(body) == {"all"} and body["all"] is True:
        return None
    if set(body) == {"ids"} and isinstance(body["ids"], list) \
            and 1 <= len(body["ids"]) <= MAX_READ_IDS:
        return sorted({parse_notification_id(i) for i in body["ids"]})
    raise ValidationError(f'send {{"ids": [1-{MAX_READ_IDS} notification ids]}} or '
                          '{"all": true}', code="invalid_body")
