//! Self-service changes (phone, e-mail, user ID): starting, the two
//! logins, expiry and cancelling, and how a self-service decision moves a
//! change.

use eid_protocol::events::SecurityEventKind;
use eid_protocol::wire::{ChangeState, ContactChannel, ErrorCode};
use eid_protocol::{AuthenticatorId, ChangeId, IdentityId, Outcome, RequestId};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::columns::{Col, col, i64_of, opt_col, opt_u64_at, u64_at};
use super::identities::load_identity;
use super::outbox::insert_event;
use super::requests::{cancel_pending_request, insert_request, pending_count};
use crate::limits::CHANGE_START_WINDOW_MS;
use crate::policy::{self, ChangeStart, ChangeStep};
use crate::store::{
    CHANGE_MAX_AGE_MS, CancelChangeResult, ChangeKind, ConfirmChangeResult, Identity, NewEvent,
    StartChangeResult, StoreError, StoreResult, StoredChange, StoredRequest,
};
use crate::texts::{ContactChangeNote, USER_ID_TAKEN_MEANWHILE, contact_change_detail};

pub(super) const CHANGE_COLUMNS: &str = "id, identity_id, kind, new_value, state, gap_ms, created_at_ms, \
     first_request_id, first_expires_at_ms, first_login_at_ms, earliest_second_login_at_ms, \
     second_request_id, second_expires_at_ms, failure_code, failure_message";

/// The stored states that can still move (before the clock is applied).
pub(super) const OPEN_STATES_SQL: &str =
    "('awaiting_first_login', 'waiting_second_login', 'awaiting_second_login')";

/// The stored name of why a user-ID change failed (`failure_code`).
fn failure_code_of(code: &str) -> rusqlite::Result<ErrorCode> {
    match code {
        "user_id_taken" => Ok(ErrorCode::UserIdTaken),
        "invalid_user_id" => Ok(ErrorCode::InvalidUserId),
        other => Err(rusqlite::Error::FromSqlConversionFailure(
            13,
            rusqlite::types::Type::Text,
            format!("unknown stored change failure {other:?}").into(),
        )),
    }
}

pub(super) fn change_row(row: &Row<'_>) -> rusqlite::Result<StoredChange> {
    let failure_code: Option<String> = row.get(13)?;
    let failure_message: Option<String> = row.get(14)?;
    Ok(StoredChange {
        id: col(row, 0)?,
        identity_id: col(row, 1)?,
        kind: row.get(2)?,
        new_value: row.get(3)?,
        state: col(row, 4)?,
        gap_ms: u64_at(row, 5)?,
        created_at_ms: u64_at(row, 6)?,
        first_request_id: col(row, 7)?,
        first_expires_at_ms: u64_at(row, 8)?,
        first_login_at_ms: opt_u64_at(row, 9)?,
        earliest_second_login_at_ms: opt_u64_at(row, 10)?,
        second_request_id: opt_col(row, 11)?,
        second_expires_at_ms: opt_u64_at(row, 12)?,
        failure: match (failure_code, failure_message) {
            (Some(code), Some(message)) => Some((failure_code_of(&code)?, message)),
            _ => None,
        },
    })
}

pub(super) fn load_change(c: &Connection, id: &ChangeId) -> StoreResult<Option<StoredChange>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {CHANGE_COLUMNS} FROM self_service_changes WHERE id = ?1"
    ))?
    .query_row(params![Col(id)], change_row)
    .optional()?)
}

pub(super) fn open_changes_of(
    c: &Connection,
    identity_id: &IdentityId,
) -> StoreResult<Vec<StoredChange>> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT {CHANGE_COLUMNS} FROM self_service_changes \
             WHERE identity_id = ?1 AND state IN {OPEN_STATES_SQL} ORDER BY created_at_ms"
        )
    });
    let mut stmt = c.prepare_cached(&SQL)?;
    let rows = stmt.query_map(params![Col(identity_id)], change_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(super) fn set_change_state(
    c: &Connection,
    id: &ChangeId,
    state: ChangeState,
    now_ms: u64,
) -> rusqlite::Result<()> {
    let closed = (!state.is_open()).then_some(i64_of(now_ms));
    c.prepare_cached(
        "UPDATE self_service_changes SET state = ?2, closed_at_ms = ?3 WHERE id = ?1",
    )?
    .execute(params![Col(id), Col(state), closed])?;
    Ok(())
}

/// The masked new value of a contact change, as notices show it.
pub(super) fn masked_new_value(change: &StoredChange) -> String {
    match change.kind {
        ChangeKind::Contact(ContactChannel::Phone) => crate::contact::mask_phone(&change.new_value),
        _ => crate::contact::mask_email(&change.new_value),
    }
}

/// Records an event about a contact change, notifying the identity's stored
/// contact (the old one) and the change's new contact.
pub(super) fn record_contact_event(
    c: &Connection,
    change: &StoredChange,
    kind: SecurityEventKind,
    authenticator_id: Option<AuthenticatorId>,
    note: Option<ContactChangeNote>,
    now_ms: u64,
) -> rusqlite::Result<u64> {
    let ChangeKind::Contact(channel) = change.kind else {
        return Ok(0);
    };
    let detail = contact_change_detail(channel, &masked_new_value(change), note);
    insert_event(
        c,
        &NewEvent {
            identity_id: change.identity_id,
            kind,
            authenticator_id,
            detail: Some(detail),
            occurred_at_ms: now_ms,
            extra_recipients: policy::new_contact_recipient(change).into_iter().collect(),
        },
    )
}

/// The decision on a self-service login request moves its change, in the
/// decision's transaction: approving the first login of a contact change
/// starts the wait, approving the second completes it, approving a user-ID
/// change applies it; deny and report-fraud cancel.
pub(super) fn on_self_service_decision(
    c: &Connection,
    request_id: &RequestId,
    authenticator_id: AuthenticatorId,
    outcome: Outcome,
    now_ms: u64,
) -> StoreResult<()> {
    let change = c
        .prepare_cached(&format!(
            "SELECT {CHANGE_COLUMNS} FROM self_service_changes \
             WHERE first_request_id = ?1 OR second_request_id = ?1"
        ))?
        .query_row(params![Col(request_id)], change_row)
        .optional()?;
    let Some(change) = change else { return Ok(()) };
    let authenticator = Some(authenticator_id);
    match policy::change_step(&change, *request_id, outcome, now_ms) {
        // Cannot normally happen: moving on cancels the change's pending
        // requests.
        ChangeStep::Stale => {}
        ChangeStep::Cancel => {
            set_change_state(c, &change.id, ChangeState::Cancelled, now_ms)?;
            record_contact_event(
                c,
                &change,
                SecurityEventKind::ContactChangeCancelled,
                authenticator,
                None,
                now_ms,
            )?;
        }
        ChangeStep::StartWait {
            earliest_second_login_at_ms,
        } => {
            c.prepare_cached(
                "UPDATE self_service_changes SET state = 'waiting_second_login', first_login_at_ms = ?2, \
                 earliest_second_login_at_ms = ?3 WHERE id = ?1",
            )?
            .execute(params![
                Col(change.id),
                i64_of(now_ms),
                i64_of(earliest_second_login_at_ms)
            ])?;
            // Both contacts learn that the first login was approved and when
            // the change can complete: the hour in which to cancel starts now.
            let approved = StoredChange {
                first_login_at_ms: Some(now_ms),
                earliest_second_login_at_ms: Some(earliest_second_login_at_ms),
                ..change.clone()
            };
            record_contact_event(
                c,
                &approved,
                SecurityEventKind::ContactChangeStarted,
                authenticator,
                Some(ContactChangeNote::FirstLoginApproved),
                now_ms,
            )?;
        }
        ChangeStep::TooEarly => {
            // Never: the second request is only created after the earliest time.
            return Err(StoreError::Inconsistent("second login before the gap"));
        }
        ChangeStep::Complete(channel) => {
            // The event first: it notifies the contact stored now (the old one)
            // and the new one.
            record_contact_event(
                c,
                &change,
                SecurityEventKind::ContactChangeCompleted,
                authenticator,
                None,
                now_ms,
            )?;
            let sql = match channel {
                ContactChannel::Phone => "UPDATE identities SET phone = ?2 WHERE id = ?1",
                _ => "UPDATE identities SET email = ?2 WHERE id = ?1",
            };
            c.prepare_cached(sql)?
                .execute(params![Col(change.identity_id), change.new_value])?;
            set_change_state(c, &change.id, ChangeState::Completed, now_ms)?;
        }
        ChangeStep::ApplyUserId => apply_user_id_change(c, &change, authenticator_id, now_ms)?,
    }
    Ok(())
}

/// Applies an approved user-ID change: the rules against the person's data
/// and the case-insensitive uniqueness are checked here, in the write (only
/// the person-independent rules are checked before the login, so the public
/// portal is no oracle for user IDs or personal data).
pub(super) fn apply_user_id_change(
    c: &Connection,
    change: &StoredChange,
    authenticator_id: AuthenticatorId,
    now_ms: u64,
) -> StoreResult<()> {
    let first_login = "UPDATE self_service_changes SET first_login_at_ms = ?2 WHERE id = ?1";
    c.prepare_cached(first_login)?
        .execute(params![Col(change.id), i64_of(now_ms)])?;
    let fail = |code: &str, message: String| -> StoreResult<()> {
        c.prepare_cached(
            "UPDATE self_service_changes SET state = 'failed', failure_code = ?2, failure_message = ?3, \
             closed_at_ms = ?4 WHERE id = ?1",
        )?
        .execute(params![Col(change.id), code, message, i64_of(now_ms)])?;
        Ok(())
    };
    let identity = load_identity(c, &change.identity_id)?
        .ok_or(StoreError::Inconsistent("identity vanished"))?;
    let person = crate::userid::PersonalData {
        name: identity.display_name.as_deref(),
        phone: identity.phone.as_deref(),
        email: identity.email.as_deref(),
    };
    let new_user_id = match crate::userid::check(&change.new_value, person) {
        Ok(v) => v,
        Err(e) => return fail("invalid_user_id", e.to_string()),
    };
    let folded = crate::userid::fold(&new_user_id);
    let taken: bool = c
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM identities WHERE user_id_folded = ?1 AND id != ?2)",
        )?
        .query_row(params![folded, Col(identity.id)], |r| r.get(0))?;
    if taken {
        return fail("user_id_taken", USER_ID_TAKEN_MEANWHILE.into());
    }
    c.prepare_cached("UPDATE identities SET user_id = ?2, user_id_folded = ?3 WHERE id = ?1")?
        .execute(params![Col(identity.id), new_user_id, folded])?;
    insert_event(
        c,
        &NewEvent {
            identity_id: identity.id,
            kind: SecurityEventKind::UserIdChanged,
            authenticator_id: Some(authenticator_id),
            detail: None,
            occurred_at_ms: now_ms,
            extra_recipients: Vec::new(),
        },
    )?;
    set_change_state(c, &change.id, ChangeState::Completed, now_ms)?;
    Ok(())
}

/// The transaction of [`Store::start_change`](crate::store::Store::start_change).
pub(super) fn start_change(
    c: &Connection,
    change: StoredChange,
    envelope_json: String,
    request: StoredRequest,
    max_pending: u64,
    now_ms: u64,
) -> StoreResult<StartChangeResult> {
    match load_identity(c, &change.identity_id)? {
        None => return Ok(StartChangeResult::UnknownIdentity),
        Some(i) if i.blocked => return Ok(StartChangeResult::Blocked),
        Some(_) => {}
    }
    // Starts need no credentials: a few per identity per hour, then
    // they are answered like an unknown user ID (nothing stored or sent).
    let recent: i64 = c
        .prepare_cached(
            "SELECT COUNT(*) FROM self_service_changes WHERE identity_id = ?1 AND created_at_ms > ?2",
        )?
        .query_row(
            params![
                Col(change.identity_id),
                i64_of(now_ms.saturating_sub(CHANGE_START_WINDOW_MS))
            ],
            |r| r.get(0),
        )?;
    if !policy::change_start_allowed(u64::try_from(recent).unwrap_or(0)) {
        return Ok(StartChangeResult::UnknownIdentity);
    }
    match policy::change_start(
        change.kind,
        open_changes_of(c, &change.identity_id)?,
        now_ms,
    ) {
        ChangeStart::Pending => return Ok(StartChangeResult::ChangePending),
        // Open but never approved: the new start supersedes it (whoever
        // started it; the person approves only one of them anyway).
        ChangeStart::Supersede(open) => {
            for o in &open {
                set_change_state(c, &o.id, ChangeState::Cancelled, now_ms)?;
                cancel_pending_request(c, &o.first_request_id)?;
            }
        }
    }
    if pending_count(c, &change.identity_id, now_ms)? >= max_pending {
        return Ok(StartChangeResult::TooManyPending);
    }
    insert_request(c, &request, &envelope_json)?;
    c.prepare_cached(
        "INSERT INTO self_service_changes (id, identity_id, kind, new_value, state, gap_ms, created_at_ms, \
         first_request_id, first_expires_at_ms) VALUES (?1, ?2, ?3, ?4, 'awaiting_first_login', ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        Col(change.id),
        Col(change.identity_id),
        change.kind,
        change.new_value,
        i64_of(change.gap_ms),
        i64_of(change.created_at_ms),
        Col(change.first_request_id),
        i64_of(change.first_expires_at_ms)
    ])?;
    record_contact_event(
        c,
        &change,
        SecurityEventKind::ContactChangeStarted,
        None,
        None,
        now_ms,
    )?;
    Ok(StartChangeResult::Created)
}

/// The transaction of [`Store::change`](crate::store::Store::change).
pub(super) fn change(
    c: &Connection,
    id: ChangeId,
) -> StoreResult<Option<(StoredChange, Identity)>> {
    let Some(change) = load_change(c, &id)? else {
        return Ok(None);
    };
    Ok(load_identity(c, &change.identity_id)?.map(|i| (change, i)))
}

/// The transaction of [`Store::confirm_change`](crate::store::Store::confirm_change).
pub(super) fn confirm_change(
    c: &Connection,
    id: ChangeId,
    envelope_json: String,
    request: StoredRequest,
    max_pending: u64,
    now_ms: u64,
) -> StoreResult<ConfirmChangeResult> {
    let Some(change) = load_change(c, &id)? else {
        return Ok(ConfirmChangeResult::Unknown);
    };
    if !matches!(change.kind, ChangeKind::Contact(_))
        || change.first_login_at_ms.is_none()
        || change.identity_id != request.envelope.identity_id
    {
        return Ok(ConfirmChangeResult::Unknown);
    }
    match load_identity(c, &change.identity_id)? {
        Some(i) if !i.blocked => {}
        _ => return Ok(ConfirmChangeResult::Blocked),
    }
    match change.state_at(now_ms) {
        ChangeState::WaitingSecondLogin => {}
        ChangeState::AwaitingSecondLogin => {
            let (Some(r), Some(t)) = (change.second_request_id, change.second_expires_at_ms) else {
                return Err(StoreError::Inconsistent("second request missing"));
            };
            let binding_code = c
                .prepare_cached("SELECT binding_code FROM requests WHERE id = ?1")?
                .query_row(params![Col(r)], |row| row.get::<_, Option<String>>(0))
                .optional()?
                .flatten();
            return Ok(ConfirmChangeResult::Existing {
                request_id: r,
                expires_at_ms: t,
                binding_code,
            });
        }
        other => return Ok(ConfirmChangeResult::Closed(other)),
    }
    let earliest = change
        .earliest_second_login_at_ms
        .ok_or(StoreError::Inconsistent("earliest time missing"))?;
    if now_ms < earliest {
        // Every attempt is notified, above all one that comes too early.
        record_contact_event(
            c,
            &change,
            SecurityEventKind::ContactChangeStarted,
            None,
            Some(ContactChangeNote::TooEarly),
            now_ms,
        )?;
        return Ok(ConfirmChangeResult::TooEarly(earliest));
    }
    if pending_count(c, &change.identity_id, now_ms)? >= max_pending {
        return Ok(ConfirmChangeResult::TooManyPending);
    }
    insert_request(c, &request, &envelope_json)?;
    c.prepare_cached(
        "UPDATE self_service_changes SET state = 'awaiting_second_login', second_request_id = ?2, \
         second_expires_at_ms = ?3 WHERE id = ?1",
    )?
    .execute(params![
        Col(id),
        Col(request.envelope.request_id),
        i64_of(request.envelope.expires_at_ms)
    ])?;
    Ok(ConfirmChangeResult::Created)
}

/// The transaction of [`Store::expire_changes`](crate::store::Store::expire_changes).
pub(super) fn expire_changes(c: &Connection, now_ms: u64, limit: u32) -> StoreResult<u64> {
    // Expiry needs a first deadline passed or a first login a day ago;
    // the clock check on each row decides.
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {CHANGE_COLUMNS} FROM self_service_changes \
         WHERE state IN {OPEN_STATES_SQL} \
         AND (first_expires_at_ms <= ?1 OR first_login_at_ms <= ?2) LIMIT ?3"
    ))?;
    let due = stmt
        .query_map(
            params![
                i64_of(now_ms),
                i64_of(now_ms.saturating_sub(CHANGE_MAX_AGE_MS)),
                i64::from(limit)
            ],
            change_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut n = 0;
    for change in due
        .iter()
        .filter(|ch| ch.state_at(now_ms) == ChangeState::Expired)
    {
        set_change_state(c, &change.id, ChangeState::Expired, now_ms)?;
        record_contact_event(
            c,
            change,
            SecurityEventKind::ContactChangeCancelled,
            None,
            Some(ContactChangeNote::Expired),
            now_ms,
        )?;
        n += 1;
    }
    Ok(n)
}

/// The transaction of [`Store::cancel_change`](crate::store::Store::cancel_change).
pub(super) fn cancel_change(
    c: &Connection,
    id: ChangeId,
    identity_id: IdentityId,
    authenticator_id: AuthenticatorId,
    now_ms: u64,
) -> StoreResult<CancelChangeResult> {
    let Some(change) = load_change(c, &id)? else {
        return Ok(CancelChangeResult::Unknown);
    };
    if change.identity_id != identity_id {
        return Ok(CancelChangeResult::Unknown);
    }
    let state = change.state_at(now_ms);
    if !state.is_open() {
        return Ok(CancelChangeResult::Closed(state));
    }
    let mut cancelled = None;
    for r in [Some(change.first_request_id), change.second_request_id]
        .into_iter()
        .flatten()
    {
        if cancel_pending_request(c, &r)? {
            cancelled = Some(r);
        }
    }
    set_change_state(c, &id, ChangeState::Cancelled, now_ms)?;
    record_contact_event(
        c,
        &change,
        SecurityEventKind::ContactChangeCancelled,
        Some(authenticator_id),
        None,
        now_ms,
    )?;
    Ok(CancelChangeResult::Cancelled(cancelled))
}
