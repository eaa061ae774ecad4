//! Requests and their decisions: creation under the pending cap, the
//! fraud hold and the rate-limit windows, deciding, cancelling, nonces, and
//! the consistent reads of a pull and of a decision.

use std::sync::LazyLock;

use eid_protocol::events::SecurityEventKind;
use eid_protocol::wire::{RequestStatus, SignedReceipt};
use eid_protocol::{
    AuthenticatorId, IdentityId, Nonce16, Outcome, RequestEnvelopeBody, RequestId,
    ServiceProviderId, Signature,
};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::changes::{on_self_service_decision, open_changes_of};
use super::columns::{Col, blob32, col, i64_of, json_err, opt_blob16, text_ref, u64_at};
use super::enrolments::{ENROLMENT_COLUMNS, LIVE_ENROLMENT, decide_enrolment, enrolment_row};
use super::identities::{load_authenticator, load_identity};
use super::outbox::{EVENT_COLUMNS, event_row, insert_event};
use crate::policy;
use crate::store::{
    CallStop, CancelResult, ChangeKind, CreateResult, DecideResult, DecisionContext,
    DecisionRecord, FeedCursors, LimitScope, NewEvent, PullSnapshot, RequestLimits, StopResult,
    StoreError, StoreResult, StoredRequest, Window,
};

pub(super) const REQUEST_SELECT: &str = "SELECT r.envelope, r.envelope_signature, r.binding_code, r.status, \
     d.authenticator_id, d.outcome, d.counter, d.decision_sha256, d.receipt, d.decided_at_ms, d.call_verdict \
     FROM requests r LEFT JOIN decisions d ON d.request_id = r.id";

pub(super) fn request_row(row: &Row<'_>) -> rusqlite::Result<StoredRequest> {
    // The stored JSON is parsed where it lies in the row, not copied first.
    let envelope: RequestEnvelopeBody =
        serde_json::from_str(text_ref(row, 0)?).map_err(|e| json_err(0, e))?;
    let sig: Vec<u8> = row.get(1)?;
    let decision = match row.get_ref(4)? {
        ValueRef::Null => None,
        _ => {
            let receipt: SignedReceipt =
                serde_json::from_str(text_ref(row, 8)?).map_err(|e| json_err(8, e))?;
            Some(DecisionRecord {
                authenticator_id: col(row, 4)?,
                outcome: col(row, 5)?,
                counter: u64_at(row, 6)?,
                decision_sha256: blob32(row, 7)?,
                receipt,
                decided_at_ms: u64_at(row, 9)?,
                call_verdict: col(row, 10)?,
            })
        }
    };
    Ok(StoredRequest {
        envelope,
        envelope_signature: Signature(sig),
        binding_code: row.get(2)?,
        status: col(row, 3)?,
        decision,
    })
}

pub(super) fn load_request(
    conn: &Connection,
    id: &RequestId,
) -> StoreResult<Option<StoredRequest>> {
    static SQL: LazyLock<String> = LazyLock::new(|| format!("{REQUEST_SELECT} WHERE r.id = ?1"));
    let mut stmt = conn.prepare_cached(&SQL)?;
    Ok(stmt.query_row(params![Col(id)], request_row).optional()?)
}

const INSERT_REQUEST_SQL: &str = "INSERT INTO requests (id, identity_id, service_provider_id, \
     envelope, envelope_signature, binding_code, status, created_at_ms, expires_at_ms) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?8)";

pub(super) fn insert_request(
    c: &Connection,
    request: &StoredRequest,
    envelope_json: &str,
) -> rusqlite::Result<()> {
    let e = &request.envelope;
    c.prepare_cached(INSERT_REQUEST_SQL)?.execute(params![
        Col(e.request_id),
        Col(e.identity_id),
        Col(e.service_provider_id),
        envelope_json,
        request.envelope_signature.0,
        request.binding_code,
        i64_of(e.created_at_ms),
        i64_of(e.expires_at_ms)
    ])?;
    Ok(())
}

pub(super) fn pending_count(
    c: &Connection,
    identity_id: &IdentityId,
    now_ms: u64,
) -> rusqlite::Result<u64> {
    let n: i64 = c
        .prepare_cached(
            "SELECT COUNT(*) FROM requests WHERE identity_id = ?1 AND status = 'pending' AND expires_at_ms > ?2",
        )?
        .query_row(params![Col(identity_id), i64_of(now_ms)], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Cancels a pending request (a change's login request); returns whether it was pending.
pub(super) fn cancel_pending_request(c: &Connection, id: &RequestId) -> rusqlite::Result<bool> {
    let n = c
        .prepare_cached(
            "UPDATE requests SET status = 'cancelled' WHERE id = ?1 AND status = 'pending'",
        )?
        .execute(params![Col(id)])?;
    Ok(n == 1)
}

/// The cool-down after a fraud report ([`policy::fraud_hold`]):
/// `Some(CoolingDown)` while the provider is held for the identity. The
/// first refusal of a hold records a `requests_held` event.
pub(super) fn fraud_hold(
    c: &Connection,
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
        c.prepare_cached(
            "SELECT reported_at_ms, notified FROM fraud_holds \
             WHERE identity_id = ?1 AND service_provider_id = ?2",
        )?
        .query_row(params![identity, provider], |r| {
            Ok(policy::FraudHold {
                reported_at_ms: u64_at(r, 0)?,
                notified: r.get(1)?,
            })
        })
        .optional()?
    };
    let policy::HoldCheck::Held {
        retry_after_ms,
        notify,
    } = policy::fraud_hold(hold, hold_ms, now_ms)
    else {
        return Ok(None);
    };
    if notify {
        c.prepare_cached(
            "UPDATE fraud_holds SET notified = 1 WHERE identity_id = ?1 AND service_provider_id = ?2",
        )?
        .execute(params![identity, provider])?;
        insert_event(
            c,
            &NewEvent {
                identity_id: e.identity_id,
                kind: SecurityEventKind::RequestsHeld,
                authenticator_id: None,
                detail: Some(e.service_provider_name.clone()),
                occurred_at_ms: now_ms,
                extra_recipients: Vec::new(),
            },
        )?;
    }
    Ok(Some(CreateResult::CoolingDown {
        retry_after_ms,
        told: notify,
    }))
}

/// How long until one more request fits `window` ([`policy::window_full`],
/// [`policy::window_wait`]), given the creation times matched by `sql` (`?1`
/// the identity or provider, `?2` the window start, `?3` the count to skip):
/// `None` while it fits now.
fn window_wait(
    c: &Connection,
    sql: &str,
    key: &[u8],
    window: Window,
    now_ms: u64,
) -> rusqlite::Result<Option<u64>> {
    if window.limit == 0 {
        // Off: skip the count.
        return Ok(None);
    }
    let start = policy::window_start(window, now_ms);
    let count: i64 = c
        .prepare_cached(&format!("SELECT COUNT(*) {sql}"))?
        .query_row(params![key, i64_of(start)], |r| r.get(0))?;
    let Some(skip) = policy::window_full(window, u64::try_from(count).unwrap_or(0)) else {
        return Ok(None);
    };
    let leaving: Option<i64> = c
        .prepare_cached(&format!(
            "SELECT created_at_ms {sql} ORDER BY created_at_ms LIMIT 1 OFFSET ?3"
        ))?
        .query_row(params![key, i64_of(start), i64_of(skip)], |r| r.get(0))
        .optional()?;
    let leaving = leaving.and_then(|t| u64::try_from(t).ok());
    Ok(Some(policy::window_wait(window, leaving, now_ms)))
}

/// The rate limits: `Some(RateLimited)` when a window is full.
pub(super) fn rate_limited(
    c: &Connection,
    e: &RequestEnvelopeBody,
    limits: &RequestLimits,
    now_ms: u64,
) -> rusqlite::Result<Option<CreateResult>> {
    const BY_IDENTITY: &str = "FROM requests WHERE identity_id = ?1 AND created_at_ms > ?2 \
        AND service_provider_id != zeroblob(16)";
    const BY_PROVIDER: &str = "FROM requests WHERE service_provider_id = ?1 AND created_at_ms > ?2";
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
        if let Some(wait) = window_wait(c, sql, key.as_slice(), window, now_ms)? {
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

// A pull's feed and journal reads with their limits written into the SQL:
// SQLite plans `LIMIT ?` by the bound value, so binding one expires the
// statement and every execution would parse and plan it again.
static FEED_NEWEST_SQL: LazyLock<String> = LazyLock::new(|| feed_sql("DESC"));
static FEED_OLDEST_SQL: LazyLock<String> = LazyLock::new(|| feed_sql("ASC"));
static RECENT_DECISIONS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT d.request_id, d.authenticator_id, d.outcome, d.counter, d.decision_sha256, \
         d.decided_at_ms, d.rowid FROM decisions d WHERE d.identity_id = ?1 AND d.rowid > ?2 \
         ORDER BY d.rowid LIMIT {}",
        eid_protocol::wire::MAX_PULLED_DECISIONS
    )
});

fn feed_sql(order: &str) -> String {
    format!(
        "SELECT {EVENT_COLUMNS} FROM security_events WHERE identity_id = ?1 AND id > ?2 \
         ORDER BY id {order} LIMIT {}",
        eid_protocol::wire::MAX_FEED_EVENTS
    )
}

/// The transaction of [`Store::pull_snapshot`](crate::store::Store::pull_snapshot).
pub(super) fn pull_snapshot(
    c: &Connection,
    authenticator_ids: Vec<AuthenticatorId>,
    feed: FeedCursors,
    decisions_after: Vec<u64>,
    now_ms: u64,
) -> StoreResult<PullSnapshot> {
    let authenticators = authenticator_ids
        .iter()
        .map(|id| load_authenticator(c, id))
        .collect::<StoreResult<Vec<_>>>()?;
    let identities = authenticators
        .iter()
        .map(|a| match a {
            Some(a) => load_identity(c, &a.identity_id),
            None => Ok(None),
        })
        .collect::<StoreResult<Vec<_>>>()?;
    let mut seen = Vec::new();
    let mut pending = Vec::new();
    static PENDING_SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "{REQUEST_SELECT} WHERE r.identity_id = ?1 AND r.status = 'pending' \
             AND r.expires_at_ms > ?2 ORDER BY r.created_at_ms"
        )
    });
    let mut stmt = c.prepare_cached(&PENDING_SQL)?;
    for identity in identities.iter().flatten().filter(|i| !i.blocked) {
        // Two authenticators of one identity on the same phone share it.
        if seen.contains(&identity.id) {
            continue;
        }
        seen.push(identity.id);
        let rows = stmt.query_map(params![Col(identity.id), i64_of(now_ms)], request_row)?;
        for r in rows {
            pending.push(r?);
        }
    }
    let mut enrolments = Vec::new();
    static ENROLMENTS_SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT {ENROLMENT_COLUMNS} FROM device_enrolments e WHERE e.identity_id = ?1 \
             AND {LIVE_ENROLMENT} ORDER BY e.requested_at_ms"
        )
    });
    let mut stmt = c.prepare_cached(&ENROLMENTS_SQL)?;
    for identity in &seen {
        let rows = stmt.query_map(params![Col(identity), i64_of(now_ms)], enrolment_row)?;
        for r in rows {
            enrolments.push(r?);
        }
    }
    // One indexed range read per account (same snapshot as the
    // requests, so the feed never misses an event that committed),
    // returned oldest first: paging phones get the oldest events above
    // the cursor (the next pull goes on from there), older phones the
    // newest.
    let newest = matches!(feed, FeedCursors::NewestAbove(_));
    let mut feed_read = c.prepare_cached(if newest {
        &FEED_NEWEST_SQL
    } else {
        &FEED_OLDEST_SQL
    })?;
    let mut events = Vec::with_capacity(authenticators.len());
    for (i, auth) in authenticators.iter().enumerate() {
        let Some(auth) = auth else {
            events.push(Vec::new());
            continue;
        };
        let after = feed.at(i);
        let rows = feed_read.query_map(params![Col(auth.identity_id), i64_of(after)], event_row)?;
        let mut list = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        if newest {
            list.reverse();
        }
        events.push(list);
    }
    let mut contact_changes = Vec::new();
    for id in &seen {
        contact_changes.extend(open_changes_of(c, id)?.into_iter().filter(|ch| {
            matches!(ch.kind, ChangeKind::Contact(_)) && ch.state_at(now_ms).is_open()
        }));
    }
    // The identity's newest decisions, same snapshot (device journal).
    let mut recent = c.prepare_cached(&RECENT_DECISIONS_SQL)?;
    let mut decisions = Vec::with_capacity(authenticators.len());
    for (i, auth) in authenticators.iter().enumerate() {
        let Some(auth) = auth else {
            decisions.push(Vec::new());
            continue;
        };
        let rows = recent.query_map(
            params![
                Col(auth.identity_id),
                i64_of(decisions_after.get(i).copied().unwrap_or(0))
            ],
            |row| {
                Ok((
                    row.get::<_, Vec<u8>>(0)?,
                    row.get::<_, Vec<u8>>(1)?,
                    col::<Outcome>(row, 2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, Vec<u8>>(4)?,
                    row.get::<_, i64>(5)?,
                    row.get::<_, i64>(6)?,
                ))
            },
        )?;
        let mut list = Vec::new();
        for r in rows {
            let (request, authenticator, outcome, counter, sha, at, seq) = r?;
            let (Ok(request), Ok(authenticator), Ok(sha)) = (
                <[u8; 16]>::try_from(request.as_slice()),
                <[u8; 16]>::try_from(authenticator.as_slice()),
                <[u8; 32]>::try_from(sha.as_slice()),
            ) else {
                continue;
            };
            list.push(eid_protocol::wire::PulledDecision {
                request_id: RequestId(request),
                authenticator_id: AuthenticatorId(authenticator),
                outcome,
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
pub(super) fn decision_context(
    c: &Connection,
    request_id: RequestId,
    authenticator_id: AuthenticatorId,
) -> StoreResult<DecisionContext> {
    let request = load_request(c, &request_id)?;
    let authenticator = load_authenticator(c, &authenticator_id)?;
    let identity = match &request {
        Some(r) => load_identity(c, &r.envelope.identity_id)?,
        None => None,
    };
    Ok(DecisionContext {
        request,
        authenticator,
        identity,
    })
}

/// The transaction of [`Store::use_nonce`](crate::store::Store::use_nonce).
pub(super) fn use_nonce(c: &Connection, nonce: Nonce16, keep_until_ms: u64) -> StoreResult<bool> {
    let n = c
        .prepare_cached("INSERT OR IGNORE INTO nonces (nonce, keep_until_ms) VALUES (?1, ?2)")?
        .execute(params![nonce.as_bytes().as_slice(), i64_of(keep_until_ms)])?;
    Ok(n == 1)
}

/// The read of [`Store::nonce_seen`](crate::store::Store::nonce_seen).
pub(super) fn nonce_seen(c: &Connection, nonce: Nonce16) -> StoreResult<bool> {
    Ok(
        c.prepare_cached("SELECT EXISTS (SELECT 1 FROM nonces WHERE nonce = ?1)")?
            .query_row(params![nonce.as_bytes().as_slice()], |r| r.get(0))?,
    )
}

/// The transaction of [`Store::purge_nonces`](crate::store::Store::purge_nonces).
pub(super) fn purge_nonces(c: &Connection, now_ms: u64) -> StoreResult<u64> {
    let n = c
        .prepare_cached("DELETE FROM nonces WHERE keep_until_ms < ?1")?
        .execute(params![i64_of(now_ms)])?;
    Ok(n as u64)
}

/// The transaction of [`Store::create_request_limited`](crate::store::Store::create_request_limited).
pub(super) fn create_request_limited(
    c: &Connection,
    request: StoredRequest,
    envelope_json: String,
    limits: RequestLimits,
    now_ms: u64,
) -> StoreResult<CreateResult> {
    let e = &request.envelope;
    // Checked in the write transaction, so concurrent creates cannot
    // exceed the limit or slip past a block that lands in between.
    match load_identity(c, &e.identity_id)? {
        None => return Ok(CreateResult::UnknownIdentity),
        Some(i) if i.blocked => return Ok(CreateResult::Blocked),
        Some(_) => {}
    }
    if let Some(held) = fraud_hold(c, e, limits.fraud_hold_ms, now_ms)? {
        return Ok(held);
    }
    if pending_count(c, &e.identity_id, now_ms)? >= limits.max_pending {
        return Ok(CreateResult::TooManyPending);
    }
    if let Some(limited) = rate_limited(c, e, &limits, now_ms)? {
        return Ok(limited);
    }
    insert_request(c, &request, &envelope_json)?;
    Ok(CreateResult::Created)
}

/// The decider of [`decide`] (active, last counter, identity blocked, the
/// identity, its every-use notices) and the request's provider.
const DECIDER_SQL: &str = "SELECT a.state = 'active', a.last_counter, COALESCE(i.blocked, 1), \
     a.identity_id, COALESCE(i.notify_every_use, 0), \
     (SELECT r.service_provider_id FROM requests r WHERE r.id = ?2) \
     FROM authenticators a LEFT JOIN identities i ON i.id = a.identity_id WHERE a.id = ?1";

/// [`decide`]'s record of the decision.
const INSERT_DECISION_SQL: &str = "INSERT INTO decisions (request_id, authenticator_id, outcome, \
     counter, decision_sha256, receipt, decided_at_ms, identity_id, call_verdict) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

/// [`decide`]'s status update: exactly the requests a decision may close.
const CLOSE_PENDING_SQL: &str = "UPDATE requests SET status = ?2 \
     WHERE id = ?1 AND status = 'pending' AND expires_at_ms > ?3";

/// The transaction of [`Store::decide`](crate::store::Store::decide).
///
/// The checks that must hold atomically with the write are made in the
/// write itself: the decider is read (active, identity unblocked, counter
/// above the last), and the request's status is set by an update that
/// matches only a request still decidable (pending, not expired: what
/// [`policy::request_decidable`] accepts). Only when one of them refuses is
/// the request read, for the exact answer, in the same transaction.
pub(super) fn decide(
    c: &Connection,
    request_id: RequestId,
    receipt_json: String,
    record: DecisionRecord,
    pin_verified: bool,
    now_ms: u64,
) -> StoreResult<DecideResult> {
    // Only the columns the checks need: this runs on the single writer
    // thread, where parsing the stored JSON would serialize every
    // decision behind it. The request's provider comes along (NULL when
    // there is no such request), so that the status update below needs no
    // RETURNING: SQLite runs every statement with RETURNING through a
    // temporary table of its own, made and dropped on each run.
    let decider = c
        .prepare_cached(DECIDER_SQL)?
        .query_row(
            params![Col(record.authenticator_id), Col(request_id)],
            |r| {
                Ok((
                    r.get::<_, bool>(0)?,
                    u64_at(r, 1)?,
                    r.get::<_, bool>(2)?,
                    col::<IdentityId>(r, 3)?,
                    r.get::<_, bool>(4)?,
                    opt_blob16(r, 5)?,
                ))
            },
        )
        .optional()?;
    let refused = match decider {
        None => Some(DecideResult::NotAllowed),
        Some((active, last_counter, blocked, ..)) => {
            policy::decider_allowed(active, blocked, record.counter, last_counter)
        }
    };
    let status = RequestStatus::from_outcome(record.outcome);
    // A pending request has no decision (a decision closes its request in
    // the same transaction), so the update also stands for "not decided".
    // The provider was read in this transaction, on the single writer: the
    // row it came from is the row the update changed.
    let provider = match (&refused, &decider) {
        (None, Some((.., Some(provider)))) => {
            let updated = c.prepare_cached(CLOSE_PENDING_SQL)?.execute(params![
                Col(request_id),
                Col(status),
                i64_of(now_ms)
            ])?;
            (updated == 1).then_some(*provider)
        }
        _ => None,
    };
    let (Some(provider), Some((_, _, _, identity_id, notify_every_use, _))) = (provider, decider)
    else {
        return decide_refused(c, request_id, refused, now_ms);
    };
    c.prepare_cached(INSERT_DECISION_SQL)?.execute(params![
        Col(request_id),
        Col(record.authenticator_id),
        Col(record.outcome),
        i64_of(record.counter),
        record.decision_sha256.as_slice(),
        receipt_json,
        i64_of(record.decided_at_ms),
        Col(identity_id),
        Col(record.call_verdict)
    ])?;
    super::webhooks::enqueue_for(c, &provider, &request_id, status, record.decided_at_ms)?;
    let reset_sql = if pin_verified {
        "UPDATE authenticators SET last_counter = ?2, failed_pin_count = 0 WHERE id = ?1"
    } else {
        "UPDATE authenticators SET last_counter = ?2 WHERE id = ?1"
    };
    c.prepare_cached(reset_sql)?.execute(params![
        Col(record.authenticator_id),
        i64_of(record.counter)
    ])?;
    decide_enrolment(c, &request_id, record.outcome, record.decided_at_ms)?;
    super::code_devices::on_decision(c, &request_id, &record, now_ms)?;
    if let Some(kind) = policy::decision_event(record.outcome, notify_every_use) {
        let provider_name: Option<String> = c
            .prepare_cached("SELECT name FROM service_providers WHERE id = ?1")?
            .query_row(params![provider.as_slice()], |r| r.get(0))
            .optional()?;
        insert_event(
            c,
            &NewEvent {
                identity_id,
                kind,
                authenticator_id: Some(record.authenticator_id),
                detail: provider_name,
                occurred_at_ms: now_ms,
                extra_recipients: Vec::new(),
            },
        )?;
    }
    if provider == *eid_protocol::SELF_SERVICE_PROVIDER_ID.as_bytes() {
        on_self_service_decision(
            c,
            &request_id,
            record.authenticator_id,
            record.outcome,
            now_ms,
        )?;
    } else if record.outcome == Outcome::ReportFraud {
        // "This wasn't me": this provider's new requests for this
        // person are held from now (a new report restarts the hold).
        c.prepare_cached(
            "INSERT INTO fraud_holds (identity_id, service_provider_id, reported_at_ms, notified) \
             VALUES (?1, ?2, ?3, 0) ON CONFLICT (identity_id, service_provider_id) \
             DO UPDATE SET reported_at_ms = excluded.reported_at_ms, notified = 0",
        )?
        .execute(params![
            Col(identity_id),
            provider.as_slice(),
            i64_of(now_ms)
        ])?;
    }
    Ok(DecideResult::Accepted(record))
}

/// Why [`decide`] wrote nothing: the request's own state first (decided,
/// closed or expired), then the decider's refusal. Nothing was written.
fn decide_refused(
    c: &Connection,
    request_id: RequestId,
    decider_refused: Option<DecideResult>,
    now_ms: u64,
) -> StoreResult<DecideResult> {
    let Some((status, expires_at_ms, decided)) = c
        .prepare_cached(
            "SELECT r.status, r.expires_at_ms, d.request_id IS NOT NULL \
             FROM requests r LEFT JOIN decisions d ON d.request_id = r.id WHERE r.id = ?1",
        )?
        .query_row(params![Col(request_id)], |r| {
            Ok((
                col::<RequestStatus>(r, 0)?,
                u64_at(r, 1)?,
                r.get::<_, bool>(2)?,
            ))
        })
        .optional()?
    else {
        return Err(StoreError::Inconsistent("request vanished"));
    };
    if decided {
        let existing = load_request(c, &request_id)?.and_then(|r| r.decision);
        return existing
            .map(DecideResult::AlreadyDecided)
            .ok_or(StoreError::Inconsistent("decision vanished"));
    }
    if let Some(refused) = policy::request_decidable(status, expires_at_ms, now_ms) {
        return Ok(refused);
    }
    // The request is decidable, so the decider refused (or the update and
    // this read disagree, which one transaction rules out).
    decider_refused.ok_or(StoreError::Inconsistent("decidable request not updated"))
}

/// The transaction of [`Store::record_binding_mismatch`](crate::store::Store::record_binding_mismatch).
pub(super) fn record_binding_mismatch(
    c: &Connection,
    request_id: RequestId,
    cancel_at: u32,
    now_ms: u64,
) -> StoreResult<u32> {
    let count: u32 = c
        .prepare_cached(
            "UPDATE requests SET binding_failures = binding_failures + 1 WHERE id = ?1 \
             RETURNING binding_failures",
        )?
        .query_row(params![Col(request_id)], |r| r.get(0))?;
    if count >= cancel_at {
        let cancelled = c
            .prepare_cached(
                "UPDATE requests SET status = 'cancelled' WHERE id = ?1 AND status = 'pending'",
            )?
            .execute(params![Col(request_id)])?;
        if cancelled == 1 {
            super::webhooks::enqueue(c, &request_id, RequestStatus::Cancelled, now_ms)?;
        }
    }
    Ok(count)
}

/// The transaction of [`Store::cancel_request`](crate::store::Store::cancel_request).
pub(super) fn cancel_request(
    c: &Connection,
    id: RequestId,
    service_provider_id: ServiceProviderId,
    now_ms: u64,
) -> StoreResult<CancelResult> {
    let Some(request) = load_request(c, &id)? else {
        return Ok(CancelResult::Unknown);
    };
    if request.envelope.service_provider_id != service_provider_id {
        return Ok(CancelResult::Unknown);
    }
    if request.status_at(now_ms) != RequestStatus::Pending {
        return Ok(CancelResult::NotPending(Box::new(request)));
    }
    c.prepare_cached("UPDATE requests SET status = 'cancelled' WHERE id = ?1")?
        .execute(params![Col(id)])?;
    super::webhooks::enqueue(c, &id, RequestStatus::Cancelled, now_ms)?;
    Ok(CancelResult::Cancelled)
}

/// The transaction of [`Store::stop_on_call`](crate::store::Store::stop_on_call).
pub(super) fn stop_on_call(
    c: &Connection,
    id: RequestId,
    authenticator_id: AuthenticatorId,
    context_json: String,
    now_ms: u64,
) -> StoreResult<StopResult> {
    let Some(request) = load_request(c, &id)? else {
        return Err(StoreError::Inconsistent("request vanished"));
    };
    if request.status_at(now_ms) != RequestStatus::Pending || request.decision.is_some() {
        return Ok(StopResult::NotPending);
    }
    if !cancel_pending_request(c, &id)? {
        return Ok(StopResult::NotPending);
    }
    c.prepare_cached(
        "INSERT INTO call_stops (request_id, authenticator_id, call_context, stopped_at_ms) \
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        Col(id),
        Col(authenticator_id),
        context_json,
        i64_of(now_ms)
    ])?;
    super::webhooks::enqueue(c, &id, RequestStatus::Cancelled, now_ms)?;
    let e = &request.envelope;
    // Stopped counts as a refusal for what hangs on the request: a new
    // device is not added, a contact or user-ID change does not go on.
    decide_enrolment(c, &id, Outcome::Deny, now_ms)?;
    if e.service_provider_id == eid_protocol::SELF_SERVICE_PROVIDER_ID {
        on_self_service_decision(c, &id, authenticator_id, Outcome::Deny, now_ms)?;
    }
    insert_event(
        c,
        &NewEvent {
            identity_id: e.identity_id,
            kind: SecurityEventKind::ApprovalStoppedOnCall,
            authenticator_id: Some(authenticator_id),
            detail: Some(e.service_provider_name.clone()),
            occurred_at_ms: now_ms,
            extra_recipients: Vec::new(),
        },
    )?;
    Ok(StopResult::Stopped)
}

/// The read of [`Store::call_stop`](crate::store::Store::call_stop).
pub(super) fn call_stop(c: &Connection, id: RequestId) -> StoreResult<Option<CallStop>> {
    let row = c
        .prepare_cached(
            "SELECT authenticator_id, call_context, stopped_at_ms FROM call_stops WHERE request_id = ?1",
        )?
        .query_row(params![Col(id)], |r| {
            let json: String = r.get(1)?;
            Ok(CallStop {
                authenticator_id: col(r, 0)?,
                call_context: serde_json::from_str(&json).map_err(|e| json_err(1, e))?,
                stopped_at_ms: u64_at(r, 2)?,
            })
        })
        .optional()?;
    Ok(row)
}

/// The transaction of [`Store::count_pending`](crate::store::Store::count_pending).
pub(super) fn count_pending(
    c: &Connection,
    identity_id: IdentityId,
    now_ms: u64,
) -> StoreResult<u64> {
    let n: i64 = c
        .prepare_cached(
            "SELECT COUNT(*) FROM requests WHERE identity_id = ?1 AND status = 'pending' AND expires_at_ms > ?2",
        )?
        .query_row(params![Col(identity_id), i64_of(now_ms)], |r| r.get(0))?;
    Ok(n as u64)
}

#[cfg(test)]
mod tests {
    use rusqlite::StatementStatus;

    use super::*;

    /// Runs `sql` (`?1` an identity, `?2` a cursor) three times with new
    /// values and says how often SQLite had to prepare it again.
    fn reprepared(c: &Connection, sql: &str, more: &[i64]) -> i32 {
        let mut stmt = c.prepare_cached(sql).unwrap();
        for cursor in 0..3i64 {
            let mut values: Vec<&dyn rusqlite::ToSql> = vec![&[7u8; 16], &cursor];
            values.extend(more.iter().map(|v| v as &dyn rusqlite::ToSql));
            let mut rows = stmt.query(values.as_slice()).unwrap();
            while rows.next().unwrap().is_some() {}
        }
        stmt.get_status(StatementStatus::RePrepare)
    }

    /// A one-account pull runs on the writer, inside a batch: it sees what
    /// the batch's earlier jobs wrote and nothing a failed job wrote, and it
    /// is answered only once the batch has committed (here held open by a
    /// durable job queued after it). A pull of two accounts reads on a
    /// reader and sees the same.
    #[tokio::test]
    async fn a_pull_on_the_writer_shows_its_batch_s_committed_writes_only_after_the_commit() {
        use std::sync::Arc;
        use std::time::Duration;

        use super::super::connection::HeldWrite;
        use crate::store::{FeedCursors, Store, conformance};
        let dir = tempfile::tempdir().unwrap();
        let store =
            Arc::new(super::super::SqliteStore::open(&dir.path().join("s.sqlite3")).unwrap());
        let now = 1_795_000_000_000;
        let anna = conformance::identity(&*store, "anna").await;
        let phone = conformance::activated(&*store, &anna, now).await;
        let pull = |ids: Vec<AuthenticatorId>| {
            let store = Arc::clone(&store);
            async move {
                let n = ids.len();
                store
                    .pull_with_nonce(
                        Nonce16(eid_protocol::crypto::random_array()),
                        now + 600_000,
                        ids,
                        FeedCursors::NewestAbove(vec![0; n]),
                        vec![0; n],
                        now,
                    )
                    .await
            }
        };
        // Sets the phone's counter in a job of its own, which then fails or not.
        let set_counter = |value: i64, fail: bool| {
            let store = Arc::clone(&store);
            let id = phone.id;
            tokio::spawn(async move {
                store
                    .write(move |c| {
                        c.execute(
                            "UPDATE authenticators SET last_counter = ?2 WHERE id = ?1",
                            params![Col(id), value],
                        )?;
                        if fail {
                            return Err(StoreError::Inconsistent("this job fails"));
                        }
                        Ok(())
                    })
                    .await
            })
        };
        // Hold the writer, so that what follows queues into one batch.
        let first = HeldWrite::queue(&store);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let committed = set_counter(7, false);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let failed = set_counter(5, true);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut pulled = tokio::spawn(pull(vec![phone.id]));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut last = HeldWrite::queue(&store);
        tokio::time::sleep(Duration::from_millis(100)).await;
        first.finish().await;
        // The pull's job has run (it was queued before the last one), but its
        // batch has not committed.
        last.started().await;
        let early = tokio::time::timeout(Duration::from_millis(200), &mut pulled).await;
        assert!(early.is_err(), "answered before its batch committed");
        last.finish().await;
        assert!(failed.await.unwrap().is_err());
        committed.await.unwrap().unwrap();
        let snapshot = pulled.await.unwrap().unwrap().expect("a fresh nonce");
        let seen = snapshot.authenticators[0].as_ref().unwrap();
        assert_eq!(
            seen.last_counter, 7,
            "the committed job's write, not the failed one's after it"
        );
        let both = pull(vec![phone.id, AuthenticatorId::random()])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(both.authenticators[0].as_ref().unwrap().last_counter, 7);
        assert_eq!(both.authenticators[1], None);
    }

    #[test]
    fn a_pulls_feed_and_journal_reads_are_planned_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite3");
        drop(super::super::SqliteStore::open(&path).unwrap());
        let c = super::super::connection::open_connection(&path).unwrap();
        for sql in [&*FEED_NEWEST_SQL, &*FEED_OLDEST_SQL, &*RECENT_DECISIONS_SQL] {
            assert_eq!(reprepared(&c, sql, &[]), 0, "{sql}");
        }
        // Why the limits are written into the SQL: a bound LIMIT expires
        // the statement at every binding.
        let bound = "SELECT id FROM security_events WHERE identity_id = ?1 AND id > ?2 \
                     ORDER BY id LIMIT ?3";
        assert!(reprepared(&c, bound, &[50]) > 0);
    }

    /// How many temporary tables (`OpenEphemeral`) a run of `sql` makes.
    fn temporary_tables(c: &Connection, sql: &str) -> usize {
        let mut stmt = c.prepare(&format!("EXPLAIN {sql}")).unwrap();
        // The parameters stay unbound: EXPLAIN only lists the program.
        let mut rows = stmt.raw_query();
        let mut count = 0;
        while let Some(row) = rows.next().unwrap() {
            if row.get::<_, String>(1).unwrap() == "OpenEphemeral" {
                count += 1;
            }
        }
        count
    }

    #[test]
    fn a_decision_reads_its_decider_and_enrolment_without_temporary_tables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite3");
        drop(super::super::SqliteStore::open(&path).unwrap());
        let c = super::super::connection::open_connection(&path).unwrap();
        assert_eq!(temporary_tables(&c, DECIDER_SQL), 0);
        assert_eq!(
            temporary_tables(&c, super::super::enrolments::ENROLMENT_OF_REQUEST_SQL),
            0
        );
        // The requests' and decisions' CHECKs are written without an IN
        // list (migration 0016): no statement that writes either table
        // makes a temporary table. RETURNING would add one.
        let update = temporary_tables(&c, CLOSE_PENDING_SQL);
        assert_eq!(update, 0);
        assert_eq!(temporary_tables(&c, INSERT_REQUEST_SQL), 0);
        assert_eq!(temporary_tables(&c, INSERT_DECISION_SQL), 0);
        let returning = format!("{CLOSE_PENDING_SQL} RETURNING service_provider_id");
        assert_eq!(temporary_tables(&c, &returning), update + 1);
    }
}
