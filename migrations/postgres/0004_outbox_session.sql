-- The dispatcher sends a session's messages in order: a row is claimable
-- only when no older row of its session waits. Keeping the session on the
-- outbox row makes that check an index probe instead of a join.
ALTER TABLE outbox ADD COLUMN session_id TEXT;
UPDATE outbox SET session_id = (SELECT m.session_id FROM messages m WHERE m.id = outbox.message_id);
CREATE INDEX outbox_session ON outbox (session_id, pk);
