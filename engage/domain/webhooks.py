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
import time
from datetime import datetime, timezone
from urllib.parse import urlsplit, urlunsplit

#: Event types delivered to webhooks.
WEBHOOK_EVENTS = frozenset({"comment.created", "content.published"})
SIGNATURE_HEADER = "Engage-Signature"
#: Seconds of clock difference a receiver should tolerate on ``t``.
DEFAULT_TOLERANCE = 300.0
#: First retry delay, doubled per attempt up to MAX_RETRY_DELAY (seconds).
FIRST_RETRY_DELAY = 1.0
MAX_RETRY_DELAY = 3600.0


def payload(event_type: str, event_id: str, at: float, data: dict) -> bytes:
    """The JSON body of one delivery.

    Args:
        event_type: ``comment.created`` or ``content.published``.
        event_id: the event log entry id (unique per event: receivers dedupe on it).
        at: when the event happened, unix seconds.
        data: the event's data, as in the event log.

    Returns:
        ``{"type", "id", "created_at", "data"}`` as compact UTF-8 JSON;
        ``created_at`` is ISO 8601 UTC with milliseconds and a ``Z``.
    """
    created = datetime.fromtimestamp(at, tz=timezone.utc).isoformat(timespec="milliseconds")
    return json.dumps({"type": event_type, "id": event_id,
                       "created_at": created.replace("+00:00", "Z"), "data": data},
                      separators=(",", ":")).encode()


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(body: bytes, secrets: list[str], timestamp: int) -> str:
    """The ``Engage-Signature`` value: one ``v1=`` per secret, the signing one first.

    Args:
        body: the exact bytes that will be POSTed.
        secrets: the first signs; more (during a rotation) add a ``v1=`` each.
        timestamp: unix seconds, sent as ``t`` and signed with the body.
    """
    return ",".join([f"t={timestamp}", *(f"v1={_mac(s, timestamp, body)}" for s in secrets)])


def verify(header: str, body: bytes, secrets: list[str],
           tolerance: float = DEFAULT_TOLERANCE, *, now: float | None = None) -> bool:
    """Check an ``Engage-Signature`` header: what a receiver runs on each POST.

    Args:
        header: the ``Engage-Signature`` value as received.
        body: the raw request body, byte for byte (not re-encoded JSON).
        secrets: the secrets the receiver accepts (during a rotation, old and new).
        tolerance: most seconds ``t`` may differ from ``now`` (replay window).
        now: the receiver's clock in unix seconds; ``time.time()`` if omitted.

    Returns:
        True if one ``v1=`` is the HMAC of ``"<t>.<body>"`` under one of
        ``secrets`` and ``t`` is within ``tolerance`` of ``now``.
    """
    parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
    stamps = [v.strip() for k, v in parts if k.strip() == "t"]
    macs = [v.strip() for k, v in parts if k.strip() == "v1"]
    stamp_ok = len(stamps) == 1 and stamps[0].isascii() and stamps[0].isdigit()
    if not stamp_ok or not macs or not secrets:
        return False
    timestamp = int(stamps[0])
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = [_mac(s, timestamp, body) for s in secrets]
    return any(hmac.compare_digest(m, e) for m in macs for e in expected)


def redact_url(url: str) -> str:
    """``url`` fit for logs: credentials and the query string (tokens) removed."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def retry_delay(attempts: int, *, jitter: random.Random | None = None) -> float:
    """Seconds before the next try after ``attempts`` failed ones.

    Exponential (``FIRST_RETRY_DELAY * 2 ** (attempts - 1)``), capped at
    ``MAX_RETRY_DELAY``, then drawn uniformly from the upper half of that so
    many deliveries failing together do not all come back at once.

    Args:
        attempts: failed tries so far (1 after the first failure).
        jitter: random source (tests pass a seeded one).
    """
    cap = min(MAX_RETRY_DELAY, FIRST_RETRY_DELAY * 2 ** max(0, attempts - 1))
    return (jitter or random).uniform(cap / 2, cap)
