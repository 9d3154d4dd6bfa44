"""Parsing a ``/v1/events`` batch: plain code, no I/O, fast on the common case.

A batch is up to ``events_max_batch`` interactions; each gets its own result.
Invalid items are answered individually and never stop the rest. Every op
carries the sender's address, so each event counts against the same
per-user and per-address limits as the single routes (docs/rate-limits.md).
"""

from __future__ import annotations

from engage.domain.counters import Op, make_op, validate_content_id
from engage.errors import ClientError, ValidationError

EVENT_FIELDS = frozenset({"type", "content", "count", "viewer"})


def parse_events(events: list, *, user: str | None, cap: int,
                 address: str = "") -> tuple[dict[str, list[tuple[int, Op]]], dict[int, dict]]:
    """Validate each event and group the good ones by content id, in order.

    Args:
        events: the batch as decoded.
        user: the signed-in sender, if any.
        cap: the applause cap.
        address: the sender's address (its limits apply to every event).

    Returns:
        ``(groups, errors)``: content id -> ``[(index, op), ...]``, and
        index -> error result for the items that were refused.
    """
    groups: dict[str, list[tuple[int, Op]]] = {}
    errors: dict[int, dict] = {}
    seen_ids: set[str] = set()
    plain_view = Op("view", user or "", 1, address)
    for i, event in enumerate(events):
        try:
            if type(event) is not dict:
                raise ValidationError("each event must be a JSON object", code="invalid_event")
            if not EVENT_FIELDS.issuperset(event):
                unknown = sorted(set(event) - EVENT_FIELDS)
                raise ValidationError(f"unknown field(s): {', '.join(unknown)}",
                                      code="unknown_field")
            content_id = event.get("content")
            if type(content_id) is not str or content_id not in seen_ids:
                validate_content_id(content_id)
                seen_ids.add(content_id)
            if event.get("type") == "view" and len(event) == 2:
                op = plain_view  # the common case: no viewer id, no count
            else:
                op = make_op(event.get("type"), user=user, viewer=event.get("viewer"),
                             count=event.get("count"), cap=cap, address=address)
        except ClientError as exc:
            errors[i] = {"ok": False, "status": exc.status, "code": exc.code,
                         "detail": exc.detail}
            continue
        groups.setdefault(content_id, []).append((i, op))
    return groups, errors

