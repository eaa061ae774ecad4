//! Server configuration: defaults, then an optional TOML file, then environment
//! variables prefixed `EID_SERVER_` (nested keys with `__`, for example
//! `EID_SERVER_TLS__CERT_PATH`). Loaded with `figment`.
//!
//! The `profile` setting picks the defaults the file and the environment
//! override: [`Profile::Production`] (the product's waits) unless
//! `profile = "development"` is given, which shortens the waits a tester
//! meets (see [`Config::defaults_for`] and docs/configuration.md).

use std::net::SocketAddr;
use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The server's configuration.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Which defaults apply: `production` (the default) or `development`
    /// (short waits for trying things by hand; refused on a non-loopback
    /// address or with a public `oidc_issuer`).
    pub profile: Profile,
    /// Address to listen on (127.0.0.1 by default).
    pub listen: SocketAddr,
    /// Folder for the database, the server key and the development certificate.
    pub data_dir: PathBuf,
    /// Admin API bearer token. When absent, one is generated on first start and
    /// kept in `<data_dir>/admin-token` (mode 0600).
    pub admin_token: Option<String>,
    /// TLS certificate and key (PEM). When absent, development mode creates a
    /// self-signed certificate in the data folder and prints its SPKI pin.
    pub tls: TlsConfig,
    /// Activation-code lifetime in seconds.
    pub activation_code_ttl_secs: u64,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Log format: `text` or `json`.
    pub log_format: LogFormat,
    /// Most pending requests one identity may have at once.
    pub max_pending_per_identity: u64,
    /// Lifetime of a service-provider request in seconds: 300 (the product's
    /// 5 minutes). QA suites that cannot drive a manual clock, such as the
    /// Kotlin and Swift shells' tests, shorten it to test expiry; the server
    /// logs a warning when it is not 300.
    pub request_lifetime_secs: u64,
    /// Waiting period, in seconds, between the approval of a new device (from
    /// an existing one) and the moment it works: 3600 (MitID's hour).
    pub new_device_wait_secs: u64,
    /// Waiting period, in seconds, between a chip's registration (step 1 on
    /// the self-service pages) and its confirmation (step 2): 86400 (MitID's
    /// 24 hours), during which every channel has been told and the app can
    /// cancel it.
    pub chip_wait_secs: u64,
    /// Most devices per identity: active authenticators plus new devices
    /// being added (awaiting approval or in the waiting period).
    pub max_devices_per_identity: u64,
    /// Security-event notifications by SMS and e-mail (the dispatcher).
    pub notifications: NotificationsConfig,
    /// How long a service provider's older API keys keep working after a
    /// rotation, in seconds: 86400 (a day to deploy the new key).
    pub api_key_grace_secs: u64,
    /// Service providers' webhooks (the webhook dispatcher).
    pub webhooks: WebhooksConfig,
    /// Least time between the two self-service logins of a phone or e-mail
    /// change, in seconds: 3600 (one hour) in production. The server's clock
    /// decides. Tests that cannot drive a manual clock shorten it.
    pub self_service_gap_secs: u64,
    /// Limits on service-provider request creation (MFA fatigue).
    pub floods: FloodConfig,
    /// Timeouts and the cap on open connections (slow clients).
    pub connections: ConnectionsConfig,
    /// Web origins besides the server's own (`https://` + the `Host` it is
    /// called by) whose pages may call the public endpoints (self-service
    /// portal, activation, enrolment), for example
    /// `["https://selvbetjening.eid.example"]`. A request with another
    /// `Origin` header is refused (`origin_refused`); one without is not.
    /// Each entry is an origin: scheme, host and optional port, no path.
    pub allowed_origins: Vec<String>,
    /// The OpenID Connect issuer: an `https` origin without a trailing slash
    /// (for example `https://eid.example`), the server answering at its
    /// root. Unset, it is `https://` and the host the request came by, which
    /// suits development only: set it in production so that every client
    /// sees one issuer whatever host name it used.
    pub oidc_issuer: Option<String>,
    /// What happens to an approval made while the phone saw a call, screen
    /// sharing or remote control, per request kind and per service provider
    /// (docs/protocol.md, "Call context").
    pub call_policy: CallPolicyConfig,
    /// The PostgreSQL database (`postgres://user:password@host:port/db`,
    /// `?sslmode=require` for TLS) shared by several replicas of the server.
    /// Unset, the server keeps its data in SQLite in `data_dir` (one
    /// process). The URL may hold a password: set it through
    /// `EID_SERVER_DATABASE_URL` rather than a file or a command line; it
    /// is never logged or printed (host and database only).
    pub database_url: Option<DatabaseUrl>,
    /// How many connections each replica keeps open to the PostgreSQL
    /// database at most (its pool; the listening connection for `LISTEN`
    /// comes on top). At least 1; ignored without `database_url`. The
    /// default suits a database with a few cores (docs/scaling.md,
    /// "Connection budget").
    pub database_pool_size: usize,
}

/// The call policy: one disposition per request kind (`allow`, `flag` or
/// `refuse`), applied to an approval whose signed call context has a signal
/// on. The eID's own kinds, which a caller posing as the bank uses to take
/// over the identity, are refused by default; a service provider's logins
/// and signatures are flagged to it, and a provider can ask for `refuse`
/// (or `allow`) in `providers`. Environment:
/// `EID_SERVER_CALL_POLICY__<FIELD>`, for example
/// `EID_SERVER_CALL_POLICY__LOGIN=refuse`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallPolicyConfig {
    /// A service provider's login.
    pub login: crate::policy::CallDisposition,
    /// A service provider's signature.
    pub signature: crate::policy::CallDisposition,
    /// A login to the eID's own self-service (contact data, user ID).
    pub self_service: crate::policy::CallDisposition,
    /// Adding a new device from an existing one.
    pub new_device: crate::policy::CallDisposition,
    /// Activating a code device (code display or audio code reader) by
    /// approval in the app.
    pub code_device: crate::policy::CallDisposition,
    /// Per-provider choices for logins and signatures, keyed by the service
    /// provider id (32 hex digits); a kind not given follows the defaults
    /// above.
    pub providers: std::collections::BTreeMap<String, ProviderCallPolicy>,
}

/// One service provider's call policy (see [`CallPolicyConfig`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderCallPolicy {
    /// Its logins.
    pub login: Option<crate::policy::CallDisposition>,
    /// Its signatures.
    pub signature: Option<crate::policy::CallDisposition>,
}

impl Default for CallPolicyConfig {
    fn default() -> Self {
        use crate::policy::CallDisposition::{Flag, Refuse};
        Self {
            login: Flag,
            signature: Flag,
            self_service: Refuse,
            new_device: Refuse,
            code_device: Refuse,
            providers: std::collections::BTreeMap::new(),
        }
    }
}

impl CallPolicyConfig {
    /// The disposition for a request of `kind` from `provider`: the table
    /// row of the kind, or the provider's own choice for its logins and
    /// signatures. A kind this table has no row for (added to the protocol
    /// later) is refused until someone decides otherwise.
    pub fn disposition(
        &self,
        kind: eid_protocol::RequestKind,
        provider: eid_protocol::ServiceProviderId,
    ) -> crate::policy::CallDisposition {
        use eid_protocol::RequestKind as K;
        // Looked up by the id's text, written on the stack: this runs for
        // every decision, and the table is most often empty.
        let own = if self.providers.is_empty() {
            None
        } else {
            self.providers.get(provider.hex(&mut [0; 32]))
        };
        match kind {
            K::Login => own.and_then(|p| p.login).unwrap_or(self.login),
            K::Signature => own.and_then(|p| p.signature).unwrap_or(self.signature),
            K::SelfService => self.self_service,
            K::NewDevice => self.new_device,
            K::CodeDevice => self.code_device,
            // A kind this table has no row for is refused during a call.
            #[allow(unreachable_patterns)]
            _ => crate::policy::CallDisposition::Refuse,
        }
    }
}

/// A PostgreSQL connection URL. It may hold a password, so nothing shows
/// it: `Debug` and the printed configuration show it with the password
/// replaced, logs name host and database only; the text is wiped when
/// dropped.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL itself, for the driver only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password (if any) replaced, for display.
    pub fn redacted(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(mut u) => {
                if u.password().is_some() {
                    let _ = u.set_password(Some(crate::effective_config::REDACTED));
                }
                // Query parameters may carry a password too (`password=`).
                if u.query().is_some_and(|q| q.contains("password")) {
                    u.set_query(Some(crate::effective_config::REDACTED));
                }
                u.to_string()
            }
            // A key=value string: no telling where the password is.
            Err(_) => crate::effective_config::REDACTED.to_owned(),
        }
    }
}

impl Drop for DatabaseUrl {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl Serialize for DatabaseUrl {
    // The printed configuration (`--print-config`) shows it redacted.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

/// Timeouts and the cap on open connections, against slow clients that hold
/// connections open (a header line or a body byte every few seconds).
/// Environment: `EID_SERVER_CONNECTIONS__<FIELD>`, for example
/// `EID_SERVER_CONNECTIONS__MAX_CONNECTIONS`. Every value must be at least 1.
///
/// A request in flight is never cut by the idle timeout: a service provider's
/// long poll waits up to 60 s (`api::MAX_WAIT_SECS`) with nothing on the wire.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionsConfig {
    /// Longest TLS handshake, from the TCP accept, in milliseconds.
    pub tls_handshake_timeout_ms: u64,
    /// Longest wait for a complete HTTP/1.1 request head, in milliseconds.
    /// hyper starts it as soon as it waits for a head, so it also closes an
    /// HTTP/1.1 keep-alive connection idle that long.
    pub header_read_timeout_ms: u64,
    /// Longest time to receive a whole request body, in milliseconds, counted
    /// from the request head (a total, not a gap between bytes): 408 after it.
    pub body_read_timeout_ms: u64,
    /// A connection (HTTP/1.1 or HTTP/2) with no request in flight for this
    /// many milliseconds is closed, whatever PINGs or partial requests the
    /// client sends. Before its first request a connection gets
    /// `header_read_timeout_ms` instead, if that is shorter.
    pub idle_timeout_ms: u64,
    /// Most connections open at once (TLS handshakes included). Beyond it new
    /// connections are closed at once and a warning is logged at most every
    /// 10 s. Keep it below the process's open-file limit.
    pub max_connections: usize,
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        Self {
            tls_handshake_timeout_ms: 10_000,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 30_000,
            idle_timeout_ms: 60_000,
            max_connections: 10_000,
        }
    }
}

impl ConnectionsConfig {
    /// The first value that is 0 (none may be: a 0 timeout would cut every
    /// connection, a 0 cap would refuse them all).
    fn zero_field(&self) -> Option<&'static str> {
        [
            ("tls_handshake_timeout_ms", self.tls_handshake_timeout_ms),
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("body_read_timeout_ms", self.body_read_timeout_ms),
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("max_connections", self.max_connections as u64),
        ]
        .into_iter()
        .find_map(|(name, value)| (value == 0).then_some(name))
    }
}

/// Limits on service-provider request creation against MFA-fatigue floods,
/// on top of `max_pending_per_identity`. Counted in the request-creation
/// write (serialized on the writer thread, so concurrent creates cannot
/// slip past) over the stored requests, in sliding windows by the server's
/// clock: the counts survive a restart. A limit of 0 turns that limit off.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FloodConfig {
    /// Most requests for one person in any 60 s, over all service providers
    /// (the built-in self-service provider's are not counted).
    pub per_identity_per_minute: u64,
    /// Most requests for one person in any hour, over all service providers.
    pub per_identity_per_hour: u64,
    /// Most requests by one service provider in any 60 s, over all persons.
    pub per_provider_per_minute: u64,
    /// Most requests by one service provider in any hour, over all persons.
    pub per_provider_per_hour: u64,
    /// Per-provider overrides of `per_provider_per_minute`, keyed by the
    /// service provider id (32 hex digits), for a large service provider.
    pub provider_per_minute_overrides: std::collections::BTreeMap<String, u64>,
    /// After the person reports a request as fraud ("this wasn't me"), new
    /// requests from that service provider for that person are refused for this
    /// many seconds (`cooling_down`); other service providers are not held.
    pub fraud_hold_secs: u64,
    /// Per-address limit on the unauthenticated endpoints.
    pub per_address: PerAddressConfig,
}

impl FloodConfig {
    /// The rate limits off (the fraud hold kept): for load generators and
    /// benchmarks that measure throughput with a few identities. Never for
    /// production.
    pub fn rate_limits_off() -> Self {
        Self {
            per_identity_per_minute: 0,
            per_identity_per_hour: 0,
            per_provider_per_minute: 0,
            per_provider_per_hour: 0,
            per_address: PerAddressConfig::off(),
            ..Self::default()
        }
    }
}

impl Default for FloodConfig {
    fn default() -> Self {
        Self {
            per_identity_per_minute: 5,
            per_identity_per_hour: 20,
            per_provider_per_minute: 600,
            per_provider_per_hour: 0,
            provider_per_minute_overrides: std::collections::BTreeMap::new(),
            fraud_hold_secs: 3600,
            per_address: PerAddressConfig::default(),
        }
    }
}

/// How often one client address may call the endpoints that need no
/// credentials: the self-service portal, activation, the start and status of
/// an enrolment, and the public reads (`/healthz`, `/openapi.json`,
/// `/v1/server-key`). They share one budget per address (IPv4 address, or
/// IPv6 /64 network), a token bucket: `burst` calls at once, refilled at
/// `per_minute`. Over it: 429 `rate_limited` with `Retry-After`. The admin,
/// service-provider and signed device endpoints are not counted. Environment:
/// `EID_SERVER_FLOODS__PER_ADDRESS__<FIELD>`. Behind a reverse proxy every
/// client has the proxy's address: limit there instead, and turn this off.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PerAddressConfig {
    /// Calls one address may make per minute, sustained; 0 turns the limit
    /// off.
    pub per_minute: u32,
    /// Calls one address may make at once after a quiet spell (at least 1
    /// when the limit is on).
    pub burst: u32,
}

impl PerAddressConfig {
    /// No per-address limit (load generators, benchmarks).
    pub fn off() -> Self {
        Self {
            per_minute: 0,
            burst: 0,
        }
    }
}

impl Default for PerAddressConfig {
    fn default() -> Self {
        // A portal session polls a status every few seconds and a phone
        // activates once; 2 a second per address with a burst of 60 leaves
        // room for a few people behind one NAT and for the test suites,
        // while one address can no longer flood the signing and the store.
        Self {
            per_minute: 120,
            burst: 60,
        }
    }
}

/// The notification dispatcher: it works off the `event_deliveries` outbox.
/// It runs only when at least one channel is configured; deliveries for a
/// channel that is not configured stay pending (nothing is lost) until it is.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationsConfig {
    /// How often the dispatcher looks for due deliveries, in milliseconds.
    pub poll_interval_ms: u64,
    /// Most deliveries claimed at once.
    pub batch_size: u32,
    /// Attempts per delivery before it is given up (kept, with its error).
    pub max_attempts: u32,
    /// First retry delay in seconds; it doubles per attempt up to the cap.
    pub retry_base_secs: u64,
    /// Longest retry delay in seconds.
    pub retry_cap_secs: u64,
    /// How long a claimed delivery is reserved, in seconds: if the server
    /// dies mid-delivery it is claimed again after this (at-least-once).
    pub lease_secs: u64,
    /// Support's phone number, named in the texts ("call support on ...").
    pub support_phone: Option<String>,
    /// E-mail by SMTP; off when absent.
    pub smtp: Option<SmtpConfig>,
    /// SMS through an HTTP webhook; off when absent.
    pub sms: Option<SmsWebhookConfig>,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self {
            poll_interval_ms: 1000,
            batch_size: 16,
            max_attempts: 10,
            retry_base_secs: 30,
            retry_cap_secs: 3600,
            lease_secs: 300,
            support_phone: None,
            smtp: None,
            sms: None,
        }
    }
}

impl std::fmt::Debug for NotificationsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationsConfig")
            .field("poll_interval_ms", &self.poll_interval_ms)
            .field("max_attempts", &self.max_attempts)
            .field("smtp", &self.smtp)
            .field("sms", &self.sms)
            .finish_non_exhaustive()
    }
}

/// The webhook dispatcher: it works off the `webhook_deliveries` outbox
/// (see docs/webhooks.md).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// How often the dispatcher looks for due deliveries, in milliseconds.
    pub poll_interval_ms: u64,
    /// Most deliveries claimed at once.
    pub batch_size: u32,
    /// Attempts per delivery before it is given up (kept, with its error).
    pub max_attempts: u32,
    /// First retry delay in seconds; it doubles per attempt up to the cap.
    pub retry_base_secs: u64,
    /// Longest retry delay in seconds.
    pub retry_cap_secs: u64,
    /// How long one POST may take, in seconds (it counts as a failure after).
    pub timeout_secs: u64,
    /// How long a claimed delivery is reserved, in seconds: if the server
    /// dies mid-delivery it is claimed again after this (at-least-once).
    pub lease_secs: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            poll_interval_ms: 500,
            batch_size: 16,
            max_attempts: 12,
            retry_base_secs: 1,
            retry_cap_secs: 3600,
            timeout_secs: 10,
            lease_secs: 60,
        }
    }
}

/// How the SMTP connection is secured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain SMTP, upgraded with STARTTLS (required).
    #[default]
    Starttls,
    /// TLS from the start (SMTPS, usually port 465).
    Tls,
    /// No TLS: only for a relay on loopback (tests, a local MTA).
    None,
}

/// The SMTP server e-mail notifications go through.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Host name (checked against the certificate with TLS).
    pub host: String,
    /// Port (587 for STARTTLS, 465 for TLS, 25 plain).
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// Sender address, for example `eID <no-reply@eid.example>`.
    pub from: String,
    /// Connection security.
    #[serde(default)]
    pub security: SmtpSecurity,
    /// Login, if the relay needs one.
    #[serde(default)]
    pub username: Option<String>,
    /// Password for `username`.
    #[serde(default)]
    pub password: Option<String>,
    /// Timeout of one delivery, in seconds.
    #[serde(default = "default_delivery_timeout_secs")]
    pub timeout_secs: u64,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// The SMS gateway's webhook: the server POSTs JSON `{"to", "text"}`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsWebhookConfig {
    /// The URL; `https://` (plain `http://` only to a loopback address).
    pub url: String,
    /// Sent as `Authorization: Bearer ...` when set.
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// Timeout of one delivery, in seconds.
    #[serde(default = "default_delivery_timeout_secs")]
    pub timeout_secs: u64,
}

impl std::fmt::Debug for SmsWebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a key in its query: not printed.
        f.debug_struct("SmsWebhookConfig")
            .field("timeout_secs", &self.timeout_secs)
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

fn default_smtp_port() -> u16 {
    587
}

fn default_delivery_timeout_secs() -> u64 {
    10
}

/// TLS files.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert_path: Option<PathBuf>,
    /// PEM private key.
    pub key_path: Option<PathBuf>,
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Which set of defaults the server starts from. Only the defaults differ:
/// every setting given in the file or the environment still wins.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// The product's waits and limits.
    #[default]
    Production,
    /// Short waits for a tester on their own machine (see
    /// [`DEVELOPMENT_WAIT_SECS`]): never for people. Refused on a
    /// non-loopback listen address or with a public `oidc_issuer`.
    Development,
}

impl std::str::FromStr for Profile {
    type Err = UnknownProfile;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "production" => Ok(Self::Production),
            "development" => Ok(Self::Development),
            _ => Err(UnknownProfile(text.to_owned())),
        }
    }
}

/// A `profile` value that is neither `production` nor `development`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("profile {0:?} is unknown; it is \"production\" or \"development\"")]
pub struct UnknownProfile(String);

impl Profile {
    /// The profile named by `EID_SERVER_PROFILE` (production when unset), for
    /// `eid serve`, which reads no other setting from the environment.
    pub fn from_environment() -> Result<Self, UnknownProfile> {
        match std::env::var("EID_SERVER_PROFILE") {
            Ok(text) => text.parse(),
            Err(std::env::VarError::NotPresent) => Ok(Self::Production),
            Err(std::env::VarError::NotUnicode(_)) => Err(UnknownProfile("<not UTF-8>".to_owned())),
        }
    }
}

/// What the development profile makes of the hour-long waits (the fraud
/// hold, the self-service gap, the new-device wait): one minute, long enough
/// to see each wait happen, short enough to wait it out.
pub const DEVELOPMENT_WAIT_SECS: u64 = 60;

/// Why a configuration with the development profile is refused: it looks
/// like a deployment people would use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DevelopmentRefused {
    /// The listen address is reachable from other machines.
    #[error(
        "profile = \"development\" shortens the waits that protect people and runs only on a \
         loopback address, but listen is {0}: listen on 127.0.0.1 or [::1], or drop the \
         profile (EID_SERVER_PROFILE)"
    )]
    ListenNotLoopback(SocketAddr),
    /// `oidc_issuer` names a public host: a real service's issuer.
    #[error(
        "profile = \"development\" shortens the waits that protect people and runs only on a \
         loopback address, but oidc_issuer is {0:?}, a public host: use https://127.0.0.1:<port> \
         or https://localhost:<port>, or drop the profile (EID_SERVER_PROFILE)"
    )]
    PublicIssuer(String),
}

/// One setting the development profile changes: its name, the production
/// default and the value this configuration runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShortenedSetting {
    /// The setting's dotted name, as in docs/configuration.md.
    pub name: &'static str,
    /// Its production default.
    pub production: u64,
    /// The value this configuration runs with (the profile's, or one set
    /// explicitly).
    pub effective: u64,
    /// What a tester sees it for.
    pub what: &'static str,
}

impl Config {
    /// The defaults of `profile`. [`Profile::Development`] changes exactly
    /// these from [`Config::default`]: `floods.fraud_hold_secs`,
    /// `self_service_gap_secs`, `new_device_wait_secs` and `chip_wait_secs`
    /// to [`DEVELOPMENT_WAIT_SECS`], and the per-person rate limits
    /// (`floods.per_identity_per_minute`, `floods.per_identity_per_hour`)
    /// off.
    pub fn defaults_for(profile: Profile) -> Self {
        let production = Self::default();
        match profile {
            Profile::Production => production,
            Profile::Development => Self {
                profile,
                new_device_wait_secs: DEVELOPMENT_WAIT_SECS,
                chip_wait_secs: DEVELOPMENT_WAIT_SECS,
                self_service_gap_secs: DEVELOPMENT_WAIT_SECS,
                floods: FloodConfig {
                    per_identity_per_minute: 0,
                    per_identity_per_hour: 0,
                    fraud_hold_secs: DEVELOPMENT_WAIT_SECS,
                    ..production.floods
                },
                ..production
            },
        }
    }

    /// The settings the development profile shortens, with the values this
    /// configuration has: for the start-up warning.
    pub fn shortened_settings(&self) -> Vec<ShortenedSetting> {
        let production = Self::default();
        let row = |name, production, effective, what| ShortenedSetting {
            name,
            production,
            effective,
            what,
        };
        vec![
            row(
                "floods.fraud_hold_secs",
                production.floods.fraud_hold_secs,
                self.floods.fraud_hold_secs,
                "the hold after \"this wasn't me\"",
            ),
            row(
                "self_service_gap_secs",
                production.self_service_gap_secs,
                self.self_service_gap_secs,
                "the gap between the two self-service logins",
            ),
            row(
                "new_device_wait_secs",
                production.new_device_wait_secs,
                self.new_device_wait_secs,
                "the new-device waiting period",
            ),
            row(
                "chip_wait_secs",
                production.chip_wait_secs,
                self.chip_wait_secs,
                "the chip's waiting period",
            ),
            row(
                "floods.per_identity_per_minute",
                production.floods.per_identity_per_minute,
                self.floods.per_identity_per_minute,
                "requests per person per minute (0: no limit)",
            ),
            row(
                "floods.per_identity_per_hour",
                production.floods.per_identity_per_hour,
                self.floods.per_identity_per_hour,
                "requests per person per hour (0: no limit)",
            ),
        ]
    }

    /// The loud start-up warning of the development profile, one line each
    /// beginning `WARNING:`; `None` in production.
    pub fn development_warning(&self) -> Option<String> {
        if self.profile != Profile::Development {
            return None;
        }
        let mut text = String::from(
            "WARNING: ==============================================================\n\
             WARNING: DEVELOPMENT PROFILE (profile = \"development\"): NEVER FOR PEOPLE.\n\
             WARNING: The waits and limits that protect people are shortened:\n",
        );
        for s in self.shortened_settings() {
            text.push_str(&format!(
                "WARNING:   {:<31} {:>5} (production {}): {}\n",
                s.name, s.effective, s.production, s.what
            ));
        }
        text.push_str(
            "WARNING: It runs only on a loopback address. Unset EID_SERVER_PROFILE\n\
             WARNING: (or the `profile` key) for the product's values.\n\
             WARNING: ==============================================================\n",
        );
        Some(text)
    }

    /// Refuses the development profile where it looks like a deployment:
    /// a listen address other machines reach, or an `oidc_issuer` on a
    /// public host. Any configuration in production passes.
    pub fn check_profile(&self) -> Result<(), DevelopmentRefused> {
        if self.profile != Profile::Development {
            return Ok(());
        }
        if !self.listen.ip().is_loopback() {
            return Err(DevelopmentRefused::ListenNotLoopback(self.listen));
        }
        if let Some(issuer) = &self.oidc_issuer
            && !is_loopback_origin(issuer)
        {
            return Err(DevelopmentRefused::PublicIssuer(issuer.clone()));
        }
        Ok(())
    }
}

/// Whether `origin`'s host is `localhost` (or under `.localhost`) or a
/// loopback address. An unparsable origin is not.
fn is_loopback_origin(origin: &str) -> bool {
    let Ok(url) = url::Url::parse(origin) else {
        return false;
    };
    match url.host() {
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            profile: Profile::Production,
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            data_dir: PathBuf::from("data"),
            admin_token: None,
            tls: TlsConfig::default(),
            activation_code_ttl_secs: 600,
            max_body_bytes: 64 * 1024,
            log_format: LogFormat::Text,
            max_pending_per_identity: 10,
            request_lifetime_secs: 300,
            new_device_wait_secs: 3600,
            chip_wait_secs: 24 * 60 * 60,
            max_devices_per_identity: 3,
            notifications: NotificationsConfig::default(),
            api_key_grace_secs: 24 * 60 * 60,
            webhooks: WebhooksConfig::default(),
            self_service_gap_secs: 3600,
            floods: FloodConfig::default(),
            connections: ConnectionsConfig::default(),
            allowed_origins: Vec::new(),
            oidc_issuer: None,
            call_policy: CallPolicyConfig::default(),
            database_url: None,
            database_pool_size: crate::store::postgres::DEFAULT_POOL_SIZE,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("profile", &self.profile)
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("tls_cert_path", &self.tls.cert_path)
            .field("activation_code_ttl_secs", &self.activation_code_ttl_secs)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("request_lifetime_secs", &self.request_lifetime_secs)
            .field("new_device_wait_secs", &self.new_device_wait_secs)
            .field("chip_wait_secs", &self.chip_wait_secs)
            .field("max_devices_per_identity", &self.max_devices_per_identity)
            .field("notifications", &self.notifications)
            .field("api_key_grace_secs", &self.api_key_grace_secs)
            .field("webhooks", &self.webhooks)
            .field("self_service_gap_secs", &self.self_service_gap_secs)
            .field("floods", &self.floods)
            .field("connections", &self.connections)
            .field("allowed_origins", &self.allowed_origins)
            .field("oidc_issuer", &self.oidc_issuer)
            .field("database_url", &self.database_url)
            .field("database_pool_size", &self.database_pool_size)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Reads a configuration from TOML text over the defaults (no file, no
    /// environment), with the same checks as [`Config::load`].
    pub fn from_toml_str(text: &str) -> Result<Self, Box<figment::Error>> {
        Self::layered(|defaults| {
            Figment::from(Serialized::defaults(defaults)).merge(Toml::string(text))
        })
    }

    /// Extracts the configuration from `layers` over the defaults of the
    /// profile the layers name: the profile is read first, over the
    /// production defaults, so that what the file or the environment sets
    /// explicitly still wins over the profile's defaults.
    fn layered(layers: impl Fn(Config) -> Figment) -> Result<Self, Box<figment::Error>> {
        let profile: Profile = layers(Config::default())
            .extract_inner("profile")
            .map_err(Box::new)?;
        layers(Config::defaults_for(profile))
            .extract::<Config>()
            .map_err(Box::new)?
            .checked()
    }

    /// Refuses durations whose millisecond arithmetic could overflow or that
    /// make no sense (longer than 30 days).
    fn checked(self) -> Result<Self, Box<figment::Error>> {
        const MAX_SECS: u64 = 30 * 24 * 60 * 60;
        for (name, value) in [
            ("request_lifetime_secs", self.request_lifetime_secs),
            ("activation_code_ttl_secs", self.activation_code_ttl_secs),
            ("new_device_wait_secs", self.new_device_wait_secs),
            ("chip_wait_secs", self.chip_wait_secs),
            ("self_service_gap_secs", self.self_service_gap_secs),
            ("api_key_grace_secs", self.api_key_grace_secs),
            ("webhooks.retry_base_secs", self.webhooks.retry_base_secs),
            ("webhooks.retry_cap_secs", self.webhooks.retry_cap_secs),
            ("webhooks.timeout_secs", self.webhooks.timeout_secs),
            ("webhooks.lease_secs", self.webhooks.lease_secs),
        ] {
            if value > MAX_SECS {
                return Err(Box::new(figment::Error::from(format!(
                    "{name} is {value}; at most {MAX_SECS} (30 days)"
                ))));
            }
        }
        let per_address = &self.floods.per_address;
        if per_address.per_minute > 0 && per_address.burst == 0 {
            return Err(Box::new(figment::Error::from(
                "floods.per_address.burst is 0; it must be at least 1 while per_minute is on"
                    .to_owned(),
            )));
        }
        for origin in &self.allowed_origins {
            if crate::api::WebOrigin::parse(origin).is_none() {
                return Err(Box::new(figment::Error::from(format!(
                    "allowed_origins: {origin:?} is not an origin (scheme://host[:port])"
                ))));
            }
        }
        if let Some(issuer) = &self.oidc_issuer
            && !crate::oidc::is_issuer(issuer)
        {
            return Err(Box::new(figment::Error::from(format!(
                "oidc_issuer: {issuer:?} is not an https origin without a trailing slash"
            ))));
        }
        for id in self.call_policy.providers.keys() {
            if id.parse::<eid_protocol::ServiceProviderId>().is_err() {
                return Err(Box::new(figment::Error::from(format!(
                    "call_policy.providers: {id:?} is not a service provider id (32 lowercase hex digits)"
                ))));
            }
        }
        if let Some(name) = self.connections.zero_field() {
            return Err(Box::new(figment::Error::from(format!(
                "connections.{name} is 0; it must be at least 1"
            ))));
        }
        if self.database_pool_size == 0 {
            return Err(Box::new(figment::Error::from(
                "database_pool_size is 0; it must be at least 1 (connections to the database per replica)"
                    .to_owned(),
            )));
        }
        if self.database_pool_size > crate::store::postgres::MAX_POOL_SIZE {
            return Err(Box::new(figment::Error::from(format!(
                "database_pool_size is {}; it must be at most {} (connections to the database per replica)",
                self.database_pool_size,
                crate::store::postgres::MAX_POOL_SIZE
            ))));
        }
        if let Some(url) = &self.database_url
            && let Err(e) = crate::store::postgres::parse_database_url(url.expose())
        {
            // The error names no part of the URL: it may hold a password.
            return Err(Box::new(figment::Error::from(format!("database_url: {e}"))));
        }
        if let Err(refused) = self.check_profile() {
            return Err(Box::new(figment::Error::from(refused.to_string())));
        }
        Ok(self)
    }

    /// Loads defaults, then `file` if given, then the environment.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, Box<figment::Error>> {
        Self::layered(|defaults| {
            let mut figment = Figment::from(Serialized::defaults(defaults));
            if let Some(path) = file {
                figment = figment.merge(Toml::file_exact(path));
            }
            figment.merge(Env::prefixed("EID_SERVER_").split("__"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_notifications_section_parses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.toml");
        std::fs::write(
            &path,
            r#"
[notifications]
poll_interval_ms = 500
max_attempts = 5
support_phone = "+45 70 10 20 30"

[notifications.smtp]
host = "smtp.example.dk"
from = "eID <no-reply@eid.example.dk>"
security = "tls"
password = "hunter2-secret"

[notifications.sms]
url = "https://sms-gateway.example.dk/send"
bearer_token = "bearer-secret"
"#,
        )
        .unwrap();
        let config = Config::load(Some(&path)).unwrap();
        let n = &config.notifications;
        assert_eq!(
            (n.poll_interval_ms, n.max_attempts, n.retry_base_secs),
            (500, 5, 30)
        );
        let smtp = n.smtp.as_ref().unwrap();
        assert_eq!(
            (smtp.port, smtp.security, smtp.timeout_secs),
            (587, SmtpSecurity::Tls, 10)
        );
        assert_eq!(
            n.sms.as_ref().unwrap().url,
            "https://sms-gateway.example.dk/send"
        );
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2-secret") && !debug.contains("bearer-secret"));
        // Off by default.
        let defaults = Config::default().notifications;
        assert!(defaults.smtp.is_none() && defaults.sms.is_none());
    }

    #[test]
    fn the_call_policy_parses_per_kind_and_per_provider() {
        use crate::policy::CallDisposition;
        let config = Config::from_toml_str(
            r#"
[call_policy]
login = "refuse"

[call_policy.providers."0123456789abcdef0123456789abcdef"]
signature = "allow"
"#,
        )
        .unwrap();
        let p = &config.call_policy;
        assert_eq!(
            (p.login, p.signature, p.self_service, p.new_device),
            (
                CallDisposition::Refuse,
                CallDisposition::Flag,
                CallDisposition::Refuse,
                CallDisposition::Refuse
            )
        );
        let own = "0123456789abcdef0123456789abcdef".parse().unwrap();
        assert_eq!(
            p.disposition(eid_protocol::RequestKind::Signature, own),
            CallDisposition::Allow
        );
        assert_eq!(
            p.disposition(eid_protocol::RequestKind::Login, own),
            CallDisposition::Refuse
        );
        // Another provider has the table's rows; the lookup is by the exact
        // lowercase text of the id.
        let other = "0123456789abcdef0123456789abcdee".parse().unwrap();
        assert_eq!(
            p.disposition(eid_protocol::RequestKind::Signature, other),
            CallDisposition::Flag
        );
    }

    #[test]
    fn a_bad_call_policy_is_refused_at_start_with_the_setting_named() {
        for (text, named) in [
            ("[call_policy]\nlogin = \"block\"\n", "block"),
            (
                "[call_policy.providers.\"not-an-id\"]\nlogin = \"refuse\"\n",
                "call_policy.providers",
            ),
            (
                "[call_policy.providers.\"0123456789ABCDEF0123456789ABCDEF\"]\nlogin = \"refuse\"\n",
                "call_policy.providers",
            ),
            (
                "[call_policy.providers.\"0123456789abcdef0123456789abcdef\"]\nself_service = \"allow\"\n",
                "self_service",
            ),
        ] {
            let e = Config::from_toml_str(text).expect_err(text).to_string();
            assert!(e.contains(named), "{text}: {e}");
        }
    }

    #[test]
    fn the_database_pool_size_is_at_least_one_and_at_most_the_maximum() {
        assert_eq!(
            Config::from_toml_str("").unwrap().database_pool_size,
            crate::store::postgres::DEFAULT_POOL_SIZE
        );
        assert_eq!(
            Config::from_toml_str("database_pool_size = 4")
                .unwrap()
                .database_pool_size,
            4
        );
        for (text, said) in [
            (
                "database_pool_size = 0",
                "database_pool_size is 0; it must be at least 1",
            ),
            (
                "database_pool_size = 100000",
                "database_pool_size is 100000; it must be at most 256",
            ),
            ("database_pool_size = -1", "database_pool_size"),
        ] {
            let e = Config::from_toml_str(text).expect_err(text).to_string();
            assert!(e.contains(said), "{text}: {e}");
        }
    }

    #[test]
    fn flood_limits_default_to_production_and_parse() {
        let f = Config::default().floods;
        assert_eq!(
            (
                f.per_identity_per_minute,
                f.per_identity_per_hour,
                f.per_provider_per_minute,
                f.per_provider_per_hour,
                f.fraud_hold_secs
            ),
            (5, 20, 600, 0, 3600)
        );
        let config = Config::from_toml_str(
            r#"
[floods]
per_identity_per_minute = 3
fraud_hold_secs = 7200

[floods.provider_per_minute_overrides]
"0123456789abcdef0123456789abcdef" = 5000
"#,
        )
        .unwrap();
        assert_eq!(config.floods.per_identity_per_minute, 3);
        assert_eq!(config.floods.per_identity_per_hour, 20);
        assert_eq!(config.floods.fraud_hold_secs, 7200);
        assert_eq!(
            config
                .floods
                .provider_per_minute_overrides
                .get("0123456789abcdef0123456789abcdef"),
            Some(&5000)
        );
        assert!(Config::from_toml_str("[floods]\nper_person = 1\n").is_err());
    }

    #[test]
    fn the_default_profile_keeps_the_product_waits() {
        for config in [
            Config::default(),
            Config::from_toml_str("").unwrap(),
            Config::from_toml_str("profile = \"production\"").unwrap(),
        ] {
            assert_eq!(config.profile, Profile::Production);
            assert_eq!(config.floods.fraud_hold_secs, 3600);
            assert_eq!(config.self_service_gap_secs, 3600);
            assert_eq!(config.new_device_wait_secs, 3600);
            assert_eq!(config.chip_wait_secs, 86_400);
            assert_eq!(config.floods.per_identity_per_minute, 5);
            assert_eq!(config.floods.per_identity_per_hour, 20);
            assert_eq!(config.development_warning(), None);
        }
    }

    #[test]
    fn the_development_profile_shortens_each_wait_a_tester_meets() {
        let config = Config::from_toml_str("profile = \"development\"").unwrap();
        assert_eq!(config.profile, Profile::Development);
        assert_eq!(config.floods.fraud_hold_secs, 60);
        assert_eq!(config.self_service_gap_secs, 60);
        assert_eq!(config.new_device_wait_secs, 60);
        assert_eq!(config.chip_wait_secs, 60);
        assert_eq!(config.floods.per_identity_per_minute, 0);
        assert_eq!(config.floods.per_identity_per_hour, 0);
        // Nothing else moves: the per-address and per-provider limits, the
        // request lifetime and the device cap are the product's.
        let production = Config::default();
        assert_eq!(
            config.floods.per_address.per_minute,
            production.floods.per_address.per_minute
        );
        assert_eq!(
            config.floods.per_provider_per_minute,
            production.floods.per_provider_per_minute
        );
        assert_eq!(
            config.request_lifetime_secs,
            production.request_lifetime_secs
        );
        assert_eq!(
            config.max_devices_per_identity,
            production.max_devices_per_identity
        );
    }

    #[test]
    fn explicit_settings_win_over_the_development_profile() {
        let config = Config::from_toml_str(
            "profile = \"development\"\nself_service_gap_secs = 120\n\
             [floods]\nfraud_hold_secs = 1800\nper_identity_per_minute = 9\n",
        )
        .unwrap();
        assert_eq!(config.self_service_gap_secs, 120);
        assert_eq!(config.floods.fraud_hold_secs, 1800);
        assert_eq!(config.floods.per_identity_per_minute, 9);
        // What was not set explicitly keeps the profile's value.
        assert_eq!(config.new_device_wait_secs, 60);
        assert_eq!(config.floods.per_identity_per_hour, 0);
        // The warning shows the values the server runs with.
        let warning = config.development_warning().unwrap();
        let gap = warning
            .lines()
            .find(|l| l.contains("self_service_gap_secs"))
            .unwrap();
        assert!(gap.contains("120 (production 3600)"), "{gap}");
    }

    #[test]
    fn the_development_warning_names_every_shortened_setting_on_its_own_line() {
        let config = Config::defaults_for(Profile::Development);
        let warning = config.development_warning().unwrap();
        assert!(warning.lines().count() >= 8, "{warning}");
        assert!(
            warning.lines().all(|l| l.starts_with("WARNING:")),
            "{warning}"
        );
        assert!(warning.contains("NEVER FOR PEOPLE"), "{warning}");
        for name in [
            "floods.fraud_hold_secs",
            "self_service_gap_secs",
            "new_device_wait_secs",
            "floods.per_identity_per_minute",
            "floods.per_identity_per_hour",
        ] {
            assert!(warning.contains(name), "{name} missing: {warning}");
        }
    }

    #[test]
    fn the_development_profile_is_refused_where_it_looks_like_a_deployment() {
        let refused = |toml: &str| {
            Config::from_toml_str(&format!("profile = \"development\"\n{toml}"))
                .err()
                .map(|e| e.to_string())
        };
        let listen = refused("listen = \"0.0.0.0:8443\"").expect("public listen refused");
        assert!(listen.contains("listen is 0.0.0.0:8443"), "{listen}");
        let issuer =
            refused("oidc_issuer = \"https://eid.example\"").expect("public issuer refused");
        assert!(issuer.contains("https://eid.example"), "{issuer}");
        assert!(refused("oidc_issuer = \"https://192.0.2.1:8443\"").is_some());
        // Loopback is what a tester runs on.
        for fine in [
            "listen = \"127.0.0.1:9000\"",
            "listen = \"[::1]:9000\"",
            "oidc_issuer = \"https://localhost:8443\"",
            "oidc_issuer = \"https://127.0.0.1:8443\"",
            "oidc_issuer = \"https://[::1]:8443\"",
        ] {
            assert_eq!(refused(fine), None, "{fine}");
        }
        // The same values without the profile are a production deployment.
        assert!(
            Config::from_toml_str(
                "listen = \"0.0.0.0:8443\"\noidc_issuer = \"https://eid.example\""
            )
            .is_ok()
        );
        // A configuration built in code is checked too (`start` calls it).
        let built = Config {
            listen: "0.0.0.0:0".parse().unwrap(),
            ..Config::defaults_for(Profile::Development)
        };
        assert!(matches!(
            built.check_profile(),
            Err(DevelopmentRefused::ListenNotLoopback(_))
        ));
    }

    #[test]
    fn an_unknown_profile_is_refused_with_the_names_it_takes() {
        assert!(Config::from_toml_str("profile = \"staging\"").is_err());
        let error = "staging".parse::<Profile>().unwrap_err().to_string();
        assert!(error.contains("\"development\""), "{error}");
        assert_eq!("development".parse(), Ok(Profile::Development));
    }
}
