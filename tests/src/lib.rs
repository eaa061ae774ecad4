//! Fixtures for the end-to-end tests: a real `eid-server` on 127.0.0.1 with
//! real TLS and a SQLite file in a temporary folder, phones running the real
//! device core (`eid_core::App`) on their own SQLite files and
//! file-backed software keystores, and a TLS-terminating man in the middle
//! that can tamper with what passes through.
//!
//! Clocks are manual on both sides so expiry and lockout are tested without
//! sleeping; [`World::advance`] moves the server and the given phones together.
#![forbid(unsafe_code)]

pub mod notify;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use eid_api_client::{AdminClient, Endpoint, ProviderClient};
use eid_core::{App, KdfCost, ServerConfig, SoftwareKeyStore};
use eid_protocol::crypto::SoftwareSigningKey;
use eid_protocol::wire::{self, PullResponse, RequestStatusResponse};
use eid_protocol::{AuthenticatorId, IdentityId, PublicKey, RequestId, RequestKind};
use eid_server::{Clock as _, Config, ManualClock, RunningServer, ServerOptions};
use tokio::sync::watch;

/// A PIN that passes the default policy.
pub const PIN: &str = "384726";

/// KDF iterations for test phones: the calibrated production cost would make
/// every PIN check take ~200 ms; the wrapping logic is the same.
pub const TEST_KDF_ITERATIONS: u32 = 2_000;

/// Name of the service provider every world registers.
pub const PROVIDER_NAME: &str = "Nordisk Bank A/S";

/// A minute in milliseconds, the unit of every clock here.
pub const MINUTE_MS: u64 = 60_000;

/// An hour in milliseconds.
pub const HOUR_MS: u64 = 60 * MINUTE_MS;

/// A day in milliseconds.
pub const DAY_MS: u64 = 24 * HOUR_MS;

/// A person known to the server, with a fresh activation code.
#[derive(Debug, Clone)]
pub struct Person {
    /// The identity.
    pub identity_id: IdentityId,
    /// The user ID.
    pub user_id: String,
    /// A fresh activation code.
    pub code: String,
}

/// A running server with admin and service-provider clients.
pub struct World {
    /// Holds the server's data folder and every phone's files.
    pub dir: tempfile::TempDir,
    server: Option<RunningServer>,
    /// Where the server listens (kept across restarts).
    pub addr: SocketAddr,
    /// The server's clock.
    pub clock: Arc<ManualClock>,
    /// The server's TLS pin.
    pub spki_pin: String,
    /// The server's signing key (envelopes and receipts).
    pub server_key: PublicKey,
    /// Admin API client.
    pub admin: AdminClient,
    /// Service-provider API client of [`PROVIDER_NAME`].
    pub rp: ProviderClient,
    /// Changes to the default test configuration, applied on every (re)start.
    configure: ConfigureFn,
}

/// A change to the server's configuration.
pub type ConfigureFn = Arc<dyn Fn(&mut Config) + Send + Sync>;

fn server_config(data_dir: &Path, listen: SocketAddr) -> Config {
    Config {
        listen,
        data_dir: data_dir.to_owned(),
        ..Config::default()
    }
}

impl World {
    /// Starts a server on a free port with a manual clock at the current time.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_configured(Arc::new(|_: &mut Config| {})).await
    }

    /// Like [`World::start`], with `configure` applied to the server's
    /// configuration (now and on every restart).
    pub async fn start_configured(configure: ConfigureFn) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let clock = Arc::new(ManualClock::starting_now());
        let mut config = server_config(&dir.path().join("server"), "127.0.0.1:0".parse()?);
        configure(&mut config);
        let server = eid_server::start(ServerOptions {
            config,
            clock: clock.clone(),
        })
        .await?;
        let endpoint = Endpoint::new(&server.base_url(), &server.spki_pin)?;
        let admin = AdminClient::new(endpoint.clone(), &server.admin_token);
        let sp = admin.register_service_provider(PROVIDER_NAME).await?;
        let rp = ProviderClient::new(endpoint, &sp.api_key);
        Ok(Self {
            addr: server.addr,
            spki_pin: server.spki_pin.clone(),
            server_key: server.server_public_key.clone(),
            server: Some(server),
            dir,
            clock,
            admin,
            rp,
            configure,
        })
    }

    /// Replaces the configuration changes used from the next restart on.
    pub fn reconfigure(&mut self, configure: ConfigureFn) {
        self.configure = configure;
    }

    /// The server's SQLite file (tests inspect the outbox through it).
    pub fn database_path(&self) -> PathBuf {
        self.dir.path().join("server").join("eid-server.sqlite3")
    }

    /// The server's SQLite file opened read-only: what a test checks that no
    /// API shows (the outbox, events, row counts), without taking a write lock
    /// from the running server.
    pub fn read_database(&self) -> anyhow::Result<rusqlite::Connection> {
        Ok(rusqlite::Connection::open_with_flags(
            self.database_path(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?)
    }

    /// How many rows the server's `table` holds.
    pub fn count_rows(&self, table: &str) -> anyhow::Result<i64> {
        let db = self.read_database()?;
        Ok(db.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?)
    }

    /// The server's published API description (`GET /openapi.json`).
    pub async fn openapi(&self) -> anyhow::Result<serde_json::Value> {
        let endpoint = Endpoint::new(&self.base_url(), &self.spki_pin)?;
        Ok(endpoint
            .client
            .get(format!("{}/openapi.json", endpoint.base_url))
            .send()
            .await?
            .json()
            .await?)
    }

    /// `https://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The server's time.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Moves the server's clock and the phones' clocks forward together.
    pub fn advance(&self, ms: u64, phones: &[&Phone]) {
        self.clock.advance_ms(ms);
        for p in phones {
            p.clock.advance(ms);
        }
    }

    /// Creates an identity and issues an activation code.
    pub async fn person(&self, user_id: &str) -> anyhow::Result<Person> {
        let identity_id = self.admin.create_identity(user_id, None).await?.identity_id;
        let code = self.admin.issue_activation_code(identity_id).await?;
        Ok(Person {
            identity_id,
            user_id: user_id.to_owned(),
            code: code.activation_code,
        })
    }

    /// A phone that talks to the server directly.
    pub fn phone(&self, name: &str) -> anyhow::Result<Phone> {
        self.phone_via(name, &self.base_url(), &self.spki_pin)
    }

    /// A phone that talks to `base_url`, pinning `spki_pin` (a man in the
    /// middle, say). Its clock starts at the server's time.
    ///
    /// Harness phones have no minimum read time (`min_read_ms = 0`): the
    /// suites approve right after a refresh and measure the protocol, not the
    /// person. `scenarios_readtime.rs` uses [`World::phone_configured`] with
    /// the production default to prove the refusal.
    pub fn phone_via(&self, name: &str, base_url: &str, spki_pin: &str) -> anyhow::Result<Phone> {
        self.phone_built(name, base_url, spki_pin, |c| c.min_read_ms = 0)
    }

    /// A phone that talks to the server directly, with the core's production
    /// configuration (minimum read time included) changed by `configure`.
    pub fn phone_configured(
        &self,
        name: &str,
        configure: impl FnOnce(&mut eid_core::Config),
    ) -> anyhow::Result<Phone> {
        self.phone_built(name, &self.base_url(), &self.spki_pin, configure)
    }

    fn phone_built(
        &self,
        name: &str,
        base_url: &str,
        spki_pin: &str,
        configure: impl FnOnce(&mut eid_core::Config),
    ) -> anyhow::Result<Phone> {
        let dir = self.dir.path().join("phones").join(name);
        std::fs::create_dir_all(&dir)?;
        let mut server = ServerConfig::new(base_url, spki_pin);
        // Short, so a lost answer shows up quickly as a network error.
        server.request_timeout = Duration::from_secs(2);
        let mut config = eid_core::Config::new(dir.join("core.sqlite3"), server);
        config.kdf = KdfCost::Fixed(TEST_KDF_ITERATIONS);
        configure(&mut config);
        let clock = Arc::new(eid_core::ManualClock::new(self.now_ms()));
        let keystore = Arc::new(SoftwareKeyStore::open(&dir.join("keystore"))?);
        let app = App::open_with_clock(config.clone(), keystore, clock.clone())?;
        Ok(Phone {
            app,
            clock,
            dir,
            config,
        })
    }

    /// A phone with one authenticator activated for a new person.
    pub async fn activated_phone(&self, name: &str, user_id: &str) -> anyhow::Result<Phone> {
        let person = self.person(user_id).await?;
        let phone = self.phone(name)?;
        phone.app.activate(user_id, &person.code, PIN).await?;
        Ok(phone)
    }

    /// A phone `name` activated for `person` with their activation code, and
    /// the authenticator it now holds.
    pub async fn activated_for(
        &self,
        person: &Person,
        name: &str,
    ) -> anyhow::Result<(Phone, AuthenticatorId)> {
        let phone = self.phone(name)?;
        let id = phone
            .app
            .activate(&person.user_id, &person.code, PIN)
            .await?
            .authenticator_id;
        Ok((phone, id))
    }

    /// Another phone for a person who already has one: support issues a new
    /// activation code, and the phone activates with it.
    pub async fn another_phone(&self, person: &Person, name: &str) -> anyhow::Result<Phone> {
        let code = self
            .admin
            .issue_activation_code(person.identity_id)
            .await?
            .activation_code;
        let phone = self.phone(name)?;
        phone.app.activate(&person.user_id, &code, PIN).await?;
        Ok(phone)
    }

    /// The service provider asks `user_id` to log in.
    pub async fn login(&self, user_id: &str, text: &str) -> anyhow::Result<RequestId> {
        Ok(self
            .rp
            .create_request(user_id, RequestKind::Login, text, None)
            .await?
            .request_id)
    }

    /// The service provider's view of a request; checks the receipt if any.
    pub async fn rp_status(
        &self,
        request: RequestId,
        text: &str,
    ) -> anyhow::Result<RequestStatusResponse> {
        let status = self.rp.status(request, 0).await?;
        if let Some(receipt) = &status.receipt {
            eid_api_client::verify_receipt(
                &self.server_key,
                receipt,
                request,
                &eid_protocol::sha256(text.as_bytes()),
            )?;
        }
        Ok(status)
    }

    /// Stops the server (the port stays reserved for [`World::restart_server`]).
    pub async fn stop_server(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }

    /// Starts the server again on the same port, database and certificate.
    pub async fn restart_server(&mut self) -> anyhow::Result<()> {
        self.stop_server().await;
        let mut config = server_config(&self.dir.path().join("server"), self.addr);
        (self.configure)(&mut config);
        let server = eid_server::start(ServerOptions {
            config,
            clock: self.clock.clone(),
        })
        .await?;
        anyhow::ensure!(server.spki_pin == self.spki_pin, "certificate changed");
        self.server = Some(server);
        Ok(())
    }
}

/// A phone: the device core on its own files, with a manual clock.
pub struct Phone {
    /// The core.
    pub app: App,
    /// The phone's clock.
    pub clock: Arc<eid_core::ManualClock>,
    /// The phone's files.
    pub dir: PathBuf,
    config: eid_core::Config,
}

impl Phone {
    /// A copy of this phone made from its files (database and keystore, so
    /// the device key too) into `name`'s folder: a cloned phone or stolen
    /// key files. Its own core and clock (at this phone's time).
    pub fn cloned(&self, name: &str) -> anyhow::Result<Phone> {
        let dir = self.dir.with_file_name(name);
        copy_dir(&self.dir, &dir)?;
        let mut config = self.config.clone();
        config.db_path = dir.join("core.sqlite3");
        let (wall, mono) = (
            eid_core::Clock::wall_ms(self.clock.as_ref()),
            eid_core::Clock::monotonic_ms(self.clock.as_ref()),
        );
        let clock = Arc::new(eid_core::ManualClock::new(wall - mono));
        clock.advance(mono);
        let keystore = Arc::new(SoftwareKeyStore::open(&dir.join("keystore"))?);
        let app = App::open_with_clock(config.clone(), keystore, clock.clone())?;
        Ok(Phone {
            app,
            clock,
            dir,
            config,
        })
    }

    /// Simulates an app restart (or kill -9): a new core on the same files,
    /// with a keystore reloaded from disk. The clock keeps running.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        let keystore = Arc::new(SoftwareKeyStore::open(&self.dir.join("keystore"))?);
        self.app = App::open_with_clock(self.config.clone(), keystore, self.clock.clone())?;
        Ok(())
    }
}

/// What the man in the middle does to traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    /// Forwards faithfully.
    Nothing,
    /// Rewrites the reference text of pulled requests (keeps the signature).
    ChangeReferenceText,
    /// Rewrites the reference text and re-signs the envelope with its own key.
    ForgeSignature,
    /// Forwards activations and decisions but never answers them (the
    /// answer is lost after the server committed).
    SwallowAnswers,
}

/// The text the man in the middle puts in.
pub const TAMPERED_TEXT: &str = "Log på Nordisk Bank";

/// A TLS-terminating proxy with its own certificate in front of the server.
/// A phone that pins the proxy's key models an attacker who controls the
/// TLS front end; a phone that pins the server's key must refuse it.
pub struct Mitm {
    /// `https://127.0.0.1:PORT` of the proxy.
    pub base_url: String,
    /// The proxy's own TLS pin.
    pub spki_pin: String,
    tamper: Arc<Mutex<Tamper>>,
    shutdown: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

#[derive(Clone)]
struct ProxyState {
    upstream: Endpoint,
    tamper: Arc<Mutex<Tamper>>,
    forger: Arc<SoftwareSigningKey>,
}

impl Mitm {
    /// Starts a proxy in front of `world`'s server.
    pub async fn start(world: &World, tamper: Tamper) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let tls = eid_server::tls::load_or_create(None, None, dir.path())?;
        Self::start_with_tls(world, tamper, tls.config, tls.spki_pin, dir).await
    }

    /// Starts a proxy in front of `world`'s server that presents `config`
    /// (any certificate chain, any TLS versions); `spki_pin` is reported as
    /// its pin. `dir` is kept until the proxy is dropped.
    pub async fn start_with_tls(
        world: &World,
        tamper: Tamper,
        config: Arc<tokio_rustls::rustls::ServerConfig>,
        spki_pin: String,
        dir: tempfile::TempDir,
    ) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let tamper = Arc::new(Mutex::new(tamper));
        let state = ProxyState {
            upstream: Endpoint::new(&world.base_url(), &world.spki_pin)?,
            tamper: tamper.clone(),
            forger: Arc::new(SoftwareSigningKey::generate()),
        };
        let app = axum::Router::new().fallback(forward).with_state(state);
        let (shutdown, shutdown_rx) = watch::channel(false);
        tokio::spawn(eid_server::accept_loop(
            listener,
            tokio_rustls::TlsAcceptor::from(config),
            app,
            shutdown_rx,
        ));
        Ok(Self {
            base_url: format!("https://{addr}"),
            spki_pin,
            tamper,
            shutdown,
            _dir: dir,
        })
    }

    /// Changes what the proxy does from now on.
    pub fn set(&self, tamper: Tamper) {
        *self.tamper.lock().expect("tamper lock") = tamper;
    }
}

impl Drop for Mitm {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

async fn forward(
    axum::extract::State(state): axum::extract::State<ProxyState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, Bytes) {
    let tamper = *state.tamper.lock().expect("tamper lock");
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let mut request = state
        .upstream
        .client
        .request(method, format!("{}{}", state.upstream.base_url, path))
        .body(body);
    for (name, value) in &headers {
        let keep =
            name == "content-type" || name == "authorization" || name.as_str().starts_with("eid-");
        if keep {
            request = request.header(name, value);
        }
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(_) => return (StatusCode::BAD_GATEWAY, HeaderMap::new(), Bytes::new()),
    };
    let status = response.status();
    let mut out_headers = HeaderMap::new();
    if let Some(ct) = response.headers().get("content-type") {
        out_headers.insert("content-type", ct.clone());
    }
    let bytes = response.bytes().await.unwrap_or_default();
    let swallow = tamper == Tamper::SwallowAnswers
        && (uri.path() == wire::PATH_ACTIVATE || uri.path() == wire::PATH_DECISIONS);
    if swallow {
        // The server has committed; the phone never hears back.
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    let tampering = matches!(tamper, Tamper::ChangeReferenceText | Tamper::ForgeSignature);
    if tampering
        && uri.path() == wire::PATH_PULL
        && status.is_success()
        && let Ok(mut pulled) = serde_json::from_slice::<PullResponse>(&bytes)
    {
        for authenticator in &mut pulled.accounts {
            for signed in &mut authenticator.requests {
                signed.envelope.reference_text = TAMPERED_TEXT.to_owned();
                if tamper == Tamper::ForgeSignature {
                    signed.signature = state.forger.sign(&signed.envelope.signing_bytes());
                }
            }
        }
        if let Ok(body) = serde_json::to_vec(&pulled) {
            return (status, out_headers, Bytes::from(body));
        }
    }
    (status, out_headers, bytes)
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
