-- v6: flood limits. Sliding-window counts of request creation per
-- identity and per relying party, and the cool-down after a fraud
-- report: one row per (identity, provider), set by the report.
CREATE INDEX requests_by_identity_created ON requests(identity_id, created_at_ms);
CREATE INDEX requests_by_provider_created ON requests(service_provider_id, created_at_ms);
CREATE TABLE fraud_holds (
    identity_id BYTEA NOT NULL REFERENCES identities(id),
    service_provider_id BYTEA NOT NULL REFERENCES service_providers(id),
    reported_at_ms BIGINT NOT NULL,
    notified BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (identity_id, service_provider_id)
);
