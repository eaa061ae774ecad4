//! The webhook outbox: a delivery row per decided or cancelled request of
//! a provider with a webhook, claimed with leases by every replica's
//! dispatcher.

use eid_protocol::wire::RequestStatus;
use eid_protocol::{RequestId, ServiceProviderId};

use super::columns::{Col, col, get, i64_of};
use super::connection::{Tx, all, exec};
use crate::store::{ClaimedWebhookDelivery, DeliveryOutcome, StoreResult, Webhook};

/// Queues a delivery for the request's provider, if it has a webhook, in
/// the caller's transaction.
pub(super) async fn enqueue(
    t: &Tx<'_>,
    request_id: &RequestId,
    status: RequestStatus,
    at_ms: u64,
) -> StoreResult<()> {
    exec(
        t,
        "INSERT INTO webhook_deliveries \
         (service_provider_id, request_id, status, decided_at_ms, next_attempt_ms) \
         SELECT w.service_provider_id, r.id, $2::text, $3::bigint, $3::bigint FROM requests r \
         JOIN webhooks w ON w.service_provider_id = r.service_provider_id WHERE r.id = $1",
        &[&Col(request_id), &Col(status), &i64_of(at_ms)],
    )
    .await?;
    Ok(())
}

/// The claiming transaction of [`Store::claim_webhook_deliveries`](crate::store::Store::claim_webhook_deliveries),
/// at `READ COMMITTED` with `FOR UPDATE SKIP LOCKED` like the security
/// events' (see [`super::outbox::claim_deliveries`]).
pub(super) async fn claim(
    t: &Tx<'_>,
    now_ms: u64,
    limit: u32,
    lease_ms: u64,
    max_attempts: u32,
) -> StoreResult<Vec<ClaimedWebhookDelivery>> {
    // A provider that removed its webhook: its due rows are dropped.
    exec(
        t,
        "UPDATE webhook_deliveries SET next_attempt_ms = $2, last_error = 'webhook removed' \
         WHERE id IN (SELECT id FROM webhook_deliveries \
         WHERE delivered_at_ms IS NULL AND next_attempt_ms <= $1 AND service_provider_id NOT IN \
         (SELECT service_provider_id FROM webhooks) FOR UPDATE SKIP LOCKED)",
        &[&i64_of(now_ms), &i64::MAX],
    )
    .await?;
    let rows = all(
        t,
        "SELECT d.id, d.request_id, d.status, d.decided_at_ms, d.attempts, \
         w.service_provider_id, w.url, w.secret, w.created_at_ms \
         FROM webhook_deliveries d JOIN webhooks w ON w.service_provider_id = d.service_provider_id \
         WHERE d.delivered_at_ms IS NULL AND d.next_attempt_ms <= $1 AND d.attempts < $2 \
         ORDER BY d.next_attempt_ms LIMIT $3 FOR UPDATE OF d SKIP LOCKED",
        &[&i64_of(now_ms), &i64::from(max_attempts), &i64::from(limit)],
    )
    .await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for r in &rows {
        let attempts: u32 = col(r, 4)?;
        claimed.push(ClaimedWebhookDelivery {
            id: col(r, 0)?,
            request_id: col::<RequestId>(r, 1)?,
            status: col::<RequestStatus>(r, 2)?,
            decided_at_ms: col(r, 3)?,
            attempts: attempts + 1,
            webhook: Webhook {
                service_provider_id: col::<ServiceProviderId>(r, 5)?,
                url: get(r, 6)?,
                secret: zeroize::Zeroizing::new(get::<Vec<u8>>(r, 7)?),
                created_at_ms: col(r, 8)?,
            },
        });
    }
    for d in &claimed {
        exec(
            t,
            "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_ms = $2 WHERE id = $1",
            &[&i64_of(d.id), &i64_of(now_ms.saturating_add(lease_ms))],
        )
        .await?;
    }
    Ok(claimed)
}

/// The transaction of [`Store::finish_webhook_delivery`](crate::store::Store::finish_webhook_delivery).
pub(super) async fn finish(
    t: &Tx<'_>,
    id: u64,
    outcome: &DeliveryOutcome,
    now_ms: u64,
) -> StoreResult<()> {
    super::outbox::finish_in(t, "webhook_deliveries", id, outcome, now_ms).await
}
