//! Chips (FIDO2/WebAuthn security keys) and their ceremonies in progress.
//! Loads and saves only: the rules (waiting period, counters, lockouts) are
//! in `crate::chip`. Two replicas using one chip at once cannot both move
//! its counter: a save names the revision it read and writes only if the
//! row still has it.

use eid_protocol::IdentityId;
use tokio_postgres::Row;

use super::columns::{Col, col, get, i64_of, is_unique_violation, opt_col};
use super::connection::{Tx, all, exec, opt};
use super::outbox::{insert_event, lock_identity};
use crate::access_code::AccessCodeHash;
use crate::store::{
    AddChipResult, CeremonyPurpose, Chip, ChipCeremony, ChipId, ChipState, NewEvent, StoreError,
    StoreResult,
};

const CHIP_COLUMNS: &str = "id, identity_id, credential_id_sha256, credential, counter, state, \
     access_code_hash, registered_at_ms, active_from_ms, last_used_at_ms, failures, \
     blocked_until_ms, ended_at_ms, revision";

fn chip_row(row: &Row) -> StoreResult<Chip> {
    let state: &str = get(row, 5)?;
    Ok(Chip {
        id: ChipId(col(row, 0)?),
        identity_id: col(row, 1)?,
        credential_id_sha256: col(row, 2)?,
        credential: get(row, 3)?,
        counter: col(row, 4)?,
        state: ChipState::parse(state).ok_or(StoreError::Inconsistent("unknown chip state"))?,
        access_code: AccessCodeHash::from_stored(get(row, 6)?),
        registered_at_ms: col(row, 7)?,
        active_from_ms: col(row, 8)?,
        last_used_at_ms: opt_col(row, 9)?,
        failures: col(row, 10)?,
        blocked_until_ms: opt_col(row, 11)?,
        ended_at_ms: opt_col(row, 12)?,
        revision: col(row, 13)?,
    })
}

/// The transaction of [`Store::put_chip_ceremony`](crate::store::Store::put_chip_ceremony).
pub(super) async fn put_ceremony(
    t: &Tx<'_>,
    ceremony: &ChipCeremony,
    now_ms: u64,
) -> StoreResult<()> {
    // Expired ceremonies are worthless: removing them here keeps the table
    // as small as the ceremonies in progress, without a sweeper of its own.
    exec(
        t,
        "DELETE FROM chip_ceremonies WHERE expires_at_ms <= $1",
        &[&i64_of(now_ms)],
    )
    .await?;
    exec(
        t,
        "INSERT INTO chip_ceremonies (id, identity_id, purpose, subject, state, expires_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &ceremony.id.as_slice(),
            &Col(ceremony.identity_id),
            &ceremony.purpose.as_str(),
            &ceremony.subject.as_ref().map(|s| s.as_slice()),
            &ceremony.state,
            &i64_of(ceremony.expires_at_ms),
        ],
    )
    .await?;
    Ok(())
}

/// The transaction of [`Store::take_chip_ceremony`](crate::store::Store::take_chip_ceremony):
/// a `DELETE ... RETURNING`, so of two replicas taking one ceremony the
/// second waits for the first's row lock and then finds nothing.
pub(super) async fn take_ceremony(
    t: &Tx<'_>,
    id: [u8; 16],
    now_ms: u64,
) -> StoreResult<Option<ChipCeremony>> {
    let Some(row) = opt(
        t,
        "DELETE FROM chip_ceremonies WHERE id = $1 \
         RETURNING identity_id, purpose, subject, state, expires_at_ms",
        &[&id.as_slice()],
    )
    .await?
    else {
        return Ok(None);
    };
    let purpose: &str = get(&row, 1)?;
    let ceremony = ChipCeremony {
        id,
        identity_id: col(&row, 0)?,
        purpose: CeremonyPurpose::parse(purpose)
            .ok_or(StoreError::Inconsistent("unknown ceremony purpose"))?,
        subject: opt_col(&row, 2)?,
        state: get(&row, 3)?,
        expires_at_ms: col(&row, 4)?,
    };
    Ok(Some(ceremony).filter(|c| c.expires_at_ms > now_ms))
}

/// The transaction of [`Store::add_chip`](crate::store::Store::add_chip).
pub(super) async fn add_chip(
    t: &Tx<'_>,
    chip: &Chip,
    event: &NewEvent,
) -> StoreResult<AddChipResult> {
    // The identity's row is locked first: two registrations for one person
    // (on two replicas) queue here, and the second sees the first's chip.
    let Some(row) = opt(
        t,
        "SELECT blocked FROM identities WHERE id = $1 FOR UPDATE",
        &[&Col(chip.identity_id)],
    )
    .await?
    else {
        return Ok(AddChipResult::IdentityUnusable);
    };
    let blocked: bool = get(&row, 0)?;
    if blocked {
        return Ok(AddChipResult::IdentityUnusable);
    }
    let live = opt(
        t,
        "SELECT 1 FROM chips WHERE identity_id = $1 AND state IN ('pending', 'active', 'blocked')",
        &[&Col(chip.identity_id)],
    )
    .await?
    .is_some();
    if live {
        return Ok(AddChipResult::AlreadyHasChip);
    }
    let taken = opt(
        t,
        "SELECT 1 FROM chips WHERE credential_id_sha256 = $1",
        &[&chip.credential_id_sha256.as_slice()],
    )
    .await?
    .is_some();
    if taken {
        return Ok(AddChipResult::CredentialTaken);
    }
    let st = t
        .prepare_cached(&format!(
            "INSERT INTO chips ({CHIP_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 0)"
        ))
        .await?;
    let inserted = t
        .execute(
            &st,
            &[
                &chip.id.0.as_slice(),
                &Col(chip.identity_id),
                &chip.credential_id_sha256.as_slice(),
                &chip.credential,
                &i64::from(chip.counter),
                &chip.state.as_str(),
                &chip.access_code.as_str(),
                &i64_of(chip.registered_at_ms),
                &i64_of(chip.active_from_ms),
                &chip.last_used_at_ms.map(i64_of),
                &i64::from(chip.failures),
                &chip.blocked_until_ms.map(i64_of),
                &chip.ended_at_ms.map(i64_of),
            ],
        )
        .await;
    match inserted {
        Ok(_) => {}
        // The credential registered by another person's transaction that
        // committed after this one's check (the transaction is aborted, so
        // nothing more is written).
        Err(e) if is_unique_violation(&e) => return Ok(AddChipResult::CredentialTaken),
        Err(e) => return Err(e),
    }
    insert_event(t, event).await?;
    Ok(AddChipResult::Added)
}

/// The read of [`Store::chips_of`](crate::store::Store::chips_of).
pub(super) async fn chips_of(t: &Tx<'_>, identity_id: IdentityId) -> StoreResult<Vec<Chip>> {
    all(
        t,
        &format!(
            "SELECT {CHIP_COLUMNS} FROM chips WHERE identity_id = $1 ORDER BY registered_at_ms, id"
        ),
        &[&Col(identity_id)],
    )
    .await?
    .iter()
    .map(chip_row)
    .collect()
}

/// The transaction of [`Store::save_chip`](crate::store::Store::save_chip).
pub(super) async fn save_chip(t: &Tx<'_>, chip: &Chip, events: &[NewEvent]) -> StoreResult<bool> {
    if !events.is_empty() {
        // The identity before the chip, in the order every feed write
        // takes its locks.
        lock_identity(t, &chip.identity_id).await?;
    }
    let changed = exec(
        t,
        "UPDATE chips SET credential = $3, counter = $4, state = $5, access_code_hash = $6, \
         last_used_at_ms = $7, failures = $8, blocked_until_ms = $9, ended_at_ms = $10, \
         revision = revision + 1 \
         WHERE id = $1 AND revision = $2",
        &[
            &chip.id.0.as_slice(),
            &i64_of(chip.revision),
            &chip.credential,
            &i64::from(chip.counter),
            &chip.state.as_str(),
            &chip.access_code.as_str(),
            &chip.last_used_at_ms.map(i64_of),
            &i64::from(chip.failures),
            &chip.blocked_until_ms.map(i64_of),
            &chip.ended_at_ms.map(i64_of),
        ],
    )
    .await?;
    if changed == 0 {
        return Ok(false);
    }
    for event in events {
        insert_event(t, event).await?;
    }
    Ok(true)
}
