//! The code check of a code device at login (docs/authenticators.md):
//!
//! - the typed code is compared with the codes of the current time step
//!   and one step either side (±1: the device's clock and the person's
//!   typing), never more, so a code read ten minutes ago never passes;
//! - the step found is accepted only through one conditional store write
//!   that also moves the device's "last accepted step" ([`Store::use_code_step`]):
//!   a step at or below the last accepted one fails, so each code passes
//!   once, whatever runs at the same time and across restarts;
//! - [`MAX_FAILURES`] wrong codes or access codes in a row block the device
//!   for [`block_ms`] (growing with each block, stored, so a restart does
//!   not lift it) and notify the person on every channel; a right code
//!   alone does not reset the count, only a whole login (code and access
//!   code) does, so the access code cannot be guessed between good codes;
//! - a blocked identity can use no code device;
//! - one check of a device at a time ([`Turns`]): a code or access code
//!   sent while another check of the same device is under way is refused
//!   without being looked at, and each check reads the device's failures
//!   afresh once it has its turn. Without that, tries sent at once all read
//!   "no block yet" and were all looked at (a list of access codes tried in
//!   one burst, not three).
//!
//! Unknown user ID, no device, a device of another person, a blocked device
//! or identity and a wrong code all give the same [`CodeOutcome::Refused`].

use std::collections::HashSet;
use std::sync::Mutex;

use eid_protocol::IdentityId;

use super::seal::Kek;
use super::totp;
use crate::store::{AttemptRecorded, CodeAttempt, CodeDevice, CodeStepResult, Store, StoreResult};

/// Wrong codes or access codes in a row that block a device.
pub const MAX_FAILURES: u32 = 3;
/// The first block's length (15 minutes).
pub const FIRST_BLOCK_MS: u64 = 15 * 60_000;
/// The longest block (24 hours).
pub const MAX_BLOCK_MS: u64 = 24 * 3_600_000;
/// Steps either side of the current one that a login accepts.
pub const WINDOW_STEPS: u64 = 1;

/// How long the block after `blocks_before` earlier blocks lasts: 15
/// minutes, doubled each time, at most 24 hours.
pub fn block_ms(blocks_before: u32) -> u64 {
    FIRST_BLOCK_MS
        .saturating_mul(1u64 << blocks_before.min(16))
        .min(MAX_BLOCK_MS)
}

/// Whether `typed` looks like a code: exactly six ASCII digits.
pub fn is_code(typed: &str) -> bool {
    typed.len() == totp::DIGITS as usize && typed.bytes().all(|b| b.is_ascii_digit())
}

/// The step within ±[`WINDOW_STEPS`] of `now_ms` whose code is `typed`;
/// `None` when there is none (or the seed does not open).
pub fn matching_step(kek: &Kek, device: &CodeDevice, typed: &str, now_ms: u64) -> Option<u64> {
    let seed = kek.open(&device.serial, &device.sealed_seed).ok()?;
    let params = device.params();
    let now = totp::step_at(now_ms / 1000, params.step_secs);
    // Every candidate is computed, so the time taken does not say which
    // step matched.
    let mut found = None;
    for step in now.saturating_sub(WINDOW_STEPS)..=now + WINDOW_STEPS {
        if totp::matches(params, &seed, step, typed) && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// The code devices whose code or access code is being checked now, in this
/// process, by serial: at most one check per device at a time, so that a
/// burst of tries cannot all be looked at before the first of them is
/// counted. (Several server processes on one database each keep their own
/// set; a try at each of them at once is still possible.)
#[derive(Debug, Default)]
pub struct Turns(Mutex<HashSet<String>>);

/// One device's turn; the next check may start once it is dropped.
#[derive(Debug)]
pub struct Turn<'a> {
    turns: &'a Turns,
    serial: String,
}

impl Turns {
    /// The device's turn, or `None` while another check of it is under way.
    pub fn take(&self, serial: &str) -> Option<Turn<'_>> {
        let mut busy = self.0.lock().unwrap_or_else(|e| e.into_inner());
        busy.insert(serial.to_owned()).then(|| Turn {
            turns: self,
            serial: serial.to_owned(),
        })
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut busy = self.turns.0.lock().unwrap_or_else(|e| e.into_inner());
        busy.remove(&self.serial);
    }
}

/// How a code check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeOutcome {
    /// The code was right and its step is used up now.
    Passed,
    /// Anything else (see the module doc); counted on the device if there
    /// is one.
    Refused,
}

/// The identity's active code device, if it has one and neither it nor the
/// identity is blocked at `now_ms`.
pub async fn usable_device(
    store: &dyn Store,
    identity_id: IdentityId,
    now_ms: u64,
) -> StoreResult<Option<CodeDevice>> {
    let Some(identity) = store.identity(identity_id).await? else {
        return Ok(None);
    };
    if identity.blocked {
        return Ok(None);
    }
    Ok(store
        .code_devices_of(identity_id)
        .await?
        .into_iter()
        .find(|d| d.state == crate::store::CodeDeviceState::Active && !d.blocked_at(now_ms)))
}

/// Checks `typed` against the code device of `identity_id` (`None`: an
/// unknown user ID) and, when it is right, uses its step up in one write.
/// A wrong or replayed code counts a failure on the device; a code sent
/// while another check of the device is under way is refused uncounted and
/// unread (see [`Turns`]). Returns the outcome and the device's serial when
/// it passed.
pub async fn check_code(
    store: &dyn Store,
    (kek, turns): (&Kek, &Turns),
    identity_id: Option<IdentityId>,
    typed: &str,
    now_ms: u64,
) -> StoreResult<(CodeOutcome, Option<String>, Option<AttemptRecorded>)> {
    let Some(identity_id) = identity_id else {
        return Ok((CodeOutcome::Refused, None, None));
    };
    let Some(serial) = usable_device(store, identity_id, now_ms)
        .await?
        .map(|d| d.serial)
    else {
        return Ok((CodeOutcome::Refused, None, None));
    };
    let Some(_turn) = turns.take(&serial) else {
        return Ok((CodeOutcome::Refused, None, None));
    };
    // Read again with the turn: a check that ended in between may have
    // counted the failure that blocks the device.
    let Some(device) = usable_device(store, identity_id, now_ms)
        .await?
        .filter(|d| d.serial == serial)
    else {
        return Ok((CodeOutcome::Refused, None, None));
    };
    let step = is_code(typed)
        .then(|| matching_step(kek, &device, typed, now_ms))
        .flatten();
    if let Some(step) = step {
        match store
            .use_code_step(&device.serial, identity_id, step, now_ms)
            .await?
        {
            CodeStepResult::Accepted => {
                return Ok((CodeOutcome::Passed, Some(device.serial), None));
            }
            CodeStepResult::Replayed | CodeStepResult::Unusable => {}
        }
    }
    let recorded = store
        .record_code_device_attempt(&device.serial, CodeAttempt::WrongCode, now_ms)
        .await?;
    Ok((CodeOutcome::Refused, None, Some(recorded)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_grow_from_fifteen_minutes_to_at_most_a_day() {
        assert_eq!(block_ms(0), 15 * 60_000);
        assert_eq!(block_ms(1), 30 * 60_000);
        assert_eq!(block_ms(2), 60 * 60_000);
        assert_eq!(block_ms(10), MAX_BLOCK_MS);
        assert_eq!(block_ms(u32::MAX), MAX_BLOCK_MS);
    }

    #[test]
    fn a_device_has_one_turn_at_a_time_and_gets_it_back_when_it_ends() {
        let turns = Turns::default();
        let first = turns.take("CD1").expect("free");
        assert!(turns.take("CD1").is_none(), "a second check at once");
        let other = turns.take("CD2").expect("another device is free");
        drop(first);
        assert!(turns.take("CD1").is_some(), "free again");
        drop(other);
    }

    #[test]
    fn only_six_ascii_digits_are_a_code() {
        assert!(is_code("012345"));
        for bad in ["12345", "1234567", "12345a", "١٢٣٤٥٦", " 12345", ""] {
            assert!(!is_code(bad), "{bad}");
        }
    }
}
