//! Requests and their decisions: creation under the pending cap, the
//! fraud hold and the rate-limit windows, deciding, cancelling, nonces, and
//! the consistent reads of a pull and of a decision.

use eid_protocol::events::SecurityEventKind;
use eid_protocol::wire::{RequestStatus, SignedReceipt};
use eid_protocol::{
    AuthenticatorId, IdentityId, Nonce16, Outcome, RequestEnvelopeBody, RequestId,
    ServiceProviderId, Signature,
};
use tokio_postgres::Row;

use super::changes::{on_self_service_decision, open_changes_of};
use super::columns::{Col, col, get, i64_of};
use super::connection::{Tx, all, exec, one, opt};
use super::enrolments::{ENROLMENT_COLUMNS, LIVE_ENROLMENT, decide_enrolment, enrolment_row};
use super::identities::{load_authenticator, load_identity};
use super::outbox::{EVENT_COLUMNS, event_row, insert_event, lock_identity};
use crate::policy;
use crate::store::{
    CallStop, CancelResult, ChangeKind, CreateResult, DecideResult, DecisionContext,
    DecisionRecord, FeedCursors, LimitScope, NewEvent, PullSnapshot, RequestLimits, StopResult,
    StoreError, StoreResult, StoredRequest, Window,
};

pub(super) const REQUEST_SELECT: &str = "SELECT r.envelope, r.envelope_signature, r.binding_code, r.status, \
     d.authenticator_id, d.outcome, d.counter, d.decision_sha256, d.receipt, d.decided_at_ms, d.call_verdict \
     FROM requests r LEFT JOIN decisions d ON d.request_id = r.id";

pub(super) fn request_row(row: &Row) -> StoreResult<StoredRequest> {
    let envelope_json: &str = get(row, 0)?;
    let envelope: RequestEnvelopeBody = serde_json::from_str(envelope_json)?;
    let sig: Vec<u8> = get(row, 1)?;
    let decision = match get::<Option<&[u8]>>(row, 4)? {
        None => None,
        Some(_) => {
            let receipt_json: &str = get(row, 8)?;
            let receipt: SignedReceipt = serde_json::from_str(receipt_json)?;
            Some(DecisionRecord {
                authenticator_id: col(row, 4)?,
                outcome: col(row, 5)?,
                counter: col(row, 6)?,
                decision_sha256: col(row, 7)?,
                receipt,
                decided_at_ms: col(row, 9)?,
                call_verdict: col(row, 10)?,
            })
        }
    };
    Ok(StoredRequest {
        envelope,
        envelope_signature: Signature(sig),
        binding_code: get(row, 2)?,
        status: col(row, 3)?,
        decision,
    })
}

pub(super) async fn load_request(t: &Tx<'_>, id: &RequestId) -> StoreResult<Option<StoredRequest>> {
    opt(t, &format!("{REQUEST_SELECT} WHERE r.id = $1"), &[&Col(id)])
        .await?
        .map(|r| request_row(&r))
        .transpose()
}

pub(super) async fn insert_request(
    t: &Tx<'_>,
    request: &StoredRequest,
    envelope_json: &str,
) -> StoreResult<()> {
    let e = &request.envelope;
    exec(
        t,
        "INSERT INTO requests (id, identity_id, service_provider_id, envelope, envelope_signature, \
         binding_code, status, created_at_ms, expires_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8)",
        &[
            &Col(e.request_id),
            &Col(e.identity_id),
            &Col(e.service_provider_id),
            &envelope_json,
            &request.envelope_signature.0,
            &request.binding_code,
            &i64_of(e.created_at_ms),
            &i64_of(e.expires_at_ms),
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn pending_count(
    t: &Tx<'_>,
    identity_id: &IdentityId,
    now_ms: u64,
) -> StoreResult<u64> {
    let row = one(
        t,
        "SELECT COUNT(*) FROM requests WHERE identity_id = $1 AND status = 'pending' AND expires_at_ms > $2",
        &[&Col(identity_id), &i64_of(now_ms)],
    )
    .await?;
    col(&row, 0)
}

/// Cancels a pending request (a change's login request); returns whether it was pending.
pub(super) async fn cancel_pending_request(t: &Tx<'_>, id: &RequestId) -> StoreResult<bool> {
    let n = exec(
        t,
        "UPDATE requests SET status = 'cancelled' WHERE id = $1 AND status = 'pending'",
        &[&Col(id)],
    )
    .await?;
    Ok(n == 1)
}

/// The cool-down after a fraud report ([`policy::fraud_hold`]):
/// `Some(CoolingDown)` while the provider is held for the identity. The
/// first refusal of a hold records a `requests_held` event.
async fn fraud_hold(
    t: &Tx<'_>,
    e: &RequestEnvelopeBody,
    hold_ms: u64,
    now_ms: u64,
) -> StoreResult<Option<CreateResult>> {
    let identity = Col(e.identity_id);
    let provider = Col(e.service_provider_id);
    // Holds off: no need to read the row.
    let hold = if hold_ms == 0 {
        None
    } else {
        match opt(
            t,
            "SELECT reported_at_ms, notified FROM fraud_holds \
             WHERE identity_id = $1 AND service_provider_id = $2",
            &[&identity, &provider],
        )
        .await?
        {
            Some(r) => Some(policy::FraudHold {
                reported_at_ms: col(&r, 0)?,
                notified: get(&r, 1)?,
            }),
            None => None,
        }
    };
    let policy::HoldCheck::Held {
        retry_after_ms,
        notify,
    } = policy::fraud_hold(hold, hold_ms, now_ms)
    else {
        return Ok(None);
    };
    if notify {
        exec(
            t,
            "UPDATE fraud_holds SET notified = TRUE WHERE identity_id = $1 AND service_provider_id = $2",
            &[&identity, &provider],
        )
        .await?;
        insert_event(
            t,
            &NewEvent {
                identity_id: e.identity_id,
                kind: SecurityEventKind::RequestsHeld,
                authenticator_id: None,
                detail: Some(e.service_provider_name.clone()),
                occurred_at_ms: now_ms,
                extra_recipients: Vec::new(),
            },
        )
        .await?;
    }
    Ok(Some(CreateResult::CoolingDown { retry_after_ms }))
}

/// How long until one more request fits `window` ([`policy::window_full`],
/// [`policy::window_wait`]), given the creation times matched by `sql` (`$1`
/// the identity or provider, `$2` the window start, `$3` the count to skip):
/// `None` while it fits now.
async fn window_wait(
    t: &Tx<'_>,
    sql: &str,
    key: &[u8],
    window: Window,
    now_ms: u64,
) -> StoreResult<Option<u64>> {
    if window.limit == 0 {
        // Off: skip the count.
        return Ok(None);
    }
    let start = policy::window_start(window, now_ms);
    let row = one(
        t,
        &format!("SELECT COUNT(*) {sql}"),
        &[&key, &i64_of(start)],
    )
    .await?;
    let count: u64 = col(&row, 0)?;
    let Some(skip) = policy::window_full(window, count) else {
        return Ok(None);
    };
    let leaving = match opt(
        t,
        &format!("SELECT created_at_ms {sql} ORDER BY created_at_ms LIMIT 1 OFFSET $3"),
        &[&key, &i64_of(start), &i64_of(skip)],
    )
    .await?
    {
        Some(r) => Some(col::<u64>(&r, 0)?),
        None => None,
    };
    Ok(Some(policy::window_wait(window, leaving, now_ms)))
}

/// The rate limits: `Some(RateLimited)` when a window is full.
async fn rate_limited(
    t: &Tx<'_>,
    e: &RequestEnvelopeBody,
    limits: &RequestLimits,
    now_ms: u64,
) -> StoreResult<Option<CreateResult>> {
    const BY_IDENTITY: &str = "FROM requests WHERE identity_id = $1 AND created_at_ms > $2 \
        AND service_provider_id != decode('00000000000000000000000000000000', 'hex')";
    const BY_PROVIDER: &str = "FROM requests WHERE service_provider_id = $1 AND created_at_ms > $2";
    let checks = limits
        .per_identity
        .iter()
        .map(|w| {
            (
                LimitScope::Identity,
                BY_IDENTITY,
                e.identity_id.as_bytes(),
                *w,
            )
        })
        .chain(limits.per_provider.iter().map(|w| {
            (
                LimitScope::Provider,
                BY_PROVIDER,
                e.service_provider_id.as_bytes(),
                *w,
            )
        }));
    let mut waits = Vec::new();
    for (scope, sql, key, window) in checks {
        if let Some(wait) = window_wait(t, sql, key.as_slice(), window, now_ms).await? {
            waits.push((scope, wait));
        }
    }
    Ok(
        policy::longest_wait(waits).map(|(scope, retry_after_ms)| CreateResult::RateLimited {
            scope,
            retry_after_ms,
        }),
    )
}

/// The transaction of [`Store::pull_snapshot`](crate::store::Store::pull_snapshot).
pub(super) async fn pull_snapshot(
    t: &Tx<'_>,
    authenticator_ids: &[AuthenticatorId],
    feed: &FeedCursors,
    decisions_after: &[u64],
    now_ms: u64,
) -> StoreResult<PullSnapshot> {
    let mut authenticators = Vec::with_capacity(authenticator_ids.len());
    for id in authenticator_ids {
        authenticators.push(load_authenticator(t, id).await?);
    }
    let mut identities = Vec::with_capacity(authenticators.len());
    for a in &authenticators {
        identities.push(match a {
            Some(a) => load_identity(t, &a.identity_id).await?,
            None => None,
        });
    }
    let mut seen = Vec::new();
    let mut pending = Vec::new();
    let pending_sql = format!(
        "{REQUEST_SELECT} WHERE r.identity_id = $1 AND r.status = 'pending' AND r.expires_at_ms > $2 \
         ORDER BY r.created_at_ms"
    );
    for identity in identities.iter().flatten().filter(|i| !i.blocked) {
        // Two authenticators of one identity on the same phone share it.
        if seen.contains(&identity.id) {
            continue;
        }
        seen.push(identity.id);
        for r in all(t, &pending_sql, &[&Col(identity.id), &i64_of(now_ms)]).await? {
            pending.push(request_row(&r)?);
        }
    }
    let mut enrolments = Vec::new();
    let enrolment_sql = format!(
        "SELECT {ENROLMENT_COLUMNS} FROM device_enrolments e WHERE e.identity_id = $1 AND {LIVE_ENROLMENT} \
         ORDER BY e.requested_at_ms"
    );
    for identity in &seen {
        for r in all(t, &enrolment_sql, &[&Col(identity), &i64_of(now_ms)]).await? {
            enrolments.push(enrolment_row(&r)?);
        }
    }
    // One indexed range read per account (same snapshot as the requests),
    // oldest first: paging phones get the oldest events above the cursor,
    // older phones the newest.
    let newest = matches!(feed, FeedCursors::NewestAbove(_));
    let order = if newest { "DESC" } else { "ASC" };
    let feed_sql = format!(
        "SELECT {EVENT_COLUMNS} FROM security_events WHERE identity_id = $1 AND id > $2 \
         ORDER BY id {order} LIMIT $3"
    );
    let mut events = Vec::with_capacity(authenticators.len());
    for (i, auth) in authenticators.iter().enumerate() {
        let Some(auth) = auth else {
            events.push(Vec::new());
            continue;
        };
        let after = feed.at(i);
        let rows = all(
            t,
            &feed_sql,
            &[
                &Col(auth.identity_id),
                &i64_of(after),
                &(eid_protocol::wire::MAX_FEED_EVENTS as i64),
            ],
        )
        .await?;
        let mut list = rows
            .iter()
            .map(event_row)
            .collect::<StoreResult<Vec<_>>>()?;
        if newest {
            list.reverse();
        }
        events.push(list);
    }
    let mut contact_changes = Vec::new();
    for id in &seen {
        contact_changes.extend(open_changes_of(t, id).await?.into_iter().filter(|ch| {
            matches!(ch.kind, ChangeKind::Contact(_)) && ch.state_at(now_ms).is_open()
        }));
    }
    // The identity's newest decisions, same snapshot (device journal).
    let mut decisions = Vec::with_capacity(authenticators.len());
    for (i, auth) in authenticators.iter().enumerate() {
        let Some(auth) = auth else {
            decisions.push(Vec::new());
            continue;
        };
        let rows = all(
            t,
            "SELECT d.request_id, d.authenticator_id, d.outcome, d.counter, d.decision_sha256, \
             d.decided_at_ms, d.seq FROM decisions d WHERE d.identity_id = $1 AND d.seq > $3 \
             ORDER BY d.seq LIMIT $2",
            &[
                &Col(auth.identity_id),
                &(eid_protocol::wire::MAX_PULLED_DECISIONS as i64),
                &i64_of(decisions_after.get(i).copied().unwrap_or(0)),
            ],
        )
        .await?;
        let mut list = Vec::new();
        for row in &rows {
            let request: Vec<u8> = get(row, 0)?;
            let authenticator: Vec<u8> = get(row, 1)?;
            let sha: Vec<u8> = get(row, 4)?;
            let (Ok(request), Ok(authenticator), Ok(sha)) = (
                <[u8; 16]>::try_from(request.as_slice()),
                <[u8; 16]>::try_from(authenticator.as_slice()),
                <[u8; 32]>::try_from(sha.as_slice()),
            ) else {
                continue;
            };
            let counter: i64 = get(row, 3)?;
            let at: i64 = get(row, 5)?;
            let seq: i64 = get(row, 6)?;
            list.push(eid_protocol::wire::PulledDecision {
                request_id: RequestId(request),
                authenticator_id: AuthenticatorId(authenticator),
                outcome: col::<Outcome>(row, 2)?,
                counter: u64::try_from(counter).unwrap_or(0),
                decision_sha256: sha,
                decided_at_ms: u64::try_from(at).unwrap_or(0),
                seq: u64::try_from(seq).unwrap_or(0),
            });
        }
        decisions.push(list);
    }
    Ok(PullSnapshot {
        authenticators,
        identities,
        pending,
        enrolments,
        events,
        contact_changes,
        decisions,
    })
}

/// The transaction of [`Store::decision_context`](crate::store::Store::decision_context).
pub(super) async fn decision_context(
    t: &Tx<'_>,
    request_id: RequestId,
    authenticator_id: AuthenticatorId,
) -> StoreResult<DecisionContext> {
    let request = load_request(t, &request_id).await?;
    let authenticator = load_authenticator(t, &authenticator_id).await?;
    let identity = match &request {
        Some(r) => load_identity(t, &r.envelope.identity_id).await?,
        None => None,
    };
    Ok(DecisionContext {
        request,
        authenticator,
        identity,
    })
}

/// The transaction of [`Store::use_nonce`](crate::store::Store::use_nonce).
pub(super) async fn use_nonce(t: &Tx<'_>, nonce: Nonce16, keep_until_ms: u64) -> StoreResult<bool> {
    let n = exec(
        t,
        "INSERT INTO nonces (nonce, keep_until_ms) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&nonce.as_bytes().as_slice(), &i64_of(keep_until_ms)],
    )
    .await?;
    Ok(n == 1)
}

/// The read of [`Store::nonce_seen`](crate::store::Store::nonce_seen).
pub(super) async fn nonce_seen(t: &Tx<'_>, nonce: Nonce16) -> StoreResult<bool> {
    let row = one(
        t,
        "SELECT EXISTS (SELECT 1 FROM nonces WHERE nonce = $1)",
        &[&nonce.as_bytes().as_slice()],
    )
    .await?;
    get(&row, 0)
}

/// The transaction of [`Store::purge_nonces`](crate::store::Store::purge_nonces).
pub(super) async fn purge_nonces(t: &Tx<'_>, now_ms: u64) -> StoreResult<u64> {
    exec(
        t,
        "DELETE FROM nonces WHERE keep_until_ms < $1",
        &[&i64_of(now_ms)],
    )
    .await
}

/// The transaction of [`Store::create_request_limited`](crate::store::Store::create_request_limited).
pub(super) async fn create_request_limited(
    t: &Tx<'_>,
    request: &StoredRequest,
    envelope_json: &str,
    limits: &RequestLimits,
    now_ms: u64,
) -> StoreResult<CreateResult> {
    let e = &request.envelope;
    // Checked in the serializable write, so concurrent creates (on any
    // replica) cannot exceed the limit or slip past a block in between.
    match load_identity(t, &e.identity_id).await? {
        None => return Ok(CreateResult::UnknownIdentity),
        Some(i) if i.blocked => return Ok(CreateResult::Blocked),
        Some(_) => {}
    }
    if let Some(held) = fraud_hold(t, e, limits.fraud_hold_ms, now_ms).await? {
        return Ok(held);
    }
    if pending_count(t, &e.identity_id, now_ms).await? >= limits.max_pending {
        return Ok(CreateResult::TooManyPending);
    }
    if let Some(limited) = rate_limited(t, e, limits, now_ms).await? {
        return Ok(limited);
    }
    insert_request(t, request, envelope_json).await?;
    Ok(CreateResult::Created)
}

/// The transaction of [`Store::decide`](crate::store::Store::decide).
pub(super) async fn decide(
    t: &Tx<'_>,
    request_id: RequestId,
    receipt_json: &str,
    record: &DecisionRecord,
    pin_verified: bool,
    now_ms: u64,
) -> StoreResult<DecideResult> {
    // The request's row is locked: concurrent decisions on it, from any
    // replica, queue here; the first commits, and the others (run again
    // after their serialization failure) find it decided.
    let Some(row) = opt(
        t,
        "SELECT r.status, r.expires_at_ms, d.request_id IS NOT NULL, r.service_provider_id \
         FROM requests r LEFT JOIN decisions d ON d.request_id = r.id WHERE r.id = $1 \
         FOR UPDATE OF r",
        &[&Col(request_id)],
    )
    .await?
    else {
        return Err(StoreError::Inconsistent("request vanished"));
    };
    let status: RequestStatus = col(&row, 0)?;
    let expires_at_ms: u64 = col(&row, 1)?;
    let decided: bool = get(&row, 2)?;
    let provider: ServiceProviderId = col(&row, 3)?;
    if decided {
        let existing = load_request(t, &request_id).await?.and_then(|r| r.decision);
        return existing
            .map(DecideResult::AlreadyDecided)
            .ok_or(StoreError::Inconsistent("decision vanished"));
    }
    if let Some(refused) = policy::request_decidable(status, expires_at_ms, now_ms) {
        return Ok(refused);
    }
    let Some(row) = opt(
        t,
        "SELECT a.state = 'active', a.last_counter, COALESCE(i.blocked, TRUE), a.identity_id, \
         COALESCE(i.notify_every_use, FALSE) \
         FROM authenticators a LEFT JOIN identities i ON i.id = a.identity_id WHERE a.id = $1",
        &[&Col(record.authenticator_id)],
    )
    .await?
    else {
        return Ok(DecideResult::NotAllowed);
    };
    let active: bool = get(&row, 0)?;
    let last_counter: u64 = col(&row, 1)?;
    let blocked: bool = get(&row, 2)?;
    let identity_id: IdentityId = col(&row, 3)?;
    let notify_every_use: bool = get(&row, 4)?;
    if let Some(refused) = policy::decider_allowed(active, blocked, record.counter, last_counter) {
        return Ok(refused);
    }
    // The decision's `seq` (the phone's journal cursor) in commit order.
    lock_identity(t, &identity_id).await?;
    exec(
        t,
        "INSERT INTO decisions (request_id, authenticator_id, outcome, counter, decision_sha256, receipt, \
         decided_at_ms, identity_id, call_verdict) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &Col(request_id),
            &Col(record.authenticator_id),
            &Col(record.outcome),
            &i64_of(record.counter),
            &record.decision_sha256.as_slice(),
            &receipt_json,
            &i64_of(record.decided_at_ms),
            &Col(identity_id),
            &Col(record.call_verdict),
        ],
    )
    .await?;
    exec(
        t,
        "UPDATE requests SET status = $2 WHERE id = $1",
        &[
            &Col(request_id),
            &Col(RequestStatus::from_outcome(record.outcome)),
        ],
    )
    .await?;
    super::webhooks::enqueue(
        t,
        &request_id,
        RequestStatus::from_outcome(record.outcome),
        record.decided_at_ms,
    )
    .await?;
    let reset_sql = if pin_verified {
        "UPDATE authenticators SET last_counter = $2, failed_pin_count = 0 WHERE id = $1"
    } else {
        "UPDATE authenticators SET last_counter = $2 WHERE id = $1"
    };
    exec(
        t,
        reset_sql,
        &[&Col(record.authenticator_id), &i64_of(record.counter)],
    )
    .await?;
    decide_enrolment(t, &request_id, record.outcome, record.decided_at_ms).await?;
    super::code_devices::on_decision(t, &request_id, record, now_ms).await?;
    if let Some(kind) = policy::decision_event(record.outcome, notify_every_use) {
        let provider_name: Option<String> = match opt(
            t,
            "SELECT sp.name FROM requests r JOIN service_providers sp \
             ON sp.id = r.service_provider_id WHERE r.id = $1",
            &[&Col(request_id)],
        )
        .await?
        {
            Some(r) => Some(get(&r, 0)?),
            None => None,
        };
        insert_event(
            t,
            &NewEvent {
                identity_id,
                kind,
                authenticator_id: Some(record.authenticator_id),
                detail: provider_name,
                occurred_at_ms: now_ms,
                extra_recipients: Vec::new(),
            },
        )
        .await?;
    }
    if provider == eid_protocol::SELF_SERVICE_PROVIDER_ID {
        on_self_service_decision(
            t,
            &request_id,
            record.authenticator_id,
            record.outcome,
            now_ms,
        )
        .await?;
    } else if record.outcome == Outcome::ReportFraud {
        // "This wasn't me": this provider's new requests for this
        // person are held from now (a new report restarts the hold).
        exec(
            t,
            "INSERT INTO fraud_holds (identity_id, service_provider_id, reported_at_ms, notified) \
             VALUES ($1, $2, $3, FALSE) ON CONFLICT (identity_id, service_provider_id) \
             DO UPDATE SET reported_at_ms = excluded.reported_at_ms, notified = FALSE",
            &[&Col(identity_id), &Col(provider), &i64_of(now_ms)],
        )
        .await?;
    }
    Ok(DecideResult::Accepted(record.clone()))
}

/// The transaction of [`Store::record_binding_mismatch`](crate::store::Store::record_binding_mismatch).
pub(super) async fn record_binding_mismatch(
    t: &Tx<'_>,
    request_id: RequestId,
    cancel_at: u32,
    now_ms: u64,
) -> StoreResult<u32> {
    let row = one(
        t,
        "UPDATE requests SET binding_failures = binding_failures + 1 WHERE id = $1 \
         RETURNING binding_failures",
        &[&Col(request_id)],
    )
    .await?;
    let count: u32 = col(&row, 0)?;
    if count >= cancel_at {
        let cancelled = exec(
            t,
            "UPDATE requests SET status = 'cancelled' WHERE id = $1 AND status = 'pending'",
            &[&Col(request_id)],
        )
        .await?;
        if cancelled == 1 {
            super::webhooks::enqueue(t, &request_id, RequestStatus::Cancelled, now_ms).await?;
        }
    }
    Ok(count)
}

/// The transaction of [`Store::cancel_request`](crate::store::Store::cancel_request).
pub(super) async fn cancel_request(
    t: &Tx<'_>,
    id: RequestId,
    service_provider_id: ServiceProviderId,
    now_ms: u64,
) -> StoreResult<CancelResult> {
    // Locked like a decision: a cancel and a decision queue, never both win.
    if opt(
        t,
        "SELECT 1 FROM requests WHERE id = $1 FOR UPDATE",
        &[&Col(id)],
    )
    .await?
    .is_none()
    {
        return Ok(CancelResult::Unknown);
    }
    let Some(request) = load_request(t, &id).await? else {
        return Ok(CancelResult::Unknown);
    };
    if request.envelope.service_provider_id != service_provider_id {
        return Ok(CancelResult::Unknown);
    }
    if request.status_at(now_ms) != RequestStatus::Pending {
        return Ok(CancelResult::NotPending(Box::new(request)));
    }
    exec(
        t,
        "UPDATE requests SET status = 'cancelled' WHERE id = $1",
        &[&Col(id)],
    )
    .await?;
    super::webhooks::enqueue(t, &id, RequestStatus::Cancelled, now_ms).await?;
    Ok(CancelResult::Cancelled)
}

/// The transaction of [`Store::stop_on_call`](crate::store::Store::stop_on_call).
pub(super) async fn stop_on_call(
    t: &Tx<'_>,
    id: RequestId,
    authenticator_id: AuthenticatorId,
    context_json: &str,
    now_ms: u64,
) -> StoreResult<StopResult> {
    // Locked like a decision: a stop, a decision and a cancel of one
    // request (on any replica) queue, and only the first of them wins.
    if opt(
        t,
        "SELECT 1 FROM requests WHERE id = $1 FOR UPDATE",
        &[&Col(id)],
    )
    .await?
    .is_none()
    {
        return Err(StoreError::Inconsistent("request vanished"));
    }
    let Some(request) = load_request(t, &id).await? else {
        return Err(StoreError::Inconsistent("request vanished"));
    };
    if request.status_at(now_ms) != RequestStatus::Pending || request.decision.is_some() {
        return Ok(StopResult::NotPending);
    }
    if !cancel_pending_request(t, &id).await? {
        return Ok(StopResult::NotPending);
    }
    exec(
        t,
        "INSERT INTO call_stops (request_id, authenticator_id, call_context, stopped_at_ms) \
         VALUES ($1, $2, $3, $4)",
        &[
            &Col(id),
            &Col(authenticator_id),
            &context_json,
            &i64_of(now_ms),
        ],
    )
    .await?;
    super::webhooks::enqueue(t, &id, RequestStatus::Cancelled, now_ms).await?;
    let e = &request.envelope;
    // Stopped counts as a refusal for what hangs on the request: a new
    // device is not added, a contact or user-ID change does not go on.
    decide_enrolment(t, &id, Outcome::Deny, now_ms).await?;
    if e.service_provider_id == eid_protocol::SELF_SERVICE_PROVIDER_ID {
        on_self_service_decision(t, &id, authenticator_id, Outcome::Deny, now_ms).await?;
    }
    insert_event(
        t,
        &NewEvent {
            identity_id: e.identity_id,
            kind: SecurityEventKind::ApprovalStoppedOnCall,
            authenticator_id: Some(authenticator_id),
            detail: Some(e.service_provider_name.clone()),
            occurred_at_ms: now_ms,
            extra_recipients: Vec::new(),
        },
    )
    .await?;
    Ok(StopResult::Stopped)
}

/// The read of [`Store::call_stop`](crate::store::Store::call_stop).
pub(super) async fn call_stop(t: &Tx<'_>, id: RequestId) -> StoreResult<Option<CallStop>> {
    let Some(row) = opt(
        t,
        "SELECT authenticator_id, call_context, stopped_at_ms FROM call_stops WHERE request_id = $1",
        &[&Col(id)],
    )
    .await?
    else {
        return Ok(None);
    };
    let json: &str = get(&row, 1)?;
    Ok(Some(CallStop {
        authenticator_id: col(&row, 0)?,
        call_context: serde_json::from_str(json)?,
        stopped_at_ms: col(&row, 2)?,
    }))
}

/// The transaction of [`Store::count_pending`](crate::store::Store::count_pending).
pub(super) async fn count_pending(
    t: &Tx<'_>,
    identity_id: IdentityId,
    now_ms: u64,
) -> StoreResult<u64> {
    pending_count(t, &identity_id, now_ms).await
}
