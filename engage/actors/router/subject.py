"""What the router holds for one subject: its local subscribers, its counts,
and where its history stands, with the last events, so that joins and
catch-ups of a live subject need no Redis round trip (docs/decisions.md §16).

Plain state, no I/O: the router actor calls it between awaits.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any, Final

from engage.wire import SharedFrame

#: Events kept per subject for catch-up from memory. A client that missed
#: more (or events from before this process subscribed) reads the history.
RECENT_EVENTS: Final = 64


class Subject:
    """Per-subject routing state.

    Attributes:
        sinks: subscriber -> its catch-up buffer, or None once live.
        counts: the latest published counts (or a joiner's seed).
        rev: the revision of ``counts``.
        watching: connections watching it, all instances.
        dirty: a counts frame is owed.
        counts_due: ``trio.current_time()`` before which no counts frame goes.
        position: ``(offset, epoch)`` such that every later event reaches us
            through pub/sub; None until an event or a joiner tells us.
        recent: the last events up to ``position``, offsets consecutive.
    """

    __slots__ = ("sinks", "counts", "rev", "watching", "dirty", "counts_due", "position",
                 "recent")

    def __init__(self) -> None:
        self.sinks: dict[Any, list | None] = {}
        self.counts: dict[str, int] | None = None
        self.rev = 0
        self.watching = 0
        self.dirty = False
        self.counts_due = 0.0
        self.position: tuple[int, str] | None = None
        self.recent: deque[tuple[int, SharedFrame]] = deque(maxlen=RECENT_EVENTS)

    def remember(self, offset: int, epoch: str, frame: SharedFrame) -> None:
        """An event arrived through pub/sub (they arrive in offset order)."""
        position = self.position
        if position is not None and (epoch != position[1] or offset != position[0] + 1):
            # A new history (its epoch changed) or a gap: what we hold no
            # longer leads up to this event.
            self.recent.clear()
        self.position = (offset, epoch)
        self.recent.append((offset, frame))

    def learn(self, offset: int, epoch: str) -> None:
        """A joiner read the history's position after our channel was
        confirmed: every event after it reaches us. Events we routed since
        are newer, so only an unknown position is set."""
        if self.position is None and epoch:
            self.position = (offset, epoch)

    def missed_since(self, since: tuple[int, str]) -> list[tuple[int, SharedFrame]] | None:
        """The events after ``since`` up to :attr:`position`, if all are held;
        None when the history must answer (unknown position, another epoch,
        a client ahead of us, or events older than we hold)."""
        position = self.position
        if position is None:
            return None
        offset, epoch = since
        if epoch != position[1] or offset > position[0]:
            return None
        if offset == position[0]:
            return []
        recent = self.recent
        if not recent or recent[0][0] > offset + 1:
            return None
        return [(o, frame) for o, frame in recent if o > offset]


#: Seconds a subject whose last local subscriber left stays subscribed, with
#: its position and last events: a page reload, or a reconnect storm landing
#: here, re-joins it from memory.
LINGER_SECONDS: Final = 5.0
#: Most subjects lingering at once; beyond, the oldest goes at once.
MAX_LINGERING: Final = 10_000


class Lingering:
    """Subjects with no local subscriber, oldest first, until they expire."""

    def __init__(self, seconds: float = LINGER_SECONDS, limit: int = MAX_LINGERING) -> None:
        self.seconds = seconds
        self.limit = limit
        self._since: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._since)

    def add(self, subject: str, now: float) -> list[str]:
        """``subject`` lost its last subscriber at ``now``; returns the subjects
        that must go at once to stay within the limit."""
        self._since[subject] = now
        self._since.move_to_end(subject)
        evicted = []
        while len(self._since) > self.limit:
            evicted.append(self._since.popitem(last=False)[0])
        return evicted

    def discard(self, subject: str) -> None:
        """``subject`` has a subscriber again."""
        self._since.pop(subject, None)

    def expired(self, now: float) -> list[str]:
        """The subjects that have lingered ``seconds``, removed from here."""
        out = []
        while self._since:
            subject, since = next(iter(self._since.items()))
            if now - since < self.seconds:
                break
            del self._since[subject]
            out.append(subject)
        return out

    def clear(self) -> None:
        self._since.clear()
