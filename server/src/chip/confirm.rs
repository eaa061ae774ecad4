//! Step 2 of a chip's activation: after the waiting period the person, again
//! signed in on the self-service pages, confirms with the chip itself (an
//! assertion) and its access code. Only then does the chip log in
//! (`chip_activated`, every channel told). Until then the app can cancel it
//! ([`super::list::deactivate`]).

use webauthn_rs::prelude::SecurityKey;

use super::assertion::{OnSuccess, UseOutcome, use_chip};
use super::register::Started;
use super::{CEREMONY_MS, ChipError, put_ceremony, relying_party};
use crate::api::AppState;
use crate::store::{CeremonyPurpose, Chip, ChipCeremony, ChipState, Identity};
use eid_protocol::events::SecurityEventKind;

/// Whether step 2 can start.
#[derive(Debug, Clone)]
pub(crate) enum ConfirmStart {
    /// The challenge for the pending chip.
    Started(Started),
    /// The waiting period is not over; it ends at this time.
    TooEarly {
        /// The end of the waiting period.
        active_from_ms: u64,
    },
    /// The person has no pending chip.
    NoPendingChip,
}

/// How step 2 ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConfirmOutcome {
    /// The chip is active now.
    Activated,
    /// No such ceremony for this person's pending chip (unknown, used,
    /// expired, another's), or the chip is no longer pending.
    BadCeremony,
    /// The use itself was refused.
    Refused(UseOutcome),
}

/// The person's pending chip, if any.
pub(crate) async fn pending_chip(
    state: &AppState,
    identity: &Identity,
) -> Result<Option<Chip>, ChipError> {
    Ok(state
        .store
        .chips_of(identity.id)
        .await?
        .into_iter()
        .find(|c| c.state == ChipState::Pending))
}

/// Starts step 2 for the person's pending chip, once its waiting period is
/// over.
pub(crate) async fn start(
    state: &AppState,
    identity: &Identity,
    origin: &str,
) -> Result<ConfirmStart, ChipError> {
    let Some(chip) = pending_chip(state, identity).await? else {
        return Ok(ConfirmStart::NoPendingChip);
    };
    let now = state.now_ms();
    if now < chip.active_from_ms {
        return Ok(ConfirmStart::TooEarly {
            active_from_ms: chip.active_from_ms,
        });
    }
    let started =
        start_assertion(state, &chip, CeremonyPurpose::Confirm, chip.id.0, origin).await?;
    Ok(ConfirmStart::Started(started))
}

/// A challenge for `chip` alone, stored as a ceremony bound to `subject`.
pub(crate) async fn start_assertion(
    state: &AppState,
    chip: &Chip,
    purpose: CeremonyPurpose,
    subject: [u8; 16],
    origin: &str,
) -> Result<Started, ChipError> {
    let key: SecurityKey = serde_json::from_str(&chip.credential).map_err(|_| ChipError::Stored)?;
    let rp = relying_party(origin)?;
    let (options, authentication) = rp
        .start_securitykey_authentication(std::slice::from_ref(&key))
        .map_err(|_| ChipError::Origin)?;
    let ceremony = ChipCeremony {
        id: eid_protocol::crypto::random_array(),
        identity_id: chip.identity_id,
        purpose,
        subject: Some(subject),
        state: serde_json::to_string(&authentication).map_err(|_| ChipError::Stored)?,
        expires_at_ms: state.now_ms().saturating_add(CEREMONY_MS),
    };
    let id = put_ceremony(state, ceremony).await?;
    Ok(Started {
        ceremony_id: hex::encode(id),
        options_json: serde_json::to_string(&options.public_key).map_err(|_| ChipError::Stored)?,
    })
}

/// Finishes step 2: the ceremony must be this person's, for their pending
/// chip, and the waiting period over.
pub(crate) async fn finish(
    state: &AppState,
    identity: &Identity,
    ceremony_id: [u8; 16],
    assertion_json: &str,
    access_code: &str,
    origin: &str,
) -> Result<ConfirmOutcome, ChipError> {
    let now = state.now_ms();
    let Some(ceremony) = state.store.take_chip_ceremony(ceremony_id, now).await? else {
        return Ok(ConfirmOutcome::BadCeremony);
    };
    let Some(chip) = pending_chip(state, identity).await? else {
        return Ok(ConfirmOutcome::BadCeremony);
    };
    if identity.blocked
        || ceremony.identity_id != identity.id
        || ceremony.purpose != CeremonyPurpose::Confirm
        || ceremony.subject != Some(chip.id.0)
        || now < chip.active_from_ms
    {
        return Ok(ConfirmOutcome::BadCeremony);
    }
    let on_success = OnSuccess {
        state: ChipState::Active,
        kind: SecurityEventKind::ChipActivated,
    };
    Ok(
        match use_chip(
            state,
            chip,
            &ceremony,
            assertion_json,
            access_code,
            origin,
            on_success,
        )
        .await?
        {
            UseOutcome::Accepted(_) => ConfirmOutcome::Activated,
            other => ConfirmOutcome::Refused(other),
        },
    )
}
