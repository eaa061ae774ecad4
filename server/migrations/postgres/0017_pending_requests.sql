-- v17: a decision's update of its request's status made HOT (docs/scaling.md,
-- "The request's status update made HOT"). The partial index
-- requests_pending named `status` in its predicate, so every decision wrote
-- a new row version of its request and an entry in each of the table's
-- three other indexes (PostgreSQL updates a row in place, "HOT", only when
-- no indexed column, predicate included, changes). The pending requests of
-- a person are now found through pending_requests instead: one row per
-- request whose status is 'pending' (expired or not, as the partial index
-- held them), inserted in the same statement as its request and deleted in
-- the same transaction as any update that moves its status away from
-- 'pending'. Its key orders a person's rows by expiry, so a read of the
-- unexpired ones visits those only, as the partial index did; `status` on
-- `requests` stays the truth, and every read still checks it. No foreign
-- key: a request is never deleted, and its row is written in the same
-- statement as the request (a key check would lock the request's row and
-- write WAL at every creation for nothing).
CREATE TABLE pending_requests (
    identity_id BYTEA NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    request_id BYTEA NOT NULL,
    PRIMARY KEY (identity_id, expires_at_ms, request_id)
);
INSERT INTO pending_requests (identity_id, expires_at_ms, request_id)
    SELECT identity_id, expires_at_ms, id FROM requests WHERE status = 'pending';
DROP INDEX requests_pending;
-- Room on each new page for a decided request's new version, so its update
-- stays on the page (HOT); pages already full fill up again as vacuum
-- frees them.
ALTER TABLE requests SET (fillfactor = 90);
-- eid_decide of 0015, which now also deletes the request's pending row
-- with the status update (one statement); everything else as before.
CREATE OR REPLACE FUNCTION eid_decide(
    p_request_id BYTEA,
    p_authenticator_id BYTEA,
    p_identity_id BYTEA,
    p_outcome TEXT,
    p_counter BIGINT,
    p_decision_sha256 BYTEA,
    p_receipt TEXT,
    p_decided_at_ms BIGINT,
    p_call_verdict TEXT,
    p_new_status TEXT,
    p_pin_verified BOOLEAN,
    -- The facts the server judged.
    e_service_provider_id BYTEA,
    e_status TEXT,
    e_expires_at_ms BIGINT,
    e_active BOOLEAN,
    e_last_counter BIGINT,
    e_blocked BOOLEAN,
    e_notify_every_use BOOLEAN,
    -- What it returns: whether it wrote, and the facts it found.
    OUT o_written BOOLEAN,
    OUT o_request_found BOOLEAN,
    OUT o_status TEXT,
    OUT o_expires_at_ms BIGINT,
    OUT o_follow_up BOOLEAN,
    OUT o_authenticator_found BOOLEAN,
    OUT o_identity_id BYTEA,
    OUT o_active BOOLEAN,
    OUT o_last_counter BIGINT,
    OUT o_blocked BOOLEAN,
    OUT o_notify_every_use BOOLEAN
) LANGUAGE plpgsql AS $$
DECLARE
    provider BYTEA;
    owner BYTEA;
BEGIN
    o_written := FALSE;
    SELECT r.status, r.expires_at_ms, r.service_provider_id, r.identity_id
        INTO o_status, o_expires_at_ms, provider, owner
        FROM requests r WHERE r.id = p_request_id FOR UPDATE;
    o_request_found := FOUND;
    IF NOT o_request_found THEN
        RETURN;
    END IF;
    SELECT a.identity_id, a.state = 'active', a.last_counter, i.blocked, i.notify_every_use
        INTO o_identity_id, o_active, o_last_counter, o_blocked, o_notify_every_use
        FROM authenticators a JOIN identities i ON i.id = a.identity_id
        WHERE a.id = p_authenticator_id FOR UPDATE OF a, i;
    o_authenticator_found := FOUND;
    -- Read after the request's lock: an enrolment names its request from
    -- the request's creation on; a code device's activation and a webhook
    -- are as in the server's longer path (server/src/store/postgres/requests.rs).
    -- A provider other than the one judged (the server decides by it
    -- whether a self-service change follows) is left to the longer path too.
    o_follow_up := provider IS DISTINCT FROM e_service_provider_id
        OR EXISTS (SELECT 1 FROM decisions d WHERE d.request_id = p_request_id)
        OR EXISTS (SELECT 1 FROM code_devices c
                   WHERE c.pending_request_id = p_request_id AND c.state = 'unassigned')
        OR EXISTS (SELECT 1 FROM device_enrolments e
                   WHERE e.request_id = p_request_id AND e.state = 'awaiting_approval')
        OR EXISTS (SELECT 1 FROM webhooks w WHERE w.service_provider_id = provider);
    IF o_follow_up OR NOT o_authenticator_found
        OR o_status IS DISTINCT FROM e_status
        OR o_expires_at_ms IS DISTINCT FROM e_expires_at_ms
        OR o_identity_id IS DISTINCT FROM p_identity_id
        OR o_active IS DISTINCT FROM e_active
        OR o_last_counter IS DISTINCT FROM e_last_counter
        OR o_blocked IS DISTINCT FROM e_blocked
        OR o_notify_every_use IS DISTINCT FROM e_notify_every_use
    THEN
        RETURN;
    END IF;
    INSERT INTO decisions (request_id, authenticator_id, outcome, counter, decision_sha256,
                           receipt, decided_at_ms, identity_id, call_verdict)
        VALUES (p_request_id, p_authenticator_id, p_outcome, p_counter, p_decision_sha256,
                p_receipt, p_decided_at_ms, p_identity_id, p_call_verdict);
    WITH no_longer_pending AS (
        DELETE FROM pending_requests
        WHERE identity_id = owner AND expires_at_ms = o_expires_at_ms
            AND request_id = p_request_id
    )
    UPDATE requests SET status = p_new_status WHERE id = p_request_id;
    IF p_pin_verified THEN
        UPDATE authenticators SET last_counter = p_counter, failed_pin_count = 0
            WHERE id = p_authenticator_id;
    ELSE
        UPDATE authenticators SET last_counter = p_counter WHERE id = p_authenticator_id;
    END IF;
    o_written := TRUE;
END;
$$;
