"""Messages of the notifier actor (event log -> per-user notifications)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GetNotifierStatistics:
    """Reply a dict of the notifier's counters: events read and acknowledged,
    notifications delivered, skipped by reason (``rate_cap``, ``comment_gone``),
    malformed events, and applause groups and events held open.

    Asked by tests and operators.
    """
