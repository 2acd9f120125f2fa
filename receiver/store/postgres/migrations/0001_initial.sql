-- The durable queue: every alert of every notification, once per
-- (fingerprint, starts_at, status); claimed under a lease by one worker.
CREATE TABLE alert_events (
    id          bigserial PRIMARY KEY,
    fingerprint text        NOT NULL,
    starts_at   timestamptz NOT NULL,
    status      text        NOT NULL,
    alert       jsonb       NOT NULL,
    group_key   text        NOT NULL DEFAULT '',
    received_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    attempts    integer     NOT NULL DEFAULT 0,
    claimed_by  text,
    lease_until timestamptz,
    finished_at timestamptz,
    CONSTRAINT alert_events_dedup UNIQUE (fingerprint, starts_at, status)
);
CREATE INDEX alert_events_pending ON alert_events (id) WHERE finished_at IS NULL;
CREATE INDEX alert_events_pending_fp ON alert_events (fingerprint, id) WHERE finished_at IS NULL;

-- Incidents: one row each; the timeline and the actions live beside them.
CREATE TABLE incidents (
    id          bigserial PRIMARY KEY,
    pipeline    text        NOT NULL,
    state       text        NOT NULL,
    sev         text        NOT NULL,
    category    text        NOT NULL DEFAULT '',
    team        text        NOT NULL DEFAULT '',
    roles       jsonb       NOT NULL DEFAULT '{}',
    alerts      jsonb       NOT NULL DEFAULT '[]',
    diagnosis   jsonb,
    opened_at   timestamptz NOT NULL,
    resolved_at timestamptz,
    closed_at   timestamptz,
    postmortem  text
);
CREATE INDEX incidents_pipeline ON incidents (pipeline, id DESC);
-- One incident per pipeline that is not closed, whichever replica creates it.
CREATE UNIQUE INDEX incidents_one_open ON incidents (pipeline) WHERE state <> 'closed';

-- The timeline is append-only: saving an incident adds the entries not yet
-- stored, so entries written by another replica (a takeover) are kept.
CREATE TABLE incident_timeline (
    id          bigserial PRIMARY KEY,
    incident_id bigint      NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL,
    event       text        NOT NULL,
    detail      text        NOT NULL  -- JSON text, compared verbatim when merging
);
CREATE INDEX incident_timeline_incident ON incident_timeline (incident_id, at, id);

-- The action ledger: one row per (incident, step), claimed exactly once;
-- a running claim whose lease ran out may be taken over by another worker.
CREATE TABLE actions (
    incident_id bigint      NOT NULL,
    step        text        NOT NULL,
    pipeline    text        NOT NULL,
    strategy    text        NOT NULL,
    action      text        NOT NULL,
    target      text        NOT NULL,
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    outcome     text        NOT NULL DEFAULT 'running',
    retryable   boolean     NOT NULL DEFAULT false,
    verified    boolean,
    detail      text        NOT NULL DEFAULT '',
    worker      text        NOT NULL DEFAULT '',
    lease_until timestamptz NOT NULL,
    takeovers   integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (incident_id, step)
);
CREATE INDEX actions_started ON actions (started_at);
CREATE INDEX actions_pipeline_started ON actions (pipeline, started_at);

-- ping() writes here: proof that the store can commit now.
CREATE TABLE store_heartbeat (
    id integer PRIMARY KEY,
    at timestamptz NOT NULL
);
