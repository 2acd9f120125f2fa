-- The notification outbox: rows written in the transaction that stores the
-- timeline entries causing them, delivered by whichever replica claims them
-- (a lease, as for recovery steps; FOR UPDATE SKIP LOCKED so two replicas
-- never hold the same row).
CREATE TABLE outbox (
    id          bigserial   PRIMARY KEY,
    incident_id bigint      NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    event       text        NOT NULL,
    destination text        NOT NULL,
    kind        text        NOT NULL,
    detail      jsonb,
    created_at  timestamptz NOT NULL,
    due_at      timestamptz NOT NULL,
    attempts    integer     NOT NULL DEFAULT 0,
    claimed_by  text,
    lease_until timestamptz,
    done_at     timestamptz,
    outcome     text
);
CREATE INDEX outbox_due ON outbox (due_at, id) WHERE done_at IS NULL;
