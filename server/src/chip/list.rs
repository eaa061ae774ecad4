//! The person's hardware authenticators as the app lists them (every kind:
//! [`hardware_list`] concatenates the per-kind lists), and the deactivation
//! of a chip (or the cancellation of a pending one) from the app; a code
//! device's deactivation is in `api/hardware.rs` beside it.

use eid_protocol::IdentityId;
use eid_protocol::events::SecurityEventKind;
use eid_protocol::wire::{HardwareAuthenticatorInfo, HardwareKind, HardwareState};

use super::{ChipError, event, masked};
use crate::api::AppState;
use crate::store::{Chip, ChipId, ChipState};

/// How a deactivation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeactivateOutcome {
    /// Deactivated now (a pending chip: its registration cancelled).
    Deactivated,
    /// It was deactivated before.
    AlreadyDeactivated,
    /// No such chip of this identity.
    Unknown,
}

/// Every hardware authenticator of `identity_id`: chips first, then code
/// devices, each kind oldest first.
pub(crate) async fn hardware_list(
    state: &AppState,
    identity_id: IdentityId,
) -> Result<Vec<HardwareAuthenticatorInfo>, ChipError> {
    let now = state.now_ms();
    let chips = state.store.chips_of(identity_id).await?;
    let devices = state.store.code_devices_of(identity_id).await?;
    Ok(chips
        .iter()
        .map(|c| chip_info(c, now))
        .chain(devices.iter().map(|d| crate::code_devices::listed(d, now)))
        .collect())
}

/// One chip as the app shows it.
pub(crate) fn chip_info(chip: &Chip, now_ms: u64) -> HardwareAuthenticatorInfo {
    let locked = chip.blocked_until_ms.is_some_and(|until| until > now_ms);
    HardwareAuthenticatorInfo {
        id: chip.id.to_string(),
        kind: HardwareKind::Chip,
        masked_serial: masked(&chip.credential_id_sha256),
        state: match chip.state {
            ChipState::Pending => HardwareState::Pending,
            ChipState::Active if locked => HardwareState::Blocked,
            ChipState::Active => HardwareState::Active,
            ChipState::Blocked => HardwareState::Blocked,
            ChipState::Deactivated => HardwareState::Deactivated,
        },
        added_at_ms: chip.registered_at_ms,
        last_used_at_ms: chip.last_used_at_ms,
        active_from_ms: Some(chip.active_from_ms),
    }
}

/// Deactivates the chip `id` of `identity_id` (any live state), recording
/// `chip_deactivated` (every channel told). Retries once when a use raced
/// with it, so a deactivation always wins over a login in flight.
pub(crate) async fn deactivate(
    state: &AppState,
    identity_id: IdentityId,
    id: ChipId,
) -> Result<DeactivateOutcome, ChipError> {
    for _ in 0..3 {
        let now = state.now_ms();
        let Some(mut chip) = state
            .store
            .chips_of(identity_id)
            .await?
            .into_iter()
            .find(|c| c.id == id)
        else {
            return Ok(DeactivateOutcome::Unknown);
        };
        if chip.state == ChipState::Deactivated {
            return Ok(DeactivateOutcome::AlreadyDeactivated);
        }
        let shown = masked(&chip.credential_id_sha256);
        chip.state = ChipState::Deactivated;
        chip.ended_at_ms = Some(now);
        let ended = event(identity_id, SecurityEventKind::ChipDeactivated, shown, now);
        if state.store.save_chip(chip, vec![ended]).await? {
            return Ok(DeactivateOutcome::Deactivated);
        }
    }
    Err(ChipError::Stored)
}
