-- v12: code devices (code displays and audio code readers: TOTP hardware,
-- see docs/authenticators.md), the manufacturer's batches they arrive in,
-- and the login method of each OpenID Connect login with its completion
-- by a hardware authenticator.
CREATE TABLE token_batches (
    id BYTEA PRIMARY KEY,
    -- The PSKC document's Id, or the importer's label.
    label TEXT NOT NULL,
    imported_at_ms BIGINT NOT NULL,
    device_count BIGINT NOT NULL
);

CREATE TABLE code_devices (
    -- The manufacturer's serial number, as printed on the device.
    serial TEXT PRIMARY KEY,
    batch_id BYTEA NOT NULL REFERENCES token_batches(id),
    kind TEXT NOT NULL CHECK (kind IN ('code_display', 'code_reader')),
    algorithm TEXT NOT NULL CHECK (algorithm IN ('sha1', 'sha256')),
    digits BIGINT NOT NULL CHECK (digits = 6),
    step_secs BIGINT NOT NULL CHECK (step_secs IN (30, 60)),
    -- AES-256-GCM under the key-encryption key (a key file, never here),
    -- the serial as associated data: nonce || ciphertext || tag.
    sealed_seed BYTEA NOT NULL,
    identity_id BYTEA REFERENCES identities(id),
    state TEXT NOT NULL CHECK (state IN ('unassigned', 'active', 'deactivated')),
    -- The last time step accepted: no step at or below it passes again.
    last_step BIGINT,
    -- Wrong codes or access codes in a row.
    failures BIGINT NOT NULL DEFAULT 0,
    -- How often it was blocked (the next block lasts longer).
    blocks BIGINT NOT NULL DEFAULT 0,
    blocked_until_ms BIGINT,
    -- Argon2id PHC string of the person's access code.
    access_code_hash TEXT,
    added_at_ms BIGINT NOT NULL,
    activated_at_ms BIGINT,
    last_used_at_ms BIGINT,
    -- An activation waiting for the person's approval in the app (a request
    -- of kind code_device): the request, whose it is, and the access code
    -- chosen; the device stays unassigned until the approval.
    pending_request_id BYTEA UNIQUE,
    pending_identity_id BYTEA REFERENCES identities(id),
    pending_access_code_hash TEXT,
    CHECK ((state = 'unassigned') = (identity_id IS NULL))
);
-- One code device active per identity.
CREATE UNIQUE INDEX code_devices_one_active ON code_devices(identity_id)
    WHERE state = 'active';
CREATE INDEX code_devices_by_identity ON code_devices(identity_id)
    WHERE identity_id IS NOT NULL;

-- The login method chosen on the user-ID step (docs/login-page.md).
ALTER TABLE oidc_logins ADD COLUMN method TEXT NOT NULL DEFAULT 'app';
-- For a hardware method: the identity of the user ID typed, NULL when it is
-- unknown or blocked (the page answers the same either way).
ALTER TABLE oidc_logins ADD COLUMN hardware_identity_id BYTEA;
-- The hardware authenticator whose first factor passed (a code device's
-- serial after its code), awaiting the access code.
ALTER TABLE oidc_logins ADD COLUMN first_factor TEXT;
-- The server-signed hardware receipt (JSON) of a completed login.
ALTER TABLE oidc_logins ADD COLUMN hardware_receipt TEXT;
