-- v4: new devices added from an existing device. The id is the
-- authenticator id the new device gets; identity_id is NULL for a
-- decoy (answered like a real enrolment, never approvable).
CREATE TABLE device_enrolments (
    id BYTEA PRIMARY KEY NOT NULL,
    identity_id BYTEA REFERENCES identities(id),
    request_id BYTEA REFERENCES requests(id),
    device_public_key BYTEA NOT NULL,
    pin_public_key BYTEA NOT NULL,
    code TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN
        ('awaiting_approval', 'waiting', 'activated', 'cancelled')),
    requested_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    wait_ms BIGINT NOT NULL,
    usable_at_ms BIGINT,
    closed_at_ms BIGINT
);
CREATE INDEX device_enrolments_by_identity
    ON device_enrolments(identity_id, requested_at_ms);
CREATE INDEX device_enrolments_by_request ON device_enrolments(request_id)
    WHERE request_id IS NOT NULL;
CREATE INDEX device_enrolments_by_key ON device_enrolments(device_public_key);
