"""Ask timeouts kept by one timer task per run, not by a cancel scope per ask.

A hot ``POST views`` asks its content actor once; with ``move_on_after``
around the wait, entering and leaving that cancel scope (a ``CancelStatus``,
the task's cancel bookkeeping, the run's deadline heap, twice) cost about a
sixth of the request's CPU in a py-spy profile (docs/decisions.md §14).
Instead a waiting :class:`~engage.actors.ref.Reply` parks its task with
:func:`trio.lowlevel.wait_task_rescheduled` and registers its deadline here:
one heap push. A single system task sleeps until the earliest deadline and
wakes the askers whose answer has not come, with
:class:`~engage.errors.AskTimeout`. Cancelling the asker still works as
everywhere in trio: the park is abortable.

Replies answered in time stay in the heap until their deadline passes (a
few seconds of asks: small tuples), which is cheaper than removing them.
"""

from __future__ import annotations

import heapq
import itertools
import math
from typing import TYPE_CHECKING, Final

import trio

if TYPE_CHECKING:
    from engage.actors.ref import Reply

_WATCHDOG: Final = trio.lowlevel.RunVar["Watchdog"]("engage_ask_watchdog")


class Watchdog:
    """The deadlines of the asks of one trio run, and the task that keeps them."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Reply]] = []
        self._seq = itertools.count()
        #: When the timer task wakes next (inf: it waits for a deadline).
        self._wakes_at = math.inf
        self._changed = trio.Event()

    @staticmethod
    def current() -> Watchdog:
        """This run's watchdog, its timer task started on first use."""
        try:
            return _WATCHDOG.get()
        except LookupError:
            watchdog = Watchdog()
            _WATCHDOG.set(watchdog)
            trio.lowlevel.spawn_system_task(watchdog._run, name="engage ask watchdog")
            return watchdog

    def add(self, deadline: float, reply: Reply) -> None:
        """Wake ``reply``'s waiting task at ``deadline`` unless answered before."""
        heapq.heappush(self._heap, (deadline, next(self._seq), reply))
        if deadline < self._wakes_at:
            self._changed.set()

    def statistics(self) -> dict[str, int]:
        """Deadlines held (answered asks included until their deadline passes)."""
        return {"deadlines": len(self._heap)}

    async def _run(self) -> None:
        heap = self._heap
        while True:
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                deadline, _, reply = heapq.heappop(heap)
                reply._expire(deadline)
            self._wakes_at = heap[0][0] if heap else math.inf
            self._changed = trio.Event()
            with trio.move_on_at(self._wakes_at):
                await self._changed.wait()
