"""Messages of the router actor (one per process: Redis pub/sub fan-out)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True, eq=False)
class Subscribe:
    """Start routing ``subject``'s events to ``sink``; reply (:class:`Subscribed`)
    once Redis has confirmed the channel. Events are buffered for ``sink``
    until ``Ready``. ``since`` is the ``(offset, epoch)`` the client asks to
    catch up from, if any.

    Asked by a connection actor.
    """

    subject: str
    sink: Any
    since: tuple[int, str] | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Subscribed:
    """The router's answer to :class:`Subscribe`, from what it holds in memory.

    Attributes:
        watching: connections watching the subject, all instances.
        position: ``(offset, epoch)`` of the subject's history such that
            every later event reaches ``sink`` (delivered or buffered); None
            when the router does not know it yet (the caller reads it from
            the history and says it with ``Ready``).
        counts: the subject's latest published counts, if the router has them.
        missed: for ``since``: the events after it, up to ``position``, when
            the router still holds them all (``[]``: nothing was missed);
            None when the caller must read them from the history.
    """

    watching: int
    position: tuple[int, str] | None = None
    counts: dict | None = None
    missed: list | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Ready:
    """``sink`` has sent everything up to ``offset`` (of history ``epoch``);
    deliver buffered events after it and go live. Told by a connection actor
    after catch-up."""

    subject: str
    sink: Any
    offset: int
    epoch: str = ""


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
