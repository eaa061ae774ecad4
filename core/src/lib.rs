//! Device-side core of the eID authenticator (the protocol is in
//! `docs/protocol.md`, the defenses in `docs/threat-model.md`).
//!
//! [`App`] is the whole public surface the app (through the uniffi
//! bindings) uses. This file holds the type, its [`Config`] and its wiring;
//! each subject has a file of its own that adds an `impl App`
//! block:
//!
//! | subject | file |
//! |---|---|
//! | authenticators on this phone, removal, blocking the identity | `authenticators.rs` |
//! | activation (and resuming an interrupted one) | `activation.rs` |
//! | pull and the request display models | `pull.rs` |
//! | the household's first screen | `household.rs` |
//! | PIN unlock, PIN change, the counted attempt | `unlock.rs` |
//! | approve, deny, report fraud, resend, receipts | `decisions.rs` |
//! | calls and screen sharing seen at decision time (call context) | `context.rs` |
//! | a new device from an existing one | `enrolment.rs` |
//! | contact changes (self-service) | `self_service.rs` |
//! | security feed and "notify me on every use" | `events.rs` |
//! | hardware authenticators: the list and deactivation | `hardware.rs` |
//! | device journal | `journal.rs` |
//! | HTTPS, pinning and device-request signing | `client.rs` |
//! | the SQLite store, one file per table group | `store/` |
//!
//! Keys live behind the [`keystore::KeyStore`] trait; state in one SQLite file.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod activation;
mod approval;
mod authenticators;
pub mod client;
pub mod clock;
pub mod context;
mod decisions;
pub mod display;
mod enrolment;
pub mod error;
pub mod events;
mod hardware;
pub mod household;
pub mod journal;
pub mod keystore;
pub mod lockout;
pub mod pin;
mod pull;
mod self_service;
mod store;
#[cfg(test)]
mod testing;
mod unlock;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use eid_protocol::crash;
use eid_protocol::{AuthenticatorId, RequestId};

pub use activation::PendingActivation;
pub use approval::Action;
pub use authenticators::AuthenticatorInfo;
pub use client::{ServerConfig, spki_pin_of_certificate};
pub use clock::{Clock, ManualClock, SystemClock};
pub use context::{CallSignals, ContextProvider, FixedContext, Signal};
pub use decisions::{verify_receipt, verify_server_signature};
pub use display::{
    CallWarning, DisplayLine, Language, RequestView, TextDirection, Warning, WarningKind,
};
pub use eid_protocol::events::SecurityEventKind;
pub use enrolment::{DeviceEnrolment, EnrolmentStatus, PendingDevice, PendingDeviceState};
pub use error::{Error, Result};
pub use events::EventView;
pub use household::PersonSummary;
pub use journal::{JournalAlarm, JournalHead};
pub use keystore::{KeyStore, KeyStoreError, SoftwareKeyStore};
pub use pin::{KdfCost, PinPolicy, PinPolicyError};
pub use self_service::PendingContactChange;
pub use store::AuthenticatorState;
pub use unlock::UnlockToken;

use approval::RequestTimer;
use client::Client;
use error::InternalError;
use store::Store;

/// Default lifetime of a PIN unlock (monotonic).
pub const DEFAULT_UNLOCK_TTL_MS: u64 = 60_000;

/// Default minimum read time: an approval is refused until a request has
/// been on screen this long (monotonic milliseconds).
pub const DEFAULT_MIN_READ_MS: u64 = 1_500;

/// Configuration of an [`App`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Path of the SQLite database file.
    pub db_path: PathBuf,
    /// The server and its pin.
    pub server: ServerConfig,
    /// PBKDF2 cost for new PIN keys (calibrated by default).
    pub kdf: KdfCost,
    /// Rules for new PINs.
    pub pin_policy: PinPolicy,
    /// Language of display models returned by [`App::refresh`].
    pub language: Language,
    /// How long a PIN unlock stays valid, in monotonic milliseconds.
    pub unlock_ttl_ms: u64,
    /// Minimum read time: [`App::approve`] refuses with
    /// [`Error::TooFast`] until the request's display model was first built
    /// this many monotonic milliseconds ago (0 = no minimum). Deny and
    /// report-fraud are never held back.
    pub min_read_ms: u64,
}

impl Config {
    /// A configuration with the defaults (calibrated KDF, 6-digit PIN, Danish,
    /// 60 s unlock, 1.5 s minimum read time).
    pub fn new(db_path: impl Into<PathBuf>, server: ServerConfig) -> Self {
        Self {
            db_path: db_path.into(),
            server,
            kdf: KdfCost::default(),
            pin_policy: PinPolicy::default(),
            language: Language::default(),
            unlock_ttl_ms: DEFAULT_UNLOCK_TTL_MS,
            min_read_ms: DEFAULT_MIN_READ_MS,
        }
    }
}

/// The shared state behind an [`App`]. Each subject file adds the
/// `impl Inner` helpers it needs.
struct Inner {
    config: Config,
    store: Mutex<Store>,
    keystore: Arc<dyn KeyStore>,
    client: Client,
    clock: Arc<dyn Clock>,
    /// Serializes PIN attempts so every attempt is counted.
    pin_lock: Mutex<()>,
    timers: Mutex<HashMap<(AuthenticatorId, RequestId), RequestTimer>>,
    /// When each request's display model was first built (monotonic, this
    /// process only: after a restart the read time counts again).
    shown: Mutex<HashMap<(AuthenticatorId, RequestId), u64>>,
    /// The views of the stored requests as last built, by the envelope as
    /// stored (`pull.rs`).
    views: Mutex<HashMap<(AuthenticatorId, String), pull::CachedView>>,
    unlocks: Mutex<HashMap<[u8; 16], unlock::UnlockEntry>>,
    /// The server's clock as last seen: (server Unix ms, our monotonic ms
    /// then). Device-request timestamps are derived from it, not from the
    /// phone's wall clock (which the person can set anywhere).
    server_clock: Mutex<Option<(u64, u64)>>,
    /// Lockout deadlines on the monotonic clock (this process only).
    mono_locks: Mutex<HashMap<AuthenticatorId, u64>>,
    /// The shell's view of calls and screen sharing (none: all unknown).
    context: Mutex<Option<Arc<dyn context::ContextProvider>>>,
    /// Requests whose person confirmed "I started this myself" while a call
    /// or screen sharing was on (this process only).
    started_myself: Mutex<HashSet<(AuthenticatorId, RequestId)>>,
}

/// The authenticator core. Cheap to clone (shared state); all methods are `&self`.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("db_path", &self.inner.config.db_path)
            .field("base_url", &self.inner.config.server.base_url)
            .finish_non_exhaustive()
    }
}

/// Locks one of the core's mutexes; a lock poisoned by a panic elsewhere is
/// an [`Error::Internal`], not a second panic.
fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>> {
    m.lock().map_err(|_| InternalError::PoisonedLock.into())
}

/// Runs slow synchronous work (PBKDF2, keystore, SQLite) off the async
/// executor; a panic in it is an [`Error::Internal`].
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await?
}

impl App {
    /// Opens the core with the system clock.
    pub fn open(config: Config, keystore: Arc<dyn KeyStore>) -> Result<Self> {
        Self::open_with_clock(config, keystore, Arc::new(SystemClock::new()))
    }

    /// Opens the core with an injected clock (tests).
    pub fn open_with_clock(
        config: Config,
        keystore: Arc<dyn KeyStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let store = Store::open(&config.db_path)?;
        let client = Client::new(&config.server)?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                store: Mutex::new(store),
                keystore,
                client,
                clock,
                pin_lock: Mutex::new(()),
                timers: Mutex::new(HashMap::new()),
                shown: Mutex::new(HashMap::new()),
                views: Mutex::new(HashMap::new()),
                server_clock: Mutex::new(None),
                unlocks: Mutex::new(HashMap::new()),
                mono_locks: Mutex::new(HashMap::new()),
                context: Mutex::new(None),
                started_myself: Mutex::new(HashSet::new()),
            }),
        })
    }
}
