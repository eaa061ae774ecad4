//! Activation: a new authenticator from a user ID and an activation code. The
//! device key (keystore) and the PIN key (sealed under the PIN) are made and
//! stored with their signed proof before anything is sent, so an activation
//! whose answer is lost can be resumed (or discarded) after a restart.

use eid_protocol::crypto::{SoftwareSigningKey, random_array};
use eid_protocol::wire::{self, ActivateRequest, ActivateResponse};
use eid_protocol::{ActivationProof, PublicKey, Signature};
use zeroize::Zeroizing;

use crate::authenticators::AuthenticatorInfo;
use crate::error::InternalError;
use crate::keystore::KeyStoreError;
use crate::store::{AuthenticatorRow, AuthenticatorState, PendingActivationRow};
use crate::{App, Error, Inner, Result, blocking, crash, lock, pin};

/// An activation that was interrupted before the server's answer arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingActivation {
    /// The user ID it was started with.
    pub user_id: String,
    /// When it was started (wall clock, Unix ms).
    pub created_at_ms: u64,
}

fn new_alias(kind: &str) -> String {
    format!("eid.{}.{kind}", hex::encode(random_array::<12>()))
}

impl App {
    /// Activates a new authenticator: checks the PIN policy first, then makes the
    /// device key (keystore) and the PIN key (sealed under `pin`), and registers
    /// both with the server. If the answer is lost the activation is kept and
    /// can be resumed with [`App::resume_activation`].
    pub async fn activate(
        &self,
        user_id: &str,
        activation_code: &str,
        pin: &str,
    ) -> Result<AuthenticatorInfo> {
        self.inner.config.pin_policy.check(pin)?;
        let inner = self.inner.clone();
        let user_id = user_id.to_owned();
        let pin = Zeroizing::new(pin.to_owned());
        let pending = blocking(move || inner.prepare_activation(&user_id, &pin)).await?;
        self.send_activation(pending, activation_code).await
    }

    /// The interrupted activation, if any.
    pub fn pending_activation(&self) -> Result<Option<PendingActivation>> {
        Ok(lock(&self.inner.store)?
            .pending_activation()?
            .map(|p| PendingActivation {
                user_id: p.user_id,
                created_at_ms: p.created_at_ms,
            }))
    }

    /// Re-sends an interrupted activation (same keys and proofs; the PIN is not needed).
    pub async fn resume_activation(&self, activation_code: &str) -> Result<AuthenticatorInfo> {
        let pending = lock(&self.inner.store)?
            .pending_activation()?
            .ok_or(Error::NoPendingActivation)?;
        self.send_activation(pending, activation_code).await
    }

    /// Discards an interrupted activation and deletes its keys.
    pub fn discard_activation(&self) -> Result<()> {
        self.inner.discard_activation()
    }

    async fn send_activation(
        &self,
        p: PendingActivationRow,
        activation_code: &str,
    ) -> Result<AuthenticatorInfo> {
        let req = ActivateRequest {
            user_id: p.user_id.clone(),
            activation_code: activation_code.to_owned(),
            device_public_key: p.device_public_key.clone(),
            pin_public_key: p.pin_public_key.clone(),
            device_signature: Signature::from_der(&p.device_signature)
                .map_err(|_| InternalError::Corrupt("activation"))?,
            pin_signature: Signature::from_der(&p.pin_signature)
                .map_err(|_| InternalError::Corrupt("activation"))?,
        };
        let body = Zeroizing::new(serde_json::to_vec(&req)?);
        let result: Result<ActivateResponse> = self
            .inner
            .client
            .post(wire::PATH_ACTIVATE, body.to_vec(), &[])
            .await;
        let resp = match result {
            Ok(r) => r,
            Err(e @ Error::Rejected { .. }) => {
                self.inner.discard_activation()?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        crash::point("core.activation.answered");
        if resp.server_public_key.validate().is_err() {
            return Err(Error::InvalidResponse("invalid server key".into()));
        }
        let mut store = lock(&self.inner.store)?;
        if store.authenticator(&resp.authenticator_id).is_ok() {
            return Err(Error::InvalidResponse(
                "authenticator already on this phone".into(),
            ));
        }
        let row = AuthenticatorRow {
            authenticator_id: resp.authenticator_id,
            identity_id: resp.identity_id,
            user_id: p.user_id.clone(),
            server_public_key: resp.server_public_key,
            device_key_alias: p.device_key_alias.clone(),
            pin_wrap_alias: p.pin_wrap_alias.clone(),
            pin_public_key: p.pin_public_key.clone(),
            decision_counter: 0,
            state: AuthenticatorState::Active,
            created_at_ms: self.inner.clock.wall_ms(),
        };
        store.insert_authenticator(&row, &p.wrapped)?;
        crash::point("core.activation.account_stored");
        tracing::info!("account activated");
        Ok(AuthenticatorInfo::from(&row))
    }
}

impl Inner {
    fn prepare_activation(&self, user_id: &str, pin: &str) -> Result<PendingActivationRow> {
        self.discard_activation()?;
        let row = self.prepare_keys(user_id, pin, |p| p.signing_bytes())?;
        lock(&self.store)?.put_pending_activation(&row)?;
        crash::point("core.activation.pending_stored");
        Ok(row)
    }

    /// Makes a device key (keystore) and a PIN key sealed under `pin`, and
    /// signs `proof` (activation or enrolment) with both.
    pub(crate) fn prepare_keys(
        &self,
        user_id: &str,
        pin: &str,
        proof: impl FnOnce(&ActivationProof<'_>) -> Vec<u8>,
    ) -> Result<PendingActivationRow> {
        let device_key_alias = new_alias("device");
        let pin_wrap_alias = new_alias("pinwrap");
        let device_public = PublicKey::from_sec1(&self.keystore.create_key(&device_key_alias)?)
            .map_err(|_| KeyStoreError::Failure("bad public key".into()))?;
        let pin_key = SoftwareSigningKey::generate();
        let iterations = self.config.kdf.iterations();
        let wrapped = pin::wrap_pin_key(
            &pin_key,
            pin,
            iterations,
            self.keystore.as_ref(),
            &pin_wrap_alias,
        )?;
        let proof = proof(&ActivationProof {
            user_id,
            device_public_key: &device_public,
            pin_public_key: pin_key.public_key(),
        });
        let device_signature = self.keystore.sign(&device_key_alias, &proof)?;
        let row = PendingActivationRow {
            user_id: user_id.to_owned(),
            device_key_alias,
            pin_wrap_alias,
            device_public_key: device_public,
            pin_public_key: pin_key.public_key().clone(),
            wrapped,
            device_signature,
            pin_signature: pin_key.sign(&proof).0,
            created_at_ms: self.clock.wall_ms(),
        };
        Ok(row)
    }

    fn discard_activation(&self) -> Result<()> {
        let store = lock(&self.store)?;
        if let Some(p) = store.pending_activation()? {
            store.clear_pending_activation()?;
            self.delete_keys(&p.device_key_alias, &p.pin_wrap_alias);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{PIN, fixture};
    use crate::{Error, PinPolicyError};

    #[tokio::test]
    async fn activation_checks_pin_first_and_keeps_interrupted_activation() {
        let f = fixture();
        let a = f.open();
        assert_eq!(
            a.activate("Bent#2024", "ABCD-EFGH", "123456").await.err(),
            Some(Error::PinPolicy(PinPolicyError::Sequence))
        );
        assert_eq!(a.pending_activation().unwrap(), None);
        assert!(matches!(
            a.activate("Bent#2024", "ABCD-EFGH", PIN).await,
            Err(Error::Network(_))
        ));
        let p = a.pending_activation().unwrap().unwrap();
        assert_eq!(p.user_id, "Bent#2024");
        assert!(matches!(
            a.resume_activation("ABCD-EFGH").await,
            Err(Error::Network(_))
        ));
        a.discard_activation().unwrap();
        assert_eq!(a.pending_activation().unwrap(), None);
        assert_eq!(
            a.resume_activation("x").await.err(),
            Some(Error::NoPendingActivation)
        );
    }
}
