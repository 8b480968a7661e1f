-- Events say what changed: each altered top-level field of `data` with its
-- previous value (JSON object), NULL on session.opened and message.created.
ALTER TABLE events ADD COLUMN changes TEXT;

-- Provider calls started for an outbox row, counted when it is claimed (before
-- the call), so a call whose answer was lost in a crash still counts in
-- delivery.attempts.
ALTER TABLE outbox ADD COLUMN calls INTEGER NOT NULL DEFAULT 0;
