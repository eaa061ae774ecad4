//! Records and enums the shells render. Ids are lowercase hex strings; times
//! are milliseconds.

use eid_protocol::wire::SignedReceipt;

/// Language of the display texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Language {
    /// Danish.
    Danish,
    /// English.
    English,
}

impl From<Language> for eid_core::Language {
    fn from(l: Language) -> Self {
        match l {
            Language::Danish => eid_core::Language::Danish,
            Language::English => eid_core::Language::English,
        }
    }
}

impl From<eid_core::Language> for Language {
    fn from(l: eid_core::Language) -> Self {
        match l {
            eid_core::Language::English => Language::English,
            _ => Language::Danish,
        }
    }
}

/// What a request asks for.
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
            _ => RequestKind::Unknown,
        }
    }
}

/// What the person may do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Action {
    /// Approve: PIN, then swipe.
    Approve,
    /// Deny.
    Deny,
    /// Deny and report "this wasn't me".
    ReportFraud,
}

impl From<eid_core::Action> for Action {
    fn from(a: eid_core::Action) -> Self {
        match a {
            eid_core::Action::Approve => Action::Approve,
            eid_core::Action::Deny => Action::Deny,
            _ => Action::ReportFraud,
        }
    }
}

/// What a warning is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
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
    /// A word mixes scripts (a look-alike letter, e.g. a Cyrillic "о").
    MixedScript,
}

impl From<eid_core::WarningKind> for WarningKind {
    fn from(k: eid_core::WarningKind) -> Self {
        match k {
            eid_core::WarningKind::TextRefused => WarningKind::TextRefused,
            eid_core::WarningKind::ProviderNameRefused => WarningKind::ProviderNameRefused,
            eid_core::WarningKind::BindingCodeRequired => WarningKind::BindingCodeRequired,
            eid_core::WarningKind::SelfService => WarningKind::SelfService,
            eid_core::WarningKind::NewDevice => WarningKind::NewDevice,
            eid_core::WarningKind::MixedScript => WarningKind::MixedScript,
            _ => WarningKind::OnlyApproveWhatYouStarted,
        }
    }
}

/// A warning with its text in the view's language.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Warning {
    /// What it is about.
    pub kind: WarningKind,
    /// The text to show.
    pub text: String,
}

/// Everything the app shows for one pending request.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RequestView {
    /// The account it is for (hex).
    pub account_id: String,
    /// That account's user ID (tells household members apart).
    pub user_id: String,
    /// The request (hex).
    pub request_id: String,
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
}

impl From<eid_core::RequestView> for RequestView {
    fn from(v: eid_core::RequestView) -> Self {
        Self {
            account_id: v.authenticator_id.to_string(),
            user_id: v.user_id,
            request_id: v.request_id.to_string(),
            kind: v.kind.into(),
            title: v.title,
            provider_name: v.provider_name,
            reference_text: v.reference_text,
            reference_lines: v
                .reference_lines
                .into_iter()
                .map(|l| DisplayLine {
                    text: l.text,
                    direction: l.direction.into(),
                })
                .collect(),
            provider_name_direction: v.provider_name_direction.into(),
            time_left_ms: v.time_left_ms,
            warnings: v
                .warnings
                .into_iter()
                .map(|w| Warning {
                    kind: w.kind.into(),
                    text: w.text,
                })
                .collect(),
            actions: v.actions.into_iter().map(Action::from).collect(),
            language: v.language.into(),
        }
    }
}

/// Base direction of a line of text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum TextDirection {
    /// Left to right.
    LeftToRight,
    /// Right to left.
    RightToLeft,
}

impl From<eid_core::TextDirection> for TextDirection {
    fn from(d: eid_core::TextDirection) -> Self {
        match d {
            eid_core::TextDirection::RightToLeft => Self::RightToLeft,
            _ => Self::LeftToRight,
        }
    }
}

/// One line of a reference text with its base direction.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct DisplayLine {
    /// The line.
    pub text: String,
    /// Its base direction.
    pub direction: TextDirection,
}

/// State of an account on this phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum AccountState {
    /// Usable.
    Active,
    /// The identity is blocked.
    Blocked,
    /// Must be activated again.
    NeedsReactivation,
}

impl From<eid_core::AccountState> for AccountState {
    fn from(s: eid_core::AccountState) -> Self {
        match s {
            eid_core::AccountState::Active => AccountState::Active,
            eid_core::AccountState::Blocked => AccountState::Blocked,
            _ => AccountState::NeedsReactivation,
        }
    }
}

/// One identity's account on this phone.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AccountInfo {
    /// The account (authenticator) id, hex.
    pub account_id: String,
    /// The identity id, hex.
    pub identity_id: String,
    /// The user ID typed at activation.
    pub user_id: String,
    /// Its state.
    pub state: AccountState,
    /// Activation time (Unix ms).
    pub created_at_ms: u64,
}

impl From<eid_core::AccountInfo> for AccountInfo {
    fn from(a: eid_core::AccountInfo) -> Self {
        Self {
            account_id: a.authenticator_id.to_string(),
            identity_id: a.identity_id.to_string(),
            user_id: a.user_id,
            state: a.state.into(),
            created_at_ms: a.created_at_ms,
        }
    }
}

/// One person on a shared phone, as the household's first screen shows them.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PersonSummary {
    /// Their account id, hex (pass it to `requestsFor`).
    pub account_id: String,
    /// Their user ID.
    pub user_id: String,
    /// The account's state.
    pub state: AccountState,
    /// Unexpired requests waiting.
    pub pending_requests: u32,
    /// One line for the list.
    pub headline: String,
    /// What to do next when the account can't be used.
    pub next_step: Option<String>,
}

impl From<eid_core::PersonSummary> for PersonSummary {
    fn from(p: eid_core::PersonSummary) -> Self {
        Self {
            account_id: p.authenticator_id.to_string(),
            user_id: p.user_id,
            state: p.state.into(),
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

/// The decision a receipt records.
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
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Receipt {
    /// The request, hex.
    pub request_id: String,
    /// The deciding account, hex.
    pub account_id: String,
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
            request_id: body.request_id.to_string(),
            account_id: body.authenticator_id.to_string(),
            outcome: match body.outcome {
                eid_protocol::Outcome::Approve => Outcome::Approved,
                eid_protocol::Outcome::Deny => Outcome::Denied,
                _ => Outcome::FraudReported,
            },
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
