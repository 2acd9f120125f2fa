"""Every SQL statement of the PostgreSQL store, as constants with ``$n`` parameters.

Kept in one place so a reader can audit them at once: no statement is built
from data, and every value (alert labels included) travels as a parameter.
The schema they run against is ``migrations/``.
"""

from __future__ import annotations

# Advisory lock namespace of pipeline locks ("pm" << 16); migrations use 0x706D.
PIPELINE_LOCK_NS = 0x706D0000
INCIDENT_LOCK_NS = 0x706D0001  # one incident's read-modify-write (Store.incident_lock)

HEARTBEAT = """
INSERT INTO store_heartbeat (id, at) VALUES (1, clock_timestamp())
ON CONFLICT (id) DO UPDATE SET at = EXCLUDED.at
"""

# One statement, so one transaction, for a whole batch of concurrent ingests
# (``batching.Batcher``): all its alerts or none. Rows go in array order, so a
# key sent twice in a batch is stored from its first sender.
INGEST = """
INSERT INTO alert_events (fingerprint, starts_at, status, alert, group_key)
SELECT f, s, st, a::jsonb, g
FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[])
     WITH ORDINALITY AS n (f, s, st, a, g, i)
ORDER BY i
ON CONFLICT ON CONSTRAINT alert_events_dedup DO NOTHING
RETURNING fingerprint, starts_at, status
"""

# An event waits while an older one of the same alert is leased to another
# worker, so the firing and the resolved notification are handled in order.
# ``previous`` is the worker whose lease ran out (NULL for a first claim).
CLAIM_EVENTS = """
WITH picked AS (
    SELECT e.id, e.claimed_by AS previous FROM alert_events e
    WHERE e.finished_at IS NULL
      AND (e.lease_until IS NULL OR e.lease_until < clock_timestamp())
      AND NOT EXISTS (
          SELECT 1 FROM alert_events o
          WHERE o.fingerprint = e.fingerprint AND o.id < e.id AND o.finished_at IS NULL
            AND o.claimed_by <> $1 AND o.lease_until >= clock_timestamp())
    ORDER BY e.id
    LIMIT $2
    FOR UPDATE OF e SKIP LOCKED
)
UPDATE alert_events a
SET claimed_by = $1,
    attempts = a.attempts + 1,
    lease_until = clock_timestamp() + make_interval(secs => $3)
FROM picked WHERE a.id = picked.id
RETURNING a.id, a.alert, a.received_at, a.group_key, a.attempts, picked.previous
"""

# A retaken event goes on the timeline of its pipeline's incident, if one is open.
NOTE_RETAKEN = """
INSERT INTO incident_timeline (incident_id, at, event, detail)
SELECT id, clock_timestamp(), $2, $3 FROM incidents
WHERE pipeline = $1 AND state <> 'closed'
"""

# A worker whose lease was retaken by another no longer owns the event.
FINISH_EVENT = """
UPDATE alert_events SET finished_at = clock_timestamp(), lease_until = NULL
WHERE id = $1 AND claimed_by = $2 AND finished_at IS NULL
"""

# Only the worker holding an unfinished event's lease may extend it.
RENEW_LEASES = """
UPDATE alert_events SET lease_until = clock_timestamp() + make_interval(secs => $3)
WHERE id = ANY($1::bigint[]) AND claimed_by = $2 AND finished_at IS NULL
RETURNING id
"""

QUEUE_DEPTH = "SELECT count(*) FROM alert_events WHERE finished_at IS NULL"

LOCK_PIPELINE = "SELECT pg_advisory_lock($1, hashtext($2))"
UNLOCK_PIPELINE = "SELECT pg_advisory_unlock($1, hashtext($2))"

# incidents -------------------------------------------------------------------
OPEN_INCIDENT = """
SELECT * FROM incidents WHERE pipeline = $1 AND state <> 'closed' ORDER BY id DESC LIMIT 1
"""
LAST_INCIDENT = "SELECT * FROM incidents WHERE pipeline = $1 ORDER BY id DESC LIMIT 1"
GET_INCIDENT = "SELECT * FROM incidents WHERE id = $1"
INCIDENT_VERSION = "SELECT version FROM incidents WHERE id = $1"
INCIDENT_SEVS = "SELECT id, sev FROM incidents WHERE state = ANY($1::text[])"
APPROVALS_WAITING = """
SELECT id, pipeline, pending_approval FROM incidents
WHERE state = 'recovering' AND pending_approval IS NOT NULL
"""
LIST_INCIDENTS = """
SELECT * FROM incidents
WHERE ($1::text IS NULL OR state = $1)
  AND ($2::text IS NULL OR pipeline = $2)
  AND ($3::text IS NULL OR sev = $3)
ORDER BY id DESC
LIMIT $4 OFFSET $5
"""
TIMELINES = """
SELECT incident_id, at, event, detail, by_person FROM incident_timeline
WHERE incident_id = ANY($1::bigint[]) ORDER BY at, id
"""
ACTIONS_OF = """
SELECT * FROM actions WHERE incident_id = ANY($1::bigint[]) ORDER BY started_at, step
"""
CREATE_INCIDENT = """
INSERT INTO incidents (pipeline, state, sev, category, team, roles, diagnosis,
                       opened_at, resolved_at, closed_at, postmortem, diagnoses,
                       acknowledged_at, acknowledged_by, pending_approval, review, version)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
RETURNING id
"""
SAVE_INCIDENT = """
UPDATE incidents
SET pipeline = $2, state = $3, sev = $4, category = $5, team = $6, roles = $7,
    diagnosis = $8, opened_at = $9, resolved_at = $10, closed_at = $11, postmortem = $12,
    diagnoses = $13, acknowledged_at = $14, acknowledged_by = $15, pending_approval = $16,
    review = $17, version = $18
WHERE id = $1
RETURNING id
"""
TIMELINE_OF = "SELECT at, event, detail FROM incident_timeline WHERE incident_id = $1"
ALERTS_OF = """
SELECT incident_id, doc FROM incident_alerts WHERE incident_id = ANY($1::bigint[]) ORDER BY seq
"""
# A new alert of the incident, or a known one whose status changed (resolved).
APPEND_ALERT = """
INSERT INTO incident_alerts (incident_id, fingerprint, starts_at, status, doc)
VALUES ($1, $2, $3, $4, $5::jsonb)
ON CONFLICT ON CONSTRAINT incident_alerts_key
DO UPDATE SET status = EXCLUDED.status, doc = EXCLUDED.doc
"""
APPEND_TIMELINE = """
INSERT INTO incident_timeline (incident_id, at, event, detail, by_person)
VALUES ($1, $2, $3, $4, $5)
"""
# A ledger event for an incident's timeline; nothing if the incident does not exist.
NOTE_TIMELINE = """
INSERT INTO incident_timeline (incident_id, at, event, detail)
SELECT id, $2, $3, $4 FROM incidents WHERE id = $1
"""

# action ledger ---------------------------------------------------------------
# Parameters $1..$14 of the INSERTs below, in ActionRecord field order.
ADD_ACTION_IF_MISSING = """
INSERT INTO actions (incident_id, step, pipeline, strategy, action, target, started_at,
                     ended_at, outcome, retryable, verified, detail, worker, diagnosis,
                     lease_until)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, clock_timestamp())
ON CONFLICT (incident_id, step) DO NOTHING
"""
CLAIM_ACTION = """
INSERT INTO actions (incident_id, step, pipeline, strategy, action, target, started_at,
                     ended_at, outcome, retryable, verified, detail, worker, diagnosis,
                     lease_until)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
        clock_timestamp() + make_interval(secs => $15))
ON CONFLICT (incident_id, step) DO NOTHING
RETURNING true
"""
# FOR UPDATE: a second replica waits here, then reads the first one's new lease.
HELD_ACTION = """
SELECT worker, outcome, lease_until, lease_until < clock_timestamp() AS expired
FROM actions WHERE incident_id = $1 AND step = $2
FOR UPDATE
"""
TAKE_OVER_ACTION = """
UPDATE actions
SET pipeline = $3, strategy = $4, action = $5, target = $6, started_at = $7,
    ended_at = NULL, outcome = 'running', retryable = $8, verified = NULL, detail = $9,
    worker = $10, takeovers = takeovers + 1,
    lease_until = clock_timestamp() + make_interval(secs => $11), diagnosis = $12
WHERE incident_id = $1 AND step = $2
"""
# Only the worker holding a running step's claim may extend its lease.
RENEW_ACTION = """
UPDATE actions SET lease_until = clock_timestamp() + make_interval(secs => $4)
WHERE incident_id = $1 AND step = $2 AND worker = $3 AND outcome = 'running'
RETURNING true
"""
# Only the worker holding the claim records its outcome.
END_ACTION = """
UPDATE actions
SET ended_at = $3, outcome = $4, retryable = $5, verified = $6, detail = $7,
    lease_until = clock_timestamp()
WHERE incident_id = $1 AND step = $2 AND worker = $8
RETURNING true
"""
ACTION_EXISTS = "SELECT true FROM actions WHERE incident_id = $1 AND step = $2"
ACTIONS_SINCE = """
SELECT * FROM actions
WHERE started_at >= $1
  AND ($2::text IS NULL OR pipeline = $2)
  AND ($3::text IS NULL OR target = $3)
ORDER BY started_at, incident_id, step
"""
