-- Webhook delivery bookkeeping.
--
-- Each webhook copies the events it subscribes to from the event log into
-- its own outbox, advancing `cursor_seq` in the same transaction, so a
-- restart resumes exactly where it stopped. An outbox row lives until its
-- event is delivered or its retries are spent. Only the oldest row of a
-- session has a `next_attempt_at`; the later ones wait with NULL until it
-- leaves, which keeps each session's events in `seq` order.
-- One replica at a time delivers a webhook: the holder of its lease.

ALTER TABLE webhooks ADD COLUMN lease_owner TEXT;
ALTER TABLE webhooks ADD COLUMN lease_until INTEGER;
ALTER TABLE webhooks ADD COLUMN disabled_reason TEXT;

CREATE TABLE webhook_outbox (
    pk              INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id      TEXT NOT NULL,
    msg_id          TEXT NOT NULL UNIQUE,
    event_seq       INTEGER NOT NULL,
    session_id      TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    created_at      INTEGER NOT NULL,
    UNIQUE (webhook_id, event_seq)
);
CREATE INDEX webhook_outbox_session ON webhook_outbox (webhook_id, session_id, event_seq);
CREATE INDEX webhook_outbox_due ON webhook_outbox (webhook_id, next_attempt_at);

CREATE INDEX webhook_deliveries_at ON webhook_deliveries (at);
