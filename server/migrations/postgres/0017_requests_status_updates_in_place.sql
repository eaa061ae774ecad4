-- v17: a decision's status update stays on its page (a HOT update)
-- (docs/scaling.md, "Measured", the database's profile). The partial
-- index requests_pending (migration 0001) named `status` in its predicate,
-- so PostgreSQL could never update a request's status in place: every
-- decision (and every cancellation) wrote a new row version with a new
-- entry in each of the table's four indexes (three of them for a decided
-- request), about 4 of a plain login's 27 WAL records and the matching
-- B-tree work. It is replaced by the same key without the predicate: the
-- pending requests of a person are still found by
-- (identity_id, expires_at_ms > now), and `status = 'pending'` is checked
-- on the few unexpired rows (a person's requests expire within minutes and
-- the flood limits bound how many there are). No index of the table then
-- names `status` (a test checks it), so a status update is HOT whenever
-- its page has room: fillfactor 90 keeps that room on the pages written
-- from now on (a request's row is updated about once, at its decision).
-- The queries are unchanged. On a large table this migration builds the
-- index while holding the table's lock (replicas wait at start); build
-- `requests_unexpired` CONCURRENTLY by hand first and this migration skips
-- the build.
CREATE INDEX IF NOT EXISTS requests_unexpired ON requests(identity_id, expires_at_ms);
DROP INDEX requests_pending;
ALTER TABLE requests SET (fillfactor = 90);
