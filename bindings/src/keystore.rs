//! The platform keystore as a foreign trait: Android Keystore / StrongBox in
//! Kotlin, the Secure Enclave in Swift, a software one in tests.

use std::sync::Arc;

use crate::error::KeyStoreError;

/// What the app's platform keystore must do. Private keys never cross this
/// boundary: only public keys, signatures and HMAC outputs do. Called from
/// background threads; implementations must be thread-safe.
#[uniffi::export(with_foreign)]
pub trait KeyStore: Send + Sync {
    /// Creates a P-256 signing key under `alias` (replacing any key there) and
    /// returns its public key as a SEC1 uncompressed point (65 bytes).
    fn create_key(&self, alias: String) -> Result<Vec<u8>, KeyStoreError>;
    /// ECDSA P-256 with SHA-256 over `message` (the keystore hashes), DER.
    fn sign(&self, alias: String, message: Vec<u8>) -> Result<Vec<u8>, KeyStoreError>;
    /// The public key under `alias`, SEC1 uncompressed (65 bytes).
    fn public_key(&self, alias: String) -> Result<Vec<u8>, KeyStoreError>;
    /// Deletes the key under `alias`; deleting a missing key succeeds.
    fn delete_key(&self, alias: String) -> Result<(), KeyStoreError>;
    /// HMAC-SHA256 of `input` under a non-exportable secret held under `alias`,
    /// created on first use: 32 bytes. It is mixed into the PIN-key wrapping,
    /// so a copied database is useless without this device's hardware.
    fn hardware_secret(&self, alias: String, input: Vec<u8>) -> Result<Vec<u8>, KeyStoreError>;
}

/// Adapts the foreign keystore to the core's trait.
pub(crate) struct ForeignKeyStore(pub(crate) Arc<dyn KeyStore>);

impl eid_core::KeyStore for ForeignKeyStore {
    fn create_key(&self, alias: &str) -> Result<Vec<u8>, eid_core::KeyStoreError> {
        Ok(self.0.create_key(alias.to_owned())?)
    }

    fn sign(&self, alias: &str, message: &[u8]) -> Result<Vec<u8>, eid_core::KeyStoreError> {
        Ok(self.0.sign(alias.to_owned(), message.to_vec())?)
    }

    fn public_key(&self, alias: &str) -> Result<Vec<u8>, eid_core::KeyStoreError> {
        Ok(self.0.public_key(alias.to_owned())?)
    }

    fn delete_key(&self, alias: &str) -> Result<(), eid_core::KeyStoreError> {
        Ok(self.0.delete_key(alias.to_owned())?)
    }

    fn hardware_secret(
        &self,
        alias: &str,
        input: &[u8],
    ) -> Result<Vec<u8>, eid_core::KeyStoreError> {
        let out = self.0.hardware_secret(alias.to_owned(), input.to_vec())?;
        if out.len() != 32 {
            return Err(eid_core::KeyStoreError::Failure(
                "hardware_secret must return 32 bytes".into(),
            ));
        }
        Ok(out)
    }
}
