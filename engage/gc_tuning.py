"""The garbage collector, set for a server that allocates fast and keeps a lot.

With CPython's default thresholds (700, 10, 10) a WebSocket ingest run
(1,000 clients, 13,000 acks/s) spent about a quarter of its CPU collecting:
2,200 collections in 10 s, of which 20 were full ones walking every object
of every connection, because the young objects of ops in flight survive the
small first generation and soon count as long-lived (measured with
``gc.callbacks``; docs/decisions.md §16). A fan-out to 20,000 sockets paused
mid-message the same way. Engage's objects hold no reference cycles on the
hot paths, so collecting less often loses nothing: the first generation is
collected every 50,000 allocations (a pause of a few milliseconds), and
what exists once the server is up (modules, settings, the actor tree) is
moved out of the collector's sight with ``gc.freeze``.
"""

from __future__ import annotations

import gc
from typing import Final

#: Allocations between collections of the first generation, and collections of
#: each generation between collections of the next.
THRESHOLDS: Final = (50_000, 20, 20)


def tune_gc() -> None:
    """Collect less often (call once, early in the process)."""
    gc.set_threshold(*THRESHOLDS)


def freeze_startup() -> None:
    """Collect once and freeze what survives: the server's startup objects
    are never garbage, and full collections need not walk them again."""
    gc.collect()
    gc.freeze()
