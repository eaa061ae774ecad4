//! Several replicas of the server on one PostgreSQL database, in this
//! process: each a real server over TLS sharing the data folder's keys and
//! the database (docs/scaling.md). A phone pulls from one, approves on
//! another, and the service provider waits on a third; decisions race over
//! all of them; a user-ID change on one is seen by the others.
//!
//! Needs `EID_TEST_DATABASE_URL` (scripts/with-postgres.sh): skipped loudly
//! without it, a failure in CI.

use std::sync::Arc;
use std::time::{Duration, Instant};

use eid_api_client::{AdminClient, Endpoint, ProviderClient, SelfServiceClient, SoftPhone};
use eid_protocol::wire::RequestStatus;
use eid_protocol::{Outcome, RequestEnvelopeBody, RequestId, RequestKind};
use eid_server::config::DatabaseUrl;
use eid_server::store::postgres::testing::{ScratchDatabase, test_database_url};
use eid_server::{Clock, Config, ManualClock, RunningServer, ServerOptions};

const USER: &str = "Anna#1980x";
const TEXT: &str = "Log ind hos Nordisk Bank";

struct Cluster {
    replicas: Vec<RunningServer>,
    /// The first replica's configuration.
    config: Config,
    endpoints: Vec<Endpoint>,
    clock: Arc<ManualClock>,
    admin: AdminClient,
    api_key: String,
    // Dropped last: the servers close their connections first.
    _dir: tempfile::TempDir,
    _db: ScratchDatabase,
}

impl Cluster {
    /// `n` replicas on a scratch database, or `None` without a test server.
    async fn start(n: usize) -> Option<Self> {
        Self::start_with(n, |_| {}).await
    }

    /// Like [`Cluster::start`], with `tweak` applied to each configuration.
    async fn start_with(n: usize, tweak: impl Fn(&mut Config)) -> Option<Self> {
        let url = test_database_url()?;
        let db = ScratchDatabase::create(&url).await;
        let database_url = db.url(&url);
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::starting_now());
        let mut replicas = Vec::new();
        let mut first = None;
        // One after the other: the first creates the keys the others load.
        for _ in 0..n {
            let mut config = Config {
                listen: "127.0.0.1:0".parse().unwrap(),
                data_dir: dir.path().to_owned(),
                database_url: Some(DatabaseUrl::new(database_url.clone())),
                ..Config::default()
            };
            tweak(&mut config);
            first.get_or_insert_with(|| config.clone());
            replicas.push(
                eid_server::start(ServerOptions {
                    config,
                    clock: clock.clone(),
                })
                .await
                .unwrap(),
            );
        }
        let endpoints: Vec<Endpoint> = replicas
            .iter()
            .map(|r| Endpoint::new(&r.base_url(), &r.spki_pin).unwrap())
            .collect();
        let admin = AdminClient::new(endpoints[0].clone(), &replicas[0].admin_token);
        let sp = admin
            .register_service_provider("Nordisk Bank A/S")
            .await
            .unwrap();
        Some(Self {
            replicas,
            config: first.expect("at least one replica"),
            endpoints,
            clock,
            admin,
            api_key: sp.api_key,
            _dir: dir,
            _db: db,
        })
    }

    fn rp(&self, replica: usize) -> ProviderClient {
        ProviderClient::new(self.endpoints[replica].clone(), &self.api_key)
    }

    /// A person with an activated phone (on replica 0).
    async fn person(&self, user_id: &str) -> SoftPhone {
        let identity = self.admin.create_identity(user_id, None).await.unwrap();
        let code = self
            .admin
            .issue_activation_code(identity.identity_id)
            .await
            .unwrap();
        let mut phone = SoftPhone::new();
        phone
            .activate(&self.endpoints[0], user_id, &code.activation_code)
            .await
            .unwrap();
        phone
    }

    /// The envelope of `id` as the phone pulls it from `replica`.
    async fn pull(&self, replica: usize, phone: &SoftPhone, id: RequestId) -> RequestEnvelopeBody {
        let pulled = SoftPhone::pull(&self.endpoints[replica], &[phone], self.clock.now_ms())
            .await
            .unwrap();
        pulled.accounts[0]
            .requests
            .iter()
            .find(|r| r.envelope.request_id == id)
            .map(|r| r.envelope.clone())
            .expect("the request is in the pull")
    }

    async fn stop(mut self) {
        for r in self.replicas.drain(..) {
            r.shutdown().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_phone_pulls_from_one_replica_approves_on_another_and_the_provider_waiting_on_a_third_wakes()
 {
    let Some(c) = Cluster::start(3).await else {
        return;
    };
    // The banner names the database by host, port and name only.
    let facts = eid_server::startup::StartupFacts::of(&c.replicas[0], &c.config, None);
    let shown = facts.database.display().to_string();
    assert!(shown.starts_with("postgresql://127.0.0.1:"), "{shown}");
    assert!(!shown.contains('@'), "no user or password: {shown}");
    let mut phone = c.person(USER).await;
    let created = c
        .rp(2)
        .create_request(USER, RequestKind::Login, TEXT, None)
        .await
        .unwrap();
    let id = created.request_id;
    // The provider long-polls replica 2 for up to 30 s.
    let waiter = c.rp(2);
    let waiting = tokio::spawn(async move { waiter.status(id, 30).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let envelope = c.pull(0, &phone, id).await;
    let decision = phone.decide(&envelope, Outcome::Approve, None, true);
    phone.submit(&c.endpoints[1], &decision).await.unwrap();
    let decided = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the wait on replica 2 ended well before its 30 s")
        .unwrap()
        .unwrap();
    assert_eq!(status.status, RequestStatus::Approved);
    assert!(
        decided.elapsed() < Duration::from_secs(5),
        "woken by the decision on another replica, not by a timeout: {:?}",
        decided.elapsed()
    );
    c.stop().await;
}

/// A provider's long-poll holds no database connection while it waits:
/// with a pool of one connection, three waiting status calls leave it free
/// for another login on the same replica (created, pulled, decided), and
/// each wait then ends with its own request's decision.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn long_polls_hold_no_pooled_connection_while_they_wait() {
    let Some(c) = Cluster::start_with(1, |config| config.database_pool_size = 1).await else {
        return;
    };
    let mut phone = c.person(USER).await;
    let mut ids = Vec::new();
    let mut waits = Vec::new();
    for _ in 0..3 {
        let created = c
            .rp(0)
            .create_request(USER, RequestKind::Login, TEXT, None)
            .await
            .unwrap();
        let id = created.request_id;
        let waiter = c.rp(0);
        waits.push(tokio::spawn(async move { waiter.status(id, 30).await }));
        ids.push(id);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    for id in ids {
        let envelope = c.pull(0, &phone, id).await;
        let decision = phone.decide(&envelope, Outcome::Approve, None, true);
        phone.submit(&c.endpoints[0], &decision).await.unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the logins waited for a connection: {:?}",
        started.elapsed()
    );
    for wait in waits {
        let status = tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .expect("each wait ends with its decision")
            .unwrap()
            .unwrap();
        assert_eq!(status.status, RequestStatus::Approved);
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_100_concurrent_decisions_spread_over_three_replicas_exactly_one_wins() {
    let Some(c) = Cluster::start(3).await else {
        return;
    };
    let mut phone = c.person(USER).await;
    let created = c
        .rp(0)
        .create_request(USER, RequestKind::Login, TEXT, None)
        .await
        .unwrap();
    let envelope = c.pull(1, &phone, created.request_id).await;
    let decisions: Vec<_> = (0..100)
        .map(|i| {
            let outcome = if i % 2 == 0 {
                Outcome::Approve
            } else {
                Outcome::Deny
            };
            phone.decide(&envelope, outcome, None, true)
        })
        .collect();
    let phone = Arc::new(phone);
    let mut tasks = Vec::new();
    for (i, decision) in decisions.into_iter().enumerate() {
        let endpoint = c.endpoints[i % 3].clone();
        let phone = Arc::clone(&phone);
        tasks.push(tokio::spawn(async move {
            phone.submit(&endpoint, &decision).await.map(|r| r.receipt)
        }));
    }
    let mut won = Vec::new();
    for t in tasks {
        if let Ok(receipt) = t.await.unwrap() {
            won.push(receipt);
        }
    }
    assert_eq!(won.len(), 1, "exactly one decision wins");
    let status = c.rp(2).status(created.request_id, 0).await.unwrap();
    let expected = if won[0].outcome == Outcome::Approve {
        RequestStatus::Approved
    } else {
        RequestStatus::Denied
    };
    assert_eq!(
        status.status, expected,
        "the winner's outcome is the stored one"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_id_change_on_one_replica_is_seen_by_the_others_at_once() {
    let Some(c) = Cluster::start(3).await else {
        return;
    };
    let mut phone = c.person(USER).await;
    // Replicas 1 and 2 now know (and cache) the old user ID.
    for replica in [1, 2] {
        let r = c
            .rp(replica)
            .create_request(USER, RequestKind::Login, TEXT, None)
            .await
            .unwrap();
        c.rp(replica).cancel(r.request_id).await.unwrap();
    }
    let portal = SelfServiceClient::new(c.endpoints[0].clone());
    let step = portal
        .start_user_id_change(USER, "Ny#Bruger2026")
        .await
        .unwrap();
    let envelope = c.pull(0, &phone, step.request_id).await;
    let decision = phone.decide(
        &envelope,
        Outcome::Approve,
        Some(step.binding_code.clone()),
        true,
    );
    phone.submit(&c.endpoints[0], &decision).await.unwrap();
    let changed = Instant::now();
    // The other replicas stop answering to the old user ID at once (the
    // eviction reaches them in milliseconds; without it their cache would
    // keep the old one for ever).
    for replica in [1, 2] {
        loop {
            let old = c
                .rp(replica)
                .create_request(USER, RequestKind::Login, TEXT, None)
                .await;
            match old {
                Err(e) => {
                    assert!(
                        e.to_string().contains("no identity has this user ID"),
                        "{e}"
                    );
                    break;
                }
                Ok(r) => {
                    c.rp(replica).cancel(r.request_id).await.unwrap();
                    assert!(
                        changed.elapsed() < Duration::from_secs(2),
                        "replica {replica} still knows the old user ID"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        c.rp(replica)
            .create_request("NY#BRUGER2026", RequestKind::Login, TEXT, None)
            .await
            .unwrap();
    }
    c.stop().await;
}

/// An SMS gateway on 127.0.0.1 that records every message it is sent.
async fn sms_gateway() -> (String, Arc<std::sync::Mutex<Vec<serde_json::Value>>>) {
    let received = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/sms",
        axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let sink = Arc::clone(&sink);
            async move {
                sink.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/sms", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dispatchers_of_three_replicas_send_each_notification_exactly_once() {
    let (url, received) = sms_gateway().await;
    let Some(c) = Cluster::start_with(3, |config| {
        config.notifications.poll_interval_ms = 20;
        config.notifications.batch_size = 4;
        config.notifications.sms = Some(eid_server::config::SmsWebhookConfig {
            url: url.clone(),
            bearer_token: None,
            timeout_secs: 5,
        });
    })
    .await
    else {
        return;
    };
    const PEOPLE: usize = 30;
    let mut identities = Vec::new();
    for i in 0..PEOPLE {
        let created = c
            .admin
            .create_identity_with(&eid_protocol::wire::CreateIdentityRequest {
                user_id: format!("Person#{i:04}x"),
                display_name: None,
                phone: Some(format!("+452{i:07}")),
                email: None,
            })
            .await
            .unwrap();
        identities.push(created.identity_id);
    }
    // Each block is an event with one SMS, recorded on one of the replicas;
    // all three dispatchers poll the same outbox.
    for (i, identity) in identities.iter().enumerate() {
        let admin = AdminClient::new(c.endpoints[i % 3].clone(), &c.replicas[0].admin_token);
        admin.block(*identity, "test: outbox").await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while received.lock().unwrap().len() < PEOPLE && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Time for a duplicate to show up, were there one.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = received.lock().unwrap().clone();
    let mut to: Vec<String> = received
        .iter()
        .map(|m| m["to"].as_str().unwrap().to_owned())
        .collect();
    to.sort();
    let sent = to.len();
    to.dedup();
    assert_eq!(to.len(), PEOPLE, "every notification sent");
    assert_eq!(sent, PEOPLE, "none sent twice");
    c.stop().await;
}

#[tokio::test]
async fn an_unreachable_database_at_start_is_a_clear_error_that_names_no_password() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_owned(),
        database_url: Some(DatabaseUrl::new(format!(
            "postgres://eid:hunter2-secret@127.0.0.1:{port}/eiddb"
        ))),
        ..Config::default()
    };
    assert!(!format!("{config:?}").contains("hunter2"), "{config:?}");
    let err = eid_server::start(ServerOptions::new(config))
        .await
        .expect_err("no database there");
    let text = format!("{err:#} {err:?}");
    assert!(text.contains(&format!("127.0.0.1:{port}/eiddb")), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}
