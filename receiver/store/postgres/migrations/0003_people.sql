-- People act on incidents (issue 18): who acknowledged it, a recovery step
-- waiting for approval, the closing review, and a save counter the lifecycle
-- uses to notice a person's concurrent write. Timeline entries name the person.
ALTER TABLE incidents
    ADD COLUMN acknowledged_at  timestamptz,
    ADD COLUMN acknowledged_by  text,
    ADD COLUMN pending_approval jsonb,
    ADD COLUMN review           jsonb,
    ADD COLUMN version          integer NOT NULL DEFAULT 0;
ALTER TABLE incident_timeline ADD COLUMN by_person text;
