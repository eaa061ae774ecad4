//! Crash consistency with several replicas on one PostgreSQL database: a
//! replica process (`eid-server`, built with the fail points of
//! docs/reliability.md) is killed with SIGKILL in the middle of its work
//! while another replica, in this process, goes on. Nothing acknowledged is
//! lost and nothing is decided or sent twice.
//!
//! Needs `EID_TEST_DATABASE_URL` (scripts/with-postgres.sh): skipped loudly
//! without it, a failure in CI.
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eid_api_client::{AdminClient, Endpoint, ProviderClient, SoftPhone};
use eid_protocol::wire::RequestStatus;
use eid_protocol::{Outcome, RequestKind};
use eid_server::config::DatabaseUrl;
use eid_server::store::postgres::testing::{ScratchDatabase, test_database_url};
use eid_server::{Clock, Config, ServerOptions, SystemClock};

const USER: &str = "Anna#1980x";
const SIGKILL: i32 = 9;

/// A replica in its own process on the shared data folder and database;
/// the URL is passed in its environment, never on its command line.
struct Replica {
    child: Child,
    base_url: String,
}

impl Replica {
    fn start(data_dir: &Path, database_url: &str, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_eid-server"))
            .env("EID_SERVER_DATA_DIR", data_dir)
            .env("EID_SERVER_LISTEN", "127.0.0.1:0")
            .env("EID_SERVER_DATABASE_URL", database_url)
            .env("EID_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base_url = line
            .trim()
            .strip_prefix("eid-server listening on ")
            .unwrap_or_else(|| panic!("eid-server did not start: {line:?}"))
            .to_owned();
        Self { child, base_url }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_after_committing_a_decision_loses_nothing_and_a_resend_elsewhere_gets_the_same_receipt()
 {
    let Some(url) = test_database_url() else {
        return;
    };
    let db = ScratchDatabase::create(&url).await;
    let database_url = db.url(&url);
    let dir = tempfile::tempdir().unwrap();
    // The in-process replica first: it creates the keys the other loads.
    let survivor = eid_server::start(ServerOptions {
        config: Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_owned(),
            database_url: Some(DatabaseUrl::new(database_url.clone())),
            ..Config::default()
        },
        clock: Arc::new(SystemClock),
    })
    .await
    .unwrap();
    let mut doomed = Replica::start(
        dir.path(),
        &database_url,
        &[("EID_CRASH_AT", "server.decision.committed")],
    );
    let here = Endpoint::new(&survivor.base_url(), &survivor.spki_pin).unwrap();
    let there = Endpoint::new(&doomed.base_url, &survivor.spki_pin).unwrap();
    let admin = AdminClient::new(here.clone(), &survivor.admin_token);
    let sp = admin
        .register_service_provider("Nordisk Bank A/S")
        .await
        .unwrap();
    let identity = admin.create_identity(USER, None).await.unwrap();
    let code = admin
        .issue_activation_code(identity.identity_id)
        .await
        .unwrap();
    let mut phone = SoftPhone::new();
    phone
        .activate(&here, USER, &code.activation_code)
        .await
        .unwrap();
    let rp = ProviderClient::new(here.clone(), &sp.api_key);
    let created = rp
        .create_request(USER, RequestKind::Login, "Log ind hos Nordisk Bank", None)
        .await
        .unwrap();
    let pulled = SoftPhone::pull(&here, &[&phone], SystemClock.now_ms())
        .await
        .unwrap();
    let envelope = pulled.accounts[0].requests[0].envelope.clone();
    let decision = phone.decide(&envelope, Outcome::Approve, None, true);

    // The doomed replica commits the approval and dies before answering.
    phone
        .submit(&there, &decision)
        .await
        .expect_err("no answer from a killed replica");
    let status = doomed.child.wait().unwrap();
    assert_eq!(status.signal(), Some(SIGKILL), "{status:?}");

    // The approval is there, once; the phone's resend to the surviving
    // replica gets the very receipt the dead one signed.
    let receipt = phone.submit(&here, &decision).await.unwrap();
    assert_eq!(receipt.receipt.outcome, Outcome::Approve);
    let again = phone.submit(&here, &decision).await.unwrap();
    assert_eq!(again, receipt, "the same receipt on every resend");
    let seen = rp.status(created.request_id, 0).await.unwrap();
    assert_eq!(seen.status, RequestStatus::Approved);

    let (client, connection) = db.config().connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let rows: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM decisions WHERE request_id = $1",
            &[&created.request_id.as_bytes().as_slice()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1, "one decision row");
    drop(client);
    survivor.shutdown().await;
}

/// An SMS gateway that records every message and holds its answer to the
/// first one for `hold`, so a sender can be killed in the middle of it.
async fn slow_sms_gateway(
    hold: Duration,
) -> (String, Arc<std::sync::Mutex<Vec<serde_json::Value>>>) {
    let received = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/sms",
        axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let sink = Arc::clone(&sink);
            async move {
                let first = {
                    let mut all = sink.lock().unwrap();
                    all.push(body);
                    all.len() == 1
                };
                if first {
                    tokio::time::sleep(hold).await;
                }
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
async fn a_replica_killed_in_the_middle_of_a_send_loses_no_notification_and_another_sends_it_after_the_lease()
 {
    let Some(url) = test_database_url() else {
        return;
    };
    let db = ScratchDatabase::create(&url).await;
    let database_url = db.url(&url);
    let dir = tempfile::tempdir().unwrap();
    let (sms_url, received) = slow_sms_gateway(Duration::from_secs(30)).await;
    // The in-process replica sends no SMS (no gateway configured): only the
    // replica processes do.
    let admin_replica = eid_server::start(ServerOptions {
        config: Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_owned(),
            database_url: Some(DatabaseUrl::new(database_url.clone())),
            ..Config::default()
        },
        clock: Arc::new(SystemClock),
    })
    .await
    .unwrap();
    let sender_env = [
        ("EID_SERVER_NOTIFICATIONS__SMS__URL", sms_url.as_str()),
        ("EID_SERVER_NOTIFICATIONS__POLL_INTERVAL_MS", "50"),
        ("EID_SERVER_NOTIFICATIONS__LEASE_SECS", "2"),
    ];
    let mut first = Replica::start(dir.path(), &database_url, &sender_env);
    let here = Endpoint::new(&admin_replica.base_url(), &admin_replica.spki_pin).unwrap();
    let admin = AdminClient::new(here, &admin_replica.admin_token);
    let identity = admin
        .create_identity_with(&eid_protocol::wire::CreateIdentityRequest {
            user_id: USER.into(),
            display_name: None,
            phone: Some("+4520304050".into()),
            email: None,
        })
        .await
        .unwrap();
    admin
        .block(identity.identity_id, "test: crash mid-send")
        .await
        .unwrap();
    // The first sender is in the middle of its send: the gateway has the
    // message and holds the answer. Kill it there.
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the first sender never sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.child.kill().unwrap();
    let status = first.child.wait().unwrap();
    assert_eq!(status.signal(), Some(SIGKILL));
    // Unacknowledged, so not lost: another replica sends it again once the
    // dead one's lease is over, and only then.
    let killed_at = Instant::now();
    let _second = Replica::start(dir.path(), &database_url, &sender_env);
    let deadline = Instant::now() + Duration::from_secs(15);
    while received.lock().unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "the notification was lost");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        killed_at.elapsed() >= Duration::from_secs(1),
        "sent again only after the lease"
    );
    // Delivered now: never a third time.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let all = received.lock().unwrap().clone();
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[0], all[1], "the same notification");
    assert_eq!(all[0]["to"], "+4520304050");
    admin_replica.shutdown().await;
}
