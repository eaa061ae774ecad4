//! Shared protocol of the eID authenticator: wire types, the canonical signing
//! encoding of every signed message, and the reference-text rules.
//!
//! The core (phone) and the reference server both depend on this crate, so the
//! bytes one side signs are, by construction, the bytes the other side verifies.
//! `docs/protocol.md` specifies the encoding; `testvectors/protocol-v1.json` holds
//! known-answer vectors that both sides check.
#![forbid(unsafe_code)]

pub mod binding;
pub mod call_context;
pub mod confusables;
pub mod crash;
pub mod crypto;
pub mod encoding;
pub mod events;
pub mod ids;
pub mod journal;
pub mod messages;
pub mod text;
pub mod vectors;
pub mod wire;

pub use call_context::{CallContext, CallVerdict, Signal};
pub use crypto::{PublicKey, Signature, VerifyError};
pub use ids::{
    AuthenticatorId, ChangeId, IdParseError, IdentityId, Nonce16, RequestId, ServiceProviderId,
};
pub use messages::{
    ActivationProof, Decision, DeviceRequestAuth, EnrolmentProof, Outcome, ReceiptBody,
    RequestEnvelopeBody, RequestKind,
};

/// The eID's own, built-in service provider: it asks for self-service logins
/// and new-device approvals. No API key reaches it (its stored key hash is
/// all zeros, which no key hashes to), so no relying party can use its name.
pub const SELF_SERVICE_PROVIDER_ID: ServiceProviderId = ServiceProviderId([0u8; 16]);
/// The built-in provider's registered name.
pub const SELF_SERVICE_PROVIDER_NAME: &str = "eID Selvbetjening";

/// Request lifetime fixed by the design: a request expires 5 minutes after creation.
pub const REQUEST_LIFETIME_MS: u64 = 5 * 60 * 1000;

/// Largest clock skew the server accepts on a signed device request.
pub const MAX_DEVICE_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}
