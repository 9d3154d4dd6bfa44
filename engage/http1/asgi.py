"""Serve an ASGI app (quart-trio) from :mod:`engage.http1` requests.

The routes not on the fast lane (:mod:`engage.fast`) are a QuartTrio app.
:class:`AsgiBridge` hands it a whole request (the body is already read and
bounded by the parser) and collects its whole answer (no route streams), so
the connection frames it like any other :class:`Response`.
:func:`run_lifespan` runs the app's ASGI lifespan (start-up and shutdown
hooks; quart-trio opens its background nursery there).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from engage.errors import ConfigError
from engage.http1.request import Request, Response
from engage.http1.response import problem

log = logging.getLogger(__name__)

AsgiApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]],
                   Awaitable[None]]
_ASGI = {"version": "3.0", "spec_version": "2.3"}


class AsgiBridge:
    """Calls an ASGI app for one :class:`Request` at a time.

    Args:
        app: the ASGI application.
        server: the listening ``(host, port)``, for the scope.
        state: the lifespan state, copied into each request's scope.
    """

    __slots__ = ("app", "server", "state")

    def __init__(self, app: AsgiApp, server: tuple[str, int] | None = None,
                 state: dict | None = None) -> None:
        self.app = app
        self.server = server
        self.state = state if state is not None else {}

    async def __call__(self, request: Request) -> Response:
        scope = {
            "type": "http", "asgi": _ASGI, "http_version": request.version,
            "method": request.method, "scheme": "http", "path": request.path,
            "raw_path": request.raw_path, "query_string": request.query_string,
            "root_path": "", "headers": request.headers, "client": request.client,
            "server": self.server, "state": self.state.copy(),
        }
        sent_body = False
        finished = trio.Event()

        async def receive() -> dict:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": request.body, "more_body": False}
            await finished.wait()  # the app is told of a disconnect only once it answered
            return {"type": "http.disconnect"}

        status = 0
        headers: list[tuple[str, str]] = []
        body: list[bytes] = []

        async def send(message: dict) -> None:
            nonlocal status
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
                headers.extend((name.decode("latin-1"), value.decode("latin-1"))
                               for name, value in message.get("headers", ()))
            elif kind == "http.response.body":
                body.append(message.get("body", b""))
                if not message.get("more_body", False):
                    finished.set()

        try:
            await self.app(scope, receive, send)
        finally:
            finished.set()
        if not status:
            log.error("the app returned without answering %s %r", request.method,
                      request.target[:200])
            return problem(500, "the server failed to handle this request", code="internal")
        close = any(name.lower() == "connection" and value.lower() == "close"
                    for name, value in headers)
        return Response(status, b"".join(body), headers, close=close)


async def run_lifespan(app: AsgiApp, state: dict, *, stop: trio.Event,
                       task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Run ``app``'s lifespan: start-up, then (once ``stop`` is set) shutdown.

    ``task_status.started()`` is called once start-up completed.

    Raises:
        ConfigError: the app's start-up failed.
    """
    to_app, app_inbox = trio.open_memory_channel[dict](2)
    started = trio.Event()
    outcome: dict[str, Any] = {}

    async def receive() -> dict:
        return await app_inbox.receive()

    async def send(message: dict) -> None:
        kind = message["type"]
        if kind in ("lifespan.startup.complete", "lifespan.startup.failed"):
            outcome["startup"] = message
            started.set()
        elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            outcome["shutdown"] = message

    scope = {"type": "lifespan", "asgi": _ASGI, "state": state}
    async with trio.open_nursery() as nursery:
        async def run_app() -> None:
            try:
                await app(scope, receive, send)
            finally:
                started.set()

        nursery.start_soon(run_app)
        await to_app.send({"type": "lifespan.startup"})
        await started.wait()
        startup = outcome.get("startup")
        if startup is None or startup["type"] == "lifespan.startup.failed":
            message = startup.get("message", "") if startup else "the app ended during start-up"
            raise ConfigError(f"ASGI start-up failed: {message}")
        task_status.started()
        await stop.wait()
        await to_app.send({"type": "lifespan.shutdown"})
