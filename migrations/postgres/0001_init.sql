-- Timestamps are epoch microseconds (BIGINT) on both backends so ordering,
-- filtering and keyset cursors behave identically. Raw provider JSON is kept
-- as text, byte for byte.

CREATE TABLE sync_state (
    account          TEXT PRIMARY KEY,
    provider         TEXT NOT NULL,
    state            TEXT NOT NULL DEFAULT 'idle',
    cursor           TEXT,
    last_success_at  BIGINT,
    last_error       TEXT,
    last_error_at    BIGINT,
    lag_seconds      BIGINT,
    backfill         TEXT,
    extra_customers  TEXT NOT NULL DEFAULT '[]',
    lease_owner      TEXT,
    lease_until      BIGINT,
    updated_at       BIGINT NOT NULL
);

CREATE TABLE sessions (
    pk                    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                    TEXT NOT NULL UNIQUE,
    account               TEXT NOT NULL,
    provider              TEXT NOT NULL,
    external_id           TEXT NOT NULL,
    status                TEXT NOT NULL,
    channel               TEXT,
    customer_external_id  TEXT,
    customer_name         TEXT,
    customer_avatar_url   TEXT,
    agent_external_id     TEXT,
    agent_name            TEXT,
    agent_avatar_url      TEXT,
    started_by            TEXT,
    rating                TEXT,
    created_at            BIGINT NOT NULL,
    assigned_at           BIGINT,
    closed_at             BIGINT,
    assignment_started_at BIGINT,
    first_response_at     BIGINT,
    last_message_at       BIGINT,
    updated_at            BIGINT NOT NULL,
    message_count         BIGINT NOT NULL DEFAULT 0,
    fingerprint           TEXT,
    raw                   TEXT,
    UNIQUE (account, external_id)
);
CREATE INDEX sessions_created ON sessions (created_at, pk);
CREATE INDEX sessions_account_created ON sessions (account, created_at, pk);
CREATE INDEX sessions_status_created ON sessions (status, created_at, pk);
CREATE INDEX sessions_customer ON sessions (customer_external_id, created_at, pk);
CREATE INDEX sessions_agent ON sessions (agent_external_id, created_at, pk);
CREATE INDEX sessions_channel ON sessions (channel, created_at, pk);
CREATE INDEX sessions_external ON sessions (external_id);
CREATE INDEX sessions_updated ON sessions (updated_at);
CREATE INDEX sessions_open ON sessions (account, status);

CREATE TABLE messages (
    pk                    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                    TEXT NOT NULL UNIQUE,
    session_id            TEXT NOT NULL,
    account               TEXT NOT NULL,
    provider              TEXT NOT NULL,
    external_id           TEXT,
    customer_external_id  TEXT,
    direction             TEXT NOT NULL,
    sender_role           TEXT NOT NULL,
    sender_external_id    TEXT,
    sender_name           TEXT,
    sender_avatar_url     TEXT,
    kind                  TEXT NOT NULL,
    text                  TEXT,
    search_text           TEXT,
    media                 TEXT,
    card                  TEXT,
    event                 TEXT,
    sent_at               BIGINT NOT NULL,
    received_at           BIGINT,
    delivery_status       TEXT,
    delivery_attempts     BIGINT,
    delivery_last_error   TEXT,
    raw                   TEXT,
    UNIQUE (account, external_id)
);
CREATE INDEX messages_session_sent ON messages (session_id, sent_at, pk);
CREATE INDEX messages_sent ON messages (sent_at, pk);
CREATE INDEX messages_account_sent ON messages (account, sent_at, pk);
CREATE INDEX messages_customer_sent ON messages (customer_external_id, sent_at, pk);
CREATE INDEX messages_external ON messages (external_id);

CREATE TABLE events (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type        TEXT NOT NULL,
    at          BIGINT NOT NULL,
    account     TEXT NOT NULL,
    provider    TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    message_id  TEXT,
    data        TEXT NOT NULL
);
CREATE INDEX events_at ON events (at);

-- Highest seq ever removed by retention; older cursors answer 410.
CREATE TABLE event_retention (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    pruned_through BIGINT NOT NULL
);
INSERT INTO event_retention (id, pruned_through) VALUES (1, 0);

CREATE TABLE outbox (
    pk              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id      TEXT NOT NULL UNIQUE,
    account         TEXT NOT NULL,
    kind            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until    BIGINT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX outbox_due ON outbox (next_attempt_at);

CREATE TABLE idempotency_keys (
    api_key_name  TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    status        BIGINT,
    response      TEXT,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (api_key_name, key)
);
CREATE INDEX idempotency_created ON idempotency_keys (created_at);

CREATE TABLE webhooks (
    pk          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    url         TEXT NOT NULL,
    events      TEXT NOT NULL,
    accounts    TEXT NOT NULL,
    secret      TEXT NOT NULL,
    cursor_seq  BIGINT NOT NULL DEFAULT 0,
    disabled_at BIGINT,
    created_at  BIGINT NOT NULL
);

CREATE TABLE webhook_deliveries (
    pk               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    webhook_id       TEXT NOT NULL,
    event_seq        BIGINT NOT NULL,
    attempt          BIGINT NOT NULL,
    status           TEXT NOT NULL,
    response_status  BIGINT,
    error            TEXT,
    at               BIGINT NOT NULL,
    next_attempt_at  BIGINT
);
CREATE INDEX webhook_deliveries_hook ON webhook_deliveries (webhook_id, pk);

-- Case-insensitive substring search (`q`) on any script, Chinese included:
-- trigram GIN index over the lower-cased text the gateway writes.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX messages_search_trgm ON messages USING gin (search_text gin_trgm_ops);
