-- v4: new devices added from an existing device. The id is the
-- authenticator id the new device gets; identity_id is NULL for a
-- decoy (answered like a real enrolment, never approvable).
CREATE TABLE device_enrolments (
    id BLOB PRIMARY KEY NOT NULL,
    identity_id BLOB REFERENCES identities(id),
    request_id BLOB REFERENCES requests(id),
    device_public_key BLOB NOT NULL,
    pin_public_key BLOB NOT NULL,
    code TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN
        ('awaiting_approval', 'waiting', 'activated', 'cancelled')),
    requested_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    wait_ms INTEGER NOT NULL,
    usable_at_ms INTEGER,
    closed_at_ms INTEGER
);
CREATE INDEX device_enrolments_by_identity
    ON device_enrolments(identity_id, requested_at_ms);
CREATE INDEX device_enrolments_by_request ON device_enrolments(request_id)
    WHERE request_id IS NOT NULL;
CREATE INDEX device_enrolments_by_key ON device_enrolments(device_public_key);
