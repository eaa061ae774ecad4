//! Self-service changes (phone, e-mail, user ID): start, the decision's
//! effect, the second login of a contact change, expiry and cancellation.

use eid_protocol::events::SecurityEventKind;
use eid_protocol::wire::{ChangeState, ContactChannel, ErrorCode};
use eid_protocol::{AuthenticatorId, ChangeId, IdentityId, Outcome, RequestId};
use tokio_postgres::Row;

use super::columns::{At, Col, col, get, i64_of, opt_col};
use super::connection::{Tx, all, exec, one, opt};
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

pub(super) const OPEN_STATES_SQL: &str =
    "('awaiting_first_login', 'waiting_second_login', 'awaiting_second_login')";

fn failure_code_of(code: &str) -> StoreResult<ErrorCode> {
    match code {
        "user_id_taken" => Ok(ErrorCode::UserIdTaken),
        "invalid_user_id" => Ok(ErrorCode::InvalidUserId),
        _ => Err(StoreError::Inconsistent("unknown stored change failure")),
    }
}

pub(super) fn change_row(row: &Row) -> StoreResult<StoredChange> {
    change_row_at(row, At::From(0))
}

/// [`change_row`] with its columns `at` (a joined read).
pub(super) fn change_row_at(row: &Row, at: At<'_>) -> StoreResult<StoredChange> {
    let failure_code: Option<String> = get(row, at.of(13))?;
    let failure_message: Option<String> = get(row, at.of(14))?;
    Ok(StoredChange {
        id: col(row, at.of(0))?,
        identity_id: col(row, at.of(1))?,
        kind: col(row, at.of(2))?,
        new_value: get(row, at.of(3))?,
        state: col(row, at.of(4))?,
        gap_ms: col(row, at.of(5))?,
        created_at_ms: col(row, at.of(6))?,
        first_request_id: col(row, at.of(7))?,
        first_expires_at_ms: col(row, at.of(8))?,
        first_login_at_ms: opt_col(row, at.of(9))?,
        earliest_second_login_at_ms: opt_col(row, at.of(10))?,
        second_request_id: opt_col(row, at.of(11))?,
        second_expires_at_ms: opt_col(row, at.of(12))?,
        failure: match (failure_code, failure_message) {
            (Some(code), Some(message)) => Some((failure_code_of(&code)?, message)),
            _ => None,
        },
    })
}

async fn load_change(t: &Tx<'_>, id: &ChangeId) -> StoreResult<Option<StoredChange>> {
    opt(
        t,
        &format!("SELECT {CHANGE_COLUMNS} FROM self_service_changes WHERE id = $1"),
        &[&Col(id)],
    )
    .await?
    .map(|r| change_row(&r))
    .transpose()
}

/// The statement of [`open_changes_of`] (to prepare it ahead).
pub(super) fn open_changes_sql() -> String {
    open_changes_sql_by("$1")
}

/// The statement of [`open_changes_of`] for the identity `key` names (an
/// expression).
pub(super) fn open_changes_sql_by(key: &str) -> String {
    format!(
        "SELECT {CHANGE_COLUMNS} FROM self_service_changes \
         WHERE identity_id = {key} AND state IN {OPEN_STATES_SQL} ORDER BY created_at_ms"
    )
}

/// The open changes of an identity as stored, oldest first.
pub(super) async fn open_changes_of(
    t: &Tx<'_>,
    identity_id: &IdentityId,
) -> StoreResult<Vec<StoredChange>> {
    all(t, &open_changes_sql(), &[&Col(identity_id)])
        .await?
        .iter()
        .map(change_row)
        .collect()
}

async fn set_change_state(
    t: &Tx<'_>,
    id: &ChangeId,
    state: ChangeState,
    now_ms: u64,
) -> StoreResult<()> {
    let closed = (!state.is_open()).then_some(i64_of(now_ms));
    exec(
        t,
        "UPDATE self_service_changes SET state = $2, closed_at_ms = $3 WHERE id = $1",
        &[&Col(id), &Col(state), &closed],
    )
    .await?;
    Ok(())
}

fn masked_new_value(change: &StoredChange) -> String {
    match change.kind {
        ChangeKind::Contact(ContactChannel::Phone) => crate::contact::mask_phone(&change.new_value),
        _ => crate::contact::mask_email(&change.new_value),
    }
}

/// Records an event of a contact change (none for a user-ID change),
/// notifying the new contact too.
async fn record_contact_event(
    t: &Tx<'_>,
    change: &StoredChange,
    kind: SecurityEventKind,
    authenticator_id: Option<AuthenticatorId>,
    note: Option<ContactChangeNote>,
    now_ms: u64,
) -> StoreResult<u64> {
    let ChangeKind::Contact(channel) = change.kind else {
        return Ok(0);
    };
    let detail = contact_change_detail(channel, &masked_new_value(change), note);
    insert_event(
        t,
        &NewEvent {
            identity_id: change.identity_id,
            kind,
            authenticator_id,
            detail: Some(detail),
            occurred_at_ms: now_ms,
            extra_recipients: policy::new_contact_recipient(change).into_iter().collect(),
        },
    )
    .await
}

/// A decision on a self-service login request moves its change.
pub(super) async fn on_self_service_decision(
    t: &Tx<'_>,
    request_id: &RequestId,
    authenticator_id: AuthenticatorId,
    outcome: Outcome,
    now_ms: u64,
) -> StoreResult<()> {
    let change = opt(
        t,
        &format!(
            "SELECT {CHANGE_COLUMNS} FROM self_service_changes \
             WHERE first_request_id = $1 OR second_request_id = $1"
        ),
        &[&Col(request_id)],
    )
    .await?
    .map(|r| change_row(&r))
    .transpose()?;
    let Some(change) = change else { return Ok(()) };
    let authenticator = Some(authenticator_id);
    match policy::change_step(&change, *request_id, outcome, now_ms) {
        ChangeStep::Stale => {}
        ChangeStep::Cancel => {
            set_change_state(t, &change.id, ChangeState::Cancelled, now_ms).await?;
            record_contact_event(
                t,
                &change,
                SecurityEventKind::ContactChangeCancelled,
                authenticator,
                None,
                now_ms,
            )
            .await?;
        }
        ChangeStep::StartWait {
            earliest_second_login_at_ms,
        } => {
            exec(
                t,
                "UPDATE self_service_changes SET state = 'waiting_second_login', first_login_at_ms = $2, \
                 earliest_second_login_at_ms = $3 WHERE id = $1",
                &[
                    &Col(change.id),
                    &i64_of(now_ms),
                    &i64_of(earliest_second_login_at_ms),
                ],
            )
            .await?;
            let approved = StoredChange {
                first_login_at_ms: Some(now_ms),
                earliest_second_login_at_ms: Some(earliest_second_login_at_ms),
                ..change.clone()
            };
            record_contact_event(
                t,
                &approved,
                SecurityEventKind::ContactChangeStarted,
                authenticator,
                Some(ContactChangeNote::FirstLoginApproved),
                now_ms,
            )
            .await?;
        }
        ChangeStep::TooEarly => {
            return Err(StoreError::Inconsistent("second login before the gap"));
        }
        ChangeStep::Complete(channel) => {
            record_contact_event(
                t,
                &change,
                SecurityEventKind::ContactChangeCompleted,
                authenticator,
                None,
                now_ms,
            )
            .await?;
            let sql = match channel {
                ContactChannel::Phone => "UPDATE identities SET phone = $2 WHERE id = $1",
                _ => "UPDATE identities SET email = $2 WHERE id = $1",
            };
            exec(t, sql, &[&Col(change.identity_id), &change.new_value]).await?;
            set_change_state(t, &change.id, ChangeState::Completed, now_ms).await?;
        }
        ChangeStep::ApplyUserId => {
            apply_user_id_change(t, &change, authenticator_id, now_ms).await?
        }
    }
    Ok(())
}

async fn apply_user_id_change(
    t: &Tx<'_>,
    change: &StoredChange,
    authenticator_id: AuthenticatorId,
    now_ms: u64,
) -> StoreResult<()> {
    exec(
        t,
        "UPDATE self_service_changes SET first_login_at_ms = $2 WHERE id = $1",
        &[&Col(change.id), &i64_of(now_ms)],
    )
    .await?;
    let identity = load_identity(t, &change.identity_id)
        .await?
        .ok_or(StoreError::Inconsistent("identity vanished"))?;
    let person = crate::userid::PersonalData {
        name: identity.display_name.as_deref(),
        phone: identity.phone.as_deref(),
        email: identity.email.as_deref(),
    };
    let (code, message) = match crate::userid::check(&change.new_value, person) {
        Err(e) => ("invalid_user_id", e.to_string()),
        Ok(new_user_id) => {
            let folded = crate::userid::fold(&new_user_id);
            let row = one(
                t,
                "SELECT EXISTS (SELECT 1 FROM identities WHERE user_id_folded = $1 AND id != $2)",
                &[&folded, &Col(identity.id)],
            )
            .await?;
            let taken: bool = get(&row, 0)?;
            if taken {
                ("user_id_taken", USER_ID_TAKEN_MEANWHILE.to_owned())
            } else {
                // The unique constraint on the folded user ID is the last
                // word between two replicas applying the same new user ID.
                exec(
                    t,
                    "UPDATE identities SET user_id = $2, user_id_folded = $3 WHERE id = $1",
                    &[&Col(identity.id), &new_user_id, &folded],
                )
                .await?;
                insert_event(
                    t,
                    &NewEvent {
                        identity_id: identity.id,
                        kind: SecurityEventKind::UserIdChanged,
                        authenticator_id: Some(authenticator_id),
                        detail: None,
                        occurred_at_ms: now_ms,
                        extra_recipients: Vec::new(),
                    },
                )
                .await?;
                set_change_state(t, &change.id, ChangeState::Completed, now_ms).await?;
                return Ok(());
            }
        }
    };
    exec(
        t,
        "UPDATE self_service_changes SET state = 'failed', failure_code = $2, failure_message = $3, \
         closed_at_ms = $4 WHERE id = $1",
        &[&Col(change.id), &code, &message, &i64_of(now_ms)],
    )
    .await?;
    Ok(())
}

/// The transaction of [`Store::start_change`](crate::store::Store::start_change).
pub(super) async fn start_change(
    t: &Tx<'_>,
    change: &StoredChange,
    envelope_json: &str,
    request: &StoredRequest,
    max_pending: u64,
    now_ms: u64,
) -> StoreResult<StartChangeResult> {
    match load_identity(t, &change.identity_id).await? {
        None => return Ok(StartChangeResult::UnknownIdentity),
        Some(i) if i.blocked => return Ok(StartChangeResult::Blocked),
        Some(_) => {}
    }
    let row = one(
        t,
        "SELECT COUNT(*) FROM self_service_changes WHERE identity_id = $1 AND created_at_ms > $2",
        &[
            &Col(change.identity_id),
            &i64_of(now_ms.saturating_sub(CHANGE_START_WINDOW_MS)),
        ],
    )
    .await?;
    if !policy::change_start_allowed(col(&row, 0)?) {
        return Ok(StartChangeResult::UnknownIdentity);
    }
    match policy::change_start(
        change.kind,
        open_changes_of(t, &change.identity_id).await?,
        now_ms,
    ) {
        ChangeStart::Pending => return Ok(StartChangeResult::ChangePending),
        ChangeStart::Supersede(open) => {
            for o in &open {
                set_change_state(t, &o.id, ChangeState::Cancelled, now_ms).await?;
                cancel_pending_request(t, &o.first_request_id).await?;
            }
        }
    }
    if pending_count(t, &change.identity_id, now_ms).await? >= max_pending {
        return Ok(StartChangeResult::TooManyPending);
    }
    insert_request(t, request, envelope_json).await?;
    exec(
        t,
        "INSERT INTO self_service_changes (id, identity_id, kind, new_value, state, gap_ms, created_at_ms, \
         first_request_id, first_expires_at_ms) VALUES ($1, $2, $3, $4, 'awaiting_first_login', $5, $6, $7, $8)",
        &[
            &Col(change.id),
            &Col(change.identity_id),
            &Col(change.kind),
            &change.new_value,
            &i64_of(change.gap_ms),
            &i64_of(change.created_at_ms),
            &Col(change.first_request_id),
            &i64_of(change.first_expires_at_ms),
        ],
    )
    .await?;
    record_contact_event(
        t,
        change,
        SecurityEventKind::ContactChangeStarted,
        None,
        None,
        now_ms,
    )
    .await?;
    Ok(StartChangeResult::Created)
}

/// The read of [`Store::change`](crate::store::Store::change).
pub(super) async fn change(
    t: &Tx<'_>,
    id: ChangeId,
) -> StoreResult<Option<(StoredChange, Identity)>> {
    let Some(change) = load_change(t, &id).await? else {
        return Ok(None);
    };
    Ok(load_identity(t, &change.identity_id)
        .await?
        .map(|i| (change, i)))
}

/// The transaction of [`Store::confirm_change`](crate::store::Store::confirm_change).
pub(super) async fn confirm_change(
    t: &Tx<'_>,
    id: ChangeId,
    envelope_json: &str,
    request: &StoredRequest,
    max_pending: u64,
    now_ms: u64,
) -> StoreResult<ConfirmChangeResult> {
    let Some(change) = load_change(t, &id).await? else {
        return Ok(ConfirmChangeResult::Unknown);
    };
    if !matches!(change.kind, ChangeKind::Contact(_))
        || change.first_login_at_ms.is_none()
        || change.identity_id != request.envelope.identity_id
    {
        return Ok(ConfirmChangeResult::Unknown);
    }
    match load_identity(t, &change.identity_id).await? {
        Some(i) if !i.blocked => {}
        _ => return Ok(ConfirmChangeResult::Blocked),
    }
    match change.state_at(now_ms) {
        ChangeState::WaitingSecondLogin => {}
        ChangeState::AwaitingSecondLogin => {
            let (Some(r), Some(exp)) = (change.second_request_id, change.second_expires_at_ms)
            else {
                return Err(StoreError::Inconsistent("second request missing"));
            };
            let binding_code = match opt(
                t,
                "SELECT binding_code FROM requests WHERE id = $1",
                &[&Col(r)],
            )
            .await?
            {
                Some(row) => get::<Option<String>>(&row, 0)?,
                None => None,
            };
            return Ok(ConfirmChangeResult::Existing {
                request_id: r,
                expires_at_ms: exp,
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
            t,
            &change,
            SecurityEventKind::ContactChangeStarted,
            None,
            Some(ContactChangeNote::TooEarly),
            now_ms,
        )
        .await?;
        return Ok(ConfirmChangeResult::TooEarly(earliest));
    }
    if pending_count(t, &change.identity_id, now_ms).await? >= max_pending {
        return Ok(ConfirmChangeResult::TooManyPending);
    }
    insert_request(t, request, envelope_json).await?;
    exec(
        t,
        "UPDATE self_service_changes SET state = 'awaiting_second_login', second_request_id = $2, \
         second_expires_at_ms = $3 WHERE id = $1",
        &[
            &Col(id),
            &Col(request.envelope.request_id),
            &i64_of(request.envelope.expires_at_ms),
        ],
    )
    .await?;
    Ok(ConfirmChangeResult::Created)
}

/// The transaction of [`Store::expire_changes`](crate::store::Store::expire_changes).
pub(super) async fn expire_changes(t: &Tx<'_>, now_ms: u64, limit: u32) -> StoreResult<u64> {
    // Expiry needs a first deadline passed or a first login a day ago;
    // the clock check on each row decides.
    let due = all(
        t,
        &format!(
            "SELECT {CHANGE_COLUMNS} FROM self_service_changes \
             WHERE state IN {OPEN_STATES_SQL} \
             AND (first_expires_at_ms <= $1 OR first_login_at_ms <= $2) LIMIT $3"
        ),
        &[
            &i64_of(now_ms),
            &i64_of(now_ms.saturating_sub(CHANGE_MAX_AGE_MS)),
            &i64::from(limit),
        ],
    )
    .await?
    .iter()
    .map(change_row)
    .collect::<StoreResult<Vec<_>>>()?;
    let mut n = 0;
    for change in due
        .iter()
        .filter(|ch| ch.state_at(now_ms) == ChangeState::Expired)
    {
        set_change_state(t, &change.id, ChangeState::Expired, now_ms).await?;
        record_contact_event(
            t,
            change,
            SecurityEventKind::ContactChangeCancelled,
            None,
            Some(ContactChangeNote::Expired),
            now_ms,
        )
        .await?;
        n += 1;
    }
    Ok(n)
}

/// The transaction of [`Store::cancel_change`](crate::store::Store::cancel_change).
pub(super) async fn cancel_change(
    t: &Tx<'_>,
    id: ChangeId,
    identity_id: IdentityId,
    authenticator_id: AuthenticatorId,
    now_ms: u64,
) -> StoreResult<CancelChangeResult> {
    let Some(change) = load_change(t, &id).await? else {
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
        if cancel_pending_request(t, &r).await? {
            cancelled = Some(r);
        }
    }
    set_change_state(t, &id, ChangeState::Cancelled, now_ms).await?;
    record_contact_event(
        t,
        &change,
        SecurityEventKind::ContactChangeCancelled,
        Some(authenticator_id),
        None,
        now_ms,
    )
    .await?;
    Ok(CancelChangeResult::Cancelled(cancelled))
}
