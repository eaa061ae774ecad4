-- v1: identities, activation codes, authenticators, service providers,
-- requests with their decisions, and the nonces seen (replay protection).
CREATE TABLE identities (
    id BLOB PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL,
    user_id_folded TEXT NOT NULL UNIQUE,
    display_name TEXT,
    blocked INTEGER NOT NULL DEFAULT 0,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE activation_codes (
    identity_id BLOB PRIMARY KEY NOT NULL REFERENCES identities(id),
    code_sha256 BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    tries INTEGER NOT NULL DEFAULT 0,
    used INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE authenticators (
    id BLOB PRIMARY KEY NOT NULL,
    identity_id BLOB NOT NULL REFERENCES identities(id),
    device_public_key BLOB NOT NULL,
    pin_public_key BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('active', 'locked')),
    failed_pin_count INTEGER NOT NULL DEFAULT 0,
    last_counter INTEGER NOT NULL DEFAULT 0,
    activated_at_ms INTEGER NOT NULL
);
CREATE INDEX authenticators_by_identity ON authenticators(identity_id);
CREATE TABLE service_providers (
    id BLOB PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    api_key_sha256 BLOB NOT NULL UNIQUE,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE requests (
    id BLOB PRIMARY KEY NOT NULL,
    identity_id BLOB NOT NULL REFERENCES identities(id),
    service_provider_id BLOB NOT NULL REFERENCES service_providers(id),
    envelope TEXT NOT NULL,
    envelope_signature BLOB NOT NULL,
    binding_code TEXT,
    status TEXT NOT NULL CHECK (status IN
        ('pending', 'approved', 'denied', 'fraud_reported', 'cancelled')),
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
CREATE INDEX requests_pending ON requests(identity_id, expires_at_ms)
    WHERE status = 'pending';
CREATE TABLE decisions (
    request_id BLOB PRIMARY KEY NOT NULL REFERENCES requests(id),
    authenticator_id BLOB NOT NULL REFERENCES authenticators(id),
    outcome TEXT NOT NULL,
    counter INTEGER NOT NULL,
    decision_sha256 BLOB NOT NULL,
    receipt TEXT NOT NULL,
    decided_at_ms INTEGER NOT NULL
);
CREATE TABLE nonces (
    nonce BLOB PRIMARY KEY NOT NULL,
    keep_until_ms INTEGER NOT NULL
) WITHOUT ROWID;
