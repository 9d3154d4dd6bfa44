"""Messages of the router actor (one per process: Redis pub/sub fan-out)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True, eq=False)
class Subscribe:
    """Start routing ``subject``'s events to ``sink``; reply once Redis has
    confirmed the channel. Events are buffered for ``sink`` until ``Ready``.

    Asked by a connection actor.
    """

    subject: str
    sink: Any


@dataclass(frozen=True, slots=True, eq=False)
class Ready:
    """``sink`` has sent everything up to ``offset``; deliver buffered events
    after it and go live. Told by a connection actor after catch-up."""

    subject: str
    sink: Any
    offset: int


@dataclass(frozen=True, slots=True, eq=False)
class Unsubscribe:
    """Stop routing ``subject`` to ``sink``. Told by a connection actor."""

    subject: str
    sink: Any


@dataclass(frozen=True, slots=True, eq=False)
class Drop:
    """``sink`` is gone: forget all its subscriptions. Told by a connection actor."""

    sink: Any


@dataclass(frozen=True, slots=True)
class Watching:
    """``subject`` is watched by ``count`` connections across all instances.

    Told by the presence actor.
    """

    subject: str
    count: int


@dataclass(frozen=True, slots=True)
class Seed:
    """Counts read directly from the content actor, used until the first
    published snapshot arrives. Told by a connection actor on subscribe."""

    subject: str
    counts: dict
