//! One use of a chip: the browser's assertion against a ceremony, the sign
//! counter, the access code and the lockout. Shared by the confirming step
//! ([`super::confirm`]) and the login page.
//!
//! Order of the checks: the signature first (webauthn-rs, against the
//! credentials the ceremony allowed: a credential of another person is
//! refused there), so that nobody without the chip learns anything about
//! it, not even that it is locked; a sign counter that does not rise (when
//! either side is non-zero) means a possible clone: the chip is blocked for
//! good and the person told; then a lockout after wrong access codes
//! refuses without looking at the code; last the access code (Argon2id),
//! where three wrong in a row lock the chip for a growing time, surviving
//! restarts (it is stored).
//! Every write names the revision it read ([`crate::store::Store::save_chip`]),
//! so two uses racing on one counter cannot both pass.

use webauthn_rs::prelude::{
    PublicKeyCredential, SecurityKey, SecurityKeyAuthentication, WebauthnError,
};

use super::{ChipError, event, lockout_ms, masked, relying_party};
use crate::access_code;
use crate::api::AppState;
use crate::store::{Chip, ChipCeremony, ChipState, NewEvent};
use eid_protocol::events::SecurityEventKind;

/// How a use ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UseOutcome {
    /// Signature, counter and access code are right; the chip was saved
    /// (counter, last use, state) with the caller's events.
    Accepted(Box<Chip>),
    /// The access code was wrong (counted); `locked_until_ms` when this one
    /// started a lockout.
    WrongAccessCode {
        /// The end of the lockout this failure started, if it did.
        locked_until_ms: Option<u64>,
    },
    /// Locked after wrong access codes until this time; the signature was
    /// right, the access code was not looked at.
    LockedOut {
        /// The lockout's end.
        until_ms: u64,
    },
    /// The sign counter did not rise: a possible clone. The chip is blocked
    /// for good and the person told.
    CloneSuspected,
    /// The answer was malformed, for another challenge, or signed by a
    /// credential the ceremony did not allow (another person's chip).
    BadAssertion,
    /// The chip was used at the same moment by another request; this one
    /// lost and changed nothing.
    Concurrent,
}

/// What a successful use does to the chip besides the counter and the
/// last-use time.
pub(crate) struct OnSuccess {
    /// The state the chip has afterwards.
    pub(crate) state: ChipState,
    /// The events recorded with the save.
    pub(crate) kind: SecurityEventKind,
}

/// Uses `chip` with the browser's `assertion_json` against `ceremony` (taken
/// by the caller, who checked that it is this person's and for this chip)
/// and the typed `access_code`.
pub(crate) async fn use_chip(
    state: &AppState,
    mut chip: Chip,
    ceremony: &ChipCeremony,
    assertion_json: &str,
    access_code: &str,
    origin: &str,
    on_success: OnSuccess,
) -> Result<UseOutcome, ChipError> {
    let now = state.now_ms();
    let authentication: SecurityKeyAuthentication =
        serde_json::from_str(&ceremony.state).map_err(|_| ChipError::Stored)?;
    let Ok(answer) = serde_json::from_str::<PublicKeyCredential>(assertion_json) else {
        return Ok(UseOutcome::BadAssertion);
    };
    let mut key: SecurityKey =
        serde_json::from_str(&chip.credential).map_err(|_| ChipError::Stored)?;
    let rp = relying_party(origin)?;
    let result = match rp.finish_securitykey_authentication(&answer, &authentication) {
        Ok(result) => result,
        Err(WebauthnError::CredentialPossibleCompromise) => {
            return block_as_clone(state, chip, now).await;
        }
        Err(_) => return Ok(UseOutcome::BadAssertion),
    };
    let credential_id: &[u8] = key.cred_id().as_ref();
    if result.cred_id().as_ref() as &[u8] != credential_id {
        // The ceremony allowed only this chip's credential; a mismatch here
        // would be a ceremony of another chip.
        return Ok(UseOutcome::BadAssertion);
    }
    // Our own column is the authority for the counter (the library compares
    // with the counter inside the ceremony's copy of the credential, which
    // an older ceremony may hold): a counter that does not rise, when either
    // side is non-zero, is the mark of a cloned key.
    let counter = result.counter();
    if (counter > 0 || chip.counter > 0) && counter <= chip.counter {
        return block_as_clone(state, chip, now).await;
    }
    key.update_credential(&result);
    chip.counter = counter;
    chip.credential = serde_json::to_string(&key).map_err(|_| ChipError::Stored)?;
    if let Some(until_ms) = chip.blocked_until_ms.filter(|until| *until > now) {
        // The counter moved (the signature was used); the code is not
        // looked at while the lockout lasts.
        return Ok(if state.store.save_chip(chip, Vec::new()).await? {
            UseOutcome::LockedOut { until_ms }
        } else {
            UseOutcome::Concurrent
        });
    }

    let stored = chip.access_code.clone();
    let typed = zeroize::Zeroizing::new(access_code.to_owned());
    let (right, rehash) = tokio::task::spawn_blocking(move || {
        let right = access_code::verify(&stored, &typed);
        let rehash = right && access_code::needs_rehash(&stored);
        (right, rehash.then(|| access_code::hash(&typed)))
    })
    .await
    .map_err(|_| ChipError::Hashing)?;
    let shown = masked(&chip.credential_id_sha256);
    if !right {
        chip.failures = chip.failures.saturating_add(1);
        let locked_until_ms = lockout_ms(chip.failures).map(|ms| now.saturating_add(ms));
        chip.blocked_until_ms = locked_until_ms;
        let events: Vec<NewEvent> = locked_until_ms
            .map(|_| event(chip.identity_id, SecurityEventKind::ChipBlocked, shown, now))
            .into_iter()
            .collect();
        return Ok(if state.store.save_chip(chip, events).await? {
            UseOutcome::WrongAccessCode { locked_until_ms }
        } else {
            UseOutcome::Concurrent
        });
    }
    if let Some(hash) = rehash {
        chip.access_code = hash;
    }
    chip.failures = 0;
    chip.blocked_until_ms = None;
    chip.last_used_at_ms = Some(now);
    chip.state = on_success.state;
    let events = vec![event(chip.identity_id, on_success.kind, shown, now)];
    let saved = chip.clone();
    Ok(if state.store.save_chip(chip, events).await? {
        let mut saved = saved;
        saved.revision += 1;
        UseOutcome::Accepted(Box::new(saved))
    } else {
        UseOutcome::Concurrent
    })
}

/// Blocks a chip for good after a counter regression, and tells the person.
async fn block_as_clone(
    state: &AppState,
    mut chip: Chip,
    now: u64,
) -> Result<UseOutcome, ChipError> {
    let shown = masked(&chip.credential_id_sha256);
    tracing::warn!(chip = %chip.id, "chip sign counter went back: blocked as a possible clone");
    chip.state = ChipState::Blocked;
    chip.ended_at_ms = Some(now);
    let blocked = event(chip.identity_id, SecurityEventKind::ChipBlocked, shown, now);
    // Lost a race: the other writer saw the same chip; either way the
    // answer is a refusal, and the next use finds the regression again.
    state.store.save_chip(chip, vec![blocked]).await?;
    Ok(UseOutcome::CloneSuspected)
}
