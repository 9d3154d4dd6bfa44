"""Site-owner webhooks as plain code: payloads, signatures, retry schedule.

Signature header (what receivers verify)::

    Engage-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

During a secret rotation there is one ``v1=`` per configured secret; a
receiver accepts the request if any of them matches a secret it knows.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from datetime import datetime, timezone

#: Event types delivered to webhooks.
WEBHOOK_EVENTS = frozenset({"comment.created", "content.published"})
SIGNATURE_HEADER = "Engage-Signature"
#: Seconds of clock difference a receiver should tolerate on ``t``.
DEFAULT_TOLERANCE = 300.0
#: First retry delay, doubled per attempt up to MAX_RETRY_DELAY (seconds).
FIRST_RETRY_DELAY = 1.0
MAX_RETRY_DELAY = 3600.0


def payload(event_type: str, event_id: str, at: float, data: dict) -> bytes:
    """The JSON body of one delivery."""
    created = datetime.fromtimestamp(at, tz=timezone.utc).isoformat(timespec="milliseconds")
    return json.dumps({"type": event_type, "id": event_id,
                       "created_at": created.replace("+00:00", "Z"), "data": data},
                      separators=(",", ":")).encode()


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(body: bytes, secrets: list[str], timestamp: int) -> str:
    """The ``Engage-Signature`` value: one ``v1=`` per secret, the signing one first."""
    return ",".join([f"t={timestamp}", *(f"v1={_mac(s, timestamp, body)}" for s in secrets)])


def verify(header: str, body: bytes, secrets: list[str], *, now: float,
           tolerance: float = DEFAULT_TOLERANCE) -> bool:
    """Does ``header`` sign ``body`` with one of ``secrets``, recently enough?"""
    parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
    stamps = [v for k, v in parts if k.strip() == "t"]
    macs = [v for k, v in parts if k.strip() == "v1"]
    if len(stamps) != 1 or not stamps[0].isdigit() or not macs:
        return False
    timestamp = int(stamps[0])
    if abs(now - timestamp) > tolerance:
        return False
    expected = {_mac(s, timestamp, body) for s in secrets}
    return any(hmac.compare_digest(m, e) for m in macs for e in expected)


def retry_delay(attempts: int, *, jitter: random.Random | None = None) -> float:
    """Seconds before the next try after ``attempts`` failed ones: exponential,
    capped, with full jitter so a recovering receiver is not stampeded."""
    cap = min(MAX_RETRY_DELAY, FIRST_RETRY_DELAY * 2 ** max(0, attempts - 1))
    return (jitter or random).uniform(cap / 2, cap)
