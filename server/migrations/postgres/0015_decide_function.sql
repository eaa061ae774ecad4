-- v15: a decision in one round trip (docs/scaling.md, "A decision in one
-- round trip"). The
-- rules stay in the server (server/src/policy.rs): the server judges the
-- facts it read (the decision's context) and calls eid_decide with them;
-- the function locks the request, then the authenticator and its identity
-- (the order of the server's other decision path), checks that every fact
-- the server judged is unchanged and that no follow-up applies (an
-- existing decision, an enrolment awaiting the request, a code device's
-- pending activation, the provider's webhook), and only then writes the
-- decision, the request's status and the authenticator's counter. Else it
-- writes nothing and returns the fresh facts, for the server to judge
-- again (or to take its longer path, which runs the follow-ups in the same
-- transaction). Called as one statement in its own transaction: its
-- answer comes after the durable COMMIT.
CREATE FUNCTION eid_decide(
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
BEGIN
    o_written := FALSE;
    SELECT r.status, r.expires_at_ms, r.service_provider_id
        INTO o_status, o_expires_at_ms, provider
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
