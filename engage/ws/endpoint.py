"""The WebSocket gateway: the upgrade's checks, then a connection actor.

Checks, in order: ``Origin`` (a browser's origin must be our own or in
``allowed_origins``; no ``Origin`` means a non-browser client, which is
allowed), the optional ``?token=``, and the wire format (subprotocol
``engage.msgpack`` or JSON). Refusals are HTTP problem responses, before any
WebSocket exists.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from engage.auth import verify_token
from engage.domain.address import client_address
from engage.domain.ratelimit import Limit
from engage.errors import StoreError, TooManyRequests, Unauthorized
from engage.wire import MSGPACK_SUBPROTOCOL

log = logging.getLogger(__name__)


def origin_allowed(origin: str | None, host: str | None, allowed: frozenset[str]) -> bool:
    """Is a browser at ``origin`` allowed to connect to us at ``host``?"""
    if origin is None:
        return True
    origin = origin.rstrip("/")
    if origin in allowed:
        return True
    if host and origin in (f"http://{host}", f"https://{host}"):
        return True
    return False


def _problem(status: int, title: str, detail: str, code: str) -> bytes:
    return json.dumps({"type": "about:blank", "title": title, "status": status,
                       "detail": detail, "code": code}).encode()


async def handle_websocket(system: Any, conn: Any) -> None:
    """Serve one upgrade request on ``/v1/ws`` for ``system``."""
    settings = system.settings
    host = conn.headers.get("host")
    if not origin_allowed(conn.origin, host, settings.origins):
        await conn.reject(403, _problem(403, "Forbidden", "this Origin may not open WebSockets "
                                        "here; add it to allowed_origins", "origin_not_allowed"))
        return
    if system.connections.full:
        await conn.reject(503, _problem(503, "Service unavailable", "this server is at its "
                                        "connection limit or shutting down; retry another",
                                        "busy"))
        return
    identity = None
    token = conn.query.get("token")
    if token:
        try:
            identity = verify_token(token, settings)
        except Unauthorized as exc:
            await conn.reject(401, _problem(401, "Unauthorized", exc.detail, exc.code))
            return
    address = client_address(conn.peer_address, conn.headers.get("x-forwarded-for"),
                             settings.proxies)
    if system.limits is not None:
        try:
            await system.limiter.enforce(
                [Limit(f"connect:ip:{address}", system.limits.connect)], "connection attempt")
        except TooManyRequests as exc:
            await conn.reject(429, _problem(429, "Too many requests", exc.detail, exc.code),
                              headers=(("Retry-After", str(max(1, math.ceil(exc.retry_after)))),))
            return
        except StoreError:
            await conn.reject(503, _problem(503, "Service unavailable", "a backing store is "
                                            "unavailable; retry shortly", "store_unavailable"))
            return
    wire = "msgpack" if MSGPACK_SUBPROTOCOL in conn.subprotocols else "json"
    await conn.accept(MSGPACK_SUBPROTOCOL if wire == "msgpack" else None)
    await system.connections.serve(conn, wire=wire, identity=identity, address=address)
