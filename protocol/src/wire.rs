//! JSON wire types of the server's HTTP API, shared by the core, the server, the
//! CLI and the load generator. Binary fields are unpadded base64url.

use serde::{Deserialize, Serialize};

use crate::crypto::{PublicKey, Signature};
use crate::events::SecurityEventKind;
use crate::ids::{AuthenticatorId, ChangeId, IdentityId, Nonce16, RequestId, ServiceProviderId};
use crate::messages::{Decision, Outcome, ReceiptBody, RequestEnvelopeBody, RequestKind};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// Header carrying the device's timestamp (Unix milliseconds, decimal).
pub const HEADER_TIMESTAMP: &str = "eid-timestamp";
/// Response header on a `clock_skew` refusal: the server's time (Unix ms),
/// so a device whose clock is off can sign again with the server's time.
pub const HEADER_SERVER_TIME: &str = "eid-server-time";
/// Header carrying the single-use nonce (32 hex digits).
pub const HEADER_NONCE: &str = "eid-nonce";
/// Header carrying `authenticator_id:signature` pairs, comma-separated.
pub const HEADER_SIGNATURE: &str = "eid-signature";

/// Path of the pull endpoint (signed by the device key).
pub const PATH_PULL: &str = "/v1/device/pull";
/// Path of the decision endpoint.
pub const PATH_DECISIONS: &str = "/v1/device/decisions";
/// Path of the activation endpoint.
pub const PATH_ACTIVATE: &str = "/v1/device/activate";
/// Path of the person's own "block my identity" endpoint.
pub const PATH_BLOCK: &str = "/v1/device/block";
/// Path where a new device asks to be added from an existing one (unsigned:
/// the new device has no authenticator yet; it proves possession of its keys).
pub const PATH_ENROLMENTS: &str = "/v1/device/enrolments";
/// Path where the new device asks how its enrolment stands (signed by the new
/// device key, with the enrolment id in place of the authenticator id).
pub const PATH_ENROLMENT_STATUS: &str = "/v1/device/enrolments/status";
/// Path where an existing device cancels a new device's enrolment (signed by
/// the existing device key; no PIN).
pub const PATH_ENROLMENT_CANCEL: &str = "/v1/device/enrolments/cancel";
/// Prefix of the QR payload the new device shows: `eid-bind:v1:<code>`, the
/// same binding-code payload a login screen shows, so the existing phone's
/// scanner hands either to the core unchanged.
pub const ENROLMENT_QR_PREFIX: &str = crate::binding::QR_PREFIX;
/// Path of the person's notification settings endpoint (device-signed).
pub const PATH_DEVICE_SETTINGS: &str = "/v1/device/settings";
/// The person's hardware authenticators (code devices and chip), signed.
pub const PATH_DEVICE_HARDWARE: &str = "/v1/device/hardware";
/// Deactivates one of them (or cancels a pending chip), signed and PIN-proved.
pub const PATH_DEVICE_HARDWARE_DEACTIVATE: &str = "/v1/device/hardware/deactivate";

/// Most feed events one pull returns per authenticator (the newest ones).
pub const MAX_FEED_EVENTS: usize = 50;
/// Path of the app's "cancel this contact change" endpoint (device-signed, no PIN).
pub const PATH_CANCEL_CONTACT_CHANGE: &str = "/v1/device/contact-changes/cancel";
/// Path of the self-service portal's "start a phone or e-mail change" endpoint.
pub const PATH_SELF_SERVICE_CONTACT_CHANGES: &str = "/v1/self-service/contact-changes";
/// Path of the self-service portal's "start a user-ID change" endpoint.
pub const PATH_SELF_SERVICE_USER_ID_CHANGES: &str = "/v1/self-service/user-id-changes";

/// Unpadded base64url helpers for serde.
pub mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Encodes bytes as unpadded base64url.
    pub fn encode(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Decodes unpadded base64url.
    pub fn decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
        URL_SAFE_NO_PAD.decode(text)
    }

    /// Inputs up to this many bytes are encoded on the stack when serialized:
    /// every key (65 bytes), signature (at most 72) and hash (32) the
    /// protocol has.
    const STACK_BYTES: usize = 96;

    /// Serializes bytes as unpadded base64url: the same text as
    /// [`encode`], written from a stack buffer instead of a new `String`
    /// (a longer input takes the `String`).
    pub fn serialize_bytes<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; STACK_BYTES.div_ceil(3) * 4];
        if bytes.len() <= STACK_BYTES
            && let Ok(n) = URL_SAFE_NO_PAD.encode_slice(bytes, &mut buf)
        {
            let text = std::str::from_utf8(&buf[..n]).map_err(serde::ser::Error::custom)?;
            return s.serialize_str(text);
        }
        s.serialize_str(&encode(bytes))
    }

    /// Deserializes a base64url string into bytes.
    pub fn deserialize_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        decode(&s).map_err(|_| serde::de::Error::custom("invalid base64url"))
    }

    /// serde `with` module for `[u8; 32]`.
    pub mod fixed32 {
        use super::*;

        /// Serializes 32 bytes as base64url.
        pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
            serialize_bytes(v, s)
        }

        /// Deserializes exactly 32 bytes from base64url.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
            let v = deserialize_bytes(d)?;
            v.try_into()
                .map_err(|_| serde::de::Error::custom("expected 32 bytes"))
        }
    }
}

/// Calls the macro named `$callback` with every error code of the API, each
/// with its doc comment, as `$( $(#[doc])* Name, )*`. [`ErrorCode`] is declared
/// from this one list, and so is any mirror of it in another crate (the
/// bindings' `ServerErrorCode`, which adds `Unknown`), so a code added here
/// reaches every mirror and no list is written twice.
#[macro_export]
macro_rules! with_error_codes {
    ($callback:ident) => {
        $callback! {
            /// The body is not valid JSON for this endpoint, or a field is malformed.
            MalformedRequest,
            /// The body is larger than the server accepts.
            PayloadTooLarge,
            /// Missing or wrong credentials (admin token or API key).
            Unauthorized,
            /// A device signature is missing, malformed or does not verify.
            InvalidSignature,
            /// The device timestamp is too far from the server's clock.
            ClockSkew,
            /// The device nonce was already used.
            ReplayedNonce,
            /// No such identity.
            UnknownIdentity,
            /// No such authenticator.
            UnknownAuthenticator,
            /// No such request (or not visible to this caller).
            UnknownRequest,
            /// The user ID breaks the rules.
            InvalidUserId,
            /// The user ID is taken (compared without regard to case).
            UserIdTaken,
            /// A phone number or e-mail address is not valid.
            InvalidContact,
            /// The activation code is wrong, used, expired or void.
            InvalidActivationCode,
            /// The reference text breaks the text rules.
            InvalidReferenceText,
            /// The service provider's name breaks the text rules.
            InvalidProviderName,
            /// The identity is blocked.
            IdentityBlocked,
            /// The authenticator is locked (too many wrong PINs) or revoked.
            AuthenticatorLocked,
            /// The request has expired by the server's clock.
            RequestExpired,
            /// The request was already decided (by this or another device) or cancelled.
            RequestClosed,
            /// The decision does not match the request (text hash, provider, nonce, ...).
            DecisionMismatch,
            /// The channel-binding code is missing or wrong.
            BindingMismatch,
            /// The approval was made while the phone saw a call, screen sharing
            /// or remote control, and the server's call policy refuses this kind
            /// then: nothing was approved, the request was cancelled and the
            /// person notified (`docs/protocol.md`, "Call context").
            StoppedOnCall,
            /// The decision's counter is not above the authenticator's last one.
            CounterReplay,
            /// The PIN-key signature is wrong (counts toward the central lockout).
            WrongPin,
            /// A parameter is out of range.
            InvalidParameter,
            /// The identity already has the most devices allowed (active
            /// authenticators plus new devices being added).
            DeviceLimitReached,
            /// No such device enrolment (or not visible to this caller).
            UnknownEnrolment,
            /// The device enrolment is over without a new device: refused, cancelled,
            /// expired undecided, or the identity was blocked. Start again.
            EnrolmentClosed,
            /// No such endpoint or method.
            NotFound,
            /// No such self-service change (or not visible to this caller: unknown id,
            /// another person's change, or a change whose first login was not approved).
            UnknownChange,
            /// The second self-service login is asked for before the earliest time
            /// (first login + the configured gap, one hour in production). The
            /// message says when; the attempt was recorded and notified.
            TooEarly,
            /// The person already has a change of this kind past its first login;
            /// it must complete or be cancelled first.
            ChangePending,
            /// The change is closed (completed, cancelled, expired or failed).
            ChangeClosed,
            /// Too many requests were created for this person, or by this relying
            /// party, in a recent window (MFA-fatigue protection), or one client
            /// address called the unauthenticated endpoints too often. Nothing was
            /// done; the `Retry-After` header (seconds) and the message say when to
            /// try again.
            RateLimited,
            /// The person reported one of this relying party's requests as fraud
            /// ("this wasn't me"): its new requests for them are refused until the
            /// cool-down ends (`Retry-After` header, seconds). Nothing was created;
            /// the person is told (once per cool-down).
            CoolingDown,
            /// The request body is not declared `application/json` (`Content-Type`,
            /// parameters such as `; charset=utf-8` allowed). Every endpoint that
            /// reads a body takes only JSON, so that no page on another site can post
            /// to it with a form or `text/plain` (which browsers send without asking).
            UnsupportedMediaType,
            /// The request comes from a web page of another site (its `Origin`
            /// header is neither the server's own origin nor a configured one).
            /// Requests without `Origin` (apps, command-line tools) are not affected.
            OriginRefused,
            /// The admin credential is valid but its role may not do this (a
            /// support agent calling an administrator-only endpoint). The refusal
            /// is recorded in the audit.
            ForbiddenRole,
            /// A block or unblock by support needs a reason (1 to 500 printable
            /// characters on one line); it is stored in the audit.
            ReasonRequired,
            /// No such agent.
            UnknownAgent,
            /// No such service provider (admin API).
            UnknownServiceProvider,
            /// No such API key of this service provider, or already revoked
            /// (admin API).
            UnknownApiKey,
            /// No such hardware authenticator of this person (a code device or
            /// a chip; unknown id, or another person's).
            UnknownHardware,
            /// A serial number of the imported batch of code devices is
            /// already stored; nothing of the batch was.
            SerialTaken,
            /// The person already has an active code device; a second one
            /// replaces it only through the app.
            CodeDeviceExists,
            /// The server failed; retry later.
            Internal,
        }
    };
}

/// Declares [`ErrorCode`] from the list in [`with_error_codes!`].
macro_rules! declare_error_code {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// Stable, machine-readable error codes of the API. The HTTP status groups them;
        /// the code says exactly what went wrong. Codes are never renamed.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(ToSchema))]
        #[serde(rename_all = "snake_case")]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[$doc])* $name,)*
        }
    };
}

with_error_codes!(declare_error_code);

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// A machine-readable code and a human-readable message (English, no user data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorDetail {
    /// Stable error code.
    pub code: ErrorCode,
    /// Explanation for developers.
    pub message: String,
}

// ---------------------------------------------------------------- admin API

/// Create an identity (support).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateIdentityRequest {
    /// The chosen user ID.
    pub user_id: String,
    /// The person's name (used to refuse a user ID equal to it).
    #[serde(default)]
    pub display_name: Option<String>,
    /// Phone number for SMS notifications (E.164, `+4512345678`).
    #[serde(default)]
    pub phone: Option<String>,
    /// E-mail address for notifications.
    #[serde(default)]
    pub email: Option<String>,
}

/// A created identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct IdentityCreated {
    /// The new identity.
    pub identity_id: IdentityId,
    /// The user ID as stored.
    pub user_id: String,
}

/// Why support blocks or unblocks an identity: required, stored in the
/// audit (1 to 500 printable characters on one line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AdminReason {
    /// The reason, for example the number of the support case.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 500))]
    pub reason: String,
}

/// What an agent may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AgentRole {
    /// Look up identities, block, unblock, issue activation codes, create
    /// identities, read the audit of one identity.
    Support,
    /// Everything support may do, and register service providers, manage
    /// agents and read the whole audit.
    Administrator,
}

/// Create an agent (administrator).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateAgentRequest {
    /// The agent's name as the audit shows it (provider-name text rules).
    pub name: String,
    /// What the agent may do.
    pub role: AgentRole,
}

/// An agent (support view); never its token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AgentInfo {
    /// The agent's id.
    pub agent_id: u64,
    /// The agent's name.
    pub name: String,
    /// What the agent may do.
    pub role: AgentRole,
    /// When created (Unix milliseconds).
    pub created_at_ms: u64,
    /// When revoked, if it is (Unix milliseconds).
    #[serde(default)]
    pub revoked_at_ms: Option<u64>,
}

/// A created agent with its token, shown only this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AgentCreated {
    /// The agent.
    pub agent: AgentInfo,
    /// The agent's bearer token (stored only as its SHA-256).
    pub token: String,
}

/// The agents, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AgentList {
    /// The agents, revoked ones included.
    pub agents: Vec<AgentInfo>,
}

/// One row of the admin audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AuditEntryInfo {
    /// The row's id (increasing; the paging cursor, and what a person's
    /// block or unblock event points to).
    pub audit_id: u64,
    /// When (server clock, Unix milliseconds).
    pub at_ms: u64,
    /// The acting agent (absent for the bootstrap administrator token).
    #[serde(default)]
    pub agent_id: Option<u64>,
    /// The acting agent's name.
    pub agent_name: String,
    /// What was done (`block`, `unblock`, `issue_activation_code`,
    /// `register_provider`, ...).
    pub action: String,
    /// The identity acted on, if any.
    #[serde(default)]
    pub identity_id: Option<IdentityId>,
    /// The service provider acted on, if any.
    #[serde(default)]
    pub service_provider_id: Option<ServiceProviderId>,
    /// The agent acted on, if any.
    #[serde(default)]
    pub target_agent_id: Option<u64>,
    /// The reason given, if any.
    #[serde(default)]
    pub reason: Option<String>,
    /// `done` or `refused_role`.
    pub outcome: String,
}

/// Audit rows, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AuditList {
    /// The rows.
    pub entries: Vec<AuditEntryInfo>,
}

/// A fresh activation code, to be sent to the person by letter or SMS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ActivationCodeIssued {
    /// The single-use code (50 bits, base32 groups).
    pub activation_code: String,
    /// When it stops working (Unix milliseconds).
    pub expires_at_ms: u64,
}

/// An identity's state (support view).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct IdentityInfo {
    /// The identity.
    pub identity_id: IdentityId,
    /// Its user ID.
    pub user_id: String,
    /// Whether it is blocked.
    pub blocked: bool,
    /// Its authenticators.
    pub authenticators: Vec<AuthenticatorInfo>,
    /// The stored phone number, masked (`+45••••••78`), if any.
    #[serde(default)]
    pub phone_masked: Option<String>,
    /// The stored e-mail address, masked (`g•••@example.dk`), if any.
    #[serde(default)]
    pub email_masked: Option<String>,
}

/// One authenticator of an identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AuthenticatorInfo {
    /// The authenticator.
    pub authenticator_id: AuthenticatorId,
    /// Its state.
    pub state: AccountState,
    /// Wrong PIN signatures in a row.
    pub failed_pin_count: u32,
    /// Activation time (Unix milliseconds).
    pub activated_at_ms: u64,
}

/// Register a service provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegisterServiceProviderRequest {
    /// The name shown to people on every request.
    pub name: String,
}

/// A registered service provider and its API key (shown once; stored hashed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ServiceProviderRegistered {
    /// The provider.
    pub service_provider_id: ServiceProviderId,
    /// Its registered name (NFC).
    pub name: String,
    /// Its API key. Only this response ever contains it.
    pub api_key: String,
}

/// Where a service provider's API key stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyStateInfo {
    /// Works, with no end set.
    Active,
    /// Works until `expires_at_ms` (a rotation replaced it).
    RotatingOut,
    /// Its grace period is over: refused.
    Expired,
    /// Revoked: refused.
    Revoked,
}

/// One API key of a service provider (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ApiKeyInfo {
    /// The key's id (for `revoke`).
    pub key_id: u64,
    /// When it was issued (Unix milliseconds).
    pub created_at_ms: u64,
    /// Its state now.
    pub state: ApiKeyStateInfo,
    /// When it stops working (a key being rotated out).
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
    /// When it was revoked.
    #[serde(default)]
    pub revoked_at_ms: Option<u64>,
}

/// A service provider's API keys, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ApiKeyList {
    /// The provider.
    pub service_provider_id: ServiceProviderId,
    /// Its keys.
    pub keys: Vec<ApiKeyInfo>,
}

/// A new API key (shown once; stored hashed). The older keys keep working
/// until `old_keys_expire_at_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ApiKeyRotated {
    /// The new key's entry.
    pub key: ApiKeyInfo,
    /// The new API key. Only this response ever contains it.
    pub api_key: String,
    /// When the provider's older keys stop working.
    pub old_keys_expire_at_ms: u64,
}

/// Sets (`url`) or removes (`url` absent or null) a service provider's
/// webhook; see docs/webhooks.md.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetWebhookRequest {
    /// Where events are POSTed: `https://...`, or `http://127.0.0.1:PORT/...`
    /// for tests. Absent or null removes the webhook.
    #[serde(default)]
    pub url: Option<String>,
}

/// How the person reads a code device's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CodeDeviceKind {
    /// A code display: the code is shown on a small screen.
    CodeDisplay,
    /// An audio code reader: the code is read out.
    CodeReader,
}

/// Import a manufacturer's batch of code devices (administrator): a PSKC
/// document (RFC 6030) whose seeds are encrypted under a pre-shared key,
/// each with its `ValueMAC` (docs/authenticators.md).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ImportTokenBatchRequest {
    /// The PSKC document (XML, at most 4 MiB).
    pub pskc: String,
    /// The pre-shared key agreed with the manufacturer: 32 hex digits
    /// (AES-128). Never stored or logged.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 32, max_length = 32, pattern = "^[0-9a-fA-F]{32}$")
    )]
    pub pre_shared_key: String,
    /// What kind of device the whole batch is.
    pub kind: CodeDeviceKind,
    /// A label for the batch (default: the document's `Id`), 1 to 100
    /// printable characters.
    #[serde(default)]
    pub label: Option<String>,
}

impl std::fmt::Debug for ImportTokenBatchRequest {
    // The pre-shared key opens every seed of the batch.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportTokenBatchRequest")
            .field("kind", &self.kind)
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// An imported batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TokenBatchImported {
    /// The batch's id (32 hex digits).
    pub batch_id: String,
    /// Its label.
    pub label: String,
    /// Its devices' serial numbers, in document order.
    pub serials: Vec<String>,
}

/// Activate a code device with support's activation code (no credentials;
/// docs/authenticators.md).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ActivateCodeDeviceRequest {
    /// The person's user ID.
    #[cfg_attr(feature = "openapi", schema(max_length = 64))]
    pub user_id: String,
    /// The activation code support gave the person.
    #[cfg_attr(feature = "openapi", schema(max_length = 32))]
    pub activation_code: String,
    /// The serial number printed on the device.
    #[cfg_attr(feature = "openapi", schema(max_length = 64))]
    pub serial: String,
    /// A code from the device.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 6, max_length = 6, pattern = "^[0-9]{6}$")
    )]
    pub first_code: String,
    /// The device's next code (after it moved on).
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 6, max_length = 6, pattern = "^[0-9]{6}$")
    )]
    pub second_code: String,
    /// The access code the person chooses (8 to 64 characters).
    #[cfg_attr(feature = "openapi", schema(max_length = 64))]
    pub access_code: String,
}

impl std::fmt::Debug for ActivateCodeDeviceRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ActivateCodeDeviceRequest(..)")
    }
}

/// Ask the person to approve, in the app, activating a code device on
/// their identity (no credentials; docs/authenticators.md). A code device
/// the person has now is replaced on approval.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RequestCodeDeviceActivation {
    /// The person's user ID.
    #[cfg_attr(feature = "openapi", schema(max_length = 64))]
    pub user_id: String,
    /// The serial number printed on the device.
    #[cfg_attr(feature = "openapi", schema(max_length = 64))]
    pub serial: String,
    /// A code from the device.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 6, max_length = 6, pattern = "^[0-9]{6}$")
    )]
    pub first_code: String,
    /// The device's next code (after it moved on).
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 6, max_length = 6, pattern = "^[0-9]{6}$")
    )]
    pub second_code: String,
    /// The access code the person chooses (8 to 64 characters).
    #[cfg_attr(feature = "openapi", schema(max_length = 64))]
    pub access_code: String,
}

impl std::fmt::Debug for RequestCodeDeviceActivation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestCodeDeviceActivation(..)")
    }
}

/// The request waiting in the app (for an unknown user ID a stand-in that
/// no app shows, so the answer tells nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CodeDeviceActivationRequested {
    /// The request of kind `code_device`.
    pub request_id: RequestId,
    /// When it expires (Unix milliseconds).
    pub expires_at_ms: u64,
}

/// A code device activated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CodeDeviceActivated {
    /// Its masked serial number.
    pub masked_serial: String,
}

/// The webhook as set: the signing secret is shown once, here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct WebhookSet {
    /// The provider.
    pub service_provider_id: ServiceProviderId,
    /// The URL events go to (`None`: the webhook was removed).
    #[serde(default)]
    pub url: Option<String>,
    /// The signing secret (64 hex digits, 32 random bytes), when a webhook
    /// was set. Only this response ever contains it.
    #[serde(default)]
    pub secret: Option<String>,
}

/// The body POSTed to a service provider's webhook when one of its
/// requests is decided or cancelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct WebhookEvent {
    /// The request.
    pub request_id: RequestId,
    /// Its new status.
    pub status: RequestStatus,
    /// When it was decided or cancelled (Unix milliseconds).
    pub decided_at_ms: u64,
}

// ---------------------------------------------------------------- OIDC clients

/// How an OpenID Connect client authenticates at the token endpoint
/// (the names of the OAuth `token_endpoint_auth_method` registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OidcClientAuthMethod {
    /// HTTP Basic with the client ID and a secret the server issued.
    ClientSecretBasic,
    /// A JWT signed with the client's own key (RFC 7523), checked against
    /// the public JWK registered with the client.
    PrivateKeyJwt,
}

/// A client's public key as a JWK (RFC 7517), for `private_key_jwt`: EC
/// P-256 (`kty` `EC`, `crv`, `x`, `y`; ES256) or RSA (`kty` `RSA`, `n`, `e`,
/// at least 2048 bits; RS256). Members other than these are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ClientJwk {
    /// `EC` or `RSA`.
    pub kty: String,
    /// EC: must be `P-256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// EC: the x coordinate, base64url without padding (32 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC: the y coordinate, base64url without padding (32 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// RSA: the modulus, base64url without padding, no leading zero byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA: the public exponent, base64url without padding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
}

/// Register an OpenID Connect client for a service provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegisterOidcClientRequest {
    /// The service provider the client logs people in for.
    pub service_provider_id: ServiceProviderId,
    /// The exact redirect URIs (1 to 10): `https` URLs of one host, or
    /// `http://127.0.0.1` URLs for tests. Compared byte for byte later.
    pub redirect_uris: Vec<String>,
    /// Issue a client secret for `client_secret_basic`.
    #[serde(default)]
    pub client_secret_basic: bool,
    /// The client's public key for `private_key_jwt`.
    #[serde(default)]
    pub jwk: Option<ClientJwk>,
    /// The scopes the client may ask for; must contain `openid`.
    pub scopes: Vec<String>,
}

/// A registered OpenID Connect client, with its secret (shown once; stored
/// hashed). Its `Debug` leaves the secret out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct OidcClientRegistered {
    /// The public `client_id`.
    pub client_id: String,
    /// The service provider.
    pub service_provider_id: ServiceProviderId,
    /// The registered redirect URIs.
    pub redirect_uris: Vec<String>,
    /// The allowed scopes.
    pub scopes: Vec<String>,
    /// How the client may authenticate at the token endpoint.
    pub token_endpoint_auth_methods: Vec<OidcClientAuthMethod>,
    /// The sector (the redirect URIs' host) its pairwise subject
    /// identifiers are computed for.
    pub sector: String,
    /// The client secret for `client_secret_basic`. Only this response
    /// ever contains it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

impl std::fmt::Debug for OidcClientRegistered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcClientRegistered")
            .field("client_id", &self.client_id)
            .field("service_provider_id", &self.service_provider_id)
            .field("redirect_uris", &self.redirect_uris)
            .field("scopes", &self.scopes)
            .field(
                "token_endpoint_auth_methods",
                &self.token_endpoint_auth_methods,
            )
            .field("sector", &self.sector)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

// ---------------------------------------------------------------- device API

/// Activate a new authenticator with a user ID and activation code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ActivateRequest {
    /// The user ID.
    pub user_id: String,
    /// The activation code from the letter or SMS.
    pub activation_code: String,
    /// The device key (SEC1 uncompressed P-256, base64url).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub device_public_key: PublicKey,
    /// The PIN key (SEC1 uncompressed P-256, base64url).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub pin_public_key: PublicKey,
    /// The device key's signature over the activation proof.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub device_signature: Signature,
    /// The PIN key's signature over the activation proof.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub pin_signature: Signature,
}

/// The result of an activation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ActivateResponse {
    /// The new authenticator.
    pub authenticator_id: AuthenticatorId,
    /// The identity it belongs to.
    pub identity_id: IdentityId,
    /// The server's signing key, which the phone uses to verify envelopes and receipts.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub server_public_key: PublicKey,
}

/// The person blocks their own identity from the app ("I suspect abuse").
/// Signed by the authenticator's device key like a pull; needs no PIN, so a
/// person under pressure can always do it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BlockRequest {
    /// The authenticator asking; its identity is blocked.
    pub authenticator_id: AuthenticatorId,
}

/// The answer to a [`BlockRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BlockResponse {
    /// The identity now blocked.
    pub identity_id: IdentityId,
    /// How many pending requests the block cancelled.
    pub cancelled_requests: u32,
}

/// A new device asks to be added to an identity from an existing device. No
/// credential: both new keys sign an [`crate::EnrolmentProof`]. The server
/// answers the same for an unknown user ID, a blocked identity or one that
/// already has a new device waiting for approval as for a real enrolment (the
/// new device then simply is never approved), so the endpoint does not reveal
/// which user IDs exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StartEnrolmentRequest {
    /// The user ID typed on the new device.
    pub user_id: String,
    /// The new device key (SEC1 uncompressed P-256, base64url).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub device_public_key: PublicKey,
    /// The new PIN key (SEC1 uncompressed P-256, base64url).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub pin_public_key: PublicKey,
    /// The device key's signature over the enrolment proof.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub device_signature: Signature,
    /// The PIN key's signature over the enrolment proof.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub pin_signature: Signature,
}

/// The answer to a [`StartEnrolmentRequest`]: what the new device shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EnrolmentStarted {
    /// The enrolment; also the authenticator id the new device gets once it
    /// is activated. The new device signs its status polls with it.
    pub enrolment_id: AuthenticatorId,
    /// The code the new device shows and the person types (or scans) on the
    /// existing device when approving.
    pub code: String,
    /// The same code as a QR payload: `eid-bind:v1:<code>`.
    pub qr_payload: String,
    /// When the approval request on the existing device expires (Unix ms).
    pub expires_at_ms: u64,
}

/// Where a device enrolment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EnrolmentState {
    /// Waiting for the existing device to approve.
    AwaitingApproval,
    /// Approved; the new device works from `usable_at_ms` (the waiting period).
    Waiting,
    /// The new device is activated.
    Activated,
}

/// The new device asks how its enrolment stands; signed by the new device key
/// (headers as for a pull, with the enrolment id as the authenticator id).
/// Once approved and the waiting period is over, this call activates it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrolmentStatusRequest {
    /// The enrolment.
    pub enrolment_id: AuthenticatorId,
}

/// The answer to an [`EnrolmentStatusRequest`]. A closed enrolment (refused,
/// cancelled, expired) is the error `enrolment_closed` instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EnrolmentStatusResponse {
    /// The enrolment.
    pub enrolment_id: AuthenticatorId,
    /// Its state.
    pub state: EnrolmentState,
    /// The server's clock when it answered (Unix ms).
    pub server_time_ms: u64,
    /// When the new device works (Unix ms, server clock), once approved.
    #[serde(default)]
    pub usable_at_ms: Option<u64>,
    /// The activation, once `state` is `activated` (as for a first activation).
    #[serde(default)]
    pub activation: Option<ActivateResponse>,
}

/// An existing device cancels a new device's enrolment of its identity, until
/// the new device is activated. Signed by the existing device key; no PIN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CancelEnrolmentRequest {
    /// The existing authenticator asking (it signs the call).
    pub authenticator_id: AuthenticatorId,
    /// The enrolment to cancel.
    pub enrolment_id: AuthenticatorId,
}

/// The answer to a [`CancelEnrolmentRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EnrolmentCancelled {
    /// The enrolment, now cancelled.
    pub enrolment_id: AuthenticatorId,
}

/// A new device being added to the identity, as an existing device sees it
/// in its pull (so the person can cancel during the waiting period).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PulledEnrolment {
    /// The enrolment.
    pub enrolment_id: AuthenticatorId,
    /// Awaiting approval or waiting.
    pub state: EnrolmentState,
    /// When the new device asked (Unix ms, server clock).
    pub requested_at_ms: u64,
    /// When it will work, once approved (Unix ms, server clock).
    #[serde(default)]
    pub usable_at_ms: Option<u64>,
}

/// Pull the pending requests of one or more authenticators on this phone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PullRequest {
    /// The authenticators (each must sign the call; at most 16).
    pub authenticator_ids: Vec<AuthenticatorId>,
    /// Feed cursors of older phones, parallel to `authenticator_ids`: the
    /// highest event id each account already has (0 = from the start). Empty
    /// = all 0; when given, one per authenticator. The pull returns events
    /// above it, at most the newest [`MAX_FEED_EVENTS`], so a flood of more
    /// than that between two pulls skips the older ones: phones send
    /// `events_after` instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub feed_after: Vec<u64>,
    /// Paging feed cursors, parallel to `authenticator_ids`: the highest
    /// event id each account already has (0 = from the start). The pull
    /// returns the events above it, oldest first, at most
    /// [`MAX_FEED_EVENTS`]; the next pull goes on from the highest, so none
    /// is skipped however many come between pulls. Empty = not paging (the
    /// `feed_after` behaviour); never given together with `feed_after`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events_after: Vec<u64>,
    /// Decision cursors, parallel to `authenticator_ids`: the highest decision
    /// `seq` each account already compared with its journal (0 = from the
    /// start). Empty = all 0. The pull returns the identity's decisions above
    /// it, oldest first, at most [`MAX_PULLED_DECISIONS`]; the next pull goes
    /// on from there, so none is skipped however many come between pulls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decisions_after: Vec<u64>,
}

/// The person's notification settings, set from the app. Signed by the
/// authenticator's device key like a pull. Turning "notify me on every use"
/// on needs no PIN (it only adds notifications); turning it off needs
/// `pin_proof`, so an unlocked phone in a thief's hand cannot silence them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeviceSettingsRequest {
    /// The authenticator asking; the setting is its identity's.
    pub authenticator_id: AuthenticatorId,
    /// "Notify me on every use": an SMS/e-mail and a feed event on every approval.
    pub notify_every_use: bool,
    /// The PIN key's signature over the change; required to turn it off,
    /// verified whenever present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_proof: Option<PinProof>,
}

/// The PIN key's signature over a [`crate::messages::SettingsChange`] built
/// from the request's `authenticator_id` and `notify_every_use` and these
/// fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PinProof {
    /// When the phone signed (Unix ms), within ±5 minutes of the server clock.
    pub issued_at_ms: u64,
    /// Single-use nonce.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub nonce: Nonce16,
    /// PIN-key signature over the change's signing bytes.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub signature: Signature,
}

/// The answer to a [`DeviceSettingsRequest`]: the settings now in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DeviceSettingsResponse {
    /// The identity whose settings these are.
    pub identity_id: IdentityId,
    /// "Notify me on every use".
    pub notify_every_use: bool,
}

/// One entry of an account's security feed (the server's `security_events`
/// rows, read in the pull's snapshot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct FeedEvent {
    /// Increasing id (the feed cursor).
    pub event_id: u64,
    /// What happened; kinds this build does not know parse as `unknown`.
    pub kind: SecurityEventKind,
    /// When (server clock, Unix milliseconds).
    pub occurred_at_ms: u64,
    /// The authenticator involved, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticator_id: Option<AuthenticatorId>,
    /// A short masked detail (a provider's name, a masked phone number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Most authenticators one pull may name.
pub const MAX_PULL_AUTHENTICATORS: usize = 16;

/// State of an authenticator as the server sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AccountState {
    /// Usable.
    Active,
    /// The identity is blocked; no requests, decisions refused.
    Blocked,
    /// Locked after too many wrong PINs; re-activation needed.
    Locked,
}

/// A request envelope with the server's signature over its canonical bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SignedEnvelope {
    /// The signed content.
    pub envelope: RequestEnvelopeBody,
    /// Server signature over `envelope.signing_bytes()`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub signature: Signature,
}

/// One authenticator's part of a pull.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PulledAccount {
    /// The authenticator.
    pub authenticator_id: AuthenticatorId,
    /// Its state.
    pub state: AccountState,
    /// Pending, unexpired requests (empty unless active).
    pub requests: Vec<SignedEnvelope>,
    /// New devices being added to this identity: awaiting approval or in the
    /// waiting period (empty unless active). Absent from older servers.
    #[serde(default)]
    pub device_enrolments: Vec<PulledEnrolment>,
    /// Security events of the identity after the account's feed cursor,
    /// oldest first, at most [`MAX_FEED_EVENTS`]: the oldest above an
    /// `events_after` cursor, or the newest above a `feed_after` one.
    #[serde(default)]
    pub events: Vec<FeedEvent>,
    /// The identity's "notify me on every use" setting.
    #[serde(default)]
    pub notify_every_use: bool,
    /// The identity's current user ID (it can change through self-service);
    /// absent from older servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The identity's open phone or e-mail changes, so the app can show them
    /// and offer to cancel; absent from older servers.
    #[serde(default)]
    pub contact_changes: Vec<PulledContactChange>,
    /// The identity's decisions (any of its authenticators) above the
    /// account's `decisions_after` cursor, oldest first, at most
    /// [`MAX_PULLED_DECISIONS`]: the device reconciles them against its
    /// journal and moves its cursor to the highest `seq`.
    #[serde(default)]
    pub decisions: Vec<PulledDecision>,
}

/// Decisions listed per account in a pull.
pub const MAX_PULLED_DECISIONS: usize = 50;

/// One decision the server recorded (device journal reconciliation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PulledDecision {
    /// The request decided.
    pub request_id: RequestId,
    /// The authenticator whose signature the server accepted.
    pub authenticator_id: AuthenticatorId,
    /// The outcome.
    pub outcome: Outcome,
    /// The decision's counter.
    pub counter: u64,
    /// SHA-256 of the decision's canonical bytes.
    #[serde(with = "b64::fixed32")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub decision_sha256: [u8; 32],
    /// When the server accepted it (Unix ms).
    pub decided_at_ms: u64,
    /// The server's sequence number of the decision (increasing); send the
    /// highest seen as the account's `decisions_after`.
    #[serde(default)]
    pub seq: u64,
}

/// Cancel an open phone or e-mail change from the app. Signed by the device
/// key like a pull; needs no PIN, so a person under pressure can always do it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CancelContactChangeRequest {
    /// The authenticator asking; the change must be its identity's.
    pub authenticator_id: AuthenticatorId,
    /// The change.
    pub change_id: ChangeId,
}

// ---------------------------------------------------------------- self-service API

/// Which contact a change replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ContactChannel {
    /// The phone number (SMS notifications), E.164.
    Phone,
    /// The e-mail address.
    Email,
}

/// Where a self-service change stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChangeState {
    /// Waiting for the person to approve the first self-service login.
    AwaitingFirstLogin,
    /// The first login was approved; the second may come from
    /// `earliest_second_login_at_ms` (phone and e-mail changes only).
    WaitingSecondLogin,
    /// The second login was asked for; waiting for the approval.
    AwaitingSecondLogin,
    /// Done: the contact or user ID was changed.
    Completed,
    /// Cancelled: denied or reported as fraud in the app, cancelled from the
    /// app, superseded by a new start, or the identity was blocked.
    Cancelled,
    /// The first login was not approved in time, or the change was not
    /// completed within 24 hours of the first login.
    Expired,
    /// The approval came, but the change could not be applied (a user ID
    /// taken meanwhile or too like the person's data); see `failure`.
    Failed,
}

impl ChangeState {
    /// Whether the change can still complete.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            ChangeState::AwaitingFirstLogin
                | ChangeState::WaitingSecondLogin
                | ChangeState::AwaitingSecondLogin
        )
    }
}

/// An open phone or e-mail change as the app shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PulledContactChange {
    /// The change.
    pub change_id: ChangeId,
    /// Phone or e-mail.
    pub channel: ContactChannel,
    /// The new value, masked.
    pub new_value_masked: String,
    /// Where it stands (always open here).
    pub state: ChangeState,
    /// Server time (Unix ms) from which the change can complete; absent before
    /// the first login is approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earliest_completion_at_ms: Option<u64>,
    /// When it was started (server time, Unix ms).
    pub created_at_ms: u64,
}

/// Start a change of phone number or e-mail address (self-service portal, no
/// credentials: the person is identified by the user ID, then by approving
/// two self-service logins in the app at least an hour apart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StartContactChangeRequest {
    /// The person's user ID.
    pub user_id: String,
    /// What to change.
    pub channel: ContactChannel,
    /// The new phone number (E.164) or e-mail address.
    pub new_value: String,
}

/// Start a change of user ID (self-service portal): one self-service login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StartUserIdChangeRequest {
    /// The person's current user ID.
    pub user_id: String,
    /// The user ID wanted.
    pub new_user_id: String,
}

/// The body of the calls on an existing change (confirm, status): the person's
/// user ID, which must be the change's. (In a body, not the URL, so it stays
/// out of access logs.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SelfServiceCaller {
    /// The person's user ID (the change must be theirs).
    pub user_id: String,
}

/// A self-service login request was created for a change: approve it in the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SelfServiceStep {
    /// The change.
    pub change_id: ChangeId,
    /// The self-service login request the app shows.
    pub request_id: RequestId,
    /// When that request expires (server time, Unix ms).
    pub expires_at_ms: u64,
    /// The channel-binding code of that request: the portal shows it and the
    /// person types it in the app to approve, so a login started by someone
    /// else's portal session (a scammer who knows the user ID) cannot be
    /// approved by mistake. Empty from older servers.
    #[serde(default)]
    pub binding_code: String,
}

/// Where a change stands (self-service portal). Visible only once its first
/// login was approved, and only with the person's user ID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ChangeStatus {
    /// The change.
    pub change_id: ChangeId,
    /// Its state.
    pub state: ChangeState,
    /// Phone or e-mail; absent for a user-ID change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<ContactChannel>,
    /// Server time (Unix ms) from which the second login may come (contact
    /// changes past the first login).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earliest_second_login_at_ms: Option<u64>,
    /// Why a change failed (state `failed`): `invalid_user_id` or `user_id_taken`
    /// with the reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<ErrorDetail>,
}

/// The answer to a pull.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PullResponse {
    /// The server's clock (Unix milliseconds) when it answered.
    pub server_time_ms: u64,
    /// One entry per authenticator asked for, in the same order.
    pub accounts: Vec<PulledAccount>,
}

/// A decision with its two signatures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SubmitDecisionRequest {
    /// The decision.
    pub decision: Decision,
    /// Device-key signature over `decision.signing_bytes()`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub device_signature: Signature,
    /// PIN-key signature over `decision.signing_bytes()`. Required to approve;
    /// optional for deny and report-fraud, which need no PIN (a person must be
    /// able to refuse at once), but verified when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Byte))]
    pub pin_signature: Option<Signature>,
}

/// A receipt with the server's signature over its canonical bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SignedReceipt {
    /// The signed content.
    pub receipt: ReceiptBody,
    /// Server signature over `receipt.signing_bytes()`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub signature: Signature,
}

/// A hardware receipt with the server's signature over its canonical bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SignedHardwareReceipt {
    /// The signed content.
    pub receipt: crate::messages::HardwareReceiptBody,
    /// Server signature over `receipt.signing_bytes()`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub signature: Signature,
}

// ---------------------------------------------------------------- relying-party API

/// Ask a person to log in or sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateRequestRequest {
    /// The person's user ID.
    pub user_id: String,
    /// Login or signature.
    pub kind: RequestKind,
    /// The text the person reads before approving.
    pub reference_text: String,
    /// A code shown on the relying party's screen that the person must enter or
    /// scan into the app (channel binding). Optional; not together with
    /// `binding`.
    #[serde(default)]
    pub binding_code: Option<String>,
    /// Ask the server for channel binding: it creates the code or secret and
    /// returns it in [`RequestCreated`] (never to the phone). Optional; not
    /// together with `binding_code`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<BindingMode>,
}

/// Which channel binding a relying party asks the server for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BindingMode {
    /// A short code to type (8 letters), fixed for the request
    /// (`RequestCreated::binding_code`).
    Code,
    /// A QR code that changes every second: the server returns a secret
    /// (`RequestCreated::binding_secret`) and the login screen shows
    /// `eid-bind:v1:` + `crate::binding::BindingSecret::code_at(now)`. The
    /// server accepts a code from the last 30 s (3 s ahead for clock skew).
    Qr,
}

/// A created request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RequestCreated {
    /// The request.
    pub request_id: RequestId,
    /// Creation time (Unix milliseconds, server clock).
    pub created_at_ms: u64,
    /// Expiry (created + 300 000 ms).
    pub expires_at_ms: u64,
    /// With `binding: "code"`: the code the login screen shows for the person
    /// to type. The phone never receives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding_code: Option<String>,
    /// With `binding: "qr"`: the secret (64 hex digits) the login screen
    /// derives its rotating code from. The phone never receives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, pattern = "^[0-9a-f]{64}$"))]
    pub binding_secret: Option<crate::binding::BindingSecret>,
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RequestStatus {
    /// Waiting for the person.
    Pending,
    /// Approved.
    Approved,
    /// Denied.
    Denied,
    /// Denied and reported as fraud.
    FraudReported,
    /// Expired undecided.
    Expired,
    /// Cancelled by the relying party (or by a block).
    Cancelled,
}

impl RequestStatus {
    /// The status a decision outcome leads to.
    pub fn from_outcome(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Approve => RequestStatus::Approved,
            Outcome::Deny => RequestStatus::Denied,
            Outcome::ReportFraud => RequestStatus::FraudReported,
        }
    }
}

/// A request's status and, once decided, the signed receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RequestStatusResponse {
    /// The request.
    pub request_id: RequestId,
    /// Its status.
    pub status: RequestStatus,
    /// Its kind.
    pub kind: RequestKind,
    /// SHA-256 of the reference text as stored (NFC).
    #[serde(with = "crate::wire::b64::fixed32")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub reference_text_sha256: [u8; 32],
    /// Creation time (Unix milliseconds).
    pub created_at_ms: u64,
    /// Expiry (Unix milliseconds).
    pub expires_at_ms: u64,
    /// The receipt, once decided.
    pub receipt: Option<SignedReceipt>,
    /// What the phone saw about calls and screen sharing when the person
    /// decided (also signed in a version-2 receipt, and kept when the
    /// approval was stopped); absent while pending and for an older phone's
    /// decision (read it as all unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_context: Option<crate::CallContext>,
    /// What the server's call policy did: `clear`, `allowed`, `flagged`
    /// or `stopped` (`docs/relying-party.md`, "Call context").
    #[serde(default)]
    pub call_verdict: crate::CallVerdict,
}

/// The server's public signing key, for relying parties verifying receipts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ServerKeyResponse {
    /// SEC1 uncompressed P-256 key, base64url.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub server_public_key: PublicKey,
}

/// Formats the `eid-signature` header from pairs.
pub fn format_signature_header(pairs: &[(AuthenticatorId, Signature)]) -> String {
    pairs
        .iter()
        .map(|(id, sig)| format!("{id}:{}", b64::encode(&sig.0)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses the `eid-signature` header into pairs.
pub fn parse_signature_header(value: &str) -> Option<Vec<(AuthenticatorId, Signature)>> {
    let mut out = Vec::new();
    for part in value.split(',') {
        let (id, sig) = part.trim().split_once(':')?;
        let id = id.parse().ok()?;
        let sig = Signature::from_der_vec(b64::decode(sig).ok()?).ok()?;
        out.push((id, sig));
    }
    if out.is_empty() || out.len() > MAX_PULL_AUTHENTICATORS {
        None
    } else {
        Some(out)
    }
}

#[cfg(test)]
mod self_service_wire_tests {
    use super::*;

    #[test]
    fn a_pull_from_an_older_server_still_parses() {
        let id = AuthenticatorId([1; 16]);
        let old = format!(r#"{{"authenticator_id":"{id}","state":"active","requests":[]}}"#);
        let account: PulledAccount = serde_json::from_str(&old).unwrap();
        assert_eq!(account.user_id, None);
        assert!(account.contact_changes.is_empty());
        let info = r#"{"identity_id":"01010101010101010101010101010101","user_id":"a","blocked":false,"authenticators":[]}"#;
        let info: IdentityInfo = serde_json::from_str(info).unwrap();
        assert_eq!((info.phone_masked, info.email_masked), (None, None));
    }

    #[test]
    fn change_states_have_stable_names_and_only_three_are_open() {
        let open = [
            (ChangeState::AwaitingFirstLogin, "awaiting_first_login"),
            (ChangeState::WaitingSecondLogin, "waiting_second_login"),
            (ChangeState::AwaitingSecondLogin, "awaiting_second_login"),
        ];
        let closed = [
            (ChangeState::Completed, "completed"),
            (ChangeState::Cancelled, "cancelled"),
            (ChangeState::Expired, "expired"),
            (ChangeState::Failed, "failed"),
        ];
        for (state, name) in open.iter().chain(&closed) {
            assert_eq!(serde_json::to_string(state).unwrap(), format!("\"{name}\""));
        }
        assert!(open.iter().all(|(s, _)| s.is_open()));
        assert!(closed.iter().all(|(s, _)| !s.is_open()));
    }
}

#[cfg(test)]
mod journal_wire_tests {
    use super::*;

    #[test]
    fn a_pull_without_decisions_parses_and_decisions_round_trip() {
        let id = AuthenticatorId([1; 16]);
        let old = format!(r#"{{"authenticator_id":"{id}","state":"active","requests":[]}}"#);
        let account: PulledAccount = serde_json::from_str(&old).unwrap();
        assert!(account.decisions.is_empty());
        let d = PulledDecision {
            request_id: RequestId([2; 16]),
            authenticator_id: id,
            outcome: Outcome::ReportFraud,
            counter: 7,
            decision_sha256: [9; 32],
            decided_at_ms: 1_800_000_000_000,
            seq: 12,
        };
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["outcome"], "report_fraud");
        assert!(json["decision_sha256"].is_string());
        assert_eq!(serde_json::from_value::<PulledDecision>(json).unwrap(), d);
    }
}

/// What kind of hardware authenticator (docs/authenticators.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HardwareKind {
    /// A code display (TOTP with a screen).
    CodeDisplay,
    /// An audio code reader (TOTP read aloud).
    CodeReader,
    /// A chip (FIDO2/WebAuthn security key).
    Chip,
}

/// Where a hardware authenticator stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HardwareState {
    /// Added, not usable yet (a chip in its waiting period).
    Pending,
    /// Usable.
    Active,
    /// Refused for now or for good (wrong access codes, a possible clone).
    Blocked,
    /// Deactivated or cancelled by the person.
    Deactivated,
}

/// One hardware authenticator of the person, as the app lists it. No raw
/// serial number or credential id: the server's opaque id and a masked one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct HardwareAuthenticatorInfo {
    /// The server's opaque id (names it in a deactivation).
    pub id: String,
    /// What it is.
    pub kind: HardwareKind,
    /// The serial number (or, for a chip, a digest of its credential id)
    /// with only the last four characters visible.
    pub masked_serial: String,
    /// Where it stands.
    pub state: HardwareState,
    /// When it was added (server clock, Unix milliseconds).
    pub added_at_ms: u64,
    /// Its last successful use, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at_ms: Option<u64>,
    /// When it works (the end of a chip's waiting period), if that is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_from_ms: Option<u64>,
}

/// The app asks for its person's hardware authenticators; signed by the
/// device key like a pull (headers `eid-timestamp`, `eid-nonce`,
/// `eid-signature`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HardwareListRequest {
    /// The authenticator asking; the list is its identity's.
    pub authenticator_id: AuthenticatorId,
}

/// The person's hardware authenticators, every state, oldest first per kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct HardwareListResponse {
    /// The list.
    pub hardware: Vec<HardwareAuthenticatorInfo>,
}

/// The app deactivates one hardware authenticator (a pending chip: cancels
/// its registration). Signed by the device key like a pull, and proved with
/// the PIN key over a [`crate::messages::HardwareDeactivation`] (the swipe
/// and the PIN in the app).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeactivateHardwareRequest {
    /// The authenticator asking; the hardware must be its identity's.
    pub authenticator_id: AuthenticatorId,
    /// The hardware authenticator's id from the list.
    pub hardware_id: String,
    /// The PIN key's signature over the deactivation.
    pub pin_proof: PinProof,
}

/// The deactivated hardware authenticator as it is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DeactivateHardwareResponse {
    /// Its entry, in state `deactivated`.
    pub hardware: HardwareAuthenticatorInfo,
}

#[cfg(test)]
mod b64_tests {
    use super::b64;

    struct Bytes(Vec<u8>);

    impl serde::Serialize for Bytes {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            b64::serialize_bytes(&self.0, s)
        }
    }

    /// Bytes serialized from the stack buffer are the text `encode` makes, at
    /// every length up to the buffer's and past it (the `String` fallback).
    #[test]
    fn serialized_bytes_are_the_encoded_text_at_every_length() {
        for len in 0..=200usize {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + len) as u8).collect();
            let json = serde_json::to_string(&Bytes(bytes.clone())).unwrap();
            assert_eq!(json, format!("\"{}\"", b64::encode(&bytes)), "{len} bytes");
        }
        let all: Vec<u8> = (0..=255u8).collect();
        for chunk in all.chunks(72) {
            let json = serde_json::to_string(&Bytes(chunk.to_vec())).unwrap();
            assert_eq!(json, format!("\"{}\"", b64::encode(chunk)));
        }
    }
}
