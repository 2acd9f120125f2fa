-- The claim delivers one incident's messages to one destination in order: it
-- looks for an earlier undelivered row of the same pair.
CREATE INDEX outbox_order ON outbox (incident_id, destination, id) WHERE done_at IS NULL;
