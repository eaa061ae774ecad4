//! Minimum read time (docs/threat-model.md): a scripted or pressured approval right
//! after the request appears is refused; deny and report-fraud never wait.
//! These phones run the core's production default (1500 ms).

use eid_core::{DEFAULT_MIN_READ_MS, Error};
use eid_e2e_tests::{PIN, World};
use eid_protocol::wire::RequestStatus;

const TEXT: &str = "Log på Netbank";

#[tokio::test]
async fn an_instant_approval_is_refused_until_the_request_was_read() {
    let w = World::start().await.unwrap();
    let person = w.person("anna#1990r").await.unwrap();
    let phone = w.phone_configured("reader", |_| {}).unwrap();
    let authenticator = phone
        .app
        .activate(&person.user_id, &person.code, PIN)
        .await
        .unwrap();
    let id = authenticator.authenticator_id;
    let req = w.login(&person.user_id, TEXT).await.unwrap();
    let views = phone.app.refresh().await.unwrap();
    assert_eq!(views.len(), 1);
    let token = phone.app.unlock(&id, &req, PIN).await.unwrap();

    // At once: refused with the full wait; nothing signed or sent.
    assert_eq!(
        phone.app.approve(&token, true, None).await,
        Err(Error::TooFast {
            wait_ms: DEFAULT_MIN_READ_MS
        })
    );
    phone.clock.advance(DEFAULT_MIN_READ_MS - 1);
    assert_eq!(
        phone.app.approve(&token, true, None).await,
        Err(Error::TooFast { wait_ms: 1 })
    );
    // Pulling again does not restart the count (first display counts).
    phone.app.refresh().await.unwrap();
    assert_eq!(phone.app.read_time_left(&id, &req), Ok(1));
    assert_eq!(
        w.rp_status(req, TEXT).await.unwrap().status,
        RequestStatus::Pending
    );

    // Read long enough: the same unlock (not used up) approves, counter 1.
    phone.clock.advance(1);
    let receipt = phone.app.approve(&token, true, None).await.unwrap();
    assert_eq!(receipt.receipt.counter, 1);
    assert_eq!(
        w.rp_status(req, TEXT).await.unwrap().status,
        RequestStatus::Approved
    );
}

#[tokio::test]
async fn deny_and_report_fraud_never_wait_for_the_read_time() {
    let w = World::start().await.unwrap();
    let person = w.person("bo#1985q").await.unwrap();
    let phone = w.phone_configured("refuser", |_| {}).unwrap();
    let id = phone
        .app
        .activate(&person.user_id, &person.code, PIN)
        .await
        .unwrap()
        .authenticator_id;
    let a = w.login(&person.user_id, TEXT).await.unwrap();
    let b = w.login(&person.user_id, "Log på igen").await.unwrap();
    phone.app.refresh().await.unwrap();
    phone.app.deny(&id, &a).await.unwrap();
    phone.app.report_fraud(&id, &b).await.unwrap();
    assert_eq!(
        w.rp_status(a, TEXT).await.unwrap().status,
        RequestStatus::Denied
    );
}

#[tokio::test]
async fn the_read_time_counts_again_after_a_restart_and_from_the_display() {
    let w = World::start().await.unwrap();
    let person = w.person("cila#1970p").await.unwrap();
    let mut phone = w
        .phone_configured("restarter", |c| c.min_read_ms = 800)
        .unwrap();
    let id = phone
        .app
        .activate(&person.user_id, &person.code, PIN)
        .await
        .unwrap()
        .authenticator_id;
    let req = w.login(&person.user_id, TEXT).await.unwrap();
    phone.app.refresh().await.unwrap();
    phone.clock.advance(800);
    assert_eq!(phone.app.read_time_left(&id, &req), Ok(0));
    // A restart forgets what was shown (monotonic time is per process).
    phone.restart().unwrap();
    let token = phone.app.unlock(&id, &req, PIN).await.unwrap();
    // Never displayed in this process: the count starts at the attempt.
    assert_eq!(
        phone.app.approve(&token, true, None).await,
        Err(Error::TooFast { wait_ms: 800 })
    );
    phone.clock.advance(800);
    phone.app.approve(&token, true, None).await.unwrap();
}
