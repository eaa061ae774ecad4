//! The platform keystore as a foreign trait: Android Keystore / StrongBox in
//! Kotlin, the Secure Enclave in Swift, a software one in tests.
//!
//! A keystore says how it protects the device key ([`KeyProtection`]). A
//! software keystore keeps the key in plain files, so anyone who copies the
//! app's files can approve in the person's name; release builds of this
//! library refuse to open with one unless the app opts in by name
//! ([`SOFTWARE_KEYSTORE_OPT_IN`]), so a test keystore cannot ship by
//! accident (docs/threat-model.md, "Stolen phones, copied keys, guessing").

use std::sync::Arc;

use crate::error::{EidError, KeyStoreError};

/// Where a keystore keeps the device key and the hardware secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum KeyProtection {
    /// Hardware-backed and non-exportable: the Android Keystore in the
    /// phone's trusted execution environment.
    Hardware,
    /// Android StrongBox: a separate secure chip.
    StrongBox,
    /// Apple's Secure Enclave.
    SecureEnclave,
    /// In software (plain files or memory): for tests only.
    Software,
}

/// The exact phrase `AppConfig::allow_software_keystore` must hold
/// for a release build to open with a [`KeyProtection::Software`] keystore.
/// Long and plain on purpose: nobody sets it without reading what it means.
pub const SOFTWARE_KEYSTORE_OPT_IN: &str = "tests only: device key in plain files";

/// Whether the authenticator may open with a keystore of `protection`: a
/// hardware one always; a software one in debug builds, or in a release build
/// (`release_build`) only when `opt_in` is exactly [`SOFTWARE_KEYSTORE_OPT_IN`].
pub(crate) fn admit_keystore(
    protection: KeyProtection,
    opt_in: Option<&str>,
    release_build: bool,
) -> Result<(), EidError> {
    match protection {
        KeyProtection::Hardware | KeyProtection::StrongBox | KeyProtection::SecureEnclave => Ok(()),
        KeyProtection::Software if !release_build => Ok(()),
        KeyProtection::Software if opt_in == Some(SOFTWARE_KEYSTORE_OPT_IN) => Ok(()),
        KeyProtection::Software => Err(EidError::SoftwareKeyStoreRefused),
    }
}

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
    /// Where this keystore keeps its keys. Answer truthfully: a software
    /// keystore must say [`KeyProtection::Software`], which release builds
    /// refuse without the opt-in ([`SOFTWARE_KEYSTORE_OPT_IN`]).
    fn protection(&self) -> KeyProtection;
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

#[cfg(test)]
mod tests {
    use super::*;

    const HARDWARE: [KeyProtection; 3] = [
        KeyProtection::Hardware,
        KeyProtection::StrongBox,
        KeyProtection::SecureEnclave,
    ];

    #[test]
    fn a_hardware_keystore_opens_in_every_build() {
        for protection in HARDWARE {
            for release_build in [false, true] {
                assert_eq!(admit_keystore(protection, None, release_build), Ok(()));
            }
        }
    }

    #[test]
    fn a_software_keystore_opens_in_a_debug_build_without_opting_in() {
        assert_eq!(admit_keystore(KeyProtection::Software, None, false), Ok(()));
    }

    #[test]
    fn a_software_keystore_is_refused_in_a_release_build_without_the_exact_opt_in() {
        for opt_in in [
            None,
            Some(""),
            Some("yes"),
            Some("TESTS ONLY: DEVICE KEY IN PLAIN FILES"),
            Some("tests only: device key in plain files "),
        ] {
            assert_eq!(
                admit_keystore(KeyProtection::Software, opt_in, true),
                Err(EidError::SoftwareKeyStoreRefused),
                "{opt_in:?}"
            );
        }
    }

    #[test]
    fn a_software_keystore_opens_in_a_release_build_when_the_app_opts_in_by_name() {
        assert_eq!(
            admit_keystore(
                KeyProtection::Software,
                Some(SOFTWARE_KEYSTORE_OPT_IN),
                true
            ),
            Ok(())
        );
    }
}
