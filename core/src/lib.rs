//! Device-side core of the eID authenticator (DESIGN §3–§5).
//!
//! [`Authenticator`] is the whole public surface the app (and later the uniffi
//! bindings) use: activation, pull on open, display models, PIN unlock, swipe
//! approval, deny, report fraud, PIN change and account removal. Keys live
//! behind the [`keystore::KeyStore`] trait; state in one SQLite file.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod approval;
pub mod client;
pub mod clock;
mod crash;
pub mod display;
mod enrolment;
pub mod error;
pub mod events;
pub mod household;
pub mod journal;
pub mod keystore;
pub mod lockout;
pub mod pin;
mod self_service;
mod store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use eid_protocol::crypto::{SoftwareSigningKey, random_array};
use eid_protocol::wire::{
    self, AccountState as ServerAccountState, ActivateRequest, ActivateResponse, ErrorCode,
    PullRequest, PullResponse, SignedEnvelope, SignedReceipt, SubmitDecisionRequest,
};
use eid_protocol::{
    ActivationProof, AuthenticatorId, Decision, DeviceRequestAuth, IdentityId, Nonce16, Outcome,
    PublicKey, RequestId, Signature,
};
use zeroize::Zeroizing;

pub use approval::Action;
pub use client::{ServerConfig, spki_pin_of_certificate};
pub use clock::{Clock, ManualClock, SystemClock};
pub use display::{DisplayLine, Language, RequestView, TextDirection, Warning, WarningKind};
pub use eid_protocol::events::SecurityEventKind;
pub use enrolment::{DeviceEnrolment, EnrolmentStatus, PendingDevice, PendingDeviceState};
pub use error::{Error, Result};
use error::InternalError;
pub use events::EventView;
pub use household::PersonSummary;
pub use journal::{JournalAlarm, JournalHead};
pub use keystore::{KeyStore, KeyStoreError, SoftwareKeyStore};
pub use pin::{KdfCost, PinPolicy, PinPolicyError};
pub use self_service::PendingContactChange;
pub use store::AccountState;

use approval::{RequestTimer, remaining_after_restart, remaining_at_pull};
use client::Client;
use lockout::{FailureOutcome, Gate};
use pin::UnwrapError;
use store::{AccountRow, DecisionStatus, PendingActivationRow, PendingRow, Store};

/// Default lifetime of a PIN unlock (monotonic).
pub const DEFAULT_UNLOCK_TTL_MS: u64 = 60_000;

/// Default minimum read time: an approval is refused until a request has
/// been on screen this long (monotonic milliseconds).
pub const DEFAULT_MIN_READ_MS: u64 = 1_500;

/// Configuration of an [`Authenticator`].
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
    /// Language of display models returned by [`Authenticator::refresh`].
    pub language: Language,
    /// How long a PIN unlock stays valid, in monotonic milliseconds.
    pub unlock_ttl_ms: u64,
    /// Minimum read time: [`Authenticator::approve`] refuses with
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

/// An account (one identity's authenticator on this phone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    /// The authenticator.
    pub authenticator_id: AuthenticatorId,
    /// The identity.
    pub identity_id: IdentityId,
    /// The user ID typed at activation.
    pub user_id: String,
    /// Local state.
    pub state: AccountState,
    /// Activation time (wall clock, Unix ms).
    pub created_at_ms: u64,
}

impl From<&AccountRow> for AccountInfo {
    fn from(a: &AccountRow) -> Self {
        Self {
            authenticator_id: a.authenticator_id,
            identity_id: a.identity_id,
            user_id: a.user_id.clone(),
            state: a.state,
            created_at_ms: a.created_at_ms,
        }
    }
}

/// An activation that was interrupted before the server's answer arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingActivation {
    /// The user ID it was started with.
    pub user_id: String,
    /// When it was started (wall clock, Unix ms).
    pub created_at_ms: u64,
}

/// Proof that the PIN was entered for one request: single use, short-lived.
/// Holds no secret (the unlocked PIN key stays inside the core).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnlockToken {
    id: [u8; 16],
    /// The account unlocked.
    pub authenticator_id: AuthenticatorId,
    /// The only request this unlock may decide.
    pub request_id: RequestId,
}

struct UnlockEntry {
    authenticator_id: AuthenticatorId,
    request_id: RequestId,
    pin_key: SoftwareSigningKey,
    expires_mono_ms: u64,
}

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
    unlocks: Mutex<HashMap<[u8; 16], UnlockEntry>>,
    /// The server's clock as last seen: (server Unix ms, our monotonic ms
    /// then). Device-request timestamps are derived from it, not from the
    /// phone's wall clock (which the person can set anywhere).
    server_clock: Mutex<Option<(u64, u64)>>,
    /// Lockout deadlines on the monotonic clock (this process only).
    mono_locks: Mutex<HashMap<AuthenticatorId, u64>>,
}

/// The authenticator core. Cheap to clone (shared state); all methods are `&self`.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("db_path", &self.inner.config.db_path)
            .field("base_url", &self.inner.config.server.base_url)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>> {
    m.lock()
        .map_err(|_| InternalError::PoisonedLock.into())
}

fn new_alias(kind: &str) -> String {
    format!("eid.{}.{kind}", hex::encode(random_array::<12>()))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await?
}

impl Authenticator {
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
                server_clock: Mutex::new(None),
                unlocks: Mutex::new(HashMap::new()),
                mono_locks: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The accounts on this phone, oldest first.
    pub fn accounts(&self) -> Result<Vec<AccountInfo>> {
        Ok(lock(&self.inner.store)?
            .accounts()?
            .iter()
            .map(AccountInfo::from)
            .collect())
    }

    // ------------------------------------------------------------ activation

    /// Activates a new account: checks the PIN policy first, then makes the
    /// device key (keystore) and the PIN key (sealed under `pin`), and registers
    /// both with the server. If the answer is lost the activation is kept and
    /// can be resumed with [`Authenticator::resume_activation`].
    pub async fn activate(
        &self,
        user_id: &str,
        activation_code: &str,
        pin: &str,
    ) -> Result<AccountInfo> {
        self.inner.config.pin_policy.check(pin)?;
        let inner = self.inner.clone();
        let user_id = user_id.to_owned();
        let pin = Zeroizing::new(pin.to_owned());
        let pending = blocking(move || inner.prepare_activation(&user_id, &pin)).await?;
        self.send_activation(pending, activation_code).await
    }

    /// The interrupted activation, if any.
    pub fn pending_activation(&self) -> Result<Option<PendingActivation>> {
        Ok(lock(&self.inner.store)?
            .pending_activation()?
            .map(|p| PendingActivation {
                user_id: p.user_id,
                created_at_ms: p.created_at_ms,
            }))
    }

    /// Re-sends an interrupted activation (same keys and proofs; the PIN is not needed).
    pub async fn resume_activation(&self, activation_code: &str) -> Result<AccountInfo> {
        let pending = lock(&self.inner.store)?
            .pending_activation()?
            .ok_or(Error::NoPendingActivation)?;
        self.send_activation(pending, activation_code).await
    }

    /// Discards an interrupted activation and deletes its keys.
    pub fn discard_activation(&self) -> Result<()> {
        self.inner.discard_activation()
    }

    async fn send_activation(
        &self,
        p: PendingActivationRow,
        activation_code: &str,
    ) -> Result<AccountInfo> {
        let req = ActivateRequest {
            user_id: p.user_id.clone(),
            activation_code: activation_code.to_owned(),
            device_public_key: p.device_public_key.clone(),
            pin_public_key: p.pin_public_key.clone(),
            device_signature: Signature::from_der(&p.device_signature)
                .map_err(|_| InternalError::Corrupt("activation"))?,
            pin_signature: Signature::from_der(&p.pin_signature)
                .map_err(|_| InternalError::Corrupt("activation"))?,
        };
        let body = Zeroizing::new(serde_json::to_vec(&req)?);
        let result: Result<ActivateResponse> = self
            .inner
            .client
            .post(wire::PATH_ACTIVATE, body.to_vec(), &[])
            .await;
        let resp = match result {
            Ok(r) => r,
            Err(e @ Error::Rejected { .. }) => {
                self.inner.discard_activation()?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        crash::point("core.activation.answered");
        if resp.server_public_key.validate().is_err() {
            return Err(Error::InvalidResponse("invalid server key".into()));
        }
        let mut store = lock(&self.inner.store)?;
        if store.account(&resp.authenticator_id).is_ok() {
            return Err(Error::InvalidResponse(
                "authenticator already on this phone".into(),
            ));
        }
        let row = AccountRow {
            authenticator_id: resp.authenticator_id,
            identity_id: resp.identity_id,
            user_id: p.user_id.clone(),
            server_public_key: resp.server_public_key,
            device_key_alias: p.device_key_alias.clone(),
            pin_wrap_alias: p.pin_wrap_alias.clone(),
            pin_public_key: p.pin_public_key.clone(),
            decision_counter: 0,
            state: AccountState::Active,
            created_at_ms: self.inner.clock.wall_ms(),
        };
        store.insert_account(&row, &p.wrapped)?;
        crash::point("core.activation.account_stored");
        tracing::info!("account activated");
        Ok(AccountInfo::from(&row))
    }

    // ------------------------------------------------------------ pull

    /// Pulls pending requests for all accounts in one signed round trip,
    /// verifies every envelope with that account's server key, stores them and
    /// returns the display models. A bad envelope signature fails the whole
    /// refresh and changes nothing.
    pub async fn refresh(&self) -> Result<Vec<RequestView>> {
        let accounts: Vec<AccountRow> = lock(&self.inner.store)?
            .accounts()?
            .into_iter()
            .filter(|a| a.state != AccountState::NeedsReactivation)
            .collect();
        for chunk in accounts.chunks(wire::MAX_PULL_AUTHENTICATORS) {
            self.pull(chunk).await?;
        }
        self.requests(self.inner.config.language)
    }

    async fn pull(&self, accounts: &[AccountRow]) -> Result<()> {
        let ids: Vec<AuthenticatorId> = accounts.iter().map(|a| a.authenticator_id).collect();
        let (feed_after, decisions_after) = {
            let store = lock(&self.inner.store)?;
            (store.feed_cursors(&ids)?, store.decision_cursors(&ids)?)
        };
        let body = serde_json::to_vec(&PullRequest {
            authenticator_ids: ids.clone(),
            feed_after,
            decisions_after,
        })?;
        let resp: PullResponse = self
            .inner
            .device_post(accounts, wire::PATH_PULL, body)
            .await?;
        let mono = self.inner.clock.monotonic_ms();
        self.inner.learn_server_time(resp.server_time_ms)?;
        let wall = self.inner.clock.wall_ms();
        if resp.accounts.len() != accounts.len()
            || resp
                .accounts
                .iter()
                .zip(&ids)
                .any(|(p, id)| p.authenticator_id != *id)
        {
            return Err(Error::InvalidResponse(
                "pull answer does not match the accounts asked for".into(),
            ));
        }
        // Verify everything first (fail closed), then store. An envelope equal
        // to one stored for the same account was verified with the same key
        // before it was stored (and the stored rows are what approvals sign),
        // so only new envelopes cost a signature check.
        let known = lock(&self.inner.store)?.pending()?;
        let mut accepted: Vec<(usize, Vec<SignedEnvelope>)> = Vec::new();
        for (i, (pulled, account)) in resp.accounts.iter().zip(accounts).enumerate() {
            let mut keep = Vec::new();
            for e in &pulled.requests {
                let verified_before = known
                    .iter()
                    .any(|k| k.authenticator_id == account.authenticator_id && k.envelope == *e);
                if !verified_before {
                    account
                        .server_public_key
                        .verify(&e.envelope.signing_bytes(), &e.signature)
                        .map_err(|_| Error::InvalidServerSignature)?;
                }
                if e.envelope.identity_id != account.identity_id {
                    return Err(Error::InvalidServerSignature);
                }
                if e.envelope.expires_at_ms > resp.server_time_ms {
                    keep.push(e.clone());
                }
            }
            accepted.push((i, keep));
        }
        // Locked accounts lose their keys; the rest are stored in one
        // transaction that rewrites only what changed.
        let mut kept = Vec::with_capacity(accepted.len());
        for (i, keep) in accepted {
            let account = &accounts[i];
            let state = match resp.accounts[i].state {
                ServerAccountState::Locked => {
                    self.inner.destroy_account_keys(account)?;
                    continue;
                }
                ServerAccountState::Blocked => AccountState::Blocked,
                _ => AccountState::Active,
            };
            kept.push((account.authenticator_id, state, keep));
        }
        let rows: Vec<(AuthenticatorId, AccountState, &[SignedEnvelope])> = kept
            .iter()
            .map(|(id, state, keep)| (*id, *state, keep.as_slice()))
            .collect();
        lock(&self.inner.store)?.apply_pull(&rows, resp.server_time_ms, wall)?;
        let shown: Vec<(AuthenticatorId, AccountState)> =
            kept.iter().map(|(id, state, _)| (*id, *state)).collect();
        enrolment::store_pulled(&self.inner, &shown, &resp.accounts)?;
        // The security feed, for every account (a locked or blocked one
        // most of all): stored with its cursor in one transaction.
        let feeds: Vec<(AuthenticatorId, &[wire::FeedEvent], bool)> = resp
            .accounts
            .iter()
            .map(|p| (p.authenticator_id, p.events.as_slice(), p.notify_every_use))
            .collect();
        lock(&self.inner.store)?.apply_feed(&feeds)?;
        // The device journal against the server's decisions (every account
        // pulled, whatever its state).
        let decisions: Vec<(AuthenticatorId, &[wire::PulledDecision])> = resp
            .accounts
            .iter()
            .map(|p| (p.authenticator_id, p.decisions.as_slice()))
            .collect();
        let raised = journal::reconcile(&mut lock(&self.inner.store)?.conn, &decisions, wall)?;
        if raised > 0 {
            tracing::warn!(raised, "the server holds decisions this phone never signed");
        }
        self.store_account_details(&resp.accounts)?;
        let mut shown = lock(&self.inner.shown)?;
        for (id, _, keep) in &kept {
            shown.retain(|(a, r), _| a != id || keep.iter().any(|e| e.envelope.request_id == *r));
        }
        drop(shown);
        let mut timers = lock(&self.inner.timers)?;
        for (id, _, keep) in &kept {
            let id = *id;
            timers.retain(|(a, _), _| *a != id);
            for e in keep {
                timers.insert(
                    (id, e.envelope.request_id),
                    RequestTimer {
                        pulled_at_mono_ms: mono,
                        remaining_at_pull_ms: remaining_at_pull(
                            e.envelope.expires_at_ms,
                            resp.server_time_ms,
                        ),
                    },
                );
            }
        }
        Ok(())
    }

    /// Display models of the stored, unexpired requests of every active
    /// account (no network). Countdowns are recomputed on every call. For a
    /// phone several people share, the app shows [`Authenticator::household`]
    /// first and then [`Authenticator::requests_for`] the person chosen.
    pub fn requests(&self, lang: Language) -> Result<Vec<RequestView>> {
        self.request_views(None, lang)
    }

    /// The people on this phone, in activation order, with how many requests
    /// wait for each and nothing about what they say (no network).
    pub fn household(&self, lang: Language) -> Result<Vec<PersonSummary>> {
        let store = lock(&self.inner.store)?;
        let accounts = store.accounts()?;
        let mut waiting: HashMap<AuthenticatorId, u32> = HashMap::new();
        for row in store.pending()? {
            if self.inner.remaining(&row)? > 0 {
                *waiting.entry(row.authenticator_id).or_default() += 1;
            }
        }
        Ok(accounts
            .iter()
            .map(|a| {
                household::summary(
                    a.authenticator_id,
                    &a.user_id,
                    a.state,
                    waiting.get(&a.authenticator_id).copied().unwrap_or(0),
                    lang,
                )
            })
            .collect())
    }

    /// Display models of one person's stored, unexpired requests (no
    /// network): what the app shows once that person has been chosen.
    /// `UnknownAccount` if the account is not on this phone.
    pub fn requests_for(
        &self,
        account: &AuthenticatorId,
        lang: Language,
    ) -> Result<Vec<RequestView>> {
        lock(&self.inner.store)?.account(account)?;
        self.request_views(Some(account), lang)
    }

    fn request_views(
        &self,
        only: Option<&AuthenticatorId>,
        lang: Language,
    ) -> Result<Vec<RequestView>> {
        let store = lock(&self.inner.store)?;
        let accounts = store.accounts()?;
        let mut out = Vec::new();
        for row in store.pending()? {
            if only.is_some_and(|id| *id != row.authenticator_id) {
                continue;
            }
            let Some(account) = accounts.iter().find(|a| {
                a.authenticator_id == row.authenticator_id && a.state == AccountState::Active
            }) else {
                continue;
            };
            let left = self.inner.remaining(&row)?;
            if left == 0 {
                continue;
            }
            self.inner
                .mark_shown(&row.authenticator_id, &row.envelope.envelope.request_id)?;
            out.push(display::build_view(
                account.authenticator_id,
                &account.user_id,
                &row.envelope.envelope,
                left,
                lang,
            ));
        }
        Ok(out)
    }

    // ------------------------------------------------------------ PIN and decisions

    /// Checks the PIN for one request and returns a single-use unlock for it,
    /// valid for the configured time on the monotonic clock. The attempt is
    /// counted in the database before the PIN is tried.
    pub async fn unlock(
        &self,
        account: &AuthenticatorId,
        request: &RequestId,
        pin: &str,
    ) -> Result<UnlockToken> {
        let (acc, pending) = self.inner.decidable(account, request)?;
        display::check_texts(&pending.envelope.envelope).map_err(Error::TextRefused)?;
        let inner = self.inner.clone();
        let pin = Zeroizing::new(pin.to_owned());
        let pin_key = blocking(move || inner.check_pin(&acc, &pin)).await?;
        let id: [u8; 16] = random_array();
        let now = self.inner.clock.monotonic_ms();
        let mut unlocks = lock(&self.inner.unlocks)?;
        unlocks.retain(|_, u| {
            u.expires_mono_ms > now && !(u.authenticator_id == *account && u.request_id == *request)
        });
        unlocks.insert(
            id,
            UnlockEntry {
                authenticator_id: *account,
                request_id: *request,
                pin_key,
                expires_mono_ms: now.saturating_add(self.inner.config.unlock_ttl_ms),
            },
        );
        Ok(UnlockToken {
            id,
            authenticator_id: *account,
            request_id: *request,
        })
    }

    /// How long the person must still read the request before
    /// [`Authenticator::approve`] accepts it (monotonic ms, 0 = now). The
    /// read time counts from the first time the request's display model was
    /// built ([`Authenticator::refresh`], [`Authenticator::requests`],
    /// [`Authenticator::requests_for`]) in this process; a request never
    /// shown starts counting now. After a restart it counts again from the
    /// first display. No network.
    pub fn read_time_left(&self, account: &AuthenticatorId, request: &RequestId) -> Result<u64> {
        self.inner.decidable(account, request)?;
        self.inner.read_time_left(account, request)
    }

    /// Approves the unlocked request after the swipe. Signs with the device key
    /// and the PIN key, submits, and verifies the server's receipt.
    /// Refused with [`Error::TooFast`] (nothing signed or counted, the unlock
    /// kept) if the request was shown less than [`Config::min_read_ms`] ago.
    /// `binding_code` is the code from the login screen when the request needs one.
    pub async fn approve(
        &self,
        unlock: &UnlockToken,
        swipe_confirmed: bool,
        binding_code: Option<&str>,
    ) -> Result<SignedReceipt> {
        if !swipe_confirmed {
            return Err(Error::SwipeRequired);
        }
        if let Some(receipt) = self
            .inner
            .replay_stored(
                &unlock.authenticator_id,
                &unlock.request_id,
                Outcome::Approve,
            )
            .await?
        {
            return Ok(receipt);
        }
        let (_, pending) = self
            .inner
            .decidable(&unlock.authenticator_id, &unlock.request_id)?;
        if pending.envelope.envelope.binding_required
            && binding_code.is_none_or(|c| c.trim().is_empty())
        {
            return Err(Error::BindingCodeRequired);
        }
        // A typed code or a scanned QR payload, in the canonical form the
        // server compares; a malformed one is refused before anything is sent.
        let binding_code = binding_code
            .filter(|c| !c.trim().is_empty())
            .map(eid_protocol::binding::canonical_binding_code)
            .transpose()
            .map_err(|_| Error::WrongBindingCode)?;
        let entry = {
            let mut unlocks = lock(&self.inner.unlocks)?;
            let now = self.inner.clock.monotonic_ms();
            let valid = unlocks.get(&unlock.id).is_some_and(|e| {
                e.expires_mono_ms > now
                    && e.authenticator_id == unlock.authenticator_id
                    && e.request_id == unlock.request_id
            });
            if !valid {
                unlocks.remove(&unlock.id);
                return Err(Error::UnlockInvalid);
            }
            // Minimum read time, before the unlock is used up: a refusal
            // signs nothing, counts nothing and keeps the unlock.
            let wait_ms = self
                .inner
                .read_time_left(&unlock.authenticator_id, &unlock.request_id)?;
            if wait_ms > 0 {
                return Err(Error::TooFast { wait_ms });
            }
            unlocks.remove(&unlock.id).ok_or(Error::UnlockInvalid)?
        };
        self.decide(
            &unlock.authenticator_id,
            &unlock.request_id,
            Outcome::Approve,
            Some(&entry.pin_key),
            binding_code,
        )
        .await
    }

    /// Denies a request. Needs no PIN: signed by the device key, and also by the
    /// PIN key if the request is currently unlocked.
    pub async fn deny(
        &self,
        account: &AuthenticatorId,
        request: &RequestId,
    ) -> Result<SignedReceipt> {
        self.refuse(account, request, Outcome::Deny).await
    }

    /// Denies a request and reports it as fraud ("this wasn't me"). Like [`Authenticator::deny`].
    pub async fn report_fraud(
        &self,
        account: &AuthenticatorId,
        request: &RequestId,
    ) -> Result<SignedReceipt> {
        self.refuse(account, request, Outcome::ReportFraud).await
    }

    async fn refuse(
        &self,
        account: &AuthenticatorId,
        request: &RequestId,
        outcome: Outcome,
    ) -> Result<SignedReceipt> {
        if let Some(receipt) = self.inner.replay_stored(account, request, outcome).await? {
            return Ok(receipt);
        }
        self.inner.decidable(account, request)?;
        let entry = {
            let mut unlocks = lock(&self.inner.unlocks)?;
            let now = self.inner.clock.monotonic_ms();
            let key = unlocks
                .iter()
                .find(|(_, u)| {
                    u.authenticator_id == *account
                        && u.request_id == *request
                        && u.expires_mono_ms > now
                })
                .map(|(k, _)| *k);
            key.and_then(|k| unlocks.remove(&k))
        };
        self.decide(
            account,
            request,
            outcome,
            entry.as_ref().map(|e| &e.pin_key),
            None,
        )
        .await
    }

    async fn decide(
        &self,
        account: &AuthenticatorId,
        request: &RequestId,
        outcome: Outcome,
        pin_key: Option<&SoftwareSigningKey>,
        binding_code: Option<String>,
    ) -> Result<SignedReceipt> {
        let submit = {
            let (acc, pending) = self.inner.decidable(account, request)?;
            let envelope = &pending.envelope.envelope;
            if outcome == Outcome::Approve {
                display::check_texts(envelope).map_err(Error::TextRefused)?;
            }
            // The platform keystore may be slow (StrongBox, a user prompt), so
            // it signs without the store lock; the counter is then committed
            // with the signed decision only if no other decision took it
            // meanwhile (compare-and-set), else signed again with the next.
            let mut attempts = 0;
            loop {
                let counter = lock(&self.inner.store)?.next_counter(account)?;
                let decision = Decision::for_envelope(
                    envelope,
                    *account,
                    outcome,
                    binding_code.clone(),
                    counter,
                );
                let bytes = decision.signing_bytes();
                let device_sig = self.inner.keystore.sign(&acc.device_key_alias, &bytes)?;
                let device_signature = Signature::from_der(&device_sig)
                    .map_err(|_| Error::KeyStore(KeyStoreError::Failure("bad signature".into())))?;
                let submit = SubmitDecisionRequest {
                    decision,
                    device_signature,
                    pin_signature: pin_key.map(|k| k.sign(&bytes)),
                };
                let stored = lock(&self.inner.store)?
                    .insert_decision(&submit, self.inner.clock.wall_ms())?;
                attempts += 1;
                if stored {
                    break submit;
                }
                if attempts == 3 {
                    return Err(InternalError::CounterRace.into());
                }
            }
        };
        crash::point("core.decision.signed");
        self.inner.submit(submit).await
    }

    /// Re-sends decisions that were signed but not confirmed (e.g. after a
    /// network error or a restart). Returns how many were confirmed; stops at
    /// the first network error.
    pub async fn retry_unsent_decisions(&self) -> Result<usize> {
        let unsent = lock(&self.inner.store)?.unsent_decisions()?;
        let mut confirmed = 0;
        for d in unsent {
            match self.inner.submit(d.submit).await {
                Ok(_) => confirmed += 1,
                Err(e @ Error::Network(_)) => return Err(e),
                Err(_) => {}
            }
        }
        Ok(confirmed)
    }

    /// Changes the PIN: the old PIN unwraps the PIN key (counted like any
    /// attempt), the new one (policy-checked first) re-seals the same key.
    pub async fn change_pin(
        &self,
        account: &AuthenticatorId,
        old_pin: &str,
        new_pin: &str,
    ) -> Result<()> {
        self.inner.config.pin_policy.check(new_pin)?;
        let acc = lock(&self.inner.store)?.account(account)?;
        if acc.state == AccountState::NeedsReactivation {
            return Err(Error::ReactivationRequired);
        }
        let inner = self.inner.clone();
        let old = Zeroizing::new(old_pin.to_owned());
        let new = Zeroizing::new(new_pin.to_owned());
        blocking(move || {
            let key = inner.check_pin(&acc, &old)?;
            let _guard = lock(&inner.pin_lock)?;
            let store = lock(&inner.store)?;
            let iterations = store
                .pin_key(&acc.authenticator_id)?
                .ok_or(Error::ReactivationRequired)?
                .iterations;
            drop(store);
            let wrapped = pin::wrap_pin_key(
                &key,
                &new,
                iterations,
                inner.keystore.as_ref(),
                &acc.pin_wrap_alias,
            )?;
            let mut store = lock(&inner.store)?;
            let attempts = store
                .attempts(&acc.authenticator_id)?
                .reset(inner.clock.wall_ms());
            store.replace_pin_key(&acc.authenticator_id, &wrapped, &attempts)?;
            Ok(())
        })
        .await
    }

    /// Blocks the account's identity at once ("I suspect abuse"), from this
    /// phone: signed by the device key, no PIN needed. The server cancels the
    /// pending requests and refuses new requests and decisions until support
    /// unblocks; locally the account shows as blocked.
    pub async fn block_identity(&self, account: &AuthenticatorId) -> Result<()> {
        let acc = lock(&self.inner.store)?.account(account)?;
        let body = serde_json::to_vec(&wire::BlockRequest {
            authenticator_id: *account,
        })?;
        let resp: wire::BlockResponse = self
            .inner
            .device_post(std::slice::from_ref(&acc), wire::PATH_BLOCK, body)
            .await?;
        if resp.identity_id != acc.identity_id {
            return Err(Error::InvalidResponse("blocked another identity".into()));
        }
        let server_time = self.inner.clock.wall_ms();
        lock(&self.inner.store)?.apply_pull(
            &[(*account, AccountState::Blocked, &[])],
            server_time,
            server_time,
        )?;
        lock(&self.inner.timers)?.retain(|(a, _), _| a != account);
        tracing::info!("identity blocked from the app");
        Ok(())
    }

    /// The account's security feed as last pulled (no network), newest
    /// first, with texts in `lang`. [`Authenticator::refresh`] brings new
    /// events.
    pub fn events(&self, account: &AuthenticatorId, lang: Language) -> Result<Vec<EventView>> {
        let store = lock(&self.inner.store)?;
        store.account(account)?;
        Ok(store
            .feed(account)?
            .iter()
            .map(|e| events::build_view(account, e, lang))
            .collect())
    }

    /// The account's "notify me on every use" setting as the server last
    /// reported it (no network).
    pub fn notify_every_use(&self, account: &AuthenticatorId) -> Result<bool> {
        let store = lock(&self.inner.store)?;
        store.account(account)?;
        store.notify_every_use(account)
    }

    /// Turns "notify me on every use" on or off for the account's identity:
    /// with it on, every approval sends an SMS and an e-mail and appears in
    /// the feed. Signed by the device key; no PIN.
    pub async fn set_notify_every_use(&self, account: &AuthenticatorId, on: bool) -> Result<()> {
        let acc = lock(&self.inner.store)?.account(account)?;
        let body = serde_json::to_vec(&wire::DeviceSettingsRequest {
            authenticator_id: *account,
            notify_every_use: on,
        })?;
        let resp: wire::DeviceSettingsResponse = self
            .inner
            .device_post(std::slice::from_ref(&acc), wire::PATH_DEVICE_SETTINGS, body)
            .await?;
        if resp.identity_id != acc.identity_id || resp.notify_every_use != on {
            return Err(Error::InvalidResponse(
                "the settings answer does not match".into(),
            ));
        }
        lock(&self.inner.store)?.set_notify_every_use(account, on)?;
        Ok(())
    }

    /// Decisions the server holds for this account that this phone never
    /// signed (device journal reconciliation on each pull), oldest first.
    /// Any entry means the account's device key signed somewhere else (or the
    /// server invented it): the app should urge blocking the identity. No
    /// network.
    pub fn journal_alarms(&self, account: &AuthenticatorId) -> Result<Vec<JournalAlarm>> {
        let store = lock(&self.inner.store)?;
        store.account(account)?;
        journal::alarms(&store.conn, account)
    }

    /// Recomputes the device journal's hash chain: its length and head, or
    /// [`Error::JournalBroken`] if an entry was edited, removed or reordered.
    /// No network.
    pub fn journal_verify(&self) -> Result<JournalHead> {
        journal::verify(&lock(&self.inner.store)?.conn)
    }

    /// Removes an account from this phone: deletes its keys and local data.
    /// (The server is not told; support revokes the authenticator there.)
    pub fn remove_account(&self, account: &AuthenticatorId) -> Result<()> {
        let acc = lock(&self.inner.store)?.account(account)?;
        self.inner.drop_memory(account)?;
        lock(&self.inner.store)?.delete_account(account)?;
        self.inner
            .delete_keys(&acc.device_key_alias, &acc.pin_wrap_alias);
        Ok(())
    }
}

impl Inner {
    fn prepare_activation(&self, user_id: &str, pin: &str) -> Result<PendingActivationRow> {
        self.discard_activation()?;
        let row = self.prepare_keys(user_id, pin, |p| p.signing_bytes())?;
        lock(&self.store)?.put_pending_activation(&row)?;
        crash::point("core.activation.pending_stored");
        Ok(row)
    }

    /// Makes a device key (keystore) and a PIN key sealed under `pin`, and
    /// signs `proof` (activation or enrolment) with both.
    fn prepare_keys(
        &self,
        user_id: &str,
        pin: &str,
        proof: impl FnOnce(&ActivationProof<'_>) -> Vec<u8>,
    ) -> Result<PendingActivationRow> {
        let device_key_alias = new_alias("device");
        let pin_wrap_alias = new_alias("pinwrap");
        let device_public = PublicKey::from_sec1(&self.keystore.create_key(&device_key_alias)?)
            .map_err(|_| KeyStoreError::Failure("bad public key".into()))?;
        let pin_key = SoftwareSigningKey::generate();
        let iterations = self.config.kdf.iterations();
        let wrapped = pin::wrap_pin_key(
            &pin_key,
            pin,
            iterations,
            self.keystore.as_ref(),
            &pin_wrap_alias,
        )?;
        let proof = proof(&ActivationProof {
            user_id,
            device_public_key: &device_public,
            pin_public_key: pin_key.public_key(),
        });
        let device_signature = self.keystore.sign(&device_key_alias, &proof)?;
        let row = PendingActivationRow {
            user_id: user_id.to_owned(),
            device_key_alias,
            pin_wrap_alias,
            device_public_key: device_public,
            pin_public_key: pin_key.public_key().clone(),
            wrapped,
            device_signature,
            pin_signature: pin_key.sign(&proof).0,
            created_at_ms: self.clock.wall_ms(),
        };
        Ok(row)
    }

    fn discard_activation(&self) -> Result<()> {
        let store = lock(&self.store)?;
        if let Some(p) = store.pending_activation()? {
            store.clear_pending_activation()?;
            self.delete_keys(&p.device_key_alias, &p.pin_wrap_alias);
        }
        Ok(())
    }

    fn delete_keys(&self, device_alias: &str, wrap_alias: &str) {
        for alias in [device_alias, wrap_alias] {
            if self.keystore.delete_key(alias).is_err() {
                tracing::warn!("could not delete a key from the keystore");
            }
        }
    }

    /// Records the first time a request's display model was built.
    fn mark_shown(&self, account: &AuthenticatorId, request: &RequestId) -> Result<()> {
        let now = self.clock.monotonic_ms();
        lock(&self.shown)?
            .entry((*account, *request))
            .or_insert(now);
        Ok(())
    }

    /// Read time still owed for a request (see [`Authenticator::read_time_left`]).
    fn read_time_left(&self, account: &AuthenticatorId, request: &RequestId) -> Result<u64> {
        let min = self.config.min_read_ms;
        if min == 0 {
            return Ok(0);
        }
        let now = self.clock.monotonic_ms();
        let mut shown = lock(&self.shown)?;
        let at = *shown.entry((*account, *request)).or_insert(now);
        Ok(min.saturating_sub(now.saturating_sub(at)))
    }

    fn drop_memory(&self, account: &AuthenticatorId) -> Result<()> {
        lock(&self.unlocks)?.retain(|_, u| u.authenticator_id != *account);
        lock(&self.timers)?.retain(|(a, _), _| a != account);
        lock(&self.shown)?.retain(|(a, _), _| a != account);
        lock(&self.mono_locks)?.remove(account);
        Ok(())
    }

    /// Destroys the PIN key and the keystore keys; the account needs re-activation.
    fn destroy_account_keys(&self, account: &AccountRow) -> Result<()> {
        self.drop_memory(&account.authenticator_id)?;
        lock(&self.store)?.destroy_pin_key(&account.authenticator_id)?;
        self.delete_keys(&account.device_key_alias, &account.pin_wrap_alias);
        tracing::warn!("PIN key destroyed; re-activation required");
        Ok(())
    }

    /// Records the server's time (from a pull) against the monotonic clock.
    fn learn_server_time(&self, server_time_ms: u64) -> Result<()> {
        *lock(&self.server_clock)? = Some((server_time_ms, self.clock.monotonic_ms()));
        Ok(())
    }

    /// The timestamp for a device-signed request: the server's clock as last
    /// seen plus monotonic time since; the wall clock only until the server
    /// was first heard from in this process.
    fn request_timestamp(&self) -> Result<u64> {
        Ok(match *lock(&self.server_clock)? {
            Some((server, mono)) => {
                server.saturating_add(self.clock.monotonic_ms().saturating_sub(mono))
            }
            None => self.clock.wall_ms(),
        })
    }

    /// POSTs a request signed by each account's device key. If the server
    /// refuses the timestamp (`clock_skew`: the phone's clock is off and the
    /// server's time is not known yet in this process), learns the server's
    /// time from the refusal and signs once more (new nonce).
    async fn device_post<T: serde::de::DeserializeOwned>(
        &self,
        accounts: &[AccountRow],
        path: &str,
        body: Vec<u8>,
    ) -> Result<T> {
        let headers = self.device_auth_headers(accounts, path, &body)?;
        match self.client.post(path, body.clone(), &headers).await {
            Err(Error::Rejected {
                code: ErrorCode::ClockSkew,
            }) => {
                let Some(t) = self.client.take_skew_server_time() else {
                    return Err(Error::Rejected {
                        code: ErrorCode::ClockSkew,
                    });
                };
                self.learn_server_time(t)?;
                let headers = self.device_auth_headers(accounts, path, &body)?;
                self.client.post(path, body, &headers).await
            }
            other => other,
        }
    }

    fn device_auth_headers(
        &self,
        accounts: &[AccountRow],
        path: &str,
        body: &[u8],
    ) -> Result<Vec<(&'static str, String)>> {
        let signers: Vec<(AuthenticatorId, &str)> = accounts
            .iter()
            .map(|a| (a.authenticator_id, a.device_key_alias.as_str()))
            .collect();
        self.signed_headers(&signers, path, body)
    }

    /// Device-request headers signed by each `(id, device key alias)`.
    fn signed_headers(
        &self,
        signers: &[(AuthenticatorId, &str)],
        path: &str,
        body: &[u8],
    ) -> Result<Vec<(&'static str, String)>> {
        let timestamp_ms = self.request_timestamp()?;
        let nonce = Nonce16::random();
        let body_sha256 = eid_protocol::sha256(body);
        let mut pairs = Vec::with_capacity(signers.len());
        for (id, alias) in signers {
            let msg = DeviceRequestAuth {
                authenticator_id: *id,
                method: "POST",
                path,
                body_sha256,
                timestamp_ms,
                nonce,
            }
            .signing_bytes();
            let sig = Signature::from_der(&self.keystore.sign(alias, &msg)?)
                .map_err(|_| KeyStoreError::Failure("bad signature".into()))?;
            pairs.push((*id, sig));
        }
        Ok(vec![
            (wire::HEADER_TIMESTAMP, timestamp_ms.to_string()),
            (wire::HEADER_NONCE, nonce.to_string()),
            (
                wire::HEADER_SIGNATURE,
                wire::format_signature_header(&pairs),
            ),
        ])
    }

    fn remaining(&self, row: &PendingRow) -> Result<u64> {
        let key = (row.authenticator_id, row.envelope.envelope.request_id);
        if let Some(t) = lock(&self.timers)?.get(&key) {
            return Ok(t.remaining(self.clock.monotonic_ms()));
        }
        Ok(remaining_after_restart(
            remaining_at_pull(row.envelope.envelope.expires_at_ms, row.server_time_ms),
            row.received_wall_ms,
            self.clock.wall_ms(),
        ))
    }

    /// The account and pending request, if the account may decide it now.
    fn decidable(
        &self,
        account: &AuthenticatorId,
        request: &RequestId,
    ) -> Result<(AccountRow, PendingRow)> {
        let store = lock(&self.store)?;
        let acc = store.account(account)?;
        match acc.state {
            AccountState::NeedsReactivation => return Err(Error::ReactivationRequired),
            AccountState::Blocked => return Err(Error::Blocked),
            AccountState::Active => {}
        }
        let pending = store
            .pending()?
            .into_iter()
            .find(|p| p.authenticator_id == *account && p.envelope.envelope.request_id == *request)
            .ok_or(Error::UnknownRequest)?;
        drop(store);
        if self.remaining(&pending)? == 0 {
            return Err(Error::Expired);
        }
        Ok((acc, pending))
    }

    /// Runs one counted PIN attempt (see [`lockout`]) and returns the PIN key.
    fn check_pin(&self, acc: &AccountRow, pin: &str) -> Result<SoftwareSigningKey> {
        let _guard = lock(&self.pin_lock)?;
        let id = acc.authenticator_id;
        let now = self.clock.wall_ms();
        if let Some(deadline) = lock(&self.mono_locks)?.get(&id).copied() {
            let mono = self.clock.monotonic_ms();
            if mono < deadline {
                return Err(Error::LockedOut {
                    retry_after_ms: deadline - mono,
                });
            }
        }
        let (wrapped, before) = {
            let store = lock(&self.store)?;
            let wrapped = store.pin_key(&id)?;
            (wrapped, store.attempts(&id)?)
        };
        let Some(wrapped) = wrapped else {
            return Err(Error::ReactivationRequired);
        };
        let trial = match before.gate(now) {
            Gate::Exhausted => {
                self.destroy_account_keys(acc)?;
                return Err(Error::ReactivationRequired);
            }
            Gate::Locked { retry_after_ms } => return Err(Error::LockedOut { retry_after_ms }),
            Gate::Proceed(trial) => trial,
        };
        // Count the attempt durably before trying the PIN.
        lock(&self.store)?.set_attempts(&id, &trial)?;
        crash::point("core.pin.attempt_counted");
        match pin::unwrap_pin_key(
            &wrapped,
            pin,
            acc.pin_public_key.as_bytes(),
            self.keystore.as_ref(),
            &acc.pin_wrap_alias,
        ) {
            Ok(key) => {
                lock(&self.store)?.set_attempts(&id, &trial.reset(now))?;
                crash::point("core.pin.reset");
                lock(&self.mono_locks)?.remove(&id);
                Ok(key)
            }
            Err(UnwrapError::WrongPin) => match trial.failure_outcome() {
                FailureOutcome::Destroy => {
                    self.destroy_account_keys(acc)?;
                    Err(Error::ReactivationRequired)
                }
                FailureOutcome::WrongPin {
                    attempts_left,
                    retry_after_ms,
                } => {
                    if retry_after_ms > 0 {
                        let deadline = self.clock.monotonic_ms().saturating_add(retry_after_ms);
                        lock(&self.mono_locks)?.insert(id, deadline);
                    }
                    Err(Error::WrongPin {
                        attempts_left,
                        retry_after_ms,
                    })
                }
            },
            Err(UnwrapError::KeyStore(e)) => {
                // Nothing was learnt about the PIN: undo the count.
                lock(&self.store)?.set_attempts(&id, &before)?;
                Err(e.into())
            }
            Err(_) => Err(InternalError::Corrupt("sealed PIN key").into()),
        }
    }

    /// If a decision for this request is stored: resubmit it (same outcome,
    /// not yet confirmed), return its receipt (confirmed), or refuse (other outcome).
    async fn replay_stored(
        &self,
        account: &AuthenticatorId,
        request: &RequestId,
        outcome: Outcome,
    ) -> Result<Option<SignedReceipt>> {
        let stored = lock(&self.store)?.decision(account, request)?;
        let Some(d) = stored else { return Ok(None) };
        if d.submit.decision.outcome != outcome {
            return Err(Error::AlreadyDecided);
        }
        match d.status {
            DecisionStatus::ReceiptVerified => d
                .receipt
                .map(Some)
                .ok_or_else(|| InternalError::Corrupt("decision: receipt missing").into()),
            DecisionStatus::Rejected => Err(Error::AlreadyDecided),
            DecisionStatus::Signed => self.submit(d.submit).await.map(Some),
        }
    }

    /// Sends a stored signed decision and records the outcome.
    async fn submit(&self, submit: SubmitDecisionRequest) -> Result<SignedReceipt> {
        let d = submit.decision.clone();
        let acc = lock(&self.store)?.account(&d.authenticator_id)?;
        let body = serde_json::to_vec(&submit)?;
        let result: Result<SignedReceipt> = self.client.post(wire::PATH_DECISIONS, body, &[]).await;
        match result {
            Ok(receipt) => {
                crash::point("core.decision.answered");
                verify_receipt(&acc.server_public_key, &d, &receipt)?;
                lock(&self.store)?.set_decision_receipt(
                    &d.authenticator_id,
                    &d.request_id,
                    &receipt,
                )?;
                crash::point("core.decision.receipt_stored");
                lock(&self.timers)?.remove(&(d.authenticator_id, d.request_id));
                Ok(receipt)
            }
            // Only an approval of a request that needs the login-screen code
            // can meet a wrong code; any other decision answered so is kept
            // as refused (a server cannot make the phone forget what it signed).
            Err(Error::Rejected {
                code: ErrorCode::BindingMismatch,
            }) if d.outcome == Outcome::Approve && d.binding_code.is_some() => {
                // The server recorded nothing and the request stays open: the
                // person may type the code again (a new decision is signed).
                lock(&self.store)?.delete_unsent_decision(&d.authenticator_id, &d.request_id)?;
                Err(Error::WrongBindingCode)
            }
            Err(Error::Rejected { code }) if is_final(code) => {
                lock(&self.store)?.set_decision_rejected(
                    &d.authenticator_id,
                    &d.request_id,
                    &format!("{code:?}"),
                )?;
                lock(&self.timers)?.remove(&(d.authenticator_id, d.request_id));
                Err(match code {
                    ErrorCode::RequestExpired => Error::Expired,
                    ErrorCode::IdentityBlocked => {
                        lock(&self.store)?.set_state(&d.authenticator_id, AccountState::Blocked)?;
                        Error::Blocked
                    }
                    ErrorCode::AuthenticatorLocked => {
                        self.destroy_account_keys(&acc)?;
                        Error::ReactivationRequired
                    }
                    code => Error::Rejected { code },
                })
            }
            Err(e) => Err(e),
        }
    }
}

/// Server refusals after which resending the same decision cannot succeed.
fn is_final(code: ErrorCode) -> bool {
    !matches!(
        code,
        ErrorCode::Internal
            | ErrorCode::PayloadTooLarge
            | ErrorCode::ClockSkew
            | ErrorCode::ReplayedNonce
    )
}

/// Checks a receipt's signature and that it is the receipt of exactly `decision`.
pub fn verify_receipt(
    server_key: &PublicKey,
    decision: &Decision,
    receipt: &SignedReceipt,
) -> Result<()> {
    server_key
        .verify(&receipt.receipt.signing_bytes(), &receipt.signature)
        .map_err(|_| Error::InvalidServerSignature)?;
    let r = &receipt.receipt;
    let matches = r.request_id == decision.request_id
        && r.identity_id == decision.identity_id
        && r.authenticator_id == decision.authenticator_id
        && r.outcome == decision.outcome
        && r.kind == decision.kind
        && r.reference_text_sha256 == decision.reference_text_sha256
        && r.service_provider_id == decision.service_provider_id
        && r.counter == decision.counter
        && r.decision_sha256 == eid_protocol::sha256(&decision.signing_bytes());
    if matches {
        Ok(())
    } else {
        Err(Error::InvalidServerSignature)
    }
}

/// Verifies a DER ECDSA-P256-SHA256 signature the way the core does for
/// server envelopes and receipts.
pub fn verify_server_signature(key: &PublicKey, message: &[u8], signature: &Signature) -> bool {
    key.verify(message, signature).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use eid_protocol::{RequestEnvelopeBody, RequestKind, ServiceProviderId};

    const T0: u64 = 1_800_000_000_000;
    const PIN: &str = "483951";

    struct Fixture {
        _dir: tempfile::TempDir,
        config: Config,
        keystore: Arc<SoftwareKeyStore>,
        clock: Arc<ManualClock>,
        server: SoftwareSigningKey,
        account: AuthenticatorId,
        device_alias: String,
    }

    impl Fixture {
        fn open(&self) -> Authenticator {
            Authenticator::open_with_clock(
                self.config.clone(),
                self.keystore.clone(),
                self.clock.clone(),
            )
            .unwrap()
        }

        fn add_request(&self, auth: &Authenticator, text: &str) -> RequestId {
            let envelope = RequestEnvelopeBody {
                request_id: RequestId::random(),
                identity_id: IdentityId([2; 16]),
                kind: RequestKind::Login,
                service_provider_id: ServiceProviderId([3; 16]),
                service_provider_name: "Nordisk Bank A/S".into(),
                reference_text: text.into(),
                created_at_ms: self.clock.wall_ms(),
                expires_at_ms: self.clock.wall_ms() + eid_protocol::REQUEST_LIFETIME_MS,
                server_nonce: [4; 32],
                binding_required: false,
            };
            let signature = self.server.sign(&envelope.signing_bytes());
            let id = envelope.request_id;
            let mut store = auth.inner.store.lock().unwrap();
            let mut all: Vec<SignedEnvelope> = store
                .pending()
                .unwrap()
                .into_iter()
                .map(|p| p.envelope)
                .collect();
            all.push(SignedEnvelope {
                envelope,
                signature,
            });
            store
                .replace_pending(
                    &self.account,
                    &all,
                    self.clock.wall_ms(),
                    self.clock.wall_ms(),
                )
                .unwrap();
            id
        }
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::new(
            dir.path().join("core.db"),
            ServerConfig::new(
                "https://127.0.0.1:9",
                format!("sha256/{}", "A".repeat(43) + "="),
            ),
        );
        config.server.connect_timeout = std::time::Duration::from_millis(300);
        config.kdf = KdfCost::Fixed(1);
        let keystore = Arc::new(SoftwareKeyStore::open(&dir.path().join("keys")).unwrap());
        let clock = Arc::new(ManualClock::new(T0));
        let server = SoftwareSigningKey::generate();
        let device_alias = "eid.test.device".to_owned();
        let wrap_alias = "eid.test.pinwrap".to_owned();
        keystore.create_key(&device_alias).unwrap();
        let pin_key = SoftwareSigningKey::generate();
        let wrapped = pin::wrap_pin_key(&pin_key, PIN, 1, keystore.as_ref(), &wrap_alias).unwrap();
        let account = AuthenticatorId::random();
        let row = AccountRow {
            authenticator_id: account,
            identity_id: IdentityId([2; 16]),
            user_id: "Anna#2024".into(),
            server_public_key: server.public_key().clone(),
            device_key_alias: device_alias.clone(),
            pin_wrap_alias: wrap_alias,
            pin_public_key: pin_key.public_key().clone(),
            decision_counter: 0,
            state: AccountState::Active,
            created_at_ms: T0,
        };
        Store::open(&config.db_path)
            .unwrap()
            .insert_account(&row, &wrapped)
            .unwrap();
        Fixture {
            _dir: dir,
            config,
            keystore,
            clock,
            server,
            account,
            device_alias,
        }
    }

    #[tokio::test]
    async fn lockout_survives_restart_and_destroys_key_after_ten() {
        let f = fixture();
        let a = f.open();
        let wrong = "111222";
        let mut results = Vec::new();
        for _ in 0..3 {
            results.push(a.change_pin(&f.account, wrong, "736194").await.unwrap_err());
        }
        assert_eq!(
            results,
            vec![
                Error::WrongPin {
                    attempts_left: 9,
                    retry_after_ms: 0
                },
                Error::WrongPin {
                    attempts_left: 8,
                    retry_after_ms: 0
                },
                Error::WrongPin {
                    attempts_left: 7,
                    retry_after_ms: 60_000
                },
            ]
        );
        // Even the right PIN is refused while locked.
        assert!(matches!(
            a.change_pin(&f.account, PIN, "736194").await,
            Err(Error::LockedOut { .. })
        ));
        drop(a);
        // Restart: still locked; rolling the wall clock back does not help.
        let a = f.open();
        assert!(matches!(
            a.change_pin(&f.account, PIN, "736194").await,
            Err(Error::LockedOut { .. })
        ));
        f.clock.set_wall(T0 - 3_600_000);
        assert!(matches!(
            a.change_pin(&f.account, PIN, "736194").await,
            Err(Error::LockedOut { .. })
        ));
        f.clock.set_wall(T0);
        f.clock.advance(60_000);
        // Right PIN after the wait: resets the counter, PIN changes.
        a.change_pin(&f.account, PIN, "736194").await.unwrap();
        let mut last = None;
        for _ in 0..10 {
            let r = a.change_pin(&f.account, PIN, "483951").await;
            last = Some(r.clone());
            if let Err(Error::WrongPin { retry_after_ms, .. }) = r {
                f.clock.advance(retry_after_ms);
            }
        }
        assert_eq!(last, Some(Err(Error::ReactivationRequired)));
        assert_eq!(
            a.accounts().unwrap()[0].state,
            AccountState::NeedsReactivation
        );
        assert_eq!(
            f.keystore.public_key(&f.device_alias),
            Err(KeyStoreError::NotFound)
        );
        drop(a);
        let a = f.open();
        assert_eq!(
            a.change_pin(&f.account, "736194", "483951").await,
            Err(Error::ReactivationRequired)
        );
    }

    #[tokio::test]
    async fn approve_flow_keeps_signed_decision_for_retry() {
        let f = fixture();
        let a = f.open();
        let req = f.add_request(&a, "Log på Netbank");
        let views = a.requests(Language::English).unwrap();
        assert_eq!(views.len(), 1);
        assert_eq!(views[0].time_left_ms, eid_protocol::REQUEST_LIFETIME_MS);
        assert_eq!(
            a.unlock(&f.account, &req, "000111").await,
            Err(Error::WrongPin {
                attempts_left: 9,
                retry_after_ms: 0
            })
        );
        let token = a.unlock(&f.account, &req, PIN).await.unwrap();
        assert_eq!(
            a.approve(&token, false, None).await,
            Err(Error::SwipeRequired)
        );
        // Minimum read time: refused with the time still owed; nothing
        // signed, the unlock kept.
        f.clock.advance(400);
        assert_eq!(
            a.approve(&token, true, None).await,
            Err(Error::TooFast {
                wait_ms: DEFAULT_MIN_READ_MS - 400
            })
        );
        assert_eq!(
            a.read_time_left(&f.account, &req),
            Ok(DEFAULT_MIN_READ_MS - 400)
        );
        assert!(
            a.inner
                .store
                .lock()
                .unwrap()
                .decision(&f.account, &req)
                .unwrap()
                .is_none()
        );
        f.clock.advance(DEFAULT_MIN_READ_MS - 400);
        assert_eq!(a.read_time_left(&f.account, &req), Ok(0));
        assert!(matches!(
            a.approve(&token, true, None).await,
            Err(Error::Network(_))
        ));
        let stored = a
            .inner
            .store
            .lock()
            .unwrap()
            .decision(&f.account, &req)
            .unwrap()
            .unwrap();
        assert_eq!(stored.status, DecisionStatus::Signed);
        assert_eq!(stored.submit.decision.counter, 1);
        assert!(stored.submit.pin_signature.is_some());
        // Retrying re-sends the same stored decision (no new counter, no PIN).
        assert!(matches!(
            a.approve(&token, true, None).await,
            Err(Error::Network(_))
        ));
        assert!(matches!(
            a.retry_unsent_decisions().await,
            Err(Error::Network(_))
        ));
        let again = a
            .inner
            .store
            .lock()
            .unwrap()
            .decision(&f.account, &req)
            .unwrap()
            .unwrap();
        assert_eq!(again.submit, stored.submit);
        assert_eq!(
            a.inner
                .store
                .lock()
                .unwrap()
                .account(&f.account)
                .unwrap()
                .decision_counter,
            1
        );
        assert_eq!(a.deny(&f.account, &req).await, Err(Error::AlreadyDecided));
        // Deny without PIN: device signature only.
        let req2 = f.add_request(&a, "Log på igen");
        assert!(matches!(
            a.deny(&f.account, &req2).await,
            Err(Error::Network(_))
        ));
        let d2 = a
            .inner
            .store
            .lock()
            .unwrap()
            .decision(&f.account, &req2)
            .unwrap()
            .unwrap();
        assert_eq!(d2.submit.decision.counter, 2);
        assert_eq!(d2.submit.pin_signature, None);
        let msg = d2.submit.decision.signing_bytes();
        let device =
            PublicKey::from_sec1(&f.keystore.public_key(&f.device_alias).unwrap()).unwrap();
        device.verify(&msg, &d2.submit.device_signature).unwrap();
    }

    #[tokio::test]
    async fn expiry_unlock_lifetime_and_refused_text() {
        let f = fixture();
        let a = f.open();
        let req = f.add_request(&a, "Log på Netbank");
        let token = a.unlock(&f.account, &req, PIN).await.unwrap();
        f.clock.advance(DEFAULT_UNLOCK_TTL_MS + 1);
        assert_eq!(
            a.approve(&token, true, None).await,
            Err(Error::UnlockInvalid)
        );
        f.clock.advance(eid_protocol::REQUEST_LIFETIME_MS);
        assert_eq!(
            a.unlock(&f.account, &req, PIN).await.err(),
            Some(Error::Expired)
        );
        assert!(a.requests(Language::Danish).unwrap().is_empty());
        let bad = f.add_request(&a, "Betal \u{202E}00.001\u{202C} kr");
        let views = a.requests(Language::Danish).unwrap();
        assert_eq!(views.len(), 1);
        assert_eq!(views[0].reference_text, None);
        assert_eq!(views[0].actions, vec![Action::Deny, Action::ReportFraud]);
        assert!(matches!(
            a.unlock(&f.account, &bad, PIN).await,
            Err(Error::TextRefused(_))
        ));
        assert!(matches!(
            a.report_fraud(&f.account, &bad).await,
            Err(Error::Network(_))
        ));
    }

    #[tokio::test]
    async fn activation_checks_pin_first_and_keeps_interrupted_activation() {
        let f = fixture();
        let a = f.open();
        assert_eq!(
            a.activate("Bent#2024", "ABCD-EFGH", "123456").await.err(),
            Some(Error::PinPolicy(PinPolicyError::Sequence))
        );
        assert_eq!(a.pending_activation().unwrap(), None);
        assert!(matches!(
            a.activate("Bent#2024", "ABCD-EFGH", PIN).await,
            Err(Error::Network(_))
        ));
        let p = a.pending_activation().unwrap().unwrap();
        assert_eq!(p.user_id, "Bent#2024");
        assert!(matches!(
            a.resume_activation("ABCD-EFGH").await,
            Err(Error::Network(_))
        ));
        a.discard_activation().unwrap();
        assert_eq!(a.pending_activation().unwrap(), None);
        assert_eq!(
            a.resume_activation("x").await.err(),
            Some(Error::NoPendingActivation)
        );
    }

    #[test]
    fn test_vectors_verify_with_core_path() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../testvectors/protocol-v1.json"
        ))
        .unwrap();
        let file: eid_protocol::vectors::VectorFile = serde_json::from_str(&text).unwrap();
        let n = eid_protocol::vectors::check_file(&file, verify_server_signature).unwrap();
        assert!(n >= 5);
        // And the core's receipt check refuses a receipt for another decision.
        let key = SoftwareSigningKey::generate();
        let mut decision = None;
        let mut receipt = None;
        for v in &file.vectors {
            match &v.message {
                eid_protocol::vectors::VectorMessage::Decision(d) => decision = Some(d.clone()),
                eid_protocol::vectors::VectorMessage::Receipt(r) => receipt = Some(r.clone()),
                _ => {}
            }
        }
        let (decision, mut body) = (decision.unwrap(), receipt.unwrap());
        body.decision_sha256 = eid_protocol::sha256(&decision.signing_bytes());
        body.request_id = decision.request_id;
        body.identity_id = decision.identity_id;
        body.authenticator_id = decision.authenticator_id;
        body.outcome = decision.outcome;
        body.kind = decision.kind;
        body.reference_text_sha256 = decision.reference_text_sha256;
        body.service_provider_id = decision.service_provider_id;
        body.counter = decision.counter;
        let signed = SignedReceipt {
            signature: key.sign(&body.signing_bytes()),
            receipt: body.clone(),
        };
        verify_receipt(key.public_key(), &decision, &signed).unwrap();
        let mut other = decision.clone();
        other.counter += 1;
        assert_eq!(
            verify_receipt(key.public_key(), &other, &signed),
            Err(Error::InvalidServerSignature)
        );
        let forged = SignedReceipt {
            signature: SoftwareSigningKey::generate().sign(&body.signing_bytes()),
            receipt: body,
        };
        assert_eq!(
            verify_receipt(key.public_key(), &decision, &forged),
            Err(Error::InvalidServerSignature)
        );
    }
}
