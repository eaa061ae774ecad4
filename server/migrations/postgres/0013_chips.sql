-- v13: chips, FIDO2/WebAuthn security keys (see docs/authenticators.md).
-- The credential is webauthn-rs' serialised SecurityKey (public key, counter,
-- flags): nothing in it is secret. The credential id is also kept as its
-- SHA-256 so that one chip can never be registered to two people.
CREATE TABLE chips (
    id BYTEA PRIMARY KEY,
    identity_id BYTEA NOT NULL REFERENCES identities(id),
    credential_id_sha256 BYTEA NOT NULL UNIQUE,
    credential TEXT NOT NULL,
    counter BIGINT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'active', 'blocked', 'deactivated')),
    -- Argon2id PHC string of the chip's access code.
    access_code_hash TEXT NOT NULL,
    registered_at_ms BIGINT NOT NULL,
    -- The end of the waiting period: step 2 (the confirming assertion) is
    -- refused before it.
    active_from_ms BIGINT NOT NULL,
    last_used_at_ms BIGINT,
    -- Wrong access codes (or failed assertions) in a row, and the end of the
    -- lockout they caused.
    failures BIGINT NOT NULL DEFAULT 0,
    blocked_until_ms BIGINT,
    ended_at_ms BIGINT,
    -- Bumped by every write: a write names the revision it read, so two
    -- concurrent uses (on any replica) cannot both move the counter.
    revision BIGINT NOT NULL DEFAULT 0
);
-- One chip per identity at a time (as MitID): a new one only after the old
-- one was deactivated.
CREATE UNIQUE INDEX chips_one_live ON chips(identity_id)
    WHERE state IN ('pending', 'active', 'blocked');

-- WebAuthn ceremonies in progress: the challenge state webauthn-rs needs to
-- check the answer, kept here (never in a cookie the browser could replay),
-- taken once, and void after a few minutes.
CREATE TABLE chip_ceremonies (
    id BYTEA PRIMARY KEY,
    identity_id BYTEA NOT NULL REFERENCES identities(id),
    purpose TEXT NOT NULL,
    -- What the ceremony is for besides the identity (a chip id, a login id).
    subject BYTEA,
    state TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
CREATE INDEX chip_ceremonies_by_expiry ON chip_ceremonies(expires_at_ms);
