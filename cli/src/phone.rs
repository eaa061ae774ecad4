//! The phone: the core (`eid_core::App`) opened on a data folder
//! with a software keystore, and the server settings remembered there at
//! activation. Every `eid app` command and the demo open it here.
//!
//! Folder layout: `core.sqlite3` (the core's database), `keys/` (the software
//! keystore), `server.json` (server URL and SPKI pin) and `refreshed-at` (when
//! the server last gave the authenticators' states, Unix ms).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use eid_core::{App, Config, RequestView, ServerConfig, SoftwareKeyStore};
use eid_protocol::{AuthenticatorId, RequestId};
use serde::{Deserialize, Serialize};

use crate::common::{Common, check_spki_pin, check_url, parse_id};
use crate::error::{AuthenticatorChoice, CliError, ErrorKind};

const SETTINGS_FILE: &str = "server.json";
const DB_FILE: &str = "core.sqlite3";
const KEYS_DIR: &str = "keys";
const REFRESHED_FILE: &str = "refreshed-at";

/// The server a phone talks to, remembered in its folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ServerSettings {
    /// Base URL.
    server: String,
    /// SPKI pin.
    spki_pin: String,
}

impl ServerSettings {
    /// Settings from a URL and a pin already checked.
    pub(crate) fn new(server: impl Into<String>, spki_pin: impl Into<String>) -> Self {
        Self {
            server: server.into(),
            spki_pin: spki_pin.into(),
        }
    }
}

/// The phone's data folder and the options to open it with. Found first, so
/// that a missing `--app-dir` is reported before anything else.
pub(crate) struct PhoneFolder<'a> {
    dir: PathBuf,
    common: &'a Common,
}

impl<'a> PhoneFolder<'a> {
    /// The folder from `--app-dir` or `EID_APP_DIR`.
    pub(crate) fn from_options(common: &'a Common) -> Result<Self, CliError> {
        let dir = common.app_dir.clone().ok_or_else(|| {
            CliError::missing_option("the phone's data folder is needed: --app-dir or EID_APP_DIR")
        })?;
        Ok(Self { dir, common })
    }

    /// A given folder (the demo's temporary phone).
    pub(crate) fn at(dir: PathBuf, common: &'a Common) -> Self {
        Self { dir, common }
    }

    /// Opens the phone with the server from flags or environment, else the
    /// one remembered in the folder.
    pub(crate) fn open(&self) -> Result<Phone, CliError> {
        let settings = self.resolve_settings()?;
        self.open_with(settings)
    }

    /// Opens the phone with the given server settings.
    pub(crate) fn open_with(&self, settings: ServerSettings) -> Result<Phone, CliError> {
        let dir = &self.dir;
        // Created 0700 whatever the umask: the folder holds the keystore
        // and the database. A folder that exists is the caller's choice.
        let mut folder = std::fs::DirBuilder::new();
        folder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            folder.mode(0o700);
        }
        folder.create(dir).map_err(|e| {
            CliError::new(
                ErrorKind::Storage,
                format!("cannot create the app folder {}: {e}", dir.display()),
            )
        })?;
        let keystore =
            SoftwareKeyStore::open(&dir.join(KEYS_DIR)).map_err(eid_core::Error::from)?;
        let mut config = Config::new(
            dir.join(DB_FILE),
            ServerConfig::new(&settings.server, &settings.spki_pin),
        );
        config.kdf = self.common.kdf();
        config.language = self.common.language();
        let core = App::open(config, Arc::new(keystore))?;
        Ok(Phone {
            core,
            dir: dir.clone(),
            settings,
        })
    }

    /// Flags and environment override the remembered settings.
    fn resolve_settings(&self) -> Result<ServerSettings, CliError> {
        let saved = load_settings(&self.dir)?;
        let server = match (&self.common.server, &saved) {
            (Some(s), _) => s.clone(),
            (None, Some(saved)) => saved.server.clone(),
            (None, None) => {
                return Err(CliError::missing_option(
                    "the server URL is needed: --server or EID_SERVER (remembered after activation)",
                ));
            }
        };
        let spki_pin = match (&self.common.spki_pin, &saved) {
            (Some(p), _) => p.clone(),
            (None, Some(saved)) => saved.spki_pin.clone(),
            (None, None) => {
                return Err(CliError::missing_option(
                    "the server key pin is needed: --spki-pin or EID_SPKI_PIN (remembered after activation)",
                ));
            }
        };
        Ok(ServerSettings {
            server: check_url(&server)?,
            spki_pin: check_spki_pin(&spki_pin)?,
        })
    }
}

/// An opened phone.
pub(crate) struct Phone {
    /// The core.
    pub(crate) core: App,
    dir: PathBuf,
    settings: ServerSettings,
}

impl Phone {
    /// Remembers the server it was opened with (after an activation or
    /// enrolment went through); returns the settings file.
    pub(crate) fn remember_server(&self) -> Result<PathBuf, CliError> {
        let path = self.dir.join(SETTINGS_FILE);
        let bytes = serde_json::to_vec_pretty(&self.settings)
            .map_err(|e| CliError::new(ErrorKind::Storage, e.to_string()))?;
        std::fs::write(&path, bytes).map_err(|e| {
            CliError::new(
                ErrorKind::Storage,
                format!("cannot write {}: {e}", path.display()),
            )
        })?;
        Ok(path)
    }

    /// Pulls the pending requests and the authenticators' states from the
    /// server, and remembers when (for `app authenticators` offline).
    pub(crate) async fn refresh(&self) -> Result<Vec<RequestView>, CliError> {
        let views = self.core.refresh().await?;
        // Only a hint for people ("last known state, seen at ..."): a failed
        // write must not fail the command that refreshed.
        let _ = std::fs::write(
            self.dir.join(REFRESHED_FILE),
            crate::when::now_ms().to_string(),
        );
        Ok(views)
    }

    /// When the server last gave the authenticators' states, if ever.
    pub(crate) fn refreshed_at_ms(&self) -> Option<u64> {
        std::fs::read_to_string(self.dir.join(REFRESHED_FILE))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The authenticator given with `--authenticator`, or the phone's only authenticator.
    pub(crate) fn only_authenticator(
        &self,
        authenticator: Option<&str>,
    ) -> Result<AuthenticatorId, CliError> {
        match authenticator {
            Some(a) => parse_id("account ID", a),
            None => match self.core.authenticators()?.as_slice() {
                [only] => Ok(only.authenticator_id),
                several => Err(CliError::pick_an_authenticator(
                    several
                        .iter()
                        .map(|a| AuthenticatorChoice {
                            authenticator_id: a.authenticator_id.to_string(),
                            user_id: a.user_id.clone(),
                        })
                        .collect(),
                )),
            },
        }
    }

    /// The authenticator holding `request`: from the fresh list of pending
    /// requests, else `--authenticator`, else the only authenticator.
    pub(crate) async fn authenticator_holding(
        &self,
        request: &RequestId,
        authenticator: Option<&str>,
    ) -> Result<AuthenticatorId, CliError> {
        let wanted: Option<AuthenticatorId> = authenticator
            .map(|a| parse_id("account ID", a))
            .transpose()?;
        let views = self.refresh().await?;
        if let Some(v) = views
            .iter()
            .find(|v| v.request_id == *request && wanted.is_none_or(|w| w == v.authenticator_id))
        {
            return Ok(v.authenticator_id);
        }
        if let Some(w) = wanted {
            return Ok(w);
        }
        match self.core.authenticators()?.as_slice() {
            // The core may still hold a signed decision for it (re-sent, same receipt).
            [only] => Ok(only.authenticator_id),
            _ => Err(eid_core::Error::UnknownRequest.into()),
        }
    }
}

fn load_settings(dir: &Path) -> Result<Option<ServerSettings>, CliError> {
    let path = dir.join(SETTINGS_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            CliError::new(
                ErrorKind::Config,
                format!("{} is not valid: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CliError::new(
            ErrorKind::Storage,
            format!("cannot read {}: {e}", path.display()),
        )),
    }
}
