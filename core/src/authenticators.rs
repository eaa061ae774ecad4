//! The authenticators on this phone (an authenticator is one authenticator: device key,
//! PIN key and decision counter, bound to one identity): listing them,
//! removing one, blocking its identity from the phone, and destroying an
//! authenticator's keys when the PIN is exhausted or the server locked it.

use eid_protocol::wire;
use eid_protocol::{AuthenticatorId, IdentityId};

use crate::store::{AuthenticatorRow, AuthenticatorState};
use crate::{App, Error, Inner, Result, lock};

/// An authenticator (one identity's authenticator on this phone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatorInfo {
    /// The authenticator.
    pub authenticator_id: AuthenticatorId,
    /// The identity.
    pub identity_id: IdentityId,
    /// The user ID typed at activation.
    pub user_id: String,
    /// Local state.
    pub state: AuthenticatorState,
    /// Activation time (wall clock, Unix ms).
    pub created_at_ms: u64,
}

impl From<&AuthenticatorRow> for AuthenticatorInfo {
    fn from(a: &AuthenticatorRow) -> Self {
        Self {
            authenticator_id: a.authenticator_id,
            identity_id: a.identity_id,
            user_id: a.user_id.clone(),
            state: a.state,
            created_at_ms: a.created_at_ms,
        }
    }
}

impl App {
    /// The authenticators on this phone, oldest first.
    pub fn authenticators(&self) -> Result<Vec<AuthenticatorInfo>> {
        Ok(lock(&self.inner.store)?
            .authenticators()?
            .iter()
            .map(AuthenticatorInfo::from)
            .collect())
    }

    /// Removes an authenticator from this phone: deletes its keys and local data.
    /// (The server is not told; support revokes the authenticator there.)
    pub fn remove_authenticator(&self, authenticator: &AuthenticatorId) -> Result<()> {
        let acc = lock(&self.inner.store)?.authenticator(authenticator)?;
        self.inner.drop_memory(authenticator)?;
        lock(&self.inner.store)?.delete_authenticator(authenticator)?;
        self.inner
            .delete_keys(&acc.device_key_alias, &acc.pin_wrap_alias);
        Ok(())
    }

    /// Blocks the authenticator's identity at once ("I suspect abuse"), from this
    /// phone: signed by the device key, no PIN needed. The server cancels the
    /// pending requests and refuses new requests and decisions until support
    /// unblocks; locally the authenticator shows as blocked.
    pub async fn block_identity(&self, authenticator: &AuthenticatorId) -> Result<()> {
        let acc = lock(&self.inner.store)?.authenticator(authenticator)?;
        let body = serde_json::to_vec(&wire::BlockRequest {
            authenticator_id: *authenticator,
        })?;
        let resp: wire::BlockResponse = self
            .inner
            .device_post(std::slice::from_ref(&acc), wire::PATH_BLOCK, body)
            .await?;
        if resp.identity_id != acc.identity_id {
            return Err(Error::InvalidResponse("blocked another identity".into()));
        }
        let server_time = self.inner.clock.wall_ms();
        lock(&self.inner.store)?.apply_pull(
            &[(*authenticator, AuthenticatorState::Blocked, &[])],
            server_time,
            server_time,
        )?;
        lock(&self.inner.timers)?.retain(|(a, _), _| a != authenticator);
        tracing::info!("identity blocked from the app");
        Ok(())
    }
}

impl Inner {
    pub(crate) fn delete_keys(&self, device_alias: &str, wrap_alias: &str) {
        for alias in [device_alias, wrap_alias] {
            if self.keystore.delete_key(alias).is_err() {
                tracing::warn!("could not delete a key from the keystore");
            }
        }
    }

    pub(crate) fn drop_memory(&self, authenticator: &AuthenticatorId) -> Result<()> {
        lock(&self.unlocks)?.retain(|_, u| u.authenticator_id != *authenticator);
        lock(&self.timers)?.retain(|(a, _), _| a != authenticator);
        lock(&self.shown)?.retain(|(a, _), _| a != authenticator);
        lock(&self.mono_locks)?.remove(authenticator);
        Ok(())
    }

    /// Destroys the PIN key and the keystore keys; the authenticator needs re-activation.
    pub(crate) fn destroy_authenticator_keys(
        &self,
        authenticator: &AuthenticatorRow,
    ) -> Result<()> {
        self.drop_memory(&authenticator.authenticator_id)?;
        lock(&self.store)?.destroy_pin_key(&authenticator.authenticator_id)?;
        self.delete_keys(
            &authenticator.device_key_alias,
            &authenticator.pin_wrap_alias,
        );
        tracing::warn!("PIN key destroyed; re-activation required");
        Ok(())
    }
}
