//! The eID reference server: the identity broker the phone core talks to.
//!
//! Three APIs on one TLS listener:
//! - admin (support): identities, activation codes, blocking, service providers;
//! - device (phones): activation, signed pull, signed decisions;
//! - service provider (banks, agencies): create a request, read or long-poll its
//!   result with a server-signed receipt, cancel.
//!
//! Security events are recorded in an outbox and delivered by SMS and e-mail
//! by a background [`notify::Dispatcher`].
//!
//! The server's clock decides every deadline; storage sits behind [`store::Store`].
#![forbid(unsafe_code)]

pub mod access_code;
pub mod api;
mod cache;
pub mod chip;
pub mod clock;
pub mod code_devices;
pub mod config;
pub mod connections;
pub mod contact;
pub mod effective_config;
pub mod error;
mod ids;
pub mod limits;
pub mod notify;
pub mod oidc;
pub mod policy;
pub mod startup;
pub mod store;
mod texts;
pub mod tls;
pub mod userid;
mod waiters;
mod web;
pub mod webhooks;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use eid_protocol::PublicKey;
use eid_protocol::crash;
use eid_protocol::crypto::SoftwareSigningKey;
use tokio::net::TcpListener;
use tokio::sync::watch;
use zeroize::Zeroizing;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::Config;
pub use connections::{accept_loop, accept_loop_with_limits};
use store::{SqliteStore, Store};

/// What [`start`] needs beyond the configuration.
pub struct ServerOptions {
    /// The configuration.
    pub config: Config,
    /// The clock (tests inject a [`ManualClock`]).
    pub clock: Arc<dyn Clock>,
}

impl ServerOptions {
    /// Options with the system clock.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            clock: Arc::new(SystemClock),
        }
    }
}

/// A started server. Dropping it does not stop it; call [`RunningServer::shutdown`].
pub struct RunningServer {
    /// The bound address.
    pub addr: SocketAddr,
    /// `sha256/<base64>` SPKI pin of the TLS certificate.
    pub spki_pin: String,
    /// The server's signing public key (envelopes and receipts).
    pub server_public_key: PublicKey,
    /// The admin bearer token.
    pub admin_token: Zeroizing<String>,
    /// The SQLite database file.
    pub database_path: std::path::PathBuf,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer")
            .field("addr", &self.addr)
            .field("spki_pin", &self.spki_pin)
            .finish_non_exhaustive()
    }
}

impl RunningServer {
    /// `https://<addr>`.
    pub fn base_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Stops accepting and closes every connection.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// Writes a file readable only by its owner (also when it existed with a
/// wider mode: `mode` on open applies only to a new file).
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(contents)?;
    file.sync_all()
}

/// The database file's name in the data folder.
const DATABASE_FILE: &str = "eid-server.sqlite3";

/// The files of the data folder that hold secrets or personal data: the
/// database (SQLite gives its `-wal` and `-shm` the main file's mode), the
/// signing key, the admin token and the development TLS key.
const PRIVATE_FILES: &[&str] = &[
    DATABASE_FILE,
    "eid-server.sqlite3-wal",
    "eid-server.sqlite3-shm",
    "server-signing-key.pk8",
    "admin-token",
    "dev-tls-key.pem",
    oidc::ID_TOKEN_KEY_FILE,
    oidc::NEXT_ID_TOKEN_KEY_FILE,
    oidc::PREVIOUS_ID_TOKEN_KEY_FILE,
    oidc::PAIRWISE_KEY_FILE,
    code_devices::seal::KEK_FILE,
];

/// Makes the data folder its owner's alone, whatever the process umask (a
/// library caller may not have set one; `eid-server` and `eid serve` do):
/// the folder 0700, and the database file created 0600 before SQLite opens
/// it. Files left with a wider mode by an earlier version are narrowed.
/// Another local user could otherwise read binding secrets, activation codes
/// and contact data out of the live database.
fn prepare_data_dir(data_dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let mut folder = std::fs::DirBuilder::new();
    folder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        folder.mode(0o700);
    }
    folder
        .create(data_dir)
        .with_context(|| format!("creating data folder {}", data_dir.display()))?;
    let database_path = data_dir.join(DATABASE_FILE);
    let mut database = std::fs::OpenOptions::new();
    database.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        database.mode(0o600);
    }
    database
        .open(&database_path)
        .with_context(|| format!("creating database {}", database_path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let private = |path: &Path, mode: u32| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .with_context(|| format!("making {} private", path.display()))
        };
        private(data_dir, 0o700)?;
        for name in PRIVATE_FILES {
            let path = data_dir.join(name);
            if path.exists() {
                private(&path, 0o600)?;
            }
        }
    }
    Ok(database_path)
}

fn load_or_create_signing_key(data_dir: &Path) -> anyhow::Result<SoftwareSigningKey> {
    let path = data_dir.join("server-signing-key.pk8");
    if path.exists() {
        let bytes = Zeroizing::new(std::fs::read(&path)?);
        return SoftwareSigningKey::from_pkcs8(&bytes)
            .map_err(|_| anyhow::anyhow!("{} is not a P-256 PKCS#8 key", path.display()));
    }
    let key = SoftwareSigningKey::generate();
    write_private_file(&path, key.pkcs8())?;
    Ok(key)
}

fn load_or_create_admin_token(config: &Config) -> anyhow::Result<Zeroizing<String>> {
    if let Some(token) = &config.admin_token {
        anyhow::ensure!(
            token.len() >= 16,
            "admin_token must have at least 16 characters"
        );
        return Ok(Zeroizing::new(token.clone()));
    }
    let path = config.data_dir.join("admin-token");
    if path.exists() {
        return Ok(Zeroizing::new(
            std::fs::read_to_string(&path)?.trim().to_owned(),
        ));
    }
    let token = Zeroizing::new(eid_protocol::wire::b64::encode(
        &eid_protocol::crypto::random_array::<32>(),
    ));
    write_private_file(&path, token.as_bytes())?;
    Ok(token)
}

/// Installs the log subscriber of a server process (`eid-server`, and the
/// CLI's `eid serve`): to stderr, filtered by `EID_LOG` (tracing's
/// `EnvFilter` syntax, e.g. `debug` or `eid_server=debug`; default `info`),
/// as text or one JSON object per line. Colour codes only when stderr is a
/// terminal and `NO_COLOR` is unset or empty (no-color.org), so a log file or
/// a collector gets plain text. Events carry ids,
/// never secrets or contact data. Does nothing when the process already has
/// a subscriber (a test harness's).
pub fn init_logging(format: config::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("EID_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour_wanted());
    // An error only says a subscriber is already installed: that one logs.
    let _ = match format {
        config::LogFormat::Json => builder.json().try_init(),
        config::LogFormat::Text => builder.try_init(),
    };
}

/// Whether the log may carry colour codes: stderr is a terminal and the
/// person has not asked for none with a non-empty `NO_COLOR`.
fn colour_wanted() -> bool {
    let refused = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    std::io::IsTerminal::is_terminal(&std::io::stderr()) && !refused
}

/// Connects to the PostgreSQL database of `database_url` and migrates it;
/// the error says which database (host, port, name: never the password)
/// could not be reached.
async fn open_postgres(
    url: &config::DatabaseUrl,
    pool_size: usize,
) -> anyhow::Result<store::PostgresStore> {
    let pg = store::postgres::parse_database_url(url.expose())?;
    let target = store::postgres::DatabaseTarget::of(&pg);
    tracing::info!(database = %target, "opening the PostgreSQL database");
    store::PostgresStore::connect_with(pg, pool_size)
        .await
        .with_context(|| {
            format!(
                "cannot open the PostgreSQL database at {target} (is it running and reachable?)"
            )
        })
}

/// Links this replica to the others on the same PostgreSQL database: its
/// wake-ups of long-polling service providers and its cache evictions are
/// published to them, and theirs are applied here (docs/architecture.md).
fn join_replicas(pg: &store::PostgresStore, state: api::AppState, shutdown: watch::Receiver<bool>) {
    let delivered = state.clone();
    let resynced = state.clone();
    let handlers = store::postgres::notify::Handlers {
        deliver: Arc::new(move |message: &str| {
            if let Some(id) = waiters::parse_wake(message) {
                delivered.waiters.wake_local(id);
            } else if message == cache::evict_message("identity_ids") {
                delivered.identity_ids.clear_local();
            } else if message == cache::evict_message("service_providers") {
                delivered.service_providers.clear_local();
            } else if message == cache::evict_message("oidc_clients") {
                delivered.oidc_clients.clear_local();
            } else if message == cache::evict_message("provider_names") {
                delivered.provider_names.clear_local();
            } else {
                tracing::debug!("unknown message from another replica ignored");
            }
        }),
        resync: Arc::new(move || {
            resynced.waiters.wake_all_local();
            resynced.identity_ids.clear_local();
            resynced.service_providers.clear_local();
            resynced.oidc_clients.clear_local();
            resynced.provider_names.clear_local();
        }),
    };
    let publish = pg.start_bus(handlers, shutdown);
    state.waiters.attach_peers(publish.clone());
    state
        .identity_ids
        .attach_peers("identity_ids", publish.clone());
    state
        .service_providers
        .attach_peers("service_providers", publish.clone());
    // OIDC clients and providers' names never change today; should an API
    // ever change one, its eviction reaches every replica too.
    state
        .oidc_clients
        .attach_peers("oidc_clients", publish.clone());
    state.provider_names.attach_peers("provider_names", publish);
}

/// Opens the store, loads keys and certificate, binds and serves.
pub async fn start(options: ServerOptions) -> anyhow::Result<RunningServer> {
    let config = options.config;
    // Also for callers that build the configuration in code (`eid serve`),
    // which `Config::load`'s checks never see.
    config.check_profile()?;
    if config.profile == config::Profile::Development {
        tracing::warn!(
            "development profile: the waits that protect people are shortened; never for people"
        );
    }
    anyhow::ensure!(
        config.request_lifetime_secs >= 1,
        "request_lifetime_secs must be at least 1"
    );
    if config.request_lifetime_secs * 1000 != eid_protocol::REQUEST_LIFETIME_MS {
        tracing::warn!(
            secs = config.request_lifetime_secs,
            "request lifetime is not the product's 5 minutes (QA setting)"
        );
    }
    if config.self_service_gap_secs != 3600 && config.profile != config::Profile::Development {
        tracing::warn!(
            secs = config.self_service_gap_secs,
            "self-service gap is not the product's one hour (QA setting)"
        );
    }
    let database_path = prepare_data_dir(&config.data_dir)?;
    // With PostgreSQL, several replicas share the database; the concrete
    // store is kept for their message bus (started below).
    let postgres = match &config.database_url {
        Some(url) => Some(Arc::new(
            open_postgres(url, config.database_pool_size).await?,
        )),
        None => None,
    };
    let store: Arc<dyn Store> = match &postgres {
        Some(pg) => pg.clone(),
        None => Arc::new(SqliteStore::open(&database_path)?),
    };
    let signing_key = Arc::new(load_or_create_signing_key(&config.data_dir)?);
    let id_token_key = Arc::new(oidc::IdTokenKey::load_or_create(&config.data_dir)?);
    let pairwise_key = Arc::new(oidc::PairwiseKey::load_or_create(&config.data_dir)?);
    let kek = Arc::new(code_devices::seal::Kek::load_or_create(&config.data_dir)?);
    let admin_token = load_or_create_admin_token(&config)?;
    let tls = tls::load_or_create(
        config.tls.cert_path.as_deref(),
        config.tls.key_path.as_deref(),
        &config.data_dir,
    )?;
    let server_public_key = signing_key.public_key().clone();

    let state = api::AppState::new(
        store.clone(),
        options.clock.clone(),
        signing_key,
        id_token_key,
        pairwise_key,
        kek,
        &admin_token,
        config.clone(),
    );
    let bus_state = postgres.as_ref().map(|_| state.clone());
    let app = api::app(state);

    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    if let (Some(pg), Some(state)) = (&postgres, bus_state) {
        join_replicas(pg, state, shutdown_rx.clone());
    }

    // Nonces older than the skew window can't be replayed; forget them. The
    // same minute tick records expired self-service changes and deletes
    // expired decoy enrolments and ended OIDC logins.
    let purge_store = store.clone();
    let purge_clock = options.clock.clone();
    let mut purge_shutdown = shutdown_rx.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(60)) => {
                    if let Err(e) = purge_store.purge_nonces(purge_clock.now_ms()).await {
                        tracing::warn!(error = %e, "nonce purge failed");
                    }
                    // Records the expiry of self-service changes (reads
                    // already treat them as expired) and notifies it.
                    match purge_store.expire_changes(purge_clock.now_ms(), 1000).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(expired = n, "self-service changes expired"),
                        Err(e) => tracing::warn!(error = %e, "self-service expiry failed"),
                    }
                    // Decoy enrolments are only needed while they live (a
                    // retry gets the same one back); then they go.
                    match purge_store.purge_decoy_enrolments(purge_clock.now_ms(), 10_000).await {
                        Ok(0) => {}
                        Ok(n) => tracing::debug!(purged = n, "expired decoy enrolments deleted"),
                        Err(e) => tracing::warn!(error = %e, "decoy enrolment purge failed"),
                    }
                    // OIDC logins past their end (and their access
                    // token's) vouch for nothing any more.
                    match purge_store.purge_oidc_logins(purge_clock.now_ms(), 10_000).await {
                        Ok(0) => {}
                        Ok(n) => tracing::debug!(purged = n, "ended OIDC logins deleted"),
                        Err(e) => tracing::warn!(error = %e, "OIDC login purge failed"),
                    }
                }
                _ = purge_shutdown.changed() => break,
            }
        }
    });

    // Security-event notifications (SMS, e-mail): off unless a channel is
    // configured; deliveries wait in the outbox until one is.
    match notify::Dispatcher::from_config(
        store.clone(),
        options.clock.clone(),
        &config.notifications,
    )? {
        Some(dispatcher) => {
            tracing::info!(?dispatcher, "notification dispatcher started");
            tokio::spawn(dispatcher.run(shutdown_rx.clone()));
        }
        None => tracing::info!("no notification channel configured; deliveries wait"),
    }

    // Service providers' webhooks: always on (a provider without one has
    // no deliveries, and an idle poll is one read).
    let webhooks =
        webhooks::WebhookDispatcher::new(store.clone(), options.clock.clone(), &config.webhooks)?;
    tokio::spawn(webhooks.run(shutdown_rx.clone()));

    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
    let connections = config.connections.clone();
    let task = tokio::spawn(async move {
        accept_loop_with_limits(listener, acceptor, app, shutdown_rx, &connections).await;
    });
    tracing::info!(%addr, "eid-server listening");
    Ok(RunningServer {
        addr,
        spki_pin: tls.spki_pin,
        server_public_key,
        admin_token,
        database_path,
        shutdown: shutdown_tx,
        task,
    })
}
