-- v7: the identity on each decision, indexed, so a pull reads the
-- identity's newest decisions (device journal) in O(50) instead of
-- joining every request the identity ever had. PostgreSQL has no rowid:
-- `seq` is the journal's cursor (SQLite uses the rowid).
ALTER TABLE decisions ADD COLUMN identity_id BYTEA;
UPDATE decisions SET identity_id =
    (SELECT r.identity_id FROM requests r WHERE r.id = decisions.request_id);
ALTER TABLE decisions ADD COLUMN seq BIGINT GENERATED ALWAYS AS IDENTITY;
CREATE INDEX decisions_by_identity ON decisions(identity_id, seq);
