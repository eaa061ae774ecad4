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
    /// Lifetime of a relying-party request in seconds: 300 (the product's
    /// 5 minutes). QA suites that cannot drive a manual clock, such as the
    /// Kotlin and Swift shells' tests, shorten it to test expiry; the server
    /// logs a warning when it is not 300.
    pub request_lifetime_secs: u64,
    /// Least time between the two self-service logins of a phone or e-mail
    /// change, in seconds: 3600 (one hour) in production. The server's clock
    /// decides. Tests that cannot drive a manual clock shorten it.
    pub self_service_gap_secs: u64,
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
            self_service_gap_secs: 3600,
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
            .field("self_service_gap_secs", &self.self_service_gap_secs)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Loads defaults, then `file` if given, then the environment.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            figment = figment.merge(Toml::file_exact(path));
        }
        figment
            .merge(Env::prefixed("EID_SERVER_").split("__"))
            .extract()
            .map_err(Box::new)
    }
}
