//! The eID reference server: the identity broker the phone core talks to.
//!
//! Three APIs on one TLS listener:
//! - admin (support): identities, activation codes, blocking, service providers;
//! - device (phones): activation, signed pull, signed decisions;
//! - relying party (banks, agencies): create a request, read or long-poll its
//!   result with a server-signed receipt, cancel.
//!
//! Security events are recorded in an outbox and delivered by SMS and e-mail
//! by a background [`notify::Dispatcher`].
//!
//! The server's clock decides every deadline; storage sits behind [`store::Store`].
#![forbid(unsafe_code)]

pub mod api;
mod cache;
pub mod clock;
pub mod config;
pub mod contact;
mod crash;
pub mod error;
pub mod limits;
pub mod notify;
pub mod policy;
pub mod store;
mod texts;
pub mod tls;
pub mod userid;
mod waiters;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use eid_protocol::PublicKey;
use eid_protocol::crypto::SoftwareSigningKey;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use zeroize::Zeroizing;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::Config;
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

/// Writes a file readable only by its owner.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
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

/// Opens the store, loads keys and certificate, binds and serves.
pub async fn start(options: ServerOptions) -> anyhow::Result<RunningServer> {
    let config = options.config;
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
    if config.self_service_gap_secs != 3600 {
        tracing::warn!(
            secs = config.self_service_gap_secs,
            "self-service gap is not the product's one hour (QA setting)"
        );
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data folder {}", config.data_dir.display()))?;
    let database_path = config.data_dir.join("eid-server.sqlite3");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&database_path)?);
    let signing_key = Arc::new(load_or_create_signing_key(&config.data_dir)?);
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
        &admin_token,
        config.clone(),
    );
    let app = api::router(state);

    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    // Nonces older than the skew window can't be replayed; forget them. The
    // same minute tick records expired self-service changes.
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

    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
    let task = tokio::spawn(accept_loop(listener, acceptor, app, shutdown_rx));
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

/// Serves `app` over TLS on `listener` until `shutdown` changes: the server's
/// own accept loop (TCP_NODELAY, handshake timeout, HTTP/1.1 and HTTP/2).
/// Public so test fixtures (a man in the middle, say) serve like the server.
pub async fn accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    app: axum::Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (tcp, _peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Without TCP_NODELAY the TLS handshake's small writes wait on delayed
        // ACKs and every new connection stalls by about 40 ms.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "set_nodelay failed");
        }
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(app.clone());
        connections.spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
    connections.shutdown().await;
}
