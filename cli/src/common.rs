//! Options shared by every command and the helpers built on them: the pinned
//! endpoint, credentials (from files or the environment, never argv),
//! language, KDF cost and reading the PIN.

use std::io::BufRead;
use std::path::{Path, PathBuf};

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

/// Options shared by every command (flags or environment), listed under
/// their own heading in every command's help so that they stand apart from
/// the command's own flags.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
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
    /// The server key pin (the SHA-256 of the server's TLS public key,
    /// `sha256/<base64>`; the server prints it). Not the person's PIN.
    #[arg(
        long = "spki-pin",
        global = true,
        env = "EID_SPKI_PIN",
        value_name = "SERVER_KEY_PIN"
    )]
    pub(crate) spki_pin: Option<String>,
    /// Refused: see [`SecretSource::refused_in_argv`].
    #[arg(
        long = "admin-token",
        global = true,
        hide = true,
        num_args = 0..=1,
        default_missing_value = "",
        value_parser = forget_secret
    )]
    pub(crate) admin_token_in_argv: Option<SecretInArgv>,
    /// File holding the admin token (the server prints its path). Or the
    /// token itself in EID_ADMIN_TOKEN (never on the command line).
    #[arg(long, global = true, env = "EID_ADMIN_TOKEN_FILE")]
    pub(crate) admin_token_file: Option<PathBuf>,
    /// Refused: see [`SecretSource::refused_in_argv`].
    #[arg(
        long = "api-key",
        global = true,
        hide = true,
        num_args = 0..=1,
        default_missing_value = "",
        value_parser = forget_secret
    )]
    pub(crate) api_key_in_argv: Option<SecretInArgv>,
    /// File holding the service provider's API key. Or the key itself in
    /// EID_API_KEY (never on the command line).
    #[arg(long, global = true, env = "EID_API_KEY_FILE")]
    pub(crate) api_key_file: Option<PathBuf>,
    /// The phone's data folder (core database, keystore, server settings).
    #[arg(long, global = true, env = "EID_APP_DIR")]
    pub(crate) app_dir: Option<PathBuf>,
    /// TEST ONLY: fixed PBKDF2 iterations for new PIN keys instead of the
    /// calibrated production cost. Never use for real authenticators.
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

    /// The server URL and server key pin from flags/environment, checked.
    pub(crate) fn server_and_pin(&self) -> Result<(String, String), CliError> {
        let server = self.server.clone().ok_or_else(|| {
            CliError::missing_option("the server URL is needed: --server or EID_SERVER")
        })?;
        let pin = self.spki_pin.clone().ok_or_else(|| {
            CliError::missing_option("the server key pin is needed: --spki-pin or EID_SPKI_PIN")
        })?;
        Ok((check_url(&server)?, check_spki_pin(&pin)?))
    }

    /// A pinned endpoint from flags/environment.
    pub(crate) fn endpoint(&self) -> Result<Endpoint, CliError> {
        let (server, pin) = self.server_and_pin()?;
        endpoint(&server, &pin)
    }

    /// The admin token from `--admin-token-file` / `EID_ADMIN_TOKEN_FILE`,
    /// else `EID_ADMIN_TOKEN`.
    pub(crate) fn admin_token(&self) -> Result<Zeroizing<String>, CliError> {
        ADMIN_TOKEN.read(self.admin_token_file.as_deref())
    }

    /// The provider's API key from `--api-key-file` / `EID_API_KEY_FILE`,
    /// else `EID_API_KEY`.
    pub(crate) fn api_key(&self) -> Result<Zeroizing<String>, CliError> {
        API_KEY.read(self.api_key_file.as_deref())
    }

    /// The secret flag given on the command line, if any.
    pub(crate) fn secret_in_argv(&self) -> Option<&'static SecretSource> {
        if self.admin_token_in_argv.is_some() {
            Some(&ADMIN_TOKEN)
        } else if self.api_key_in_argv.is_some() {
            Some(&API_KEY)
        } else {
            None
        }
    }
}

/// A secret flag given on the command line, which every user of the machine
/// can read (`ps`, `/proc/<pid>/cmdline`). Its value is forgotten at once
/// and the command refused (see [`SecretSource::refused_in_argv`]); the flag
/// exists only so that the refusal says where the secret goes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SecretInArgv;

/// clap's parser for [`SecretInArgv`]: takes any value and keeps none.
pub(crate) fn forget_secret(_: &str) -> Result<SecretInArgv, std::convert::Infallible> {
    Ok(SecretInArgv)
}

/// A secret the CLI takes from a file or the environment, never from argv:
/// the file (its flag, or the variable naming it) first, else the variable
/// holding the secret itself.
#[derive(Debug)]
pub(crate) struct SecretSource {
    /// What it is, in messages.
    what: &'static str,
    /// The refused command-line flag.
    flag: &'static str,
    /// The flag naming the file.
    file_flag: &'static str,
    /// The variable naming the file.
    file_var: &'static str,
    /// The variable holding the secret.
    var: &'static str,
}

/// The admin API's bearer token.
pub(crate) const ADMIN_TOKEN: SecretSource = SecretSource {
    what: "admin token",
    flag: "--admin-token",
    file_flag: "--admin-token-file",
    file_var: "EID_ADMIN_TOKEN_FILE",
    var: "EID_ADMIN_TOKEN",
};

/// A service provider's API key.
pub(crate) const API_KEY: SecretSource = SecretSource {
    what: "API key",
    flag: "--api-key",
    file_flag: "--api-key-file",
    file_var: "EID_API_KEY_FILE",
    var: "EID_API_KEY",
};

/// The binding secret of a `--binding qr` request.
pub(crate) const BINDING_SECRET: SecretSource = SecretSource {
    what: "binding secret",
    flag: "--secret",
    file_flag: "--secret-file",
    file_var: "EID_BINDING_SECRET_FILE",
    var: "EID_BINDING_SECRET",
};

/// The pre-shared key of a manufacturer's PSKC batch of code devices.
pub(crate) const PSKC_KEY: SecretSource = SecretSource {
    what: "pre-shared key",
    flag: "--pre-shared-key",
    file_flag: "--pre-shared-key-file",
    file_var: "EID_PSKC_KEY_FILE",
    var: "EID_PSKC_KEY",
};

/// The access code chosen for a code device.
pub(crate) const ACCESS_CODE: SecretSource = SecretSource {
    what: "access code",
    flag: "--access-code",
    file_flag: "--access-code-file",
    file_var: "EID_ACCESS_CODE_FILE",
    var: "EID_ACCESS_CODE",
};

/// The pre-shared key (32 hex digits) from `file`, else `EID_PSKC_KEY`.
pub(crate) fn read_pskc_key(file: Option<&Path>) -> Result<Zeroizing<[u8; 16]>, CliError> {
    let text = PSKC_KEY.read(file)?;
    let mut key = Zeroizing::new([0u8; 16]);
    if text.len() != 32 || hex::decode_to_slice(text.as_bytes(), key.as_mut_slice()).is_err() {
        return Err(CliError::invalid_argument(
            "the pre-shared key must be 32 hex digits (AES-128)",
        ));
    }
    Ok(key)
}

impl SecretSource {
    /// The usage error for the secret given on the command line: where to
    /// put it instead. Never repeats the value.
    pub(crate) fn refused_in_argv(&self) -> CliError {
        CliError::new(
            ErrorKind::Usage,
            format!(
                "{} is not accepted: the command line is visible to every user of this \
                 machine (ps); put the {} in a file only you can read and give it with {} FILE \
                 or {}, or set {}",
                self.flag, self.what, self.file_flag, self.file_var, self.var
            ),
        )
    }

    /// The secret from `file`, else from the variable.
    pub(crate) fn read(&self, file: Option<&Path>) -> Result<Zeroizing<String>, CliError> {
        if let Some(path) = file {
            let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                CliError::invalid_argument(format!(
                    "cannot read the {} file {}: {e}",
                    self.what,
                    path.display()
                ))
            })?);
            let secret = Zeroizing::new(text.trim().to_owned());
            if secret.is_empty() {
                return Err(CliError::invalid_argument(format!(
                    "the {} file {} is empty",
                    self.what,
                    path.display()
                )));
            }
            return Ok(secret);
        }
        let value = Zeroizing::new(std::env::var(self.var).unwrap_or_default());
        let secret = Zeroizing::new(value.trim().to_owned());
        if secret.is_empty() {
            return Err(CliError::missing_option(format!(
                "the {} is needed: {} FILE, {} or {}",
                self.what, self.file_flag, self.file_var, self.var
            )));
        }
        Ok(secret)
    }
}

/// The usage error for `--pin`, which used to mean the server key pin: people
/// reasonably gave it their PIN, so the flag is refused with its new name
/// rather than kept as an alias. Looked for in argv before clap parses it, so
/// that this message wins over any other usage error of the same command
/// line, and the value (likely a PIN) is never echoed.
pub(crate) fn old_pin_flag_used(args: impl IntoIterator<Item = std::ffi::OsString>) -> bool {
    args.into_iter()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--pin" || a.to_str().is_some_and(|a| a.starts_with("--pin=")))
}

/// See [`old_pin_flag_used`].
pub(crate) fn renamed_pin_flag() -> CliError {
    CliError::new(
        ErrorKind::Usage,
        "--pin is now --spki-pin (the server key pin); the person's PIN comes from \
         --pin-stdin or EID_PIN",
    )
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

/// Checks a server key pin (SPKI pin): `sha256/` and the base64 of 32 bytes.
pub(crate) fn check_spki_pin(pin: &str) -> Result<String, CliError> {
    let pin = pin.trim();
    if !pin.starts_with("sha256/") {
        return Err(CliError::new(
            ErrorKind::Config,
            "the server key pin (--spki-pin) must look like sha256/<base64 of 32 bytes>",
        ));
    }
    eid_core::client::parse_spki_pin(pin).map_err(|_| {
        CliError::new(
            ErrorKind::Config,
            "the server key pin (--spki-pin) must look like sha256/<base64 of 32 bytes>",
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
