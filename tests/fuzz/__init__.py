"""Fuzzers against a running in-process server: the HTTP API from its OpenAPI
document (schemathesis), and the WebSocket protocol (hypothesis). They run
with the normal suite; docs/api.md says how to run them longer."""

from __future__ import annotations

import logging


def server_trouble(records) -> list[str]:
    """Log records of the server's own trouble: errors, and store failures it
    retries (with healthy stores, a request must never cause either)."""
    return [f"{r.name}: {r.getMessage()[:300]}" for r in records
            if r.name.startswith(("engage", "hypercorn", "quart"))
            and (r.levelno >= logging.ERROR
                 or any(w in r.getMessage() for w in ("retry", "unavailable", "postgres:",
                                                      "redis:")))]
