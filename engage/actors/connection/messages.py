"""Messages of connection actors (one per WebSocket)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Deliver:
    """Send this server frame object to the client; no reply.

    Told by actors that address one connection rather than a subject (the
    notification path).
    """

    frame: Any


@dataclass(frozen=True, slots=True)
class Close:
    """Close the socket with ``code`` and ``reason``; no reply.

    Told by the connection directory (heartbeat timeout, shutdown).
    """

    code: int
    reason: str
