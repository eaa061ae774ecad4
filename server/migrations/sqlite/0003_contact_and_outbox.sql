-- v3: contact data, the "notify me on every use" opt-in, the built-in
-- self-service provider, and the security-event outbox: each event row
-- is written in the same transaction as what caused it (so the app's
-- feed, which reads it, never misses one), with one delivery row per
-- out-of-band channel that the dispatcher works off.
ALTER TABLE identities ADD COLUMN phone TEXT;
ALTER TABLE identities ADD COLUMN email TEXT;
ALTER TABLE identities ADD COLUMN notify_every_use INTEGER NOT NULL DEFAULT 0;
INSERT INTO service_providers (id, name, api_key_sha256, created_at_ms)
    VALUES (zeroblob(16), 'eID Selvbetjening', zeroblob(32), 0);
CREATE TABLE security_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    identity_id BLOB NOT NULL REFERENCES identities(id),
    kind TEXT NOT NULL,
    authenticator_id BLOB,
    detail TEXT,
    occurred_at_ms INTEGER NOT NULL
);
CREATE INDEX security_events_by_identity ON security_events(identity_id, id);
CREATE TABLE event_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id INTEGER NOT NULL REFERENCES security_events(id),
    channel TEXT NOT NULL CHECK (channel IN ('sms', 'email')),
    address TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    delivered_at_ms INTEGER,
    last_error TEXT
);
CREATE INDEX event_deliveries_due ON event_deliveries(next_attempt_ms)
    WHERE delivered_at_ms IS NULL;
