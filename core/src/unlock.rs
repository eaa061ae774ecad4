//! PIN entry: unlocking one request (a single-use, short-lived
//! [`UnlockToken`]), changing the PIN, and the counted attempt that both run
//! (the [`crate::lockout`] state machine wired to the store and the
//! monotonic clock).

use eid_protocol::crypto::{SoftwareSigningKey, random_array};
use eid_protocol::{AuthenticatorId, RequestId};
use zeroize::Zeroizing;

use crate::error::InternalError;
use crate::lockout::{FailureOutcome, Gate};
use crate::pin::{self, UnwrapError};
use crate::store::{AuthenticatorRow, AuthenticatorState};
use crate::{App, Error, Inner, Result, blocking, crash, display, lock};

/// Proof that the PIN was entered for one request: single use, short-lived.
/// Holds no secret (the unlocked PIN key stays inside the core).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnlockToken {
    pub(crate) id: [u8; 16],
    /// The authenticator unlocked.
    pub authenticator_id: AuthenticatorId,
    /// The only request this unlock may decide.
    pub request_id: RequestId,
}

/// A live unlock: the PIN key unwrapped for one request, until it expires
/// on the monotonic clock.
pub(crate) struct UnlockEntry {
    pub(crate) authenticator_id: AuthenticatorId,
    pub(crate) request_id: RequestId,
    pub(crate) pin_key: SoftwareSigningKey,
    pub(crate) expires_mono_ms: u64,
}

impl App {
    /// Checks the PIN for one request and returns a single-use unlock for it,
    /// valid for the configured time on the monotonic clock. The attempt is
    /// counted in the database before the PIN is tried.
    pub async fn unlock(
        &self,
        authenticator: &AuthenticatorId,
        request: &RequestId,
        pin: &str,
    ) -> Result<UnlockToken> {
        let (acc, pending) = self.inner.decidable(authenticator, request)?;
        display::check_texts(&pending.envelope.envelope).map_err(Error::TextRefused)?;
        let inner = self.inner.clone();
        let pin = Zeroizing::new(pin.to_owned());
        let pin_key = blocking(move || inner.check_pin(&acc, &pin)).await?;
        let id: [u8; 16] = random_array();
        let now = self.inner.clock.monotonic_ms();
        let mut unlocks = lock(&self.inner.unlocks)?;
        unlocks.retain(|_, u| {
            u.expires_mono_ms > now
                && !(u.authenticator_id == *authenticator && u.request_id == *request)
        });
        unlocks.insert(
            id,
            UnlockEntry {
                authenticator_id: *authenticator,
                request_id: *request,
                pin_key,
                expires_mono_ms: now.saturating_add(self.inner.config.unlock_ttl_ms),
            },
        );
        Ok(UnlockToken {
            id,
            authenticator_id: *authenticator,
            request_id: *request,
        })
    }

    /// Changes the PIN: the old PIN unwraps the PIN key (counted like any
    /// attempt), the new one (policy-checked first) re-seals the same key.
    pub async fn change_pin(
        &self,
        authenticator: &AuthenticatorId,
        old_pin: &str,
        new_pin: &str,
    ) -> Result<()> {
        self.inner.config.pin_policy.check(new_pin)?;
        let acc = lock(&self.inner.store)?.authenticator(authenticator)?;
        if acc.state == AuthenticatorState::NeedsReactivation {
            return Err(Error::ReactivationRequired);
        }
        let inner = self.inner.clone();
        let old = Zeroizing::new(old_pin.to_owned());
        let new = Zeroizing::new(new_pin.to_owned());
        blocking(move || {
            let key = inner.check_pin(&acc, &old)?;
            let _guard = lock(&inner.pin_lock)?;
            let store = lock(&inner.store)?;
            let iterations = store
                .pin_key(&acc.authenticator_id)?
                .ok_or(Error::ReactivationRequired)?
                .iterations;
            drop(store);
            let wrapped = pin::wrap_pin_key(
                &key,
                &new,
                iterations,
                inner.keystore.as_ref(),
                &acc.pin_wrap_alias,
            )?;
            let mut store = lock(&inner.store)?;
            let attempts = store
                .attempts(&acc.authenticator_id)?
                .reset(inner.clock.wall_ms());
            store.replace_pin_key(&acc.authenticator_id, &wrapped, &attempts)?;
            Ok(())
        })
        .await
    }
}

impl Inner {
    /// Runs one counted PIN attempt (see [`crate::lockout`]) and returns the PIN key.
    pub(crate) fn check_pin(
        &self,
        acc: &AuthenticatorRow,
        pin: &str,
    ) -> Result<SoftwareSigningKey> {
        let _guard = lock(&self.pin_lock)?;
        let id = acc.authenticator_id;
        let now = self.clock.wall_ms();
        if let Some(deadline) = lock(&self.mono_locks)?.get(&id).copied() {
            let mono = self.clock.monotonic_ms();
            if mono < deadline {
                return Err(Error::LockedOut {
                    retry_after_ms: deadline - mono,
                });
            }
        }
        let (wrapped, before) = {
            let store = lock(&self.store)?;
            let wrapped = store.pin_key(&id)?;
            (wrapped, store.attempts(&id)?)
        };
        let Some(wrapped) = wrapped else {
            return Err(Error::ReactivationRequired);
        };
        let trial = match before.gate(now) {
            Gate::Exhausted => {
                self.destroy_authenticator_keys(acc)?;
                return Err(Error::ReactivationRequired);
            }
            Gate::Locked { retry_after_ms } => return Err(Error::LockedOut { retry_after_ms }),
            Gate::Proceed(trial) => trial,
        };
        // Count the attempt durably before trying the PIN.
        lock(&self.store)?.set_attempts(&id, &trial)?;
        crash::point("core.pin.attempt_counted");
        match pin::unwrap_pin_key(
            &wrapped,
            pin,
            acc.pin_public_key.as_bytes(),
            self.keystore.as_ref(),
            &acc.pin_wrap_alias,
        ) {
            Ok(key) => {
                lock(&self.store)?.set_attempts(&id, &trial.reset(now))?;
                crash::point("core.pin.reset");
                lock(&self.mono_locks)?.remove(&id);
                Ok(key)
            }
            Err(UnwrapError::WrongPin) => match trial.failure_outcome() {
                FailureOutcome::Destroy => {
                    self.destroy_authenticator_keys(acc)?;
                    Err(Error::ReactivationRequired)
                }
                FailureOutcome::WrongPin {
                    attempts_left,
                    retry_after_ms,
                } => {
                    if retry_after_ms > 0 {
                        let deadline = self.clock.monotonic_ms().saturating_add(retry_after_ms);
                        lock(&self.mono_locks)?.insert(id, deadline);
                    }
                    Err(Error::WrongPin {
                        attempts_left,
                        retry_after_ms,
                    })
                }
            },
            Err(UnwrapError::KeyStore(e)) => {
                // Nothing was learnt about the PIN: undo the count.
                lock(&self.store)?.set_attempts(&id, &before)?;
                Err(e.into())
            }
            Err(_) => Err(InternalError::Corrupt("sealed PIN key").into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{PIN, T0, fixture};
    use crate::{AuthenticatorState, Error, KeyStore, KeyStoreError};

    #[tokio::test]
    async fn lockout_survives_restart_and_destroys_key_after_ten() {
        let f = fixture();
        let a = f.open();
        let wrong = "111222";
        let mut results = Vec::new();
        for _ in 0..3 {
            results.push(
                a.change_pin(&f.authenticator, wrong, "736194")
                    .await
                    .unwrap_err(),
            );
        }
        assert_eq!(
            results,
            vec![
                Error::WrongPin {
                    attempts_left: 9,
                    retry_after_ms: 0
                },
                Error::WrongPin {
                    attempts_left: 8,
                    retry_after_ms: 0
                },
                Error::WrongPin {
                    attempts_left: 7,
                    retry_after_ms: 60_000
                },
            ]
        );
        // Even the right PIN is refused while locked.
        assert!(matches!(
            a.change_pin(&f.authenticator, PIN, "736194").await,
            Err(Error::LockedOut { .. })
        ));
        drop(a);
        // Restart: still locked; rolling the wall clock back does not help.
        let a = f.open();
        assert!(matches!(
            a.change_pin(&f.authenticator, PIN, "736194").await,
            Err(Error::LockedOut { .. })
        ));
        f.clock.set_wall(T0 - 3_600_000);
        assert!(matches!(
            a.change_pin(&f.authenticator, PIN, "736194").await,
            Err(Error::LockedOut { .. })
        ));
        f.clock.set_wall(T0);
        f.clock.advance(60_000);
        // Right PIN after the wait: resets the counter, PIN changes.
        a.change_pin(&f.authenticator, PIN, "736194").await.unwrap();
        let mut last = None;
        for _ in 0..10 {
            let r = a.change_pin(&f.authenticator, PIN, "483951").await;
            last = Some(r.clone());
            if let Err(Error::WrongPin { retry_after_ms, .. }) = r {
                f.clock.advance(retry_after_ms);
            }
        }
        assert_eq!(last, Some(Err(Error::ReactivationRequired)));
        assert_eq!(
            a.authenticators().unwrap()[0].state,
            AuthenticatorState::NeedsReactivation
        );
        assert_eq!(
            f.keystore.public_key(&f.device_alias),
            Err(KeyStoreError::NotFound)
        );
        drop(a);
        let a = f.open();
        assert_eq!(
            a.change_pin(&f.authenticator, "736194", "483951").await,
            Err(Error::ReactivationRequired)
        );
    }
}
