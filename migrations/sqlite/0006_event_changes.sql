-- Events say what changed: each altered top-level field of `data` with its
-- previous value (JSON object), NULL on session.opened and message.created.
ALTER TABLE events ADD COLUMN changes TEXT;
