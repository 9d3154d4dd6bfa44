"""All WebSocket connections of this process, and their heartbeat.

Connection actors are ``temporary`` children of a dynamic supervisor: a socket
that fails is gone, and the client reconnects and catches up. One heartbeat
loop serves every connection (rather than a task each, which would cost
memory per idle socket): it pings them all every ``ping_interval`` and closes
those silent for ``idle_timeout``.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import trio

from engage.actors.connection.actor import ConnectionActor, ConnectionContext
from engage.auth import Identity
from engage.supervisor import DynamicSupervisor
from engage.wire import Wire
from engage.ws.frames import HEARTBEAT_TIMEOUT, ping_frame

log = logging.getLogger(__name__)


class ConnectionDirectory:
    """Runs connection actors and their shared heartbeat.

    Args:
        context: what each connection actor needs.
        max_connections: refuse sockets beyond this many.
        ping_interval: seconds between server pings.
        idle_timeout: a peer silent this long is closed as dead.
    """

    def __init__(self, context: ConnectionContext, *, max_connections: int,
                 ping_interval: float, idle_timeout: float, shutdown: float = 5.0) -> None:
        self.context = context
        self.ping_interval = ping_interval
        self.idle_timeout = idle_timeout
        self.supervisor = DynamicSupervisor(
            name="connections", max_children=max_connections, restart="temporary",
            shutdown=shutdown, max_restarts=1, max_seconds=1.0)
        self._ids = itertools.count(1)
        self._live: dict[int, ConnectionActor] = {}

    def __len__(self) -> int:
        return len(self._live)

    def statistics(self) -> dict[str, int]:
        return {"connections": len(self._live), **self.supervisor.statistics()}

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.supervisor.run)
            nursery.start_soon(self._heartbeat)
            task_status.started(self)

    async def serve(self, ws: Any, *, wire: Wire, identity: Identity | None) -> None:
        """Run a connection actor for an accepted socket until it ends."""
        actor = ConnectionActor(ws, wire=wire, identity=identity, context=self.context)
        key = next(self._ids)
        done = trio.Event()

        async def start(*, task_status: trio.TaskStatus) -> None:
            self._live[key] = actor
            try:
                await actor.run(task_status=task_status)
            finally:
                del self._live[key]
                done.set()

        await self.supervisor.start_child(key, start)
        await done.wait()

    async def _heartbeat(self) -> None:
        ping = ping_frame(b"hb")
        while True:
            await trio.sleep(self.ping_interval)
            cutoff = trio.current_time() - self.idle_timeout
            for actor in list(self._live.values()):
                if actor.ws.last_seen < cutoff:
                    actor.stop(HEARTBEAT_TIMEOUT, "no frames or pongs: peer presumed dead")
                elif not actor.push(ping):
                    actor.overflow()
