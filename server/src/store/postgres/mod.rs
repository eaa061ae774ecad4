//! The PostgreSQL backend of [`Store`], for several stateless replicas on
//! one database (see docs/architecture.md and docs/scaling.md).
//!
//! [`PostgresStore`] answers each trait method by running one subject
//! file's transaction function (the same subjects and the same SQL shape
//! as the SQLite backend's, in PostgreSQL's dialect) through
//! `connection.rs`: writes in `SERIALIZABLE` transactions run again on a
//! serialization conflict, or at `READ COMMITTED` on the row locks they
//! take where that is enough (the hot ones: a decision, a request's
//! creation; each says why), reads in one `REPEATABLE READ` snapshot (or
//! alone, one statement), outbox claims at `READ COMMITTED` with `FOR
//! UPDATE SKIP LOCKED`; the statements of one call pipelined. The business
//! rules come from [`crate::policy`], as for every backend.
//!
//! The driver is tokio-postgres with the deadpool-postgres pool: both
//! maintained, async (no thread per connection), with a per-connection
//! statement cache; TLS to the database goes through tokio-postgres-rustls
//! on the rustls the server already uses.

mod audit;
mod changes;
mod chips;
mod code_devices;
mod columns;
mod connection;
mod enrolments;
mod identities;
pub mod notify;
mod oidc;
mod outbox;
mod providers;
mod requests;
pub mod testing;
#[cfg(test)]
mod tests;
mod webhooks;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use deadpool_postgres::Pool;
use eid_protocol::{AuthenticatorId, ChangeId, IdentityId, Nonce16, RequestId, ServiceProviderId};

use super::*;

/// The migration names, in order (for the test that the SQLite and
/// PostgreSQL directories cannot drift apart).
pub fn migration_names() -> Vec<&'static str> {
    connection::MIGRATIONS
        .iter()
        .map(|(name, _)| *name)
        .collect()
}

/// Where the database is, for logs and errors: host, port and database
/// name, never the user or password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseTarget(String);

impl std::fmt::Display for DatabaseTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for DatabaseTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseTarget({})", self.0)
    }
}

impl DatabaseTarget {
    /// The target of a parsed connection configuration.
    pub fn of(config: &tokio_postgres::Config) -> Self {
        use tokio_postgres::config::Host;
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".to_owned(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let db = config.get_dbname().unwrap_or("(default)");
        Self(format!("{host}:{port}/{db}"))
    }
}

/// The PostgreSQL store.
pub struct PostgresStore {
    pool: Pool,
    target: DatabaseTarget,
    /// For the replicas' bus's own listening connection ([`notify`]).
    config: tokio_postgres::Config,
    tls: Option<rustls::ClientConfig>,
    /// Tests only: [`Store::decide`] reads the decision's context first and
    /// goes through [`Store::decide_judged`], so that the conformance suite
    /// runs the one-statement decision too.
    #[cfg(test)]
    judging: bool,
}

impl std::fmt::Debug for PostgresStore {
    // Host and database only: the URL's password never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.target)
            .finish()
    }
}

/// Parses a `postgres://` URL (or key=value string) without ever echoing
/// it: a parse error could quote the password.
pub fn parse_database_url(url: &str) -> StoreResult<tokio_postgres::Config> {
    url.parse::<tokio_postgres::Config>().map_err(|_| {
        StoreError::PoolSetup(
            "the database URL is not a valid PostgreSQL connection string \
             (postgres://user:password@host:port/database)"
                .to_owned(),
        )
    })
}

/// How often [`Store::decide_judged`] tries the one-statement decision
/// with fresh facts before it takes the longer path.
const AT_ONCE_ATTEMPTS: usize = 3;

/// Connections per replica unless `database_pool_size` says otherwise
/// (docs/scaling.md, "Connection budget"). 8, not 16: on the 2-core
/// development machine, two replicas of 8 cost the database about a sixth
/// less CPU a login than two of 16 (fewer backends to wake and schedule;
/// requests queue in the pool instead), and ten replicas of 8 keep a
/// 32-core primary near 3 active connections a core, the budget's range.
pub const DEFAULT_POOL_SIZE: usize = 8;

/// The most connections `database_pool_size` may ask for per replica: a
/// PostgreSQL backend per connection costs the database memory and
/// scheduling, and a request holds one for well under a millisecond.
pub const MAX_POOL_SIZE: usize = 256;

impl PostgresStore {
    /// Connects to the database at `url` and brings its schema up to date.
    /// TLS is used when the URL asks for it (`sslmode=require`), verified
    /// against the system's roots.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with(parse_database_url(url)?, DEFAULT_POOL_SIZE).await
    }

    /// Like [`PostgresStore::connect`], with a parsed configuration.
    pub async fn connect_with(
        config: tokio_postgres::Config,
        pool_size: usize,
    ) -> StoreResult<Self> {
        let target = DatabaseTarget::of(&config);
        let tls = match config.get_ssl_mode() {
            tokio_postgres::config::SslMode::Require => Some(tls_config()?),
            _ => None,
        };
        let pool = connection::pool(config.clone(), tls.clone(), pool_size)?;
        connection::migrate(&pool).await?;
        Ok(Self {
            pool,
            target,
            config,
            tls,
            #[cfg(test)]
            judging: false,
        })
    }

    /// Host, port and database, for logs.
    pub fn target(&self) -> &DatabaseTarget {
        &self.target
    }
}

/// A rustls client configuration trusting the system's roots.
fn tls_config() -> StoreResult<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A root the platform lists but rustls cannot parse is skipped.
        let _ = roots.add(cert);
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::PoolSetup(format!("TLS to the database: {e}")))
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

/// Runs `$body` (a future using `$t`, the transaction) through `$self.$how`,
/// with the listed captured values cloned for each attempt.
macro_rules! tx {
    ($self:ident . $how:ident, [$($v:ident),*], |$t:ident| $body:expr) => {
        $self
            .$how(move |$t| {
                $(let $v = $v.clone();)*
                Box::pin(async move { $body.await })
            })
            .await
    };
}

impl PostgresStore {
    /// [`Store::decide`]: a first flight of locks and reads, judged here,
    /// then the writes with their follow-ups (`requests::decide`).
    async fn decide_longer(
        &self,
        request_id: RequestId,
        record: DecisionRecord,
        pin_verified: bool,
        now_ms: u64,
    ) -> StoreResult<DecideResult> {
        let receipt_json = serde_json::to_string(&record.receipt)?;
        // At READ COMMITTED on row locks (see `requests::decide`), but for
        // the rare decisions whose follow-ups need the serializable write.
        let (first_json, first_record) = (receipt_json.clone(), record.clone());
        let locked = tx!(self.write_locked, [first_json, first_record], |t| {
            requests::decide(
                t,
                request_id,
                &first_json,
                &first_record,
                pin_verified,
                now_ms,
                true,
            )
        })?;
        if let Some(result) = locked {
            return Ok(result);
        }
        tx!(self.write, [receipt_json, record], |t| {
            requests::decide(
                t,
                request_id,
                &receipt_json,
                &record,
                pin_verified,
                now_ms,
                false,
            )
        })?
        .ok_or(StoreError::Inconsistent("serializable decision undecided"))
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn create_identity(&self, identity: Identity) -> StoreResult<()> {
        tx!(self.write, [identity], |t| identities::create_identity(
            t, identity
        ))
    }

    async fn identity(&self, id: IdentityId) -> StoreResult<Option<Identity>> {
        tx!(self.read_one, [], |t| identities::load_identity(t, &id))
    }

    async fn identity_by_user_id(&self, user_id_folded: &str) -> StoreResult<Option<Identity>> {
        let folded = user_id_folded.to_owned();
        tx!(
            self.read_one,
            [folded],
            |t| identities::identity_by_user_id(t, &folded)
        )
    }

    async fn set_blocked(
        &self,
        id: IdentityId,
        blocked: bool,
        now_ms: u64,
    ) -> StoreResult<Option<Vec<RequestId>>> {
        tx!(self.write, [], |t| identities::set_blocked(
            t, id, blocked, now_ms, None
        ))
    }

    async fn set_notify_every_use(
        &self,
        id: IdentityId,
        on: bool,
        by: AuthenticatorId,
        now_ms: u64,
    ) -> StoreResult<bool> {
        tx!(self.write, [], |t| identities::set_notify_every_use(
            t, id, on, by, now_ms
        ))
    }

    async fn claim_deliveries(
        &self,
        channels: Vec<Channel>,
        now_ms: u64,
        limit: u32,
        lease_ms: u64,
        max_attempts: u32,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        if channels.is_empty() {
            return Ok(Vec::new());
        }
        tx!(self.claim, [channels], |t| outbox::claim_deliveries(
            t,
            &channels,
            now_ms,
            limit,
            lease_ms,
            max_attempts
        ))
    }

    async fn finish_delivery(
        &self,
        id: u64,
        outcome: DeliveryOutcome,
        now_ms: u64,
    ) -> StoreResult<()> {
        tx!(self.claim, [outcome], |t| outbox::finish_delivery(
            t, id, &outcome, now_ms
        ))
    }

    async fn put_activation_code(&self, code: ActivationCode) -> StoreResult<()> {
        tx!(self.write, [code], |t| identities::put_activation_code(
            t, &code
        ))
    }

    async fn activate(
        &self,
        user_id_folded: &str,
        code_sha256_for: Box<dyn Fn(IdentityId) -> [u8; 32] + Send>,
        max_tries: u32,
        now_ms: u64,
        authenticator: Authenticator,
    ) -> StoreResult<ActivationResult> {
        let folded = user_id_folded.to_owned();
        // Shared by the attempts of a transaction run again.
        let hasher = Arc::new(Mutex::new(code_sha256_for));
        let hash_for = move |id: IdentityId| -> [u8; 32] {
            match hasher.lock() {
                Ok(f) => f(id),
                Err(poisoned) => (poisoned.into_inner())(id),
            }
        };
        let hash_for: Arc<dyn Fn(IdentityId) -> [u8; 32] + Send + Sync> = Arc::new(hash_for);
        tx!(self.write, [folded, hash_for, authenticator], |t| {
            identities::activate(t, &folded, &*hash_for, max_tries, now_ms, authenticator)
        })
    }

    async fn authenticators(
        &self,
        ids: Vec<AuthenticatorId>,
    ) -> StoreResult<Vec<Option<Authenticator>>> {
        // One statement each, in one flight.
        tx!(self.read, [ids], |t| futures_util::future::try_join_all(
            ids.iter().map(|id| identities::load_authenticator(t, id))
        ))
    }

    async fn authenticators_of(&self, identity_id: IdentityId) -> StoreResult<Vec<Authenticator>> {
        tx!(self.read_one, [], |t| identities::authenticators_of(
            t,
            identity_id
        ))
    }

    async fn pull_snapshot(
        &self,
        authenticator_ids: Vec<AuthenticatorId>,
        feed: FeedCursors,
        decisions_after: Vec<u64>,
        now_ms: u64,
    ) -> StoreResult<PullSnapshot> {
        if let [only] = authenticator_ids[..] {
            // One account: one statement (see `requests::pull_one`).
            let after = decisions_after.first().copied().unwrap_or(0);
            return tx!(self.read_one, [feed], |t| {
                requests::pull_one(t, None, only, &feed, after, now_ms)
            })?
            .ok_or(StoreError::Inconsistent("a pull without a nonce found one"));
        }
        tx!(self.read, [authenticator_ids, feed, decisions_after], |t| {
            requests::pull_snapshot(t, None, &authenticator_ids, &feed, &decisions_after, now_ms)
        })?
        .ok_or(StoreError::Inconsistent("a pull without a nonce found one"))
    }

    /// The nonce and the reads in one transaction: for one account one
    /// statement in its own implicit transaction (`requests::pull_one`),
    /// for several one `REPEATABLE READ` transaction in two flights (see
    /// `requests::pull_snapshot`), read-write so its `COMMIT` is waited
    /// for. Either way the nonce is durable before the answer, as with
    /// [`Store::use_nonce`] (PostgreSQL has no cheaper kind).
    async fn pull_with_nonce(
        &self,
        nonce: Nonce16,
        keep_until_ms: u64,
        authenticator_ids: Vec<AuthenticatorId>,
        feed: FeedCursors,
        decisions_after: Vec<u64>,
        now_ms: u64,
    ) -> StoreResult<Option<PullSnapshot>> {
        if let [only] = authenticator_ids[..] {
            let after = decisions_after.first().copied().unwrap_or(0);
            return tx!(self.write_one, [feed], |t| {
                requests::pull_one(t, Some((nonce, keep_until_ms)), only, &feed, after, now_ms)
            });
        }
        tx!(
            self.read_writing,
            [authenticator_ids, feed, decisions_after],
            |t| {
                requests::pull_snapshot(
                    t,
                    Some((nonce, keep_until_ms)),
                    &authenticator_ids,
                    &feed,
                    &decisions_after,
                    now_ms,
                )
            }
        )
    }

    async fn decision_context(
        &self,
        request_id: RequestId,
        authenticator_id: AuthenticatorId,
    ) -> StoreResult<DecisionContext> {
        tx!(self.read_one, [], |t| requests::decision_context(
            t,
            request_id,
            authenticator_id
        ))
    }

    async fn use_nonce(&self, nonce: Nonce16, keep_until_ms: u64) -> StoreResult<bool> {
        tx!(self.write_one, [], |t| requests::use_nonce(
            t,
            nonce,
            keep_until_ms
        ))
    }

    async fn nonce_seen(&self, nonce: Nonce16) -> StoreResult<bool> {
        tx!(self.read_one, [], |t| requests::nonce_seen(t, nonce))
    }

    async fn purge_nonces(&self, now_ms: u64) -> StoreResult<u64> {
        tx!(self.write_one, [], |t| requests::purge_nonces(t, now_ms))
    }

    async fn create_service_provider(&self, sp: ServiceProvider) -> StoreResult<()> {
        tx!(self.write, [sp], |t| providers::create_service_provider(
            t, &sp
        ))
    }

    async fn register_service_provider(&self, sp: ServiceProvider) -> StoreResult<RegisterResult> {
        tx!(self.write, [sp], |t| providers::register_service_provider(
            t, &sp
        ))
    }

    async fn service_provider_by_key(
        &self,
        api_key_sha256: [u8; 32],
    ) -> StoreResult<Option<ServiceProvider>> {
        tx!(self.read_one, [], |t| providers::service_provider_by_key(
            t,
            api_key_sha256
        ))
    }

    async fn service_provider(
        &self,
        id: ServiceProviderId,
    ) -> StoreResult<Option<ServiceProvider>> {
        tx!(self.read_one, [], |t| providers::service_provider(t, id))
    }

    async fn provider_by_api_key(&self, key_sha256: [u8; 32]) -> StoreResult<Option<ProviderKey>> {
        tx!(self.read, [], |t| providers::provider_by_api_key(
            t, key_sha256
        ))
    }

    async fn api_keys(&self, service_provider_id: ServiceProviderId) -> StoreResult<Vec<ApiKey>> {
        tx!(self.read_one, [], |t| providers::api_keys(
            t,
            service_provider_id
        ))
    }

    async fn webhook(
        &self,
        service_provider_id: ServiceProviderId,
    ) -> StoreResult<Option<Webhook>> {
        tx!(self.read_one, [], |t| providers::webhook(
            t,
            service_provider_id
        ))
    }

    async fn claim_webhook_deliveries(
        &self,
        now_ms: u64,
        limit: u32,
        lease_ms: u64,
        max_attempts: u32,
    ) -> StoreResult<Vec<ClaimedWebhookDelivery>> {
        tx!(self.claim, [], |t| webhooks::claim(
            t,
            now_ms,
            limit,
            lease_ms,
            max_attempts
        ))
    }

    async fn finish_webhook_delivery(
        &self,
        id: u64,
        outcome: DeliveryOutcome,
        now_ms: u64,
    ) -> StoreResult<()> {
        tx!(self.claim, [outcome], |t| webhooks::finish(
            t, id, &outcome, now_ms
        ))
    }

    async fn create_request_limited(
        &self,
        request: StoredRequest,
        limits: RequestLimits,
        now_ms: u64,
    ) -> StoreResult<CreateResult> {
        Ok(self
            .create_request_durable(request, limits, now_ms)
            .await?
            .0)
    }

    async fn create_request_durable(
        &self,
        request: StoredRequest,
        limits: RequestLimits,
        now_ms: u64,
    ) -> StoreResult<(CreateResult, bool)> {
        let envelope_json = serde_json::to_string(&request.envelope)?;
        // Under the identity's row lock at READ COMMITTED, unless a
        // per-provider window is on (see `requests::create_request_limited`).
        // First in one flight (`requests::create_at_once`); a refusal that
        // needs more (a fraud hold, a full window) is judged afresh in a
        // transaction of its own, as before.
        let locked = limits.per_provider.iter().all(|w| w.limit == 0);
        let (r, j, l) = (request.clone(), envelope_json.clone(), limits.clone());
        let (at_once, durable) = if locked {
            tx!(self.write_locked, [r, j, l], |t| {
                requests::create_at_once(t, &r, &j, &l, now_ms)
            })?
        } else {
            tx!(self.write, [r, j, l], |t| {
                requests::create_at_once(t, &r, &j, &l, now_ms)
            })?
        };
        match at_once {
            requests::CreateAtOnce::Done(result) => return Ok((result, durable)),
            requests::CreateAtOnce::AgainstTheRules => {
                let id = request.envelope.request_id;
                tx!(self.write_locked, [], |t| requests::cancel_pending_request(
                    t, &id
                ))?;
                tracing::error!("a request inserted in one flight against the rules was withdrawn");
                return Err(StoreError::Inconsistent(
                    "a request inserted that the rules refuse",
                ));
            }
            requests::CreateAtOnce::Longer => {}
        }
        let result = if locked {
            tx!(self.write_locked, [request, envelope_json, limits], |t| {
                requests::create_request_limited(t, &request, &envelope_json, &limits, now_ms)
            })?
        } else {
            tx!(self.write, [request, envelope_json, limits], |t| {
                requests::create_request_limited(t, &request, &envelope_json, &limits, now_ms)
            })?
        };
        // The longer path commits only what it wrote; a refusal there ends
        // with `ROLLBACK`.
        Ok((result, durable || result.wrote()))
    }

    async fn request(&self, id: RequestId) -> StoreResult<Option<StoredRequest>> {
        tx!(self.read_one, [], |t| requests::load_request(t, &id))
    }

    /// One round trip when the facts judged are unchanged and no follow-up
    /// applies (`requests::decide_at_once`), the rules judged here each
    /// time (`requests::refusal`); else, or after a few changes of
    /// the facts under it, [`Store::decide`]'s path.
    async fn decide_judged(
        &self,
        request_id: RequestId,
        record: DecisionRecord,
        pin_verified: bool,
        now_ms: u64,
        judged: Option<DecisionFacts>,
    ) -> StoreResult<DecideResult> {
        let Some(mut facts) = judged else {
            return self
                .decide_longer(request_id, record, pin_verified, now_ms)
                .await;
        };
        let receipt_json = serde_json::to_string(&record.receipt)?;
        for attempt in 0..AT_ONCE_ATTEMPTS {
            match requests::refusal(&facts, &record, now_ms) {
                // A refusal of the facts `eid_decide` just found under its
                // locks, with no decision there and no follow-up: what the
                // longer path would answer now.
                Some(refused) if attempt > 0 => return Ok(refused),
                // The caller's facts are older: the longer path judges
                // them afresh (a decision there is `AlreadyDecided`).
                Some(_) => break,
                None if !requests::without_follow_ups(&facts, &record) => break,
                None => {}
            }
            let (json, rec, judged) = (receipt_json.clone(), record.clone(), facts.clone());
            let done = tx!(self.write_one, [json, rec, judged], |t| {
                requests::decide_at_once(t, request_id, &json, &rec, pin_verified, &judged)
            })?;
            match done {
                requests::AtOnce::Written => return Ok(DecideResult::Accepted(record)),
                requests::AtOnce::Vanished => {
                    return Err(StoreError::Inconsistent("request vanished"));
                }
                requests::AtOnce::Longer => break,
                requests::AtOnce::Changed(fresh) => facts = fresh,
            }
        }
        self.decide_longer(request_id, record, pin_verified, now_ms)
            .await
    }

    async fn decide(
        &self,
        request_id: RequestId,
        record: DecisionRecord,
        pin_verified: bool,
        now_ms: u64,
    ) -> StoreResult<DecideResult> {
        #[cfg(test)]
        if self.judging {
            let context = self
                .decision_context(request_id, record.authenticator_id)
                .await?;
            if let (Some(request), Some(authenticator)) = (&context.request, &context.authenticator)
            {
                let judged = DecisionFacts::of(request, authenticator, context.identity.as_ref());
                return self
                    .decide_judged(request_id, record, pin_verified, now_ms, judged)
                    .await;
            }
        }
        self.decide_longer(request_id, record, pin_verified, now_ms)
            .await
    }

    async fn record_binding_mismatch(
        &self,
        request_id: RequestId,
        cancel_at: u32,
        now_ms: u64,
    ) -> StoreResult<u32> {
        tx!(self.write, [], |t| requests::record_binding_mismatch(
            t, request_id, cancel_at, now_ms
        ))
    }

    async fn record_wrong_pin(
        &self,
        id: AuthenticatorId,
        lock_at: u32,
        now_ms: u64,
    ) -> StoreResult<u32> {
        tx!(self.write, [], |t| identities::record_wrong_pin(
            t, id, lock_at, now_ms
        ))
    }

    async fn cancel_request(
        &self,
        id: RequestId,
        service_provider_id: ServiceProviderId,
        now_ms: u64,
    ) -> StoreResult<CancelResult> {
        tx!(self.write, [], |t| requests::cancel_request(
            t,
            id,
            service_provider_id,
            now_ms
        ))
    }

    async fn count_pending(&self, identity_id: IdentityId, now_ms: u64) -> StoreResult<u64> {
        tx!(self.read_one, [], |t| requests::count_pending(
            t,
            identity_id,
            now_ms
        ))
    }

    async fn start_enrolment(
        &self,
        enrolment: Enrolment,
        request: Option<StoredRequest>,
        max_devices: u64,
        max_per_hour: u64,
        now_ms: u64,
    ) -> StoreResult<StartEnrolmentResult> {
        let envelope_json = request
            .as_ref()
            .map(|r| serde_json::to_string(&r.envelope))
            .transpose()?;
        tx!(self.write, [enrolment, envelope_json, request], |t| {
            enrolments::start_enrolment(
                t,
                &enrolment,
                envelope_json.as_deref(),
                request.as_ref(),
                max_devices,
                max_per_hour,
                now_ms,
            )
        })
    }

    async fn enrolment(&self, id: AuthenticatorId) -> StoreResult<Option<Enrolment>> {
        tx!(self.read_one, [], |t| enrolments::load_enrolment(t, &id))
    }

    async fn poll_enrolment(
        &self,
        id: AuthenticatorId,
        max_devices: u64,
        now_ms: u64,
    ) -> StoreResult<EnrolmentPoll> {
        tx!(self.write, [], |t| enrolments::poll_enrolment(
            t,
            id,
            max_devices,
            now_ms
        ))
    }

    async fn cancel_enrolment(
        &self,
        authenticator_id: AuthenticatorId,
        enrolment_id: AuthenticatorId,
        now_ms: u64,
    ) -> StoreResult<CancelEnrolmentResult> {
        tx!(self.write, [], |t| enrolments::cancel_enrolment(
            t,
            authenticator_id,
            enrolment_id,
            now_ms
        ))
    }

    async fn start_change(
        &self,
        change: StoredChange,
        request: StoredRequest,
        max_pending: u64,
        now_ms: u64,
    ) -> StoreResult<StartChangeResult> {
        let envelope_json = serde_json::to_string(&request.envelope)?;
        tx!(self.write, [change, envelope_json, request], |t| {
            changes::start_change(t, &change, &envelope_json, &request, max_pending, now_ms)
        })
    }

    async fn change(&self, id: ChangeId) -> StoreResult<Option<(StoredChange, Identity)>> {
        tx!(self.read, [], |t| changes::change(t, id))
    }

    async fn open_changes(&self, identity_id: IdentityId) -> StoreResult<Vec<StoredChange>> {
        tx!(self.read_one, [], |t| changes::open_changes_of(
            t,
            &identity_id
        ))
    }

    async fn confirm_change(
        &self,
        id: ChangeId,
        request: StoredRequest,
        max_pending: u64,
        now_ms: u64,
    ) -> StoreResult<ConfirmChangeResult> {
        let envelope_json = serde_json::to_string(&request.envelope)?;
        tx!(self.write, [envelope_json, request], |t| {
            changes::confirm_change(t, id, &envelope_json, &request, max_pending, now_ms)
        })
    }

    async fn expire_changes(&self, now_ms: u64, limit: u32) -> StoreResult<u64> {
        tx!(self.write, [], |t| changes::expire_changes(
            t, now_ms, limit
        ))
    }

    async fn purge_decoy_enrolments(&self, now_ms: u64, limit: u32) -> StoreResult<u64> {
        tx!(self.claim, [], |t| enrolments::purge_decoy_enrolments(
            t,
            now_ms,
            u64::from(limit)
        ))
    }

    async fn cancel_change(
        &self,
        id: ChangeId,
        identity_id: IdentityId,
        authenticator_id: AuthenticatorId,
        now_ms: u64,
    ) -> StoreResult<CancelChangeResult> {
        tx!(self.write, [], |t| changes::cancel_change(
            t,
            id,
            identity_id,
            authenticator_id,
            now_ms
        ))
    }

    async fn admin_action(
        &self,
        audit: NewAudit,
        action: AdminAction,
    ) -> StoreResult<AdminActionResult> {
        tx!(self.write, [audit, action], |t| audit::admin_action(
            t, audit, action
        ))
    }

    async fn record_audit(&self, entry: NewAudit) -> StoreResult<u64> {
        tx!(self.write, [entry], |t| audit::insert_audit(t, &entry))
    }

    async fn audit_entries(
        &self,
        identity_id: Option<IdentityId>,
        before: Option<u64>,
        limit: u32,
    ) -> StoreResult<Vec<AuditEntry>> {
        tx!(self.read, [], |t| audit::audit_entries(
            t,
            identity_id,
            before,
            limit
        ))
    }

    async fn agent_by_token(&self, token_sha256: [u8; 32]) -> StoreResult<Option<Agent>> {
        tx!(self.read_one, [], |t| audit::agent_by_token(
            t,
            token_sha256
        ))
    }

    async fn agents(&self) -> StoreResult<Vec<Agent>> {
        tx!(self.read_one, [], |t| audit::agents(t))
    }

    async fn oidc_client(&self, client_id: &str) -> StoreResult<Option<OidcClient>> {
        let client_id = client_id.to_owned();
        tx!(self.read_one, [client_id], |t| oidc::oidc_client(
            t, &client_id
        ))
    }

    async fn create_oidc_login(
        &self,
        login: OidcLogin,
        request_uri_sha256: [u8; 32],
    ) -> StoreResult<()> {
        let params_json = serde_json::to_string(&login.params)?;
        tx!(self.write_one, [login, params_json], |t| {
            oidc::create_oidc_login(t, &login, &params_json, request_uri_sha256)
        })
    }

    async fn bind_oidc_login(
        &self,
        request_uri_sha256: [u8; 32],
        client_id: &str,
        browser_sha256: [u8; 32],
        now_ms: u64,
    ) -> StoreResult<BindLoginResult> {
        let client_id = client_id.to_owned();
        tx!(self.write_locked, [client_id], |t| oidc::bind_oidc_login(
            t,
            request_uri_sha256,
            &client_id,
            browser_sha256,
            now_ms
        ))
    }

    async fn oidc_login(&self, id: LoginId) -> StoreResult<Option<OidcLogin>> {
        tx!(self.read_one, [], |t| oidc::oidc_login(t, id))
    }

    async fn set_oidc_login_request(
        &self,
        id: LoginId,
        previous: Option<RequestId>,
        request_id: RequestId,
        request_expires_at_ms: u64,
    ) -> StoreResult<bool> {
        tx!(self.write_one, [], |t| oidc::set_oidc_login_request(
            t,
            id,
            previous,
            request_id,
            request_expires_at_ms
        ))
    }

    async fn issue_oidc_code(
        &self,
        id: LoginId,
        request_id: RequestId,
        code_sha256: [u8; 32],
        code_expires_at_ms: u64,
    ) -> StoreResult<bool> {
        tx!(self.write_one, [], |t| oidc::issue_oidc_code(
            t,
            id,
            request_id,
            code_sha256,
            code_expires_at_ms
        ))
    }

    async fn oidc_login_by_code(&self, code_sha256: [u8; 32]) -> StoreResult<Option<OidcLogin>> {
        tx!(self.read_one, [], |t| oidc::oidc_login_by_code(
            t,
            code_sha256
        ))
    }

    async fn redeem_oidc_code(
        &self,
        code_sha256: [u8; 32],
        access: Option<([u8; 32], u64)>,
        now_ms: u64,
    ) -> StoreResult<RedeemResult> {
        tx!(self.write_locked, [], |t| oidc::redeem_oidc_code(
            t,
            code_sha256,
            access,
            now_ms
        ))
    }

    async fn oidc_login_by_access_token(
        &self,
        access_sha256: [u8; 32],
    ) -> StoreResult<Option<OidcLogin>> {
        tx!(self.read_one, [], |t| oidc::oidc_login_by_access_token(
            t,
            access_sha256
        ))
    }

    async fn purge_oidc_logins(&self, now_ms: u64, limit: u32) -> StoreResult<u64> {
        tx!(self.write_one, [], |t| oidc::purge_oidc_logins(
            t, now_ms, limit
        ))
    }

    async fn stop_on_call(
        &self,
        request_id: RequestId,
        authenticator_id: AuthenticatorId,
        call_context: eid_protocol::CallContext,
        now_ms: u64,
    ) -> StoreResult<StopResult> {
        let context_json = serde_json::to_string(&call_context)?;
        tx!(self.write, [context_json], |t| requests::stop_on_call(
            t,
            request_id,
            authenticator_id,
            &context_json,
            now_ms
        ))
    }

    async fn call_stop(&self, request_id: RequestId) -> StoreResult<Option<CallStop>> {
        tx!(self.read_one, [], |t| requests::call_stop(t, request_id))
    }

    async fn choose_oidc_login_method(
        &self,
        id: LoginId,
        method: LoginMethod,
        hardware_identity_id: Option<IdentityId>,
    ) -> StoreResult<bool> {
        tx!(self.write_one, [], |t| oidc::choose_oidc_login_method(
            t,
            id,
            method,
            hardware_identity_id
        ))
    }

    async fn pass_oidc_first_factor(
        &self,
        id: LoginId,
        method: LoginMethod,
        first_factor: String,
    ) -> StoreResult<bool> {
        tx!(self.write_one, [first_factor], |t| {
            oidc::pass_oidc_first_factor(t, id, method, &first_factor)
        })
    }

    async fn import_token_batch(
        &self,
        audit: NewAudit,
        batch: TokenBatch,
        devices: Vec<CodeDevice>,
    ) -> StoreResult<ImportResult> {
        tx!(self.write, [audit, batch, devices], |t| {
            code_devices::import_token_batch(t, &audit, &batch, &devices)
        })
    }

    async fn code_device(&self, serial: &str) -> StoreResult<Option<CodeDevice>> {
        let serial = serial.to_owned();
        tx!(self.read, [serial], |t| code_devices::code_device(
            t, &serial
        ))
    }

    async fn code_devices_of(&self, identity_id: IdentityId) -> StoreResult<Vec<CodeDevice>> {
        tx!(self.read_one, [], |t| code_devices::code_devices_of(
            t,
            identity_id
        ))
    }

    async fn use_code_step(
        &self,
        serial: &str,
        identity_id: IdentityId,
        step: u64,
        now_ms: u64,
    ) -> StoreResult<CodeStepResult> {
        let serial = serial.to_owned();
        tx!(self.write, [serial], |t| code_devices::use_code_step(
            t,
            &serial,
            identity_id,
            step,
            now_ms
        ))
    }

    async fn record_code_device_attempt(
        &self,
        serial: &str,
        attempt: CodeAttempt,
        now_ms: u64,
    ) -> StoreResult<AttemptRecorded> {
        let serial = serial.to_owned();
        tx!(self.write, [serial, attempt], |t| {
            code_devices::record_code_device_attempt(t, &serial, attempt, now_ms)
        })
    }

    async fn activate_code_device_by_support(
        &self,
        activation: SupportActivation,
    ) -> StoreResult<SupportActivationResult> {
        let SupportActivation {
            user_id_folded,
            code_sha256_for,
            max_tries,
            serial,
            step,
            access_code_hash,
            now_ms,
        } = activation;
        let activation = code_devices::Activation {
            user_id_folded,
            max_tries,
            serial,
            step,
            access_code_hash,
            now_ms,
        };
        // Shared by the attempts of a transaction run again.
        let hasher = Arc::new(Mutex::new(code_sha256_for));
        let hash_for = move |id: IdentityId| -> [u8; 32] {
            match hasher.lock() {
                Ok(f) => f(id),
                Err(poisoned) => (poisoned.into_inner())(id),
            }
        };
        let hash_for: Arc<dyn Fn(IdentityId) -> [u8; 32] + Send + Sync> = Arc::new(hash_for);
        tx!(self.write, [activation, hash_for], |t| {
            code_devices::activate_code_device_by_support(t, &activation, &*hash_for)
        })
    }

    async fn deactivate_code_device(
        &self,
        identity_id: IdentityId,
        serial: &str,
        now_ms: u64,
    ) -> StoreResult<bool> {
        let serial = serial.to_owned();
        tx!(self.write, [serial], |t| {
            code_devices::deactivate_code_device(t, identity_id, &serial, now_ms)
        })
    }

    async fn use_unassigned_code_step(&self, serial: &str, step: u64) -> StoreResult<bool> {
        let serial = serial.to_owned();
        tx!(self.write, [serial], |t| {
            code_devices::use_unassigned_code_step(t, &serial, step)
        })
    }

    async fn request_code_device_activation(
        &self,
        serial: &str,
        identity_id: IdentityId,
        request_id: RequestId,
        step: u64,
        access_code_hash: crate::access_code::AccessCodeHash,
    ) -> StoreResult<bool> {
        let serial = serial.to_owned();
        tx!(self.write, [serial, access_code_hash], |t| {
            code_devices::request_code_device_activation(
                t,
                &serial,
                identity_id,
                request_id,
                step,
                &access_code_hash,
            )
        })
    }

    async fn complete_oidc_login_by_hardware(
        &self,
        id: LoginId,
        receipt: SignedHardwareReceipt,
        code_sha256: [u8; 32],
        code_expires_at_ms: u64,
    ) -> StoreResult<bool> {
        let method = LoginMethod::parse(&receipt.receipt.method)
            .ok_or(StoreError::Conflict("hardware receipt method"))?;
        let receipt_json = serde_json::to_string(&receipt)?;
        tx!(self.write_one, [receipt_json], |t| {
            oidc::complete_oidc_login_by_hardware(
                t,
                id,
                method,
                &receipt_json,
                code_sha256,
                code_expires_at_ms,
            )
        })
    }

    async fn put_chip_ceremony(&self, ceremony: ChipCeremony, now_ms: u64) -> StoreResult<()> {
        tx!(self.write, [ceremony], |t| chips::put_ceremony(
            t, &ceremony, now_ms
        ))
    }

    async fn take_chip_ceremony(
        &self,
        id: [u8; 16],
        now_ms: u64,
    ) -> StoreResult<Option<ChipCeremony>> {
        tx!(self.write, [], |t| chips::take_ceremony(t, id, now_ms))
    }

    async fn add_chip(&self, chip: Chip, event: NewEvent) -> StoreResult<AddChipResult> {
        tx!(self.write, [chip, event], |t| chips::add_chip(
            t, &chip, &event
        ))
    }

    async fn chips_of(&self, identity_id: IdentityId) -> StoreResult<Vec<Chip>> {
        tx!(self.read_one, [], |t| chips::chips_of(t, identity_id))
    }

    async fn save_chip(&self, chip: Chip, events: Vec<NewEvent>) -> StoreResult<bool> {
        tx!(self.write, [chip, events], |t| chips::save_chip(
            t, &chip, &events
        ))
    }
}
