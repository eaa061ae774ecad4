//! Fixture for the phone-core benchmarks (`benches/core.rs`, see
//! `docs/benchmarks.md`): a real `eid-server` started in-process on
//! 127.0.0.1 with TLS and its SQLite files in a temporary folder, and one
//! phone (one core database, one [`SoftwareKeyStore`]) with three activated
//! authenticators and a registered service provider that creates requests through
//! the service-provider API.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use eid_api_client::{AdminClient, Endpoint, ProviderClient};
use eid_core::{App, AuthenticatorInfo, Config, KdfCost, ServerConfig, SoftwareKeyStore};
use eid_protocol::{RequestId, RequestKind};
use eid_server::{RunningServer, ServerOptions};

/// The PIN of every benchmark authenticator.
pub const PIN: &str = "483951";

/// Number of authenticators on the benchmark phone.
pub const AUTHENTICATORS: usize = 3;

/// Pending requests per authenticator in the app-open benchmarks.
pub const PENDING_PER_AUTHENTICATOR: usize = 5;

/// User IDs of the benchmark identities.
const USER_IDS: [&str; AUTHENTICATORS] = ["Anna.Bench-1", "Bent.Bench-2", "Ida.Bench-3"];

/// Boxed error for fixture setup (setup failures abort the benchmark).
pub type SetupError = Box<dyn std::error::Error + Send + Sync>;

/// A running server plus one phone with [`AUTHENTICATORS`] authenticators.
pub struct Fixture {
    server: Option<RunningServer>,
    /// Holds the server's and the phone's files; removed on drop.
    dir: tempfile::TempDir,
    /// Pinned endpoint of the server (for the admin and service-provider clients).
    pub endpoint: Endpoint,
    /// The admin API.
    pub admin: AdminClient,
    /// The service-provider API of the registered service provider.
    pub provider: ProviderClient,
    /// The phone's keystore, shared by every [`App`] the fixture opens
    /// (it stands for the OS keystore, which the app does not open itself).
    pub keystore: Arc<SoftwareKeyStore>,
    /// The phone's core configuration.
    pub config: Config,
    /// The phone's authenticators, in activation order.
    pub authenticators: Vec<AuthenticatorInfo>,
    /// Requests created and possibly still pending, per authenticator.
    created: Vec<Vec<RequestId>>,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture")
            .field("dir", &self.dir.path())
            .field("accounts", &self.authenticators.len())
            .finish_non_exhaustive()
    }
}

impl Fixture {
    /// Starts the server, registers a service provider, creates [`AUTHENTICATORS`]
    /// identities and activates them on one phone whose PIN keys are sealed
    /// with `kdf`. Must run inside a multi-thread tokio runtime (the server
    /// keeps running on it).
    pub async fn start(kdf: KdfCost) -> Result<Self, SetupError> {
        let dir = tempfile::tempdir()?;
        let server = eid_server::start(ServerOptions::new(eid_server::Config {
            listen: "127.0.0.1:0".parse()?,
            data_dir: dir.path().join("server"),
            // Many requests per authenticator: measure throughput, not the
            // MFA-fatigue limits.
            floods: eid_server::config::FloodConfig::rate_limits_off(),
            ..eid_server::Config::default()
        }))
        .await
        .map_err(|e| -> SetupError { e.into() })?;
        let endpoint = Endpoint::new(&server.base_url(), &server.spki_pin)?;
        let admin = AdminClient::new(endpoint.clone(), &server.admin_token);
        let sp = admin.register_service_provider("Nordisk Bank A/S").await?;
        let provider = ProviderClient::new(endpoint.clone(), &sp.api_key);

        let mut config = Config::new(
            dir.path().join("phone").join("core.db"),
            ServerConfig::new(server.base_url(), server.spki_pin.clone()),
        );
        config.kdf = kdf;
        // No minimum read time: the benches measure crypto and I/O, not the
        // person reading the request.
        config.min_read_ms = 0;
        std::fs::create_dir_all(dir.path().join("phone"))?;
        let keystore = Arc::new(SoftwareKeyStore::open(&dir.path().join("phone/keys"))?);
        let phone = App::open(config.clone(), keystore.clone())?;
        let mut authenticators = Vec::new();
        for user in USER_IDS {
            let identity = admin.create_identity(user, None).await?;
            let code = admin.issue_activation_code(identity.identity_id).await?;
            authenticators.push(phone.activate(user, &code.activation_code, PIN).await?);
        }
        Ok(Self {
            server: Some(server),
            dir,
            endpoint,
            admin,
            provider,
            keystore,
            config,
            authenticators,
            created: vec![Vec::new(); AUTHENTICATORS],
        })
    }

    /// Opens the phone's core as the app does at start: opens the database and
    /// builds a new pinned HTTPS client (no connection yet).
    pub fn open_phone(&self) -> Result<App, eid_core::Error> {
        App::open(self.config.clone(), self.keystore.clone())
    }

    /// Creates one login request for authenticator `index` through the service-provider API.
    pub async fn create_request(&mut self, index: usize) -> Result<RequestId, SetupError> {
        let n = self.created[index].len();
        let created = self
            .provider
            .create_request(
                USER_IDS[index],
                RequestKind::Login,
                &format!("Log på Netbank ({n})"),
                None,
            )
            .await?;
        self.created[index].push(created.request_id);
        Ok(created.request_id)
    }

    /// Cancels every request the fixture created that may still be pending,
    /// then creates `per_authenticator` fresh ones for each authenticator, so the phone
    /// sees exactly `AUTHENTICATORS * per_authenticator` unexpired requests (requests
    /// live 5 minutes; call this at the start of each benchmark).
    pub async fn refill(&mut self, per_authenticator: usize) -> Result<(), SetupError> {
        for ids in &mut self.created {
            for id in ids.drain(..) {
                // Already decided or expired requests refuse the cancel: fine.
                let _ = self.provider.cancel(id).await;
            }
        }
        for index in 0..AUTHENTICATORS {
            for _ in 0..per_authenticator {
                self.create_request(index).await?;
            }
        }
        Ok(())
    }

    /// The server's base URL.
    pub fn base_url(&self) -> String {
        self.server().base_url()
    }

    /// The server's SPKI pin.
    pub fn spki_pin(&self) -> &str {
        &self.server().spki_pin
    }

    fn server(&self) -> &RunningServer {
        self.server
            .as_ref()
            .expect("the server runs until shutdown")
    }

    /// A reqwest client configured like the core's (same pinned TLS 1.3
    /// config, same timeouts), for measuring the bare loopback round trip.
    pub fn pinned_probe_client(&self) -> Result<reqwest::Client, SetupError> {
        let tls = eid_core::client::pinned_tls_config(self.spki_pin())?;
        Ok(reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .https_only(true)
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .build()?)
    }

    /// Stops the server.
    pub async fn shutdown(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Runs every benchmarked operation once, so `cargo test` checks the fixture.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fixture_supports_every_benchmark() {
        let mut f = Fixture::start(KdfCost::Fixed(1)).await.unwrap();
        f.refill(PENDING_PER_AUTHENTICATOR).await.unwrap();
        let phone = f.open_phone().unwrap();
        let views = phone.refresh().await.unwrap();
        assert_eq!(views.len(), AUTHENTICATORS * PENDING_PER_AUTHENTICATOR);
        assert_eq!(
            phone.refresh().await.unwrap().len(),
            AUTHENTICATORS * PENDING_PER_AUTHENTICATOR
        );
        let authenticator = f.authenticators[1].authenticator_id;
        let request = f.create_request(1).await.unwrap();
        phone.refresh().await.unwrap();
        let token = phone.unlock(&authenticator, &request, PIN).await.unwrap();
        let receipt = phone.approve(&token, true, None).await.unwrap();
        assert_eq!(receipt.receipt.request_id, request);
        let probe = f.pinned_probe_client().unwrap();
        let health = probe
            .get(format!("{}/healthz", f.base_url()))
            .send()
            .await
            .unwrap();
        assert!(health.status().is_success());
        f.refill(0).await.unwrap();
        assert!(phone.refresh().await.unwrap().is_empty());
        f.shutdown().await;
    }
}
