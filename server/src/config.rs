//! Server configuration: defaults, then an optional TOML file, then environment
//! variables prefixed `EID_SERVER_` (nested keys with `__`, for example
//! `EID_SERVER_TLS__CERT_PATH`). Loaded with `figment`.

use std::net::SocketAddr;
use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The server's configuration.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
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

impl Default for Config {
    fn default() -> Self {
        Self {
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
            max_devices_per_identity: 3,
            notifications: NotificationsConfig::default(),
            api_key_grace_secs: 24 * 60 * 60,
            webhooks: WebhooksConfig::default(),
            self_service_gap_secs: 3600,
            floods: FloodConfig::default(),
            connections: ConnectionsConfig::default(),
            allowed_origins: Vec::new(),
            oidc_issuer: None,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
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
            .field("max_devices_per_identity", &self.max_devices_per_identity)
            .field("notifications", &self.notifications)
            .field("api_key_grace_secs", &self.api_key_grace_secs)
            .field("webhooks", &self.webhooks)
            .field("self_service_gap_secs", &self.self_service_gap_secs)
            .field("floods", &self.floods)
            .field("connections", &self.connections)
            .field("allowed_origins", &self.allowed_origins)
            .field("oidc_issuer", &self.oidc_issuer)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Reads a configuration from TOML text over the defaults (no file, no
    /// environment), with the same checks as [`Config::load`].
    pub fn from_toml_str(text: &str) -> Result<Self, Box<figment::Error>> {
        Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
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
        if let Some(name) = self.connections.zero_field() {
            return Err(Box::new(figment::Error::from(format!(
                "connections.{name} is 0; it must be at least 1"
            ))));
        }
        Ok(self)
    }

    /// Loads defaults, then `file` if given, then the environment.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            figment = figment.merge(Toml::file_exact(path));
        }
        figment
            .merge(Env::prefixed("EID_SERVER_").split("__"))
            .extract::<Config>()
            .map_err(Box::new)?
            .checked()
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
}
