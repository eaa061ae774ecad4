//! Device enrolment over the FFI: a new device added from an existing one,
//! both phones' sides (the new phone's code and polling, the existing
//! phone's list of new devices with a cancel button).

use eid_core::{DeviceEnrolment, PendingDevice, PendingDeviceState};
use eid_protocol::AuthenticatorId;

use crate::app::App;
use crate::error::EidError;
use crate::model::AuthenticatorInfo;

/// The new phone's enrolment: show `code` (and `qr_payload` as a QR code) for
/// the existing phone to enter or scan.
#[uniffi::remote(Record)]
pub struct DeviceEnrolment {
    /// The user ID it was started with.
    pub user_id: String,
    /// The enrolment id (the future authenticator id).
    pub enrolment_id: AuthenticatorId,
    /// The code to type on the existing phone.
    pub code: String,
    /// The same code as a QR payload.
    pub qr_payload: String,
    /// When the existing phone's approval request expires (Unix ms).
    pub expires_at_ms: u64,
}

/// Where the new phone's enrolment stands. Hand-written: the FFI names the
/// activated authenticator's field and gives it as the FFI's [`AuthenticatorInfo`].
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum EnrolmentStatus {
    /// Not approved yet: keep showing the code.
    AwaitingApproval,
    /// Approved; works from `usable_at_ms` (server clock).
    Waiting {
        /// When it works (Unix ms).
        usable_at_ms: u64,
        /// Milliseconds left when the server answered.
        remaining_ms: u64,
    },
    /// Activated: the authenticator is on this phone.
    Activated {
        /// The new authenticator.
        authenticator: AuthenticatorInfo,
    },
}

impl From<eid_core::EnrolmentStatus> for EnrolmentStatus {
    fn from(s: eid_core::EnrolmentStatus) -> Self {
        match s {
            eid_core::EnrolmentStatus::Waiting {
                usable_at_ms,
                remaining_ms,
            } => Self::Waiting {
                usable_at_ms,
                remaining_ms,
            },
            eid_core::EnrolmentStatus::Activated(authenticator) => Self::Activated {
                authenticator: authenticator.into(),
            },
            _ => Self::AwaitingApproval,
        }
    }
}

/// How far a new device being added is (as the existing phone sees it).
#[uniffi::remote(Enum)]
#[non_exhaustive]
pub enum PendingDeviceState {
    /// Its request waits for a decision.
    AwaitingApproval,
    /// Approved; it works after the waiting period unless cancelled.
    Waiting,
}

/// A new device being added to the authenticator's identity, with a cancel button.
#[uniffi::remote(Record)]
pub struct PendingDevice {
    /// The enrolment id (for `cancelDeviceEnrolment`).
    pub enrolment_id: AuthenticatorId,
    /// Awaiting approval or waiting.
    pub state: PendingDeviceState,
    /// When the new device asked (Unix ms).
    pub requested_at_ms: u64,
    /// When it will work, once approved (Unix ms).
    pub usable_at_ms: Option<u64>,
}

#[uniffi::export]
impl App {
    /// New phone: the enrolment in progress, if any.
    pub fn pending_device_enrolment(&self) -> Result<Option<DeviceEnrolment>, EidError> {
        Ok(self.core().pending_device_enrolment()?)
    }

    /// New phone: gives up the enrolment and deletes its keys.
    pub fn discard_device_enrolment(&self) -> Result<(), EidError> {
        Ok(self.core().discard_device_enrolment()?)
    }

    /// Existing phone: the new devices being added to the authenticator's identity
    /// (from the last refresh), each with a cancel button.
    pub fn pending_devices(
        &self,
        authenticator_id: AuthenticatorId,
    ) -> Result<Vec<PendingDevice>, EidError> {
        Ok(self.core().pending_devices(&authenticator_id)?)
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl App {
    /// New phone: asks to be added to an identity that already has a device;
    /// the PIN is checked against the policy first. Show the code.
    pub async fn start_device_enrolment(
        &self,
        user_id: String,
        pin: String,
    ) -> Result<DeviceEnrolment, EidError> {
        let pin = zeroize::Zeroizing::new(pin);
        Ok(self.core().start_device_enrolment(&user_id, &pin).await?)
    }

    /// New phone: re-sends an enrolment whose answer was lost (same keys).
    pub async fn resume_device_enrolment(&self) -> Result<DeviceEnrolment, EidError> {
        Ok(self.core().resume_device_enrolment().await?)
    }

    /// New phone: asks how the enrolment stands; activates the authenticator once
    /// the waiting period is over. `EnrolmentRefused` when it was refused,
    /// cancelled or expired (the keys are then deleted).
    pub async fn poll_device_enrolment(&self) -> Result<EnrolmentStatus, EidError> {
        Ok(self.core().poll_device_enrolment().await?.into())
    }

    /// Existing phone: cancels a new device being added ("not my phone");
    /// no PIN.
    pub async fn cancel_device_enrolment(
        &self,
        authenticator_id: AuthenticatorId,
        enrolment_id: AuthenticatorId,
    ) -> Result<(), EidError> {
        Ok(self
            .core()
            .cancel_device_enrolment(&authenticator_id, &enrolment_id)
            .await?)
    }
}
