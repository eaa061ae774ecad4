-- v5: self-service changes (phone, e-mail, user ID). A change moves
-- through its self-service login requests; the decision that approves
-- or refuses one updates the change in the same transaction.
CREATE TABLE self_service_changes (
    id BYTEA PRIMARY KEY NOT NULL,
    identity_id BYTEA NOT NULL REFERENCES identities(id),
    kind TEXT NOT NULL CHECK (kind IN ('phone', 'email', 'user_id')),
    new_value TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('awaiting_first_login', 'waiting_second_login',
        'awaiting_second_login', 'completed', 'cancelled', 'expired', 'failed')),
    gap_ms BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    first_request_id BYTEA NOT NULL UNIQUE REFERENCES requests(id),
    first_expires_at_ms BIGINT NOT NULL,
    first_login_at_ms BIGINT,
    earliest_second_login_at_ms BIGINT,
    second_request_id BYTEA UNIQUE REFERENCES requests(id),
    second_expires_at_ms BIGINT,
    failure_code TEXT,
    failure_message TEXT,
    closed_at_ms BIGINT
);
CREATE INDEX self_service_changes_open ON self_service_changes(identity_id)
    WHERE state IN ('awaiting_first_login', 'waiting_second_login', 'awaiting_second_login');
