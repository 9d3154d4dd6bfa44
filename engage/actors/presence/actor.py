"""The presence actor: "N watching now", across every instance.

Each instance records how many of its connections watch each subject, with an
expiry, in one Redis hash per subject (``presence.lua``). Changes are written
after a short debounce (a burst of joins is one write) and every subject is
refreshed every ``refresh`` seconds, which also drops instances that died
without saying goodbye once their entry expires (``ttl``). When a total
changes the script publishes it, so every instance's router updates at once.
Joins therefore show within about ``DEBOUNCE`` seconds, and a dead instance's
watchers leave within ``ttl + refresh`` seconds.
"""

from __future__ import annotations

import logging

import trio

from engage.actors.presence.messages import LocalCount
from engage.actors.ref import ActorRef, Mailbox
from engage.actors.router.messages import Watching
from engage.errors import ActorError, StoreError
from engage.store.presence import RedisPresence
from engage.supervisor import shutdown_scope

log = logging.getLogger(__name__)

PRESENCE_MAILBOX_SIZE = 16384
#: Seconds changes are gathered before one write.
DEBOUNCE = 0.2


class PresenceActor:
    """Keeps this instance's watcher counts in Redis and reports totals.

    Args:
        store: the Redis side.
        router: told each subject's total (``Watching``).
        refresh: seconds between full refreshes.
    """

    def __init__(self, store: RedisPresence, *, refresh: float) -> None:
        self.store = store
        self.refresh = refresh
        self.router: ActorRef | None = None
        self.mailbox = Mailbox(PRESENCE_MAILBOX_SIZE)
        self.ref = ActorRef("presence", self.mailbox)
        self._local: dict[str, int] = {}
        self._changed: set[str] = set()

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started(self.ref)
        try:
            await self._loop()
        finally:
            # Say goodbye, so other instances need not wait for our entries to expire.
            with shutdown_scope():
                for subject in self._local:
                    self._local[subject] = 0
                await self._write(set(self._local))

    async def _loop(self) -> None:
        receive = self.mailbox.receive_channel
        next_full = trio.current_time() + self.refresh
        while True:
            with trio.move_on_at(next_full):
                envelope = await receive.receive()
                self._take(envelope.message)
                await trio.sleep(DEBOUNCE)
                for later in self.mailbox.drain_nowait():
                    self._take(later.message)
            full = trio.current_time() >= next_full
            subjects = set(self._local) if full else self._changed
            if full:
                next_full = trio.current_time() + self.refresh
            await self._write(subjects)

    def _take(self, message) -> None:
        if isinstance(message, LocalCount):
            self._local[message.subject] = message.count
            self._changed.add(message.subject)
        else:
            log.error("presence: unexpected message %r", message)

    async def _write(self, subjects: set[str]) -> None:
        if not subjects:
            return
        pairs = [(s, self._local.get(s, 0)) for s in sorted(subjects)]
        try:
            totals = await self.store.refresh(pairs)
        except StoreError as exc:
            log.warning("presence: refresh failed: %s", exc)
            return
        self._changed -= subjects
        for subject, count in pairs:
            if count == 0:
                self._local.pop(subject, None)
        if self.router is not None:
            for subject, total in totals.items():
                try:
                    self.router.tell_nowait(Watching(subject, total))
                except ActorError as exc:
                    log.warning("presence: router not told: %s", exc)
