//! Contact changes over the FFI: the open self-service changes of phone
//! number or e-mail, each with a cancel button.

use eid_protocol::wire::ContactChannel;
use eid_protocol::{AuthenticatorId, ChangeId};

use crate::app::App;
use crate::error::EidError;

/// Which contact detail a change is for.
#[uniffi::remote(Enum)]
#[non_exhaustive]
pub enum ContactChannel {
    /// The phone number.
    Phone,
    /// The e-mail address.
    Email,
}

/// Where an open contact change stands. Hand-written: the app only tells
/// open states apart, so the protocol's four end states are one `Closed`.
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

impl From<eid_protocol::wire::ChangeState> for ContactChangeState {
    fn from(s: eid_protocol::wire::ChangeState) -> Self {
        use eid_protocol::wire::ChangeState as S;
        match s {
            S::AwaitingFirstLogin => Self::AwaitingFirstLogin,
            S::WaitingSecondLogin => Self::WaitingSecondLogin,
            S::AwaitingSecondLogin => Self::AwaitingSecondLogin,
            _ => Self::Closed,
        }
    }
}

/// An open change of phone number or e-mail, with a cancel button.
/// Hand-written for its [`ContactChangeState`].
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PendingContactChange {
    /// The change id (for `cancelContactChange`).
    pub change_id: ChangeId,
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
        Self {
            change_id: c.change_id,
            channel: c.channel,
            new_value_masked: c.new_value_masked,
            state: c.state.into(),
            earliest_completion_at_ms: c.earliest_completion_at_ms,
            created_at_ms: c.created_at_ms,
        }
    }
}

#[uniffi::export]
impl App {
    /// The open phone and e-mail changes of the authenticator's identity (from the
    /// last refresh), each with a cancel button.
    pub fn pending_contact_changes(
        &self,
        authenticator_id: AuthenticatorId,
    ) -> Result<Vec<PendingContactChange>, EidError> {
        Ok(self
            .core()
            .pending_contact_changes(&authenticator_id)?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl App {
    /// Cancels an open phone or e-mail change (device-signed; no PIN).
    pub async fn cancel_contact_change(
        &self,
        authenticator_id: AuthenticatorId,
        change_id: ChangeId,
    ) -> Result<(), EidError> {
        Ok(self
            .core()
            .cancel_contact_change(&authenticator_id, &change_id)
            .await?)
    }
}
