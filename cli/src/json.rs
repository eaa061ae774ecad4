//! The JSON objects `eid --json` prints: one struct per shape. Scripts, the
//! README and the Kotlin and Swift shells' tests read these field names, so
//! they are a stable interface: never rename or drop a field.
//!
//! Fields are declared in alphabetical order, the order the CLI has always
//! printed. An absent value prints as the HTTP API prints it: a field the
//! API leaves out (`skip_serializing_if` in `eid_protocol::wire`) is left out
//! here too, one the API prints as `null` is `null` here.
//! Errors have their own shape in `error.rs`.

use eid_core::{Action, AuthenticatorInfo, Language, RequestView, WarningKind};
use eid_protocol::wire::{
    AuthenticatorInfo as WireAuthenticatorInfo, ChangeState, ContactChannel, ErrorCode,
    IdentityInfo, RequestStatus, RequestStatusResponse, SignedReceipt,
};
use eid_protocol::{Outcome, RequestKind};
use serde::Serialize;

// ------------------------------------------------------------------ admin

/// `admin create-identity`, and the demo's identity.
#[derive(Debug, Serialize)]
pub(crate) struct IdentityCreated {
    pub(crate) identity_id: String,
    pub(crate) user_id: String,
}

/// `admin activation-code`.
#[derive(Debug, Serialize)]
pub(crate) struct ActivationCodeIssued {
    pub(crate) activation_code: String,
    pub(crate) expires_at_ms: u64,
    pub(crate) identity_id: String,
}

/// `admin show`, `block` and `unblock`: an identity and its authenticators.
#[derive(Debug, Serialize)]
pub(crate) struct Identity {
    pub(crate) authenticators: Vec<IdentityAuthenticator>,
    pub(crate) blocked: bool,
    pub(crate) email_masked: Option<String>,
    pub(crate) identity_id: String,
    pub(crate) phone_masked: Option<String>,
    pub(crate) user_id: String,
}

impl From<&IdentityInfo> for Identity {
    fn from(info: &IdentityInfo) -> Self {
        Self {
            authenticators: info.authenticators.iter().map(Into::into).collect(),
            blocked: info.blocked,
            email_masked: info.email_masked.clone(),
            identity_id: info.identity_id.to_string(),
            phone_masked: info.phone_masked.clone(),
            user_id: info.user_id.clone(),
        }
    }
}

/// One API key in `admin api-keys`, `rotate-api-key` and `revoke-api-key`.
#[derive(Debug, Serialize)]
pub(crate) struct ApiKey {
    pub(crate) created_at_ms: u64,
    pub(crate) expires_at_ms: Option<u64>,
    pub(crate) key_id: u64,
    pub(crate) revoked_at_ms: Option<u64>,
    pub(crate) state: String,
}

/// `admin api-keys` and `revoke-api-key`.
#[derive(Debug, Serialize)]
pub(crate) struct ApiKeys {
    pub(crate) keys: Vec<ApiKey>,
    pub(crate) service_provider_id: String,
}

/// `admin rotate-api-key`: the new key, shown once.
#[derive(Debug, Serialize)]
pub(crate) struct ApiKeyRotated {
    pub(crate) api_key: String,
    pub(crate) key: ApiKey,
    pub(crate) old_keys_expire_at_ms: u64,
    pub(crate) service_provider_id: String,
}

/// `admin set-webhook`: the signing secret, shown once.
#[derive(Debug, Serialize)]
pub(crate) struct WebhookSet {
    pub(crate) secret: Option<String>,
    pub(crate) service_provider_id: String,
    pub(crate) url: Option<String>,
}

/// `admin create-agent`, `list-agents` and `revoke-agent`: one agent.
#[derive(Debug, Serialize)]
pub(crate) struct Agent {
    pub(crate) agent_id: u64,
    pub(crate) created_at_ms: u64,
    pub(crate) name: String,
    pub(crate) revoked_at_ms: Option<u64>,
    pub(crate) role: String,
    /// Only `create-agent` prints the token (once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) token: Option<String>,
}

/// `admin list-agents`.
#[derive(Debug, Serialize)]
pub(crate) struct Agents {
    pub(crate) agents: Vec<Agent>,
}

/// One row of `admin audit`.
#[derive(Debug, Serialize)]
pub(crate) struct AuditEntry {
    pub(crate) action: String,
    pub(crate) agent_id: Option<u64>,
    pub(crate) agent_name: String,
    pub(crate) at_ms: u64,
    pub(crate) audit_id: u64,
    pub(crate) identity_id: Option<String>,
    pub(crate) outcome: String,
    pub(crate) reason: Option<String>,
    pub(crate) service_provider_id: Option<String>,
    pub(crate) target_agent_id: Option<u64>,
}

/// `admin audit`.
#[derive(Debug, Serialize)]
pub(crate) struct Audit {
    pub(crate) entries: Vec<AuditEntry>,
}

/// One authenticator of [`Identity`], as the broker sees it.
#[derive(Debug, Serialize)]
pub(crate) struct IdentityAuthenticator {
    pub(crate) activated_at_ms: u64,
    pub(crate) authenticator_id: String,
    pub(crate) failed_pin_count: u32,
    pub(crate) state: eid_protocol::wire::AccountState,
}

impl From<&WireAuthenticatorInfo> for IdentityAuthenticator {
    fn from(a: &WireAuthenticatorInfo) -> Self {
        Self {
            activated_at_ms: a.activated_at_ms,
            authenticator_id: a.authenticator_id.to_string(),
            failed_pin_count: a.failed_pin_count,
            state: a.state,
        }
    }
}

/// `admin register-provider` (the API key is shown only this once).
#[derive(Debug, Serialize)]
pub(crate) struct ProviderRegistered {
    pub(crate) api_key: String,
    pub(crate) name: String,
    pub(crate) service_provider_id: String,
}

/// `admin register-oidc-client` (the client secret is shown only this once).
#[derive(Debug, Serialize)]
pub(crate) struct OidcClientRegistered {
    pub(crate) client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) client_secret: Option<String>,
    pub(crate) redirect_uris: Vec<String>,
    pub(crate) scopes: Vec<String>,
    pub(crate) sector: String,
    pub(crate) service_provider_id: String,
    pub(crate) token_endpoint_auth_methods: Vec<String>,
}

// ------------------------------------------------------------------ rp

/// `admin import-tokens`.
#[derive(Debug, Serialize)]
pub(crate) struct TokenBatchImported {
    pub(crate) batch_id: String,
    pub(crate) label: String,
    pub(crate) serials: Vec<String>,
}

/// `token request-activation`.
#[derive(Debug, Serialize)]
pub(crate) struct CodeDeviceActivationRequested {
    pub(crate) request_id: String,
    pub(crate) expires_at_ms: u64,
}

/// `token code`.
#[derive(Debug, Serialize)]
pub(crate) struct TokenCode {
    pub(crate) at_ms: u64,
    pub(crate) code: String,
    pub(crate) next_code_at_ms: u64,
    pub(crate) serial: String,
    pub(crate) step: u64,
}

/// `rp binding-code`.
#[derive(Debug, Serialize)]
pub(crate) struct BindingCode {
    pub(crate) at_ms: u64,
    pub(crate) code: String,
    pub(crate) next_code_at_ms: u64,
    pub(crate) qr_payload: String,
}

/// `rp request`.
#[derive(Debug, Serialize)]
pub(crate) struct RequestCreated {
    /// With `--binding code` (or the code given); absent otherwise, as in the API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) binding_code: Option<String>,
    /// With `--binding qr`; absent otherwise, as in the API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) binding_secret: Option<String>,
    pub(crate) created_at_ms: u64,
    pub(crate) expires_at_ms: u64,
    pub(crate) request_id: String,
}

/// `rp status` and `rp cancel`, and the demo's `rp`: a request's status as
/// the service provider reads it.
#[derive(Debug, Serialize)]
pub(crate) struct Status {
    /// What the phone saw about calls and screen sharing (absent while
    /// pending and for an older phone's decision).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) call_context: Option<eid_protocol::CallContext>,
    /// What the server's call policy did: `clear`, `allowed`, `flagged` or
    /// `stopped`.
    pub(crate) call_verdict: eid_protocol::CallVerdict,
    pub(crate) created_at_ms: u64,
    pub(crate) expires_at_ms: u64,
    pub(crate) kind: RequestKind,
    /// `null` without a (verified) receipt, as in the API.
    pub(crate) receipt: Option<ProviderReceipt>,
    /// The server's SHA-256 of the reference text (base64url, as in the API).
    pub(crate) reference_text_sha256: String,
    pub(crate) request_id: String,
    pub(crate) status: RequestStatus,
    /// Whether the reference text was checked against the text sent
    /// (`rp status --text`): `false` means the receipt was verified against
    /// the server's own hash only.
    pub(crate) text_checked: bool,
}

impl Status {
    /// A status with its checked receipt; `text_checked` when the reference
    /// text was compared with the one sent.
    pub(crate) fn new(
        status: &RequestStatusResponse,
        receipt: Option<ProviderReceipt>,
        text_checked: bool,
    ) -> Self {
        Self {
            call_context: status.call_context,
            call_verdict: status.call_verdict,
            created_at_ms: status.created_at_ms,
            expires_at_ms: status.expires_at_ms,
            kind: status.kind,
            receipt,
            reference_text_sha256: eid_protocol::wire::b64::encode(&status.reference_text_sha256),
            request_id: status.request_id.to_string(),
            status: status.status,
            text_checked,
        }
    }
}

/// A receipt the service provider verified against the server key: every
/// field of the API's signed receipt (body and signature, hashes and the
/// signature in base64url as in the API), to keep or verify again.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ProviderReceipt {
    pub(crate) authenticator_id: String,
    /// The call context a version-2 receipt signs (absent in version 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) call_context: Option<eid_protocol::CallContext>,
    pub(crate) counter: u64,
    pub(crate) decided_at_ms: u64,
    pub(crate) decision_sha256: String,
    pub(crate) identity_id: String,
    pub(crate) kind: RequestKind,
    pub(crate) outcome: Outcome,
    pub(crate) reference_text_sha256: String,
    pub(crate) request_id: String,
    pub(crate) service_provider_id: String,
    /// The server's signature over the receipt body (DER, base64url).
    pub(crate) signature: String,
    /// Always `true`: only verified receipts are printed.
    pub(crate) verified: bool,
}

impl From<&SignedReceipt> for ProviderReceipt {
    /// The receipt's fields; call only once it verified.
    fn from(signed: &SignedReceipt) -> Self {
        let r = &signed.receipt;
        Self {
            authenticator_id: r.authenticator_id.to_string(),
            call_context: r.call_context,
            counter: r.counter,
            decided_at_ms: r.decided_at_ms,
            decision_sha256: eid_protocol::wire::b64::encode(&r.decision_sha256),
            identity_id: r.identity_id.to_string(),
            kind: r.kind,
            outcome: r.outcome,
            reference_text_sha256: eid_protocol::wire::b64::encode(&r.reference_text_sha256),
            request_id: r.request_id.to_string(),
            service_provider_id: r.service_provider_id.to_string(),
            signature: eid_protocol::wire::b64::encode(&signed.signature.0),
            verified: true,
        }
    }
}

// ------------------------------------------------------------------ self-service

/// `self-service change-contact`, `confirm` and `change-user-id`.
#[derive(Debug, Serialize)]
pub(crate) struct SelfServiceStep {
    /// The code the person types in the app to approve this login (it binds
    /// the login to this portal session).
    pub(crate) binding_code: String,
    pub(crate) change_id: String,
    pub(crate) expires_at_ms: u64,
    pub(crate) request_id: String,
}

/// `self-service status` and `user-id-status`.
#[derive(Debug, Serialize)]
pub(crate) struct ChangeStatus {
    pub(crate) change_id: String,
    /// Absent for a user-ID change (as in the API).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) channel: Option<ContactChannel>,
    /// Absent until the first login is approved (as in the API).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) earliest_second_login_at_ms: Option<u64>,
    /// Absent unless the change failed (as in the API).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) failure: Option<ChangeFailure>,
    pub(crate) state: ChangeState,
}

/// Why a change failed.
#[derive(Debug, Serialize)]
pub(crate) struct ChangeFailure {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
}

// ------------------------------------------------------------------ app

/// An authenticator on this phone (JSON key "account", a frozen spelling: docs/glossary.md).
#[derive(Debug, Serialize)]
pub(crate) struct PhoneAuthenticator {
    pub(crate) authenticator_id: String,
    pub(crate) created_at_ms: u64,
    pub(crate) identity_id: String,
    /// Only in `app authenticators`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) notify_every_use: Option<bool>,
    pub(crate) state: &'static str,
    pub(crate) user_id: String,
}

impl From<&AuthenticatorInfo> for PhoneAuthenticator {
    fn from(a: &AuthenticatorInfo) -> Self {
        Self {
            authenticator_id: a.authenticator_id.to_string(),
            created_at_ms: a.created_at_ms,
            identity_id: a.identity_id.to_string(),
            notify_every_use: None,
            state: authenticator_state_name(a.state),
            user_id: a.user_id.clone(),
        }
    }
}

/// The stable name of an authenticator state (text and JSON).
pub(crate) fn authenticator_state_name(s: eid_core::AuthenticatorState) -> &'static str {
    match s {
        eid_core::AuthenticatorState::Active => "active",
        eid_core::AuthenticatorState::Blocked => "blocked",
        eid_core::AuthenticatorState::NeedsReactivation => "needs_reactivation",
        _ => "other",
    }
}

/// `app activate` and `app resume-activation`.
#[derive(Debug, Serialize)]
pub(crate) struct Activated {
    #[serde(rename = "account")]
    pub(crate) authenticator: PhoneAuthenticator,
    pub(crate) ms: u64,
}

/// `app retry`.
#[derive(Debug, Serialize)]
pub(crate) struct Retried {
    pub(crate) resent_decisions: usize,
}

/// `app authenticators`.
#[derive(Debug, Serialize)]
pub(crate) struct PhoneAuthenticators {
    #[serde(rename = "accounts")]
    pub(crate) authenticators: Vec<PhoneAuthenticator>,
    /// Whether the states were just fetched from the server; `false` when
    /// it could not be reached and they are the last known ones.
    pub(crate) refreshed: bool,
    /// When the server last gave the states (Unix ms); absent if never.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) seen_at_ms: Option<u64>,
}

/// `app open`: every authenticator's pending requests.
#[derive(Debug, Serialize)]
pub(crate) struct Opened {
    #[serde(rename = "accounts")]
    pub(crate) authenticators: Vec<PhoneAuthenticator>,
    pub(crate) requests: Vec<Screen>,
    pub(crate) resent_decisions: usize,
}

/// `app open --authenticator`: one person's pending requests.
#[derive(Debug, Serialize)]
pub(crate) struct OpenedAuthenticator {
    #[serde(rename = "account")]
    pub(crate) authenticator: PhoneAuthenticator,
    pub(crate) requests: Vec<Screen>,
    pub(crate) resent_decisions: usize,
}

/// A request as the app's screen shows it (the core's display model).
#[derive(Debug, Serialize)]
pub(crate) struct Screen {
    pub(crate) actions: Vec<ScreenAction>,
    pub(crate) authenticator_id: String,
    pub(crate) kind: RequestKind,
    pub(crate) language: &'static str,
    /// `null` when the name broke the text rules.
    pub(crate) provider_name: Option<String>,
    /// `null` when the text broke the text rules.
    pub(crate) reference_text: Option<String>,
    pub(crate) request_id: String,
    pub(crate) time_left_ms: u64,
    pub(crate) title: String,
    pub(crate) user_id: String,
    pub(crate) warnings: Vec<ScreenWarning>,
    /// What the phone was told about calls and screen sharing (`--on-call`,
    /// ...): `on`, `off` or `unknown` each.
    pub(crate) call_signals: eid_protocol::CallContext,
    /// The swipe waits for "I started this myself" (`--started-it-myself`).
    pub(crate) needs_started_myself: bool,
}

/// A warning on a [`Screen`].
#[derive(Debug, Serialize)]
pub(crate) struct ScreenWarning {
    pub(crate) kind: &'static str,
    pub(crate) text: String,
}

/// A button on a [`Screen`].
#[derive(Debug, Serialize)]
pub(crate) struct ScreenAction {
    pub(crate) action: &'static str,
    pub(crate) label: String,
}

impl From<&RequestView> for Screen {
    fn from(v: &RequestView) -> Self {
        Self {
            actions: v
                .actions
                .iter()
                .map(|a| ScreenAction {
                    action: action_name(*a),
                    label: a.label(v.language).to_string(),
                })
                .collect(),
            authenticator_id: v.authenticator_id.to_string(),
            kind: v.kind,
            language: language_code(v.language),
            provider_name: v.provider_name.clone(),
            reference_text: v.reference_text.clone(),
            request_id: v.request_id.to_string(),
            time_left_ms: v.time_left_ms,
            title: v.title.clone(),
            user_id: v.user_id.clone(),
            warnings: v
                .warnings
                .iter()
                .map(|w| ScreenWarning {
                    kind: warning_kind_name(w.kind),
                    text: w.text.clone(),
                })
                .collect(),
            call_signals: v.call_signals.signed(false),
            needs_started_myself: v.needs_started_myself,
        }
    }
}

/// The stable name of a warning kind.
fn warning_kind_name(kind: WarningKind) -> &'static str {
    match kind {
        WarningKind::OnlyApproveWhatYouStarted => "only_approve_what_you_started",
        WarningKind::TextRefused => "text_refused",
        WarningKind::ProviderNameRefused => "provider_name_refused",
        WarningKind::BindingCodeRequired => "binding_code_required",
        WarningKind::SelfService => "self_service",
        WarningKind::NewDevice => "new_device",
        WarningKind::CodeDevice => "code_device",
        WarningKind::MixedScript => "mixed_script",
        WarningKind::OnCall => "on_call",
        WarningKind::RemoteControl => "remote_control",
        WarningKind::ScreenShared => "screen_shared",
        // A kind added to the core later prints as "other" until it is named here.
        _ => "other",
    }
}

/// The stable name of an action.
fn action_name(action: Action) -> &'static str {
    match action {
        Action::Approve => "approve",
        Action::Deny => "deny",
        Action::ReportFraud => "report_fraud",
        _ => "other",
    }
}

fn language_code(lang: Language) -> &'static str {
    match lang {
        Language::English => "en",
        _ => "da",
    }
}

/// `app approve`, `deny` and `report`.
#[derive(Debug, Serialize)]
pub(crate) struct Decided {
    pub(crate) authenticator_id: String,
    pub(crate) receipt: AppReceipt,
    pub(crate) request_id: String,
    pub(crate) result: DecisionResult,
}

/// What the person decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DecisionResult {
    /// Approved with PIN and swipe.
    Approved,
    /// Denied.
    Denied,
    /// Denied and reported as fraud.
    FraudReported,
}

impl std::fmt::Display for DecisionResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::output::serde_name(self))
    }
}

/// A receipt the app received (and the core already verified).
#[derive(Debug, Serialize)]
pub(crate) struct AppReceipt {
    pub(crate) authenticator_id: String,
    pub(crate) counter: u64,
    pub(crate) decided_at_ms: u64,
    pub(crate) outcome: Outcome,
    pub(crate) request_id: String,
    /// The call context the receipt signs (absent in a version-1 receipt).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) call_context: Option<eid_protocol::CallContext>,
    /// Always `true`: the core returns only verified receipts.
    pub(crate) verified: bool,
}

impl From<&SignedReceipt> for AppReceipt {
    fn from(r: &SignedReceipt) -> Self {
        Self {
            authenticator_id: r.receipt.authenticator_id.to_string(),
            counter: r.receipt.counter,
            decided_at_ms: r.receipt.decided_at_ms,
            outcome: r.receipt.outcome,
            request_id: r.receipt.request_id.to_string(),
            call_context: r.receipt.call_context,
            verified: true,
        }
    }
}

/// `app block`.
#[derive(Debug, Serialize)]
pub(crate) struct IdentityBlocked {
    pub(crate) authenticator_id: String,
    /// Always `"blocked"`.
    pub(crate) state: &'static str,
}

/// `app enrol`.
#[derive(Debug, Serialize)]
pub(crate) struct EnrolmentStarted {
    pub(crate) code: String,
    pub(crate) enrolment_id: String,
    pub(crate) expires_at_ms: u64,
    pub(crate) qr_payload: String,
}

/// `app enrol-status`: `state` and the fields of that state.
#[derive(Debug, Serialize)]
pub(crate) struct EnrolmentState {
    /// With `activated`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(rename = "account")]
    pub(crate) authenticator: Option<PhoneAuthenticator>,
    /// With `waiting`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) remaining_ms: Option<u64>,
    /// `awaiting_approval`, `waiting` or `activated`.
    pub(crate) state: String,
    /// With `waiting`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) usable_at_ms: Option<u64>,
}

impl EnrolmentState {
    /// A state without fields.
    pub(crate) fn bare(state: impl Into<String>) -> Self {
        Self {
            authenticator: None,
            remaining_ms: None,
            state: state.into(),
            usable_at_ms: None,
        }
    }
}

/// `app enrol-discard`.
#[derive(Debug, Serialize)]
pub(crate) struct EnrolmentDiscarded {
    /// Always `true`.
    pub(crate) discarded: bool,
}

/// `app devices`.
#[derive(Debug, Serialize)]
pub(crate) struct Devices {
    pub(crate) devices: Vec<Device>,
}

/// A new device being added to the identity.
#[derive(Debug, Serialize)]
pub(crate) struct Device {
    pub(crate) enrolment_id: String,
    pub(crate) requested_at_ms: u64,
    /// `awaiting_approval` or `waiting`.
    pub(crate) state: &'static str,
    pub(crate) usable_at_ms: Option<u64>,
}

/// `app cancel-device`.
#[derive(Debug, Serialize)]
pub(crate) struct DeviceCancelled {
    pub(crate) enrolment_id: String,
    /// Always `"cancelled"`.
    pub(crate) state: &'static str,
}

/// `app events`.
#[derive(Debug, Serialize)]
pub(crate) struct Events {
    pub(crate) authenticator_id: String,
    pub(crate) events: Vec<Event>,
}

/// An event of the security feed.
#[derive(Debug, Serialize)]
pub(crate) struct Event {
    pub(crate) body: String,
    pub(crate) critical: bool,
    pub(crate) event_id: u64,
    pub(crate) kind: &'static str,
    pub(crate) occurred_at_ms: u64,
    pub(crate) this_device: bool,
    pub(crate) title: String,
}

/// `app notify`.
#[derive(Debug, Serialize)]
pub(crate) struct NotifySet {
    pub(crate) authenticator_id: String,
    pub(crate) notify_every_use: bool,
}

/// `app household`.
#[derive(Debug, Serialize)]
pub(crate) struct Household {
    pub(crate) people: Vec<Person>,
}

/// One person of the household: counts only.
#[derive(Debug, Serialize)]
pub(crate) struct Person {
    pub(crate) authenticator_id: String,
    pub(crate) headline: String,
    pub(crate) next_step: Option<String>,
    pub(crate) pending_requests: u32,
    pub(crate) state: &'static str,
    pub(crate) user_id: String,
}

/// `app changes`.
#[derive(Debug, Serialize)]
pub(crate) struct Changes {
    pub(crate) authenticator_id: String,
    pub(crate) changes: Vec<Change>,
}

/// An open contact change.
#[derive(Debug, Serialize)]
pub(crate) struct Change {
    pub(crate) change_id: String,
    pub(crate) channel: ContactChannel,
    pub(crate) created_at_ms: u64,
    pub(crate) earliest_completion_at_ms: Option<u64>,
    pub(crate) new_value_masked: String,
    pub(crate) state: ChangeState,
}

/// `app cancel-change`.
#[derive(Debug, Serialize)]
pub(crate) struct ChangeCancelled {
    pub(crate) change_id: String,
    /// Always `"cancelled"`.
    pub(crate) state: &'static str,
}

// ------------------------------------------------------------------ serve

/// `serve`: where the server listens (printed at start).
#[derive(Debug, Serialize)]
pub(crate) struct Listening {
    pub(crate) admin_token_file: String,
    pub(crate) database: String,
    pub(crate) listening: String,
    pub(crate) pid: u32,
    pub(crate) spki_pin: String,
}

/// `serve`, after Ctrl-C.
#[derive(Debug, Serialize)]
pub(crate) struct Stopped {
    /// Always `true`.
    pub(crate) stopped: bool,
}

// ------------------------------------------------------------------ demo

/// `demo`: the whole journey.
#[derive(Debug, Serialize)]
pub(crate) struct DemoSummary {
    #[serde(rename = "account")]
    pub(crate) authenticator: PhoneAuthenticator,
    pub(crate) identity: IdentityCreated,
    pub(crate) login: DemoDecision,
    /// Always `true`: a failed demo prints an error.
    pub(crate) ok: bool,
    pub(crate) refusal: DemoDecision,
    pub(crate) server: DemoServer,
    pub(crate) service_provider: DemoProvider,
    pub(crate) steps: Vec<DemoStep>,
    pub(crate) total_ms: u64,
}

/// One decision of the demo, seen by the app and by the service provider.
#[derive(Debug, Serialize)]
pub(crate) struct DemoDecision {
    pub(crate) app_receipt: AppReceipt,
    pub(crate) receipt_verified: bool,
    pub(crate) request: Screen,
    pub(crate) rp: Status,
    pub(crate) status: RequestStatus,
}

/// The demo's embedded server.
#[derive(Debug, Serialize)]
pub(crate) struct DemoServer {
    pub(crate) spki_pin: String,
    pub(crate) url: String,
}

/// The demo's service provider.
#[derive(Debug, Serialize)]
pub(crate) struct DemoProvider {
    pub(crate) id: String,
    pub(crate) name: String,
}

/// A finished demo step and how long it took.
#[derive(Debug, Serialize)]
pub(crate) struct DemoStep {
    pub(crate) ms: u64,
    pub(crate) step: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_warning_kind_of_the_core_has_its_own_json_name() {
        let kinds = [
            (
                WarningKind::OnlyApproveWhatYouStarted,
                "only_approve_what_you_started",
            ),
            (WarningKind::TextRefused, "text_refused"),
            (WarningKind::ProviderNameRefused, "provider_name_refused"),
            (WarningKind::BindingCodeRequired, "binding_code_required"),
            (WarningKind::SelfService, "self_service"),
            (WarningKind::NewDevice, "new_device"),
            (WarningKind::CodeDevice, "code_device"),
            (WarningKind::MixedScript, "mixed_script"),
            (WarningKind::OnCall, "on_call"),
            (WarningKind::RemoteControl, "remote_control"),
            (WarningKind::ScreenShared, "screen_shared"),
        ];
        for (kind, name) in kinds {
            assert_eq!(warning_kind_name(kind), name);
        }
    }

    fn authenticator(notify_every_use: Option<bool>) -> PhoneAuthenticator {
        PhoneAuthenticator {
            authenticator_id: "a1".into(),
            created_at_ms: 5,
            identity_id: "i1".into(),
            notify_every_use,
            state: "active",
            user_id: "grete#1950x".into(),
        }
    }

    #[test]
    fn an_authenticator_shows_notify_every_use_only_in_the_authenticator_list() {
        assert_eq!(
            serde_json::to_string(&authenticator(None)).unwrap(),
            r#"{"authenticator_id":"a1","created_at_ms":5,"identity_id":"i1","state":"active","user_id":"grete#1950x"}"#
        );
        assert_eq!(
            serde_json::to_string(&authenticator(Some(true))).unwrap(),
            r#"{"authenticator_id":"a1","created_at_ms":5,"identity_id":"i1","notify_every_use":true,"state":"active","user_id":"grete#1950x"}"#
        );
    }

    #[test]
    fn an_enrolment_state_prints_only_the_fields_of_its_state() {
        let waiting = EnrolmentState {
            remaining_ms: Some(60_000),
            usable_at_ms: Some(99),
            ..EnrolmentState::bare("waiting")
        };
        assert_eq!(
            serde_json::to_string(&waiting).unwrap(),
            r#"{"remaining_ms":60000,"state":"waiting","usable_at_ms":99}"#
        );
        assert_eq!(
            serde_json::to_string(&EnrolmentState::bare("awaiting_approval")).unwrap(),
            r#"{"state":"awaiting_approval"}"#
        );
    }

    #[test]
    fn absent_values_are_left_out_where_the_api_leaves_them_out() {
        let created = RequestCreated {
            binding_code: None,
            binding_secret: None,
            created_at_ms: 1,
            expires_at_ms: 2,
            request_id: "r1".into(),
        };
        assert_eq!(
            serde_json::to_string(&created).unwrap(),
            r#"{"created_at_ms":1,"expires_at_ms":2,"request_id":"r1"}"#
        );
        let status = ChangeStatus {
            change_id: "c1".into(),
            channel: None,
            earliest_second_login_at_ms: None,
            failure: None,
            state: ChangeState::AwaitingFirstLogin,
        };
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            serde_json::json!({"change_id": "c1", "state": status.state})
        );
    }

    #[test]
    fn absent_values_print_null_where_the_api_prints_null() {
        let agent = Agent {
            agent_id: 1,
            created_at_ms: 2,
            name: "Ann".into(),
            revoked_at_ms: None,
            role: "support".into(),
            token: None,
        };
        assert_eq!(
            serde_json::to_string(&agent).unwrap(),
            r#"{"agent_id":1,"created_at_ms":2,"name":"Ann","revoked_at_ms":null,"role":"support"}"#
        );
    }

    #[test]
    fn decision_results_print_their_snake_case_names() {
        assert_eq!(DecisionResult::FraudReported.to_string(), "fraud_reported");
        assert_eq!(
            serde_json::to_string(&DecisionResult::Approved).unwrap(),
            r#""approved""#
        );
    }
}
