"""Prometheus metrics, served at ``/metrics``.

Module-level objects on the default registry: one process, one set of metrics.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
    "engage_oldest_unflushed_seconds", "Age of the oldest change not yet in Postgres (0: none)")
CONTENT_ACTORS = Gauge("engage_content_actors", "Content actors running in this process")
HTTP_ERRORS = Counter("engage_http_errors_total", "Problem responses, by status", ["status"])
DEPENDENCY_FAILURES = Counter(
    "engage_dependency_failures_total",
    "Failed calls to Redis or Postgres, by the actor and dependency that saw them", ["what"])
DEPENDENCY_DOWN = Gauge(
    "engage_dependency_down", "1 while an actor sees its dependency down (engage/outage.py)",
    ["what"])
NOTIFICATIONS = Counter(
    "engage_notifications_total", "Notifications stored and pushed, by kind", ["kind"])
NOTIFICATIONS_SKIPPED = Counter(
    "engage_notifications_skipped_total",
    "Notifications not made, by kind and reason (rate_cap, comment_gone)", ["kind", "reason"])
WEBHOOK_DELIVERIES = Counter(
    "engage_webhook_deliveries_total",
    "Webhook POST outcomes (delivered, retry, failed)", ["outcome"])
