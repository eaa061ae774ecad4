-- v10: OpenID Connect logins (see docs/oidc.md), one row from the pushed
-- authorization request to the access token. Every handle a client or
-- browser holds (request_uri, the browser's cookie, the code, the access
-- token) is stored only as its SHA-256: each is 256 random bits, so the
-- hash alone cannot be turned back into a usable handle.
CREATE TABLE oidc_logins (
    id BYTEA PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES oidc_clients(client_id),
    request_uri_sha256 BYTEA NOT NULL UNIQUE,
    -- The checked authorization parameters (JSON).
    params TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    request_uri_expires_at_ms BIGINT NOT NULL,
    -- The end of the whole login; moved to the access token's expiry at
    -- redemption, so the row outlives what it vouches for.
    expires_at_ms BIGINT NOT NULL,
    browser_sha256 BYTEA,
    request_id BYTEA,
    -- When that request expires (also for the stand-in of an unknown user
    -- ID, which has no row of its own).
    request_expires_at_ms BIGINT,
    code_sha256 BYTEA UNIQUE,
    code_expires_at_ms BIGINT,
    redeemed_at_ms BIGINT,
    access_sha256 BYTEA UNIQUE,
    access_expires_at_ms BIGINT,
    revoked BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX oidc_logins_by_expiry ON oidc_logins(expires_at_ms);
