-- v16: the same constraints, written so that SQLite checks them without a
-- temporary table. SQLite tests `x IN (more than two constants)` against a
-- temporary B-tree that it builds and drops at every run of a statement
-- that checks the constraint: every request's insert and status update and
-- every decision's insert (docs/benchmarks.md, "Sixth pass"). The same sets
-- written as `x = 'a' OR x = 'b' ...` are tested by comparisons. The columns
-- are NOT NULL, of TEXT affinity and compared with the BINARY collation
-- either way, so the constraints accept and refuse exactly the same values.
--
-- SQLite cannot change a table's CHECK in place, so both tables are rebuilt
-- by the documented procedure ("Making Other Kinds Of Table Schema
-- Changes"): the server opens the database with foreign keys off while it
-- migrates (they cannot be switched inside the migration's transaction),
-- each table is copied into a new one with its rowids (the decisions'
-- journal cursor is the rowid), the old one dropped, the new one renamed
-- and its indexes made again; `PRAGMA foreign_key_check` runs before the
-- migration commits. No trigger or view refers to either table.

CREATE TABLE requests_v16 (
    id BLOB PRIMARY KEY NOT NULL,
    identity_id BLOB NOT NULL REFERENCES identities(id),
    service_provider_id BLOB NOT NULL REFERENCES service_providers(id),
    envelope TEXT NOT NULL,
    envelope_signature BLOB NOT NULL,
    binding_code TEXT,
    status TEXT NOT NULL CHECK (status = 'pending' OR status = 'approved'
        OR status = 'denied' OR status = 'fraud_reported' OR status = 'cancelled'),
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    binding_failures INTEGER NOT NULL DEFAULT 0
);
INSERT INTO requests_v16 (rowid, id, identity_id, service_provider_id, envelope,
        envelope_signature, binding_code, status, created_at_ms, expires_at_ms,
        binding_failures)
    SELECT rowid, id, identity_id, service_provider_id, envelope,
        envelope_signature, binding_code, status, created_at_ms, expires_at_ms,
        binding_failures
    FROM requests;
DROP TABLE requests;
ALTER TABLE requests_v16 RENAME TO requests;
CREATE INDEX requests_pending ON requests(identity_id, expires_at_ms)
    WHERE status = 'pending';
CREATE INDEX requests_by_identity_created ON requests(identity_id, created_at_ms);
CREATE INDEX requests_by_provider_created ON requests(service_provider_id, created_at_ms);

CREATE TABLE decisions_v16 (
    request_id BLOB PRIMARY KEY NOT NULL REFERENCES requests(id),
    authenticator_id BLOB NOT NULL REFERENCES authenticators(id),
    outcome TEXT NOT NULL,
    counter INTEGER NOT NULL,
    decision_sha256 BLOB NOT NULL,
    receipt TEXT NOT NULL,
    decided_at_ms INTEGER NOT NULL,
    identity_id BLOB,
    call_verdict TEXT NOT NULL DEFAULT 'clear' CHECK (call_verdict = 'clear'
        OR call_verdict = 'allowed' OR call_verdict = 'flagged')
);
INSERT INTO decisions_v16 (rowid, request_id, authenticator_id, outcome, counter,
        decision_sha256, receipt, decided_at_ms, identity_id, call_verdict)
    SELECT rowid, request_id, authenticator_id, outcome, counter,
        decision_sha256, receipt, decided_at_ms, identity_id, call_verdict
    FROM decisions;
DROP TABLE decisions;
ALTER TABLE decisions_v16 RENAME TO decisions;
CREATE INDEX decisions_by_identity ON decisions(identity_id);
