-- v11: several API keys per service provider (rotation with a grace
-- period, revocation), and an optional signed webhook per provider with
-- its delivery queue: a delivery row is written in the same transaction as
-- the decision or cancellation it tells about (an outbox, like the
-- security events), and a dispatcher works it off.
CREATE TABLE api_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service_provider_id BLOB NOT NULL REFERENCES service_providers(id),
    key_sha256 BLOB NOT NULL UNIQUE,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER,
    revoked_at_ms INTEGER
);
CREATE INDEX api_keys_by_provider ON api_keys(service_provider_id);
-- Every registered provider keeps the key it has (the built-in
-- self-service provider has none: its stored hash is all zeroes).
INSERT INTO api_keys (service_provider_id, key_sha256, created_at_ms)
    SELECT id, api_key_sha256, created_at_ms FROM service_providers
    WHERE id != zeroblob(16) ORDER BY created_at_ms, id;
CREATE TABLE webhooks (
    service_provider_id BLOB PRIMARY KEY NOT NULL REFERENCES service_providers(id),
    url TEXT NOT NULL,
    secret BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service_provider_id BLOB NOT NULL REFERENCES service_providers(id),
    request_id BLOB NOT NULL,
    status TEXT NOT NULL,
    decided_at_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    delivered_at_ms INTEGER,
    last_error TEXT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt_ms)
    WHERE delivered_at_ms IS NULL;
