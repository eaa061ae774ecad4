//! P-256 ECDSA keys and signatures as used on the wire, on `ring`.
//!
//! Public keys are SEC1 uncompressed points (65 bytes, `0x04 || X || Y`), which is
//! what Android Keystore, the iOS Secure Enclave and `ring` all export. Signatures
//! are ASN.1 DER (X9.62) over SHA-256 of the canonical message, which is what the
//! hardware keystores produce natively, so the shells never re-encode.

use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self, EcdsaKeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Length of a SEC1 uncompressed P-256 point.
pub const PUBLIC_KEY_LEN: usize = 65;
/// Longest DER-encoded P-256 ECDSA signature.
pub const MAX_SIGNATURE_LEN: usize = 72;

/// Why a signature or key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The public key is not a valid P-256 point.
    #[error("the public key is not a valid P-256 point")]
    BadPublicKey,
    /// The signature does not verify for this message and key.
    #[error("the signature does not match the message")]
    BadSignature,
}

/// A P-256 public key (SEC1 uncompressed, validated on construction).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; PUBLIC_KEY_LEN]);

impl PublicKey {
    /// Parses a SEC1 uncompressed P-256 point: checks its form only. `ring` refuses
    /// an invalid point at verification; [`PublicKey::validate`] checks it early.
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, VerifyError> {
        let arr: [u8; PUBLIC_KEY_LEN] = bytes.try_into().map_err(|_| VerifyError::BadPublicKey)?;
        if arr[0] != 0x04 {
            return Err(VerifyError::BadPublicKey);
        }
        Ok(Self(arr))
    }

    /// Checks that the point is on the curve (used once, when a key is registered).
    pub fn validate(&self) -> Result<(), VerifyError> {
        // ring's key agreement parses and validates the peer point fully.
        let peer = ring::agreement::UnparsedPublicKey::new(&ring::agreement::ECDH_P256, &self.0);
        let rng = SystemRandom::new();
        let eph = ring::agreement::EphemeralPrivateKey::generate(&ring::agreement::ECDH_P256, &rng)
            .map_err(|_| VerifyError::BadPublicKey)?;
        ring::agreement::agree_ephemeral(eph, &peer, |_| ()).map_err(|_| VerifyError::BadPublicKey)
    }

    /// The SEC1 uncompressed bytes.
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.0
    }

    /// Verifies a DER ECDSA-P256-SHA256 signature over `message`.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), VerifyError> {
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, &self.0)
            .verify(message, &signature.0)
            .map_err(|_| VerifyError::BadSignature)
    }

    /// Short fingerprint for logs and UI: first 8 bytes of SHA-256, hex.
    pub fn fingerprint(&self) -> String {
        hex::encode(&crate::sha256(&self.0)[..8])
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

impl Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::wire::b64::serialize_bytes(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = crate::wire::b64::deserialize_bytes(d)?;
        Self::from_sec1(&bytes).map_err(serde::de::Error::custom)
    }
}

/// A DER-encoded ECDSA signature (at most 72 bytes; not validated until verified).
#[derive(Clone, PartialEq, Eq)]
pub struct Signature(pub Vec<u8>);

impl Signature {
    /// Wraps DER bytes, refusing anything longer than a P-256 signature can be.
    pub fn from_der(bytes: &[u8]) -> Result<Self, VerifyError> {
        Self::from_der_vec(bytes.to_vec())
    }

    /// [`Signature::from_der`] for bytes already in a `Vec` (decoded from
    /// base64), kept without a copy; the same check.
    pub(crate) fn from_der_vec(bytes: Vec<u8>) -> Result<Self, VerifyError> {
        if bytes.is_empty() || bytes.len() > MAX_SIGNATURE_LEN {
            return Err(VerifyError::BadSignature);
        }
        Ok(Self(bytes))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({} bytes)", self.0.len())
    }
}

impl Serialize for Signature {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::wire::b64::serialize_bytes(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = crate::wire::b64::deserialize_bytes(d)?;
        Self::from_der_vec(bytes).map_err(serde::de::Error::custom)
    }
}

/// A software P-256 signing key held in memory (server key, tests, load
/// generator, the CLI's software keystore). The PKCS#8 document is zeroized on drop.
pub struct SoftwareSigningKey {
    pair: EcdsaKeyPair,
    pkcs8: Zeroizing<Vec<u8>>,
    public: PublicKey,
    rng: SystemRandom,
}

impl SoftwareSigningKey {
    /// Generates a fresh key.
    pub fn generate() -> Self {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .expect("system random generator failed");
        Self::from_pkcs8(doc.as_ref()).expect("ring generated an invalid key")
    }

    /// Loads a PKCS#8 v1/v2 document.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, VerifyError> {
        let rng = SystemRandom::new();
        let pair =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8, &rng)
                .map_err(|_| VerifyError::BadPublicKey)?;
        let public = PublicKey::from_sec1(pair.public_key().as_ref())?;
        Ok(Self {
            pair,
            pkcs8: Zeroizing::new(pkcs8.to_vec()),
            public,
            rng,
        })
    }

    /// The PKCS#8 document, for storage in a protected file. Handle with care.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Signs `message` (ECDSA P-256 SHA-256, DER).
    pub fn sign(&self, message: &[u8]) -> Signature {
        let sig = self
            .pair
            .sign(&self.rng, message)
            .expect("ECDSA signing failed");
        Signature(sig.as_ref().to_vec())
    }
}

impl fmt::Debug for SoftwareSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SoftwareSigningKey({:?})", self.public)
    }
}

/// `N` bytes from the system's secure random generator.
pub fn random_array<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .expect("system random generator failed");
    out
}

/// Constant-time equality for secrets of equal or different length.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signature read from JSON keeps its decoded bytes and the length
    /// check of `from_der`: empty and longer than 72 bytes are refused, and
    /// it is written back as the same text.
    #[test]
    fn signatures_read_from_json_keep_the_length_check() {
        for len in [0usize, 1, 70, 71, 72, 73, 100] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let json = format!("\"{}\"", crate::wire::b64::encode(&bytes));
            let read = serde_json::from_str::<Signature>(&json);
            assert_eq!(read.is_ok(), Signature::from_der(&bytes).is_ok(), "{len}");
            assert_eq!(
                read.is_ok(),
                (1..=MAX_SIGNATURE_LEN).contains(&len),
                "{len}"
            );
            if let Ok(sig) = read {
                assert_eq!(sig.0, bytes);
                assert_eq!(serde_json::to_string(&sig).unwrap(), json);
            }
        }
    }

    #[test]
    fn sign_verify_and_tamper() {
        let key = SoftwareSigningKey::generate();
        let sig = key.sign(b"hello");
        assert_eq!(key.public_key().verify(b"hello", &sig), Ok(()));
        assert_eq!(
            key.public_key().verify(b"hellO", &sig),
            Err(VerifyError::BadSignature)
        );
        let reloaded = SoftwareSigningKey::from_pkcs8(key.pkcs8()).unwrap();
        assert_eq!(reloaded.public_key(), key.public_key());
    }

    #[test]
    fn public_key_validation() {
        let key = SoftwareSigningKey::generate();
        assert_eq!(
            PublicKey::from_sec1(key.public_key().as_bytes())
                .unwrap()
                .validate(),
            Ok(())
        );
        let mut off_curve = *key.public_key().as_bytes();
        off_curve[64] ^= 1;
        assert_eq!(
            PublicKey::from_sec1(&off_curve).unwrap().validate(),
            Err(VerifyError::BadPublicKey)
        );
        assert_eq!(
            PublicKey::from_sec1(&[4u8; 10]),
            Err(VerifyError::BadPublicKey)
        );
        let mut compressed_tag = *key.public_key().as_bytes();
        compressed_tag[0] = 0x02;
        assert_eq!(
            PublicKey::from_sec1(&compressed_tag),
            Err(VerifyError::BadPublicKey)
        );
    }
}
