//! Journal alarms over the FFI: decisions the server holds for an authenticator
//! that this phone never signed.

use eid_protocol::{AuthenticatorId, RequestId};

use crate::app::App;
use crate::error::EidError;
use crate::model::Outcome;

/// A decision the server holds for this phone's authenticator that this phone
/// never signed: someone has a copy of its keys, or the server is lying.
/// Show it as the most serious warning and offer to block the identity.
/// Hand-written: the FFI leaves out the decision's hash (nothing for the app
/// to show) and uses the receipt's past-tense [`Outcome`].
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct JournalAlarm {
    /// The request decided.
    pub request_id: RequestId,
    /// The outcome recorded.
    pub outcome: Outcome,
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
            request_id: a.request_id,
            outcome: a.outcome.into(),
            counter: a.counter,
            decided_at_ms: a.decided_at_ms,
            raised_at_ms: a.raised_at_ms,
        }
    }
}

#[uniffi::export]
impl App {
    /// Decisions the server holds for this authenticator that this phone never
    /// signed (found by comparing each pull with the phone's journal).
    pub fn journal_alarms(
        &self,
        authenticator_id: AuthenticatorId,
    ) -> Result<Vec<JournalAlarm>, EidError> {
        Ok(self
            .core()
            .journal_alarms(&authenticator_id)?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}
