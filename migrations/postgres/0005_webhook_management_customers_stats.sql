-- Webhook management, customer erasure and stats.
--
-- Webhooks: `updated_at` moves on every change made through the API; a
-- rotated secret keeps the one before it in `previous_secret` until
-- `previous_secret_until`, and deliveries are signed with both meanwhile.
-- `disabled_reason` becomes a code: `gone` (410) or `manual`.
ALTER TABLE webhooks ADD COLUMN updated_at BIGINT;
ALTER TABLE webhooks ADD COLUMN previous_secret TEXT;
ALTER TABLE webhooks ADD COLUMN previous_secret_until BIGINT;
UPDATE webhooks SET updated_at = COALESCE(disabled_at, created_at);
UPDATE webhooks SET disabled_reason = 'gone' WHERE disabled_at IS NOT NULL;

-- A retry asked for through the API answers with the id its attempt will
-- be recorded under; recover and retry reuse the event's `webhook-id`, so
-- attempts remember it.
ALTER TABLE webhook_outbox ADD COLUMN attempt_id TEXT;
ALTER TABLE webhook_deliveries ADD COLUMN msg_id TEXT;
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (webhook_id, event_seq, pk);

-- Erased customers: sync drops what the provider sent them at or before
-- `erased_at`, so a replayed history never comes back.
CREATE TABLE customer_tombstones (
    account      TEXT NOT NULL,
    external_id  TEXT NOT NULL,
    erased_at    BIGINT NOT NULL,
    PRIMARY KEY (account, external_id)
);

-- Stats read sessions by when they closed and were first answered.
CREATE INDEX sessions_closed_at ON sessions (closed_at);
CREATE INDEX sessions_first_response_at ON sessions (first_response_at);
