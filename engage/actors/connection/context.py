"""What every connection actor shares, and the small helpers of its ops."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engage.actors.content.directory import ContentDirectory
from engage.actors.ref import ActorRef
from engage.domain.ratelimit import Rate
from engage.errors import ActorError, ClientError, StoreError
from engage.limits import RateLimits
from engage.settings import Settings
from engage.store.history import RedisHistory
from engage.store.ratelimit import RedisRateLimiter


@dataclass(frozen=True)
class ConnectionContext:
    """What every connection actor needs, shared by all of them.

    Attributes:
        limiter: the shared (Redis) rate limiter.
        limits: the configured limits, ``None`` when they are off.
    """

    content: ContentDirectory
    router: ActorRef
    history: RedisHistory
    settings: Settings
    limiter: RedisRateLimiter | None = None
    limits: RateLimits | None = None

    @property
    def frame_rate(self) -> Rate | None:
        return self.limits.ws_frames if self.limits is not None else None


@dataclass(frozen=True, slots=True)
class Target:
    """A subscribable subject and how its frames name it.

    Attributes:
        subject: the router/history subject (``content:<id>``, ``feed:...``, ``user:<id>``).
        key, value: the field naming it in frames (``"content": "<id>"``, ...).
        data_field: the field carrying each history event's payload.
        in_events: whether event frames repeat ``key`` (notifications do not).
    """

    subject: str
    key: str
    value: Any
    data_field: str
    in_events: bool = True


def describe(exc: BaseException) -> tuple[str, str, dict]:
    """The ``code``, ``message`` and extra fields of the error frame for ``exc``."""
    if isinstance(exc, ClientError):
        retry_after = getattr(exc, "retry_after", None)
        return exc.code, exc.detail, ({} if retry_after is None else {"retry_after": retry_after})
    if isinstance(exc, (StoreError, ActorError)):
        return "unavailable", "a backing service is busy or down; retry", {}
    return "internal", "the server failed to handle this op; it has been logged", {}
