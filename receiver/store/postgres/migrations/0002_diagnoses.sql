-- Every diagnosis of an incident, in order (an alert joining with another
-- cause adds one); ``diagnosis`` stays the deciding one.
ALTER TABLE incidents ADD COLUMN diagnoses jsonb NOT NULL DEFAULT '[]';
UPDATE incidents SET diagnoses = jsonb_build_array(diagnosis) WHERE diagnosis IS NOT NULL;
-- The number (1-based, in incidents.diagnoses) of the diagnosis that decided a step.
ALTER TABLE actions ADD COLUMN diagnosis integer;
