-- An incident's alerts as rows of their own, appended as they come (a resolution
-- updates its row), instead of one JSON array rewritten at every save.
CREATE TABLE incident_alerts (
    seq         bigserial PRIMARY KEY,
    incident_id bigint NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    fingerprint text   NOT NULL,
    starts_at   text   NOT NULL,
    status      text   NOT NULL,
    doc         jsonb  NOT NULL,
    CONSTRAINT incident_alerts_key UNIQUE (incident_id, fingerprint, starts_at)
);
INSERT INTO incident_alerts (incident_id, fingerprint, starts_at, status, doc)
SELECT i.id, coalesce(a.doc->>'fingerprint', ''), coalesce(a.doc->>'startsAt', ''),
       coalesce(a.doc->>'status', ''), a.doc
FROM incidents i, jsonb_array_elements(i.alerts) WITH ORDINALITY AS a (doc, n)
ORDER BY i.id, a.n
ON CONFLICT ON CONSTRAINT incident_alerts_key
DO UPDATE SET status = EXCLUDED.status, doc = EXCLUDED.doc;
ALTER TABLE incidents DROP COLUMN alerts;
