-- v17: a request's creation in one statement (docs/scaling.md, "A request's
-- creation in one round trip"), for the creations that rest on the
-- identity's row lock (no per-provider window on; those run SERIALIZABLE
-- as before). The rules stay in the server (server/src/policy.rs): the
-- function locks the identity's row (an UPDATE to itself, as every writer
-- that adds a pending request for the identity does first), then, in a
-- statement whose READ COMMITTED snapshot is taken with that lock held,
-- reads the facts the rules judge (the blocked flag, the pending count,
-- the fraud hold's row, each per-identity window's count) and inserts the
-- request only when a guard of allowed facts holds: not blocked, fewer
-- pending than the cap, no hold's row at all, every window below its
-- limit. It answers the identity's row and the facts its guard saw, which
-- the server judges with the rules as before. Called as one statement in
-- its own transaction: its answer comes after the durable COMMIT.
CREATE FUNCTION eid_create_request(
    p_id BYTEA,
    p_identity_id BYTEA,
    p_service_provider_id BYTEA,
    p_envelope TEXT,
    p_envelope_signature BYTEA,
    p_binding_code TEXT,
    p_created_at_ms BIGINT,
    p_expires_at_ms BIGINT,
    p_now_ms BIGINT,
    p_max_pending BIGINT,
    -- Whether fraud holds are on (their row is read only then).
    p_holds BOOLEAN,
    -- The per-identity windows: each one's start and limit, in order.
    p_window_starts BIGINT[],
    p_window_limits BIGINT[],
    -- No identity: o_found is FALSE and nothing else is set.
    OUT o_found BOOLEAN,
    -- The identity's row under the lock (IDENTITY_COLUMNS).
    OUT o_id BYTEA,
    OUT o_user_id TEXT,
    OUT o_user_id_folded TEXT,
    OUT o_display_name TEXT,
    OUT o_blocked BOOLEAN,
    OUT o_created_at_ms BIGINT,
    OUT o_phone TEXT,
    OUT o_email TEXT,
    OUT o_notify_every_use BOOLEAN,
    -- The facts the guard saw, and whether it inserted (0 or 1).
    OUT f_blocked BOOLEAN,
    OUT f_pending BIGINT,
    OUT f_reported_at_ms BIGINT,
    OUT f_notified BOOLEAN,
    OUT f_inserted BIGINT,
    OUT f_windows BIGINT[]
) LANGUAGE plpgsql AS $$
BEGIN
    IF cardinality(p_window_starts) IS DISTINCT FROM cardinality(p_window_limits) THEN
        RAISE EXCEPTION 'eid_create_request: window starts and limits differ in number';
    END IF;
    UPDATE identities SET blocked = blocked WHERE id = p_identity_id
        RETURNING id, user_id, user_id_folded, display_name, blocked, created_at_ms, phone,
            email, notify_every_use
        INTO o_id, o_user_id, o_user_id_folded, o_display_name, o_blocked, o_created_at_ms,
            o_phone, o_email, o_notify_every_use;
    o_found := FOUND;
    IF NOT o_found THEN
        RETURN;
    END IF;
    -- A new statement: at READ COMMITTED its snapshot is taken now, with
    -- the identity's lock held, so every committed request of the identity
    -- is counted and none can be added until this transaction ends.
    WITH f AS MATERIALIZED (
        SELECT i.blocked,
            (SELECT COUNT(*) FROM requests WHERE identity_id = p_identity_id
                AND status = 'pending' AND expires_at_ms > p_now_ms) AS pending,
            h.reported_at_ms, h.notified,
            ARRAY(SELECT (SELECT COUNT(*) FROM requests WHERE identity_id = p_identity_id
                    AND created_at_ms > w.start
                    AND service_provider_id != decode('00000000000000000000000000000000', 'hex'))
                FROM unnest(p_window_starts) WITH ORDINALITY AS w (start, k)
                ORDER BY w.k) AS windows
        FROM identities i
        LEFT JOIN fraud_holds h ON p_holds AND h.identity_id = i.id
            AND h.service_provider_id = p_service_provider_id
        WHERE i.id = p_identity_id
    ), ins AS (
        INSERT INTO requests (id, identity_id, service_provider_id, envelope,
            envelope_signature, binding_code, status, created_at_ms, expires_at_ms)
        SELECT p_id, p_identity_id, p_service_provider_id, p_envelope, p_envelope_signature,
            p_binding_code, 'pending', p_created_at_ms, p_expires_at_ms
        FROM f
        WHERE NOT f.blocked AND f.pending < p_max_pending AND f.reported_at_ms IS NULL
            AND NOT EXISTS (SELECT 1 FROM unnest(f.windows, p_window_limits) AS c (n, lim)
                WHERE c.n >= c.lim)
        RETURNING 1
    )
    SELECT f.blocked, f.pending, f.reported_at_ms, f.notified, (SELECT COUNT(*) FROM ins),
        f.windows
    INTO f_blocked, f_pending, f_reported_at_ms, f_notified, f_inserted, f_windows
    FROM f;
END
$$;
