"""The configured rate limits, parsed once (docs/rate-limits.md).

Each ``rate_*`` setting is a :class:`~engage.domain.ratelimit.Rate`; with
``rate_limits = false`` there are none and nothing is counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from engage.domain.ratelimit import Limit, Rate, parse_rate
from engage.errors import ConfigError
from engage.settings import Settings


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Every limit, by action.

    Attributes:
        comment, like, view: per signed-in user (or per address when anonymous).
        comment_ip: comments per address, whoever is signed in.
        ip: interactions per address, whoever is signed in.
        events_ip: events in ``/v1/events`` batches per address.
        connect: WebSocket connection attempts per address.
        ws_frames: frames per WebSocket connection (counted in its process).
    """

    comment: Rate
    comment_ip: Rate
    like: Rate
    view: Rate
    ip: Rate
    events_ip: Rate
    connect: Rate
    ws_frames: Rate

    @classmethod
    def from_settings(cls, settings: Settings) -> "RateLimits | None":
        """The limits in ``settings``, or ``None`` when ``rate_limits`` is off.

        Raises:
            ConfigError: a ``rate_*`` setting does not parse.
        """
        if not settings.rate_limits:
            return None
        rates = {}
        for name in ("comment", "comment_ip", "like", "view", "ip", "events_ip", "connect",
                     "ws_frames"):
            key = "rate_connect_ip" if name == "connect" else f"rate_{name}"
            try:
                rates[name] = parse_rate(getattr(settings, key))
            except ValueError as exc:
                raise ConfigError(f"setting {key}: {exc}") from None
        return cls(**rates)

    def comment_limits(self, user: str, address: str) -> list[Limit]:
        """What one comment by ``user`` from ``address`` counts against."""
        return [Limit(f"comment:u:{user}", self.comment),
                Limit(f"comment:ip:{address}", self.comment_ip)]

    def events_limits(self, address: str, count: int) -> list[Limit]:
        """What a ``/v1/events`` batch of ``count`` events from ``address`` counts against."""
        return [Limit(f"events:ip:{address}", self.events_ip, count)]
