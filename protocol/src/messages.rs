//! The signed messages and their canonical encodings (version 1, and
//! version 2 of the decision and the receipt, which add the call context).
//!
//! Each `signing_bytes` method is the single definition of what is signed; the
//! field order and domain tags below are normative (see `docs/protocol.md`).
//! A decision or receipt without a call context is encoded exactly as in
//! version 1, so older phones' decisions and their receipts keep verifying.

use serde::{Deserialize, Serialize};

use crate::call_context::CallContext;
use crate::crypto::PublicKey;
use crate::encoding::CanonicalWriter;
use crate::ids::{AuthenticatorId, IdentityId, Nonce16, RequestId, ServiceProviderId};

/// Domain tag of the server's request envelope.
pub const DOMAIN_REQUEST_ENVELOPE: &str = "eid-authenticator/v1/request-envelope";
/// Domain tag of a device-signed HTTP request (pull and other device calls).
pub const DOMAIN_DEVICE_REQUEST: &str = "eid-authenticator/v1/device-request";
/// Domain tag of a decision, signed by both the device key and the PIN key.
pub const DOMAIN_DECISION: &str = "eid-authenticator/v1/decision";
/// Domain tag of a version-2 decision: the version-1 fields, then the call
/// context the phone saw.
pub const DOMAIN_DECISION_V2: &str = "eid-authenticator/v2/decision";
/// Domain tag of the server's receipt for a decision.
pub const DOMAIN_RECEIPT: &str = "eid-authenticator/v1/receipt";
/// Domain tag of a version-2 receipt (for a version-2 decision): the
/// version-1 fields, then the decision's call context.
pub const DOMAIN_RECEIPT_V2: &str = "eid-authenticator/v2/receipt";
/// Domain tag of the proof of possession sent at activation.
pub const DOMAIN_ACTIVATION: &str = "eid-authenticator/v1/activation";
/// Domain tag of the proof of possession sent when a new device asks to be
/// added from an existing one (distinct from activation, so neither proof can
/// stand in for the other).
pub const DOMAIN_DEVICE_ENROLMENT: &str = "eid-authenticator/v1/device-enrolment";
/// Domain tag of a settings change the PIN key signs (turning "notify me on
/// every use" off).
pub const DOMAIN_SETTINGS_CHANGE: &str = "eid-authenticator/v1/settings-change";
/// Domain tag of a hardware authenticator's deactivation from the app.
pub const DOMAIN_HARDWARE_DEACTIVATION: &str = "eid-authenticator/v1/hardware-deactivation";
/// Domain tag of the server's receipt for a login completed on the hosted
/// login page with a hardware authenticator (a code device or a chip).
pub const DOMAIN_HARDWARE_RECEIPT: &str = "eid-authenticator/v1/hardware-receipt";

/// What a request asks the person to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RequestKind {
    /// Log in to a service provider.
    Login,
    /// Sign a document or transaction at a service provider.
    Signature,
    /// Log in to the eID's own self-service (change contact data or user ID).
    /// Only the built-in provider [`crate::SELF_SERVICE_PROVIDER_ID`] may ask.
    SelfService,
    /// Approve adding a new device to the identity: the strongest warning.
    /// Only the built-in provider [`crate::SELF_SERVICE_PROVIDER_ID`] may ask.
    NewDevice,
    /// Approve activating a code device (code display or audio code reader)
    /// on the identity, replacing any active one: the strongest warning.
    /// Only the built-in provider [`crate::SELF_SERVICE_PROVIDER_ID`] may ask.
    CodeDevice,
}

impl RequestKind {
    /// The byte used in the canonical encoding.
    pub fn code(self) -> u8 {
        match self {
            RequestKind::Login => 1,
            RequestKind::Signature => 2,
            RequestKind::SelfService => 3,
            RequestKind::NewDevice => 4,
            RequestKind::CodeDevice => 5,
        }
    }

    /// Whether only the eID itself (the built-in provider) may ask for this
    /// kind; relying parties may ask only for logins and signatures.
    pub fn is_first_party(self) -> bool {
        matches!(
            self,
            RequestKind::SelfService | RequestKind::NewDevice | RequestKind::CodeDevice
        )
    }

    /// Parses an encoding byte.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(RequestKind::Login),
            2 => Some(RequestKind::Signature),
            3 => Some(RequestKind::SelfService),
            4 => Some(RequestKind::NewDevice),
            5 => Some(RequestKind::CodeDevice),
            _ => None,
        }
    }
}

/// The person's decision on a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// Approved after PIN and swipe.
    Approve,
    /// Refused.
    Deny,
    /// Refused and reported as fraud ("this wasn't me").
    ReportFraud,
}

impl Outcome {
    /// The byte used in the canonical encoding.
    pub fn code(self) -> u8 {
        match self {
            Outcome::Approve => 1,
            Outcome::Deny => 2,
            Outcome::ReportFraud => 3,
        }
    }

    /// Parses an encoding byte.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Outcome::Approve),
            2 => Some(Outcome::Deny),
            3 => Some(Outcome::ReportFraud),
            _ => None,
        }
    }
}

/// The content of a request as the server signs it and the phone shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RequestEnvelopeBody {
    /// The request.
    pub request_id: RequestId,
    /// The identity the request is for.
    pub identity_id: IdentityId,
    /// Login or signature.
    pub kind: RequestKind,
    /// The service provider that asked.
    pub service_provider_id: ServiceProviderId,
    /// The service provider's registered name (NFC, checked).
    pub service_provider_name: String,
    /// The reference text (NFC, checked); its exact bytes are signed.
    pub reference_text: String,
    /// Creation time by the server's clock (Unix milliseconds).
    pub created_at_ms: u64,
    /// Expiry by the server's clock (Unix milliseconds): created + 300 000.
    pub expires_at_ms: u64,
    /// Random server nonce, echoed in the decision.
    #[serde(with = "crate::wire::b64::fixed32")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub server_nonce: [u8; 32],
    /// Whether the decision must carry the code shown on the login screen.
    pub binding_required: bool,
}

impl RequestEnvelopeBody {
    /// The canonical bytes the server signs.
    pub fn signing_bytes(&self) -> Vec<u8> {
        CanonicalWriter::new(DOMAIN_REQUEST_ENVELOPE)
            .fixed(self.request_id.as_bytes())
            .fixed(self.identity_id.as_bytes())
            .u8(self.kind.code())
            .fixed(self.service_provider_id.as_bytes())
            .str(&self.service_provider_name)
            .str(&self.reference_text)
            .u64(self.created_at_ms)
            .u64(self.expires_at_ms)
            .fixed(&self.server_nonce)
            .bool(self.binding_required)
            .finish()
    }

    /// SHA-256 of the exact reference-text bytes.
    pub fn reference_text_sha256(&self) -> [u8; 32] {
        crate::sha256(self.reference_text.as_bytes())
    }
}

/// The signed header of a device request (pull and other device calls): one per
/// authenticator named in the call, each signed by that authenticator's device key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRequestAuth<'a> {
    /// The authenticator whose device key signs.
    pub authenticator_id: AuthenticatorId,
    /// HTTP method, upper case.
    pub method: &'a str,
    /// HTTP path (no query, no host).
    pub path: &'a str,
    /// SHA-256 of the exact body bytes.
    pub body_sha256: [u8; 32],
    /// The phone's clock (Unix milliseconds), checked against ±5 minutes.
    pub timestamp_ms: u64,
    /// Single-use nonce.
    pub nonce: Nonce16,
}

impl DeviceRequestAuth<'_> {
    /// The canonical bytes the device key signs.
    pub fn signing_bytes(&self) -> Vec<u8> {
        CanonicalWriter::new(DOMAIN_DEVICE_REQUEST)
            .fixed(self.authenticator_id.as_bytes())
            .str(self.method)
            .str(self.path)
            .fixed(&self.body_sha256)
            .u64(self.timestamp_ms)
            .fixed(self.nonce.as_bytes())
            .finish()
    }
}

/// A decision on one request: what the device key and the PIN key both sign.
/// It commits to exactly what was shown (docs/architecture.md §4,
/// decision 3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Decision {
    /// The request decided.
    pub request_id: RequestId,
    /// The identity of the account that decides.
    pub identity_id: IdentityId,
    /// The deciding authenticator.
    pub authenticator_id: AuthenticatorId,
    /// Approve, deny or report fraud.
    pub outcome: Outcome,
    /// The request's kind as shown.
    pub kind: RequestKind,
    /// SHA-256 of the exact reference-text bytes shown.
    #[serde(with = "crate::wire::b64::fixed32")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub reference_text_sha256: [u8; 32],
    /// The service provider shown.
    pub service_provider_id: ServiceProviderId,
    /// The service provider's name shown.
    pub service_provider_name: String,
    /// The server deadline shown (Unix milliseconds).
    pub expires_at_ms: u64,
    /// The server nonce from the envelope.
    #[serde(with = "crate::wire::b64::fixed32")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub server_nonce: [u8; 32],
    /// The channel-binding code the person entered or scanned, if any.
    #[serde(default)]
    pub binding_code: Option<String>,
    /// Per-authenticator counter, strictly increasing across its decisions.
    pub counter: u64,
    /// What the phone saw about calls and screen sharing when the person
    /// decided (version 2). Absent from an older phone's version-1
    /// decision, which is read as all unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_context: Option<CallContext>,
}

impl Decision {
    /// The canonical bytes signed by the device key and by the PIN key:
    /// version 1 without a call context, version 2 (its own domain, the
    /// context appended) with one.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let domain = match self.call_context {
            None => DOMAIN_DECISION,
            Some(_) => DOMAIN_DECISION_V2,
        };
        let mut w = CanonicalWriter::new(domain);
        w.fixed(self.request_id.as_bytes())
            .fixed(self.identity_id.as_bytes())
            .fixed(self.authenticator_id.as_bytes())
            .u8(self.outcome.code())
            .u8(self.kind.code())
            .fixed(&self.reference_text_sha256)
            .fixed(self.service_provider_id.as_bytes())
            .str(&self.service_provider_name)
            .u64(self.expires_at_ms)
            .fixed(&self.server_nonce)
            .opt_str(self.binding_code.as_deref())
            .u64(self.counter);
        if let Some(context) = &self.call_context {
            context.write(&mut w);
        }
        w.finish()
    }

    /// The call context as the server and the service provider read it: an
    /// older phone's decision is all unknown.
    pub fn call_context_or_unknown(&self) -> CallContext {
        self.call_context.unwrap_or(CallContext::UNKNOWN)
    }

    /// The same decision carrying `context` (version 2).
    #[must_use]
    pub fn with_call_context(mut self, context: CallContext) -> Self {
        self.call_context = Some(context);
        self
    }

    /// Builds the decision for an envelope (the fields the person saw).
    pub fn for_envelope(
        envelope: &RequestEnvelopeBody,
        authenticator_id: AuthenticatorId,
        outcome: Outcome,
        binding_code: Option<String>,
        counter: u64,
    ) -> Self {
        Self {
            request_id: envelope.request_id,
            identity_id: envelope.identity_id,
            authenticator_id,
            outcome,
            kind: envelope.kind,
            reference_text_sha256: envelope.reference_text_sha256(),
            service_provider_id: envelope.service_provider_id,
            service_provider_name: envelope.service_provider_name.clone(),
            expires_at_ms: envelope.expires_at_ms,
            server_nonce: envelope.server_nonce,
            binding_code,
            counter,
            call_context: None,
        }
    }
}

/// The server's receipt for an accepted decision. Relying parties and the phone
/// verify it with the server's public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReceiptBody {
    /// The request decided.
    pub request_id: RequestId,
    /// The identity that decided.
    pub identity_id: IdentityId,
    /// The authenticator that decided.
    pub authenticator_id: AuthenticatorId,
    /// The outcome.
    pub outcome: Outcome,
    /// The request's kind.
    pub kind: RequestKind,
    /// SHA-256 of the reference text that was approved.
    #[serde(with = "crate::wire::b64::fixed32")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub reference_text_sha256: [u8; 32],
    /// The service provider.
    pub service_provider_id: ServiceProviderId,
    /// When the server accepted the decision (Unix milliseconds).
    pub decided_at_ms: u64,
    /// SHA-256 of the decision's canonical bytes.
    #[serde(with = "crate::wire::b64::fixed32")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub decision_sha256: [u8; 32],
    /// The decision's counter.
    pub counter: u64,
    /// The decision's call context, copied from a version-2 decision; absent
    /// for a version-1 decision. The server signs it, so a service provider
    /// can rely on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_context: Option<CallContext>,
}

impl ReceiptBody {
    /// The canonical bytes the server signs: version 1 without a call
    /// context, version 2 (its own domain, the context appended) with one.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let domain = match self.call_context {
            None => DOMAIN_RECEIPT,
            Some(_) => DOMAIN_RECEIPT_V2,
        };
        let mut w = CanonicalWriter::new(domain);
        w.fixed(self.request_id.as_bytes())
            .fixed(self.identity_id.as_bytes())
            .fixed(self.authenticator_id.as_bytes())
            .u8(self.outcome.code())
            .u8(self.kind.code())
            .fixed(&self.reference_text_sha256)
            .fixed(self.service_provider_id.as_bytes())
            .u64(self.decided_at_ms)
            .fixed(&self.decision_sha256)
            .u64(self.counter);
        if let Some(context) = &self.call_context {
            context.write(&mut w);
        }
        w.finish()
    }
}

/// Proof that the activating device holds both private keys it registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationProof<'a> {
    /// The user ID typed at activation (exact bytes).
    pub user_id: &'a str,
    /// The device key being registered.
    pub device_public_key: &'a PublicKey,
    /// The PIN key being registered.
    pub pin_public_key: &'a PublicKey,
}

impl ActivationProof<'_> {
    /// The canonical bytes both new keys sign.
    pub fn signing_bytes(&self) -> Vec<u8> {
        CanonicalWriter::new(DOMAIN_ACTIVATION)
            .str(self.user_id)
            .fixed(self.device_public_key.as_bytes())
            .fixed(self.pin_public_key.as_bytes())
            .finish()
    }
}

/// The server's receipt for a login completed on the hosted login page with
/// a hardware authenticator (a code device or a chip) instead of the app.
/// It names the login, the identity, the method (`code_display`,
/// `code_reader`, `chip`, `app_chip`) and the hardware authenticator by the
/// SHA-256 of its serial number or credential id, never the raw id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HardwareReceiptBody {
    /// The OpenID Connect login (16 bytes, hex).
    #[serde(with = "hex_16")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub login_id: [u8; 16],
    /// The identity that logged in.
    pub identity_id: IdentityId,
    /// The login method, as its name (docs/login-page.md).
    pub method: String,
    /// SHA-256 of the hardware authenticator's serial number or credential id.
    #[serde(with = "crate::wire::b64::fixed32")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub authenticator_sha256: [u8; 32],
    /// The service provider of the login's client.
    pub service_provider_id: ServiceProviderId,
    /// When the server completed the login (Unix milliseconds).
    pub completed_at_ms: u64,
}

impl HardwareReceiptBody {
    /// The canonical bytes the server signs.
    pub fn signing_bytes(&self) -> Vec<u8> {
        CanonicalWriter::new(DOMAIN_HARDWARE_RECEIPT)
            .fixed(&self.login_id)
            .fixed(self.identity_id.as_bytes())
            .str(&self.method)
            .fixed(&self.authenticator_sha256)
            .fixed(self.service_provider_id.as_bytes())
            .u64(self.completed_at_ms)
            .finish()
    }
}

mod hex_16 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8; 16], s: S) -> Result<S::Ok, S::Error> {
        crate::ids::serialize_hex16(v, s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 16], D::Error> {
        let text = String::deserialize(d)?;
        let mut out = [0u8; 16];
        hex::decode_to_slice(&text, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

/// Proof that a new device, asking to be added to an identity from an existing
/// device, holds both private keys it registers. Same fields as
/// [`ActivationProof`], under its own domain tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrolmentProof<'a> {
    /// The user ID typed on the new device (exact bytes).
    pub user_id: &'a str,
    /// The new device key.
    pub device_public_key: &'a PublicKey,
    /// The new PIN key.
    pub pin_public_key: &'a PublicKey,
}

impl EnrolmentProof<'_> {
    /// The canonical bytes both new keys sign.
    pub fn signing_bytes(&self) -> Vec<u8> {
        CanonicalWriter::new(DOMAIN_DEVICE_ENROLMENT)
            .str(self.user_id)
            .fixed(self.device_public_key.as_bytes())
            .fixed(self.pin_public_key.as_bytes())
            .finish()
    }
}

/// A settings change the person confirmed with the PIN: what the PIN key
/// signs to turn "notify me on every use" off, so the device key alone (an
/// unlocked phone in a thief's hand) cannot silence the notifications. The
/// nonce is single-use and the time is checked against the server clock
/// like a device request's, so a proof cannot be replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsChange {
    /// The authenticator whose PIN key signs.
    pub authenticator_id: AuthenticatorId,
    /// The setting asked for.
    pub notify_every_use: bool,
    /// The phone's clock (Unix milliseconds, corrected by the server time it
    /// learnt), checked against ±5 minutes.
    pub issued_at_ms: u64,
    /// Single-use nonce.
    pub nonce: Nonce16,
}

impl SettingsChange {
    /// The canonical bytes the PIN key signs.
    pub fn signing_bytes(&self) -> Vec<u8> {
        CanonicalWriter::new(DOMAIN_SETTINGS_CHANGE)
            .fixed(self.authenticator_id.as_bytes())
            .u8(u8::from(self.notify_every_use))
            .u64(self.issued_at_ms)
            .fixed(self.nonce.as_bytes())
            .finish()
    }
}

/// What the PIN key signs to deactivate a hardware authenticator (a code
/// device or a chip) from the app: the PIN, like an approval, so a thief
/// with an unlocked phone cannot remove the person's chip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HardwareDeactivation {
    /// The authenticator whose PIN key signs.
    pub authenticator_id: AuthenticatorId,
    /// The hardware authenticator's id from the list.
    pub hardware_id: String,
    /// The phone's clock (Unix milliseconds), checked against ±5 minutes.
    pub issued_at_ms: u64,
    /// Single-use nonce.
    pub nonce: Nonce16,
}

impl HardwareDeactivation {
    /// The canonical bytes the PIN key signs.
    pub fn signing_bytes(&self) -> Vec<u8> {
        CanonicalWriter::new(DOMAIN_HARDWARE_DEACTIVATION)
            .fixed(self.authenticator_id.as_bytes())
            .str(&self.hardware_id)
            .u64(self.issued_at_ms)
            .fixed(self.nonce.as_bytes())
            .finish()
    }
}
