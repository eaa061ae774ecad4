//! Code devices and their batches: import (one audited write, all or
//! nothing), the conditional write that uses a code's time step once (one
//! `UPDATE`, so of any number of replicas presenting one step only one
//! moves it), the failure count and block, and the activation with
//! support's activation code. The rules come from
//! [`crate::code_devices::check`] and [`crate::policy`].

use eid_protocol::events::SecurityEventKind;
use eid_protocol::{IdentityId, RequestId};
use tokio_postgres::Row;

use super::audit::insert_audit;
use super::columns::{Col, col, get, i64_of, opt_col};
use super::connection::{Tx, all, exec, one, opt};
use super::outbox::{insert_event, lock_identity};
use crate::access_code::AccessCodeHash;
use crate::code_devices::check::{MAX_FAILURES, block_ms};
use crate::code_devices::totp::Algorithm;
use crate::policy;
use crate::store::{
    AttemptRecorded, CodeAttempt, CodeDevice, CodeDeviceKind, CodeDeviceState, CodeStepResult,
    DecisionRecord, ImportResult, NewAudit, NewEvent, StoreError, StoreResult,
    SupportActivationResult, TokenBatch,
};

const COLUMNS: &str = "serial, batch_id, kind, algorithm, digits, step_secs, sealed_seed, \
     identity_id, state, last_step, failures, blocks, blocked_until_ms, access_code_hash, \
     added_at_ms, activated_at_ms, last_used_at_ms";

fn row(r: &Row) -> StoreResult<CodeDevice> {
    let kind: &str = get(r, 2)?;
    let algorithm: &str = get(r, 3)?;
    let state: &str = get(r, 8)?;
    Ok(CodeDevice {
        serial: get(r, 0)?,
        batch_id: col(r, 1)?,
        kind: CodeDeviceKind::parse(kind)
            .ok_or(StoreError::Inconsistent("unknown code device kind"))?,
        algorithm: Algorithm::parse(algorithm)
            .ok_or(StoreError::Inconsistent("unknown code device algorithm"))?,
        digits: col(r, 4)?,
        step_secs: col(r, 5)?,
        sealed_seed: get(r, 6)?,
        identity_id: opt_col(r, 7)?,
        state: match state {
            "unassigned" => CodeDeviceState::Unassigned,
            "active" => CodeDeviceState::Active,
            "deactivated" => CodeDeviceState::Deactivated,
            _ => return Err(StoreError::Inconsistent("unknown code device state")),
        },
        last_step: opt_col(r, 9)?,
        failures: col(r, 10)?,
        blocks: col(r, 11)?,
        blocked_until_ms: opt_col(r, 12)?,
        access_code_hash: get::<Option<String>>(r, 13)?.map(AccessCodeHash::from_stored),
        added_at_ms: col(r, 14)?,
        activated_at_ms: opt_col(r, 15)?,
        last_used_at_ms: opt_col(r, 16)?,
    })
}

/// One device by serial; its row locked when `lock`.
async fn device(t: &Tx<'_>, serial: &str, lock: bool) -> StoreResult<Option<CodeDevice>> {
    let suffix = if lock { " FOR UPDATE" } else { "" };
    opt(
        t,
        &format!("SELECT {COLUMNS} FROM code_devices WHERE serial = $1{suffix}"),
        &[&serial],
    )
    .await?
    .map(|r| row(&r))
    .transpose()
}

/// The read of [`Store::code_device`](crate::store::Store::code_device).
pub(super) async fn code_device(t: &Tx<'_>, serial: &str) -> StoreResult<Option<CodeDevice>> {
    device(t, serial, false).await
}

/// The read of [`Store::code_devices_of`](crate::store::Store::code_devices_of).
pub(super) async fn code_devices_of(
    t: &Tx<'_>,
    identity_id: IdentityId,
) -> StoreResult<Vec<CodeDevice>> {
    all(
        t,
        &format!(
            "SELECT {COLUMNS} FROM code_devices WHERE identity_id = $1 \
             ORDER BY activated_at_ms NULLS FIRST, serial"
        ),
        &[&Col(identity_id)],
    )
    .await?
    .iter()
    .map(row)
    .collect()
}

/// The transaction of [`Store::import_token_batch`](crate::store::Store::import_token_batch).
pub(super) async fn import_token_batch(
    t: &Tx<'_>,
    audit: &NewAudit,
    batch: &TokenBatch,
    devices: &[CodeDevice],
) -> StoreResult<ImportResult> {
    // Every serial is checked before anything is written: a batch is
    // stored whole or not at all. A concurrent import of the same serial
    // fails this transaction's serialization, and its retry finds it.
    for d in devices {
        if opt(
            t,
            "SELECT 1 FROM code_devices WHERE serial = $1",
            &[&d.serial],
        )
        .await?
        .is_some()
        {
            return Ok(ImportResult::SerialTaken(d.serial.clone()));
        }
    }
    exec(
        t,
        "INSERT INTO token_batches (id, label, imported_at_ms, device_count) VALUES ($1, $2, $3, $4)",
        &[
            &batch.id.as_slice(),
            &batch.label,
            &i64_of(batch.imported_at_ms),
            &i64::from(batch.device_count),
        ],
    )
    .await?;
    for d in devices {
        exec(
            t,
            "INSERT INTO code_devices (serial, batch_id, kind, algorithm, digits, step_secs, \
             sealed_seed, state, added_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, 'unassigned', $8)",
            &[
                &d.serial,
                &batch.id.as_slice(),
                &d.kind.as_str(),
                &d.algorithm.as_str(),
                &i64::from(d.digits),
                &i64_of(d.step_secs),
                &d.sealed_seed,
                &i64_of(d.added_at_ms),
            ],
        )
        .await?;
    }
    let audit_id = insert_audit(t, audit).await?;
    Ok(ImportResult::Imported { audit_id })
}

/// The transaction of [`Store::use_code_step`](crate::store::Store::use_code_step):
/// one conditional update, so the check of "above the last accepted step"
/// and the move of that step cannot be split by another write. Concurrent
/// tries queue on the row lock; the losers are run again (serialization
/// failure) and then find the step used.
pub(super) async fn use_code_step(
    t: &Tx<'_>,
    serial: &str,
    identity_id: IdentityId,
    step: u64,
    now_ms: u64,
) -> StoreResult<CodeStepResult> {
    let n = exec(
        t,
        "UPDATE code_devices SET last_step = $3 \
         WHERE serial = $1 AND identity_id = $2 AND state = 'active' \
         AND (last_step IS NULL OR last_step < $3) \
         AND (blocked_until_ms IS NULL OR blocked_until_ms <= $4) \
         AND NOT EXISTS (SELECT 1 FROM identities WHERE id = $2 AND blocked)",
        &[&serial, &Col(identity_id), &i64_of(step), &i64_of(now_ms)],
    )
    .await?;
    if n == 1 {
        return Ok(CodeStepResult::Accepted);
    }
    let Some(device) = device(t, serial, false).await? else {
        return Ok(CodeStepResult::Unusable);
    };
    let usable = device.state == CodeDeviceState::Active
        && device.identity_id == Some(identity_id)
        && !device.blocked_at(now_ms);
    Ok(
        if usable && device.last_step.is_some_and(|last| last >= step) {
            CodeStepResult::Replayed
        } else {
            CodeStepResult::Unusable
        },
    )
}

/// The transaction of [`Store::record_code_device_attempt`](crate::store::Store::record_code_device_attempt).
pub(super) async fn record_code_device_attempt(
    t: &Tx<'_>,
    serial: &str,
    attempt: CodeAttempt,
    now_ms: u64,
) -> StoreResult<AttemptRecorded> {
    let Some(identity_id) = device(t, serial, false)
        .await?
        .filter(|d| d.state == CodeDeviceState::Active)
        .and_then(|d| d.identity_id)
    else {
        return Ok(AttemptRecorded::Unknown);
    };
    // The identity before the device, in the order every feed write takes
    // its locks; then the device is read again under its lock, so two
    // replicas counting failures at once add up.
    lock_identity(t, &identity_id).await?;
    let Some(device) = device(t, serial, true)
        .await?
        .filter(|d| d.state == CodeDeviceState::Active && d.identity_id == Some(identity_id))
    else {
        return Ok(AttemptRecorded::Unknown);
    };
    let event = |kind, detail: Option<String>| NewEvent {
        identity_id,
        kind,
        authenticator_id: None,
        detail,
        occurred_at_ms: now_ms,
        extra_recipients: Vec::new(),
    };
    let masked = crate::code_devices::masked_serial(&device.serial);
    if attempt == CodeAttempt::LoggedIn {
        exec(
            t,
            "UPDATE code_devices SET failures = 0, last_used_at_ms = $2 WHERE serial = $1",
            &[&serial, &i64_of(now_ms)],
        )
        .await?;
        insert_event(t, &event(SecurityEventKind::CodeDeviceUsed, Some(masked))).await?;
        return Ok(AttemptRecorded::Used);
    }
    let failures = device.failures.saturating_add(1);
    if failures < MAX_FAILURES {
        exec(
            t,
            "UPDATE code_devices SET failures = $2 WHERE serial = $1",
            &[&serial, &i64::from(failures)],
        )
        .await?;
        return Ok(AttemptRecorded::Counted(failures));
    }
    let until_ms = now_ms.saturating_add(block_ms(device.blocks));
    exec(
        t,
        "UPDATE code_devices SET failures = 0, blocks = blocks + 1, blocked_until_ms = $2 \
         WHERE serial = $1",
        &[&serial, &i64_of(until_ms)],
    )
    .await?;
    insert_event(
        t,
        &event(SecurityEventKind::CodeDeviceBlocked, Some(masked)),
    )
    .await?;
    Ok(AttemptRecorded::Blocked { until_ms })
}

/// What [`activate_code_device_by_support`] needs of a
/// [`SupportActivation`](crate::store::SupportActivation), cloneable for a
/// transaction run again.
#[derive(Clone)]
pub(super) struct Activation {
    pub(super) user_id_folded: String,
    pub(super) max_tries: u32,
    pub(super) serial: String,
    pub(super) step: u64,
    pub(super) access_code_hash: AccessCodeHash,
    pub(super) now_ms: u64,
}

/// The transaction of [`Store::activate_code_device_by_support`](crate::store::Store::activate_code_device_by_support).
pub(super) async fn activate_code_device_by_support(
    t: &Tx<'_>,
    a: &Activation,
    code_sha256_for: &(dyn Fn(IdentityId) -> [u8; 32] + Send + Sync),
) -> StoreResult<SupportActivationResult> {
    // The identity's row is locked first: the feed order, and two
    // activations for one person (on two replicas) queue here.
    let Some(row) = opt(
        t,
        "SELECT id, blocked FROM identities WHERE user_id_folded = $1 FOR UPDATE",
        &[&a.user_id_folded],
    )
    .await?
    else {
        return Ok(SupportActivationResult::NoUsableCode);
    };
    let identity_id: IdentityId = col(&row, 0)?;
    let blocked: bool = get(&row, 1)?;
    if blocked {
        return Ok(SupportActivationResult::NoUsableCode);
    }
    let Some(row) = opt(
        t,
        "SELECT code_sha256, expires_at_ms, tries, used FROM activation_codes \
         WHERE identity_id = $1 FOR UPDATE",
        &[&Col(identity_id)],
    )
    .await?
    else {
        return Ok(SupportActivationResult::NoUsableCode);
    };
    let stored_hash: [u8; 32] = col(&row, 0)?;
    let stored = policy::StoredCode {
        used: get(&row, 3)?,
        tries: col(&row, 2)?,
        expires_at_ms: col(&row, 1)?,
    };
    let presented = code_sha256_for(identity_id);
    let matches = eid_protocol::crypto::constant_time_eq(&presented, &stored_hash);
    match policy::activation_code(stored, matches, a.max_tries, a.now_ms) {
        policy::CodeCheck::Right => {}
        policy::CodeCheck::Wrong => {
            let row = one(
                t,
                "UPDATE activation_codes SET tries = tries + 1 WHERE identity_id = $1 RETURNING tries",
                &[&Col(identity_id)],
            )
            .await?;
            let tries: u32 = col(&row, 0)?;
            if tries == a.max_tries {
                insert_event(
                    t,
                    &NewEvent {
                        identity_id,
                        kind: SecurityEventKind::ActivationCodeVoided,
                        authenticator_id: None,
                        detail: None,
                        occurred_at_ms: a.now_ms,
                        extra_recipients: Vec::new(),
                    },
                )
                .await?;
            }
            return Ok(SupportActivationResult::NoUsableCode);
        }
        _ => return Ok(SupportActivationResult::NoUsableCode),
    }
    let has_one = opt(
        t,
        "SELECT 1 FROM code_devices WHERE identity_id = $1 AND state = 'active'",
        &[&Col(identity_id)],
    )
    .await?
    .is_some();
    if has_one {
        return Ok(SupportActivationResult::AlreadyHasOne);
    }
    let n = exec(
        t,
        "UPDATE code_devices SET identity_id = $2, state = 'active', last_step = $3, \
         access_code_hash = $4, activated_at_ms = $5, failures = 0 \
         WHERE serial = $1 AND state = 'unassigned' AND (last_step IS NULL OR last_step < $3)",
        &[
            &a.serial,
            &Col(identity_id),
            &i64_of(a.step),
            &a.access_code_hash.as_str(),
            &i64_of(a.now_ms),
        ],
    )
    .await?;
    if n != 1 {
        return Ok(SupportActivationResult::DeviceUnusable);
    }
    exec(
        t,
        "UPDATE activation_codes SET used = TRUE WHERE identity_id = $1",
        &[&Col(identity_id)],
    )
    .await?;
    insert_event(
        t,
        &NewEvent {
            identity_id,
            kind: SecurityEventKind::CodeDeviceAdded,
            authenticator_id: None,
            detail: Some(crate::code_devices::masked_serial(&a.serial)),
            occurred_at_ms: a.now_ms,
            extra_recipients: Vec::new(),
        },
    )
    .await?;
    Ok(SupportActivationResult::Activated(identity_id))
}

/// The transaction of [`Store::deactivate_code_device`](crate::store::Store::deactivate_code_device).
pub(super) async fn deactivate_code_device(
    t: &Tx<'_>,
    identity_id: IdentityId,
    serial: &str,
    now_ms: u64,
) -> StoreResult<bool> {
    lock_identity(t, &identity_id).await?;
    let n = exec(
        t,
        "UPDATE code_devices SET state = 'deactivated' \
         WHERE serial = $1 AND identity_id = $2 AND state = 'active'",
        &[&serial, &Col(identity_id)],
    )
    .await?;
    if n == 1 {
        insert_event(
            t,
            &NewEvent {
                identity_id,
                kind: SecurityEventKind::CodeDeviceDeactivated,
                authenticator_id: None,
                detail: Some(crate::code_devices::masked_serial(serial)),
                occurred_at_ms: now_ms,
                extra_recipients: Vec::new(),
            },
        )
        .await?;
    }
    Ok(n == 1)
}

/// The transaction of [`Store::use_unassigned_code_step`](crate::store::Store::use_unassigned_code_step):
/// one conditional update, like [`use_code_step`]'s.
pub(super) async fn use_unassigned_code_step(
    t: &Tx<'_>,
    serial: &str,
    step: u64,
) -> StoreResult<bool> {
    let n = exec(
        t,
        "UPDATE code_devices SET last_step = $2 \
         WHERE serial = $1 AND state = 'unassigned' AND (last_step IS NULL OR last_step < $2)",
        &[&serial, &i64_of(step)],
    )
    .await?;
    Ok(n == 1)
}

/// The transaction of [`Store::request_code_device_activation`](crate::store::Store::request_code_device_activation):
/// one conditional update, while the step its start used is still the
/// device's last and the request still waits. It runs `SERIALIZABLE`, as
/// does the decision on a self-service request: a decision that overlaps
/// it and did not see the activation conflicts with it (each read what the
/// other wrote), and PostgreSQL aborts one of the two, which runs again.
pub(super) async fn request_code_device_activation(
    t: &Tx<'_>,
    serial: &str,
    identity_id: IdentityId,
    request_id: RequestId,
    step: u64,
    access_code_hash: &AccessCodeHash,
) -> StoreResult<bool> {
    let n = exec(
        t,
        "UPDATE code_devices SET pending_request_id = $2, pending_identity_id = $3, \
         pending_access_code_hash = $4 \
         WHERE serial = $1 AND state = 'unassigned' AND last_step = $5 \
         AND EXISTS (SELECT 1 FROM requests WHERE id = $2 AND status = 'pending')",
        &[
            &serial,
            &Col(request_id),
            &Col(identity_id),
            &access_code_hash.as_str(),
            &i64_of(step),
        ],
    )
    .await?;
    Ok(n == 1)
}

/// Inside [`Store::decide`](crate::store::Store::decide)'s transaction: an
/// approved `code_device` request activates its device on the identity,
/// deactivating the active one (each notified on every channel); any other
/// outcome forgets the waiting activation.
pub(super) async fn on_decision(
    t: &Tx<'_>,
    request_id: &RequestId,
    record: &DecisionRecord,
    now_ms: u64,
) -> StoreResult<()> {
    let Some(pending) = opt(
        t,
        "SELECT serial, pending_identity_id, pending_access_code_hash FROM code_devices \
         WHERE pending_request_id = $1 AND state = 'unassigned' FOR UPDATE",
        &[&Col(request_id)],
    )
    .await?
    else {
        return Ok(());
    };
    let serial: String = get(&pending, 0)?;
    let identity_id: IdentityId = col(&pending, 1)?;
    let hash: String = get(&pending, 2)?;
    if record.outcome != eid_protocol::Outcome::Approve {
        exec(
            t,
            "UPDATE code_devices SET pending_request_id = NULL, pending_identity_id = NULL, \
             pending_access_code_hash = NULL WHERE serial = $1",
            &[&serial],
        )
        .await?;
        return Ok(());
    }
    lock_identity(t, &identity_id).await?;
    let replaced: Vec<String> = all(
        t,
        "UPDATE code_devices SET state = 'deactivated' \
         WHERE identity_id = $1 AND state = 'active' RETURNING serial",
        &[&Col(identity_id)],
    )
    .await?
    .iter()
    .map(|r| get(r, 0))
    .collect::<StoreResult<_>>()?;
    exec(
        t,
        "UPDATE code_devices SET identity_id = $2, state = 'active', access_code_hash = $3, \
         activated_at_ms = $4, failures = 0, pending_request_id = NULL, \
         pending_identity_id = NULL, pending_access_code_hash = NULL WHERE serial = $1",
        &[&serial, &Col(identity_id), &hash, &i64_of(now_ms)],
    )
    .await?;
    let event = |kind, serial: &str| NewEvent {
        identity_id,
        kind,
        authenticator_id: Some(record.authenticator_id),
        detail: Some(crate::code_devices::masked_serial(serial)),
        occurred_at_ms: now_ms,
        extra_recipients: Vec::new(),
    };
    for old in &replaced {
        insert_event(t, &event(SecurityEventKind::CodeDeviceDeactivated, old)).await?;
    }
    insert_event(t, &event(SecurityEventKind::CodeDeviceAdded, &serial)).await?;
    Ok(())
}
