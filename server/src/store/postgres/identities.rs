//! Identities, their blocking and contact settings, activation codes,
//! activation, and authenticators (wrong-PIN counting and lock).

use eid_protocol::events::SecurityEventKind;
use eid_protocol::wire::RequestStatus;
use eid_protocol::{AuthenticatorId, IdentityId, PublicKey, RequestId};
use tokio_postgres::Row;

use super::changes::OPEN_STATES_SQL;
use super::columns::{At, Col, col, get, i64_of, is_unique_violation};
use super::connection::{Tx, all, exec, one, opt};
use super::outbox::insert_event;
use crate::policy;
use crate::store::{
    ActivationCode, ActivationResult, Authenticator, AuthenticatorState, Identity, NewEvent,
    StoreError, StoreResult,
};

pub(super) const IDENTITY_COLUMNS: &str = "id, user_id, user_id_folded, display_name, blocked, created_at_ms, \
     phone, email, notify_every_use";

pub(super) fn identity_row(row: &Row) -> StoreResult<Identity> {
    identity_row_at(row, At::From(0))
}

/// [`IDENTITY_COLUMNS`] read at `at` (a joined read).
pub(super) fn identity_row_at(row: &Row, at: At<'_>) -> StoreResult<Identity> {
    Ok(Identity {
        id: col::<IdentityId>(row, at.of(0))?,
        user_id: get(row, at.of(1))?,
        user_id_folded: get(row, at.of(2))?,
        display_name: get(row, at.of(3))?,
        blocked: get(row, at.of(4))?,
        created_at_ms: col(row, at.of(5))?,
        phone: get(row, at.of(6))?,
        email: get(row, at.of(7))?,
        notify_every_use: get(row, at.of(8))?,
    })
}

/// The columns of a list (such as [`IDENTITY_COLUMNS`]) named through a
/// table's alias, for a joined read.
pub(super) fn prefixed(columns: &str, alias: &str) -> String {
    columns
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) async fn load_identity(t: &Tx<'_>, id: &IdentityId) -> StoreResult<Option<Identity>> {
    opt(
        t,
        &format!("SELECT {IDENTITY_COLUMNS} FROM identities WHERE id = $1"),
        &[&Col(id)],
    )
    .await?
    .map(|r| identity_row(&r))
    .transpose()
}

pub(super) const AUTHENTICATOR_COLUMNS: &str = "id, identity_id, device_public_key, pin_public_key, state, \
     failed_pin_count, last_counter, activated_at_ms";

pub(super) fn authenticator_row(row: &Row) -> StoreResult<Authenticator> {
    authenticator_row_at(row, At::From(0))
}

/// [`AUTHENTICATOR_COLUMNS`] read at `at` (a joined read).
pub(super) fn authenticator_row_at(row: &Row, at: At<'_>) -> StoreResult<Authenticator> {
    Ok(Authenticator {
        id: col(row, at.of(0))?,
        identity_id: col(row, at.of(1))?,
        device_public_key: col::<PublicKey>(row, at.of(2))?,
        pin_public_key: col::<PublicKey>(row, at.of(3))?,
        state: col(row, at.of(4))?,
        failed_pin_count: col(row, at.of(5))?,
        last_counter: col(row, at.of(6))?,
        activated_at_ms: col(row, at.of(7))?,
    })
}

/// The number of columns in a list such as [`AUTHENTICATOR_COLUMNS`].
pub(super) fn column_count(columns: &str) -> usize {
    columns.split(", ").count()
}

pub(super) async fn load_authenticator(
    t: &Tx<'_>,
    id: &AuthenticatorId,
) -> StoreResult<Option<Authenticator>> {
    opt(
        t,
        &format!("SELECT {AUTHENTICATOR_COLUMNS} FROM authenticators WHERE id = $1"),
        &[&Col(id)],
    )
    .await?
    .map(|r| authenticator_row(&r))
    .transpose()
}

/// The transaction of [`Store::create_identity`](crate::store::Store::create_identity).
pub(super) async fn create_identity(t: &Tx<'_>, identity: Identity) -> StoreResult<()> {
    let st = t
        .prepare_cached(
            "INSERT INTO identities (id, user_id, user_id_folded, display_name, blocked, created_at_ms, \
             phone, email, notify_every_use) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .await?;
    // A taken user ID is reported as a conflict; the statement's failure
    // aborts the transaction, which the caller then rolls back.
    t.execute(
        &st,
        &[
            &Col(identity.id),
            &identity.user_id,
            &identity.user_id_folded,
            &identity.display_name,
            &identity.blocked,
            &i64_of(identity.created_at_ms),
            &identity.phone,
            &identity.email,
            &identity.notify_every_use,
        ],
    )
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Conflict("user_id")
        } else {
            e
        }
    })?;
    Ok(())
}

/// The transaction of [`Store::identity_by_user_id`](crate::store::Store::identity_by_user_id).
pub(super) async fn identity_by_user_id(t: &Tx<'_>, folded: &str) -> StoreResult<Option<Identity>> {
    opt(
        t,
        &format!("SELECT {IDENTITY_COLUMNS} FROM identities WHERE user_id_folded = $1"),
        &[&folded],
    )
    .await?
    .map(|r| identity_row(&r))
    .transpose()
}

/// The transaction of [`Store::set_blocked`](crate::store::Store::set_blocked).
pub(super) async fn set_blocked(
    t: &Tx<'_>,
    id: IdentityId,
    blocked: bool,
    now_ms: u64,
    audit_id: Option<u64>,
) -> StoreResult<Option<Vec<RequestId>>> {
    if blocked {
        // The person's pending requests are locked before the identity, in
        // the order a decision takes them (the request, then the phone and
        // the identity): locked the other way round, a block holding the
        // identity and waiting on a request met a decision holding that
        // request and waiting on the identity, a deadlock PostgreSQL broke
        // only after its `deadlock_timeout`. In id order, so that two
        // blocks of one person queue too. A request created meanwhile is
        // not among them; its creation updated the identity's row, which
        // the lock below then finds changed since this transaction's
        // snapshot (a serialization failure: run again, seeing it).
        all(
            t,
            "SELECT 1 FROM requests WHERE identity_id = $1 AND status = 'pending' \
             ORDER BY id FOR UPDATE",
            &[&Col(id)],
        )
        .await?;
    }
    let Some(row) = opt(
        t,
        "SELECT blocked FROM identities WHERE id = $1 FOR UPDATE",
        &[&Col(id)],
    )
    .await?
    else {
        return Ok(None);
    };
    let was_blocked: bool = get(&row, 0)?;
    if was_blocked != blocked {
        exec(
            t,
            "UPDATE identities SET blocked = $2 WHERE id = $1",
            &[&Col(id), &blocked],
        )
        .await?;
        let event_id = insert_event(
            t,
            &NewEvent {
                identity_id: id,
                kind: if blocked {
                    SecurityEventKind::IdentityBlocked
                } else {
                    SecurityEventKind::IdentityUnblocked
                },
                authenticator_id: None,
                detail: None,
                occurred_at_ms: now_ms,
                extra_recipients: Vec::new(),
            },
        )
        .await?;
        if let Some(audit_id) = audit_id {
            // The person's event points to who blocked them and why.
            exec(
                t,
                "UPDATE security_events SET audit_id = $2 WHERE id = $1",
                &[&i64_of(event_id), &i64_of(audit_id)],
            )
            .await?;
        }
    }
    let mut cancelled = Vec::new();
    if blocked {
        for r in all(
            t,
            "UPDATE requests SET status = 'cancelled' WHERE identity_id = $1 AND status = 'pending' RETURNING id",
            &[&Col(id)],
        )
        .await?
        {
            cancelled.push(col::<RequestId>(&r, 0)?);
        }
        for request_id in &cancelled {
            super::webhooks::enqueue(t, request_id, RequestStatus::Cancelled, now_ms).await?;
        }
        // A new device being added must never arrive on a blocked
        // identity, not even after an unblock.
        exec(
            t,
            "UPDATE device_enrolments SET state = 'cancelled' \
             WHERE identity_id = $1 AND state IN ('awaiting_approval', 'waiting')",
            &[&Col(id)],
        )
        .await?;
        // A block also ends the person's open self-service changes.
        exec(
            t,
            &format!(
                "UPDATE self_service_changes SET state = 'cancelled' \
                 WHERE identity_id = $1 AND state IN {OPEN_STATES_SQL}"
            ),
            &[&Col(id)],
        )
        .await?;
    }
    Ok(Some(cancelled))
}

/// The transaction of [`Store::set_notify_every_use`](crate::store::Store::set_notify_every_use).
pub(super) async fn set_notify_every_use(
    t: &Tx<'_>,
    id: IdentityId,
    on: bool,
    by: AuthenticatorId,
    now_ms: u64,
) -> StoreResult<bool> {
    let Some(row) = opt(
        t,
        "SELECT notify_every_use FROM identities WHERE id = $1 FOR UPDATE",
        &[&Col(id)],
    )
    .await?
    else {
        return Ok(false);
    };
    let was_on: bool = get(&row, 0)?;
    if was_on != on {
        exec(
            t,
            "UPDATE identities SET notify_every_use = $2 WHERE id = $1",
            &[&Col(id), &on],
        )
        .await?;
    }
    // Silencing the notifications is what a thief would do first: the
    // person hears of it on every channel.
    if was_on && !on {
        insert_event(
            t,
            &NewEvent {
                identity_id: id,
                kind: SecurityEventKind::NotifyEveryUseTurnedOff,
                authenticator_id: Some(by),
                detail: None,
                occurred_at_ms: now_ms,
                extra_recipients: Vec::new(),
            },
        )
        .await?;
    }
    Ok(true)
}

/// The transaction of [`Store::put_activation_code`](crate::store::Store::put_activation_code).
pub(super) async fn put_activation_code(t: &Tx<'_>, code: &ActivationCode) -> StoreResult<()> {
    exec(
        t,
        "INSERT INTO activation_codes (identity_id, code_sha256, created_at_ms, expires_at_ms, tries, used) \
         VALUES ($1, $2, $3, $4, 0, FALSE) \
         ON CONFLICT (identity_id) DO UPDATE SET code_sha256 = excluded.code_sha256, \
         created_at_ms = excluded.created_at_ms, expires_at_ms = excluded.expires_at_ms, \
         tries = 0, used = FALSE",
        &[
            &Col(code.identity_id),
            &code.code_sha256.as_slice(),
            &i64_of(code.created_at_ms),
            &i64_of(code.expires_at_ms),
        ],
    )
    .await?;
    Ok(())
}

/// The transaction of [`Store::activate`](crate::store::Store::activate).
pub(super) async fn activate(
    t: &Tx<'_>,
    folded: &str,
    code_sha256_for: &(dyn Fn(IdentityId) -> [u8; 32] + Send + Sync),
    max_tries: u32,
    now_ms: u64,
    authenticator: Authenticator,
) -> StoreResult<ActivationResult> {
    let Some(identity) = identity_by_user_id(t, folded).await? else {
        return Ok(ActivationResult::NoUsableCode);
    };
    // Locked: two activations with one code queue, and the second sees it used.
    let Some(row) = opt(
        t,
        "SELECT code_sha256, expires_at_ms, tries, used FROM activation_codes \
         WHERE identity_id = $1 FOR UPDATE",
        &[&Col(identity.id)],
    )
    .await?
    else {
        return Ok(ActivationResult::NoUsableCode);
    };
    let stored_hash: [u8; 32] = col(&row, 0)?;
    let code = policy::StoredCode {
        used: get(&row, 3)?,
        tries: col(&row, 2)?,
        expires_at_ms: col(&row, 1)?,
    };
    let presented = code_sha256_for(identity.id);
    let matches = eid_protocol::crypto::constant_time_eq(&presented, &stored_hash);
    match policy::activation_code(code, matches, max_tries, now_ms) {
        policy::CodeCheck::RetryOfUsed => {
            // A retry of an activation whose answer was lost: within the
            // code's lifetime, the same code and the same two keys get the
            // same authenticator back.
            let existing = opt(
                t,
                &format!(
                    "SELECT {AUTHENTICATOR_COLUMNS} FROM authenticators \
                     WHERE identity_id = $1 AND device_public_key = $2 AND pin_public_key = $3 \
                     ORDER BY activated_at_ms DESC LIMIT 1"
                ),
                &[
                    &Col(identity.id),
                    &authenticator.device_public_key.as_bytes().as_slice(),
                    &authenticator.pin_public_key.as_bytes().as_slice(),
                ],
            )
            .await?
            .map(|r| authenticator_row(&r))
            .transpose()?;
            return Ok(match existing {
                Some(a) if a.state == AuthenticatorState::Active && !identity.blocked => {
                    ActivationResult::AlreadyActivated(a)
                }
                _ => ActivationResult::NoUsableCode,
            });
        }
        policy::CodeCheck::Unusable => return Ok(ActivationResult::NoUsableCode),
        policy::CodeCheck::Wrong => {
            let row = one(
                t,
                "UPDATE activation_codes SET tries = tries + 1 WHERE identity_id = $1 RETURNING tries",
                &[&Col(identity.id)],
            )
            .await?;
            let tries: u32 = col(&row, 0)?;
            // The try that voids the code tells the person: someone has
            // been guessing, and they need a new code from support.
            if tries == max_tries {
                insert_event(
                    t,
                    &NewEvent {
                        identity_id: identity.id,
                        kind: SecurityEventKind::ActivationCodeVoided,
                        authenticator_id: None,
                        detail: None,
                        occurred_at_ms: now_ms,
                        extra_recipients: Vec::new(),
                    },
                )
                .await?;
            }
            return Ok(ActivationResult::WrongCode);
        }
        policy::CodeCheck::Right => {}
    }
    if identity.blocked {
        return Ok(ActivationResult::Blocked);
    }
    exec(
        t,
        "UPDATE activation_codes SET used = TRUE WHERE identity_id = $1",
        &[&Col(identity.id)],
    )
    .await?;
    let auth = Authenticator {
        identity_id: identity.id,
        ..authenticator
    };
    insert_authenticator(t, &auth).await?;
    insert_event(
        t,
        &NewEvent {
            identity_id: auth.identity_id,
            kind: SecurityEventKind::DeviceActivated,
            authenticator_id: Some(auth.id),
            detail: None,
            occurred_at_ms: now_ms,
            extra_recipients: Vec::new(),
        },
    )
    .await?;
    Ok(ActivationResult::Activated(auth))
}

/// Stores a new, active authenticator.
pub(super) async fn insert_authenticator(t: &Tx<'_>, auth: &Authenticator) -> StoreResult<()> {
    exec(
        t,
        "INSERT INTO authenticators (id, identity_id, device_public_key, pin_public_key, state, \
         failed_pin_count, last_counter, activated_at_ms) VALUES ($1, $2, $3, $4, 'active', 0, 0, $5)",
        &[
            &Col(auth.id),
            &Col(auth.identity_id),
            &auth.device_public_key.as_bytes().as_slice(),
            &auth.pin_public_key.as_bytes().as_slice(),
            &i64_of(auth.activated_at_ms),
        ],
    )
    .await?;
    Ok(())
}

/// The transaction of [`Store::authenticators_of`](crate::store::Store::authenticators_of).
pub(super) async fn authenticators_of(
    t: &Tx<'_>,
    identity_id: IdentityId,
) -> StoreResult<Vec<Authenticator>> {
    all(
        t,
        &format!(
            "SELECT {AUTHENTICATOR_COLUMNS} FROM authenticators WHERE identity_id = $1 \
             ORDER BY activated_at_ms"
        ),
        &[&Col(identity_id)],
    )
    .await?
    .iter()
    .map(authenticator_row)
    .collect()
}

/// The transaction of [`Store::record_wrong_pin`](crate::store::Store::record_wrong_pin).
pub(super) async fn record_wrong_pin(
    t: &Tx<'_>,
    id: AuthenticatorId,
    lock_at: u32,
    now_ms: u64,
) -> StoreResult<u32> {
    let row = one(
        t,
        "UPDATE authenticators SET failed_pin_count = failed_pin_count + 1 WHERE id = $1 \
         RETURNING failed_pin_count, identity_id, state = 'active'",
        &[&Col(id)],
    )
    .await?;
    let count: u32 = col(&row, 0)?;
    let identity_id: IdentityId = col(&row, 1)?;
    let was_active: bool = get(&row, 2)?;
    if count >= lock_at {
        exec(
            t,
            "UPDATE authenticators SET state = 'locked' WHERE id = $1",
            &[&Col(id)],
        )
        .await?;
        // Once, when it locks.
        if was_active {
            insert_event(
                t,
                &NewEvent {
                    identity_id,
                    kind: SecurityEventKind::PinLockout,
                    authenticator_id: Some(id),
                    detail: None,
                    occurred_at_ms: now_ms,
                    extra_recipients: Vec::new(),
                },
            )
            .await?;
        }
    }
    Ok(count)
}
