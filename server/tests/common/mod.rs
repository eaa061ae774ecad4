//! A real server on 127.0.0.1 over TLS with a manual clock and a temporary
//! SQLite folder, plus pinned API clients.
#![allow(dead_code, missing_docs, unreachable_pub)]

pub mod hardware;
pub mod soft_chip;

use std::sync::Arc;

use eid_api_client::{AdminClient, ApiFailure, Endpoint, ProviderClient, SoftPhone};
use eid_protocol::wire::ErrorCode;
use eid_protocol::{IdentityId, RequestEnvelopeBody, RequestKind};
use eid_server::{Config, ManualClock, RunningServer, ServerOptions};

pub struct Harness {
    pub server: Option<RunningServer>,
    pub clock: Arc<ManualClock>,
    pub dir: tempfile::TempDir,
    pub endpoint: Endpoint,
    pub admin: AdminClient,
    pub rp: ProviderClient,
    pub rp_name: String,
    pub rp_api_key: String,
}

pub fn config(dir: &std::path::Path) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_owned(),
        ..Config::default()
    }
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Like [`Harness::start`], with `tweak` applied to the configuration.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::starting_now());
        let mut config = config(dir.path());
        tweak(&mut config);
        let server = eid_server::start(ServerOptions {
            config,
            clock: clock.clone(),
        })
        .await
        .unwrap();
        let endpoint = Endpoint::new(&server.base_url(), &server.spki_pin).unwrap();
        let admin = AdminClient::new(endpoint.clone(), &server.admin_token);
        let sp = admin
            .register_service_provider("Nordisk Bank A/S")
            .await
            .unwrap();
        let rp = ProviderClient::new(endpoint.clone(), &sp.api_key);
        Self {
            server: Some(server),
            clock,
            dir,
            endpoint,
            admin,
            rp,
            rp_name: sp.name,
            rp_api_key: sp.api_key,
        }
    }

    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().unwrap()
    }

    /// The server's SQLite database, for what the API does not show.
    pub fn database(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.dir.path().join("eid-server.sqlite3")).unwrap()
    }

    /// The one number `sql` selects from the server's database.
    pub fn count(&self, sql: &str) -> i64 {
        self.database().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    pub fn now(&self) -> u64 {
        use eid_server::Clock;
        self.clock.now_ms()
    }

    /// Creates an identity and activates a soft phone for it.
    pub async fn person(&self, user_id: &str) -> (IdentityId, SoftPhone) {
        let identity = self.admin.create_identity(user_id, None).await.unwrap();
        let phone = self.add_phone(identity.identity_id, user_id).await;
        (identity.identity_id, phone)
    }

    pub async fn add_phone(&self, identity: IdentityId, user_id: &str) -> SoftPhone {
        let code = self.admin.issue_activation_code(identity).await.unwrap();
        let mut phone = SoftPhone::new();
        phone
            .activate(&self.endpoint, user_id, &code.activation_code)
            .await
            .unwrap();
        phone
    }

    /// Creates a login request and returns its envelope as the phone pulls it.
    pub async fn login_request(
        &self,
        user_id: &str,
        phone: &SoftPhone,
        text: &str,
    ) -> RequestEnvelopeBody {
        let created = self
            .rp
            .create_request(user_id, RequestKind::Login, text, None)
            .await
            .unwrap();
        self.envelope(phone, created.request_id).await
    }

    pub async fn envelope(
        &self,
        phone: &SoftPhone,
        id: eid_protocol::RequestId,
    ) -> RequestEnvelopeBody {
        let pulled = SoftPhone::pull(&self.endpoint, &[phone], self.now())
            .await
            .unwrap();
        pulled.accounts[0]
            .requests
            .iter()
            .find(|r| r.envelope.request_id == id)
            .map(|r| r.envelope.clone())
            .expect("request visible in pull")
    }
}

/// Asserts a typed server error with this code.
#[track_caller]
pub fn assert_code<T: std::fmt::Debug>(result: Result<T, ApiFailure>, code: ErrorCode) {
    match result {
        Err(ApiFailure::Server { body, .. }) => {
            assert_eq!(body.error.code, code, "{}", body.error.message)
        }
        other => panic!("expected {code:?}, got {other:?}"),
    }
}
