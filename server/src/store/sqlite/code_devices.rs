//! Code devices and their batches: import (one audited write, all or
//! nothing), the conditional write that uses a code's time step once, the
//! failure count and block, and the activation with support's activation
//! code. The rules come from [`crate::code_devices::check`] and
//! [`crate::policy`].

use eid_protocol::IdentityId;
use eid_protocol::events::SecurityEventKind;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::audit::insert_audit;
use super::columns::{Col, blob16, blob32, col, i64_of, opt_col, opt_u64_at, u64_at};
use super::outbox::insert_event;
use crate::access_code::AccessCodeHash;
use crate::code_devices::check::{MAX_FAILURES, block_ms};
use crate::code_devices::totp::Algorithm;
use crate::policy;
use crate::store::{
    AttemptRecorded, CodeAttempt, CodeDevice, CodeDeviceKind, CodeDeviceState, CodeStepResult,
    ImportResult, NewAudit, NewEvent, StoreError, StoreResult, SupportActivation,
    SupportActivationResult, TokenBatch,
};

const COLUMNS: &str = "serial, batch_id, kind, algorithm, digits, step_secs, sealed_seed, \
     identity_id, state, last_step, failures, blocks, blocked_until_ms, access_code_hash, \
     added_at_ms, activated_at_ms, last_used_at_ms";

fn bad(idx: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        idx,
        rusqlite::types::Type::Text,
        format!("unknown {what}").into(),
    )
}

fn row(r: &Row<'_>) -> rusqlite::Result<CodeDevice> {
    let kind: String = r.get(2)?;
    let algorithm: String = r.get(3)?;
    let state: String = r.get(8)?;
    Ok(CodeDevice {
        serial: r.get(0)?,
        batch_id: blob16(r, 1)?,
        kind: CodeDeviceKind::parse(&kind).ok_or_else(|| bad(2, "code device kind"))?,
        algorithm: Algorithm::parse(&algorithm).ok_or_else(|| bad(3, "algorithm"))?,
        digits: r.get(4)?,
        step_secs: u64_at(r, 5)?,
        sealed_seed: r.get(6)?,
        identity_id: opt_col(r, 7)?,
        state: match state.as_str() {
            "unassigned" => CodeDeviceState::Unassigned,
            "active" => CodeDeviceState::Active,
            "deactivated" => CodeDeviceState::Deactivated,
            _ => return Err(bad(8, "code device state")),
        },
        last_step: opt_u64_at(r, 9)?,
        failures: r.get(10)?,
        blocks: r.get(11)?,
        blocked_until_ms: opt_u64_at(r, 12)?,
        access_code_hash: r
            .get::<_, Option<String>>(13)?
            .map(AccessCodeHash::from_stored),
        added_at_ms: u64_at(r, 14)?,
        activated_at_ms: opt_u64_at(r, 15)?,
        last_used_at_ms: opt_u64_at(r, 16)?,
    })
}

/// The read of [`Store::code_device`](crate::store::Store::code_device).
pub(super) fn code_device(c: &Connection, serial: &str) -> StoreResult<Option<CodeDevice>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM code_devices WHERE serial = ?1"
    ))?
    .query_row(params![serial], row)
    .optional()?)
}

/// The read of [`Store::code_devices_of`](crate::store::Store::code_devices_of).
pub(super) fn code_devices_of(
    c: &Connection,
    identity_id: IdentityId,
) -> StoreResult<Vec<CodeDevice>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM code_devices WHERE identity_id = ?1 ORDER BY activated_at_ms"
    ))?;
    let rows = stmt.query_map(params![Col(identity_id)], row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The transaction of [`Store::import_token_batch`](crate::store::Store::import_token_batch).
pub(super) fn import_token_batch(
    c: &Connection,
    audit: NewAudit,
    batch: TokenBatch,
    devices: Vec<CodeDevice>,
) -> StoreResult<ImportResult> {
    // Every serial is checked before anything is written: a batch is
    // stored whole or not at all.
    {
        let mut exists = c.prepare_cached("SELECT 1 FROM code_devices WHERE serial = ?1")?;
        for device in &devices {
            if exists.exists(params![device.serial])? {
                return Ok(ImportResult::SerialTaken(device.serial.clone()));
            }
        }
    }
    c.prepare_cached(
        "INSERT INTO token_batches (id, label, imported_at_ms, device_count) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        batch.id.as_slice(),
        batch.label,
        i64_of(batch.imported_at_ms),
        batch.device_count
    ])?;
    let mut insert = c.prepare_cached(
        "INSERT INTO code_devices (serial, batch_id, kind, algorithm, digits, step_secs, \
         sealed_seed, state, added_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'unassigned', ?8)",
    )?;
    for d in &devices {
        insert.execute(params![
            d.serial,
            batch.id.as_slice(),
            d.kind.as_str(),
            d.algorithm.as_str(),
            d.digits,
            i64_of(d.step_secs),
            d.sealed_seed,
            i64_of(d.added_at_ms),
        ])?;
    }
    let audit_id = insert_audit(c, &audit)?;
    Ok(ImportResult::Imported { audit_id })
}

/// The transaction of [`Store::use_code_step`](crate::store::Store::use_code_step):
/// one conditional update, so the check of "above the last accepted step"
/// and the move of that step cannot be split by another write.
pub(super) fn use_code_step(
    c: &Connection,
    serial: &str,
    identity_id: IdentityId,
    step: u64,
    now_ms: u64,
) -> StoreResult<CodeStepResult> {
    let n = c
        .prepare_cached(
            "UPDATE code_devices SET last_step = ?3 \
             WHERE serial = ?1 AND identity_id = ?2 AND state = 'active' \
             AND (last_step IS NULL OR last_step < ?3) \
             AND (blocked_until_ms IS NULL OR blocked_until_ms <= ?4) \
             AND NOT EXISTS (SELECT 1 FROM identities WHERE id = ?2 AND blocked = 1)",
        )?
        .execute(params![
            serial,
            Col(identity_id),
            i64_of(step),
            i64_of(now_ms)
        ])?;
    if n == 1 {
        return Ok(CodeStepResult::Accepted);
    }
    let Some(device) = code_device(c, serial)? else {
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
pub(super) fn record_code_device_attempt(
    c: &Connection,
    serial: &str,
    attempt: CodeAttempt,
    now_ms: u64,
) -> StoreResult<AttemptRecorded> {
    let Some(device) = code_device(c, serial)?.filter(|d| d.state == CodeDeviceState::Active)
    else {
        return Ok(AttemptRecorded::Unknown);
    };
    let identity_id = device.identity_id.ok_or(StoreError::Inconsistent(
        "an active code device without identity",
    ))?;
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
        c.prepare_cached(
            "UPDATE code_devices SET failures = 0, last_used_at_ms = ?2 WHERE serial = ?1",
        )?
        .execute(params![serial, i64_of(now_ms)])?;
        insert_event(c, &event(SecurityEventKind::CodeDeviceUsed, Some(masked)))?;
        return Ok(AttemptRecorded::Used);
    }
    let failures = device.failures.saturating_add(1);
    if failures < MAX_FAILURES {
        c.prepare_cached("UPDATE code_devices SET failures = ?2 WHERE serial = ?1")?
            .execute(params![serial, failures])?;
        return Ok(AttemptRecorded::Counted(failures));
    }
    let until_ms = now_ms.saturating_add(block_ms(device.blocks));
    c.prepare_cached(
        "UPDATE code_devices SET failures = 0, blocks = blocks + 1, blocked_until_ms = ?2 \
         WHERE serial = ?1",
    )?
    .execute(params![serial, i64_of(until_ms)])?;
    insert_event(
        c,
        &event(SecurityEventKind::CodeDeviceBlocked, Some(masked)),
    )?;
    Ok(AttemptRecorded::Blocked { until_ms })
}

/// The transaction of [`Store::activate_code_device_by_support`](crate::store::Store::activate_code_device_by_support).
pub(super) fn activate_code_device_by_support(
    c: &Connection,
    a: SupportActivation,
) -> StoreResult<SupportActivationResult> {
    let identity: Option<(IdentityId, bool)> = c
        .prepare_cached("SELECT id, blocked FROM identities WHERE user_id_folded = ?1")?
        .query_row(params![a.user_id_folded], |r| {
            Ok((col::<IdentityId>(r, 0)?, r.get(1)?))
        })
        .optional()?;
    let Some((identity_id, blocked)) = identity else {
        return Ok(SupportActivationResult::NoUsableCode);
    };
    if blocked {
        return Ok(SupportActivationResult::NoUsableCode);
    }
    let code = c
        .prepare_cached(
            "SELECT code_sha256, expires_at_ms, tries, used FROM activation_codes WHERE identity_id = ?1",
        )?
        .query_row(params![Col(identity_id)], |r| {
            Ok((blob32(r, 0)?, u64_at(r, 1)?, r.get::<_, u32>(2)?, r.get::<_, bool>(3)?))
        })
        .optional()?;
    let Some((stored_hash, expires_at_ms, tries, used)) = code else {
        return Ok(SupportActivationResult::NoUsableCode);
    };
    let presented = (a.code_sha256_for)(identity_id);
    let matches = eid_protocol::crypto::constant_time_eq(&presented, &stored_hash);
    let stored = policy::StoredCode {
        used,
        tries,
        expires_at_ms,
    };
    match policy::activation_code(stored, matches, a.max_tries, a.now_ms) {
        policy::CodeCheck::Right => {}
        policy::CodeCheck::Wrong => {
            let tries: u32 = c
                .prepare_cached(
                    "UPDATE activation_codes SET tries = tries + 1 WHERE identity_id = ?1 RETURNING tries",
                )?
                .query_row(params![Col(identity_id)], |r| r.get(0))?;
            if tries == a.max_tries {
                insert_event(
                    c,
                    &NewEvent {
                        identity_id,
                        kind: SecurityEventKind::ActivationCodeVoided,
                        authenticator_id: None,
                        detail: None,
                        occurred_at_ms: a.now_ms,
                        extra_recipients: Vec::new(),
                    },
                )?;
            }
            return Ok(SupportActivationResult::NoUsableCode);
        }
        _ => return Ok(SupportActivationResult::NoUsableCode),
    }
    let has_one = c
        .prepare_cached("SELECT 1 FROM code_devices WHERE identity_id = ?1 AND state = 'active'")?
        .exists(params![Col(identity_id)])?;
    if has_one {
        return Ok(SupportActivationResult::AlreadyHasOne);
    }
    let n = c
        .prepare_cached(
            "UPDATE code_devices SET identity_id = ?2, state = 'active', last_step = ?3, \
             access_code_hash = ?4, activated_at_ms = ?5, failures = 0 \
             WHERE serial = ?1 AND state = 'unassigned' AND (last_step IS NULL OR last_step < ?3)",
        )?
        .execute(params![
            a.serial,
            Col(identity_id),
            i64_of(a.step),
            a.access_code_hash.as_str(),
            i64_of(a.now_ms)
        ])?;
    if n != 1 {
        return Ok(SupportActivationResult::DeviceUnusable);
    }
    c.prepare_cached("UPDATE activation_codes SET used = 1 WHERE identity_id = ?1")?
        .execute(params![Col(identity_id)])?;
    insert_event(
        c,
        &NewEvent {
            identity_id,
            kind: SecurityEventKind::CodeDeviceAdded,
            authenticator_id: None,
            detail: Some(crate::code_devices::masked_serial(&a.serial)),
            occurred_at_ms: a.now_ms,
            extra_recipients: Vec::new(),
        },
    )?;
    Ok(SupportActivationResult::Activated(identity_id))
}

/// The transaction of [`Store::deactivate_code_device`](crate::store::Store::deactivate_code_device).
pub(super) fn deactivate_code_device(
    c: &Connection,
    identity_id: IdentityId,
    serial: &str,
    now_ms: u64,
) -> StoreResult<bool> {
    let n = c
        .prepare_cached(
            "UPDATE code_devices SET state = 'deactivated' \
             WHERE serial = ?1 AND identity_id = ?2 AND state = 'active'",
        )?
        .execute(params![serial, Col(identity_id)])?;
    if n == 1 {
        insert_event(
            c,
            &NewEvent {
                identity_id,
                kind: SecurityEventKind::CodeDeviceDeactivated,
                authenticator_id: None,
                detail: Some(crate::code_devices::masked_serial(serial)),
                occurred_at_ms: now_ms,
                extra_recipients: Vec::new(),
            },
        )?;
    }
    Ok(n == 1)
}

/// The transaction of [`Store::use_unassigned_code_step`](crate::store::Store::use_unassigned_code_step):
/// one conditional update, like [`use_code_step`]'s.
pub(super) fn use_unassigned_code_step(
    c: &Connection,
    serial: &str,
    step: u64,
) -> StoreResult<bool> {
    let n = c
        .prepare_cached(
            "UPDATE code_devices SET last_step = ?2 \
             WHERE serial = ?1 AND state = 'unassigned' AND (last_step IS NULL OR last_step < ?2)",
        )?
        .execute(params![serial, i64_of(step)])?;
    Ok(n == 1)
}

/// The transaction of [`Store::request_code_device_activation`](crate::store::Store::request_code_device_activation).
pub(super) fn request_code_device_activation(
    c: &Connection,
    serial: &str,
    identity_id: IdentityId,
    request_id: eid_protocol::RequestId,
    step: u64,
    access_code_hash: &AccessCodeHash,
) -> StoreResult<bool> {
    let n = c
        .prepare_cached(
            "UPDATE code_devices SET pending_request_id = ?2, pending_identity_id = ?3, \
             pending_access_code_hash = ?4 \
             WHERE serial = ?1 AND state = 'unassigned' AND last_step = ?5 \
             AND EXISTS (SELECT 1 FROM requests WHERE id = ?2 AND status = 'pending')",
        )?
        .execute(params![
            serial,
            Col(request_id),
            Col(identity_id),
            access_code_hash.as_str(),
            i64_of(step)
        ])?;
    Ok(n == 1)
}

/// Inside [`Store::decide`](crate::store::Store::decide)'s write: an
/// approved `code_device` request activates its device on the identity,
/// deactivating the active one (each notified on every channel); any other
/// outcome forgets the waiting activation.
pub(super) fn on_decision(
    c: &Connection,
    request_id: &eid_protocol::RequestId,
    record: &crate::store::DecisionRecord,
    now_ms: u64,
) -> StoreResult<()> {
    let pending: Option<(String, IdentityId, String)> = c
        .prepare_cached(
            "SELECT serial, pending_identity_id, pending_access_code_hash FROM code_devices \
             WHERE pending_request_id = ?1 AND state = 'unassigned'",
        )?
        .query_row(params![Col(*request_id)], |r| {
            Ok((r.get(0)?, col::<IdentityId>(r, 1)?, r.get(2)?))
        })
        .optional()?;
    let Some((serial, identity_id, hash)) = pending else {
        return Ok(());
    };
    if record.outcome != eid_protocol::Outcome::Approve {
        c.prepare_cached(
            "UPDATE code_devices SET pending_request_id = NULL, pending_identity_id = NULL, \
             pending_access_code_hash = NULL WHERE serial = ?1",
        )?
        .execute(params![serial])?;
        return Ok(());
    }
    let replaced: Vec<String> = {
        let mut stmt = c.prepare_cached(
            "UPDATE code_devices SET state = 'deactivated' \
             WHERE identity_id = ?1 AND state = 'active' RETURNING serial",
        )?;
        let rows = stmt.query_map(params![Col(identity_id)], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    c.prepare_cached(
        "UPDATE code_devices SET identity_id = ?2, state = 'active', access_code_hash = ?3, \
         activated_at_ms = ?4, failures = 0, pending_request_id = NULL, \
         pending_identity_id = NULL, pending_access_code_hash = NULL WHERE serial = ?1",
    )?
    .execute(params![serial, Col(identity_id), hash, i64_of(now_ms)])?;
    let event = |kind, serial: &str| NewEvent {
        identity_id,
        kind,
        authenticator_id: Some(record.authenticator_id),
        detail: Some(crate::code_devices::masked_serial(serial)),
        occurred_at_ms: now_ms,
        extra_recipients: Vec::new(),
    };
    for old in &replaced {
        insert_event(c, &event(SecurityEventKind::CodeDeviceDeactivated, old))?;
    }
    insert_event(c, &event(SecurityEventKind::CodeDeviceAdded, &serial))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::access_code::AccessCodeHash;
    use crate::store::*;

    const T0: u64 = 1_795_000_000_000;

    /// A store file with one active code device `S1` of a new identity.
    async fn store_with_device(path: &std::path::Path) -> IdentityId {
        let s = SqliteStore::open(path).unwrap();
        let person = Identity {
            id: IdentityId::random(),
            user_id: "anna".into(),
            user_id_folded: "anna".into(),
            display_name: None,
            blocked: false,
            created_at_ms: T0,
            phone: Some("+4520304050".into()),
            email: None,
            notify_every_use: false,
        };
        s.create_identity(person.clone()).await.unwrap();
        let batch = TokenBatch {
            id: [1; 16],
            label: "b".into(),
            imported_at_ms: T0,
            device_count: 1,
        };
        let device = CodeDevice {
            serial: "S1".into(),
            batch_id: batch.id,
            kind: CodeDeviceKind::CodeReader,
            algorithm: crate::code_devices::totp::Algorithm::Sha256,
            digits: 6,
            step_secs: 60,
            sealed_seed: vec![1; 40],
            identity_id: None,
            state: CodeDeviceState::Unassigned,
            last_step: None,
            failures: 0,
            blocks: 0,
            blocked_until_ms: None,
            access_code_hash: None,
            added_at_ms: T0,
            activated_at_ms: None,
            last_used_at_ms: None,
        };
        let audit = NewAudit {
            at_ms: T0,
            agent_id: None,
            agent_name: "bootstrap".into(),
            action: AuditAction::ImportTokenBatch,
            identity_id: None,
            service_provider_id: None,
            target_agent_id: None,
            reason: None,
            outcome: AuditOutcome::Done,
        };
        s.import_token_batch(audit, batch, vec![device])
            .await
            .unwrap();
        s.put_activation_code(ActivationCode {
            identity_id: person.id,
            code_sha256: [5; 32],
            created_at_ms: T0,
            expires_at_ms: T0 + 3_600_000,
        })
        .await
        .unwrap();
        let activated = s
            .activate_code_device_by_support(SupportActivation {
                user_id_folded: "anna".into(),
                code_sha256_for: Box::new(|_| [5; 32]),
                max_tries: 3,
                serial: "S1".into(),
                step: 10,
                access_code_hash: AccessCodeHash::from_stored("$argon2id$x".into()),
                now_ms: T0,
            })
            .await
            .unwrap();
        assert_eq!(activated, SupportActivationResult::Activated(person.id));
        person.id
    }

    #[tokio::test]
    async fn a_used_step_and_a_block_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite3");
        let anna = store_with_device(&path).await;
        {
            let s = SqliteStore::open(&path).unwrap();
            assert_eq!(
                s.use_code_step("S1", anna, 11, T0).await.unwrap(),
                CodeStepResult::Accepted
            );
            for _ in 0..3 {
                s.record_code_device_attempt("S1", CodeAttempt::WrongCode, T0)
                    .await
                    .unwrap();
            }
        }
        let s = SqliteStore::open(&path).unwrap();
        let device = s.code_device("S1").await.unwrap().unwrap();
        assert_eq!(device.last_step, Some(11));
        assert!(device.blocked_at(T0 + 1));
        assert_eq!(
            s.use_code_step("S1", anna, 12, T0 + 1).await.unwrap(),
            CodeStepResult::Unusable,
            "still blocked after the restart"
        );
        let after = T0 + crate::code_devices::check::block_ms(0);
        assert_eq!(
            s.use_code_step("S1", anna, 11, after).await.unwrap(),
            CodeStepResult::Replayed,
            "still used after the restart"
        );
        assert_eq!(
            s.use_code_step("S1", anna, 12, after).await.unwrap(),
            CodeStepResult::Accepted
        );
    }
}
