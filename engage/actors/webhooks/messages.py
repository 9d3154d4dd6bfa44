"""Messages of the webhook actor."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DeliverDue:
    """Try every due delivery now; reply the number attempted.

    Sent (asked) by tests and operators; the actor also does it every
    ``WEBHOOK_POLL_INTERVAL`` seconds.
    """
