-- v8: support agents with their own tokens and roles, and the append-only
-- audit of every admin action (see docs/protocol.md, "Admin API roles").
CREATE TABLE agents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('support', 'administrator')),
    token_sha256 BLOB NOT NULL UNIQUE,
    created_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER
);

CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    -- NULL for the bootstrap administrator (the admin-token file).
    agent_id INTEGER REFERENCES agents(id),
    agent_name TEXT NOT NULL,
    action TEXT NOT NULL,
    identity_id BLOB,
    service_provider_id BLOB,
    target_agent_id INTEGER,
    reason TEXT,
    outcome TEXT NOT NULL
);
CREATE INDEX audit_by_identity ON audit(identity_id, id) WHERE identity_id IS NOT NULL;

-- Append-only: no statement may change or remove an audit row.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit is append-only');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit is append-only');
END;

-- The audit row behind a person's event (a block or unblock by support).
ALTER TABLE security_events ADD COLUMN audit_id INTEGER REFERENCES audit(id);
