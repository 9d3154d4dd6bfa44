"""Prometheus metrics, served at ``/metrics``.

Module-level objects on the default registry. Under ``run.py --workers N``
the parent sets ``PROMETHEUS_MULTIPROC_DIR`` for its workers: every worker
then writes its values there (prometheus-client's multiprocess mode) and
whichever worker answers a scrape reports all of them (:func:`exposition`):
counters and histograms summed, gauges as each one's ``multiprocess_mode``
says (per-worker ones carry a ``pid`` label).
"""

from __future__ import annotations

import os

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge,
                               Histogram, generate_latest)
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["CONTENT_TYPE_LATEST", "exposition"]

INTERACTIONS = Counter(
    "engage_interactions_total", "Interactions acknowledged, by kind", ["kind"])
MIRROR_BATCH_SIZE = Histogram(
    "engage_mirror_batch_messages", "Messages per Redis pipeline (group commit)",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000))
FLUSHES = Counter("engage_flushes_total", "Flush attempts, by result", ["result"])
FLUSH_EVENTS = Counter("engage_flush_events_total", "Interactions moved to Postgres")
FLUSH_ITEMS = Counter("engage_flush_items_total", "Content items written to Postgres")
FLUSH_STATEMENTS = Counter("engage_flush_statements_total", "Postgres statements issued by flushes")
FLUSH_ROWS = Counter("engage_flush_rows_total", "Postgres rows written by flushes")
FLUSH_SECONDS = Histogram("engage_flush_duration_seconds", "Time to move one batch to Postgres")
SWEPT_BATCHES = Counter("engage_swept_batches_total", "Batches re-applied for a dead process")
OLDEST_UNFLUSHED = Gauge(
    "engage_oldest_unflushed_seconds", "Age of the oldest change not yet in Postgres (0: none)",
    multiprocess_mode="livemax")
CONTENT_ACTORS = Gauge("engage_content_actors", "Content actors running in this process",
                       multiprocess_mode="liveall")
CONNECTIONS = Gauge("engage_websocket_connections", "WebSockets open in this process",
                    multiprocess_mode="liveall")
HTTP_ERRORS = Counter("engage_http_errors_total", "Problem responses, by status", ["status"])
DEPENDENCY_FAILURES = Counter(
    "engage_dependency_failures_total",
    "Failed calls to Redis or Postgres, by the actor and dependency that saw them", ["what"])
DEPENDENCY_DOWN = Gauge(
    "engage_dependency_down", "1 while an actor sees its dependency down (engage/outage.py)",
    ["what"], multiprocess_mode="livemax")
NOTIFICATIONS = Counter(
    "engage_notifications_total", "Notifications stored and pushed, by kind", ["kind"])
NOTIFICATIONS_SKIPPED = Counter(
    "engage_notifications_skipped_total",
    "Notifications not made, by kind and reason (rate_cap, comment_gone)", ["kind", "reason"])
WEBHOOK_DELIVERIES = Counter(
    "engage_webhook_deliveries_total",
    "Webhook POST outcomes (delivered, retry, failed)", ["outcome"])


def exposition() -> bytes:
    """The scrape: this process's metrics, or all workers' under ``--workers``."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()
