-- v1: identities, activation codes, authenticators, service providers,
-- requests with their decisions, and the nonces seen (replay protection).
-- PostgreSQL's dialect of migrations/sqlite/0001_initial.sql: ids and
-- hashes are BYTEA, times and counts BIGINT (Unix milliseconds), flags
-- BOOLEAN.
CREATE TABLE identities (
    id BYTEA PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL,
    user_id_folded TEXT NOT NULL UNIQUE,
    display_name TEXT,
    blocked BOOLEAN NOT NULL DEFAULT FALSE,
    created_at_ms BIGINT NOT NULL
);
CREATE TABLE activation_codes (
    identity_id BYTEA PRIMARY KEY NOT NULL REFERENCES identities(id),
    code_sha256 BYTEA NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    tries BIGINT NOT NULL DEFAULT 0,
    used BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE TABLE authenticators (
    id BYTEA PRIMARY KEY NOT NULL,
    identity_id BYTEA NOT NULL REFERENCES identities(id),
    device_public_key BYTEA NOT NULL,
    pin_public_key BYTEA NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('active', 'locked')),
    failed_pin_count BIGINT NOT NULL DEFAULT 0,
    last_counter BIGINT NOT NULL DEFAULT 0,
    activated_at_ms BIGINT NOT NULL
);
CREATE INDEX authenticators_by_identity ON authenticators(identity_id);
CREATE TABLE service_providers (
    id BYTEA PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    api_key_sha256 BYTEA NOT NULL UNIQUE,
    created_at_ms BIGINT NOT NULL
);
CREATE TABLE requests (
    id BYTEA PRIMARY KEY NOT NULL,
    identity_id BYTEA NOT NULL REFERENCES identities(id),
    service_provider_id BYTEA NOT NULL REFERENCES service_providers(id),
    envelope TEXT NOT NULL,
    envelope_signature BYTEA NOT NULL,
    binding_code TEXT,
    status TEXT NOT NULL CHECK (status IN
        ('pending', 'approved', 'denied', 'fraud_reported', 'cancelled')),
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
CREATE INDEX requests_pending ON requests(identity_id, expires_at_ms)
    WHERE status = 'pending';
CREATE TABLE decisions (
    request_id BYTEA PRIMARY KEY NOT NULL REFERENCES requests(id),
    authenticator_id BYTEA NOT NULL REFERENCES authenticators(id),
    outcome TEXT NOT NULL,
    counter BIGINT NOT NULL,
    decision_sha256 BYTEA NOT NULL,
    receipt TEXT NOT NULL,
    decided_at_ms BIGINT NOT NULL
);
CREATE TABLE nonces (
    nonce BYTEA PRIMARY KEY NOT NULL,
    keep_until_ms BIGINT NOT NULL
);
