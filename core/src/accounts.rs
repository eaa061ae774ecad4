//! The accounts on this phone (an account is one authenticator: device key,
//! PIN key and decision counter, bound to one identity): listing them,
//! removing one, blocking its identity from the phone, and destroying an
//! account's keys when the PIN is exhausted or the server locked it.

use eid_protocol::wire;
use eid_protocol::{AuthenticatorId, IdentityId};

use crate::store::{AccountRow, AccountState};
use crate::{Authenticator, Error, Inner, Result, lock};

/// An account (one identity's authenticator on this phone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    /// The authenticator.
    pub authenticator_id: AuthenticatorId,
    /// The identity.
    pub identity_id: IdentityId,
    /// The user ID typed at activation.
    pub user_id: String,
    /// Local state.
    pub state: AccountState,
    /// Activation time (wall clock, Unix ms).
    pub created_at_ms: u64,
}

impl From<&AccountRow> for AccountInfo {
    fn from(a: &AccountRow) -> Self {
        Self {
            authenticator_id: a.authenticator_id,
            identity_id: a.identity_id,
            user_id: a.user_id.clone(),
            state: a.state,
            created_at_ms: a.created_at_ms,
        }
    }
}

impl Authenticator {
    /// The accounts on this phone, oldest first.
    pub fn accounts(&self) -> Result<Vec<AccountInfo>> {
        Ok(lock(&self.inner.store)?
            .accounts()?
            .iter()
            .map(AccountInfo::from)
            .collect())
    }

    /// Removes an account from this phone: deletes its keys and local data.
    /// (The server is not told; support revokes the authenticator there.)
    pub fn remove_account(&self, account: &AuthenticatorId) -> Result<()> {
        let acc = lock(&self.inner.store)?.account(account)?;
        self.inner.drop_memory(account)?;
        lock(&self.inner.store)?.delete_account(account)?;
        self.inner
            .delete_keys(&acc.device_key_alias, &acc.pin_wrap_alias);
        Ok(())
    }

    /// Blocks the account's identity at once ("I suspect abuse"), from this
    /// phone: signed by the device key, no PIN needed. The server cancels the
    /// pending requests and refuses new requests and decisions until support
    /// unblocks; locally the account shows as blocked.
    pub async fn block_identity(&self, account: &AuthenticatorId) -> Result<()> {
        let acc = lock(&self.inner.store)?.account(account)?;
        let body = serde_json::to_vec(&wire::BlockRequest {
            authenticator_id: *account,
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
            &[(*account, AccountState::Blocked, &[])],
            server_time,
            server_time,
        )?;
        lock(&self.inner.timers)?.retain(|(a, _), _| a != account);
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

    pub(crate) fn drop_memory(&self, account: &AuthenticatorId) -> Result<()> {
        lock(&self.unlocks)?.retain(|_, u| u.authenticator_id != *account);
        lock(&self.timers)?.retain(|(a, _), _| a != account);
        lock(&self.shown)?.retain(|(a, _), _| a != account);
        lock(&self.mono_locks)?.remove(account);
        Ok(())
    }

    /// Destroys the PIN key and the keystore keys; the account needs re-activation.
    pub(crate) fn destroy_account_keys(&self, account: &AccountRow) -> Result<()> {
        self.drop_memory(&account.authenticator_id)?;
        lock(&self.store)?.destroy_pin_key(&account.authenticator_id)?;
        self.delete_keys(&account.device_key_alias, &account.pin_wrap_alias);
        tracing::warn!("PIN key destroyed; re-activation required");
        Ok(())
    }
}
