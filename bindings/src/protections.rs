//! The seed's protections over the FFI: the security feed and "notify me on
//! every use", a new device added from an existing one (both phones' sides),
//! and the open self-service changes of phone or e-mail with their cancel.

use std::str::FromStr;

use eid_protocol::{AuthenticatorId, ChangeId};

use crate::authenticator::{Authenticator, account_id};
use crate::error::EidError;
use crate::model::{AccountInfo, Language};

/// What a security event is about. Stable; `Other` for a kind this build does
/// not know (show it as critical).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
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
    /// A kind this build does not know.
    Other,
}

impl From<eid_core::SecurityEventKind> for SecurityEventKind {
    fn from(k: eid_core::SecurityEventKind) -> Self {
        use eid_core::SecurityEventKind as K;
        match k {
            K::DeviceActivated => Self::DeviceActivated,
            K::DeviceRemoved => Self::DeviceRemoved,
            K::PinLockout => Self::PinLockout,
            K::NewDeviceRequested => Self::NewDeviceRequested,
            K::NewDeviceApproved => Self::NewDeviceApproved,
            K::NewDeviceCancelled => Self::NewDeviceCancelled,
            K::ContactChangeStarted => Self::ContactChangeStarted,
            K::ContactChangeCompleted => Self::ContactChangeCompleted,
            K::ContactChangeCancelled => Self::ContactChangeCancelled,
            K::UserIdChanged => Self::UserIdChanged,
            K::IdentityBlocked => Self::IdentityBlocked,
            K::IdentityUnblocked => Self::IdentityUnblocked,
            K::FraudReported => Self::FraudReported,
            K::Used => Self::Used,
            K::RequestsHeld => Self::RequestsHeld,
            _ => Self::Other,
        }
    }
}

/// One entry of an account's security feed, in the configured language.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct EventView {
    /// The server's event id (increasing).
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

impl From<eid_core::EventView> for EventView {
    fn from(e: eid_core::EventView) -> Self {
        Self {
            event_id: e.event_id,
            kind: e.kind.into(),
            occurred_at_ms: e.occurred_at_ms,
            critical: e.critical,
            this_device: e.this_device,
            title: e.title,
            body: e.body,
        }
    }
}

/// The new phone's enrolment: show `code` (and `qr_payload` as a QR code) for
/// the existing phone to enter or scan.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct DeviceEnrolment {
    /// The user ID it was started with.
    pub user_id: String,
    /// The enrolment id, hex (the future account id).
    pub enrolment_id: String,
    /// The code to type on the existing phone.
    pub code: String,
    /// The same code as a QR payload.
    pub qr_payload: String,
    /// When the existing phone's approval request expires (Unix ms).
    pub expires_at_ms: u64,
}

impl From<eid_core::DeviceEnrolment> for DeviceEnrolment {
    fn from(e: eid_core::DeviceEnrolment) -> Self {
        Self {
            user_id: e.user_id,
            enrolment_id: e.enrolment_id.to_string(),
            code: e.code,
            qr_payload: e.qr_payload,
            expires_at_ms: e.expires_at_ms,
        }
    }
}

/// Where the new phone's enrolment stands.
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
    /// Activated: the account is on this phone.
    Activated {
        /// The new account.
        account: AccountInfo,
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
            eid_core::EnrolmentStatus::Activated(account) => Self::Activated {
                account: account.into(),
            },
            _ => Self::AwaitingApproval,
        }
    }
}

/// How far a new device being added is (as the existing phone sees it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum PendingDeviceState {
    /// Its request waits for a decision.
    AwaitingApproval,
    /// Approved; it works after the waiting period unless cancelled.
    Waiting,
}

/// A new device being added to the account's identity, with a cancel button.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PendingDevice {
    /// The enrolment id, hex (for `cancelDeviceEnrolment`).
    pub enrolment_id: String,
    /// Awaiting approval or waiting.
    pub state: PendingDeviceState,
    /// When the new device asked (Unix ms).
    pub requested_at_ms: u64,
    /// When it will work, once approved (Unix ms).
    pub usable_at_ms: Option<u64>,
}

impl From<eid_core::PendingDevice> for PendingDevice {
    fn from(d: eid_core::PendingDevice) -> Self {
        Self {
            enrolment_id: d.enrolment_id.to_string(),
            state: match d.state {
                eid_core::PendingDeviceState::Waiting => PendingDeviceState::Waiting,
                _ => PendingDeviceState::AwaitingApproval,
            },
            requested_at_ms: d.requested_at_ms,
            usable_at_ms: d.usable_at_ms,
        }
    }
}

/// Which contact detail a change is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ContactChannel {
    /// The phone number.
    Phone,
    /// The e-mail address.
    Email,
}

/// Where an open contact change stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ContactChangeState {
    /// Its first self-service login waits for approval.
    AwaitingFirstLogin,
    /// The first login was approved; the second may come after the gap.
    WaitingSecondLogin,
    /// The second login waits for approval.
    AwaitingSecondLogin,
    /// Any other state (the change is over).
    Closed,
}

/// An open change of phone number or e-mail, with a cancel button.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PendingContactChange {
    /// The change id, hex (for `cancelContactChange`).
    pub change_id: String,
    /// Phone or e-mail.
    pub channel: ContactChannel,
    /// The new value, masked (`+45••••••78`).
    pub new_value_masked: String,
    /// Where it stands.
    pub state: ContactChangeState,
    /// When it can complete at the earliest (Unix ms), once the first login
    /// was approved.
    pub earliest_completion_at_ms: Option<u64>,
    /// When it was started (Unix ms).
    pub created_at_ms: u64,
}

impl From<eid_core::PendingContactChange> for PendingContactChange {
    fn from(c: eid_core::PendingContactChange) -> Self {
        use eid_protocol::wire::{ChangeState as S, ContactChannel as C};
        Self {
            change_id: c.change_id.to_string(),
            channel: match c.channel {
                C::Email => ContactChannel::Email,
                _ => ContactChannel::Phone,
            },
            new_value_masked: c.new_value_masked,
            state: match c.state {
                S::AwaitingFirstLogin => ContactChangeState::AwaitingFirstLogin,
                S::WaitingSecondLogin => ContactChangeState::WaitingSecondLogin,
                S::AwaitingSecondLogin => ContactChangeState::AwaitingSecondLogin,
                _ => ContactChangeState::Closed,
            },
            earliest_completion_at_ms: c.earliest_completion_at_ms,
            created_at_ms: c.created_at_ms,
        }
    }
}

/// A decision the server holds for this phone's account that this phone
/// never signed: someone has a copy of its keys, or the server is lying.
/// Show it as the most serious warning and offer to block the identity.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct JournalAlarm {
    /// The request decided, hex.
    pub request_id: String,
    /// The outcome recorded.
    pub outcome: crate::model::Outcome,
    /// Its counter.
    pub counter: u64,
    /// When the server accepted it (Unix ms).
    pub decided_at_ms: u64,
    /// When this phone noticed (Unix ms).
    pub raised_at_ms: u64,
}

impl From<eid_core::JournalAlarm> for JournalAlarm {
    fn from(a: eid_core::JournalAlarm) -> Self {
        Self {
            request_id: a.request_id.to_string(),
            outcome: a.outcome.into(),
            counter: a.counter,
            decided_at_ms: a.decided_at_ms,
            raised_at_ms: a.raised_at_ms,
        }
    }
}

fn change_id(hex: &str) -> Result<ChangeId, EidError> {
    ChangeId::from_str(hex).map_err(|_| EidError::UnknownRequest)
}

fn enrolment_id(hex: &str) -> Result<AuthenticatorId, EidError> {
    AuthenticatorId::from_str(hex).map_err(|_| EidError::UnknownRequest)
}

#[uniffi::export]
impl Authenticator {
    /// The account's security feed, newest first (from the last refresh).
    pub fn events(
        &self,
        account_id_hex: String,
        language: Language,
    ) -> Result<Vec<EventView>, EidError> {
        Ok(self
            .core()
            .events(&account_id(&account_id_hex)?, language.into())?
            .into_iter()
            .map(EventView::from)
            .collect())
    }

    /// The account's "notify me on every use" setting, as last pulled.
    pub fn notify_every_use(&self, account_id_hex: String) -> Result<bool, EidError> {
        Ok(self
            .core()
            .notify_every_use(&account_id(&account_id_hex)?)?)
    }

    /// Decisions the server holds for this account that this phone never
    /// signed (found by comparing each pull with the phone's journal).
    pub fn journal_alarms(&self, account_id_hex: String) -> Result<Vec<JournalAlarm>, EidError> {
        Ok(self
            .core()
            .journal_alarms(&account_id(&account_id_hex)?)?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// New phone: the enrolment in progress, if any.
    pub fn pending_device_enrolment(&self) -> Result<Option<DeviceEnrolment>, EidError> {
        Ok(self.core().pending_device_enrolment()?.map(Into::into))
    }

    /// New phone: gives up the enrolment and deletes its keys.
    pub fn discard_device_enrolment(&self) -> Result<(), EidError> {
        Ok(self.core().discard_device_enrolment()?)
    }

    /// Existing phone: the new devices being added to the account's identity
    /// (from the last refresh), each with a cancel button.
    pub fn pending_devices(&self, account_id_hex: String) -> Result<Vec<PendingDevice>, EidError> {
        Ok(self
            .core()
            .pending_devices(&account_id(&account_id_hex)?)?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// The open phone and e-mail changes of the account's identity (from the
    /// last refresh), each with a cancel button.
    pub fn pending_contact_changes(
        &self,
        account_id_hex: String,
    ) -> Result<Vec<PendingContactChange>, EidError> {
        Ok(self
            .core()
            .pending_contact_changes(&account_id(&account_id_hex)?)?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl Authenticator {
    /// Turns "notify me on every use" on or off (device-signed; no PIN).
    pub async fn set_notify_every_use(
        &self,
        account_id_hex: String,
        on: bool,
    ) -> Result<(), EidError> {
        Ok(self
            .core()
            .set_notify_every_use(&account_id(&account_id_hex)?, on)
            .await?)
    }

    /// New phone: asks to be added to an identity that already has a device;
    /// the PIN is checked against the policy first. Show the code.
    pub async fn start_device_enrolment(
        &self,
        user_id: String,
        pin: String,
    ) -> Result<DeviceEnrolment, EidError> {
        let pin = zeroize::Zeroizing::new(pin);
        Ok(self
            .core()
            .start_device_enrolment(&user_id, &pin)
            .await?
            .into())
    }

    /// New phone: re-sends an enrolment whose answer was lost (same keys).
    pub async fn resume_device_enrolment(&self) -> Result<DeviceEnrolment, EidError> {
        Ok(self.core().resume_device_enrolment().await?.into())
    }

    /// New phone: asks how the enrolment stands; activates the account once
    /// the waiting period is over. `EnrolmentRefused` when it was refused,
    /// cancelled or expired (the keys are then deleted).
    pub async fn poll_device_enrolment(&self) -> Result<EnrolmentStatus, EidError> {
        Ok(self.core().poll_device_enrolment().await?.into())
    }

    /// Existing phone: cancels a new device being added ("not my phone");
    /// no PIN.
    pub async fn cancel_device_enrolment(
        &self,
        account_id_hex: String,
        enrolment_id_hex: String,
    ) -> Result<(), EidError> {
        Ok(self
            .core()
            .cancel_device_enrolment(
                &account_id(&account_id_hex)?,
                &enrolment_id(&enrolment_id_hex)?,
            )
            .await?)
    }

    /// Cancels an open phone or e-mail change (device-signed; no PIN).
    pub async fn cancel_contact_change(
        &self,
        account_id_hex: String,
        change_id_hex: String,
    ) -> Result<(), EidError> {
        Ok(self
            .core()
            .cancel_contact_change(&account_id(&account_id_hex)?, &change_id(&change_id_hex)?)
            .await?)
    }
}
