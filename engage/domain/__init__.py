"""Domain rules as plain code: no I/O, tested without servers."""

from engage.domain.counters import (
    CONTENT_ID_RE,
    Counts,
    FlushBatch,
    Op,
    OpResult,
    Snapshot,
    clamp_applause,
    make_op,
    parse_batch,
    validate_content_id,
)
from engage.domain.ratelimit import (
    Decision,
    Limit,
    LocalLimiter,
    Rate,
    Verdict,
    gcra,
    parse_rate,
)

__all__ = [
    "CONTENT_ID_RE", "Counts", "Decision", "FlushBatch", "Limit", "LocalLimiter", "Op",
    "OpResult", "Rate", "Snapshot", "Verdict", "clamp_applause", "gcra", "make_op",
    "parse_batch", "parse_rate", "validate_content_id",
]
