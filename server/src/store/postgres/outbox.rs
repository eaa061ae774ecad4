//! The security-event outbox: event rows (the app's feed) and one
//! delivery row per out-of-band address, claimed and finished by the
//! dispatchers of every replica.

use eid_protocol::events::SecurityEventKind;
use eid_protocol::{AuthenticatorId, IdentityId};
use tokio_postgres::Row;

use super::columns::{At, Col, col, get, i64_of, opt_col};
use super::connection::{Tx, all, exec, one};
use crate::store::{
    Channel, ClaimedDelivery, DeliveryOutcome, NewEvent, Recipient, StoreResult, StoredEvent,
};

/// Locks an identity's row until the transaction ends. Every write that
/// appends to an identity's feed (an event, a decision) takes it first, so
/// their ids, drawn from a sequence after the lock, are in commit order per
/// identity: a phone's cursor ("everything up to id N") can then never skip
/// a row that commits later with a smaller id.
pub(super) async fn lock_identity(t: &Tx<'_>, id: &IdentityId) -> StoreResult<Option<Row>> {
    let st = t
        .prepare_cached("SELECT phone, email FROM identities WHERE id = $1 FOR UPDATE")
        .await?;
    t.query_opt(&st, &[&Col(id)]).await
}

/// Records a security event in the outbox, inside the caller's transaction:
/// the event row (the app's feed) and one delivery row per out-of-band
/// address: the identity's phone and e-mail as stored now, plus the event's
/// extra recipients (for example the new contact of a change). Returns the
/// event id.
pub(super) async fn insert_event(t: &Tx<'_>, event: &NewEvent) -> StoreResult<u64> {
    let contact = lock_identity(t, &event.identity_id).await?.ok_or(
        crate::store::StoreError::Inconsistent("event for no identity"),
    )?;
    let phone: Option<String> = get(&contact, 0)?;
    let email: Option<String> = get(&contact, 1)?;
    let row = one(
        t,
        "INSERT INTO security_events (identity_id, kind, authenticator_id, detail, occurred_at_ms) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
        &[
            &Col(event.identity_id),
            &event.kind.as_str(),
            &event.authenticator_id.as_ref().map(Col),
            &event.detail,
            &i64_of(event.occurred_at_ms),
        ],
    )
    .await?;
    let id: i64 = get(&row, 0)?;
    let mut recipients: Vec<Recipient> = Vec::with_capacity(2 + event.extra_recipients.len());
    recipients.extend(phone.map(Recipient::Sms));
    recipients.extend(email.map(Recipient::Email));
    for extra in &event.extra_recipients {
        if !recipients.contains(extra) {
            recipients.push(extra.clone());
        }
    }
    for recipient in recipients {
        let (channel, address) = match recipient {
            Recipient::Sms(a) => (Channel::Sms, a),
            Recipient::Email(a) => (Channel::Email, a),
        };
        exec(
            t,
            "INSERT INTO event_deliveries (event_id, channel, address, next_attempt_ms) \
             VALUES ($1, $2, $3, $4)",
            &[&id, &Col(channel), &address, &i64_of(event.occurred_at_ms)],
        )
        .await?;
    }
    Ok(u64::try_from(id).unwrap_or(0))
}

pub(super) const EVENT_COLUMNS: &str =
    "id, kind, authenticator_id, detail, occurred_at_ms, audit_id";

pub(super) fn event_row(row: &Row) -> StoreResult<StoredEvent> {
    event_at(row, At::From(0))
}

/// An event whose columns ([`EVENT_COLUMNS`]) start at `at`.
pub(super) fn event_at(row: &Row, at: At<'_>) -> StoreResult<StoredEvent> {
    let kind: String = get(row, at.of(1))?;
    Ok(StoredEvent {
        id: col(row, at.of(0))?,
        kind: SecurityEventKind::parse(&kind).unwrap_or(SecurityEventKind::Unknown),
        authenticator_id: opt_col(row, at.of(2))?,
        detail: get(row, at.of(3))?,
        occurred_at_ms: col(row, at.of(4))?,
        audit_id: opt_col(row, at.of(5))?,
    })
}

/// The claiming transaction of [`Store::claim_deliveries`](crate::store::Store::claim_deliveries).
/// Runs at `READ COMMITTED`: `FOR UPDATE SKIP LOCKED` lets the dispatchers
/// of several replicas claim side by side, each passing over the rows
/// another is claiming, and the lease (the new `next_attempt_ms`) keeps
/// them from claiming one row twice after that.
pub(super) async fn claim_deliveries(
    t: &Tx<'_>,
    channels: &[Channel],
    now_ms: u64,
    limit: u32,
    lease_ms: u64,
    max_attempts: u32,
) -> StoreResult<Vec<ClaimedDelivery>> {
    let names: Vec<&str> = channels.iter().map(|c| c.as_str()).collect();
    let rows = all(
        t,
        "SELECT d.id, d.channel, d.address, d.attempts, \
         e.id, e.kind, e.authenticator_id, e.detail, e.occurred_at_ms, e.audit_id \
         FROM event_deliveries d JOIN security_events e ON e.id = d.event_id \
         WHERE d.delivered_at_ms IS NULL AND d.next_attempt_ms <= $1 AND d.attempts < $2 \
         AND d.channel = ANY($4) ORDER BY d.next_attempt_ms, d.id LIMIT $3 \
         FOR UPDATE OF d SKIP LOCKED",
        &[
            &i64_of(now_ms),
            &i64::from(max_attempts),
            &i64::from(limit),
            &names,
        ],
    )
    .await?;
    let mut claimed = Vec::new();
    for r in &rows {
        // Unlike the feed, a claim skips a row it cannot read (an unknown
        // channel, a malformed id) instead of failing: one corrupt row
        // must not stop every other delivery.
        let channel: String = get(r, 1)?;
        let Some(channel) = Channel::parse(&channel) else {
            continue;
        };
        let authenticator_id = get::<Option<Vec<u8>>>(r, 6)?
            .and_then(|v| <[u8; 16]>::try_from(v).ok())
            .map(AuthenticatorId);
        let Ok(mut event) = event_at_lenient(r) else {
            continue;
        };
        event.authenticator_id = authenticator_id;
        let attempts: u32 = col(r, 3)?;
        claimed.push(ClaimedDelivery {
            id: col(r, 0)?,
            channel,
            address: get(r, 2)?,
            attempts: attempts + 1,
            event,
        });
    }
    for d in &claimed {
        exec(
            t,
            "UPDATE event_deliveries SET attempts = attempts + 1, next_attempt_ms = $2 WHERE id = $1",
            &[&i64_of(d.id), &i64_of(now_ms.saturating_add(lease_ms))],
        )
        .await?;
    }
    Ok(claimed)
}

/// The event of a claimed delivery row (columns from 4), its authenticator
/// left to the caller.
fn event_at_lenient(r: &Row) -> StoreResult<StoredEvent> {
    let kind: String = get(r, 5)?;
    Ok(StoredEvent {
        id: col(r, 4)?,
        kind: SecurityEventKind::parse(&kind).unwrap_or(SecurityEventKind::Unknown),
        authenticator_id: None,
        detail: get(r, 7)?,
        occurred_at_ms: col(r, 8)?,
        audit_id: opt_col(r, 9)?,
    })
}

/// The transaction of [`Store::finish_delivery`](crate::store::Store::finish_delivery).
pub(super) async fn finish_delivery(
    t: &Tx<'_>,
    id: u64,
    outcome: &DeliveryOutcome,
    now_ms: u64,
) -> StoreResult<()> {
    finish_in(t, "event_deliveries", id, outcome, now_ms).await
}

/// Records how one delivery attempt ended in a delivery table (the
/// outbox's, or the webhooks' of the same shape): delivered, or failed
/// with the next attempt's time (none: given up).
pub(super) async fn finish_in(
    t: &Tx<'_>,
    table: &'static str,
    id: u64,
    outcome: &DeliveryOutcome,
    now_ms: u64,
) -> StoreResult<()> {
    match outcome {
        DeliveryOutcome::Delivered => {
            exec(
                t,
                &format!(
                    "UPDATE {table} SET delivered_at_ms = $2, last_error = NULL WHERE id = $1"
                ),
                &[&i64_of(id), &i64_of(now_ms)],
            )
            .await?;
        }
        DeliveryOutcome::Failed { error, retry_at_ms } => {
            // Given up: parked at the far end of the due index.
            let next = retry_at_ms.map_or(i64::MAX, i64_of);
            exec(
                t,
                &format!("UPDATE {table} SET last_error = $2, next_attempt_ms = $3 WHERE id = $1"),
                &[&i64_of(id), error, &next],
            )
            .await?;
        }
    }
    Ok(())
}
