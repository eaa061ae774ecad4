//! The security-event outbox: event rows (the app's feed) and one
//! delivery row per out-of-band address, claimed and finished by the
//! dispatcher.

use eid_protocol::AuthenticatorId;
use eid_protocol::events::SecurityEventKind;
use rusqlite::{Connection, Row, params};

use super::columns::{Col, i64_of, opt_col, opt_u64_at, u64_at};
use crate::store::{
    Channel, ClaimedDelivery, DeliveryOutcome, NewEvent, Recipient, StoreResult, StoredEvent,
};

/// Records a security event in the outbox, inside the caller's transaction:
/// the event row (the app's feed) and one delivery row per out-of-band
/// address: the identity's phone and e-mail as stored now, plus the event's
/// extra recipients (for example the new contact of a change). Returns the
/// event id.
pub(super) fn insert_event(c: &Connection, event: &NewEvent) -> rusqlite::Result<u64> {
    let identity = Col(event.identity_id);
    let id: i64 = c
        .prepare_cached(
            "INSERT INTO security_events (identity_id, kind, authenticator_id, detail, occurred_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
        )?
        .query_row(
            params![
                identity,
                event.kind.as_str(),
                event.authenticator_id.as_ref().map(Col),
                event.detail,
                i64_of(event.occurred_at_ms)
            ],
            |r| r.get(0),
        )?;
    let (phone, email): (Option<String>, Option<String>) = c
        .prepare_cached("SELECT phone, email FROM identities WHERE id = ?1")?
        .query_row(params![identity], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let mut recipients: Vec<Recipient> = Vec::with_capacity(2 + event.extra_recipients.len());
    recipients.extend(phone.map(Recipient::Sms));
    recipients.extend(email.map(Recipient::Email));
    for extra in &event.extra_recipients {
        if !recipients.contains(extra) {
            recipients.push(extra.clone());
        }
    }
    let mut insert = c.prepare_cached(
        "INSERT INTO event_deliveries (event_id, channel, address, next_attempt_ms) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for recipient in recipients {
        let (channel, address) = match recipient {
            Recipient::Sms(a) => (Channel::Sms, a),
            Recipient::Email(a) => (Channel::Email, a),
        };
        insert.execute(params![id, channel, address, i64_of(event.occurred_at_ms)])?;
    }
    Ok(id as u64)
}

pub(super) const EVENT_COLUMNS: &str =
    "id, kind, authenticator_id, detail, occurred_at_ms, audit_id";

pub(super) fn event_row(row: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    let kind: String = row.get(1)?;
    Ok(StoredEvent {
        id: u64_at(row, 0)?,
        kind: SecurityEventKind::parse(&kind).unwrap_or(SecurityEventKind::Unknown),
        authenticator_id: opt_col(row, 2)?,
        detail: row.get(3)?,
        occurred_at_ms: u64_at(row, 4)?,
        audit_id: opt_u64_at(row, 5)?,
    })
}

/// Whether any delivery is due: most dispatcher polls find nothing, and this
/// read lets them skip the writer.
pub(super) fn any_due(c: &Connection, now_ms: u64) -> StoreResult<bool> {
    Ok(c.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM event_deliveries \
         WHERE delivered_at_ms IS NULL AND next_attempt_ms <= ?1)",
    )?
    .query_row(params![i64_of(now_ms)], |r| r.get::<_, bool>(0))?)
}

/// The claiming transaction of [`Store::claim_deliveries`](crate::store::Store::claim_deliveries).
pub(super) fn claim_deliveries(
    c: &Connection,
    channels: Vec<Channel>,
    now_ms: u64,
    limit: u32,
    lease_ms: u64,
    max_attempts: u32,
) -> StoreResult<Vec<ClaimedDelivery>> {
    // Due rows through the partial index on next_attempt_ms.
    let mut stmt = c.prepare_cached(&format!(
        "SELECT d.id, d.channel, d.address, d.attempts,                  e.id, e.kind, e.authenticator_id, e.detail, e.occurred_at_ms, e.audit_id                  FROM event_deliveries d JOIN security_events e ON e.id = d.event_id                  WHERE d.delivered_at_ms IS NULL AND d.next_attempt_ms <= ?1 AND d.attempts < ?2                  AND d.channel IN ({}) ORDER BY d.next_attempt_ms, d.id LIMIT ?3",
        channels
            .iter()
            .map(|ch| format!("'{}'", ch.as_str()))
            .collect::<Vec<_>>()
            .join(",")
    ))?;
    // Unlike the feed, a claim skips a row it cannot read (an unknown channel,
    // a malformed id) instead of failing: one corrupt row must not stop every
    // other delivery.
    let rows = stmt.query_map(params![i64_of(now_ms), max_attempts, limit], |r| {
        let channel: String = r.get(1)?;
        let event = StoredEvent {
            id: u64_at(r, 4)?,
            kind: SecurityEventKind::parse(&r.get::<_, String>(5)?)
                .unwrap_or(SecurityEventKind::Unknown),
            authenticator_id: r
                .get::<_, Option<Vec<u8>>>(6)?
                .and_then(|v| <[u8; 16]>::try_from(v).ok())
                .map(AuthenticatorId),
            detail: r.get(7)?,
            occurred_at_ms: u64_at(r, 8)?,
            audit_id: opt_u64_at(r, 9)?,
        };
        Ok((
            u64_at(r, 0)?,
            channel,
            r.get::<_, String>(2)?,
            r.get::<_, u32>(3)?,
            event,
        ))
    })?;
    let mut claimed = Vec::new();
    for row in rows {
        let (id, channel, address, attempts, event) = row?;
        let Some(channel) = Channel::parse(&channel) else {
            continue;
        };
        claimed.push(ClaimedDelivery {
            id,
            channel,
            address,
            attempts: attempts + 1,
            event,
        });
    }
    let mut lease = c.prepare_cached(
        "UPDATE event_deliveries SET attempts = attempts + 1, next_attempt_ms = ?2 WHERE id = ?1",
    )?;
    for d in &claimed {
        lease.execute(params![
            i64_of(d.id),
            i64_of(now_ms.saturating_add(lease_ms))
        ])?;
    }
    Ok(claimed)
}

/// The transaction of [`Store::finish_delivery`](crate::store::Store::finish_delivery).
pub(super) fn finish_delivery(
    c: &Connection,
    id: u64,
    outcome: DeliveryOutcome,
    now_ms: u64,
) -> StoreResult<()> {
    finish_in(c, "event_deliveries", id, outcome, now_ms)
}

/// Records how one delivery attempt ended in a delivery table (the
/// outbox's, or the webhooks' of the same shape): delivered, or failed
/// with the next attempt's time (none: given up).
pub(super) fn finish_in(
    c: &Connection,
    table: &'static str,
    id: u64,
    outcome: DeliveryOutcome,
    now_ms: u64,
) -> StoreResult<()> {
    match outcome {
        DeliveryOutcome::Delivered => {
            c.prepare_cached(&format!(
                "UPDATE {table} SET delivered_at_ms = ?2, last_error = NULL WHERE id = ?1"
            ))?
            .execute(params![i64_of(id), i64_of(now_ms)])?;
        }
        DeliveryOutcome::Failed { error, retry_at_ms } => {
            // Given up: parked at the far end of the due index.
            let next = retry_at_ms.map_or(i64::MAX, i64_of);
            c.prepare_cached(&format!(
                "UPDATE {table} SET last_error = ?2, next_attempt_ms = ?3 WHERE id = ?1"
            ))?
            .execute(params![i64_of(id), error, next])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::store::*;
    use eid_protocol::IdentityId;
    use eid_protocol::events::SecurityEventKind;

    const LEASE: u64 = 300_000;

    async fn store_with_blocked_identity() -> (tempfile::TempDir, SqliteStore, IdentityId) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.sqlite3")).unwrap();
        let id = IdentityId::random();
        store
            .create_identity(Identity {
                id,
                user_id: "anna#2024x".into(),
                user_id_folded: "anna#2024x".into(),
                display_name: None,
                blocked: false,
                created_at_ms: 0,
                phone: Some("+4520304050".into()),
                email: Some("anna@example.dk".into()),
                notify_every_use: false,
            })
            .await
            .unwrap();
        store.set_blocked(id, true, 1_000).await.unwrap().unwrap();
        (dir, store, id)
    }

    #[tokio::test]
    async fn a_claimed_delivery_is_claimed_again_only_after_its_lease() {
        let (_dir, store, _) = store_with_blocked_identity().await;
        let claim = |now: u64| store.claim_deliveries(vec![Channel::Sms], now, 10, LEASE, 5);
        let first = claim(1_000).await.unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].attempts, 1);
        assert_eq!(first[0].address, "+4520304050");
        assert_eq!(first[0].event.kind, SecurityEventKind::IdentityBlocked);
        assert_eq!(first[0].event.occurred_at_ms, 1_000);
        // Leased: a second dispatcher (or loop) does not get it...
        assert!(claim(1_000).await.unwrap().is_empty());
        assert!(claim(1_000 + LEASE - 1).await.unwrap().is_empty());
        // ...but if the first died mid-delivery, it comes back (at least once).
        let again = claim(1_000 + LEASE).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!((again[0].id, again[0].attempts), (first[0].id, 2));
        store
            .finish_delivery(again[0].id, DeliveryOutcome::Delivered, 1_000 + LEASE)
            .await
            .unwrap();
        assert!(
            claim(u64::MAX / 4).await.unwrap().is_empty(),
            "delivered once"
        );
        // The e-mail row is untouched by SMS claims.
        let email = store
            .claim_deliveries(vec![Channel::Email], 1_000, 10, LEASE, 5)
            .await
            .unwrap();
        assert_eq!(email.len(), 1);
        assert_eq!(email[0].address, "anna@example.dk");
    }

    #[tokio::test]
    async fn failures_wait_their_retry_time_and_attempts_are_bounded() {
        let (_dir, store, _) = store_with_blocked_identity().await;
        let claim = |now: u64| store.claim_deliveries(vec![Channel::Email], now, 10, LEASE, 2);
        let d = claim(1_000).await.unwrap().remove(0);
        let failed = |retry| DeliveryOutcome::Failed {
            error: "transient: SMTP 421".into(),
            retry_at_ms: retry,
        };
        store
            .finish_delivery(d.id, failed(Some(31_000)), 1_000)
            .await
            .unwrap();
        assert!(claim(30_999).await.unwrap().is_empty());
        let d = claim(31_000).await.unwrap().remove(0);
        assert_eq!(d.attempts, 2);
        store
            .finish_delivery(d.id, failed(Some(91_000)), 31_000)
            .await
            .unwrap();
        // Two attempts were the maximum.
        assert!(claim(u64::MAX / 4).await.unwrap().is_empty());
        // Given up rows are parked even for a dispatcher allowing more.
        store
            .finish_delivery(d.id, failed(None), 31_000)
            .await
            .unwrap();
        assert!(
            store
                .claim_deliveries(vec![Channel::Email], u64::MAX / 4, 10, LEASE, 100)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .claim_deliveries(Vec::new(), 1_000, 10, LEASE, 5)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn only_a_change_of_block_state_is_an_event() {
        let (_dir, store, id) = store_with_blocked_identity().await;
        store.set_blocked(id, true, 2_000).await.unwrap().unwrap();
        store.set_blocked(id, false, 3_000).await.unwrap().unwrap();
        assert!(
            store
                .set_blocked(IdentityId::random(), true, 4_000)
                .await
                .unwrap()
                .is_none()
        );
        let all = store
            .claim_deliveries(vec![Channel::Sms], 10_000, 10, LEASE, 5)
            .await
            .unwrap();
        let kinds: Vec<_> = all
            .iter()
            .map(|d| (d.event.kind, d.event.occurred_at_ms))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (SecurityEventKind::IdentityBlocked, 1_000),
                (SecurityEventKind::IdentityUnblocked, 3_000)
            ]
        );
        assert!(
            !store
                .set_notify_every_use(IdentityId::random(), true, AuthenticatorId::random(), 4_000)
                .await
                .unwrap()
        );
        assert!(
            store
                .set_notify_every_use(id, true, AuthenticatorId::random(), 4_000)
                .await
                .unwrap()
        );
        assert!(store.identity(id).await.unwrap().unwrap().notify_every_use);
    }
}
