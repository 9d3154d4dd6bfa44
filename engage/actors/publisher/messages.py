"""Messages of the publisher actor (one per process: the publish consumer)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PublishPayload:
    """One plain ``PUBLISH <prefix>publish '<json>'`` message, as received.

    Told (``tell_nowait``) by the router actor, which owns the process's only
    pub/sub connection. Handled like a stream entry but never acknowledged:
    at most once.
    """

    data: bytes
