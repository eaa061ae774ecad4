-- v9: OpenID Connect clients of service providers (see docs/oidc.md).
-- The client secret is stored only as the SHA-256 of its 32 random bytes;
-- redirect URIs and scopes are JSON arrays of strings, compared exactly.
CREATE TABLE oidc_clients (
    client_id TEXT PRIMARY KEY,
    service_provider_id BYTEA NOT NULL REFERENCES service_providers(id),
    redirect_uris TEXT NOT NULL,
    secret_sha256 BYTEA,
    jwk TEXT,
    scopes TEXT NOT NULL,
    sector TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    -- A client without any means of authenticating could never redeem a code.
    CHECK (secret_sha256 IS NOT NULL OR jwk IS NOT NULL)
);
CREATE INDEX oidc_clients_by_provider ON oidc_clients(service_provider_id);
