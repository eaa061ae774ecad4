//! The webhook outbox: one delivery row per decided or cancelled request of
//! a provider with a webhook, written in the transaction that decided it,
//! claimed and finished by the webhook dispatcher (`crate::webhooks`).

use eid_protocol::wire::RequestStatus;
use eid_protocol::{RequestId, ServiceProviderId};
use rusqlite::{Connection, params};

use super::columns::{Col, col, i64_of, u64_at};
use crate::store::{ClaimedWebhookDelivery, DeliveryOutcome, StoreResult, Webhook};

/// Queues the event "this request is now `status`" for the request's
/// provider, inside the caller's transaction, if the provider has a
/// webhook. One statement: a primary-key probe of `webhooks`, so a
/// decision for a provider without one pays next to nothing, and a webhook
/// set a moment before the decision is never missed (no cache to go stale).
pub(super) fn enqueue(
    c: &Connection,
    request_id: &RequestId,
    status: RequestStatus,
    at_ms: u64,
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO webhook_deliveries \
         (service_provider_id, request_id, status, decided_at_ms, next_attempt_ms) \
         SELECT w.service_provider_id, r.id, ?2, ?3, ?3 FROM requests r \
         JOIN webhooks w ON w.service_provider_id = r.service_provider_id WHERE r.id = ?1",
    )?
    .execute(params![Col(request_id), Col(status), i64_of(at_ms)])?;
    Ok(())
}

/// [`enqueue`] for a request whose provider the caller has already read:
/// one lookup of the provider's webhook, none of the request.
pub(super) fn enqueue_for(
    c: &Connection,
    provider: &[u8; 16],
    request_id: &RequestId,
    status: RequestStatus,
    at_ms: u64,
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO webhook_deliveries \
         (service_provider_id, request_id, status, decided_at_ms, next_attempt_ms) \
         SELECT w.service_provider_id, ?2, ?3, ?4, ?4 FROM webhooks w \
         WHERE w.service_provider_id = ?1",
    )?
    .execute(params![
        provider.as_slice(),
        Col(request_id),
        Col(status),
        i64_of(at_ms)
    ])?;
    Ok(())
}

/// Whether any webhook delivery is due.
pub(super) fn any_due(c: &Connection, now_ms: u64) -> StoreResult<bool> {
    Ok(c.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM webhook_deliveries \
         WHERE delivered_at_ms IS NULL AND next_attempt_ms <= ?1)",
    )?
    .query_row(params![i64_of(now_ms)], |r| r.get(0))?)
}

/// The transaction of [`Store::claim_webhook_deliveries`](crate::store::Store::claim_webhook_deliveries).
pub(super) fn claim(
    c: &Connection,
    now_ms: u64,
    limit: u32,
    lease_ms: u64,
    max_attempts: u32,
) -> StoreResult<Vec<ClaimedWebhookDelivery>> {
    // Rows of a provider that removed its webhook since: nothing to send to.
    c.prepare_cached(
        "UPDATE webhook_deliveries SET next_attempt_ms = ?2, last_error = 'webhook removed' \
         WHERE delivered_at_ms IS NULL AND next_attempt_ms <= ?1 AND service_provider_id NOT IN \
         (SELECT service_provider_id FROM webhooks)",
    )?
    .execute(params![i64_of(now_ms), i64::MAX])?;
    let mut stmt = c.prepare_cached(
        "SELECT d.id, d.request_id, d.status, d.decided_at_ms, d.attempts, \
         w.service_provider_id, w.url, w.secret, w.created_at_ms \
         FROM webhook_deliveries d JOIN webhooks w ON w.service_provider_id = d.service_provider_id \
         WHERE d.delivered_at_ms IS NULL AND d.next_attempt_ms <= ?1 AND d.attempts < ?2 \
         ORDER BY d.next_attempt_ms LIMIT ?3",
    )?;
    let claimed = stmt
        .query_map(params![i64_of(now_ms), max_attempts, limit], |r| {
            Ok(ClaimedWebhookDelivery {
                id: u64_at(r, 0)?,
                request_id: col::<RequestId>(r, 1)?,
                status: col::<RequestStatus>(r, 2)?,
                decided_at_ms: u64_at(r, 3)?,
                attempts: r.get::<_, u32>(4)? + 1,
                webhook: Webhook {
                    service_provider_id: col::<ServiceProviderId>(r, 5)?,
                    url: r.get(6)?,
                    secret: zeroize::Zeroizing::new(r.get::<_, Vec<u8>>(7)?),
                    created_at_ms: u64_at(r, 8)?,
                },
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut lease = c.prepare_cached(
        "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_ms = ?2 WHERE id = ?1",
    )?;
    for d in &claimed {
        lease.execute(params![
            i64_of(d.id),
            i64_of(now_ms.saturating_add(lease_ms))
        ])?;
    }
    Ok(claimed)
}

/// The transaction of [`Store::finish_webhook_delivery`](crate::store::Store::finish_webhook_delivery).
pub(super) fn finish(
    c: &Connection,
    id: u64,
    outcome: DeliveryOutcome,
    now_ms: u64,
) -> StoreResult<()> {
    super::outbox::finish_in(c, "webhook_deliveries", id, outcome, now_ms)
}
