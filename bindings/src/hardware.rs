//! The person's hardware authenticators (code devices and chip) over the
//! FFI: the list the server answers, and deactivation with the PIN.

use eid_protocol::AuthenticatorId;
use eid_protocol::wire::{HardwareAuthenticatorInfo, HardwareKind, HardwareState};

use crate::app::App;
use crate::error::EidError;

/// What kind of hardware authenticator.
#[uniffi::remote(Enum)]
#[non_exhaustive]
pub enum HardwareKind {
    /// A code display (six-digit codes on a screen).
    CodeDisplay,
    /// An audio code reader (codes read aloud).
    CodeReader,
    /// A chip (FIDO2/WebAuthn security key).
    Chip,
}

/// Where a hardware authenticator stands.
#[uniffi::remote(Enum)]
#[non_exhaustive]
pub enum HardwareState {
    /// Added, not usable yet (a chip in its waiting period; cancellable).
    Pending,
    /// Usable.
    Active,
    /// Refused for now or for good (wrong access codes, a possible clone).
    Blocked,
    /// Deactivated or cancelled.
    Deactivated,
}

/// One hardware authenticator of the person.
#[uniffi::remote(Record)]
pub struct HardwareAuthenticatorInfo {
    /// The server's opaque id (names it in a deactivation).
    pub id: String,
    /// What it is.
    pub kind: HardwareKind,
    /// Its serial number (a chip: a digest of its credential) with only the
    /// last four characters visible.
    pub masked_serial: String,
    /// Where it stands.
    pub state: HardwareState,
    /// When it was added (server clock, Unix ms).
    pub added_at_ms: u64,
    /// Its last successful use.
    pub last_used_at_ms: Option<u64>,
    /// When it works (the end of a chip's waiting period).
    pub active_from_ms: Option<u64>,
}

#[uniffi::export(async_runtime = "tokio")]
impl App {
    /// The identity's hardware authenticators, asked from the server now
    /// (device-signed; no PIN).
    pub async fn hardware_authenticators(
        &self,
        authenticator_id: AuthenticatorId,
    ) -> Result<Vec<HardwareAuthenticatorInfo>, EidError> {
        Ok(self
            .core()
            .hardware_authenticators(&authenticator_id)
            .await?)
    }

    /// Deactivates one (a pending chip: cancels it) after the person swiped
    /// (`swipe_confirmed`, else `SwipeRequired`) and typed the PIN (checked
    /// and counted like any PIN entry); the person is told on every channel.
    pub async fn deactivate_hardware(
        &self,
        authenticator_id: AuthenticatorId,
        hardware_id: String,
        pin: String,
        swipe_confirmed: bool,
    ) -> Result<HardwareAuthenticatorInfo, EidError> {
        let pin = zeroize::Zeroizing::new(pin);
        Ok(self
            .core()
            .deactivate_hardware(&authenticator_id, &hardware_id, &pin, swipe_confirmed)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use uniffi::Lower;

    use super::*;
    use crate::UniFfiTag;

    #[test]
    fn every_hardware_kind_and_state_crosses_the_ffi() {
        for kind in [
            HardwareKind::CodeDisplay,
            HardwareKind::CodeReader,
            HardwareKind::Chip,
        ] {
            let _ = <HardwareKind as Lower<UniFfiTag>>::lower(kind);
        }
        for state in [
            HardwareState::Pending,
            HardwareState::Active,
            HardwareState::Blocked,
            HardwareState::Deactivated,
        ] {
            let _ = <HardwareState as Lower<UniFfiTag>>::lower(state);
        }
    }
}
