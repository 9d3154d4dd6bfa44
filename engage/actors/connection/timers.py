"""Deadlines of many connections in one heap: the heartbeat's timer wheel.

The directory's heartbeat used to visit every connection every second (the
token check) and all of them at once every ``ping_interval`` (the ping): at
20,000 idle sockets, a scan a second and a burst of 20,000 pings and pongs
every 25 s. With a heap, each tick pops only the connections that are due
(docs/decisions.md §16), and connections that joined together are pinged
spread over the interval.

Plain code, no I/O and no clock of its own: the caller passes ``now``.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Generic, Hashable, Iterator, TypeVar

K = TypeVar("K", bound=Hashable)


class Timers(Generic[K]):
    """Keys due at given times; each :meth:`add` is one wake-up."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, K]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, due: float, key: K) -> None:
        """Have ``key`` come out of :meth:`pop_due` once ``due`` has passed."""
        heapq.heappush(self._heap, (due, next(self._seq), key))

    def pop_due(self, now: float) -> Iterator[K]:
        """The keys due at ``now``, earliest first, each removed as it is given
        (a key re-added while iterating comes out again only if due)."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            yield heapq.heappop(heap)[2]

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None
