//! Self-service as the app sees it: the open changes of phone number or
//! e-mail address that the last pull showed (with when they can complete),
//! cancelling one from the phone (device-signed, no PIN), and the identity's
//! current user ID, which a self-service change may have replaced.

use eid_protocol::wire::{
    self, AccountState as ServerAccountState, CancelContactChangeRequest, ChangeState,
    ChangeStatus, ContactChannel, PulledAccount,
};
use eid_protocol::{AuthenticatorId, ChangeId};

use crate::error::{Error, Result};
use crate::store::Store;
use crate::{App, lock};

/// Longest user ID the core accepts from a pull (the server's rules allow 40).
const MAX_PULLED_USER_ID_CHARS: usize = 64;

/// An open change of phone number or e-mail address, as the app shows it
/// ("Your phone number is being changed to +45••••••78; it can complete from
/// 14:05. Not you? Cancel.").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingContactChange {
    /// The change (to cancel it).
    pub change_id: ChangeId,
    /// Phone or e-mail.
    pub channel: ContactChannel,
    /// The new value, masked by the server (`+45••••••78`, `g•••@example.dk`).
    pub new_value_masked: String,
    /// Where it stands: waiting for the first login, waiting out the gap,
    /// or waiting for the second login.
    pub state: ChangeState,
    /// When it can complete at the earliest (server clock, Unix ms); `None`
    /// until the first self-service login is approved.
    pub earliest_completion_at_ms: Option<u64>,
    /// When it was started (server clock, Unix ms).
    pub created_at_ms: u64,
}

impl App {
    /// The open phone and e-mail changes of the authenticator's identity, as the
    /// last pull showed them (no network; call [`App::refresh`]
    /// first for the latest), oldest first.
    pub fn pending_contact_changes(
        &self,
        authenticator: &AuthenticatorId,
    ) -> Result<Vec<PendingContactChange>> {
        let store = lock(&self.inner.store)?;
        store.authenticator(authenticator)?;
        Ok(store
            .contact_changes(authenticator)?
            .into_iter()
            .map(|c| PendingContactChange {
                change_id: c.change_id,
                channel: c.channel,
                new_value_masked: c.new_value_masked,
                state: c.state,
                earliest_completion_at_ms: c.earliest_completion_at_ms,
                created_at_ms: c.created_at_ms,
            })
            .collect())
    }

    /// Cancels an open phone or e-mail change of the authenticator's identity
    /// ("that wasn't me"): signed by the device key, no PIN needed. The
    /// server cancels the change and its pending self-service login and
    /// notifies the old and the new contact. A change that already completed
    /// or ended is refused with `change_closed`, an unknown one with
    /// `unknown_change`.
    pub async fn cancel_contact_change(
        &self,
        authenticator: &AuthenticatorId,
        change_id: &ChangeId,
    ) -> Result<()> {
        let acc = lock(&self.inner.store)?.authenticator(authenticator)?;
        let body = serde_json::to_vec(&CancelContactChangeRequest {
            authenticator_id: *authenticator,
            change_id: *change_id,
        })?;
        let headers = self.inner.device_auth_headers(
            std::slice::from_ref(&acc),
            wire::PATH_CANCEL_CONTACT_CHANGE,
            &body,
        )?;
        let resp: ChangeStatus = self
            .inner
            .client
            .post(wire::PATH_CANCEL_CONTACT_CHANGE, body, &headers)
            .await?;
        if resp.change_id != *change_id || resp.state != ChangeState::Cancelled {
            return Err(Error::InvalidResponse(
                "cancel answer does not match the change".into(),
            ));
        }
        lock(&self.inner.store)?.delete_contact_change(authenticator, change_id)?;
        tracing::info!("contact change cancelled from the app");
        Ok(())
    }

    /// Stores the user IDs and open contact changes of a pull (authenticators the
    /// server locked are skipped: their keys are gone).
    pub(crate) fn store_authenticator_details(
        store: &mut Store,
        pulled: &[PulledAccount],
    ) -> Result<()> {
        let rows: Vec<_> = pulled
            .iter()
            .filter(|p| p.state != ServerAccountState::Locked)
            .map(|p| {
                let user_id = p.user_id.as_deref().filter(|u| {
                    !u.is_empty()
                        && u.chars().count() <= MAX_PULLED_USER_ID_CHARS
                        && !u.chars().any(char::is_control)
                });
                (p.authenticator_id, user_id, p.contact_changes.as_slice())
            })
            .collect();
        store.apply_authenticator_details(&rows)
    }
}
