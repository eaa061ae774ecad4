//! The security feed over the FFI: an authenticator's events and its "notify me on
//! every use" setting.

use eid_core::{EventView, Language, SecurityEventKind};
use eid_protocol::AuthenticatorId;

use crate::app::App;
use crate::error::EidError;

/// What a security event is about; `Unknown` for a kind a newer server sent
/// that this build does not know (show it as critical).
#[uniffi::remote(Enum)]
#[non_exhaustive]
pub enum SecurityEventKind {
    /// An authenticator was activated.
    DeviceActivated,
    /// An authenticator was removed.
    DeviceRemoved,
    /// An authenticator was locked after too many wrong PINs.
    PinLockout,
    /// A new device asked to be added.
    NewDeviceRequested,
    /// A new device was approved; it works after the waiting period.
    NewDeviceApproved,
    /// A new device's addition was cancelled or refused.
    NewDeviceCancelled,
    /// A change of phone number or e-mail was started (or tried too early).
    ContactChangeStarted,
    /// A change of phone number or e-mail was completed.
    ContactChangeCompleted,
    /// A change of phone number or e-mail was cancelled.
    ContactChangeCancelled,
    /// The user ID was changed.
    UserIdChanged,
    /// The identity was blocked.
    IdentityBlocked,
    /// The identity was unblocked.
    IdentityUnblocked,
    /// A request was reported as fraud.
    FraudReported,
    /// The identity was used (only with "notify me on every use").
    Used,
    /// A provider's requests are held after "this wasn't me".
    RequestsHeld,
    /// An activation code was voided after too many wrong tries.
    ActivationCodeVoided,
    /// "Notify me on every use" was turned off from an app (with the PIN).
    NotifyEveryUseTurnedOff,
    /// An approval was stopped because the phone saw a call or screen
    /// sharing ("we stopped this because you were on a call").
    ApprovalStoppedOnCall,
    /// A chip was registered; it works after the waiting period.
    ChipAdded,
    /// A chip was confirmed and logs in now.
    ChipActivated,
    /// A chip was blocked (possible clone, or wrong access codes).
    ChipBlocked,
    /// A chip was used to log in.
    ChipUsed,
    /// A chip was deactivated or its registration cancelled.
    ChipDeactivated,
    /// A code device was activated on the identity.
    CodeDeviceAdded,
    /// A code device was blocked after too many wrong codes or access codes.
    CodeDeviceBlocked,
    /// A code device was used to log in.
    CodeDeviceUsed,
    /// A code device was deactivated or replaced.
    CodeDeviceDeactivated,
    /// A kind this build does not know.
    Unknown,
}

/// One entry of an authenticator's security feed, in the configured language.
#[uniffi::remote(Record)]
pub struct EventView {
    /// The server's event id (increasing; a number, not a hex id).
    pub event_id: u64,
    /// What happened.
    pub kind: SecurityEventKind,
    /// When (server clock, Unix ms).
    pub occurred_at_ms: u64,
    /// Whether it needs the person's attention.
    pub critical: bool,
    /// Whether it was about this phone.
    pub this_device: bool,
    /// Heading.
    pub title: String,
    /// Text, with what to do if it wasn't them.
    pub body: String,
}

#[uniffi::export]
impl App {
    /// The authenticator's security feed, newest first (from the last refresh).
    pub fn events(
        &self,
        authenticator_id: AuthenticatorId,
        language: Language,
    ) -> Result<Vec<EventView>, EidError> {
        Ok(self.core().events(&authenticator_id, language)?)
    }

    /// The authenticator's "notify me on every use" setting, as last pulled.
    pub fn notify_every_use(&self, authenticator_id: AuthenticatorId) -> Result<bool, EidError> {
        Ok(self.core().notify_every_use(&authenticator_id)?)
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl App {
    /// Turns "notify me on every use" on (device-signed; no PIN).
    pub async fn turn_on_notify_every_use(
        &self,
        authenticator_id: AuthenticatorId,
    ) -> Result<(), EidError> {
        Ok(self
            .core()
            .turn_on_notify_every_use(&authenticator_id)
            .await?)
    }

    /// Turns "notify me on every use" off: needs the PIN (checked and
    /// counted like any PIN entry; the PIN key signs the change), and the
    /// person is told on every channel.
    pub async fn turn_off_notify_every_use(
        &self,
        authenticator_id: AuthenticatorId,
        pin: String,
    ) -> Result<(), EidError> {
        let pin = zeroize::Zeroizing::new(pin);
        Ok(self
            .core()
            .turn_off_notify_every_use(&authenticator_id, &pin)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use uniffi::Lower;

    use super::*;
    use crate::UniFfiTag;

    #[test]
    fn every_event_kind_the_protocol_knows_crosses_the_ffi() {
        // The remote declaration above must list every kind; a kind missing
        // there would panic here instead of in an app.
        for kind in SecurityEventKind::ALL
            .into_iter()
            .chain([SecurityEventKind::Unknown])
        {
            let _ = <SecurityEventKind as Lower<UniFfiTag>>::lower(kind);
        }
    }
}
