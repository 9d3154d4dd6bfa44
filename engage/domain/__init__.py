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

__all__ = [
    "CONTENT_ID_RE", "Counts", "FlushBatch", "Op", "OpResult", "Snapshot",
    "clamp_applause", "make_op", "parse_batch", "validate_content_id",
]
