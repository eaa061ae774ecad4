//! Identities, their blocking and contact settings, activation codes,
//! activation, and authenticators (wrong-PIN counting and lock).

use std::sync::LazyLock;

use eid_protocol::events::SecurityEventKind;
use eid_protocol::wire::RequestStatus;
use eid_protocol::{AuthenticatorId, IdentityId, RequestId};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::changes::OPEN_STATES_SQL;
use super::columns::{Col, blob16, blob32, col, i64_of, is_unique_violation, pubkey, u64_at};
use super::outbox::insert_event;
use crate::policy;
use crate::store::{
    ActivationCode, ActivationResult, Authenticator, AuthenticatorState, Identity, NewEvent,
    StoreError, StoreResult,
};

pub(super) const IDENTITY_COLUMNS: &str = "id, user_id, user_id_folded, display_name, blocked, created_at_ms, \
     phone, email, notify_every_use";

pub(super) fn identity_row(row: &Row<'_>) -> rusqlite::Result<Identity> {
    Ok(Identity {
        id: col::<IdentityId>(row, 0)?,
        user_id: row.get(1)?,
        user_id_folded: row.get(2)?,
        display_name: row.get(3)?,
        blocked: row.get(4)?,
        created_at_ms: u64_at(row, 5)?,
        phone: row.get(6)?,
        email: row.get(7)?,
        notify_every_use: row.get(8)?,
    })
}

/// The SQL texts of the reads every login makes, formatted once (not at
/// every call: the statement cache is keyed by the text anyway).
static LOAD_IDENTITY_SQL: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {IDENTITY_COLUMNS} FROM identities WHERE id = ?1"));
static LOAD_AUTHENTICATOR_SQL: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {AUTHENTICATOR_COLUMNS} FROM authenticators WHERE id = ?1"));

pub(super) fn load_identity(conn: &Connection, id: &IdentityId) -> StoreResult<Option<Identity>> {
    let mut stmt = conn.prepare_cached(&LOAD_IDENTITY_SQL)?;
    Ok(stmt.query_row(params![Col(id)], identity_row).optional()?)
}

pub(super) const AUTHENTICATOR_COLUMNS: &str = "id, identity_id, device_public_key, pin_public_key, state, \
     failed_pin_count, last_counter, activated_at_ms";

pub(super) fn authenticator_row(row: &Row<'_>) -> rusqlite::Result<Authenticator> {
    Ok(Authenticator {
        id: col(row, 0)?,
        identity_id: col(row, 1)?,
        device_public_key: pubkey(row, 2)?,
        pin_public_key: pubkey(row, 3)?,
        state: row.get(4)?,
        failed_pin_count: row.get(5)?,
        last_counter: u64_at(row, 6)?,
        activated_at_ms: u64_at(row, 7)?,
    })
}

pub(super) fn load_authenticator(
    conn: &Connection,
    id: &AuthenticatorId,
) -> StoreResult<Option<Authenticator>> {
    let mut stmt = conn.prepare_cached(&LOAD_AUTHENTICATOR_SQL)?;
    Ok(stmt
        .query_row(params![Col(id)], authenticator_row)
        .optional()?)
}

/// The transaction of [`Store::create_identity`](crate::store::Store::create_identity).
pub(super) fn create_identity(c: &Connection, identity: Identity) -> StoreResult<()> {
    c.prepare_cached(
        "INSERT INTO identities (id, user_id, user_id_folded, display_name, blocked, created_at_ms, \
         phone, email, notify_every_use) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        Col(identity.id),
        identity.user_id,
        identity.user_id_folded,
        identity.display_name,
        identity.blocked,
        i64_of(identity.created_at_ms),
        identity.phone,
        identity.email,
        identity.notify_every_use
    ])
    .map_err(|e| if is_unique_violation(&e) { StoreError::Conflict("user_id") } else { e.into() })?;
    Ok(())
}

/// The transaction of [`Store::identity_by_user_id`](crate::store::Store::identity_by_user_id).
pub(super) fn identity_by_user_id(c: &Connection, folded: String) -> StoreResult<Option<Identity>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {IDENTITY_COLUMNS} FROM identities WHERE user_id_folded = ?1"
    ))?;
    Ok(stmt.query_row(params![folded], identity_row).optional()?)
}

/// The transaction of [`Store::set_blocked`](crate::store::Store::set_blocked).
pub(super) fn set_blocked(
    c: &Connection,
    id: IdentityId,
    blocked: bool,
    now_ms: u64,
    audit_id: Option<u64>,
) -> StoreResult<Option<Vec<RequestId>>> {
    let Some(was_blocked) = c
        .prepare_cached("SELECT blocked FROM identities WHERE id = ?1")?
        .query_row(params![Col(id)], |r| r.get::<_, bool>(0))
        .optional()?
    else {
        return Ok(None);
    };
    if was_blocked != blocked {
        c.prepare_cached("UPDATE identities SET blocked = ?2 WHERE id = ?1")?
            .execute(params![Col(id), blocked])?;
        let event_id = insert_event(
            c,
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
        )?;
        if let Some(audit_id) = audit_id {
            // The person's event points to who blocked them and why.
            c.prepare_cached("UPDATE security_events SET audit_id = ?2 WHERE id = ?1")?
                .execute(params![i64_of(event_id), i64_of(audit_id)])?;
        }
    }
    let mut cancelled = Vec::new();
    if blocked {
        let mut stmt = c.prepare_cached(
            "UPDATE requests SET status = 'cancelled' WHERE identity_id = ?1 AND status = 'pending' RETURNING id",
        )?;
        let rows = stmt.query_map(params![Col(id)], |r| blob16(r, 0))?;
        for r in rows {
            cancelled.push(RequestId(r?));
        }
        drop(stmt);
        for request_id in &cancelled {
            super::webhooks::enqueue(c, request_id, RequestStatus::Cancelled, now_ms)?;
        }
        // A new device being added must never arrive on a blocked
        // identity, not even after an unblock.
        c.prepare_cached(
            "UPDATE device_enrolments SET state = 'cancelled' \
             WHERE identity_id = ?1 AND state IN ('awaiting_approval', 'waiting')",
        )?
        .execute(params![Col(id)])?;
        // A block also ends the person's open self-service changes.
        c.prepare_cached(&format!(
            "UPDATE self_service_changes SET state = 'cancelled' \
             WHERE identity_id = ?1 AND state IN {OPEN_STATES_SQL}"
        ))?
        .execute(params![Col(id)])?;
    }
    Ok(Some(cancelled))
}

/// The transaction of [`Store::set_notify_every_use`](crate::store::Store::set_notify_every_use).
pub(super) fn set_notify_every_use(
    c: &Connection,
    id: IdentityId,
    on: bool,
    by: AuthenticatorId,
    now_ms: u64,
) -> StoreResult<bool> {
    let Some(was_on) = c
        .prepare_cached("SELECT notify_every_use FROM identities WHERE id = ?1")?
        .query_row(params![Col(id)], |r| r.get::<_, bool>(0))
        .optional()?
    else {
        return Ok(false);
    };
    if was_on != on {
        c.prepare_cached("UPDATE identities SET notify_every_use = ?2 WHERE id = ?1")?
            .execute(params![Col(id), on])?;
    }
    // Silencing the notifications is what a thief would do first: the
    // person hears of it on every channel.
    if was_on && !on {
        insert_event(
            c,
            &NewEvent {
                identity_id: id,
                kind: SecurityEventKind::NotifyEveryUseTurnedOff,
                authenticator_id: Some(by),
                detail: None,
                occurred_at_ms: now_ms,
                extra_recipients: Vec::new(),
            },
        )?;
    }
    Ok(true)
}

/// The transaction of [`Store::put_activation_code`](crate::store::Store::put_activation_code).
pub(super) fn put_activation_code(c: &Connection, code: ActivationCode) -> StoreResult<()> {
    c.prepare_cached(
        "INSERT INTO activation_codes (identity_id, code_sha256, created_at_ms, expires_at_ms, tries, used) \
         VALUES (?1, ?2, ?3, ?4, 0, 0) \
         ON CONFLICT(identity_id) DO UPDATE SET code_sha256 = excluded.code_sha256, \
         created_at_ms = excluded.created_at_ms, expires_at_ms = excluded.expires_at_ms, tries = 0, used = 0",
    )?
    .execute(params![
        Col(code.identity_id),
        code.code_sha256.as_slice(),
        i64_of(code.created_at_ms),
        i64_of(code.expires_at_ms)
    ])?;
    Ok(())
}

/// The transaction of [`Store::activate`](crate::store::Store::activate).
pub(super) fn activate(
    c: &Connection,
    folded: String,
    code_sha256_for: Box<dyn Fn(IdentityId) -> [u8; 32] + Send>,
    max_tries: u32,
    now_ms: u64,
    authenticator: Authenticator,
) -> StoreResult<ActivationResult> {
    let identity = c
        .prepare_cached(&format!(
            "SELECT {IDENTITY_COLUMNS} FROM identities WHERE user_id_folded = ?1"
        ))?
        .query_row(params![folded], identity_row)
        .optional()?;
    let Some(identity) = identity else {
        return Ok(ActivationResult::NoUsableCode);
    };
    let code = c
        .prepare_cached(
            "SELECT code_sha256, expires_at_ms, tries, used FROM activation_codes WHERE identity_id = ?1",
        )?
        .query_row(params![Col(identity.id)], |r| {
            Ok((blob32(r, 0)?, u64_at(r, 1)?, r.get::<_, u32>(2)?, r.get::<_, bool>(3)?))
        })
        .optional()?;
    let Some((stored_hash, expires_at_ms, tries, used)) = code else {
        return Ok(ActivationResult::NoUsableCode);
    };
    let presented = code_sha256_for(identity.id);
    let code = policy::StoredCode {
        used,
        tries,
        expires_at_ms,
    };
    let matches = eid_protocol::crypto::constant_time_eq(&presented, &stored_hash);
    match policy::activation_code(code, matches, max_tries, now_ms) {
        policy::CodeCheck::RetryOfUsed => {
            // A retry of an activation whose answer was lost: within the
            // code's lifetime, the same code and the same two keys get the
            // same authenticator back. After that the code is simply spent,
            // so a captured activation body cannot be replayed for ever.
            let existing = c
                .prepare_cached(&format!(
                    "SELECT {AUTHENTICATOR_COLUMNS} FROM authenticators \
                     WHERE identity_id = ?1 AND device_public_key = ?2 AND pin_public_key = ?3 \
                     ORDER BY activated_at_ms DESC LIMIT 1"
                ))?
                .query_row(
                    params![
                        Col(identity.id),
                        authenticator.device_public_key.as_bytes().as_slice(),
                        authenticator.pin_public_key.as_bytes().as_slice()
                    ],
                    authenticator_row,
                )
                .optional()?;
            return Ok(match existing {
                Some(a) if a.state == AuthenticatorState::Active && !identity.blocked => {
                    ActivationResult::AlreadyActivated(a)
                }
                _ => ActivationResult::NoUsableCode,
            });
        }
        policy::CodeCheck::Unusable => return Ok(ActivationResult::NoUsableCode),
        policy::CodeCheck::Wrong => {
            let tries: u32 = c
                .prepare_cached(
                    "UPDATE activation_codes SET tries = tries + 1 WHERE identity_id = ?1 RETURNING tries",
                )?
                .query_row(params![Col(identity.id)], |r| r.get(0))?;
            // The try that voids the code tells the person (SMS, e-mail, the
            // feed of any phone they still have): someone has been guessing,
            // and they need a new code from support.
            if tries == max_tries {
                insert_event(
                    c,
                    &NewEvent {
                        identity_id: identity.id,
                        kind: SecurityEventKind::ActivationCodeVoided,
                        authenticator_id: None,
                        detail: None,
                        occurred_at_ms: now_ms,
                        extra_recipients: Vec::new(),
                    },
                )?;
            }
            return Ok(ActivationResult::WrongCode);
        }
        policy::CodeCheck::Right => {}
    }
    if identity.blocked {
        return Ok(ActivationResult::Blocked);
    }
    c.prepare_cached("UPDATE activation_codes SET used = 1 WHERE identity_id = ?1")?
        .execute(params![Col(identity.id)])?;
    let auth = Authenticator {
        identity_id: identity.id,
        ..authenticator
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
        i64_of(auth.activated_at_ms)
    ])?;
    insert_event(
        c,
        &NewEvent {
            identity_id: auth.identity_id,
            kind: SecurityEventKind::DeviceActivated,
            authenticator_id: Some(auth.id),
            detail: None,
            occurred_at_ms: now_ms,
            extra_recipients: Vec::new(),
        },
    )?;
    Ok(ActivationResult::Activated(auth))
}

/// The transaction of [`Store::authenticators_of`](crate::store::Store::authenticators_of).
pub(super) fn authenticators_of(
    c: &Connection,
    identity_id: IdentityId,
) -> StoreResult<Vec<Authenticator>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {AUTHENTICATOR_COLUMNS} FROM authenticators WHERE identity_id = ?1 ORDER BY activated_at_ms"
    ))?;
    let rows = stmt.query_map(params![Col(identity_id)], authenticator_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The transaction of [`Store::record_wrong_pin`](crate::store::Store::record_wrong_pin).
pub(super) fn record_wrong_pin(
    c: &Connection,
    id: AuthenticatorId,
    lock_at: u32,
    now_ms: u64,
) -> StoreResult<u32> {
    let (count, identity_id, was_active): (u32, IdentityId, bool) = c
        .prepare_cached(
            "UPDATE authenticators SET failed_pin_count = failed_pin_count + 1 WHERE id = ?1 \
             RETURNING failed_pin_count, identity_id, state = 'active'",
        )?
        .query_row(params![Col(id)], |r| {
            Ok((r.get(0)?, col::<IdentityId>(r, 1)?, r.get(2)?))
        })?;
    if count >= lock_at {
        c.prepare_cached("UPDATE authenticators SET state = 'locked' WHERE id = ?1")?
            .execute(params![Col(id)])?;
        // Once, when it locks.
        if was_active {
            insert_event(
                c,
                &NewEvent {
                    identity_id,
                    kind: SecurityEventKind::PinLockout,
                    authenticator_id: Some(id),
                    detail: None,
                    occurred_at_ms: now_ms,
                    extra_recipients: Vec::new(),
                },
            )?;
        }
    }
    Ok(count)
}
