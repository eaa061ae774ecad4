//! The `App` object the shells hold: one per app.

use std::sync::Arc;

use eid_protocol::{AuthenticatorId, RequestId};
// PINs arrive as owned Strings from Kotlin/Swift; wiped when dropped here.
use zeroize::Zeroizing;

use crate::error::EidError;
use crate::keystore::{ForeignKeyStore, KeyStore, admit_keystore};
use crate::model::{AuthenticatorInfo, PendingActivation, PersonSummary, Receipt, RequestView};
use eid_core::Language;

/// How to open the core.
#[derive(Debug, Clone, uniffi::Record)]
pub struct AppConfig {
    /// Path of the app's SQLite file (in the app's private storage).
    pub database_path: String,
    /// The server, `https://host:port`.
    pub server_url: String,
    /// The server's TLS key pin, `sha256/<base64>`.
    pub server_spki_pin: String,
    /// Language of the display models.
    pub language: Language,
    /// PBKDF2 iterations for new PIN keys. Leave `None` in apps: the core then
    /// calibrates on the device (about 100–250 ms, with a floor). A fixed low
    /// value is for tests only.
    pub kdf_iterations: Option<u32>,
    /// Minimum read time in milliseconds: approve is refused with
    /// `EidError::TooFast` until the request was first shown (a request list
    /// returned) this long ago. `None` = the core's default (1500 ms); a small
    /// value is for tests only.
    #[uniffi(default = None)]
    pub min_read_ms: Option<u64>,
    /// Opt-in to a keystore that keeps the device key in software, for
    /// tests: release builds refuse such a keystore with
    /// `EidError::SoftwareKeyStoreRefused` unless this is exactly
    /// "tests only: device key in plain files". Leave `None` in apps; debug
    /// builds ignore it.
    #[uniffi(default = None)]
    pub allow_software_keystore: Option<String>,
}

/// Proof that the PIN was entered for one request: single use and short-lived.
/// Holds no secret.
#[derive(Debug, uniffi::Object)]
pub struct UnlockToken(eid_core::UnlockToken);

#[uniffi::export]
impl UnlockToken {
    /// The unlocked authenticator.
    pub fn authenticator_id(&self) -> AuthenticatorId {
        self.0.authenticator_id
    }

    /// The only request this unlock may decide.
    pub fn request_id(&self) -> RequestId {
        self.0.request_id
    }
}

/// The eID authenticator core: activation, pull on open, display models, PIN
/// unlock, swipe approval, deny and report fraud. Thread-safe.
#[derive(Debug, uniffi::Object)]
pub struct App {
    core: eid_core::App,
}

impl App {
    pub(crate) fn core(&self) -> &eid_core::App {
        &self.core
    }
}

#[uniffi::export]
impl App {
    /// Opens (creating if needed) the core's database and pinned HTTPS client.
    /// Does no network I/O.
    #[uniffi::constructor]
    pub fn open(config: AppConfig, keystore: Arc<dyn KeyStore>) -> Result<Arc<Self>, EidError> {
        admit_keystore(
            keystore.protection(),
            config.allow_software_keystore.as_deref(),
            cfg!(not(debug_assertions)),
        )?;
        let server = eid_core::ServerConfig::new(config.server_url, config.server_spki_pin);
        let mut core_config = eid_core::Config::new(config.database_path, server);
        core_config.language = config.language;
        if let Some(iterations) = config.kdf_iterations {
            core_config.kdf = eid_core::KdfCost::Fixed(iterations);
        }
        if let Some(ms) = config.min_read_ms {
            core_config.min_read_ms = ms;
        }
        let core = eid_core::App::open(core_config, Arc::new(ForeignKeyStore(keystore)))?;
        Ok(Arc::new(Self { core }))
    }

    /// The authenticators on this phone, oldest first.
    pub fn authenticators(&self) -> Result<Vec<AuthenticatorInfo>, EidError> {
        Ok(self
            .core
            .authenticators()?
            .into_iter()
            .map(AuthenticatorInfo::from)
            .collect())
    }

    /// The interrupted activation, if any.
    pub fn pending_activation(&self) -> Result<Option<PendingActivation>, EidError> {
        Ok(self.core.pending_activation()?.map(|p| PendingActivation {
            user_id: p.user_id,
            created_at_ms: p.created_at_ms,
        }))
    }

    /// Discards an interrupted activation and its keys.
    pub fn discard_activation(&self) -> Result<(), EidError> {
        Ok(self.core.discard_activation()?)
    }

    /// The stored requests of active authenticators without the network; the
    /// countdowns are recomputed on every call.
    pub fn requests(&self, language: Language) -> Result<Vec<RequestView>, EidError> {
        Ok(self
            .core
            .requests(language)?
            .into_iter()
            .map(RequestView::from)
            .collect())
    }

    /// The people on this phone with how many requests wait for each, and
    /// nothing about what the requests say (the household's first screen).
    pub fn household(&self, language: Language) -> Result<Vec<PersonSummary>, EidError> {
        Ok(self
            .core
            .household(language)?
            .into_iter()
            .map(PersonSummary::from)
            .collect())
    }

    /// One person's stored requests, shown once that person has been chosen.
    pub fn requests_for(
        &self,
        authenticator_id: AuthenticatorId,
        language: Language,
    ) -> Result<Vec<RequestView>, EidError> {
        Ok(self
            .core
            .requests_for(&authenticator_id, language)?
            .into_iter()
            .map(RequestView::from)
            .collect())
    }

    /// Installs the platform's view of calls and screen sharing. Without one
    /// every signal is unknown, and decisions say so.
    pub fn set_context_provider(
        &self,
        provider: Arc<dyn crate::context::ContextProvider>,
    ) -> Result<(), EidError> {
        Ok(self
            .core
            .set_context_provider(Arc::new(crate::context::ForeignContext(provider)))?)
    }

    /// The person's "I started this myself" while a call or screen sharing
    /// is on, the gate before the swipe (`RequestView.needsStartedMyself`).
    /// `EidError.TooFast` before the read time is over. Recorded only while
    /// a signal is on (the warning shown); with nothing on it does nothing.
    pub fn confirm_started_myself(
        &self,
        authenticator_id: AuthenticatorId,
        request_id: RequestId,
    ) -> Result<(), EidError> {
        Ok(self
            .core
            .confirm_started_myself(&authenticator_id, &request_id)?)
    }

    /// Removes an authenticator and its keys from this phone.
    pub fn remove_authenticator(&self, authenticator_id: AuthenticatorId) -> Result<(), EidError> {
        Ok(self.core.remove_authenticator(&authenticator_id)?)
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl App {
    /// Activates an authenticator with the user ID and activation code from support;
    /// the PIN is checked against the policy first.
    pub async fn activate(
        &self,
        user_id: String,
        activation_code: String,
        pin: String,
    ) -> Result<AuthenticatorInfo, EidError> {
        let pin = Zeroizing::new(pin);
        Ok(self
            .core
            .activate(&user_id, &activation_code, &pin)
            .await?
            .into())
    }

    /// Re-sends an interrupted activation (same keys; no PIN needed).
    pub async fn resume_activation(
        &self,
        activation_code: String,
    ) -> Result<AuthenticatorInfo, EidError> {
        Ok(self.core.resume_activation(&activation_code).await?.into())
    }

    /// Pulls the pending requests of every authenticator in one round trip (call it
    /// when the app comes to the foreground), verifies them and returns the
    /// display models.
    pub async fn refresh(&self) -> Result<Vec<RequestView>, EidError> {
        Ok(self
            .core
            .refresh()
            .await?
            .into_iter()
            .map(RequestView::from)
            .collect())
    }

    /// Checks the PIN for one request; returns a short-lived single-use unlock.
    pub async fn unlock(
        &self,
        authenticator_id: AuthenticatorId,
        request_id: RequestId,
        pin: String,
    ) -> Result<Arc<UnlockToken>, EidError> {
        let token = self
            .core
            .unlock(&authenticator_id, &request_id, &pin)
            .await?;
        Ok(Arc::new(UnlockToken(token)))
    }

    /// Approves the unlocked request once the swipe is complete; returns the
    /// server's verified receipt.
    pub async fn approve(
        &self,
        unlock: Arc<UnlockToken>,
        swipe_confirmed: bool,
        binding_code: Option<String>,
    ) -> Result<Receipt, EidError> {
        Ok(self
            .core
            .approve(&unlock.0, swipe_confirmed, binding_code.as_deref())
            .await?
            .into())
    }

    /// Denies a request (no PIN needed).
    pub async fn deny(
        &self,
        authenticator_id: AuthenticatorId,
        request_id: RequestId,
    ) -> Result<Receipt, EidError> {
        Ok(self.core.deny(&authenticator_id, &request_id).await?.into())
    }

    /// Denies a request and reports it as fraud ("this wasn't me").
    pub async fn report_fraud(
        &self,
        authenticator_id: AuthenticatorId,
        request_id: RequestId,
    ) -> Result<Receipt, EidError> {
        Ok(self
            .core
            .report_fraud(&authenticator_id, &request_id)
            .await?
            .into())
    }

    /// Re-sends decisions signed before a network failure; returns how many
    /// the server confirmed.
    pub async fn retry_unsent_decisions(&self) -> Result<u32, EidError> {
        let n = self.core.retry_unsent_decisions().await?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Blocks the authenticator's identity at once ("I suspect abuse"); no PIN
    /// needed. Pending requests are cancelled; support unblocks.
    pub async fn block_identity(&self, authenticator_id: AuthenticatorId) -> Result<(), EidError> {
        Ok(self.core.block_identity(&authenticator_id).await?)
    }

    /// Changes an authenticator's PIN; needs the old one.
    pub async fn change_pin(
        &self,
        authenticator_id: AuthenticatorId,
        old_pin: String,
        new_pin: String,
    ) -> Result<(), EidError> {
        let (old_pin, new_pin) = (Zeroizing::new(old_pin), Zeroizing::new(new_pin));
        Ok(self
            .core
            .change_pin(&authenticator_id, &old_pin, &new_pin)
            .await?)
    }
}
