//! Putting a code device on an identity, only with the owner's consent
//! (docs/authenticators.md). This is the way with support's activation
//! code: the person types their user ID, the activation code support gave
//! them, the device's serial number, two consecutive codes from the device
//! (proof that they hold it, and its clock's offset) and a new access code.
//!
//! Whatever is wrong about the user ID, the activation code or the device,
//! the answer is the same [`ActivationOutcome::Refused`]; only the access
//! code's own rules (which do not depend on anyone's data) are told apart.
//! A wrong activation code counts a try as at the app's activation. One
//! code device is active per identity: a second one replaces the first only
//! through the app.

use eid_protocol::IdentityId;
use zeroize::Zeroizing;

use super::check::is_code;
use super::seal::Kek;
use super::totp;
use crate::access_code::{self, AccessCodeError};
use crate::store::{
    CodeDeviceState, Store, StoreResult, SupportActivation, SupportActivationResult,
};

/// Steps before the current one where the second code may lie (a device
/// that sat in a drawer drifts; the first login narrows it to ±1).
pub const ACTIVATION_STEPS_BEHIND: u64 = 2;

/// What the person typed.
pub struct ActivationInput {
    /// The user ID.
    pub user_id: String,
    /// Support's activation code.
    pub activation_code: Zeroizing<String>,
    /// The device's serial number.
    pub serial: String,
    /// The first code.
    pub first_code: String,
    /// The next code (after the device moved on).
    pub second_code: String,
    /// The access code chosen.
    pub access_code: Zeroizing<String>,
    /// The access code again.
    pub access_code_again: Zeroizing<String>,
}

/// How an activation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActivationOutcome {
    /// The device is active on the identity now.
    Activated(IdentityId),
    /// Unknown or blocked user ID, wrong or used activation code, unknown
    /// or taken device, or wrong codes: one answer for all.
    Refused,
    /// The identity has an active code device; a second one replaces it
    /// only through the app.
    AlreadyHasOne,
    /// The access code breaks a rule.
    BadAccessCode(AccessCodeError),
    /// The two access codes differ.
    AccessCodesDiffer,
}

/// The step of the second code when `first` and `second` are the codes of
/// two consecutive steps ending at most [`ACTIVATION_STEPS_BEHIND`] steps
/// before and one step after now.
pub fn consecutive_step(
    params: totp::Params,
    seed: &[u8],
    first: &str,
    second: &str,
    now_ms: u64,
) -> Option<u64> {
    if !is_code(first) || !is_code(second) {
        return None;
    }
    let now = totp::step_at(now_ms / 1000, params.step_secs);
    (now.saturating_sub(ACTIVATION_STEPS_BEHIND).max(1)..=now + 1).find(|&step| {
        totp::matches(params, seed, step - 1, first) && totp::matches(params, seed, step, second)
    })
}

/// Activates a code device with support's activation code.
pub async fn activate_by_support(
    store: &dyn Store,
    kek: &Kek,
    input: ActivationInput,
    max_tries: u32,
    now_ms: u64,
) -> StoreResult<ActivationOutcome> {
    let chosen = match access_code::check(&input.access_code, &input.user_id) {
        Ok(chosen) => chosen,
        Err(e) => return Ok(ActivationOutcome::BadAccessCode(e)),
    };
    let again = access_code::check(&input.access_code_again, &input.user_id).ok();
    if again.as_deref().map(String::as_str) != Some(chosen.as_str()) {
        return Ok(ActivationOutcome::AccessCodesDiffer);
    }
    let serial = input.serial.trim().to_owned();
    let Some(device) = store
        .code_device(&serial)
        .await?
        .filter(|d| d.state == CodeDeviceState::Unassigned)
    else {
        return Ok(ActivationOutcome::Refused);
    };
    let Ok(seed) = kek.open(&device.serial, &device.sealed_seed) else {
        tracing::error!(serial = %device.serial, "a code device's seed does not open");
        return Ok(ActivationOutcome::Refused);
    };
    let Some(step) = consecutive_step(
        device.params(),
        &seed,
        input.first_code.trim(),
        input.second_code.trim(),
        now_ms,
    ) else {
        return Ok(ActivationOutcome::Refused);
    };
    // Argon2id takes tens of milliseconds of CPU: off the async workers.
    let hash = tokio::task::spawn_blocking(move || access_code::hash(&chosen))
        .await
        .map_err(|_| crate::store::StoreError::Inconsistent("hashing task failed"))?;
    let code = input.activation_code;
    let result = store
        .activate_code_device_by_support(SupportActivation {
            user_id_folded: crate::userid::fold(&input.user_id),
            code_sha256_for: Box::new(move |identity_id| {
                crate::api::admin::activation_code_hash(identity_id, &code)
            }),
            max_tries,
            serial,
            step,
            access_code_hash: hash,
            now_ms,
        })
        .await?;
    Ok(match result {
        SupportActivationResult::Activated(identity_id) => {
            ActivationOutcome::Activated(identity_id)
        }
        SupportActivationResult::AlreadyHasOne => ActivationOutcome::AlreadyHasOne,
        SupportActivationResult::NoUsableCode | SupportActivationResult::DeviceUnusable => {
            ActivationOutcome::Refused
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::code_devices::totp::{Algorithm, Params};

    const P: Params = Params {
        algorithm: Algorithm::Sha1,
        digits: 6,
        step_secs: 30,
    };
    const SEED: &[u8] = b"12345678901234567890";

    #[test]
    fn two_consecutive_codes_give_the_second_one_s_step() {
        let now_ms = 1_111_111_111_000;
        let now = totp::step_at(now_ms / 1000, 30);
        let first = totp::code_for_step(P, SEED, now - 1);
        let second = totp::code_for_step(P, SEED, now);
        assert_eq!(
            consecutive_step(P, SEED, &first, &second, now_ms),
            Some(now)
        );
        // The same code twice, or the pair the wrong way round, is no pair.
        assert_eq!(consecutive_step(P, SEED, &second, &second, now_ms), None);
        assert_eq!(consecutive_step(P, SEED, &second, &first, now_ms), None);
        // A pair from ten minutes ago is too old.
        let old_first = totp::code_for_step(P, SEED, now - 21);
        let old_second = totp::code_for_step(P, SEED, now - 20);
        assert_eq!(
            consecutive_step(P, SEED, &old_first, &old_second, now_ms),
            None
        );
    }
}
