//! Device enrolments: a new device added from an existing one, its
//! decoys, the waiting period and the device cap.

use eid_protocol::events::SecurityEventKind;
use eid_protocol::wire::RequestStatus;
use eid_protocol::{AuthenticatorId, IdentityId, Outcome, RequestId};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::columns::{Col, col, i64_of, opt_col, opt_u64_at, pubkey, u64_at};
use super::identities::{load_authenticator, load_identity};
use super::outbox::insert_event;
use super::requests::{insert_request, load_request};
use crate::limits::ENROLMENT_WINDOW_MS;
use crate::policy;
use crate::store::{
    Authenticator, AuthenticatorState, CancelEnrolmentResult, Enrolment, EnrolmentPoll,
    EnrolmentStoredState, NewEvent, StartEnrolmentResult, StoreResult, StoredRequest,
};

/// An event about a device (its authenticator or enrolment id), notifying
/// only the identity's own contact.
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

pub(super) const ENROLMENT_COLUMNS: &str = "id, identity_id, request_id, device_public_key, pin_public_key, \
     code, state, requested_at_ms, expires_at_ms, wait_ms, usable_at_ms";

pub(super) fn enrolment_row(row: &Row<'_>) -> rusqlite::Result<Enrolment> {
    Ok(Enrolment {
        id: col(row, 0)?,
        identity_id: opt_col(row, 1)?,
        request_id: opt_col(row, 2)?,
        device_public_key: pubkey(row, 3)?,
        pin_public_key: pubkey(row, 4)?,
        code: row.get(5)?,
        state: row.get(6)?,
        requested_at_ms: u64_at(row, 7)?,
        expires_at_ms: u64_at(row, 8)?,
        wait_ms: u64_at(row, 9)?,
        usable_at_ms: opt_u64_at(row, 10)?,
    })
}

pub(super) fn load_enrolment(
    conn: &Connection,
    id: &AuthenticatorId,
) -> StoreResult<Option<Enrolment>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ENROLMENT_COLUMNS} FROM device_enrolments WHERE id = ?1"
    ))?;
    Ok(stmt.query_row(params![Col(id)], enrolment_row).optional()?)
}

/// SQL condition (on `e`, a `device_enrolments` row, and `?now`) of an
/// enrolment that is still live: waiting, or awaiting approval with its
/// request pending and unexpired.
pub(super) const LIVE_ENROLMENT: &str = "(e.state = 'waiting' OR (e.state = 'awaiting_approval' AND EXISTS \
     (SELECT 1 FROM requests r WHERE r.id = e.request_id AND r.status = 'pending' AND r.expires_at_ms > ?2)))";

pub(super) fn insert_enrolment(c: &Connection, e: &Enrolment) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO device_enrolments (id, identity_id, request_id, device_public_key, pin_public_key, \
         code, state, requested_at_ms, expires_at_ms, wait_ms, usable_at_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        Col(e.id),
        e.identity_id.as_ref().map(Col),
        e.request_id.as_ref().map(Col),
        e.device_public_key.as_bytes().as_slice(),
        e.pin_public_key.as_bytes().as_slice(),
        e.code,
        e.state,
        i64_of(e.requested_at_ms),
        i64_of(e.expires_at_ms),
        i64_of(e.wait_ms),
        e.usable_at_ms.map(i64_of)
    ])?;
    Ok(())
}

pub(super) fn close_enrolment(
    c: &Connection,
    id: &AuthenticatorId,
    now_ms: u64,
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "UPDATE device_enrolments SET state = 'cancelled', closed_at_ms = ?2 WHERE id = ?1",
    )?
    .execute(params![Col(id), i64_of(now_ms)])?;
    Ok(())
}

/// The enrolment a request awaits a decision for, if any.
pub(super) const ENROLMENT_OF_REQUEST_SQL: &str = "SELECT id, identity_id FROM device_enrolments \
     WHERE request_id = ?1 AND state = 'awaiting_approval'";

/// A decision on a new-device request moves its enrolment, in the decision's
/// transaction: approval starts the waiting period, deny or report-fraud
/// cancels. Other requests have no enrolment (one indexed look-up).
pub(super) fn decide_enrolment(
    c: &Connection,
    request_id: &RequestId,
    outcome: Outcome,
    now: u64,
) -> rusqlite::Result<()> {
    // Most decisions have no enrolment: a plain indexed read says so. An
    // `UPDATE … RETURNING` would build and drop a temporary table on every
    // decision, matched rows or not (SQLite runs RETURNING through one).
    let moved = c
        .prepare_cached(ENROLMENT_OF_REQUEST_SQL)?
        .query_row(params![Col(request_id)], |r| {
            Ok((col::<AuthenticatorId>(r, 0)?, col::<IdentityId>(r, 1)?))
        })
        .optional()?;
    if let Some((enrolment_id, identity_id)) = moved {
        let approved = outcome == Outcome::Approve;
        let sql = if approved {
            "UPDATE device_enrolments SET state = 'waiting', usable_at_ms = ?2 + wait_ms \
             WHERE request_id = ?1 AND state = 'awaiting_approval'"
        } else {
            "UPDATE device_enrolments SET state = 'cancelled', closed_at_ms = ?2 \
             WHERE request_id = ?1 AND state = 'awaiting_approval'"
        };
        c.prepare_cached(sql)?
            .execute(params![Col(request_id), i64_of(now)])?;
        let kind = if approved {
            SecurityEventKind::NewDeviceApproved
        } else {
            SecurityEventKind::NewDeviceCancelled
        };
        insert_event(c, &device_event(identity_id, kind, enrolment_id, now))?;
    }
    Ok(())
}

/// Counts the devices of an identity toward the cap: active authenticators
/// plus live enrolments (other than `except`).
pub(super) fn count_devices(
    c: &Connection,
    identity_id: &IdentityId,
    except: &AuthenticatorId,
    now_ms: u64,
) -> rusqlite::Result<u64> {
    let active: i64 = c
        .prepare_cached(
            "SELECT COUNT(*) FROM authenticators WHERE identity_id = ?1 AND state = 'active'",
        )?
        .query_row(params![Col(identity_id)], |r| r.get(0))?;
    let live: i64 = c
        .prepare_cached(&format!(
            "SELECT COUNT(*) FROM device_enrolments e WHERE e.identity_id = ?1 AND {LIVE_ENROLMENT} AND e.id != ?3"
        ))?
        .query_row(
            params![Col(identity_id), i64_of(now_ms), Col(except)],
            |r| r.get(0),
        )?;
    Ok(u64::try_from(active + live).unwrap_or(u64::MAX))
}

/// Counts the devices of an identity the person has or approved: active
/// authenticators plus enrolments in their waiting period.
fn count_approved_devices(c: &Connection, identity_id: &IdentityId) -> rusqlite::Result<u64> {
    let n: i64 = c
        .prepare_cached(
            "SELECT (SELECT COUNT(*) FROM authenticators WHERE identity_id = ?1 AND state = 'active') + \
             (SELECT COUNT(*) FROM device_enrolments WHERE identity_id = ?1 AND state = 'waiting')",
        )?
        .query_row(params![Col(identity_id)], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(u64::MAX))
}

/// Deletes up to `max` decoy enrolments (no identity) that expired before
/// `now_ms`; returns how many.
pub(super) fn purge_decoy_enrolments(c: &Connection, now_ms: u64, max: u64) -> StoreResult<u64> {
    let n = c
        .prepare_cached(
            "DELETE FROM device_enrolments WHERE rowid IN (SELECT rowid FROM device_enrolments \
             WHERE identity_id IS NULL AND expires_at_ms <= ?1 LIMIT ?2)",
        )?
        .execute(params![i64_of(now_ms), i64_of(max)])?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The transaction of [`Store::start_enrolment`](crate::store::Store::start_enrolment).
pub(super) fn start_enrolment(
    c: &Connection,
    enrolment: Enrolment,
    envelope_json: Option<String>,
    request: Option<StoredRequest>,
    max_devices: u64,
    max_per_hour: u64,
    now_ms: u64,
) -> StoreResult<StartEnrolmentResult> {
    // A retry with the same new keys (the answer was lost) gets the
    // same live enrolment back, real or decoy alike, so a retry does
    // not tell them apart either.
    let existing = c
        .prepare_cached(&format!(
            "SELECT {ENROLMENT_COLUMNS} FROM device_enrolments e \
             WHERE e.device_public_key = ?1 AND e.pin_public_key = ?3 AND \
             ((e.identity_id IS NULL AND e.expires_at_ms > ?2) OR \
             (e.identity_id IS NOT NULL AND {LIVE_ENROLMENT})) LIMIT 1"
        ))?
        .query_row(
            params![
                enrolment.device_public_key.as_bytes().as_slice(),
                i64_of(now_ms),
                enrolment.pin_public_key.as_bytes().as_slice()
            ],
            enrolment_row,
        )
        .optional()?;
    if let Some(existing) = existing {
        return Ok(StartEnrolmentResult::Existing(existing));
    }
    let decoy = Enrolment {
        identity_id: None,
        request_id: None,
        ..enrolment.clone()
    };
    let (Some(request), Some(envelope_json)) = (request, envelope_json) else {
        insert_enrolment(c, &decoy)?;
        return Ok(StartEnrolmentResult::Started(decoy));
    };
    let e = &request.envelope;
    let identity = e.identity_id;
    let identity_col = Col(identity);
    match load_identity(c, &identity)? {
        Some(i) if !i.blocked => {}
        _ => {
            insert_enrolment(c, &decoy)?;
            return Ok(StartEnrolmentResult::Started(decoy));
        }
    }
    // A few awaiting approval at once and a backstop per hour, from all
    // sources together: more would only flood the person's phone, SMS and
    // e-mail (the tight limits are per source, before the store).
    let (awaiting, last_hour): (i64, i64) = c
        .prepare_cached(&format!(
            "SELECT COALESCE(SUM(e.state = 'awaiting_approval' AND {LIVE_ENROLMENT}), 0), \
             COALESCE(SUM(e.requested_at_ms > ?3), 0) FROM device_enrolments e WHERE e.identity_id = ?1"
        ))?
        .query_row(
            params![identity_col, i64_of(now_ms), i64_of(now_ms.saturating_sub(ENROLMENT_WINDOW_MS))],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
    if !policy::enrolment_allowed_from_any_source(
        u64::try_from(awaiting).unwrap_or(0),
        u64::try_from(last_hour).unwrap_or(u64::MAX),
        max_per_hour,
    ) {
        insert_enrolment(c, &decoy)?;
        return Ok(StartEnrolmentResult::Started(decoy));
    }
    // Only devices the person has (active) or approved (waiting) count
    // here: unapproved enrolments, anyone's, must not fill the cap. The
    // status poll checks the whole cap again before it activates.
    if policy::device_cap_reached(count_approved_devices(c, &identity)?, max_devices) {
        return Ok(StartEnrolmentResult::DeviceLimitReached);
    }
    insert_request(c, &request, &envelope_json)?;
    let real = Enrolment {
        identity_id: Some(identity),
        request_id: Some(e.request_id),
        ..enrolment
    };
    insert_enrolment(c, &real)?;
    insert_event(
        c,
        &device_event(
            identity,
            SecurityEventKind::NewDeviceRequested,
            real.id,
            now_ms,
        ),
    )?;
    Ok(StartEnrolmentResult::Started(real))
}

/// The transaction of [`Store::poll_enrolment`](crate::store::Store::poll_enrolment).
pub(super) fn poll_enrolment(
    c: &Connection,
    id: AuthenticatorId,
    max_devices: u64,
    now_ms: u64,
) -> StoreResult<EnrolmentPoll> {
    let Some(enrolment) = load_enrolment(c, &id)? else {
        return Ok(EnrolmentPoll::Closed);
    };
    let Some(identity_id) = enrolment.identity_id else {
        // A decoy looks like a request nobody answers.
        return Ok(if now_ms < enrolment.expires_at_ms {
            EnrolmentPoll::AwaitingApproval(enrolment)
        } else {
            EnrolmentPoll::Closed
        });
    };
    let blocked = load_identity(c, &identity_id)?.is_none_or(|i| i.blocked);
    match enrolment.state {
        EnrolmentStoredState::Cancelled => Ok(EnrolmentPoll::Closed),
        EnrolmentStoredState::Activated => Ok(match load_authenticator(c, &id)? {
            Some(a) if a.state == AuthenticatorState::Active && !blocked => {
                EnrolmentPoll::Activated(a)
            }
            _ => EnrolmentPoll::Closed,
        }),
        _ if blocked => {
            close_enrolment(c, &id, now_ms)?;
            Ok(EnrolmentPoll::Closed)
        }
        EnrolmentStoredState::AwaitingApproval => {
            let request = match enrolment.request_id {
                Some(r) => load_request(c, &r)?,
                None => None,
            };
            if request.is_some_and(|r| r.status_at(now_ms) == RequestStatus::Pending) {
                return Ok(EnrolmentPoll::AwaitingApproval(enrolment));
            }
            // Refused, cancelled (wrong codes) or expired undecided.
            close_enrolment(c, &id, now_ms)?;
            Ok(EnrolmentPoll::Closed)
        }
        EnrolmentStoredState::Waiting => {
            let usable_at = enrolment.usable_at_ms.unwrap_or(u64::MAX);
            if now_ms < usable_at {
                return Ok(EnrolmentPoll::Waiting(enrolment));
            }
            if policy::device_cap_reached(count_devices(c, &identity_id, &id, now_ms)?, max_devices)
            {
                close_enrolment(c, &id, now_ms)?;
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
            c.prepare_cached(
                "INSERT INTO authenticators (id, identity_id, device_public_key, pin_public_key, state, \
                 failed_pin_count, last_counter, activated_at_ms) VALUES (?1, ?2, ?3, ?4, 'active', 0, 0, ?5)",
            )?
            .execute(params![
                Col(auth.id),
                Col(auth.identity_id),
                auth.device_public_key.as_bytes().as_slice(),
                auth.pin_public_key.as_bytes().as_slice(),
                i64_of(now_ms)
            ])?;
            c.prepare_cached(
                "UPDATE device_enrolments SET state = 'activated', closed_at_ms = ?2 WHERE id = ?1",
            )?
            .execute(params![Col(id), i64_of(now_ms)])?;
            insert_event(
                c,
                &device_event(identity_id, SecurityEventKind::DeviceActivated, id, now_ms),
            )?;
            Ok(EnrolmentPoll::Activated(auth))
        }
    }
}

/// The transaction of [`Store::cancel_enrolment`](crate::store::Store::cancel_enrolment).
pub(super) fn cancel_enrolment(
    c: &Connection,
    authenticator_id: AuthenticatorId,
    enrolment_id: AuthenticatorId,
    now_ms: u64,
) -> StoreResult<CancelEnrolmentResult> {
    let Some(auth) = load_authenticator(c, &authenticator_id)? else {
        return Ok(CancelEnrolmentResult::Unknown);
    };
    let Some(enrolment) = load_enrolment(c, &enrolment_id)? else {
        return Ok(CancelEnrolmentResult::Unknown);
    };
    if enrolment.identity_id != Some(auth.identity_id) {
        return Ok(CancelEnrolmentResult::Unknown);
    }
    match enrolment.state {
        EnrolmentStoredState::AwaitingApproval | EnrolmentStoredState::Waiting => {}
        _ => return Ok(CancelEnrolmentResult::Closed),
    }
    close_enrolment(c, &enrolment_id, now_ms)?;
    let mut cancelled_request = None;
    if let Some(request_id) = enrolment.request_id {
        let n = c
            .prepare_cached(
                "UPDATE requests SET status = 'cancelled' WHERE id = ?1 AND status = 'pending'",
            )?
            .execute(params![Col(request_id)])?;
        if n > 0 {
            cancelled_request = Some(request_id);
        }
    }
    insert_event(
        c,
        &device_event(
            auth.identity_id,
            SecurityEventKind::NewDeviceCancelled,
            enrolment_id,
            now_ms,
        ),
    )?;
    Ok(CancelEnrolmentResult::Cancelled(cancelled_request))
}
