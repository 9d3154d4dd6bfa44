"""Messages of content actors (one actor per content id)."""

from __future__ import annotations

from dataclasses import dataclass

from engage.domain import Op


@dataclass(frozen=True, slots=True)
class Interact:
    """Apply these ops to the item; reply a tuple of ``OpResult``, one per op.

    Sent (asked) by the HTTP gateway, for single requests and ``/v1/events``.
    """

    ops: tuple[Op, ...]


@dataclass(frozen=True, slots=True)
class GetCounts:
    """Reply the item's current ``Counts``.

    Sent (asked) by the HTTP gateway.
    """
