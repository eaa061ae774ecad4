//! Storage behind a trait, with two backends: SQLite (embedded, the
//! default) and PostgreSQL (several stateless replicas on one database).
//!
//! Operations that must be atomic (use an activation code, decide a request,
//! count a wrong PIN, use a nonce) are single trait methods: each backend runs
//! them in one transaction, and acknowledges only after a durable commit.
//! The rules such an operation applies (fraud hold, rate-limit windows,
//! change and device limits, how a decision moves a change) are pure
//! functions in [`crate::policy`], so every backend applies the same ones.

mod code_devices;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod postgres;
mod sqlite;

pub use code_devices::*;
pub use postgres::PostgresStore;

pub use sqlite::SqliteStore;

pub use crate::oidc::method::LoginMethod;

// The limit types moved to `crate::limits`; these paths stay for callers.
pub use crate::limits::{CHANGE_MAX_AGE_MS, LimitScope, RequestLimits, Window};

use async_trait::async_trait;
use eid_protocol::events::SecurityEventKind;
use eid_protocol::wire::{
    AgentRole, ChangeState, ContactChannel, ErrorCode, RequestStatus, SignedHardwareReceipt,
    SignedReceipt,
};
use eid_protocol::{
    AuthenticatorId, ChangeId, IdentityId, Nonce16, Outcome, PublicKey, RequestEnvelopeBody,
    RequestId, ServiceProviderId, Signature,
};

/// A storage failure that is not a business outcome. Each variant keeps its
/// cause as its [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A uniqueness rule was broken (for example a user ID taken).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// An SQLite statement failed.
    #[error("storage backend failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The commit of a write batch failed; every job of the batch gets it.
    #[error("storage commit failed: {0}")]
    Commit(#[source] std::sync::Arc<rusqlite::Error>),
    /// The schema could not be brought up to date.
    #[error("storage migration failed: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    /// A stored JSON column (envelope, receipt) could not be written.
    #[error("storage encoding failed: {0}")]
    Json(#[from] serde_json::Error),
    /// The writer thread could not be started.
    #[error("storage writer could not start: {0}")]
    WriterThread(#[source] std::io::Error),
    /// The writer thread stopped (its queue or a job's answer was dropped).
    #[error("storage writer stopped")]
    WriterStopped,
    /// The reader pool's lock was poisoned by a panic.
    #[error("storage reader pool poisoned")]
    PoolPoisoned,
    /// A write job panicked (a bug): its own writes were undone, the rest
    /// of its batch committed, and the writer went on.
    #[error("storage write job panicked")]
    JobPanicked,
    /// Stored rows contradict each other (for example a decided request
    /// without its decision row).
    #[error("storage inconsistent: {0}")]
    Inconsistent(&'static str),
    /// A PostgreSQL statement failed (or its connection broke).
    #[error("storage backend failed: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// No PostgreSQL connection could be had in time: the database is
    /// unreachable or every connection is busy. Answered 503.
    #[error("storage unavailable: {0}")]
    Unavailable(#[from] deadpool_postgres::PoolError),
    /// The PostgreSQL pool could not be set up (bad URL, TLS setup). The
    /// text names no password.
    #[error("storage setup failed: {0}")]
    PoolSetup(String),
}

impl StoreError {
    /// Whether the database could not be reached (or the connection broke):
    /// the caller should retry later (503), and nothing was written.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Unavailable(_) => true,
            StoreError::Postgres(e) => {
                e.is_closed()
                    || e.code().is_some_and(|c| {
                        // Class 08: connection exceptions; 57P: the server
                        // is shutting down or restarting.
                        c.code().starts_with("08") || c.code().starts_with("57P")
                    })
                    || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
            }
            _ => false,
        }
    }
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// A person's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Stable id.
    pub id: IdentityId,
    /// The user ID as chosen.
    pub user_id: String,
    /// The user ID folded for case-insensitive uniqueness.
    pub user_id_folded: String,
    /// The person's name, if given.
    pub display_name: Option<String>,
    /// Blocked by the person or support.
    pub blocked: bool,
    /// Creation time.
    pub created_at_ms: u64,
    /// Phone number for SMS notifications (E.164), if given.
    pub phone: Option<String>,
    /// E-mail address for notifications, if given.
    pub email: Option<String>,
    /// The person opted in to a notification on every use.
    pub notify_every_use: bool,
}

/// An out-of-band address a security event is delivered to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// A phone number (E.164), by SMS.
    Sms(String),
    /// An e-mail address.
    Email(String),
}

/// A security event to record in the outbox, in the same transaction as what
/// caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Whose event.
    pub identity_id: IdentityId,
    /// What happened.
    pub kind: SecurityEventKind,
    /// The authenticator involved, if any.
    pub authenticator_id: Option<AuthenticatorId>,
    /// A short detail shown to the person (for example a masked new phone
    /// number or the provider's name). Never a secret.
    pub detail: Option<String>,
    /// When (server clock, Unix milliseconds).
    pub occurred_at_ms: u64,
    /// Addresses notified besides the identity's own phone and e-mail (the
    /// new contact of a change).
    pub extra_recipients: Vec<Recipient>,
}

/// An out-of-band notification channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// SMS (through the SMS webhook).
    Sms,
    /// E-mail (SMTP).
    Email,
}

impl Channel {
    /// The name stored in `event_deliveries.channel`.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Email => "email",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "sms" => Some(Channel::Sms),
            "email" => Some(Channel::Email),
            _ => None,
        }
    }
}

/// A recorded security event as the feed and the dispatcher read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Increasing id (the app's feed cursor).
    pub id: u64,
    /// What happened ([`SecurityEventKind::Unknown`] for a name this build
    /// does not know).
    pub kind: SecurityEventKind,
    /// The authenticator involved, if any.
    pub authenticator_id: Option<AuthenticatorId>,
    /// The masked detail, if any.
    pub detail: Option<String>,
    /// When (server clock, Unix milliseconds).
    pub occurred_at_ms: u64,
    /// The audit row of the admin action behind it (a block or unblock by
    /// support), so support can find who did it.
    pub audit_id: Option<u64>,
}

/// A delivery the dispatcher has claimed: one event to one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedDelivery {
    /// The delivery row.
    pub id: u64,
    /// SMS or e-mail.
    pub channel: Channel,
    /// The phone number or e-mail address.
    pub address: String,
    /// Attempts so far, this one included.
    pub attempts: u32,
    /// The event to tell about.
    pub event: StoredEvent,
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Delivered: never tried again.
    Delivered,
    /// Failed: tried again at `retry_at_ms`, or never (`None`: the attempts
    /// are used up; the row keeps its error for support).
    Failed {
        /// Why (no user data).
        error: String,
        /// When to try again (server clock).
        retry_at_ms: Option<u64>,
    },
}

/// State of an authenticator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthenticatorState {
    /// Usable.
    Active,
    /// Locked after too many wrong PIN signatures.
    Locked,
}

/// An activated authenticator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticator {
    /// Its id.
    pub id: AuthenticatorId,
    /// Its identity.
    pub identity_id: IdentityId,
    /// Device key.
    pub device_public_key: PublicKey,
    /// PIN key.
    pub pin_public_key: PublicKey,
    /// State.
    pub state: AuthenticatorState,
    /// Wrong PIN signatures in a row.
    pub failed_pin_count: u32,
    /// Highest decision counter accepted.
    pub last_counter: u64,
    /// Activation time.
    pub activated_at_ms: u64,
}

/// A registered service provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceProvider {
    /// Its id.
    pub id: ServiceProviderId,
    /// Registered name (NFC, checked).
    pub name: String,
    /// SHA-256 of its API key.
    pub api_key_sha256: [u8; 32],
    /// Registration time.
    pub created_at_ms: u64,
}

/// One API key of a service provider (only its SHA-256 is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Its id (assigned by the store, increasing).
    pub id: u64,
    /// Its provider.
    pub service_provider_id: ServiceProviderId,
    /// SHA-256 of the key.
    pub key_sha256: [u8; 32],
    /// When it was issued.
    pub created_at_ms: u64,
    /// When a rotation's grace period ends it (`None`: no end).
    pub expires_at_ms: Option<u64>,
    /// When it was revoked (refused from then on).
    pub revoked_at_ms: Option<u64>,
}

/// Where an API key stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKeyState {
    /// Works, with no end set.
    Active,
    /// Works until its `expires_at_ms` (a newer key replaced it).
    RotatingOut,
    /// Its grace period is over: refused.
    Expired,
    /// Revoked: refused.
    Revoked,
}

impl ApiKey {
    /// The key's state at `now_ms`.
    pub fn state_at(&self, now_ms: u64) -> ApiKeyState {
        match (self.revoked_at_ms, self.expires_at_ms) {
            (Some(_), _) => ApiKeyState::Revoked,
            (None, Some(end)) if end <= now_ms => ApiKeyState::Expired,
            (None, Some(_)) => ApiKeyState::RotatingOut,
            (None, None) => ApiKeyState::Active,
        }
    }

    /// Whether a call presenting this key at `now_ms` is accepted.
    pub fn usable_at(&self, now_ms: u64) -> bool {
        matches!(
            self.state_at(now_ms),
            ApiKeyState::Active | ApiKeyState::RotatingOut
        )
    }
}

/// A service provider with the API key a caller presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderKey {
    /// The provider.
    pub provider: ServiceProvider,
    /// The key (in whatever state: the caller checks it).
    pub key: ApiKey,
}

/// A service provider's webhook: where decided requests are announced, and
/// the secret their signature is made with.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    /// The provider.
    pub service_provider_id: ServiceProviderId,
    /// The URL POSTed to (https, or http to 127.0.0.1 for tests).
    pub url: String,
    /// The HMAC-SHA256 key (32 random bytes; kept in clear, the server must sign with it).
    pub secret: zeroize::Zeroizing<Vec<u8>>,
    /// When it was set.
    pub created_at_ms: u64,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("service_provider_id", &self.service_provider_id)
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A webhook delivery the dispatcher has claimed: one event to one URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedWebhookDelivery {
    /// The delivery row.
    pub id: u64,
    /// The provider's webhook as it is now (URL and secret).
    pub webhook: Webhook,
    /// The request the event is about.
    pub request_id: RequestId,
    /// Its new status (`approved`, `denied`, `fraud_reported`, `cancelled`).
    pub status: RequestStatus,
    /// When it was decided or cancelled (server clock).
    pub decided_at_ms: u64,
    /// Attempts so far, this one included.
    pub attempts: u32,
}

/// An OpenID Connect client of a service provider, as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct OidcClient {
    /// The public `client_id`.
    pub client_id: String,
    /// The service provider it logs people in for.
    pub service_provider_id: ServiceProviderId,
    /// The exact redirect URIs.
    pub redirect_uris: Vec<String>,
    /// SHA-256 of its `client_secret_basic` secret (32 random bytes), if it
    /// has one.
    pub secret_sha256: Option<[u8; 32]>,
    /// Its public key for `private_key_jwt` as a JWK (JSON), if it has one.
    pub jwk: Option<String>,
    /// The scopes it may ask for.
    pub scopes: Vec<String>,
    /// The sector its pairwise subject identifiers are computed for (the
    /// redirect URIs' host).
    pub sector: String,
    /// Registration time.
    pub created_at_ms: u64,
}

impl std::fmt::Debug for OidcClient {
    // The secret's hash is left out: not a secret itself, but nothing a
    // log needs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcClient")
            .field("client_id", &self.client_id)
            .field("service_provider_id", &self.service_provider_id)
            .field("redirect_uris", &self.redirect_uris)
            .field("has_secret", &self.secret_sha256.is_some())
            .field("has_jwk", &self.jwk.is_some())
            .field("scopes", &self.scopes)
            .field("sector", &self.sector)
            .finish()
    }
}

/// The id of one OpenID Connect login (16 random bytes; it appears in the
/// login page's URL, so it is no credential: the browser's cookie is).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LoginId(pub [u8; 16]);

impl LoginId {
    /// A fresh random id.
    pub fn random() -> Self {
        Self(eid_protocol::crypto::random_array())
    }

    /// Parses 32 hex digits (lower case, as [`std::fmt::Display`] writes them).
    pub fn parse(text: &str) -> Option<Self> {
        let mut out = [0u8; 16];
        (text.len() == 32 && !text.bytes().any(|b| b.is_ascii_uppercase()))
            .then_some(())
            .and_then(|()| hex::decode_to_slice(text, &mut out).ok())
            .map(|()| Self(out))
    }
}

impl std::fmt::Display for LoginId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::fmt::Debug for LoginId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LoginId({self})")
    }
}

/// The checked authorization parameters of one OpenID Connect login, as the
/// client pushed them (see docs/oidc.md).
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuthParams {
    /// One of the client's redirect URIs, byte for byte.
    pub redirect_uri: String,
    /// The granted scopes, space-separated (contains `openid`).
    pub scope: String,
    /// The client's `state`, returned with the code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The client's `nonce`, put into the ID token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The PKCE S256 challenge (43 base64url characters).
    pub code_challenge: String,
    /// The reference text the app shows (normalized, checked).
    pub reference_text: String,
    /// The user ID the client suggested (`login_hint`), prefilled on the page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_hint: Option<String>,
    /// The level of assurance the login gives (`acr`).
    pub acr: String,
    /// The page's language from `ui_locales` (`da` or `en`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
}

impl std::fmt::Debug for AuthParams {
    // The hint is a person's user ID: not for logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthParams")
            .field("redirect_uri", &self.redirect_uri)
            .field("scope", &self.scope)
            .field("has_state", &self.state.is_some())
            .field("has_nonce", &self.nonce.is_some())
            .field("has_login_hint", &self.login_hint.is_some())
            .field("acr", &self.acr)
            .field("lang", &self.lang)
            .finish_non_exhaustive()
    }
}

/// One OpenID Connect login as stored: from the pushed authorization
/// request to the access token. Handles are kept only as hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcLogin {
    /// Its id.
    pub id: LoginId,
    /// The client that pushed it.
    pub client_id: String,
    /// Its authorization parameters.
    pub params: AuthParams,
    /// When it was pushed.
    pub created_at_ms: u64,
    /// Until when its `request_uri` may start it in a browser.
    pub request_uri_expires_at_ms: u64,
    /// When the whole login (or, once redeemed, its access token) ends.
    pub expires_at_ms: u64,
    /// SHA-256 of the secret in the cookie of the browser it was started in.
    pub browser_sha256: Option<[u8; 32]>,
    /// The request in the app for it, once the person gave a user ID (for
    /// an unknown user ID a stand-in id no request has, see docs/oidc.md).
    pub request_id: Option<RequestId>,
    /// When that request expires.
    pub request_expires_at_ms: Option<u64>,
    /// When its code expires, once one was issued.
    pub code_expires_at_ms: Option<u64>,
    /// When its code was redeemed (or burnt by a failed redemption).
    pub redeemed_at_ms: Option<u64>,
    /// When its access token expires, once one was issued.
    pub access_expires_at_ms: Option<u64>,
    /// Whether its access token was revoked (its code was presented again).
    pub revoked: bool,
    /// The method chosen on the user-ID step (the app until one is chosen).
    pub method: LoginMethod,
    /// For a hardware method: the identity of the user ID typed; `None`
    /// when the user ID is unknown (the page answers the same).
    pub hardware_identity_id: Option<IdentityId>,
    /// The hardware authenticator whose first factor passed (a code
    /// device's serial once its code was right), awaiting the access code.
    pub first_factor: Option<String>,
    /// The server-signed receipt of a login completed by a hardware
    /// authenticator.
    pub hardware_receipt: Option<SignedHardwareReceipt>,
}

/// What [`Store::bind_oidc_login`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindLoginResult {
    /// The login now belongs to the browser.
    Bound(Box<OidcLogin>),
    /// No login of this client has this `request_uri`.
    Unknown,
    /// The `request_uri` is older than its 60 s.
    Expired,
    /// The `request_uri` was already used by a browser.
    AlreadyUsed,
}

/// What [`Store::redeem_oidc_code`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedeemResult {
    /// The code was unused and current; it is now used (and the access
    /// token, if one was given, is the login's).
    Redeemed(Box<OidcLogin>),
    /// The code had been redeemed before: the access token issued then is
    /// revoked now.
    Reused,
    /// The code's 60 s are over; it is used now.
    Expired,
    /// No login has this code.
    Unknown,
}

/// An activation code as stored (hashed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationCode {
    /// Whose code.
    pub identity_id: IdentityId,
    /// SHA-256 over identity id and the normalized code.
    pub code_sha256: [u8; 32],
    /// Issue time.
    pub created_at_ms: u64,
    /// Expiry.
    pub expires_at_ms: u64,
}

/// A request as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRequest {
    /// The envelope as signed.
    pub envelope: RequestEnvelopeBody,
    /// The server's signature over it (made once, at creation).
    pub envelope_signature: Signature,
    /// The channel-binding code, when the service provider asked for one.
    pub binding_code: Option<String>,
    /// Stored status (expiry is computed from the clock on read).
    pub status: RequestStatus,
    /// The decision, once decided.
    pub decision: Option<DecisionRecord>,
}

impl StoredRequest {
    /// The status by the server's clock `now_ms`.
    pub fn status_at(&self, now_ms: u64) -> RequestStatus {
        if self.status == RequestStatus::Pending && now_ms >= self.envelope.expires_at_ms {
            RequestStatus::Expired
        } else {
            self.status
        }
    }
}

/// An accepted decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionRecord {
    /// The deciding authenticator.
    pub authenticator_id: AuthenticatorId,
    /// The outcome.
    pub outcome: Outcome,
    /// Its counter.
    pub counter: u64,
    /// SHA-256 of the decision's canonical bytes (identifies a resubmission).
    pub decision_sha256: [u8; 32],
    /// The signed receipt returned to phone and service provider.
    pub receipt: SignedReceipt,
    /// Acceptance time.
    pub decided_at_ms: u64,
    /// What the call policy did with it: `Clear`, `Allowed` or `Flagged`
    /// (a stopped approval is not accepted: see [`CallStop`]).
    pub call_verdict: eid_protocol::CallVerdict,
}

/// An approval the call policy stopped (docs/protocol.md, "Call context"):
/// the request was cancelled instead of approved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallStop {
    /// The authenticator whose approval was stopped.
    pub authenticator_id: AuthenticatorId,
    /// What its phone saw.
    pub call_context: eid_protocol::CallContext,
    /// When (the server's clock).
    pub stopped_at_ms: u64,
}

/// Result of stopping an approval on a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopResult {
    /// Stopped now: the request is cancelled, the person notified.
    Stopped,
    /// The request was no longer pending (decided, cancelled or expired):
    /// nothing changed.
    NotPending,
}

/// Result of trying an activation code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActivationResult {
    /// The code was right; the authenticator is stored and the code used up.
    Activated(Authenticator),
    /// The same code and keys were activated before (a retry after a lost
    /// answer); the authenticator from then.
    AlreadyActivated(Authenticator),
    /// Wrong code; the try was counted (the code is void after the last).
    WrongCode,
    /// No usable code (none, used, expired or void), or no such user.
    NoUsableCode,
    /// The identity is blocked.
    Blocked,
}

/// Result of recording a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecideResult {
    /// This decision won and is stored.
    Accepted(DecisionRecord),
    /// The request was already decided (maybe by this very decision).
    AlreadyDecided(DecisionRecord),
    /// The request was cancelled.
    Cancelled,
    /// The request expired (server clock) before the decision.
    Expired,
    /// The counter is not above the authenticator's last.
    CounterReplay,
    /// The authenticator is locked or the identity blocked.
    NotAllowed,
}

/// Result of creating a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateResult {
    /// Stored.
    Created,
    /// No such identity.
    UnknownIdentity,
    /// The identity is blocked.
    Blocked,
    /// The identity already has the maximum of pending requests.
    TooManyPending,
    /// A rate limit of [`RequestLimits`] is reached; nothing was stored.
    RateLimited {
        /// Whose limit: the person's or the service provider's.
        scope: LimitScope,
        /// Milliseconds until one more request fits the window.
        retry_after_ms: u64,
    },
    /// The person reported a request of this service provider as fraud less than
    /// the hold ago; no request was stored (the person is told once per hold).
    CoolingDown {
        /// Milliseconds until the hold ends.
        retry_after_ms: u64,
        /// This refusal is the hold's first: it recorded the
        /// `requests_held` event, a durable write (every other refusal
        /// writes nothing), so a login page's stand-in needs none of its own
        /// (docs/threat-model.md, "Learning whether a user ID exists").
        told: bool,
    },
}

impl CreateResult {
    /// Whether the creation wrote anything: a request, or a hold's first
    /// refusal its `requests_held` event. Every other refusal writes
    /// nothing (its transaction can end without a durable commit).
    pub fn wrote(&self) -> bool {
        matches!(self, Self::Created | Self::CoolingDown { told: true, .. })
    }
}

/// Result of registering a service provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterResult {
    /// Stored.
    Registered,
    /// Not stored: the name looks like this registered provider's name.
    ConfusableWith(String),
}

/// Where each authenticator's feed in a pull starts (parallel to the ids;
/// missing entries are 0). See `docs/protocol.md` (pull).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedCursors {
    /// Older phones (`feed_after`): the newest
    /// [`eid_protocol::wire::MAX_FEED_EVENTS`] events above each cursor; a
    /// flood of more between two pulls skips the older ones.
    NewestAbove(Vec<u64>),
    /// Paging (`events_after`): the oldest
    /// [`eid_protocol::wire::MAX_FEED_EVENTS`] events above each cursor, so
    /// successive pulls bring every event.
    OldestAbove(Vec<u64>),
}

impl FeedCursors {
    /// The cursor of the authenticator at `index` (0 when not given).
    pub fn at(&self, index: usize) -> u64 {
        let (Self::NewestAbove(c) | Self::OldestAbove(c)) = self;
        c.get(index).copied().unwrap_or(0)
    }
}

/// What a pull reads.
#[derive(Debug, Clone)]
pub struct PullSnapshot {
    /// The authenticators asked for, in order (`None` for unknown ids).
    pub authenticators: Vec<Option<Authenticator>>,
    /// Their identities, in the same order.
    pub identities: Vec<Option<Identity>>,
    /// Pending, unexpired requests of the unblocked identities, oldest first.
    pub pending: Vec<StoredRequest>,
    /// Live device enrolments of the unblocked identities (awaiting approval
    /// with a pending, unexpired request, or waiting), oldest first.
    pub enrolments: Vec<Enrolment>,
    /// Per authenticator asked for (same order): its identity's security
    /// events after the cursor, oldest first, at most
    /// [`eid_protocol::wire::MAX_FEED_EVENTS`] (which ones: [`FeedCursors`]).
    pub events: Vec<Vec<StoredEvent>>,
    /// Open phone and e-mail changes of these identities (by the clock), oldest first.
    pub contact_changes: Vec<StoredChange>,
    /// Per authenticator asked for (same order): its identity's newest
    /// decisions (any authenticator), newest first, at most
    /// [`eid_protocol::wire::MAX_PULLED_DECISIONS`] (device journal).
    pub decisions: Vec<Vec<eid_protocol::wire::PulledDecision>>,
}

/// Where a device enrolment stands, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrolmentStoredState {
    /// Its new-device request waits for an existing device's decision.
    AwaitingApproval,
    /// Approved; the new device works from `usable_at_ms`.
    Waiting,
    /// The new device is an authenticator now (same id).
    Activated,
    /// Refused, cancelled, expired undecided, or closed by a block.
    Cancelled,
}

/// A new device asking to be added to an identity from an existing device.
/// Its id is the authenticator id the new device gets once activated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolment {
    /// The enrolment (and future authenticator) id.
    pub id: AuthenticatorId,
    /// The identity; `None` for a decoy (unknown user ID, blocked identity,
    /// or too many enrolments): answered like a real one, never approvable.
    pub identity_id: Option<IdentityId>,
    /// The new-device request shown on the existing devices (not for a decoy).
    pub request_id: Option<RequestId>,
    /// The new device key.
    pub device_public_key: PublicKey,
    /// The new PIN key.
    pub pin_public_key: PublicKey,
    /// The code the new device shows (the request's binding code).
    pub code: String,
    /// State.
    pub state: EnrolmentStoredState,
    /// When it was asked for.
    pub requested_at_ms: u64,
    /// When the approval request expires.
    pub expires_at_ms: u64,
    /// Waiting period after approval, fixed when asked for.
    pub wait_ms: u64,
    /// When the new device works, once approved.
    pub usable_at_ms: Option<u64>,
}

/// Result of asking for a device enrolment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartEnrolmentResult {
    /// Stored (a real enrolment with its request, or a decoy).
    Started(Enrolment),
    /// The same new device keys asked before and the enrolment is still live
    /// (a retry after a lost answer): that enrolment.
    Existing(Enrolment),
    /// The identity has the most devices allowed.
    DeviceLimitReached,
}

/// Result of a new device's status poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrolmentPoll {
    /// Still waiting for an existing device's decision.
    AwaitingApproval(Enrolment),
    /// Approved; not usable yet.
    Waiting(Enrolment),
    /// Activated now or before: the authenticator.
    Activated(Authenticator),
    /// Over without a device (refused, cancelled, expired, blocked, or the
    /// device cap was reached meanwhile).
    Closed,
}

/// Result of an existing device cancelling an enrolment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelEnrolmentResult {
    /// Cancelled now; the new-device request, if it was still pending, too.
    Cancelled(Option<RequestId>),
    /// Already over (activated or closed).
    Closed,
    /// No such enrolment for this authenticator's identity.
    Unknown,
}

/// What a self-service change changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// The phone number or e-mail address: two logins, a gap apart.
    Contact(ContactChannel),
    /// The user ID: one login.
    UserId,
}

impl ChangeKind {
    /// Whether two kinds share the "one open change at a time" rule.
    pub fn same_family(self, other: ChangeKind) -> bool {
        matches!(
            (self, other),
            (ChangeKind::Contact(_), ChangeKind::Contact(_))
                | (ChangeKind::UserId, ChangeKind::UserId)
        )
    }
}

/// A self-service change as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredChange {
    /// Its id.
    pub id: ChangeId,
    /// Whose.
    pub identity_id: IdentityId,
    /// What it changes.
    pub kind: ChangeKind,
    /// The new phone number (E.164), e-mail address or user ID (NFC), checked.
    pub new_value: String,
    /// Stored state (expiry is computed from the clock on read).
    pub state: ChangeState,
    /// Least time between the two logins, fixed when the change starts.
    pub gap_ms: u64,
    /// Start time.
    pub created_at_ms: u64,
    /// The first self-service login request.
    pub first_request_id: RequestId,
    /// When it expires.
    pub first_expires_at_ms: u64,
    /// When the first login was approved.
    pub first_login_at_ms: Option<u64>,
    /// First login + gap.
    pub earliest_second_login_at_ms: Option<u64>,
    /// The second self-service login request, once asked for.
    pub second_request_id: Option<RequestId>,
    /// When it expires.
    pub second_expires_at_ms: Option<u64>,
    /// Why it failed (state `failed`).
    pub failure: Option<(ErrorCode, String)>,
}

impl StoredChange {
    /// The state by the server's clock `now_ms`: an unapproved first login
    /// expires the change; a lapsed second-login request makes it
    /// re-confirmable; a change not completed within [`CHANGE_MAX_AGE_MS`]
    /// of its first login expires.
    pub fn state_at(&self, now_ms: u64) -> ChangeState {
        match self.state {
            ChangeState::AwaitingFirstLogin if now_ms >= self.first_expires_at_ms => {
                ChangeState::Expired
            }
            ChangeState::WaitingSecondLogin | ChangeState::AwaitingSecondLogin
                if self
                    .first_login_at_ms
                    .is_some_and(|t| now_ms >= t.saturating_add(CHANGE_MAX_AGE_MS)) =>
            {
                ChangeState::Expired
            }
            ChangeState::AwaitingSecondLogin
                if self.second_expires_at_ms.is_some_and(|t| now_ms >= t) =>
            {
                ChangeState::WaitingSecondLogin
            }
            s => s,
        }
    }
}

/// Result of starting a self-service change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartChangeResult {
    /// The change and its first login request are stored (an open change of
    /// the same family still waiting for its first login was superseded).
    Created,
    /// No such identity.
    UnknownIdentity,
    /// The identity is blocked.
    Blocked,
    /// A change of the same family is past its first login.
    ChangePending,
    /// The identity already has the maximum of pending requests.
    TooManyPending,
}

/// Result of asking for a contact change's second login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmChangeResult {
    /// The second login request is stored.
    Created,
    /// A second login request is already pending: this one.
    Existing {
        /// The pending request.
        request_id: RequestId,
        /// When it expires (server clock, Unix ms).
        expires_at_ms: u64,
        /// Its stored binding code (the binding-code column), so the portal
        /// can show it again.
        binding_code: Option<String>,
    },
    /// Before the earliest time (given); the attempt was recorded as an event.
    TooEarly(u64),
    /// The change is not open.
    Closed(ChangeState),
    /// No such change waiting for a second login.
    Unknown,
    /// The identity is blocked.
    Blocked,
    /// The identity already has the maximum of pending requests.
    TooManyPending,
}

/// Result of cancelling a change from the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelChangeResult {
    /// Cancelled now; the self-service request it cancelled with it, if any.
    Cancelled(Option<RequestId>),
    /// Not open any more (its state).
    Closed(ChangeState),
    /// No such change of this identity.
    Unknown,
}

/// A support agent with its own credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// Its id (assigned by the store; ignored when creating).
    pub id: u64,
    /// Its name as the audit shows it.
    pub name: String,
    /// What it may do.
    pub role: AgentRole,
    /// SHA-256 of its 32-byte random bearer token.
    pub token_sha256: [u8; 32],
    /// Creation time.
    pub created_at_ms: u64,
    /// Revocation time; a revoked agent's token is refused.
    pub revoked_at_ms: Option<u64>,
}

/// What an admin action was, as the audit names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    /// Created an identity.
    CreateIdentity,
    /// Looked up an identity.
    LookUpIdentity,
    /// Issued an activation code.
    IssueActivationCode,
    /// Blocked an identity.
    Block,
    /// Unblocked an identity.
    Unblock,
    /// Registered a service provider.
    RegisterProvider,
    /// Created an agent.
    CreateAgent,
    /// Listed the agents.
    ListAgents,
    /// Revoked an agent.
    RevokeAgent,
    /// Read the audit.
    ReadAudit,
    /// Registered an OpenID Connect client.
    RegisterOidcClient,
    /// Listed a service provider's API keys.
    ListApiKeys,
    /// Issued a new API key (the older ones expire after a grace period).
    RotateApiKey,
    /// Revoked an API key.
    RevokeApiKey,
    /// Set or removed a service provider's webhook.
    SetWebhook,
    /// Imported a manufacturer's batch of code devices.
    ImportTokenBatch,
}

impl AuditAction {
    /// The name stored in `audit.action` and shown by `eid admin audit`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::CreateIdentity => "create_identity",
            AuditAction::LookUpIdentity => "look_up_identity",
            AuditAction::IssueActivationCode => "issue_activation_code",
            AuditAction::Block => "block",
            AuditAction::Unblock => "unblock",
            AuditAction::RegisterProvider => "register_provider",
            AuditAction::CreateAgent => "create_agent",
            AuditAction::ListAgents => "list_agents",
            AuditAction::RevokeAgent => "revoke_agent",
            AuditAction::ReadAudit => "read_audit",
            AuditAction::RegisterOidcClient => "register_oidc_client",
            AuditAction::ListApiKeys => "list_api_keys",
            AuditAction::RotateApiKey => "rotate_api_key",
            AuditAction::RevokeApiKey => "revoke_api_key",
            AuditAction::SetWebhook => "set_webhook",
            AuditAction::ImportTokenBatch => "import_token_batch",
        }
    }
}

/// How an audited admin action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOutcome {
    /// Done.
    Done,
    /// Refused: the agent's role may not do it.
    RefusedRole,
}

impl AuditOutcome {
    /// The name stored in `audit.outcome`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Done => "done",
            AuditOutcome::RefusedRole => "refused_role",
        }
    }
}

/// An audit row to append: who did what, when, to whom, why, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAudit {
    /// When (server clock).
    pub at_ms: u64,
    /// The acting agent (`None` for the bootstrap administrator token).
    pub agent_id: Option<u64>,
    /// The acting agent's name.
    pub agent_name: String,
    /// What.
    pub action: AuditAction,
    /// The identity acted on, if any.
    pub identity_id: Option<IdentityId>,
    /// The service provider acted on, if any.
    pub service_provider_id: Option<ServiceProviderId>,
    /// The agent acted on, if any.
    pub target_agent_id: Option<u64>,
    /// The reason given, if any.
    pub reason: Option<String>,
    /// How it ended.
    pub outcome: AuditOutcome,
}

/// A stored audit row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Increasing id.
    pub id: u64,
    /// When (server clock).
    pub at_ms: u64,
    /// The acting agent (`None` for the bootstrap administrator token).
    pub agent_id: Option<u64>,
    /// The acting agent's name.
    pub agent_name: String,
    /// What (the stored name of an [`AuditAction`]).
    pub action: String,
    /// The identity acted on, if any.
    pub identity_id: Option<IdentityId>,
    /// The service provider acted on, if any.
    pub service_provider_id: Option<ServiceProviderId>,
    /// The agent acted on, if any.
    pub target_agent_id: Option<u64>,
    /// The reason given, if any.
    pub reason: Option<String>,
    /// How it ended (the stored name of an [`AuditOutcome`]).
    pub outcome: String,
}

/// An admin action that writes: run by [`Store::admin_action`] in one
/// transaction with its audit row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminAction {
    /// Create an identity ([`Store::create_identity`]).
    CreateIdentity(Identity),
    /// Replace the identity's activation code ([`Store::put_activation_code`]).
    IssueActivationCode(ActivationCode),
    /// Block or unblock ([`Store::set_blocked`]); the event points to the audit row.
    SetBlocked {
        /// The identity.
        identity_id: IdentityId,
        /// Block (`true`) or unblock.
        blocked: bool,
    },
    /// Register a service provider ([`Store::register_service_provider`]).
    RegisterProvider(ServiceProvider),
    /// Create an agent (its `id` is assigned).
    CreateAgent(Agent),
    /// Revoke an agent (from the audit row's time on).
    RevokeAgent(u64),
    /// Register an OpenID Connect client for an existing service provider.
    RegisterOidcClient(OidcClient),
    /// Add a new API key to a provider; its other usable keys without an
    /// end expire at `grace_until_ms` (an earlier end is kept).
    RotateApiKey {
        /// The provider.
        service_provider_id: ServiceProviderId,
        /// SHA-256 of the new key.
        key_sha256: [u8; 32],
        /// When the older keys stop working.
        grace_until_ms: u64,
    },
    /// Revoke one of a provider's keys (from the audit row's time on).
    RevokeApiKey {
        /// The provider.
        service_provider_id: ServiceProviderId,
        /// The key.
        key_id: u64,
    },
    /// Set (`Some`) or remove (`None`) a provider's webhook.
    SetWebhook {
        /// The provider.
        service_provider_id: ServiceProviderId,
        /// The new webhook.
        webhook: Option<Webhook>,
    },
}

/// Result of [`Store::admin_action`]. Only `Done` wrote anything (the
/// action and its audit row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminActionResult {
    /// Done; the audit row's id, the requests a block cancelled, and the id
    /// of a created agent.
    Done {
        /// The audit row.
        audit_id: u64,
        /// Requests cancelled by a block.
        cancelled: Vec<RequestId>,
        /// The new agent's id ([`AdminAction::CreateAgent`]).
        agent_id: Option<u64>,
    },
    /// No such identity.
    UnknownIdentity,
    /// The user ID is taken.
    UserIdTaken,
    /// The provider's name looks like this registered provider's name.
    ConfusableWith(String),
    /// No such agent, or already revoked.
    UnknownAgent,
    /// No such service provider.
    UnknownProvider,
    /// No such API key for this provider, or already revoked.
    UnknownApiKey,
}

/// What a decision reads before it is verified.
#[derive(Debug, Clone)]
pub struct DecisionContext {
    /// The request.
    pub request: Option<StoredRequest>,
    /// The deciding authenticator.
    pub authenticator: Option<Authenticator>,
    /// The request's identity.
    pub identity: Option<Identity>,
}

/// The facts a caller judged before a decision (read with
/// [`Store::decision_context`]), for [`Store::decide_judged`]: a backend
/// may record the decision at once when it finds them unchanged under its
/// locks, and otherwise judges the fresh facts as [`Store::decide`] does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionFacts {
    /// The request's service provider.
    pub service_provider_id: eid_protocol::ServiceProviderId,
    /// The request's stored status.
    pub status: RequestStatus,
    /// The request's deadline.
    pub expires_at_ms: u64,
    /// The deciding authenticator's identity.
    pub identity_id: IdentityId,
    /// Whether the authenticator is active.
    pub active: bool,
    /// The authenticator's last accepted counter.
    pub last_counter: u64,
    /// Whether the identity is blocked.
    pub blocked: bool,
    /// Whether the identity asked for a notice on every use.
    pub notify_every_use: bool,
}

impl DecisionFacts {
    /// The facts of a decision's context; `None` without the identity.
    pub fn of(
        request: &StoredRequest,
        authenticator: &Authenticator,
        identity: Option<&Identity>,
    ) -> Option<Self> {
        let identity = identity?;
        Some(Self {
            service_provider_id: request.envelope.service_provider_id,
            status: request.status,
            expires_at_ms: request.envelope.expires_at_ms,
            identity_id: authenticator.identity_id,
            active: authenticator.state == AuthenticatorState::Active,
            last_counter: authenticator.last_counter,
            blocked: identity.blocked,
            notify_every_use: identity.notify_every_use,
        })
    }
}

/// Result of a cancel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelResult {
    /// Cancelled now.
    Cancelled,
    /// It was not pending (decided, cancelled or expired); its current state.
    NotPending(Box<StoredRequest>),
    /// No such request for this provider.
    Unknown,
}

/// A chip's id: 16 random bytes, shown as 32 hex digits (the app's list
/// names a chip by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChipId(pub [u8; 16]);

impl ChipId {
    /// A fresh random id.
    pub fn random() -> Self {
        Self(eid_protocol::crypto::random_array())
    }

    /// Parses 32 lower-case hex digits.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 32 || text.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        hex::decode(text).ok()?.try_into().ok().map(Self)
    }
}

impl std::fmt::Display for ChipId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// A chip's stored state (the lockout after wrong access codes is
/// `blocked_until_ms`, not a state: it ends by itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChipState {
    /// Registered; usable for the confirming step once the waiting period
    /// is over, for nothing else.
    Pending,
    /// Confirmed: logs in.
    Active,
    /// Refused for good: a sign-counter regression showed a possible clone.
    Blocked,
    /// Deactivated or cancelled by the person (from the app).
    Deactivated,
}

impl ChipState {
    /// The name stored in `chips.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChipState::Pending => "pending",
            ChipState::Active => "active",
            ChipState::Blocked => "blocked",
            ChipState::Deactivated => "deactivated",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        [
            ChipState::Pending,
            ChipState::Active,
            ChipState::Blocked,
            ChipState::Deactivated,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }

    /// Whether the chip still holds the identity's one chip place.
    pub fn is_live(self) -> bool {
        self != ChipState::Deactivated
    }
}

/// A chip (FIDO2/WebAuthn security key) of an identity. The rules about
/// it are in `crate::chip`; the store loads and saves it.
#[derive(Clone, PartialEq, Eq)]
pub struct Chip {
    /// Its id.
    pub id: ChipId,
    /// Its identity.
    pub identity_id: IdentityId,
    /// SHA-256 of the WebAuthn credential id (unique over all chips).
    pub credential_id_sha256: [u8; 32],
    /// webauthn-rs' serialised `SecurityKey` (public key, counter, flags).
    pub credential: String,
    /// The highest sign counter accepted.
    pub counter: u32,
    /// State.
    pub state: ChipState,
    /// The Argon2id hash of its access code.
    pub access_code: crate::access_code::AccessCodeHash,
    /// Registration (step 1) time.
    pub registered_at_ms: u64,
    /// The end of the waiting period (step 2 is refused before it).
    pub active_from_ms: u64,
    /// The last successful use (a login or the confirming step).
    pub last_used_at_ms: Option<u64>,
    /// Failures (wrong access code or assertion) in a row.
    pub failures: u32,
    /// The end of the lockout after too many failures.
    pub blocked_until_ms: Option<u64>,
    /// When it was blocked for good or deactivated.
    pub ended_at_ms: Option<u64>,
    /// Bumped by every save; a save names the revision it read.
    pub revision: u64,
}

impl std::fmt::Debug for Chip {
    // The credential and the hash are no secrets, but no log needs them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chip")
            .field("id", &self.id)
            .field("state", &self.state)
            .field("counter", &self.counter)
            .field("failures", &self.failures)
            .field("revision", &self.revision)
            .finish_non_exhaustive()
    }
}

/// What a chip ceremony (a WebAuthn challenge) is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyPurpose {
    /// Step 1: register a new chip.
    Register,
    /// Step 2: confirm a pending chip after the waiting period.
    Confirm,
    /// Log in with the chip (its subject is the login's id).
    Login,
}

impl CeremonyPurpose {
    /// The name stored in `chip_ceremonies.purpose`.
    pub fn as_str(self) -> &'static str {
        match self {
            CeremonyPurpose::Register => "register",
            CeremonyPurpose::Confirm => "confirm",
            CeremonyPurpose::Login => "login",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        [
            CeremonyPurpose::Register,
            CeremonyPurpose::Confirm,
            CeremonyPurpose::Login,
        ]
        .into_iter()
        .find(|p| p.as_str() == name)
    }
}

/// A WebAuthn ceremony in progress: webauthn-rs' challenge state, kept
/// server-side, single use and short-lived.
#[derive(Clone, PartialEq, Eq)]
pub struct ChipCeremony {
    /// Its random id (the page posts it back).
    pub id: [u8; 16],
    /// Whose.
    pub identity_id: IdentityId,
    /// What for.
    pub purpose: CeremonyPurpose,
    /// What else it is bound to (a chip id, a login id), if anything.
    pub subject: Option<[u8; 16]>,
    /// webauthn-rs' serialised state (challenge, allowed credentials).
    pub state: String,
    /// When it is void.
    pub expires_at_ms: u64,
}

impl std::fmt::Debug for ChipCeremony {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChipCeremony")
            .field("purpose", &self.purpose)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

/// Result of [`Store::add_chip`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddChipResult {
    /// Stored, with its `chip_added` event.
    Added,
    /// The identity already has a chip that is not deactivated.
    AlreadyHasChip,
    /// This credential is registered already (to anyone).
    CredentialTaken,
    /// No such identity, or it is blocked.
    IdentityUnusable,
}

/// The storage a server needs.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores a new identity; `Conflict` when the folded user ID is taken.
    async fn create_identity(&self, identity: Identity) -> StoreResult<()>;
    /// Finds an identity by id.
    async fn identity(&self, id: IdentityId) -> StoreResult<Option<Identity>>;
    /// Finds an identity by folded user ID.
    async fn identity_by_user_id(&self, user_id_folded: &str) -> StoreResult<Option<Identity>>;
    /// Blocks or unblocks; blocking cancels every pending request and every
    /// live device enrolment of the identity. A change of state records an
    /// `identity_blocked` or `identity_unblocked` event at `now_ms`. Returns
    /// the cancelled request ids, or `None` for an unknown id.
    async fn set_blocked(
        &self,
        id: IdentityId,
        blocked: bool,
        now_ms: u64,
    ) -> StoreResult<Option<Vec<RequestId>>>;
    /// Sets the identity's "notify me on every use"; `false` for an unknown
    /// id. Turning it off (when it was on) records, in the same write, a
    /// `notify_every_use_turned_off` event naming `by`, notified on every
    /// channel.
    async fn set_notify_every_use(
        &self,
        id: IdentityId,
        on: bool,
        by: AuthenticatorId,
        now_ms: u64,
    ) -> StoreResult<bool>;
    /// Claims up to `limit` due deliveries on `channels` (not delivered,
    /// `next_attempt_ms <= now_ms`, fewer than `max_attempts` attempts): counts
    /// the attempt and moves `next_attempt_ms` to `now_ms + lease_ms`, so a
    /// dispatcher that dies mid-delivery leaves them to be claimed again after
    /// the lease (at-least-once delivery).
    async fn claim_deliveries(
        &self,
        channels: Vec<Channel>,
        now_ms: u64,
        limit: u32,
        lease_ms: u64,
        max_attempts: u32,
    ) -> StoreResult<Vec<ClaimedDelivery>>;
    /// Records how a claimed delivery ended.
    async fn finish_delivery(
        &self,
        id: u64,
        outcome: DeliveryOutcome,
        now_ms: u64,
    ) -> StoreResult<()>;
    /// Replaces the identity's activation code with a new one (tries reset).
    async fn put_activation_code(&self, code: ActivationCode) -> StoreResult<()>;
    /// Atomically checks an activation code and, if right, uses it up, stores
    /// the authenticator and records a `device_activated` event. A wrong code
    /// counts a try, durably.
    async fn activate(
        &self,
        user_id_folded: &str,
        code_sha256_for: Box<dyn Fn(IdentityId) -> [u8; 32] + Send>,
        max_tries: u32,
        now_ms: u64,
        authenticator: Authenticator,
    ) -> StoreResult<ActivationResult>;
    /// Loads authenticators by id, in order (`None` for unknown ids).
    async fn authenticators(
        &self,
        ids: Vec<AuthenticatorId>,
    ) -> StoreResult<Vec<Option<Authenticator>>>;
    /// Loads the authenticators of an identity.
    async fn authenticators_of(&self, identity_id: IdentityId) -> StoreResult<Vec<Authenticator>>;
    /// One consistent read for a pull: the authenticators and their
    /// identities (in order), the pending, unexpired requests of the
    /// unblocked identities, oldest first, and each authenticator's feed
    /// events after its cursor in `feed` (the oldest or the newest
    /// [`eid_protocol::wire::MAX_FEED_EVENTS`] above it, by the variant), and
    /// the identity's decisions above each cursor in `decisions_after`.
    async fn pull_snapshot(
        &self,
        authenticator_ids: Vec<AuthenticatorId>,
        feed: FeedCursors,
        decisions_after: Vec<u64>,
        now_ms: u64,
    ) -> StoreResult<PullSnapshot>;
    /// A pull with its replay nonce: the nonce used as
    /// [`Store::use_pull_nonce`] does, then, when it was fresh, the pull's
    /// [`Store::pull_snapshot`]; `None` for a nonce seen before (nothing
    /// read is answered). A backend may run both in one round trip (the
    /// reads need not wait for the nonce, as the answer does).
    async fn pull_with_nonce(
        &self,
        nonce: Nonce16,
        keep_until_ms: u64,
        authenticator_ids: Vec<AuthenticatorId>,
        feed: FeedCursors,
        decisions_after: Vec<u64>,
        now_ms: u64,
    ) -> StoreResult<Option<PullSnapshot>> {
        if !self.use_pull_nonce(nonce, keep_until_ms).await? {
            return Ok(None);
        }
        self.pull_snapshot(authenticator_ids, feed, decisions_after, now_ms)
            .await
            .map(Some)
    }
    /// One consistent read for a decision: the request, the authenticator and
    /// the request's identity.
    async fn decision_context(
        &self,
        request_id: RequestId,
        authenticator_id: AuthenticatorId,
    ) -> StoreResult<DecisionContext>;
    /// Records a nonce; `false` when it was seen before.
    async fn use_nonce(&self, nonce: Nonce16, keep_until_ms: u64) -> StoreResult<bool>;
    /// Records a pull's nonce as [`Store::use_nonce`] does, checked against
    /// and seen by every other nonce at once, but without waiting for the
    /// disk: an OS crash or power cut may forget the last few, which lets a
    /// captured pull be read again within its 5 minutes and nothing more
    /// (docs/threat-model.md, "A pull's nonce"). By default the durable
    /// [`Store::use_nonce`].
    async fn use_pull_nonce(&self, nonce: Nonce16, keep_until_ms: u64) -> StoreResult<bool> {
        self.use_nonce(nonce, keep_until_ms).await
    }
    /// Whether a nonce is recorded (and not yet purged); records nothing.
    async fn nonce_seen(&self, nonce: Nonce16) -> StoreResult<bool>;
    /// Deletes nonces that can no longer be replayed.
    async fn purge_nonces(&self, now_ms: u64) -> StoreResult<u64>;
    /// Stores a service provider; `Conflict` on a key-hash collision.
    async fn create_service_provider(&self, sp: ServiceProvider) -> StoreResult<()>;
    /// Stores a service provider unless, atomically, its name is confusable
    /// (equal UTS #39 skeletons, [`eid_protocol::confusables::names_confusable`])
    /// with a registered provider's name, the built-in self-service provider's
    /// included; `Conflict` on a key-hash collision.
    async fn register_service_provider(&self, sp: ServiceProvider) -> StoreResult<RegisterResult>;
    /// Finds a service provider by the hash of the API key it was registered
    /// with, whatever that key's state now. Calls are authenticated with
    /// [`Store::provider_by_api_key`], which sees every key and its state.
    async fn service_provider_by_key(
        &self,
        api_key_sha256: [u8; 32],
    ) -> StoreResult<Option<ServiceProvider>>;
    /// A service provider by id.
    async fn service_provider(&self, id: ServiceProviderId)
    -> StoreResult<Option<ServiceProvider>>;
    /// The provider and the key (any state) whose SHA-256 this is.
    async fn provider_by_api_key(&self, key_sha256: [u8; 32]) -> StoreResult<Option<ProviderKey>>;
    /// A provider's API keys, oldest first.
    async fn api_keys(&self, service_provider_id: ServiceProviderId) -> StoreResult<Vec<ApiKey>>;
    /// A provider's webhook, if it has one.
    async fn webhook(&self, service_provider_id: ServiceProviderId)
    -> StoreResult<Option<Webhook>>;
    /// Claims up to `limit` due webhook deliveries, like
    /// [`Store::claim_deliveries`]: counts the attempt and leases the row
    /// until `now_ms + lease_ms`. A row whose provider removed its webhook
    /// is dropped (marked finished) instead.
    async fn claim_webhook_deliveries(
        &self,
        now_ms: u64,
        limit: u32,
        lease_ms: u64,
        max_attempts: u32,
    ) -> StoreResult<Vec<ClaimedWebhookDelivery>>;
    /// Records how a claimed webhook delivery ended.
    async fn finish_webhook_delivery(
        &self,
        id: u64,
        outcome: DeliveryOutcome,
        now_ms: u64,
    ) -> StoreResult<()>;
    /// Stores a new pending request if, atomically, its identity exists, is
    /// unblocked and has fewer than `max_pending` pending unexpired requests.
    async fn create_request(
        &self,
        request: StoredRequest,
        max_pending: u64,
        now_ms: u64,
    ) -> StoreResult<CreateResult> {
        self.create_request_limited(request, RequestLimits::pending_only(max_pending), now_ms)
            .await
    }
    /// Like [`Store::create_request`], checking, in the same atomic write and
    /// in this order: the identity exists and is unblocked; the service provider
    /// is not held for it after a fraud report (the first refusal of a hold
    /// records a `requests_held` event); the pending cap; the rate-limit
    /// windows (sliding, over the stored requests' creation times).
    async fn create_request_limited(
        &self,
        request: StoredRequest,
        limits: RequestLimits,
        now_ms: u64,
    ) -> StoreResult<CreateResult>;
    /// [`Store::create_request_limited`], answering also whether it made a
    /// durable commit (one whose answer waited for the disk): a refusal's
    /// answer on the login pages then makes no stand-in write of its own,
    /// so that every path waits for as many flushes as an unknown user
    /// ID's (docs/threat-model.md, "Learning whether a user ID exists").
    /// By default a created request and a hold's first refusal (its
    /// event); a backend whose refusals can commit durably says so.
    async fn create_request_durable(
        &self,
        request: StoredRequest,
        limits: RequestLimits,
        now_ms: u64,
    ) -> StoreResult<(CreateResult, bool)> {
        let result = self.create_request_limited(request, limits, now_ms).await?;
        Ok((result, result.wrote()))
    }
    /// Loads a request.
    async fn request(&self, id: RequestId) -> StoreResult<Option<StoredRequest>>;
    /// Atomically records a decision if the request is still pending, unexpired
    /// by `now_ms`, the authenticator active and its identity unblocked, and
    /// the counter above the last; resets the wrong-PIN count when
    /// `pin_verified`. A decision on a new-device request moves its enrolment
    /// in the same transaction: approval starts the waiting period, any other
    /// outcome cancels it (each with its security event). Also in the same
    /// transaction it records a `fraud_reported` event for a fraud report, and
    /// a `used` event for an approval when the identity opted in to
    /// notifications on every use (detail: the provider's name).
    async fn decide(
        &self,
        request_id: RequestId,
        record: DecisionRecord,
        pin_verified: bool,
        now_ms: u64,
    ) -> StoreResult<DecideResult>;
    /// [`Store::decide`], with the facts the caller judged (`None`: none):
    /// the same result and guarantees; a backend may use them to record a
    /// decision in fewer round trips (the PostgreSQL backend does; the
    /// default, SQLite's, ignores them).
    async fn decide_judged(
        &self,
        request_id: RequestId,
        record: DecisionRecord,
        pin_verified: bool,
        now_ms: u64,
        judged: Option<DecisionFacts>,
    ) -> StoreResult<DecideResult> {
        let _ = judged;
        self.decide(request_id, record, pin_verified, now_ms).await
    }
    /// Stops an approval the call policy refuses (docs/protocol.md, "Call
    /// context"), in one transaction, if the request is still pending and
    /// unexpired by `now_ms`: cancels the request, keeps the phone's call
    /// context ([`Store::call_stop`]), records an
    /// `approval_stopped_on_call` event (detail: the provider's name;
    /// notified on every channel), and moves a new-device enrolment or a
    /// self-service change as a refusal would.
    async fn stop_on_call(
        &self,
        request_id: RequestId,
        authenticator_id: AuthenticatorId,
        call_context: eid_protocol::CallContext,
        now_ms: u64,
    ) -> StoreResult<StopResult>;
    /// The stopped approval of a request, if the call policy stopped one.
    async fn call_stop(&self, request_id: RequestId) -> StoreResult<Option<CallStop>>;
    /// Counts a wrong login-screen code on a request; at `cancel_at` the
    /// request is cancelled (at `now_ms`) if still pending. Returns the count
    /// after this one.
    async fn record_binding_mismatch(
        &self,
        request_id: RequestId,
        cancel_at: u32,
        now_ms: u64,
    ) -> StoreResult<u32>;
    /// Counts a wrong PIN signature; locks the authenticator at `lock_at`
    /// and then records a `pin_lockout` event at `now_ms`. Returns the count
    /// after this one.
    async fn record_wrong_pin(
        &self,
        id: AuthenticatorId,
        lock_at: u32,
        now_ms: u64,
    ) -> StoreResult<u32>;
    /// Cancels a pending request of this provider.
    async fn cancel_request(
        &self,
        id: RequestId,
        service_provider_id: ServiceProviderId,
        now_ms: u64,
    ) -> StoreResult<CancelResult>;
    /// Counts pending, unexpired requests of an identity.
    async fn count_pending(&self, identity_id: IdentityId, now_ms: u64) -> StoreResult<u64>;
    /// Asks for a device enrolment, atomically. With `request` (its envelope
    /// names the identity the caller looked up): if the identity is unblocked,
    /// has no other live enrolment, fewer than `max_per_hour` enrolments in
    /// the last hour and fewer than `max_devices` devices (active
    /// authenticators plus live enrolments), stores the enrolment, its
    /// new-device request and a `new_device_requested` event; if the cap is
    /// reached, `DeviceLimitReached`; otherwise, and without `request`, stores
    /// `enrolment` as a decoy. The same new keys with a live enrolment (real
    /// or decoy) get that enrolment back.
    async fn start_enrolment(
        &self,
        enrolment: Enrolment,
        request: Option<StoredRequest>,
        max_devices: u64,
        max_per_hour: u64,
        now_ms: u64,
    ) -> StoreResult<StartEnrolmentResult>;
    /// Loads an enrolment.
    async fn enrolment(&self, id: AuthenticatorId) -> StoreResult<Option<Enrolment>>;
    /// The new device's status poll, atomically: closes an enrolment whose
    /// request was refused, cancelled or expired or whose identity is blocked;
    /// once approved and `now_ms` is past the waiting period, re-checks the
    /// block and the device cap, stores the authenticator (id = enrolment id)
    /// and a `device_activated` event.
    async fn poll_enrolment(
        &self,
        id: AuthenticatorId,
        max_devices: u64,
        now_ms: u64,
    ) -> StoreResult<EnrolmentPoll>;
    /// An existing authenticator cancels a live enrolment of its identity (and
    /// its request), recording a `new_device_cancelled` event.
    async fn cancel_enrolment(
        &self,
        authenticator_id: AuthenticatorId,
        enrolment_id: AuthenticatorId,
        now_ms: u64,
    ) -> StoreResult<CancelEnrolmentResult>;
    /// Atomically starts a self-service change with its first self-service
    /// login request, if the identity exists, is unblocked, has no change of
    /// the same family past its first login and fewer than `max_pending`
    /// pending requests. An open change of the same family still waiting for
    /// its first login is superseded (cancelled with its request). A contact
    /// change records `ContactChangeStarted`, notifying the old and the new
    /// contact.
    async fn start_change(
        &self,
        change: StoredChange,
        request: StoredRequest,
        max_pending: u64,
        now_ms: u64,
    ) -> StoreResult<StartChangeResult>;
    /// Loads a change and its identity.
    async fn change(&self, id: ChangeId) -> StoreResult<Option<(StoredChange, Identity)>>;
    /// The changes of `identity_id` stored as open (any kind), oldest first;
    /// the caller applies the clock ([`StoredChange::state_at`]). For the
    /// self-service pages' list of the person's changes.
    async fn open_changes(&self, identity_id: IdentityId) -> StoreResult<Vec<StoredChange>>;
    /// Atomically asks for the second login of a contact change: before the
    /// earliest time it records a `ContactChangeStarted` event for the early
    /// attempt (notifying old and new contact) and refuses; after it stores
    /// `request` as the second login request.
    async fn confirm_change(
        &self,
        id: ChangeId,
        request: StoredRequest,
        max_pending: u64,
        now_ms: u64,
    ) -> StoreResult<ConfirmChangeResult>;
    /// Marks the changes that expired by `now_ms` (first login not approved
    /// in time, or not completed within a day of it) as expired, each with a
    /// `ContactChangeCancelled` event (old and new contact notified); at most
    /// `limit` per call. Reads already treat them as expired; this records
    /// it. Returns how many were marked.
    async fn expire_changes(&self, now_ms: u64, limit: u32) -> StoreResult<u64>;
    /// Deletes up to `limit` decoy enrolments (answers to starts for an
    /// unknown or blocked user ID, or past the limits) that expired before
    /// `now_ms`; returns how many. Their status poll answers "closed" either
    /// way, so deleting them changes no answer and keeps the table bounded.
    async fn purge_decoy_enrolments(&self, now_ms: u64, limit: u32) -> StoreResult<u64>;
    /// Cancels an open change of `identity_id` (from the app), with its
    /// pending self-service request, and records `ContactChangeCancelled`.
    async fn cancel_change(
        &self,
        id: ChangeId,
        identity_id: IdentityId,
        authenticator_id: AuthenticatorId,
        now_ms: u64,
    ) -> StoreResult<CancelChangeResult>;
    /// Runs an admin action and appends its audit row in one transaction:
    /// both are stored, or neither (only [`AdminActionResult::Done`] writes).
    /// A block or unblock records its event with the audit row's id.
    async fn admin_action(
        &self,
        audit: NewAudit,
        action: AdminAction,
    ) -> StoreResult<AdminActionResult>;
    /// Appends an audit row for an action that writes nothing else (a
    /// look-up, a refusal); returns its id. There is no way to change or
    /// remove one.
    async fn record_audit(&self, audit: NewAudit) -> StoreResult<u64>;
    /// Audit rows, newest first: of one identity or all, with ids below
    /// `before` (all when `None`), at most `limit`.
    async fn audit_entries(
        &self,
        identity_id: Option<IdentityId>,
        before: Option<u64>,
        limit: u32,
    ) -> StoreResult<Vec<AuditEntry>>;
    /// Finds an agent (revoked ones too) by the hash of its token.
    async fn agent_by_token(&self, token_sha256: [u8; 32]) -> StoreResult<Option<Agent>>;
    /// Every agent, oldest first.
    async fn agents(&self) -> StoreResult<Vec<Agent>>;
    /// Finds an OpenID Connect client by its `client_id`.
    async fn oidc_client(&self, client_id: &str) -> StoreResult<Option<OidcClient>>;
    /// Stores a pushed authorization request as a new login, findable by the
    /// hash of its `request_uri`.
    async fn create_oidc_login(
        &self,
        login: OidcLogin,
        request_uri_sha256: [u8; 32],
    ) -> StoreResult<()>;
    /// A browser arrives with a `request_uri`: binds the login to the
    /// browser's cookie, once (a `request_uri` is single use) and only
    /// before it expires, for `client_id`'s logins only.
    async fn bind_oidc_login(
        &self,
        request_uri_sha256: [u8; 32],
        client_id: &str,
        browser_sha256: [u8; 32],
        now_ms: u64,
    ) -> StoreResult<BindLoginResult>;
    /// A login by id.
    async fn oidc_login(&self, id: LoginId) -> StoreResult<Option<OidcLogin>>;
    /// Replaces the login's request `previous` by `request_id` (a first
    /// user ID, or a retry after an expired or refused request); `false`
    /// (nothing changed) when its request is no longer `previous` or a code
    /// was issued.
    async fn set_oidc_login_request(
        &self,
        id: LoginId,
        previous: Option<RequestId>,
        request_id: RequestId,
        request_expires_at_ms: u64,
    ) -> StoreResult<bool>;
    /// Issues the login's code for its approved request `request_id`;
    /// `false` (nothing changed) when its request is another or a code was
    /// issued before.
    async fn issue_oidc_code(
        &self,
        id: LoginId,
        request_id: RequestId,
        code_sha256: [u8; 32],
        code_expires_at_ms: u64,
    ) -> StoreResult<bool>;
    /// The login a code was issued for, whatever its state.
    async fn oidc_login_by_code(&self, code_sha256: [u8; 32]) -> StoreResult<Option<OidcLogin>>;
    /// Uses a code, once: with `access` (the access token's hash and
    /// expiry) for a redemption, without to burn it after a failed one. A
    /// code presented again revokes the access token of its first use.
    async fn redeem_oidc_code(
        &self,
        code_sha256: [u8; 32],
        access: Option<([u8; 32], u64)>,
        now_ms: u64,
    ) -> StoreResult<RedeemResult>;
    /// The login an access token was issued for, whatever its state.
    async fn oidc_login_by_access_token(
        &self,
        access_sha256: [u8; 32],
    ) -> StoreResult<Option<OidcLogin>>;
    /// Deletes up to `limit` logins whose end has passed; returns how many.
    /// A login completed with a hardware authenticator stays: its hardware
    /// receipt is the only record of that login, kept for disputes as the
    /// app's receipts are with their decisions.
    async fn purge_oidc_logins(&self, now_ms: u64, limit: u32) -> StoreResult<u64>;
    /// Records the method chosen on the user-ID step with, for a hardware
    /// method, the typed user ID's identity (`None` when unknown); forgets
    /// the login's request (the caller withdrew a waiting one), a passed
    /// first factor and any earlier choice. `false` (nothing changed) once
    /// a code was issued.
    async fn choose_oidc_login_method(
        &self,
        id: LoginId,
        method: LoginMethod,
        hardware_identity_id: Option<IdentityId>,
    ) -> StoreResult<bool>;
    /// Records that the first factor of hardware authenticator
    /// `first_factor` passed for the login (a code device's code); `false`
    /// (nothing changed) when the login's method is no longer `method` or a
    /// code was issued.
    async fn pass_oidc_first_factor(
        &self,
        id: LoginId,
        method: LoginMethod,
        first_factor: String,
    ) -> StoreResult<bool>;
    /// Stores a manufacturer's batch of code devices (unassigned) and its
    /// audit row in one write; nothing when a serial is already stored.
    async fn import_token_batch(
        &self,
        audit: NewAudit,
        batch: TokenBatch,
        devices: Vec<CodeDevice>,
    ) -> StoreResult<ImportResult>;
    /// A code device by serial.
    async fn code_device(&self, serial: &str) -> StoreResult<Option<CodeDevice>>;
    /// Every code device ever activated on the identity (active, then the
    /// deactivated ones), oldest activation first.
    async fn code_devices_of(&self, identity_id: IdentityId) -> StoreResult<Vec<CodeDevice>>;
    /// Uses time step `step` of the identity's active code device `serial`
    /// in one conditional write: accepted only when it is above the last
    /// accepted step, the device is not blocked and the identity is not
    /// blocked; the step is the last accepted one then.
    async fn use_code_step(
        &self,
        serial: &str,
        identity_id: IdentityId,
        step: u64,
        now_ms: u64,
    ) -> StoreResult<CodeStepResult>;
    /// Records a login attempt's outcome on an active code device: a
    /// failure counts, and the one that reaches the limit blocks the device
    /// for a growing time (rules in `crate::code_devices::check`) with a
    /// `code_device_blocked` event; a login resets the count with a
    /// `code_device_used` event.
    async fn record_code_device_attempt(
        &self,
        serial: &str,
        attempt: CodeAttempt,
        now_ms: u64,
    ) -> StoreResult<AttemptRecorded>;
    /// Activates an unassigned code device on the identity of a user ID
    /// with support's activation code, in one write: the activation code
    /// is checked (a wrong one counts a try, as at the app's activation)
    /// and used up, the step of the device's codes is accepted, the access
    /// code's hash stored, and a `code_device_added` event recorded.
    async fn activate_code_device_by_support(
        &self,
        activation: SupportActivation,
    ) -> StoreResult<SupportActivationResult>;
    /// Deactivates the identity's active code device `serial` for good (the
    /// person's choice in the app, checked by the caller) with a
    /// `code_device_deactivated` event, notified on every channel; `false`
    /// (nothing changed) when it is not this identity's active device.
    async fn deactivate_code_device(
        &self,
        identity_id: IdentityId,
        serial: &str,
        now_ms: u64,
    ) -> StoreResult<bool>;
    /// Uses step `step` of the unassigned code device `serial` for an
    /// activation by approval in the app, before anyone is asked: `false`
    /// (nothing changed) when the device is not unassigned or the step (or
    /// a later one) was used. Every start uses its step here, whether the
    /// user ID is known or not, so codes sent again are refused alike for
    /// every user ID and never reach anyone's app.
    async fn use_unassigned_code_step(&self, serial: &str, step: u64) -> StoreResult<bool>;
    /// Records an activation of the unassigned code device `serial` that
    /// waits for the approval of request `request_id` (kind `code_device`)
    /// by `identity_id`, started with the codes of step `step` (used just
    /// before by [`Store::use_unassigned_code_step`]); `false` (nothing
    /// changed) when the device is not unassigned, a later step was used
    /// since, or the request no longer waits (a phone decided it first: it
    /// is in the pull from its creation on, so an approval applied to
    /// nothing must not be followed by an activation that is never
    /// applied). The decision on the request, in its own write
    /// ([`Store::decide`]), activates the device on approval (replacing the
    /// identity's active one, both notified) or forgets the activation.
    async fn request_code_device_activation(
        &self,
        serial: &str,
        identity_id: IdentityId,
        request_id: RequestId,
        step: u64,
        access_code_hash: crate::access_code::AccessCodeHash,
    ) -> StoreResult<bool>;
    /// Completes a login by a hardware authenticator in one write: stores
    /// the server-signed receipt and issues the login's code. `false`
    /// (nothing changed) when the login's method is not the receipt's, or a
    /// code was issued before.
    async fn complete_oidc_login_by_hardware(
        &self,
        id: LoginId,
        receipt: SignedHardwareReceipt,
        code_sha256: [u8; 32],
        code_expires_at_ms: u64,
    ) -> StoreResult<bool>;
    /// Stores a chip ceremony, deleting ceremonies that expired by `now_ms`.
    async fn put_chip_ceremony(&self, ceremony: ChipCeremony, now_ms: u64) -> StoreResult<()>;
    /// Takes a ceremony, once: deletes it and returns it if it has not
    /// expired by `now_ms`. A second take finds nothing.
    async fn take_chip_ceremony(
        &self,
        id: [u8; 16],
        now_ms: u64,
    ) -> StoreResult<Option<ChipCeremony>>;
    /// Stores a new chip with `event` (its `chip_added`), atomically, if the
    /// identity exists, is unblocked, holds no other live chip, and the
    /// credential is nobody's yet.
    async fn add_chip(&self, chip: Chip, event: NewEvent) -> StoreResult<AddChipResult>;
    /// The chips of an identity (every state), oldest first.
    async fn chips_of(&self, identity_id: IdentityId) -> StoreResult<Vec<Chip>>;
    /// Saves a chip's changed fields (counter, credential, state, times,
    /// failures) with `events`, atomically, if its stored revision is still
    /// `chip.revision` (the one read); bumps the revision. `false`: someone
    /// saved it in between, nothing was written.
    async fn save_chip(&self, chip: Chip, events: Vec<NewEvent>) -> StoreResult<bool>;
}
