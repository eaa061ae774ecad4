//! A phone with one activated authenticator, for the unit tests of the
//! [`App`] subjects (the server is unreachable: every network call
//! fails, which the tests use to check what is stored before sending).

use std::sync::Arc;

use eid_protocol::crypto::SoftwareSigningKey;
use eid_protocol::wire::SignedEnvelope;
use eid_protocol::{
    AuthenticatorId, IdentityId, RequestEnvelopeBody, RequestId, RequestKind, ServiceProviderId,
};

use crate::store::{AuthenticatorRow, AuthenticatorState, Store};
use crate::{
    App, Clock, Config, KdfCost, KeyStore, ManualClock, ServerConfig, SoftwareKeyStore, pin,
};

/// The wall clock when each test starts (Unix ms).
pub(crate) const T0: u64 = 1_800_000_000_000;
/// The authenticator's PIN.
pub(crate) const PIN: &str = "483951";

/// A database with one active authenticator (the PIN key sealed under [`PIN`]),
/// its keystore, a manual clock and the server key that signs requests.
pub(crate) struct Fixture {
    _dir: tempfile::TempDir,
    pub(crate) config: Config,
    pub(crate) keystore: Arc<SoftwareKeyStore>,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) server: SoftwareSigningKey,
    pub(crate) authenticator: AuthenticatorId,
    pub(crate) device_alias: String,
}

impl Fixture {
    /// Opens the core on the fixture's database, keystore and clock.
    pub(crate) fn open(&self) -> App {
        App::open_with_clock(
            self.config.clone(),
            self.keystore.clone(),
            self.clock.clone(),
        )
        .unwrap()
    }

    /// Stores a login request signed by the server key, as if pulled now.
    pub(crate) fn add_request(&self, auth: &App, text: &str) -> RequestId {
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
                &self.authenticator,
                &all,
                self.clock.wall_ms(),
                self.clock.wall_ms(),
            )
            .unwrap();
        id
    }
}

/// A fresh [`Fixture`] in a temporary directory.
pub(crate) fn fixture() -> Fixture {
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
    let authenticator = AuthenticatorId::random();
    let row = AuthenticatorRow {
        authenticator_id: authenticator,
        identity_id: IdentityId([2; 16]),
        user_id: "Anna#2024".into(),
        server_public_key: server.public_key().clone(),
        device_key_alias: device_alias.clone(),
        pin_wrap_alias: wrap_alias,
        pin_public_key: pin_key.public_key().clone(),
        decision_counter: 0,
        state: AuthenticatorState::Active,
        created_at_ms: T0,
    };
    Store::open(&config.db_path)
        .unwrap()
        .insert_authenticator(&row, &wrapped)
        .unwrap();
    Fixture {
        _dir: dir,
        config,
        keystore,
        clock,
        server,
        authenticator,
        device_alias,
    }
}
