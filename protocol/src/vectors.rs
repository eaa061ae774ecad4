//! Known-answer test vectors (`testvectors/protocol-v1.json`).
//!
//! The file fixes, for each signed message type, the field values, the exact
//! canonical bytes, and a signature by a published test key. The protocol crate,
//! the server and the core each check it in their own tests; a change to the
//! encoding that breaks compatibility fails all three.

use serde::{Deserialize, Serialize};

use crate::crypto::{PublicKey, Signature};
use crate::ids::{AuthenticatorId, Nonce16};
use crate::messages::{
    ActivationProof, Decision, DeviceRequestAuth, EnrolmentProof, HardwareReceiptBody, ReceiptBody,
    RequestEnvelopeBody, SettingsChange,
};

/// The whole vectors file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VectorFile {
    /// Encoding version the vectors are for.
    pub version: u32,
    /// PKCS#8 of the published test key (base64url). Test use only.
    pub test_key_pkcs8: String,
    /// Its public key (SEC1, base64url).
    pub test_public_key: PublicKey,
    /// The vectors.
    pub vectors: Vec<Vector>,
}

/// One vector.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Vector {
    /// A name for failure messages.
    pub name: String,
    /// The message and its field values.
    pub message: VectorMessage,
    /// The canonical bytes, hex.
    pub signing_bytes_hex: String,
    /// SHA-256 of the canonical bytes, hex.
    pub signing_bytes_sha256_hex: String,
    /// A signature over the canonical bytes by the test key.
    pub signature: Signature,
}

/// Field values of one message type.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum VectorMessage {
    RequestEnvelope(RequestEnvelopeBody),
    Decision(Decision),
    Receipt(ReceiptBody),
    DeviceRequest {
        authenticator_id: AuthenticatorId,
        method: String,
        path: String,
        #[serde(with = "crate::wire::b64::fixed32")]
        body_sha256: [u8; 32],
        timestamp_ms: u64,
        nonce: Nonce16,
    },
    Activation {
        user_id: String,
        device_public_key: PublicKey,
        pin_public_key: PublicKey,
    },
    DeviceEnrolment {
        user_id: String,
        device_public_key: PublicKey,
        pin_public_key: PublicKey,
    },
    SettingsChange {
        authenticator_id: AuthenticatorId,
        notify_every_use: bool,
        issued_at_ms: u64,
        nonce: Nonce16,
    },
    HardwareReceipt(HardwareReceiptBody),
}

impl VectorMessage {
    /// The canonical bytes of this message, by the protocol crate's encoder.
    pub fn signing_bytes(&self) -> Vec<u8> {
        match self {
            VectorMessage::RequestEnvelope(m) => m.signing_bytes(),
            VectorMessage::Decision(m) => m.signing_bytes(),
            VectorMessage::Receipt(m) => m.signing_bytes(),
            VectorMessage::DeviceRequest {
                authenticator_id,
                method,
                path,
                body_sha256,
                timestamp_ms,
                nonce,
            } => DeviceRequestAuth {
                authenticator_id: *authenticator_id,
                method,
                path,
                body_sha256: *body_sha256,
                timestamp_ms: *timestamp_ms,
                nonce: *nonce,
            }
            .signing_bytes(),
            VectorMessage::Activation {
                user_id,
                device_public_key,
                pin_public_key,
            } => ActivationProof {
                user_id,
                device_public_key,
                pin_public_key,
            }
            .signing_bytes(),
            VectorMessage::DeviceEnrolment {
                user_id,
                device_public_key,
                pin_public_key,
            } => EnrolmentProof {
                user_id,
                device_public_key,
                pin_public_key,
            }
            .signing_bytes(),
            VectorMessage::SettingsChange {
                authenticator_id,
                notify_every_use,
                issued_at_ms,
                nonce,
            } => SettingsChange {
                authenticator_id: *authenticator_id,
                notify_every_use: *notify_every_use,
                issued_at_ms: *issued_at_ms,
                nonce: *nonce,
            }
            .signing_bytes(),
            VectorMessage::HardwareReceipt(m) => m.signing_bytes(),
        }
    }
}

/// A failed vector check.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VectorError {
    /// The file does not parse.
    #[error("vector file does not parse: {0}")]
    Parse(String),
    /// The encoder produced other bytes.
    #[error("vector {0}: canonical bytes differ")]
    Bytes(String),
    /// The digest differs.
    #[error("vector {0}: digest differs")]
    Digest(String),
    /// The signature does not verify.
    #[error("vector {0}: signature does not verify")]
    Signature(String),
}

/// Checks every vector: encoding, digest, and signature (with `verify`, so each
/// side can plug in its own verification path).
pub fn check_file(
    file: &VectorFile,
    verify: impl Fn(&PublicKey, &[u8], &Signature) -> bool,
) -> Result<usize, VectorError> {
    for v in &file.vectors {
        let bytes = v.message.signing_bytes();
        if hex::encode(&bytes) != v.signing_bytes_hex {
            return Err(VectorError::Bytes(v.name.clone()));
        }
        if hex::encode(crate::sha256(&bytes)) != v.signing_bytes_sha256_hex {
            return Err(VectorError::Digest(v.name.clone()));
        }
        if !verify(&file.test_public_key, &bytes, &v.signature) {
            return Err(VectorError::Signature(v.name.clone()));
        }
    }
    Ok(file.vectors.len())
}
