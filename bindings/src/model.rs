//! Records and enums the shells render for requests, authenticators and receipts.
//! Ids are the typed custom types of `ids.rs`; times are milliseconds.
//!
//! Enums whose FFI form is exactly the core's are declared with
//! `#[uniffi::remote(Enum)]`: uniffi derives the FFI form of the core's own
//! type, so there is no copy to convert from. The variant list is repeated
//! because a remote declaration must list it; the compiler checks every name
//! against the core's. (Deriving `uniffi::Enum` in eid-core and eid-protocol
//! behind a feature is not possible: uniffi's derive emits `unsafe impl`s,
//! which their `forbid(unsafe_code)` rejects, and feature unification would
//! lift that guarantee in every workspace build.) The core's enums are
//! `#[non_exhaustive]`, so the compiler cannot see a variant the core gains:
//! it must be added here as well, or lowering it panics at the boundary
//! (uniffi reports a caught panic as an internal error). Hand-written
//! records and enums remain only where the FFI shape differs; each says why.

use eid_core::{
    Action, AuthenticatorState, CallSignals, CallWarning, DisplayLine, Language, Signal,
    TextDirection, Warning, WarningKind,
};
use eid_protocol::wire::SignedReceipt;
use eid_protocol::{AuthenticatorId, IdentityId, RequestId};

/// Language of the display texts.
#[uniffi::remote(Enum)]
#[non_exhaustive]
pub enum Language {
    /// Danish.
    Danish,
    /// English.
    English,
}

/// What a request asks for. Hand-written: the FFI adds `Unknown` for a
/// kind a newer core knows and this build does not (only deny is offered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum RequestKind {
    /// A login.
    Login,
    /// A signature.
    Signature,
    /// A login to the eID's self-service (contact data, user ID).
    SelfService,
    /// Adding a new device: show the strongest warning.
    NewDevice,
    /// Activating a code device: show the strongest warning.
    CodeDevice,
    /// A kind this build does not know (the core offers only deny for it).
    Unknown,
}

impl From<eid_protocol::RequestKind> for RequestKind {
    fn from(k: eid_protocol::RequestKind) -> Self {
        match k {
            eid_protocol::RequestKind::Login => RequestKind::Login,
            eid_protocol::RequestKind::Signature => RequestKind::Signature,
            eid_protocol::RequestKind::SelfService => RequestKind::SelfService,
            eid_protocol::RequestKind::NewDevice => RequestKind::NewDevice,
            eid_protocol::RequestKind::CodeDevice => RequestKind::CodeDevice,
            _ => RequestKind::Unknown,
        }
    }
}

/// What the person may do with a request.
#[uniffi::remote(Enum)]
#[non_exhaustive]
pub enum Action {
    /// Approve: PIN, then swipe.
    Approve,
    /// Deny.
    Deny,
    /// Deny and report "this wasn't me".
    ReportFraud,
}

/// What a warning is about.
#[uniffi::remote(Enum)]
#[non_exhaustive]
pub enum WarningKind {
    /// Always shown: approve only what you started yourself.
    OnlyApproveWhatYouStarted,
    /// The reference text broke the rules and is hidden.
    TextRefused,
    /// The provider's name broke the rules and is hidden.
    ProviderNameRefused,
    /// A code from the login screen must be entered.
    BindingCodeRequired,
    /// A self-service login (contact data or user ID can change).
    SelfService,
    /// Approving adds a new device: the strongest warning.
    NewDevice,
    /// Approving activates a code device: the strongest warning.
    CodeDevice,
    /// A word mixes scripts (a look-alike letter, e.g. a Cyrillic "о").
    MixedScript,
    /// A phone or VoIP call is on: the strongest warning, shown first.
    OnCall,
    /// An accessibility service not from the system is on (remote control).
    RemoteControl,
    /// The screen is being shared, mirrored or recorded.
    ScreenShared,
}

/// One signal of the call context: on, off, or not known.
#[uniffi::remote(Enum)]
pub enum Signal {
    /// The platform could not tell (no API, no permission).
    Unknown,
    /// Observed off.
    Off,
    /// Observed on.
    On,
}

/// What the shell's `ContextProvider` sees: each signal on, off or unknown.
#[uniffi::remote(Record)]
pub struct CallSignals {
    /// A phone or VoIP call is active.
    pub call: Signal,
    /// The screen is shared, mirrored or recorded.
    pub screen_shared: Signal,
    /// An accessibility service that is not from the system is enabled.
    pub remote_control: Signal,
}

/// The call or screen-sharing warning and the words of the gate before the
/// swipe ("I started this myself").
#[uniffi::remote(Record)]
pub struct CallWarning {
    /// The warning (also first in `RequestView.warnings`).
    pub warning: Warning,
    /// The label of the confirmation the person gives before the swipe.
    pub confirm_label: String,
}

/// A warning with its text in the view's language.
#[uniffi::remote(Record)]
pub struct Warning {
    /// What it is about.
    pub kind: WarningKind,
    /// The text to show.
    pub text: String,
}

/// Everything the app shows for one pending request. Hand-written, like the
/// other records below: the FFI calls the authenticator `authenticator_id`, the
/// word the shells use, and the kind may be `Unknown`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RequestView {
    /// The authenticator it is for.
    pub authenticator_id: AuthenticatorId,
    /// That authenticator's user ID (tells household members apart).
    pub user_id: String,
    /// The request.
    pub request_id: RequestId,
    /// Login or signature.
    pub kind: RequestKind,
    /// Heading.
    pub title: String,
    /// The provider's registered name; absent if it broke the rules.
    pub provider_name: Option<String>,
    /// The reference text; absent if it broke the rules (then only deny).
    pub reference_text: Option<String>,
    /// The reference text line by line, each with its base direction: render
    /// each as its own paragraph with that direction, so right-to-left
    /// letters can't reorder an amount on a neighbouring line. Empty when the
    /// text broke the rules.
    pub reference_lines: Vec<DisplayLine>,
    /// Base direction of the provider's name (render it in its own element).
    pub provider_name_direction: TextDirection,
    /// Milliseconds left when this view was made (server deadline, monotonic).
    pub time_left_ms: u64,
    /// Warnings, most important first.
    pub warnings: Vec<Warning>,
    /// What the person may do.
    pub actions: Vec<Action>,
    /// Language of the texts.
    pub language: Language,
    /// What the context provider saw when this view was made.
    pub call_signals: CallSignals,
    /// The call or screen-sharing warning, when a signal is on.
    pub call_warning: Option<CallWarning>,
    /// Keep the swipe disabled: a signal is on and the person has not yet
    /// confirmed "I started this myself".
    pub needs_started_myself: bool,
}

impl From<eid_core::RequestView> for RequestView {
    fn from(v: eid_core::RequestView) -> Self {
        Self {
            authenticator_id: v.authenticator_id,
            user_id: v.user_id,
            request_id: v.request_id,
            kind: v.kind.into(),
            title: v.title,
            provider_name: v.provider_name,
            reference_text: v.reference_text,
            reference_lines: v.reference_lines,
            provider_name_direction: v.provider_name_direction,
            time_left_ms: v.time_left_ms,
            warnings: v.warnings,
            actions: v.actions,
            language: v.language,
            call_signals: v.call_signals,
            call_warning: v.call_warning,
            needs_started_myself: v.needs_started_myself,
        }
    }
}

/// Base direction of a line of text.
#[uniffi::remote(Enum)]
#[non_exhaustive]
pub enum TextDirection {
    /// Left to right.
    LeftToRight,
    /// Right to left.
    RightToLeft,
}

/// One line of a reference text with its base direction.
#[uniffi::remote(Record)]
pub struct DisplayLine {
    /// The line.
    pub text: String,
    /// Its base direction.
    pub direction: TextDirection,
}

/// State of an authenticator on this phone.
#[uniffi::remote(Enum)]
#[non_exhaustive]
pub enum AuthenticatorState {
    /// Usable.
    Active,
    /// The identity is blocked.
    Blocked,
    /// Must be activated again.
    NeedsReactivation,
}

/// One identity's authenticator on this phone.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AuthenticatorInfo {
    /// The authenticator (authenticator) id.
    pub authenticator_id: AuthenticatorId,
    /// The identity id.
    pub identity_id: IdentityId,
    /// The user ID typed at activation.
    pub user_id: String,
    /// Its state.
    pub state: AuthenticatorState,
    /// Activation time (Unix ms).
    pub created_at_ms: u64,
}

impl From<eid_core::AuthenticatorInfo> for AuthenticatorInfo {
    fn from(a: eid_core::AuthenticatorInfo) -> Self {
        Self {
            authenticator_id: a.authenticator_id,
            identity_id: a.identity_id,
            user_id: a.user_id,
            state: a.state,
            created_at_ms: a.created_at_ms,
        }
    }
}

/// One person on a shared phone, as the household's first screen shows them.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PersonSummary {
    /// Their authenticator id (pass it to `requestsFor`).
    pub authenticator_id: AuthenticatorId,
    /// Their user ID.
    pub user_id: String,
    /// The authenticator's state.
    pub state: AuthenticatorState,
    /// Unexpired requests waiting.
    pub pending_requests: u32,
    /// One line for the list.
    pub headline: String,
    /// What to do next when the authenticator can't be used.
    pub next_step: Option<String>,
}

impl From<eid_core::PersonSummary> for PersonSummary {
    fn from(p: eid_core::PersonSummary) -> Self {
        Self {
            authenticator_id: p.authenticator_id,
            user_id: p.user_id,
            state: p.state,
            pending_requests: p.pending_requests,
            headline: p.headline,
            next_step: p.next_step,
        }
    }
}

/// An activation interrupted before the server answered.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PendingActivation {
    /// The user ID it was started with.
    pub user_id: String,
    /// When (Unix ms).
    pub created_at_ms: u64,
}

/// The decision a receipt records. Hand-written: the FFI names the outcome
/// in the past tense, as a receipt reads (`Approved`, not the protocol's
/// `Approve`), which the shells' code already uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Outcome {
    /// Approved.
    Approved,
    /// Denied.
    Denied,
    /// Denied and reported as fraud.
    FraudReported,
}

impl From<eid_protocol::Outcome> for Outcome {
    fn from(o: eid_protocol::Outcome) -> Self {
        match o {
            eid_protocol::Outcome::Approve => Self::Approved,
            eid_protocol::Outcome::Deny => Self::Denied,
            _ => Self::FraudReported,
        }
    }
}

/// The server's signed receipt of a decision, already verified by the core.
/// Hand-written: the FFI gives the body's fields flat, without the server's
/// signature (the core verified it), and the text hash as hex.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Receipt {
    /// The request.
    pub request_id: RequestId,
    /// The deciding authenticator.
    pub authenticator_id: AuthenticatorId,
    /// What was decided.
    pub outcome: Outcome,
    /// When the server accepted it (Unix ms).
    pub decided_at_ms: u64,
    /// SHA-256 of the exact reference text decided on, hex.
    pub reference_text_sha256: String,
}

impl From<SignedReceipt> for Receipt {
    fn from(r: SignedReceipt) -> Self {
        let body = r.receipt;
        Self {
            request_id: body.request_id,
            authenticator_id: body.authenticator_id,
            outcome: body.outcome.into(),
            decided_at_ms: body.decided_at_ms,
            reference_text_sha256: hex_lower(&body.reference_text_sha256),
        }
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
