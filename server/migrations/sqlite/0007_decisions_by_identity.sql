-- v7: the identity on each decision, indexed, so a pull reads the
-- identity's newest decisions (device journal) in O(50) instead of
-- joining every request the identity ever had.
ALTER TABLE decisions ADD COLUMN identity_id BLOB;
UPDATE decisions SET identity_id =
    (SELECT r.identity_id FROM requests r WHERE r.id = decisions.request_id);
CREATE INDEX decisions_by_identity ON decisions(identity_id);
