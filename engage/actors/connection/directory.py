"""All WebSocket connections of this process, and their heartbeat.

Each connection actor runs in the task the front door already gives its
socket, rather than in a task of its own under a dynamic supervisor: measured
with 10,000 idle sockets, the extra task and its supervision bookkeeping cost
about 6 KiB per connection (docs/decisions.md §9). The directory supervises
them as a group instead, the way OTP treats ``temporary`` children: a socket
that fails is gone (the client reconnects and catches up), the registry drops
it when it ends, ``max_connections`` bounds it, and stopping the directory
closes every socket with 1001 and waits, within its shutdown budget, for them
to finish.

One heartbeat loop serves every connection (a task each would cost memory per
idle socket): every ``TICK`` it pings the connections whose ping is due
(each every ``ping_interval``, the first after a random part of it, so a
join storm's sockets are not pinged all at once), closes those silent for
``idle_timeout``, and has those whose token expires now check it. Both are
:class:`~engage.actors.connection.timers.Timers` heaps: a tick costs what is
due, not a visit to every socket.
"""

from __future__ import annotations

import itertools
import logging
import random
import time
from functools import partial
from typing import Any

import trio

from engage import metrics
from engage.actors.connection.actor import ConnectionActor
from engage.actors.connection.context import ConnectionContext
from engage.actors.connection.timers import Timers
from engage.auth import Identity
from engage.errors import TooManyChildren
from engage.supervisor import shutdown_scope
from engage.wire import Wire
from engage.ws.frames import GOING_AWAY, HEARTBEAT_TIMEOUT, ping_frame

log = logging.getLogger(__name__)

#: Seconds between two heartbeat ticks (the precision of pings and of ``ws_auth_grace``).
TICK = 1.0


class ConnectionDirectory:
    """Registry, heartbeat and ordered stop of the connection actors.

    Args:
        context: what each connection actor needs.
        max_connections: refuse sockets beyond this many.
        ping_interval: seconds between server pings.
        idle_timeout: a peer silent this long is closed as dead.
    """

    def __init__(self, context: ConnectionContext, *, max_connections: int,
                 ping_interval: float, idle_timeout: float) -> None:
        self.context = context
        self.max_connections = max_connections
        self.ping_interval = ping_interval
        self.idle_timeout = idle_timeout
        self._ids = itertools.count(1)
        self._live: dict[int, ConnectionActor] = {}
        self._pings: Timers[int] = Timers()  # trio clock
        self._expiries: Timers[int] = Timers()  # wall clock
        self._emptied = trio.Event()
        self._stopping = False

    def __len__(self) -> int:
        return len(self._live)

    @property
    def full(self) -> bool:
        """No more sockets can be served now (at the limit, or stopping)."""
        return self._stopping or len(self._live) >= self.max_connections

    def statistics(self) -> dict[str, int]:
        return {"connections": len(self._live), "max_connections": self.max_connections}

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        self._stopping = False
        task_status.started(self)
        try:
            await self._heartbeat()
        finally:
            self._stopping = True
            with shutdown_scope():
                for actor in list(self._live.values()):
                    actor.stop(GOING_AWAY, "server shutting down")
                while self._live:
                    self._emptied = trio.Event()
                    await self._emptied.wait()

    async def serve(self, ws: Any, *, wire: Wire, identity: Identity | None,
                    address: str = "unknown") -> None:
        """Run a connection actor for an accepted socket, in this task, until it ends.

        Raises:
            TooManyChildren: ``max_connections`` sockets are already served, or
                the directory is stopping.
        """
        if self.full:
            raise TooManyChildren(f"connections: at max_connections={self.max_connections}")
        actor = ConnectionActor(ws, wire=wire, identity=identity, context=self.context,
                                address=address)
        key = next(self._ids)
        self._live[key] = actor
        metrics.CONNECTIONS.inc()
        self._pings.add(trio.current_time() + self.ping_interval * random.uniform(0.5, 1.0), key)
        self._watch_token(key)
        actor.on_identity = partial(self._watch_token, key)
        try:
            await actor.run()
        finally:
            del self._live[key]
            metrics.CONNECTIONS.dec()
            if not self._live:
                self._emptied.set()

    def _watch_token(self, key: int) -> None:
        """Have the heartbeat check this connection's token when it expires."""
        actor = self._live.get(key)
        identity = actor.identity if actor is not None else None
        if identity is not None and identity.expires_at is not None:
            self._expiries.add(identity.expires_at, key)

    async def _heartbeat(self) -> None:
        ping = ping_frame(b"hb")
        while True:
            await trio.sleep(TICK)
            wall = time.time()
            for key in list(self._expiries.pop_due(wall)):
                actor = self._live.get(key)
                # A later auth added its own entry; a stale one finds nothing due.
                again = actor.check_token(wall) if actor is not None else None
                if again is not None and again > wall:
                    self._expiries.add(again, key)
            now = trio.current_time()
            cutoff = now - self.idle_timeout
            for key in list(self._pings.pop_due(now)):
                actor = self._live.get(key)
                if actor is None:
                    continue  # gone: its entry goes with it
                if actor.ws.last_seen < cutoff:
                    actor.stop(HEARTBEAT_TIMEOUT, "no frames or pongs: peer presumed dead")
                    continue
                if not actor.push(ping):
                    actor.overflow()
                self._pings.add(now + self.ping_interval, key)
