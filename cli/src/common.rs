//! Options shared by every command and the helpers built on them: the pinned
//! endpoint, credentials, language, KDF cost and reading the PIN.

use std::io::BufRead;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use eid_api_client::Endpoint;
use eid_core::{KdfCost, Language};
use eid_protocol::text::normalize_reference_text;
use zeroize::Zeroizing;

use crate::error::{CliError, ErrorKind};

/// Language of the display models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Lang {
    /// Dansk.
    Da,
    /// English.
    En,
}

impl From<Lang> for Language {
    fn from(l: Lang) -> Self {
        match l {
            Lang::Da => Language::Danish,
            Lang::En => Language::English,
        }
    }
}

/// Options shared by every command (flags or environment).
#[derive(Debug, Args)]
pub(crate) struct Common {
    /// Print one JSON object on stdout (errors too, as {"error": {...}}).
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Language of the request screens.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "en",
        env = "EID_LANG"
    )]
    pub(crate) lang: Lang,
    /// Server base URL, e.g. https://127.0.0.1:8443.
    #[arg(long, global = true, env = "EID_SERVER")]
    pub(crate) server: Option<String>,
    /// The server's TLS SPKI pin: `sha256/<base64>`.
    #[arg(
        long = "pin",
        global = true,
        env = "EID_SPKI_PIN",
        value_name = "SPKI_PIN"
    )]
    pub(crate) spki_pin: Option<String>,
    /// Admin API bearer token.
    #[arg(long, global = true, env = "EID_ADMIN_TOKEN", hide_env_values = true)]
    pub(crate) admin_token: Option<String>,
    /// File holding the admin token (the server prints its path).
    #[arg(long, global = true, env = "EID_ADMIN_TOKEN_FILE")]
    pub(crate) admin_token_file: Option<PathBuf>,
    /// The service provider's API key.
    #[arg(long, global = true, env = "EID_API_KEY", hide_env_values = true)]
    pub(crate) api_key: Option<String>,
    /// The phone's data folder (core database, keystore, server settings).
    #[arg(long, global = true, env = "EID_APP_DIR")]
    pub(crate) app_dir: Option<PathBuf>,
    /// TEST ONLY: fixed PBKDF2 iterations for new PIN keys instead of the
    /// calibrated production cost. Never use for real accounts.
    #[arg(long, global = true, env = "EID_KDF_ITERATIONS", hide = true)]
    pub(crate) kdf_iterations: Option<u32>,
}

impl Common {
    /// The display language.
    pub(crate) fn language(&self) -> Language {
        self.lang.into()
    }

    /// The PBKDF2 cost for new PIN keys.
    pub(crate) fn kdf(&self) -> KdfCost {
        match self.kdf_iterations {
            Some(n) => KdfCost::Fixed(n.max(1)),
            None => KdfCost::default(),
        }
    }

    /// The server URL and SPKI pin from flags/environment, checked.
    pub(crate) fn server_and_pin(&self) -> Result<(String, String), CliError> {
        let server = self.server.clone().ok_or_else(|| {
            CliError::missing_option("the server URL is needed: --server or EID_SERVER")
        })?;
        let pin = self.spki_pin.clone().ok_or_else(|| {
            CliError::missing_option("the SPKI pin is needed: --pin or EID_SPKI_PIN")
        })?;
        Ok((check_url(&server)?, check_spki_pin(&pin)?))
    }

    /// A pinned endpoint from flags/environment.
    pub(crate) fn endpoint(&self) -> Result<Endpoint, CliError> {
        let (server, pin) = self.server_and_pin()?;
        endpoint(&server, &pin)
    }

    /// The admin token from `--admin-token` or `--admin-token-file`.
    pub(crate) fn admin_token(&self) -> Result<Zeroizing<String>, CliError> {
        if let Some(t) = &self.admin_token {
            return Ok(Zeroizing::new(t.trim().to_owned()));
        }
        if let Some(path) = &self.admin_token_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                CliError::invalid_argument(format!(
                    "cannot read the admin token file {}: {e}",
                    path.display()
                ))
            })?;
            return Ok(Zeroizing::new(text.trim().to_owned()));
        }
        Err(CliError::missing_option(
            "the admin token is needed: --admin-token, EID_ADMIN_TOKEN or --admin-token-file",
        ))
    }

    /// The provider's API key.
    pub(crate) fn api_key(&self) -> Result<Zeroizing<String>, CliError> {
        self.api_key
            .as_ref()
            .map(|k| Zeroizing::new(k.trim().to_owned()))
            .ok_or_else(|| {
                CliError::missing_option("the API key is needed: --api-key or EID_API_KEY")
            })
    }
}

/// Checks a base URL: https, no path beyond `/`.
pub(crate) fn check_url(url: &str) -> Result<String, CliError> {
    let trimmed = url.trim().trim_end_matches('/');
    let Some(rest) = trimmed.strip_prefix("https://") else {
        return Err(CliError::new(
            ErrorKind::Config,
            format!("the server URL must start with https:// (got {trimmed:?})"),
        ));
    };
    if rest.is_empty() || rest.contains('/') || rest.contains(char::is_whitespace) {
        return Err(CliError::new(
            ErrorKind::Config,
            format!("the server URL must be https://host:port (got {trimmed:?})"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// Checks an SPKI pin: `sha256/` and the base64 of 32 bytes.
pub(crate) fn check_spki_pin(pin: &str) -> Result<String, CliError> {
    let pin = pin.trim();
    if !pin.starts_with("sha256/") {
        return Err(CliError::new(
            ErrorKind::Config,
            "the SPKI pin must look like sha256/<base64 of 32 bytes>",
        ));
    }
    eid_core::client::parse_spki_pin(pin).map_err(|_| {
        CliError::new(
            ErrorKind::Config,
            "the SPKI pin must look like sha256/<base64 of 32 bytes>",
        )
    })?;
    Ok(pin.to_owned())
}

/// A pinned endpoint.
pub(crate) fn endpoint(server: &str, pin: &str) -> Result<Endpoint, CliError> {
    Endpoint::new(server, pin).map_err(|e| CliError::new(ErrorKind::Config, e.to_string()))
}

/// Reads the PIN: one line from stdin with `--pin-stdin`, otherwise `EID_PIN`.
pub(crate) fn read_pin(pin_stdin: bool) -> Result<Zeroizing<String>, CliError> {
    if pin_stdin {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::invalid_argument(format!("cannot read the PIN: {e}")))?;
        let pin = Zeroizing::new(line.trim().to_owned());
        if pin.is_empty() {
            return Err(CliError::new(ErrorKind::MissingPin, "no PIN on stdin"));
        }
        return Ok(pin);
    }
    match std::env::var("EID_PIN") {
        Ok(p) if !p.trim().is_empty() => Ok(Zeroizing::new(p.trim().to_owned())),
        _ => Err(CliError::new(
            ErrorKind::MissingPin,
            "the PIN is needed: --pin-stdin (one line on stdin) or EID_PIN",
        )),
    }
}

/// SHA-256 of a reference text as the server stores it (NFC).
pub(crate) fn reference_text_sha256(text: &str) -> Result<[u8; 32], CliError> {
    let normalized = normalize_reference_text(text).map_err(|e| {
        CliError::invalid_argument(format!("the reference text breaks the rules: {e}"))
    })?;
    Ok(eid_protocol::sha256(normalized.as_bytes()))
}

/// Parses an ID given on the command line.
pub(crate) fn parse_id<T: std::str::FromStr>(what: &str, s: &str) -> Result<T, CliError> {
    s.trim().parse().map_err(|_| {
        CliError::invalid_argument(format!(
            "{s:?} is not a valid {what} (32 hex digits expected)"
        ))
    })
}

/// Milliseconds since `start`.
pub(crate) fn ms_since(start: std::time::Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}
