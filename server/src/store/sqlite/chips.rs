//! Chips (FIDO2/WebAuthn security keys) and their ceremonies in progress.
//! Loads and saves only: the rules (waiting period, counters, lockouts) are
//! in `crate::chip`.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::columns::{Col, blob16, blob32, col, i64_of, is_unique_violation, opt_u64_at, u64_at};
use super::outbox::insert_event;
use crate::access_code::AccessCodeHash;
use crate::store::{
    AddChipResult, CeremonyPurpose, Chip, ChipCeremony, ChipId, ChipState, NewEvent, StoreResult,
};
use eid_protocol::IdentityId;

const CHIP_COLUMNS: &str = "id, identity_id, credential_id_sha256, credential, counter, state, \
     access_code_hash, registered_at_ms, active_from_ms, last_used_at_ms, failures, \
     blocked_until_ms, ended_at_ms, revision";

fn bad_text(idx: usize) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(idx, "state".into(), rusqlite::types::Type::Text)
}

fn chip_row(row: &Row<'_>) -> rusqlite::Result<Chip> {
    let state: String = row.get(5)?;
    Ok(Chip {
        id: ChipId(blob16(row, 0)?),
        identity_id: col(row, 1)?,
        credential_id_sha256: blob32(row, 2)?,
        credential: row.get(3)?,
        counter: row.get(4)?,
        state: ChipState::parse(&state).ok_or_else(|| bad_text(5))?,
        access_code: AccessCodeHash::from_stored(row.get(6)?),
        registered_at_ms: u64_at(row, 7)?,
        active_from_ms: u64_at(row, 8)?,
        last_used_at_ms: opt_u64_at(row, 9)?,
        failures: row.get(10)?,
        blocked_until_ms: opt_u64_at(row, 11)?,
        ended_at_ms: opt_u64_at(row, 12)?,
        revision: u64_at(row, 13)?,
    })
}

/// The transaction of [`Store::put_chip_ceremony`](crate::store::Store::put_chip_ceremony).
pub(super) fn put_ceremony(c: &Connection, ceremony: ChipCeremony, now_ms: u64) -> StoreResult<()> {
    // Expired ceremonies are worthless: removing them here keeps the table
    // as small as the ceremonies in progress, without a sweeper of its own.
    c.prepare_cached("DELETE FROM chip_ceremonies WHERE expires_at_ms <= ?1")?
        .execute(params![i64_of(now_ms)])?;
    c.prepare_cached(
        "INSERT INTO chip_ceremonies (id, identity_id, purpose, subject, state, expires_at_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        &ceremony.id[..],
        Col(ceremony.identity_id),
        ceremony.purpose.as_str(),
        ceremony.subject.as_ref().map(|s| &s[..]),
        ceremony.state,
        i64_of(ceremony.expires_at_ms)
    ])?;
    Ok(())
}

/// The transaction of [`Store::take_chip_ceremony`](crate::store::Store::take_chip_ceremony).
pub(super) fn take_ceremony(
    c: &Connection,
    id: [u8; 16],
    now_ms: u64,
) -> StoreResult<Option<ChipCeremony>> {
    let found = c
        .prepare_cached(
            "DELETE FROM chip_ceremonies WHERE id = ?1 \
             RETURNING identity_id, purpose, subject, state, expires_at_ms",
        )?
        .query_row(params![&id[..]], |row| {
            let purpose: String = row.get(1)?;
            let subject: Option<Vec<u8>> = row.get(2)?;
            Ok(ChipCeremony {
                id,
                identity_id: col(row, 0)?,
                purpose: CeremonyPurpose::parse(&purpose).ok_or_else(|| bad_text(1))?,
                subject: subject
                    .map(|s| s.try_into().map_err(|_| bad_text(2)))
                    .transpose()?,
                state: row.get(3)?,
                expires_at_ms: u64_at(row, 4)?,
            })
        })
        .optional()?;
    Ok(found.filter(|c| c.expires_at_ms > now_ms))
}

/// The transaction of [`Store::add_chip`](crate::store::Store::add_chip).
pub(super) fn add_chip(c: &Connection, chip: Chip, event: NewEvent) -> StoreResult<AddChipResult> {
    let blocked: Option<bool> = c
        .prepare_cached("SELECT blocked FROM identities WHERE id = ?1")?
        .query_row(params![Col(chip.identity_id)], |r| r.get(0))
        .optional()?;
    if blocked != Some(false) {
        return Ok(AddChipResult::IdentityUnusable);
    }
    let live: bool = c
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM chips WHERE identity_id = ?1 \
             AND state IN ('pending', 'active', 'blocked'))",
        )?
        .query_row(params![Col(chip.identity_id)], |r| r.get(0))?;
    if live {
        return Ok(AddChipResult::AlreadyHasChip);
    }
    let inserted = c
        .prepare_cached(&format!(
            "INSERT INTO chips ({CHIP_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 0)"
        ))?
        .execute(params![
            &chip.id.0[..],
            Col(chip.identity_id),
            &chip.credential_id_sha256[..],
            chip.credential,
            chip.counter,
            chip.state.as_str(),
            chip.access_code.as_str(),
            i64_of(chip.registered_at_ms),
            i64_of(chip.active_from_ms),
            chip.last_used_at_ms.map(i64_of),
            chip.failures,
            chip.blocked_until_ms.map(i64_of),
            chip.ended_at_ms.map(i64_of),
        ]);
    match inserted {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => return Ok(AddChipResult::CredentialTaken),
        Err(e) => return Err(e.into()),
    }
    insert_event(c, &event)?;
    Ok(AddChipResult::Added)
}

/// The read of [`Store::chips_of`](crate::store::Store::chips_of).
pub(super) fn chips_of(c: &Connection, identity_id: IdentityId) -> StoreResult<Vec<Chip>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {CHIP_COLUMNS} FROM chips WHERE identity_id = ?1 ORDER BY registered_at_ms, id"
    ))?;
    let rows = stmt.query_map(params![Col(identity_id)], chip_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The transaction of [`Store::save_chip`](crate::store::Store::save_chip).
pub(super) fn save_chip(c: &Connection, chip: Chip, events: Vec<NewEvent>) -> StoreResult<bool> {
    let changed = c
        .prepare_cached(
            "UPDATE chips SET credential = ?3, counter = ?4, state = ?5, access_code_hash = ?6, \
             last_used_at_ms = ?7, failures = ?8, blocked_until_ms = ?9, ended_at_ms = ?10, \
             revision = revision + 1 \
             WHERE id = ?1 AND revision = ?2",
        )?
        .execute(params![
            &chip.id.0[..],
            i64_of(chip.revision),
            chip.credential,
            chip.counter,
            chip.state.as_str(),
            chip.access_code.as_str(),
            chip.last_used_at_ms.map(i64_of),
            chip.failures,
            chip.blocked_until_ms.map(i64_of),
            chip.ended_at_ms.map(i64_of),
        ])?;
    if changed == 0 {
        return Ok(false);
    }
    for event in &events {
        insert_event(c, event)?;
    }
    Ok(true)
}
