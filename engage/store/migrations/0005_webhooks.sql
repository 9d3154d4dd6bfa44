-- Webhook deliveries: a durable queue, one row per (event, endpoint).
CREATE TABLE webhook_deliveries (
    event_id        text NOT NULL,
    url             text NOT NULL,
    event_type      text NOT NULL,
    body            bytea NOT NULL,
    status          text NOT NULL DEFAULT 'pending',  -- pending | delivered | failed
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    PRIMARY KEY (event_id, url)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
