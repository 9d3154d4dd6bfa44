"""Messages of the mirror actor (the Redis group-commit writer)."""

from __future__ import annotations

from dataclasses import dataclass

from engage.domain import Op, Snapshot


@dataclass(frozen=True, slots=True)
class Apply:
    """Apply one item's ops in Redis; reply ``ApplyOutcome``.

    Sent (asked) by the content actor that owns ``content_id``.
    """

    content_id: str
    ops: tuple[Op, ...]


@dataclass(frozen=True, slots=True)
class ReadCounts:
    """Read one item's counts from Redis; reply ``Counts`` or ``None`` if absent.

    Sent (asked) by the content actor that owns ``content_id``.
    """

    content_id: str


@dataclass(frozen=True, slots=True)
class PublishCounts:
    """Publish the item's current counts to its subscribers; no reply.

    Told by a content actor, at most once per ``counts_interval``.
    """

    content_id: str


@dataclass(frozen=True, slots=True)
class Hydrate:
    """Install an item's persisted state in Redis unless it is already there;
    reply ``True`` if installed.

    Sent (asked) by a content actor that found its item missing from Redis.
    """

    content_id: str
    snapshot: Snapshot
