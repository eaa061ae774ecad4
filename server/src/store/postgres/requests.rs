//! Requests and their decisions: creation under the pending cap, the
//! fraud hold and the rate-limit windows, deciding, cancelling, nonces, and
//! the consistent reads of a pull and of a decision.

use eid_protocol::events::SecurityEventKind;
use eid_protocol::wire::{RequestStatus, SignedReceipt};
use eid_protocol::{
    AuthenticatorId, IdentityId, Nonce16, Outcome, RequestEnvelopeBody, RequestId,
    ServiceProviderId, Signature,
};
use futures_util::future::{try_join, try_join_all, try_join3, try_join4, try_join5};
use tokio_postgres::Row;

use super::changes::{
    CHANGE_COLUMNS, OPEN_STATES_SQL, change_row_at, on_self_service_decision, open_changes_of,
    open_changes_sql,
};
use super::columns::{At, Col, col, get, i64_of};
use super::connection::{P, Tx, all, exec, one, opt};
use super::enrolments::{
    ENROLMENT_COLUMNS, LIVE_ENROLMENT, decide_enrolment, enrolment_row, enrolment_row_at,
};
use super::identities::{
    AUTHENTICATOR_COLUMNS, IDENTITY_COLUMNS, authenticator_row_at, column_count, identity_row,
    identity_row_at, prefixed,
};
use super::outbox::{EVENT_COLUMNS, event_at, event_row, insert_event, lock_identity};
use crate::policy;
use crate::store::{
    Authenticator, CallStop, CancelResult, ChangeKind, CreateResult, DecideResult, DecisionContext,
    DecisionFacts, DecisionRecord, FeedCursors, Identity, LimitScope, NewEvent, PullSnapshot,
    RequestLimits, StopResult, StoreError, StoreResult, StoredRequest, Window,
};

/// The columns of [`REQUEST_SELECT`] (its `r` and `d` aliases), in
/// [`request_row`]'s order, written once for both constants.
macro_rules! request_columns {
    () => {
        "r.envelope, r.envelope_signature, r.binding_code, r.status, \
         d.authenticator_id, d.outcome, d.counter, d.decision_sha256, d.receipt, \
         d.decided_at_ms, d.call_verdict"
    };
}

pub(super) const REQUEST_SELECT: &str = concat!(
    "SELECT ",
    request_columns!(),
    " FROM requests r LEFT JOIN decisions d ON d.request_id = r.id"
);

pub(super) fn request_row(row: &Row) -> StoreResult<StoredRequest> {
    request_row_at(row, At::From(0))
}

/// [`request_row`] with its columns `at` (a joined read).
fn request_row_at(row: &Row, at: At<'_>) -> StoreResult<StoredRequest> {
    let envelope_json: &str = get(row, at.of(0))?;
    let envelope: RequestEnvelopeBody = serde_json::from_str(envelope_json)?;
    let sig: Vec<u8> = get(row, at.of(1))?;
    let decision = match get::<Option<&[u8]>>(row, at.of(4))? {
        None => None,
        Some(_) => {
            let receipt_json: &str = get(row, at.of(8))?;
            let receipt: SignedReceipt = serde_json::from_str(receipt_json)?;
            Some(DecisionRecord {
                authenticator_id: col(row, at.of(4))?,
                outcome: col(row, at.of(5))?,
                counter: col(row, at.of(6))?,
                decision_sha256: col(row, at.of(7))?,
                receipt,
                decided_at_ms: col(row, at.of(9))?,
                call_verdict: col(row, at.of(10))?,
            })
        }
    };
    Ok(StoredRequest {
        envelope,
        envelope_signature: Signature(sig),
        binding_code: get(row, at.of(2))?,
        status: col(row, at.of(3))?,
        decision,
    })
}

/// The columns of [`REQUEST_SELECT`]: the decision context's joined read
/// puts them first.
const REQUEST_COLUMNS: &str = request_columns!();

pub(super) async fn load_request(t: &Tx<'_>, id: &RequestId) -> StoreResult<Option<StoredRequest>> {
    opt(t, &format!("{REQUEST_SELECT} WHERE r.id = $1"), &[&Col(id)])
        .await?
        .map(|r| request_row(&r))
        .transpose()
}

/// Inserts a pending request for its identity, whose row it locks first:
/// the pending cap and the windows of [`create_request_limited`], checked
/// at `READ COMMITTED` under that lock, then count this request too (see
/// there).
pub(super) async fn insert_request(
    t: &Tx<'_>,
    request: &StoredRequest,
    envelope_json: &str,
) -> StoreResult<()> {
    lock_identity(t, &request.envelope.identity_id).await?;
    insert_request_row(t, request, envelope_json).await
}

/// Inserts a request's row (its identity already locked).
async fn insert_request_row(
    t: &Tx<'_>,
    request: &StoredRequest,
    envelope_json: &str,
) -> StoreResult<()> {
    insert_request_row_then(t, request, envelope_json, false).await
}

/// [`insert_request_row`], with the transaction's `COMMIT` in the same
/// flight when `commit` (the insert is then its last statement; see
/// [`Tx::commit_in_flight`]).
async fn insert_request_row_then(
    t: &Tx<'_>,
    request: &StoredRequest,
    envelope_json: &str,
    commit: bool,
) -> StoreResult<()> {
    let e = &request.envelope;
    let insert = t
        .prepare_cached(
            "INSERT INTO requests (id, identity_id, service_provider_id, envelope, envelope_signature, \
             binding_code, status, created_at_ms, expires_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8)",
        )
        .await?;
    try_join(
        async {
            t.execute(
                &insert,
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
            Ok::<(), StoreError>(())
        },
        // Polled second: sent after the insert.
        async {
            if commit {
                t.commit_in_flight().await?;
            }
            Ok::<(), StoreError>(())
        },
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

/// The fraud hold's row ([`policy::fraud_hold`]) of the request's
/// identity and provider (not read while holds are off), and the
/// identity's pending count (as [`pending_count`]), in one statement.
async fn fraud_hold_and_pending(
    t: &Tx<'_>,
    e: &RequestEnvelopeBody,
    hold_ms: u64,
    now_ms: u64,
) -> StoreResult<(Option<policy::FraudHold>, u64)> {
    if hold_ms == 0 {
        return Ok((None, pending_count(t, &e.identity_id, now_ms).await?));
    }
    let row = one(
        t,
        "SELECT (SELECT COUNT(*) FROM requests WHERE identity_id = $1 AND status = 'pending' \
         AND expires_at_ms > $3), h.reported_at_ms, h.notified \
         FROM (VALUES (1)) AS one (x) LEFT JOIN fraud_holds h \
         ON h.identity_id = $1 AND h.service_provider_id = $2",
        &[
            &Col(e.identity_id),
            &Col(e.service_provider_id),
            &i64_of(now_ms),
        ],
    )
    .await?;
    let pending = col(&row, 0)?;
    let hold = match get::<Option<i64>>(&row, 1)? {
        Some(_) => Some(policy::FraudHold {
            reported_at_ms: col(&row, 1)?,
            notified: get(&row, 2)?,
        }),
        None => None,
    };
    Ok((hold, pending))
}

/// The cool-down after a fraud report ([`policy::fraud_hold`]), given the
/// hold's row: `Some(CoolingDown)` while the provider is held for the
/// identity. The first refusal of a hold records a `requests_held` event.
async fn fraud_hold(
    t: &Tx<'_>,
    e: &RequestEnvelopeBody,
    hold: Option<policy::FraudHold>,
    hold_ms: u64,
    now_ms: u64,
) -> StoreResult<Option<CreateResult>> {
    let identity = Col(e.identity_id);
    let provider = Col(e.service_provider_id);
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
    Ok(Some(CreateResult::CoolingDown {
        retry_after_ms,
        told: notify,
    }))
}

/// The rate-limit windows of a request: its scope, the `FROM ... WHERE`
/// of the creation times it counts (`$1` the identity or provider, `$2`
/// the window start, `$3` the count to skip), the key and the window; the
/// windows switched off (limit 0) left out.
fn windows<'a>(
    e: &'a RequestEnvelopeBody,
    limits: &RequestLimits,
) -> Vec<(LimitScope, &'static str, &'a [u8], Window)> {
    const BY_IDENTITY: &str = "FROM requests WHERE identity_id = $1 AND created_at_ms > $2 \
        AND service_provider_id != decode('00000000000000000000000000000000', 'hex')";
    const BY_PROVIDER: &str = "FROM requests WHERE service_provider_id = $1 AND created_at_ms > $2";
    limits
        .per_identity
        .iter()
        .map(|w| {
            (
                LimitScope::Identity,
                BY_IDENTITY,
                e.identity_id.as_bytes().as_slice(),
                *w,
            )
        })
        .chain(limits.per_provider.iter().map(|w| {
            (
                LimitScope::Provider,
                BY_PROVIDER,
                e.service_provider_id.as_bytes().as_slice(),
                *w,
            )
        }))
        .filter(|(_, _, _, w)| w.limit != 0)
        .collect()
}

/// The requests in a window ([`windows`]).
async fn window_count(
    t: &Tx<'_>,
    sql: &str,
    key: &[u8],
    window: Window,
    now_ms: u64,
) -> StoreResult<u64> {
    let start = policy::window_start(window, now_ms);
    let row = one(
        t,
        &format!("SELECT COUNT(*) {sql}"),
        &[&key, &i64_of(start)],
    )
    .await?;
    col(&row, 0)
}

/// How long until one more request fits `window` ([`policy::window_full`],
/// [`policy::window_wait`]), given its `count` ([`window_count`]): `None`
/// while it fits now.
async fn window_wait(
    t: &Tx<'_>,
    sql: &str,
    key: &[u8],
    window: Window,
    count: u64,
    now_ms: u64,
) -> StoreResult<Option<u64>> {
    let Some(skip) = policy::window_full(window, count) else {
        return Ok(None);
    };
    let start = policy::window_start(window, now_ms);
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

/// The rate limits, given the windows' counts: `Some(RateLimited)` when a
/// window is full.
async fn rate_limited(
    t: &Tx<'_>,
    windows: &[(LimitScope, &str, &[u8], Window)],
    counts: &[u64],
    now_ms: u64,
) -> StoreResult<Option<CreateResult>> {
    let mut waits = Vec::new();
    for ((scope, sql, key, window), count) in windows.iter().zip(counts) {
        if let Some(wait) = window_wait(t, sql, key, *window, *count, now_ms).await? {
            waits.push((*scope, wait));
        }
    }
    Ok(
        policy::longest_wait(waits).map(|(scope, retry_after_ms)| CreateResult::RateLimited {
            scope,
            retry_after_ms,
        }),
    )
}

/// The rows of `sql` for each key, all in one flight (pipelined).
async fn all_of<K: tokio_postgres::types::ToSql + Sync>(
    t: &Tx<'_>,
    sql: &str,
    keys: &[K],
    rest: &[P<'_>],
) -> StoreResult<Vec<Vec<Row>>> {
    try_join_all(keys.iter().map(|k| async move {
        let mut params: Vec<P<'_>> = Vec::with_capacity(1 + rest.len());
        params.push(k);
        params.extend_from_slice(rest);
        all(t, sql, &params).await
    }))
    .await
}

/// A pull's read of `sql` for each of several authenticators, by its
/// identity (`$1`) and the two numbers `rest` gives for its place (`$2`,
/// `$3`); `None` for an unknown authenticator.
fn reads_by_authenticator<'a>(
    t: &'a Tx<'_>,
    authenticators: &'a [Option<Authenticator>],
    sql: &'a str,
    rest: impl Fn(usize) -> [i64; 2] + 'a,
) -> impl Iterator<Item = impl std::future::Future<Output = StoreResult<Option<Vec<Row>>>>> {
    authenticators.iter().enumerate().map(move |(i, auth)| {
        let [second, third] = rest(i);
        async move {
            let Some(auth) = auth else {
                return Ok(None);
            };
            let rows = all(t, sql, &[&Col(auth.identity_id), &second, &third]).await?;
            Ok(Some(rows))
        }
    })
}

/// The insert of a pull's replay nonce ([`use_nonce`]'s), the first
/// statement of [`pull_snapshot`]'s transaction when it has one.
const PULL_NONCE: &str =
    "INSERT INTO nonces (nonce, keep_until_ms) VALUES ($1, $2) ON CONFLICT DO NOTHING";

/// Runs the pull's nonce insert (when there is one; it must be prepared,
/// so that it goes out on its first poll): whether the nonce is fresh.
async fn pull_nonce(t: &Tx<'_>, nonce: Option<(Nonce16, u64)>) -> StoreResult<bool> {
    let Some((nonce, keep_until_ms)) = nonce else {
        return Ok(true);
    };
    let st = t.prepare_cached(PULL_NONCE).await?;
    let n = t
        .execute(&st, &[&nonce.as_bytes().as_slice(), &i64_of(keep_until_ms)])
        .await?;
    Ok(n == 1)
}

/// The transaction of [`Store::pull_snapshot`](crate::store::Store::pull_snapshot)
/// for a phone with several accounts (one account pulls in one statement,
/// [`pull_one`]), and of [`Store::pull_with_nonce`](crate::store::Store::pull_with_nonce)
/// with `nonce` (its nonce and keep time): then its first statement inserts
/// the nonce (as [`use_nonce`]: of two concurrent inserts of one nonce one
/// inserts, the other finds it, or at `REPEATABLE READ` fails to serialize
/// and runs again to find it), in the same flight as the first reads, and
/// `None` answers a nonce seen before (what was read is dropped). The
/// caller runs it read-write ([`PostgresStore::read_writing`]), so the
/// nonce is durable when the answer comes. Two flights: the nonce and the
/// authenticators with their identities, then everything read by identity,
/// pipelined on the connection. It answers any number of accounts, one
/// too (the tests compare [`pull_one`] with it).
///
/// [`PostgresStore::read_writing`]: super::PostgresStore
pub(super) async fn pull_snapshot(
    t: &Tx<'_>,
    nonce: Option<(Nonce16, u64)>,
    authenticator_ids: &[AuthenticatorId],
    feed: &FeedCursors,
    decisions_after: &[u64],
    now_ms: u64,
) -> StoreResult<Option<PullSnapshot>> {
    // Prepared before anything is sent, so that the nonce's insert is the
    // transaction's first statement (its `BEGIN` goes with it).
    if nonce.is_some() {
        t.prepare_cached(PULL_NONCE).await?;
    }
    let newest = matches!(feed, FeedCursors::NewestAbove(_));
    let order = if newest { "DESC" } else { "ASC" };
    // Each read by identity, the identity named by `key` (`$1`).
    let pending_sql_by = |key: &str| {
        format!(
            "{REQUEST_SELECT} WHERE r.identity_id = {key} AND r.status = 'pending' \
             AND r.expires_at_ms > $2 ORDER BY r.created_at_ms"
        )
    };
    let enrolment_sql_by = |key: &str| {
        format!(
            "SELECT {ENROLMENT_COLUMNS} FROM device_enrolments e WHERE e.identity_id = {key} \
             AND {LIVE_ENROLMENT} ORDER BY e.requested_at_ms"
        )
    };
    // One indexed range read per account (same snapshot as the requests),
    // oldest first: paging phones get the oldest events above the cursor,
    // older phones the newest.
    let feed_sql_by = |key: &str| {
        format!(
            "SELECT {EVENT_COLUMNS} FROM security_events WHERE identity_id = {key} AND id > $2 \
             ORDER BY id {order} LIMIT $3"
        )
    };
    let decisions_sql_by = |key: &str| {
        format!(
            "SELECT {PULLED_DECISION_COLUMNS} FROM decisions d WHERE d.identity_id = {key} \
             AND d.seq > $3 ORDER BY d.seq LIMIT $2"
        )
    };
    let max_events = eid_protocol::wire::MAX_FEED_EVENTS as i64;
    let max_decisions = eid_protocol::wire::MAX_PULLED_DECISIONS as i64;
    let now = i64_of(now_ms);
    let (
        fresh,
        authenticators,
        identities,
        pending_rows,
        enrolment_rows,
        feed_rows,
        changes,
        decision_rows,
    ) = {
        // Several accounts: each authenticator with its identity, one
        // statement each, then the reads by identity.
        let (fresh, loaded) = try_join(
            pull_nonce(t, nonce),
            try_join_all(
                authenticator_ids
                    .iter()
                    .map(|id| load_authenticator_and_identity(t, id)),
            ),
        )
        .await?;
        let (authenticators, identities): (Vec<_>, Vec<_>) = loaded.into_iter().unzip();
        let mut seen = Vec::new();
        for identity in identities.iter().flatten().filter(|i| !i.blocked) {
            // Two authenticators of one identity on the same phone share it.
            if !seen.contains(&identity.id) {
                seen.push(identity.id);
            }
        }
        let seen_cols: Vec<Col<&IdentityId>> = seen.iter().map(Col).collect();
        let pending_sql = pending_sql_by("$1");
        let enrolment_sql = enrolment_sql_by("$1");
        let feed_sql = feed_sql_by("$1");
        let feed_reads = reads_by_authenticator(t, &authenticators, &feed_sql, |i| {
            [i64_of(feed.at(i)), max_events]
        });
        // The identity's newest decisions, same snapshot (device journal).
        let decisions_sql = decisions_sql_by("$1");
        let decision_reads = reads_by_authenticator(t, &authenticators, &decisions_sql, |i| {
            [
                max_decisions,
                i64_of(decisions_after.get(i).copied().unwrap_or(0)),
            ]
        });
        // The `COMMIT` goes out in this last flight, behind its reads (see
        // `Tx::commit_in_flight`): every statement is prepared first, so each
        // read is sent on its future's first poll, and with a few accounts
        // (at most `FEW`) every future is polled in that first pass before the
        // commit's. Otherwise it is sent after the answers, as before.
        const FEW: usize = 8;
        let commit_with_reads = authenticator_ids.len() <= FEW;
        if commit_with_reads {
            let changes_sql = open_changes_sql();
            try_join5(
                t.prepare_cached(&pending_sql),
                t.prepare_cached(&enrolment_sql),
                t.prepare_cached(&feed_sql),
                t.prepare_cached(&changes_sql),
                t.prepare_cached(&decisions_sql),
            )
            .await?;
        }
        let ((pending_rows, enrolment_rows, feed_rows, changes, decision_rows), ()) = try_join(
            try_join5(
                all_of(t, &pending_sql, &seen_cols, &[&now]),
                all_of(t, &enrolment_sql, &seen_cols, &[&now]),
                try_join_all(feed_reads),
                try_join_all(seen.iter().map(|id| open_changes_of(t, id))),
                try_join_all(decision_reads),
            ),
            async {
                if commit_with_reads {
                    t.commit_in_flight().await?;
                }
                Ok::<(), StoreError>(())
            },
        )
        .await?;
        (
            fresh,
            authenticators,
            identities,
            pending_rows,
            enrolment_rows,
            feed_rows,
            changes,
            decision_rows,
        )
    };
    if !fresh {
        return Ok(None);
    }
    let mut pending = Vec::new();
    for r in pending_rows.iter().flatten() {
        pending.push(request_row(r)?);
    }
    let mut enrolments = Vec::new();
    for r in enrolment_rows.iter().flatten() {
        enrolments.push(enrolment_row(r)?);
    }
    let mut events = Vec::with_capacity(authenticators.len());
    for rows in feed_rows {
        let mut list = rows
            .unwrap_or_default()
            .iter()
            .map(event_row)
            .collect::<StoreResult<Vec<_>>>()?;
        if newest {
            list.reverse();
        }
        events.push(list);
    }
    let contact_changes = changes
        .into_iter()
        .flatten()
        .filter(|ch| matches!(ch.kind, ChangeKind::Contact(_)) && ch.state_at(now_ms).is_open())
        .collect();
    let mut decisions = Vec::with_capacity(authenticators.len());
    for rows in decision_rows {
        let mut list = Vec::new();
        for row in rows.as_deref().unwrap_or_default() {
            list.extend(pulled_decision_at(row, At::From(0))?);
        }
        decisions.push(list);
    }
    Ok(Some(PullSnapshot {
        authenticators,
        identities,
        pending,
        enrolments,
        events,
        contact_changes,
        decisions,
    }))
}

/// The parts of [`pull_one_sql`]'s rows, each a read of the pull: its
/// column list and each column's type. A part's row (the first column
/// its number, the second its order within the part) puts its `k`-th
/// column of a type in that type's `k`-th column of the row
/// ([`PULL_SLOT_TYPES`], [`pull_part_columns`]), the row's other columns
/// typed `NULL`s: so every row is only as wide as the widest part in each
/// type (21 columns instead of the 69 of all parts side by side, which
/// cost the database more to set up at each execution than the eight
/// statements the one statement saves).
const PULL_PARTS: [(&str, &[&str]); 6] = [
    // 0: the authenticator and its identity ([`authenticator_and_identity_sql`]).
    (
        "",
        &[
            "BYTEA", "BYTEA", "BYTEA", "BYTEA", "TEXT", "BIGINT", "BIGINT", "BIGINT", // a
            "BYTEA", "TEXT", "TEXT", "TEXT", "BOOLEAN", "BIGINT", "TEXT", "TEXT",
            "BOOLEAN", // i
        ],
    ),
    // 1: the pending requests ([`REQUEST_COLUMNS`]).
    (
        REQUEST_COLUMNS,
        &[
            "TEXT", "BYTEA", "TEXT", "TEXT", "BYTEA", "TEXT", "BIGINT", "BYTEA", "TEXT", "BIGINT",
            "TEXT",
        ],
    ),
    // 2: the live enrolments ([`ENROLMENT_COLUMNS`]).
    (
        ENROLMENT_COLUMNS,
        &[
            "BYTEA", "BYTEA", "BYTEA", "BYTEA", "BYTEA", "TEXT", "TEXT", "BIGINT", "BIGINT",
            "BIGINT", "BIGINT",
        ],
    ),
    // 3: the feed ([`EVENT_COLUMNS`]).
    (
        EVENT_COLUMNS,
        &["BIGINT", "TEXT", "BYTEA", "TEXT", "BIGINT", "BIGINT"],
    ),
    // 4: the open changes ([`CHANGE_COLUMNS`]).
    (
        CHANGE_COLUMNS,
        &[
            "BYTEA", "BYTEA", "TEXT", "TEXT", "TEXT", "BIGINT", "BIGINT", "BYTEA", "BIGINT",
            "BIGINT", "BIGINT", "BYTEA", "BIGINT", "TEXT", "TEXT",
        ],
    ),
    // 5: the decisions ([`pulled_decision_at`]).
    (
        PULLED_DECISION_COLUMNS,
        &[
            "BYTEA", "BYTEA", "TEXT", "BIGINT", "BYTEA", "BIGINT", "BIGINT",
        ],
    ),
];

/// The columns of a pull's decisions (read by [`pulled_decision_at`]).
const PULLED_DECISION_COLUMNS: &str = "d.request_id, d.authenticator_id, d.outcome, d.counter, \
     d.decision_sha256, d.decided_at_ms, d.seq";

/// The types of a pull's row after its part and order columns, each as
/// often as the part with most columns of it needs.
const PULL_SLOT_TYPES: [(&str, usize); 4] =
    [("BYTEA", 5), ("TEXT", 6), ("BIGINT", 6), ("BOOLEAN", 2)];

/// The row's column of each column of `part` ([`PULL_PARTS`]), in order.
fn pull_part_columns(part: usize) -> &'static [usize] {
    static MAPS: std::sync::OnceLock<Vec<Vec<usize>>> = std::sync::OnceLock::new();
    &MAPS.get_or_init(|| {
        PULL_PARTS
            .iter()
            .map(|(_, types)| {
                let mut used = [0usize; PULL_SLOT_TYPES.len()];
                types
                    .iter()
                    .map(|ty| {
                        let kind = PULL_SLOT_TYPES
                            .iter()
                            .position(|(t, _)| t == ty)
                            .expect("a type of the pull's columns");
                        let first = 2 + PULL_SLOT_TYPES[..kind]
                            .iter()
                            .map(|(_, n)| n)
                            .sum::<usize>();
                        let column = first + used[kind];
                        used[kind] += 1;
                        assert!(
                            used[kind] <= PULL_SLOT_TYPES[kind].1,
                            "too few {ty} columns"
                        );
                        column
                    })
                    .collect()
            })
            .collect()
    })[part]
}

/// One statement for a pull of one account ([`pull_one`]): every read of
/// [`pull_snapshot`] for one authenticator, as one row per item, each
/// tagged with its part ([`PULL_PARTS`]) and its order within the part,
/// the rows sorted by both. `$1` the authenticator, `$2` now, `$3` the
/// feed's cursor, `$4` the most events, `$5` the decisions' cursor, `$6`
/// the most decisions; with `nonce`, `$7` the nonce and `$8` its keep time.
///
/// The nonce's insert is a data-modifying `WITH` (`n`), run once and to
/// its end whatever reads it; every read hangs on its row (`k` joins `n`,
/// and each read names its identity through `k`), so a nonce seen before
/// (no row in `n`) answers no row at all and reads nothing. Without a
/// nonce `n` is one constant row. The identity of the requests, enrolments
/// and changes is the authenticator's unless blocked (as the several
/// accounts' `seen`); the feed's and the decisions' is the authenticator's.
pub(super) fn pull_one_sql(nonce: bool, newest: bool) -> &'static str {
    static SQL: [std::sync::OnceLock<String>; 4] = [const { std::sync::OnceLock::new() }; 4];
    SQL[usize::from(nonce) * 2 + usize::from(newest)].get_or_init(|| {
        let n = if nonce {
            "INSERT INTO nonces (nonce, keep_until_ms) VALUES ($7, $8) ON CONFLICT DO NOTHING \
             RETURNING 1"
        } else {
            "SELECT 1"
        };
        let order = if newest { "DESC" } else { "ASC" };
        // The authenticator's and identity's columns, named c0, c1, ...
        let auth_columns: Vec<String> = prefixed(AUTHENTICATOR_COLUMNS, "a")
            .split(", ")
            .chain(prefixed(IDENTITY_COLUMNS, "i").split(", "))
            .enumerate()
            .map(|(k, c)| format!("{c} AS c{k}"))
            .collect();
        debug_assert_eq!(auth_columns.len(), PULL_PARTS[0].1.len());
        let auth_read: Vec<String> = (0..auth_columns.len()).map(|k| format!("k.c{k}")).collect();
        // A row of `part`: its number, its order, its own columns each in
        // its place (`pull_part_columns`), typed NULLs in the others.
        let row = |part: usize, ord: &str, own: &str| {
            let width = 2 + PULL_SLOT_TYPES.iter().map(|(_, n)| n).sum::<usize>();
            let mut columns: Vec<String> = PULL_SLOT_TYPES
                .iter()
                .flat_map(|(ty, n)| std::iter::repeat_n(format!("NULL::{ty}"), *n))
                .collect();
            columns.splice(0..0, [part.to_string(), format!("({ord})::BIGINT")]);
            debug_assert_eq!(columns.len(), width);
            for (expr, &at) in own.split(", ").zip(pull_part_columns(part)) {
                columns[at] = expr.to_owned();
            }
            columns.join(", ")
        };
        const OPEN: &str = "(SELECT k.owner FROM k WHERE NOT k.owner_blocked)";
        const ANY: &str = "(SELECT k.owner FROM k)";
        format!(
            "WITH n AS ({n}), \
             k AS (SELECT a.identity_id AS owner, i.blocked AS owner_blocked, {auth} \
             FROM n, authenticators a LEFT JOIN identities i ON i.id = a.identity_id \
             WHERE a.id = $1) \
             SELECT {auth_row} FROM n LEFT JOIN k ON TRUE \
             UNION ALL (SELECT {pending} FROM requests r LEFT JOIN decisions d \
             ON d.request_id = r.id WHERE r.identity_id = {OPEN} AND r.status = 'pending' \
             AND r.expires_at_ms > $2) \
             UNION ALL (SELECT {enrolments} FROM device_enrolments e \
             WHERE e.identity_id = {OPEN} AND {LIVE_ENROLMENT}) \
             UNION ALL (SELECT {feed} FROM security_events WHERE identity_id = {ANY} \
             AND id > $3 ORDER BY id {order} LIMIT $4) \
             UNION ALL (SELECT {changes} FROM self_service_changes \
             WHERE identity_id = {OPEN} AND state IN {OPEN_STATES_SQL}) \
             UNION ALL (SELECT {decisions} FROM decisions d WHERE d.identity_id = {ANY} \
             AND d.seq > $5 ORDER BY d.seq LIMIT $6) \
             ORDER BY 1, 2",
            auth = auth_columns.join(", "),
            auth_row = row(0, "0", &auth_read.join(", ")),
            pending = row(1, "r.created_at_ms", REQUEST_COLUMNS),
            enrolments = row(2, "e.requested_at_ms", ENROLMENT_COLUMNS),
            feed = row(3, "id", EVENT_COLUMNS),
            changes = row(4, "created_at_ms", CHANGE_COLUMNS),
            decisions = row(5, "d.seq", PULLED_DECISION_COLUMNS),
        )
    })
}

/// [`pull_snapshot`] for a phone with one account (most phones), in one
/// statement ([`pull_one_sql`]) without `BEGIN` or `COMMIT`: one statement
/// sees one snapshot, as the reads of one `REPEATABLE READ` transaction
/// did, and the same rows in the same order (each read's `ORDER BY` is its
/// rows' order within their part, the feed's `LIMIT` taken in its
/// direction before the sort). With `nonce` the caller runs it as a write
/// of one statement ([`PostgresStore::write_one`]): its implicit
/// transaction commits before the answer comes (the nonce durable, as
/// before), and of two concurrent inserts of one nonce at `READ COMMITTED`
/// the second waits on the primary key and then inserts nothing, so one
/// pull answers and the other gets `None`, having read nothing.
///
/// [`PostgresStore::write_one`]: super::PostgresStore
pub(super) async fn pull_one(
    t: &Tx<'_>,
    nonce: Option<(Nonce16, u64)>,
    authenticator_id: AuthenticatorId,
    feed: &FeedCursors,
    decisions_after: u64,
    now_ms: u64,
) -> StoreResult<Option<PullSnapshot>> {
    let newest = matches!(feed, FeedCursors::NewestAbove(_));
    let st = t
        .prepare_cached(pull_one_sql(nonce.is_some(), newest))
        .await?;
    let id = Col(authenticator_id);
    let now = i64_of(now_ms);
    let cursor = i64_of(feed.at(0));
    let max_events = eid_protocol::wire::MAX_FEED_EVENTS as i64;
    let after = i64_of(decisions_after);
    let max_decisions = eid_protocol::wire::MAX_PULLED_DECISIONS as i64;
    let rows = match &nonce {
        Some((nonce, keep_until_ms)) => {
            let keep = i64_of(*keep_until_ms);
            let nonce = nonce.as_bytes().as_slice();
            t.query(
                &st,
                &[
                    &id,
                    &now,
                    &cursor,
                    &max_events,
                    &after,
                    &max_decisions,
                    &nonce,
                    &keep,
                ],
            )
            .await?
        }
        None => {
            t.query(
                &st,
                &[&id, &now, &cursor, &max_events, &after, &max_decisions],
            )
            .await?
        }
    };
    // No row: the nonce was seen before (the first row, part 0, is there
    // whenever `n` has its row).
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    if get::<i32>(first, 0)? != 0 {
        return Err(StoreError::Inconsistent(
            "a pull's first row is not its account",
        ));
    }
    let account = At::Map(pull_part_columns(0));
    let (authenticator, identity) = match get::<Option<&[u8]>>(first, account.of(0))? {
        Some(_) => authenticator_and_identity_row_at(first, account)?,
        None => (None, None),
    };
    let mut snapshot = PullSnapshot {
        authenticators: vec![authenticator],
        identities: vec![identity],
        pending: Vec::new(),
        enrolments: Vec::new(),
        events: vec![Vec::new()],
        contact_changes: Vec::new(),
        decisions: vec![Vec::new()],
    };
    for row in &rows[1..] {
        let part: i32 = get(row, 0)?;
        let at = usize::try_from(part)
            .ok()
            .filter(|p| (1..PULL_PARTS.len()).contains(p))
            .map(|p| At::Map(pull_part_columns(p)))
            .ok_or(StoreError::Inconsistent("a pull's row of no known part"))?;
        match part {
            1 => snapshot.pending.push(request_row_at(row, at)?),
            2 => snapshot.enrolments.push(enrolment_row_at(row, at)?),
            4 => {
                let change = change_row_at(row, at)?;
                if matches!(change.kind, ChangeKind::Contact(_))
                    && change.state_at(now_ms).is_open()
                {
                    snapshot.contact_changes.push(change);
                }
            }
            // The feed's newest events were read newest first (its `LIMIT`
            // keeps the newest), and come sorted back oldest first by id.
            3 => snapshot.events[0].push(event_at(row, at)?),
            _ => snapshot.decisions[0].extend(pulled_decision_at(row, at)?),
        }
    }
    Ok(Some(snapshot))
}

/// A decision of a pull's device journal, its columns (those of the
/// decisions' read of [`pull_snapshot`]) at `at`; `None` for a row
/// whose ids or hash have the wrong length (passed over, as before).
fn pulled_decision_at(
    row: &Row,
    at: At<'_>,
) -> StoreResult<Option<eid_protocol::wire::PulledDecision>> {
    let request: &[u8] = get(row, at.of(0))?;
    let authenticator: &[u8] = get(row, at.of(1))?;
    let sha: &[u8] = get(row, at.of(4))?;
    let (Ok(request), Ok(authenticator), Ok(sha)) = (
        <[u8; 16]>::try_from(request),
        <[u8; 16]>::try_from(authenticator),
        <[u8; 32]>::try_from(sha),
    ) else {
        return Ok(None);
    };
    let counter: i64 = get(row, at.of(3))?;
    let decided_at: i64 = get(row, at.of(5))?;
    let seq: i64 = get(row, at.of(6))?;
    Ok(Some(eid_protocol::wire::PulledDecision {
        request_id: RequestId(request),
        authenticator_id: AuthenticatorId(authenticator),
        outcome: col::<Outcome>(row, at.of(2))?,
        counter: u64::try_from(counter).unwrap_or(0),
        decision_sha256: sha,
        decided_at_ms: u64::try_from(decided_at).unwrap_or(0),
        seq: u64::try_from(seq).unwrap_or(0),
    }))
}

/// An authenticator and its identity (`None` each when missing), in one
/// statement.
async fn load_authenticator_and_identity(
    t: &Tx<'_>,
    id: &AuthenticatorId,
) -> StoreResult<(Option<Authenticator>, Option<Identity>)> {
    match opt(t, authenticator_and_identity_sql(), &[&Col(id)]).await? {
        Some(row) => authenticator_and_identity_row(&row),
        None => Ok((None, None)),
    }
}

/// The statement of [`load_authenticator_and_identity`].
fn authenticator_and_identity_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "SELECT {}, {} FROM authenticators a LEFT JOIN identities i ON i.id = a.identity_id \
             WHERE a.id = $1",
            prefixed(AUTHENTICATOR_COLUMNS, "a"),
            prefixed(IDENTITY_COLUMNS, "i"),
        )
    })
}

fn authenticator_and_identity_row(
    row: &Row,
) -> StoreResult<(Option<Authenticator>, Option<Identity>)> {
    authenticator_and_identity_row_at(row, At::From(0))
}

/// [`authenticator_and_identity_row`] with its columns `at`.
fn authenticator_and_identity_row_at(
    row: &Row,
    at: At<'_>,
) -> StoreResult<(Option<Authenticator>, Option<Identity>)> {
    let identity_at = at.skip(column_count(AUTHENTICATOR_COLUMNS));
    let identity = match get::<Option<&[u8]>>(row, identity_at.of(0))? {
        Some(_) => Some(identity_row_at(row, identity_at)?),
        None => None,
    };
    Ok((Some(authenticator_row_at(row, at)?), identity))
}

/// The read of [`Store::decision_context`](crate::store::Store::decision_context):
/// the request (with its decision), the deciding authenticator and the
/// request's identity in one statement, run alone
/// ([`PostgresStore::read_one`]): one statement sees one snapshot, as the
/// three reads of one `REPEATABLE READ` transaction did, without its
/// `BEGIN` and `COMMIT`.
///
/// [`PostgresStore::read_one`]: super::PostgresStore
pub(super) async fn decision_context(
    t: &Tx<'_>,
    request_id: RequestId,
    authenticator_id: AuthenticatorId,
) -> StoreResult<DecisionContext> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        format!(
            "SELECT {REQUEST_COLUMNS}, {}, {} FROM (VALUES (1)) AS one (x) \
             LEFT JOIN (requests r LEFT JOIN decisions d ON d.request_id = r.id) ON r.id = $1 \
             LEFT JOIN identities i ON i.id = r.identity_id \
             LEFT JOIN authenticators a ON a.id = $2",
            prefixed(AUTHENTICATOR_COLUMNS, "a"),
            prefixed(IDENTITY_COLUMNS, "i"),
        )
    });
    let row = one(t, sql, &[&Col(request_id), &Col(authenticator_id)]).await?;
    let auth_base = column_count(REQUEST_COLUMNS);
    let identity_base = auth_base + column_count(AUTHENTICATOR_COLUMNS);
    // A missing row of a left join reads as NULLs: each part is there
    // when its first (never NULL) column is.
    let request = match get::<Option<&str>>(&row, 0)? {
        Some(_) => Some(request_row(&row)?),
        None => None,
    };
    let authenticator = match get::<Option<&[u8]>>(&row, auth_base)? {
        Some(_) => Some(authenticator_row_at(&row, At::From(auth_base))?),
        None => None,
    };
    // The request's identity: none without the request.
    let identity = match get::<Option<&[u8]>>(&row, identity_base)? {
        Some(_) if request.is_some() => Some(identity_row_at(&row, At::From(identity_base))?),
        _ => None,
    };
    Ok(DecisionContext {
        request,
        authenticator,
        identity,
    })
}

/// The transaction of [`Store::use_nonce`](crate::store::Store::use_nonce).
/// One statement in its own transaction (`PostgresStore::write_one`): of
/// two concurrent inserts of one nonce, the second waits on the primary
/// key and then inserts nothing, so a nonce is used once.
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
///
/// Its first statement updates the identity's row (to itself), which locks
/// it until the commit and leaves a new version of it; every other writer
/// that adds a pending request for the identity locks that row too
/// ([`insert_request`]), and so do a decision and a block. Run at `READ
/// COMMITTED` ([`PostgresStore::write_locked`]) while no per-provider
/// window is on: each later statement then reads the newest committed rows
/// with the lock held, so the blocked flag, the fraud hold, the pending
/// count and the per-identity windows are exact, and two creates for one
/// person (on any replica) queue rather than both pass the cap. The new
/// version is what keeps the serializable writers right: one that read
/// the identity's requests before this commit and then locks its row (as
/// they all do) fails with a serialization error and runs again, seeing
/// this request. A per-provider window counts across identities, which no
/// row lock covers: with one on, the caller runs this `SERIALIZABLE`, as
/// before.
///
/// A refusal that wrote nothing (all but a hold's first, which records
/// its event) ends with `ROLLBACK` ([`Tx::rollback`]): the lock gave the
/// transaction an id, and its `COMMIT` would wait for a WAL flush, which
/// an unknown user ID's answer never does (docs/threat-model.md, "Learning
/// whether a user ID exists"). It changed nothing, so an abort loses
/// nothing; the lock is released as by a commit.
///
/// [`PostgresStore::write_locked`]: super::PostgresStore
pub(super) async fn create_request_limited(
    t: &Tx<'_>,
    request: &StoredRequest,
    envelope_json: &str,
    limits: &RequestLimits,
    now_ms: u64,
) -> StoreResult<CreateResult> {
    let result = create_locked(t, request, envelope_json, limits, now_ms).await?;
    if !result.wrote() {
        t.rollback();
    }
    Ok(result)
}

/// [`create_request_limited`]'s checks under the lock, and its insert.
async fn create_locked(
    t: &Tx<'_>,
    request: &StoredRequest,
    envelope_json: &str,
    limits: &RequestLimits,
    now_ms: u64,
) -> StoreResult<CreateResult> {
    let e = &request.envelope;
    // Every check's read goes out in one flight after the identity's
    // update (prepared first, so it reaches the database first); they are
    // then applied in order (a read a refusal makes unneeded costs nothing
    // but its row).
    let lock_sql = format!(
        "UPDATE identities SET blocked = blocked WHERE id = $1 RETURNING {IDENTITY_COLUMNS}"
    );
    let lock = t.prepare_cached(&lock_sql).await?;
    let windows = windows(e, limits);
    let (identity, (hold, pending), counts) = try_join3(
        async {
            t.query_opt(&lock, &[&Col(e.identity_id)])
                .await?
                .map(|r| identity_row(&r))
                .transpose()
        },
        fraud_hold_and_pending(t, e, limits.fraud_hold_ms, now_ms),
        try_join_all(
            windows
                .iter()
                .map(|(_, sql, key, window)| window_count(t, sql, key, *window, now_ms)),
        ),
    )
    .await?;
    match identity {
        None => return Ok(CreateResult::UnknownIdentity),
        Some(i) if i.blocked => return Ok(CreateResult::Blocked),
        Some(_) => {}
    }
    if let Some(held) = fraud_hold(t, e, hold, limits.fraud_hold_ms, now_ms).await? {
        return Ok(held);
    }
    if pending >= limits.max_pending {
        return Ok(CreateResult::TooManyPending);
    }
    if let Some(limited) = rate_limited(t, &windows, &counts, now_ms).await? {
        return Ok(limited);
    }
    // The last statement: the commit rides with it.
    insert_request_row_then(t, request, envelope_json, true).await?;
    Ok(CreateResult::Created)
}

/// What [`create_at_once`] did.
pub(super) enum CreateAtOnce {
    /// The answer, committed: `Created` (the request inserted), or a
    /// refusal that writes nothing and needs nothing more read (an unknown
    /// or blocked identity, the pending cap).
    Done(CreateResult),
    /// Nothing inserted: a fraud hold's row or a full window is there (the
    /// refusal's event or its wait need more), and
    /// [`create_request_limited`] judges afresh in a transaction of its own.
    Longer,
    /// Never, while the guard is each refusal's negation: the guard
    /// inserted (and the `COMMIT` in the same flight kept) a request the
    /// rules refuse. The caller cancels it ([`cancel_pending_request`], no
    /// webhook: its provider was never told of it) and answers an
    /// error, so a rule added to the judging and not to the guard can never
    /// leave a request the rules refused in a person's app.
    AgainstTheRules,
}

/// The count of pending requests, the hold's row and each window's count
/// of [`create_at_once`]'s statements, by their parameters: the identity
/// `id`, the provider `provider`, now `now`, and the `k`th window's start
/// `$(window + 2k)`. Answers the pending count's and each window's
/// subquery (the hold's row is joined by the caller).
fn at_once_counts(
    windows: &[(LimitScope, &str, &[u8], Window)],
    id: &str,
    provider: &str,
    now: &str,
    window: usize,
) -> (String, Vec<String>) {
    let pending = format!(
        "(SELECT COUNT(*) FROM requests WHERE identity_id = {id} AND status = 'pending' \
         AND expires_at_ms > {now})"
    );
    let counts = windows
        .iter()
        .enumerate()
        .map(|(k, (scope, ..))| {
            let start = window + 2 * k;
            match scope {
                LimitScope::Identity => format!(
                    "(SELECT COUNT(*) FROM requests WHERE identity_id = {id} \
                     AND created_at_ms > ${start} \
                     AND service_provider_id != decode('00000000000000000000000000000000', 'hex'))"
                ),
                LimitScope::Provider => format!(
                    "(SELECT COUNT(*) FROM requests WHERE service_provider_id = {provider} \
                     AND created_at_ms > ${start})"
                ),
            }
        })
        .collect();
    (pending, counts)
}

/// The first statement of [`create_at_once`]: it locks the identity's row
/// by updating it (to itself), as [`create_request_limited`] does, but
/// only when the facts it reads allow a creation at once (its `WHERE` is
/// the guard of [`create_at_once_sql`] on the person's own facts: not
/// blocked, fewer pending than the cap, no hold's row, every per-person
/// window below its limit). A refusal for one of them then writes
/// nothing, so its transaction gets no id and its `COMMIT` waits for no
/// WAL flush, as an unknown user ID's answer, which makes no transaction
/// at all (docs/threat-model.md). The per-provider windows (`windows`
/// holds only the per-person ones) are left to the insert's guard: their
/// refusal is answered "busy", not with a stand-in, and their count over
/// a busy provider's requests is not read twice. Parameters: `$1` the
/// identity, `$2` now, `$3` the cap, then each window's start and limit,
/// then the provider when holds are on. Answers the rows it updated (1:
/// locked).
fn lock_at_once_sql(windows: &[(LimitScope, &str, &[u8], Window)], holds: bool) -> String {
    let provider = format!("${}", 4 + 2 * windows.len());
    let (pending, counts) = at_once_counts(windows, "$1", &provider, "$2", 4);
    let mut sql = format!(
        "UPDATE identities SET blocked = blocked WHERE id = $1 AND NOT blocked AND {pending} < $3"
    );
    if holds {
        sql.push_str(&format!(
            " AND NOT EXISTS (SELECT 1 FROM fraud_holds h WHERE h.identity_id = $1 \
             AND h.service_provider_id = {provider})"
        ));
    }
    for (k, count) in counts.iter().enumerate() {
        sql.push_str(&format!(" AND {count} < ${}", 5 + 2 * k));
    }
    sql
}

/// The statement of [`create_at_once`] for `windows` and holds on or off:
/// one snapshot reads the facts the rules of [`create_request_limited`]
/// judge (the blocked flag, the pending count, the hold's row, each
/// window's count, exactly as there) and inserts the request only when
/// each of them is one the rules allow at once: not blocked, fewer
/// pending than the cap, no hold's row at all, every window below its
/// limit; and only when the identity's row it reads is the version this
/// transaction wrote, i.e. when [`lock_at_once_sql`] locked it. (That the
/// transaction merely has an id would not do: at `READ COMMITTED` an
/// update that waited for a concurrent writer of the row, then found the
/// row no longer matching its `WHERE` on re-checking, has an id and
/// updated nothing.) Parameters:
/// `$1`-`$8` the request's columns, `$9` now, `$10` the cap, then each
/// window's start and limit. Answers the facts and whether it inserted;
/// no row for an unknown identity.
pub(super) fn create_at_once_sql(
    windows: &[(LimitScope, &str, &[u8], Window)],
    holds: bool,
) -> String {
    let (pending, subqueries) = at_once_counts(windows, "$2", "$3", "$9", 11);
    let mut counts = String::new();
    let mut guards = String::new();
    let mut columns = String::new();
    for (k, count) in subqueries.iter().enumerate() {
        let limit = 12 + 2 * k;
        counts.push_str(&format!(", {count} AS w{k}"));
        guards.push_str(&format!(" AND f.w{k} < ${limit}"));
        columns.push_str(&format!(", f.w{k}"));
    }
    let (hold_columns, hold_join) = if holds {
        (
            "h.reported_at_ms, h.notified",
            " LEFT JOIN fraud_holds h ON h.identity_id = i.id AND h.service_provider_id = $3",
        )
    } else {
        (
            "NULL::BIGINT AS reported_at_ms, NULL::BOOLEAN AS notified",
            "",
        )
    };
    format!(
        "WITH f AS MATERIALIZED (SELECT i.blocked, {pending} AS pending, \
         i.xmin = pg_current_xact_id_if_assigned()::xid AS locked, \
         {hold_columns}{counts} FROM identities i{hold_join} WHERE i.id = $2), \
         ins AS (INSERT INTO requests (id, identity_id, service_provider_id, envelope, \
         envelope_signature, binding_code, status, created_at_ms, expires_at_ms) \
         SELECT $1::BYTEA, $2::BYTEA, $3::BYTEA, $4::TEXT, $5::BYTEA, $6::TEXT, 'pending', \
         $7::BIGINT, $8::BIGINT FROM f WHERE NOT f.blocked AND f.pending < $10 \
         AND f.reported_at_ms IS NULL{guards} \
         AND f.locked RETURNING 1) \
         SELECT f.blocked, f.pending, f.reported_at_ms, f.notified, \
         (SELECT COUNT(*) FROM ins){columns} FROM f"
    )
}

/// [`create_request_limited`] in one flight, `BEGIN` and `COMMIT`
/// included, in the same transaction kind (the caller's runner): the
/// identity's row locked first when the facts allow a creation at once
/// ([`lock_at_once_sql`]: its own statement, so the next one's snapshot
/// is taken with the lock held), then one statement
/// ([`create_at_once_sql`]) that reads the facts and inserts the request
/// when its guard, each part a fact the rules allow at once, holds and the
/// lock was taken, and the `COMMIT`. The lock's guard only spares a
/// refusal its write: at `READ COMMITTED` it may see facts older than the
/// lock (a concurrent create it waited for), which the second statement,
/// under the lock, reads afresh; it inserts nothing without the lock, so
/// the cap and the windows are as exact as under an unconditional lock.
/// The facts it answers are the ones its guard saw (one statement, one
/// snapshot), and the rules (`policy.rs`) judge them here in the same
/// order as [`create_request_limited`]: the guard only ever inserts what
/// they allow (each of its parts is the negation of one refusal), and a
/// refusal the guard made that the rules would not (a hold's row whose
/// hold is over, or a lock refused on older facts) or one whose answer
/// needs more (a hold, a full window) is [`CreateAtOnce::Longer`]: nothing
/// was inserted, and the caller runs [`create_request_limited`]. Answers
/// also whether its commit was durable (waited for a WAL flush): when the
/// lock was taken, which a refusal made on facts that changed while the
/// lock waited (a concurrent create for the person) shares with a creation.
pub(super) async fn create_at_once(
    t: &Tx<'_>,
    request: &StoredRequest,
    envelope_json: &str,
    limits: &RequestLimits,
    now_ms: u64,
) -> StoreResult<(CreateAtOnce, bool)> {
    let e = &request.envelope;
    let windows = windows(e, limits);
    let holds = limits.fraud_hold_ms > 0;
    let person: Vec<_> = windows
        .iter()
        .filter(|w| w.0 == LimitScope::Identity)
        .cloned()
        .collect();
    let lock_sql = lock_at_once_sql(&person, holds);
    let sql = create_at_once_sql(&windows, holds);
    // Prepared first, so each goes out on its future's first poll, in order.
    let (lock, create) = try_join(t.prepare_cached(&lock_sql), t.prepare_cached(&sql)).await?;
    let id = Col(e.request_id);
    let identity_id = Col(e.identity_id);
    let provider = Col(e.service_provider_id);
    let created = i64_of(e.created_at_ms);
    let expires = i64_of(e.expires_at_ms);
    let now = i64_of(now_ms);
    let cap = i64_of(limits.max_pending);
    let bounds: Vec<[i64; 2]> = windows
        .iter()
        .map(|(_, _, _, w)| [i64_of(policy::window_start(*w, now_ms)), i64_of(w.limit)])
        .collect();
    let mut lock_params: Vec<P<'_>> = vec![&identity_id, &now, &cap];
    let mut params: Vec<P<'_>> = vec![
        &id,
        &identity_id,
        &provider,
        &envelope_json,
        &request.envelope_signature.0,
        &request.binding_code,
        &created,
        &expires,
        &now,
        &cap,
    ];
    for ((scope, ..), [start, limit]) in windows.iter().zip(&bounds) {
        if *scope == LimitScope::Identity {
            lock_params.push(start);
            lock_params.push(limit);
        }
        params.push(start);
        params.push(limit);
    }
    if holds {
        lock_params.push(&provider);
    }
    let (locked, facts, ()) = try_join3(
        t.execute(&lock, &lock_params),
        t.query_opt(&create, &params),
        // Polled last: sent after the two statements.
        async {
            t.commit_in_flight().await?;
            Ok::<(), StoreError>(())
        },
    )
    .await?;
    // The lock gave the transaction an id, so its `COMMIT` waited for a
    // WAL flush, whatever the insert did.
    let durable = locked == 1;
    let Some(facts) = facts else {
        return Ok((CreateAtOnce::Done(CreateResult::UnknownIdentity), durable));
    };
    let inserted = col::<u64>(&facts, 4)? == 1;
    let judged = judge_at_once(&facts, &windows, limits, now_ms)?;
    let done = match (judged, inserted) {
        (Some(CreateResult::Created), true) => CreateAtOnce::Done(CreateResult::Created),
        // The guard refused what the rules allow (a hold that is over, a
        // lock refused on older facts): the longer path inserts.
        (Some(CreateResult::Created), false) | (None, false) => CreateAtOnce::Longer,
        (Some(refused), false) => CreateAtOnce::Done(refused),
        // Never: each part of the guard is the negation of one refusal.
        (_, true) => CreateAtOnce::AgainstTheRules,
    };
    Ok((done, durable))
}

/// The rules of [`create_request_limited`] on the facts of
/// [`create_at_once`], in the same order: `Some` answer, or `None` when the
/// answer needs the longer path (a fraud hold, a full window).
fn judge_at_once(
    facts: &Row,
    windows: &[(LimitScope, &str, &[u8], Window)],
    limits: &RequestLimits,
    now_ms: u64,
) -> StoreResult<Option<CreateResult>> {
    if get::<bool>(facts, 0)? {
        return Ok(Some(CreateResult::Blocked));
    }
    let hold = match get::<Option<i64>>(facts, 2)? {
        Some(_) => Some(policy::FraudHold {
            reported_at_ms: col(facts, 2)?,
            notified: get(facts, 3)?,
        }),
        None => None,
    };
    if policy::fraud_hold(hold, limits.fraud_hold_ms, now_ms) != policy::HoldCheck::Clear {
        return Ok(None);
    }
    let pending: u64 = col(facts, 1)?;
    if pending >= limits.max_pending {
        return Ok(Some(CreateResult::TooManyPending));
    }
    for (k, (_, _, _, window)) in windows.iter().enumerate() {
        let count: u64 = col(facts, 5 + k)?;
        if policy::window_full(*window, count).is_some() {
            return Ok(None);
        }
    }
    Ok(Some(CreateResult::Created))
}

/// The transaction of [`Store::decide`](crate::store::Store::decide).
///
/// With `read_committed`, it runs at `READ COMMITTED`
/// ([`PostgresStore::write_locked`]) and its checks rest on row locks, all
/// taken in its first flight, in the order the serializable decision
/// takes them: the request's row (every decision,
/// cancel and stop of a request locks it first, and a decision is inserted
/// only under it, so the "already decided?" read after it, a statement of
/// its own and so a snapshot taken once the lock is held, sees any decision
/// that won before), then the decider's authenticator and identity rows
/// (`FOR UPDATE OF a, i`: their newest versions, so the counter check, the
/// active and blocked flags cannot be passed by a concurrent decision of
/// the same phone or a block; and the decision's `seq` and events, drawn
/// after the identity's lock, are in commit order per identity). The
/// serializable checks of other writes lose nothing by it: a decision only
/// turns a pending request into a decided one (so a concurrent pending
/// count can only be higher than the truth), and what it writes beyond its
/// own rows (the request's status, the authenticator's counter, an
/// enrolment's state, an event, a fraud hold by upsert) those writes
/// either lock or update themselves. The two rare cases whose follow-ups
/// check more than locked rows (a self-service change's login, a code
/// device's activation) return `None` before writing anything, and the
/// caller runs them again serializable (`read_committed` false, which
/// never returns `None`).
///
/// [`PostgresStore::write_locked`]: super::PostgresStore
pub(super) async fn decide(
    t: &Tx<'_>,
    request_id: RequestId,
    receipt_json: &str,
    record: &DecisionRecord,
    pin_verified: bool,
    now_ms: u64,
    read_committed: bool,
) -> StoreResult<Option<DecideResult>> {
    // The three locks and two reads go out in one flight, prepared first so
    // that they reach the database in this order.
    const REQUEST_LOCK: &str = "SELECT r.status, r.expires_at_ms, r.service_provider_id \
         FROM requests r WHERE r.id = $1 FOR UPDATE";
    // With it, whether any follow-up applies (an enrolment awaiting this
    // request, a code device's activation, the provider's webhook): most
    // decisions have none, and their writes are then skipped. Read after
    // the request's lock: an enrolment names its request from the
    // request's creation on (same transaction), so none can appear once the
    // request is locked. A code device's activation is recorded in a write
    // of its own after the creation, only while the request is pending;
    // both that write and a self-service decision run SERIALIZABLE, so when
    // they overlap one of them is aborted and run again. A webhook added while
    // this decision commits may or may not get its delivery, as before
    // (its insert read the webhooks at its own statement's start).
    const DECIDED: &str = "SELECT EXISTS (SELECT 1 FROM decisions WHERE request_id = $1), \
         EXISTS (SELECT 1 FROM code_devices WHERE pending_request_id = $1 AND state = 'unassigned'), \
         EXISTS (SELECT 1 FROM device_enrolments WHERE request_id = $1 AND state = 'awaiting_approval'), \
         EXISTS (SELECT 1 FROM webhooks w WHERE w.service_provider_id = \
         (SELECT r.service_provider_id FROM requests r WHERE r.id = $1))";
    // An authenticator's identity always exists (a foreign key).
    const DECIDER: &str = "SELECT a.state = 'active', a.last_counter, i.blocked, a.identity_id, \
         i.notify_every_use \
         FROM authenticators a JOIN identities i ON i.id = a.identity_id WHERE a.id = $1 \
         FOR UPDATE OF a, i";
    let (request_lock, decided_st, decider) = try_join3(
        t.prepare_cached(REQUEST_LOCK),
        t.prepare_cached(DECIDED),
        t.prepare_cached(DECIDER),
    )
    .await?;
    let (request_row, decided_row, decider_row) = try_join3(
        t.query_opt(&request_lock, &[&Col(request_id)]),
        t.query_one(&decided_st, &[&Col(request_id)]),
        t.query_opt(&decider, &[&Col(record.authenticator_id)]),
    )
    .await?;
    let Some(row) = request_row else {
        return Err(StoreError::Inconsistent("request vanished"));
    };
    let status: RequestStatus = col(&row, 0)?;
    let expires_at_ms: u64 = col(&row, 1)?;
    let provider: ServiceProviderId = col(&row, 2)?;
    let decided: bool = get(&decided_row, 0)?;
    let code_device_pending: bool = get(&decided_row, 1)?;
    let enrolment_awaiting: bool = get(&decided_row, 2)?;
    let webhook: bool = get(&decided_row, 3)?;
    if read_committed && (provider == eid_protocol::SELF_SERVICE_PROVIDER_ID || code_device_pending)
    {
        return Ok(None);
    }
    if decided {
        let existing = load_request(t, &request_id).await?.and_then(|r| r.decision);
        return existing
            .map(|d| Some(DecideResult::AlreadyDecided(d)))
            .ok_or(StoreError::Inconsistent("decision vanished"));
    }
    if let Some(refused) = policy::request_decidable(status, expires_at_ms, now_ms) {
        return Ok(Some(refused));
    }
    let Some(row) = decider_row else {
        return Ok(Some(DecideResult::NotAllowed));
    };
    let active: bool = get(&row, 0)?;
    let last_counter: u64 = col(&row, 1)?;
    let blocked: bool = get(&row, 2)?;
    let identity_id: IdentityId = col(&row, 3)?;
    let notify_every_use: bool = get(&row, 4)?;
    if let Some(refused) = policy::decider_allowed(active, blocked, record.counter, last_counter) {
        return Ok(Some(refused));
    }
    // The writes, independent of each other, in one flight (all after the
    // identity's lock above); the follow-ups only where the first flight
    // found one.
    let status = RequestStatus::from_outcome(record.outcome);
    let reset_sql = if pin_verified {
        "UPDATE authenticators SET last_counter = $2, failed_pin_count = 0 WHERE id = $1"
    } else {
        "UPDATE authenticators SET last_counter = $2 WHERE id = $1"
    };
    // Prepared first (a cached statement costs nothing), so that each
    // write goes out on its future's first poll, in order.
    const INSERT_DECISION: &str = "INSERT INTO decisions (request_id, authenticator_id, outcome, \
         counter, decision_sha256, receipt, decided_at_ms, identity_id, call_verdict) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    let (insert_decision, set_status, reset) = try_join3(
        t.prepare_cached(INSERT_DECISION),
        t.prepare_cached("UPDATE requests SET status = $2 WHERE id = $1"),
        t.prepare_cached(reset_sql),
    )
    .await?;
    let event = policy::decision_event(record.outcome, notify_every_use);
    // Most decisions write nothing more: their `COMMIT` then goes out in
    // the writes' flight (and is waited for, as always).
    let commit_with_writes = !webhook
        && !enrolment_awaiting
        && !code_device_pending
        && event.is_none()
        && provider != eid_protocol::SELF_SERVICE_PROVIDER_ID
        && record.outcome != Outcome::ReportFraud;
    try_join(
        try_join3(
            async {
                t.execute(
                    &insert_decision,
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
                Ok::<(), StoreError>(())
            },
            async {
                t.execute(&set_status, &[&Col(request_id), &Col(status)])
                    .await?;
                Ok::<(), StoreError>(())
            },
            async {
                if webhook {
                    super::webhooks::enqueue(t, &request_id, status, record.decided_at_ms).await?;
                }
                Ok::<(), StoreError>(())
            },
        ),
        try_join4(
            async {
                t.execute(
                    &reset,
                    &[&Col(record.authenticator_id), &i64_of(record.counter)],
                )
                .await?;
                Ok::<(), StoreError>(())
            },
            async {
                if enrolment_awaiting {
                    decide_enrolment(t, &request_id, record.outcome, record.decided_at_ms).await?;
                }
                Ok::<(), StoreError>(())
            },
            async {
                if code_device_pending {
                    super::code_devices::on_decision(t, &request_id, record, now_ms).await?;
                }
                Ok::<(), StoreError>(())
            },
            // Polled last: sent after the three writes above.
            async {
                if commit_with_writes {
                    t.commit_in_flight().await?;
                }
                Ok::<(), StoreError>(())
            },
        ),
    )
    .await?;
    if commit_with_writes {
        return Ok(Some(DecideResult::Accepted(record.clone())));
    }
    if let Some(kind) = event {
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
    Ok(Some(DecideResult::Accepted(record.clone())))
}

/// What [`decide_at_once`] did.
pub(super) enum AtOnce {
    /// The decision is recorded (and committed).
    Written,
    /// No such request.
    Vanished,
    /// Nothing written: a follow-up applies, the decision exists, or the
    /// authenticator is gone; the longer path judges and writes.
    Longer,
    /// Nothing written: the facts changed; here are the fresh ones.
    Changed(DecisionFacts),
}

/// The refusal the rules of [`decide`] (`policy.rs`) give `record` on
/// `facts`, if any.
pub(super) fn refusal(
    facts: &DecisionFacts,
    record: &DecisionRecord,
    now_ms: u64,
) -> Option<DecideResult> {
    policy::request_decidable(facts.status, facts.expires_at_ms, now_ms).or_else(|| {
        policy::decider_allowed(
            facts.active,
            facts.blocked,
            record.counter,
            facts.last_counter,
        )
    })
}

/// Whether `record`, allowed on `facts`, has none of the follow-ups that
/// `eid_decide` leaves to [`decide`]: an event, a self-service change's
/// login, a fraud hold.
pub(super) fn without_follow_ups(facts: &DecisionFacts, record: &DecisionRecord) -> bool {
    facts.service_provider_id != eid_protocol::SELF_SERVICE_PROVIDER_ID
        && record.outcome != Outcome::ReportFraud
        && policy::decision_event(record.outcome, facts.notify_every_use).is_none()
}

/// A decision in one statement, its own transaction (`write_one`): the
/// function `eid_decide` (migration 0015) locks the request, then the
/// authenticator and its identity, as [`decide`] does, and writes the
/// decision only when the facts `judged` (allowed by [`refusal`], and
/// [`without_follow_ups`]) are unchanged and no follow-up applies; else it writes
/// nothing and returns what it found. Exactly one decision wins: a second
/// one waits on the request's lock and then finds the status changed and
/// the decision there. Its answer comes after the durable commit.
pub(super) async fn decide_at_once(
    t: &Tx<'_>,
    request_id: RequestId,
    receipt_json: &str,
    record: &DecisionRecord,
    pin_verified: bool,
    judged: &DecisionFacts,
) -> StoreResult<AtOnce> {
    const CALL: &str = "SELECT o_written, o_request_found, o_status, o_expires_at_ms, o_follow_up, \
         o_authenticator_found, o_identity_id, o_active, o_last_counter, o_blocked, \
         o_notify_every_use FROM eid_decide($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
         $12, $13, $14, $15, $16, $17, $18)";
    let status = RequestStatus::from_outcome(record.outcome);
    let row = one(
        t,
        CALL,
        &[
            &Col(request_id),
            &Col(record.authenticator_id),
            &Col(judged.identity_id),
            &Col(record.outcome),
            &i64_of(record.counter),
            &record.decision_sha256.as_slice(),
            &receipt_json,
            &i64_of(record.decided_at_ms),
            &Col(record.call_verdict),
            &Col(status),
            &pin_verified,
            &Col(judged.service_provider_id),
            &Col(judged.status),
            &i64_of(judged.expires_at_ms),
            &judged.active,
            &i64_of(judged.last_counter),
            &judged.blocked,
            &judged.notify_every_use,
        ],
    )
    .await?;
    if get::<bool>(&row, 0)? {
        return Ok(AtOnce::Written);
    }
    if !get::<bool>(&row, 1)? {
        return Ok(AtOnce::Vanished);
    }
    if get::<bool>(&row, 4)? || !get::<bool>(&row, 5)? {
        return Ok(AtOnce::Longer);
    }
    Ok(AtOnce::Changed(DecisionFacts {
        service_provider_id: judged.service_provider_id,
        status: col(&row, 2)?,
        expires_at_ms: col(&row, 3)?,
        identity_id: col(&row, 6)?,
        active: get(&row, 7)?,
        last_counter: col(&row, 8)?,
        blocked: get(&row, 9)?,
        notify_every_use: get(&row, 10)?,
    }))
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

#[cfg(test)]
mod pull_layout {
    use super::{PULL_PARTS, PULL_SLOT_TYPES, pull_part_columns};

    /// Each part of a pull's one statement puts each of its columns in a
    /// column of the row of its own type, none twice, none past the row's
    /// width, and part and order first.
    #[test]
    fn each_part_s_columns_have_their_own_places_of_their_type() {
        let mut types = vec!["INTEGER", "BIGINT"];
        for (ty, n) in PULL_SLOT_TYPES {
            types.extend(std::iter::repeat_n(ty, n));
        }
        for (part, (columns, declared)) in PULL_PARTS.iter().enumerate() {
            let map = pull_part_columns(part);
            assert_eq!(map.len(), declared.len());
            if part > 0 {
                assert_eq!(columns.split(", ").count(), declared.len(), "part {part}");
            }
            let mut seen = std::collections::HashSet::new();
            for (&at, ty) in map.iter().zip(declared.iter()) {
                assert!(at >= 2 && at < types.len());
                assert_eq!(types[at], *ty, "part {part}");
                assert!(seen.insert(at), "part {part} uses column {at} twice");
            }
        }
    }
}
