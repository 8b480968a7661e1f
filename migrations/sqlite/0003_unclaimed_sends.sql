-- Gateway sends still waiting for the provider's id: ingest asks per session
-- whether an echo could match one, for every batch of synced messages.
CREATE INDEX messages_unclaimed ON messages (session_id) WHERE external_id IS NULL;
