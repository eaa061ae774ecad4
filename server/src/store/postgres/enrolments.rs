//! Device enrolments (a new device added from an existing one): start with
//! decoys and limits, the decision's effect, the new device's poll, and
//! cancellation.

use eid_protocol::events::SecurityEventKind;
use eid_protocol::wire::RequestStatus;
use eid_protocol::{AuthenticatorId, IdentityId, Outcome, PublicKey, RequestId};
use tokio_postgres::Row;

use super::columns::{At, Col, col, get, i64_of, opt_col};
use super::connection::{Tx, exec, one, opt};
use super::identities::{insert_authenticator, load_authenticator, load_identity};
use super::outbox::insert_event;
use super::requests::{insert_request, load_request};
use crate::limits::ENROLMENT_WINDOW_MS;
use crate::policy;
use crate::store::{
    Authenticator, AuthenticatorState, CancelEnrolmentResult, Enrolment, EnrolmentPoll,
    EnrolmentStoredState, NewEvent, StartEnrolmentResult, StoreResult, StoredRequest,
};

fn device_event(
    identity_id: IdentityId,
    kind: SecurityEventKind,
    authenticator_id: AuthenticatorId,
    now_ms: u64,
) -> NewEvent {
    NewEvent {
        identity_id,
        kind,
        authenticator_id: Some(authenticator_id),
        detail: None,
        occurred_at_ms: now_ms,
        extra_recipients: Vec::new(),
    }
}

pub(super) const ENROLMENT_COLUMNS: &str = "e.id, e.identity_id, e.request_id, e.device_public_key, \
     e.pin_public_key, e.code, e.state, e.requested_at_ms, e.expires_at_ms, e.wait_ms, e.usable_at_ms";

pub(super) fn enrolment_row(row: &Row) -> StoreResult<Enrolment> {
    enrolment_row_at(row, At::From(0))
}

/// [`enrolment_row`] with its columns `at` (a joined read).
pub(super) fn enrolment_row_at(row: &Row, at: At<'_>) -> StoreResult<Enrolment> {
    Ok(Enrolment {
        id: col(row, at.of(0))?,
        identity_id: opt_col(row, at.of(1))?,
        request_id: opt_col(row, at.of(2))?,
        device_public_key: col::<PublicKey>(row, at.of(3))?,
        pin_public_key: col::<PublicKey>(row, at.of(4))?,
        code: get(row, at.of(5))?,
        state: col(row, at.of(6))?,
        requested_at_ms: col(row, at.of(7))?,
        expires_at_ms: col(row, at.of(8))?,
        wait_ms: col(row, at.of(9))?,
        usable_at_ms: opt_col(row, at.of(10))?,
    })
}

pub(super) async fn load_enrolment(
    t: &Tx<'_>,
    id: &AuthenticatorId,
) -> StoreResult<Option<Enrolment>> {
    opt(
        t,
        &format!("SELECT {ENROLMENT_COLUMNS} FROM device_enrolments e WHERE e.id = $1"),
        &[&Col(id)],
    )
    .await?
    .map(|r| enrolment_row(&r))
    .transpose()
}

/// An enrolment still in play at `$2`: waiting, or awaiting approval of a
/// pending, unexpired request.
pub(super) const LIVE_ENROLMENT: &str = "(e.state = 'waiting' OR (e.state = 'awaiting_approval' AND EXISTS \
     (SELECT 1 FROM requests r WHERE r.id = e.request_id AND r.status = 'pending' AND r.expires_at_ms > $2)))";

async fn insert_enrolment(t: &Tx<'_>, e: &Enrolment) -> StoreResult<()> {
    exec(
        t,
        "INSERT INTO device_enrolments (id, identity_id, request_id, device_public_key, pin_public_key, \
         code, state, requested_at_ms, expires_at_ms, wait_ms, usable_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &[
            &Col(e.id),
            &e.identity_id.as_ref().map(Col),
            &e.request_id.as_ref().map(Col),
            &e.device_public_key.as_bytes().as_slice(),
            &e.pin_public_key.as_bytes().as_slice(),
            &e.code,
            &Col(e.state),
            &i64_of(e.requested_at_ms),
            &i64_of(e.expires_at_ms),
            &i64_of(e.wait_ms),
            &e.usable_at_ms.map(i64_of),
        ],
    )
    .await?;
    Ok(())
}

async fn close_enrolment(t: &Tx<'_>, id: &AuthenticatorId, now_ms: u64) -> StoreResult<()> {
    exec(
        t,
        "UPDATE device_enrolments SET state = 'cancelled', closed_at_ms = $2 WHERE id = $1",
        &[&Col(id), &i64_of(now_ms)],
    )
    .await?;
    Ok(())
}

/// A decision on a new-device request moves its enrolment: approval starts
/// the waiting period, any other outcome cancels it.
pub(super) async fn decide_enrolment(
    t: &Tx<'_>,
    request_id: &RequestId,
    outcome: Outcome,
    now: u64,
) -> StoreResult<()> {
    let approved = outcome == Outcome::Approve;
    let sql = if approved {
        "UPDATE device_enrolments SET state = 'waiting', usable_at_ms = $2 + wait_ms \
         WHERE request_id = $1 AND state = 'awaiting_approval' RETURNING id, identity_id"
    } else {
        "UPDATE device_enrolments SET state = 'cancelled', closed_at_ms = $2 \
         WHERE request_id = $1 AND state = 'awaiting_approval' RETURNING id, identity_id"
    };
    if let Some(r) = opt(t, sql, &[&Col(request_id), &i64_of(now)]).await? {
        let enrolment_id: AuthenticatorId = col(&r, 0)?;
        let identity_id: IdentityId = col(&r, 1)?;
        let kind = if approved {
            SecurityEventKind::NewDeviceApproved
        } else {
            SecurityEventKind::NewDeviceCancelled
        };
        insert_event(t, &device_event(identity_id, kind, enrolment_id, now)).await?;
    }
    Ok(())
}

/// Active authenticators plus live enrolments of an identity, but `except`.
async fn count_devices(
    t: &Tx<'_>,
    identity_id: &IdentityId,
    except: &AuthenticatorId,
    now_ms: u64,
) -> StoreResult<u64> {
    let row = one(
        t,
        &format!(
            "SELECT (SELECT COUNT(*) FROM authenticators WHERE identity_id = $1 AND state = 'active') + \
             (SELECT COUNT(*) FROM device_enrolments e WHERE e.identity_id = $1 AND {LIVE_ENROLMENT} \
             AND e.id != $3)"
        ),
        &[&Col(identity_id), &i64_of(now_ms), &Col(except)],
    )
    .await?;
    col(&row, 0)
}

/// Active authenticators plus approved (waiting) enrolments.
async fn count_approved_devices(t: &Tx<'_>, identity_id: &IdentityId) -> StoreResult<u64> {
    let row = one(
        t,
        "SELECT (SELECT COUNT(*) FROM authenticators WHERE identity_id = $1 AND state = 'active') + \
         (SELECT COUNT(*) FROM device_enrolments WHERE identity_id = $1 AND state = 'waiting')",
        &[&Col(identity_id)],
    )
    .await?;
    col(&row, 0)
}

/// The transaction of [`Store::purge_decoy_enrolments`](crate::store::Store::purge_decoy_enrolments).
pub(super) async fn purge_decoy_enrolments(t: &Tx<'_>, now_ms: u64, max: u64) -> StoreResult<u64> {
    exec(
        t,
        "DELETE FROM device_enrolments WHERE id IN (SELECT id FROM device_enrolments \
         WHERE identity_id IS NULL AND expires_at_ms <= $1 LIMIT $2)",
        &[&i64_of(now_ms), &i64_of(max)],
    )
    .await
}

/// The transaction of [`Store::start_enrolment`](crate::store::Store::start_enrolment).
pub(super) async fn start_enrolment(
    t: &Tx<'_>,
    enrolment: &Enrolment,
    envelope_json: Option<&str>,
    request: Option<&StoredRequest>,
    max_devices: u64,
    max_per_hour: u64,
    now_ms: u64,
) -> StoreResult<StartEnrolmentResult> {
    let existing = opt(
        t,
        &format!(
            "SELECT {ENROLMENT_COLUMNS} FROM device_enrolments e \
             WHERE e.device_public_key = $1 AND e.pin_public_key = $3 AND \
             ((e.identity_id IS NULL AND e.expires_at_ms > $2) OR \
             (e.identity_id IS NOT NULL AND {LIVE_ENROLMENT})) LIMIT 1"
        ),
        &[
            &enrolment.device_public_key.as_bytes().as_slice(),
            &i64_of(now_ms),
            &enrolment.pin_public_key.as_bytes().as_slice(),
        ],
    )
    .await?;
    if let Some(existing) = existing {
        return Ok(StartEnrolmentResult::Existing(enrolment_row(&existing)?));
    }
    let decoy = Enrolment {
        identity_id: None,
        request_id: None,
        ..enrolment.clone()
    };
    let (Some(request), Some(envelope_json)) = (request, envelope_json) else {
        insert_enrolment(t, &decoy).await?;
        return Ok(StartEnrolmentResult::Started(decoy));
    };
    let e = &request.envelope;
    let identity = e.identity_id;
    match load_identity(t, &identity).await? {
        Some(i) if !i.blocked => {}
        _ => {
            insert_enrolment(t, &decoy).await?;
            return Ok(StartEnrolmentResult::Started(decoy));
        }
    }
    let row = one(
        t,
        &format!(
            "SELECT COUNT(*) FILTER (WHERE e.state = 'awaiting_approval' AND {LIVE_ENROLMENT}), \
             COUNT(*) FILTER (WHERE e.requested_at_ms > $3) \
             FROM device_enrolments e WHERE e.identity_id = $1"
        ),
        &[
            &Col(identity),
            &i64_of(now_ms),
            &i64_of(now_ms.saturating_sub(ENROLMENT_WINDOW_MS)),
        ],
    )
    .await?;
    let awaiting: u64 = col(&row, 0)?;
    let last_hour: u64 = col(&row, 1)?;
    if !policy::enrolment_allowed_from_any_source(awaiting, last_hour, max_per_hour) {
        insert_enrolment(t, &decoy).await?;
        return Ok(StartEnrolmentResult::Started(decoy));
    }
    if policy::device_cap_reached(count_approved_devices(t, &identity).await?, max_devices) {
        return Ok(StartEnrolmentResult::DeviceLimitReached);
    }
    insert_request(t, request, envelope_json).await?;
    let real = Enrolment {
        identity_id: Some(identity),
        request_id: Some(e.request_id),
        ..enrolment.clone()
    };
    insert_enrolment(t, &real).await?;
    insert_event(
        t,
        &device_event(
            identity,
            SecurityEventKind::NewDeviceRequested,
            real.id,
            now_ms,
        ),
    )
    .await?;
    Ok(StartEnrolmentResult::Started(real))
}

/// The transaction of [`Store::poll_enrolment`](crate::store::Store::poll_enrolment).
pub(super) async fn poll_enrolment(
    t: &Tx<'_>,
    id: AuthenticatorId,
    max_devices: u64,
    now_ms: u64,
) -> StoreResult<EnrolmentPoll> {
    let Some(enrolment) = load_enrolment(t, &id).await? else {
        return Ok(EnrolmentPoll::Closed);
    };
    let Some(identity_id) = enrolment.identity_id else {
        return Ok(if now_ms < enrolment.expires_at_ms {
            EnrolmentPoll::AwaitingApproval(enrolment)
        } else {
            EnrolmentPoll::Closed
        });
    };
    let blocked = load_identity(t, &identity_id)
        .await?
        .is_none_or(|i| i.blocked);
    match enrolment.state {
        EnrolmentStoredState::Cancelled => Ok(EnrolmentPoll::Closed),
        EnrolmentStoredState::Activated => Ok(match load_authenticator(t, &id).await? {
            Some(a) if a.state == AuthenticatorState::Active && !blocked => {
                EnrolmentPoll::Activated(a)
            }
            _ => EnrolmentPoll::Closed,
        }),
        _ if blocked => {
            close_enrolment(t, &id, now_ms).await?;
            Ok(EnrolmentPoll::Closed)
        }
        EnrolmentStoredState::AwaitingApproval => {
            let request = match enrolment.request_id {
                Some(r) => load_request(t, &r).await?,
                None => None,
            };
            if request.is_some_and(|r| r.status_at(now_ms) == RequestStatus::Pending) {
                return Ok(EnrolmentPoll::AwaitingApproval(enrolment));
            }
            close_enrolment(t, &id, now_ms).await?;
            Ok(EnrolmentPoll::Closed)
        }
        EnrolmentStoredState::Waiting => {
            let usable_at = enrolment.usable_at_ms.unwrap_or(u64::MAX);
            if now_ms < usable_at {
                return Ok(EnrolmentPoll::Waiting(enrolment));
            }
            if policy::device_cap_reached(
                count_devices(t, &identity_id, &id, now_ms).await?,
                max_devices,
            ) {
                close_enrolment(t, &id, now_ms).await?;
                return Ok(EnrolmentPoll::Closed);
            }
            let auth = Authenticator {
                id,
                identity_id,
                device_public_key: enrolment.device_public_key,
                pin_public_key: enrolment.pin_public_key,
                state: AuthenticatorState::Active,
                failed_pin_count: 0,
                last_counter: 0,
                activated_at_ms: now_ms,
            };
            insert_authenticator(t, &auth).await?;
            exec(
                t,
                "UPDATE device_enrolments SET state = 'activated', closed_at_ms = $2 WHERE id = $1",
                &[&Col(id), &i64_of(now_ms)],
            )
            .await?;
            insert_event(
                t,
                &device_event(identity_id, SecurityEventKind::DeviceActivated, id, now_ms),
            )
            .await?;
            Ok(EnrolmentPoll::Activated(auth))
        }
    }
}

/// The transaction of [`Store::cancel_enrolment`](crate::store::Store::cancel_enrolment).
pub(super) async fn cancel_enrolment(
    t: &Tx<'_>,
    authenticator_id: AuthenticatorId,
    enrolment_id: AuthenticatorId,
    now_ms: u64,
) -> StoreResult<CancelEnrolmentResult> {
    let Some(auth) = load_authenticator(t, &authenticator_id).await? else {
        return Ok(CancelEnrolmentResult::Unknown);
    };
    let Some(enrolment) = load_enrolment(t, &enrolment_id).await? else {
        return Ok(CancelEnrolmentResult::Unknown);
    };
    if enrolment.identity_id != Some(auth.identity_id) {
        return Ok(CancelEnrolmentResult::Unknown);
    }
    match enrolment.state {
        EnrolmentStoredState::AwaitingApproval | EnrolmentStoredState::Waiting => {}
        _ => return Ok(CancelEnrolmentResult::Closed),
    }
    close_enrolment(t, &enrolment_id, now_ms).await?;
    let mut cancelled_request = None;
    if let Some(request_id) = enrolment.request_id {
        let n = exec(
            t,
            "UPDATE requests SET status = 'cancelled' WHERE id = $1 AND status = 'pending'",
            &[&Col(request_id)],
        )
        .await?;
        if n > 0 {
            cancelled_request = Some(request_id);
        }
    }
    insert_event(
        t,
        &device_event(
            auth.identity_id,
            SecurityEventKind::NewDeviceCancelled,
            enrolment_id,
            now_ms,
        ),
    )
    .await?;
    Ok(CancelEnrolmentResult::Cancelled(cancelled_request))
}
