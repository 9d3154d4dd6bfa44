"""Messages of the presence actor."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LocalCount:
    """This process now has ``count`` connections on ``subject``.

    Told by the router actor whenever a subject gains or loses a subscriber.
    """

    subject: str
    count: int
