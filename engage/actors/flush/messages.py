"""Messages of the flush actor and the sweeper."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FlushNow:
    """Flush everything pending now; reply a list of ``FlushReport``.

    Sent (asked) by tests, benchmarks and the admin path; the actor also
    flushes on its own every ``flush_interval`` seconds.
    """


@dataclass(frozen=True, slots=True)
class SweepNow:
    """Re-apply stale batches now; reply the number swept.

    Sent (asked) by tests; the sweeper also runs every ``sweep_interval``.
    """
