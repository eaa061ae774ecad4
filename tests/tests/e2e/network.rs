//! The server down or the answer lost: a clear network error, and nothing
//! lost. A decision signed before the failure is resent unchanged and gets
//! the same receipt.

use eid_core::Error;
use eid_e2e_tests::{Mitm, PIN, Tamper, World};
use eid_protocol::wire::RequestStatus;

const USER: &str = "grete#1950x";
const TEXT: &str = "Log på Nordisk Netbank";

#[tokio::test]
async fn with_the_server_down_errors_are_clear_and_the_decision_is_kept() {
    let mut w = World::start().await.unwrap();
    let mut phone = w.activated_phone("grete", USER).await.unwrap();
    let acc = phone.app.authenticators().unwrap()[0].authenticator_id;
    let request = w.login(USER, TEXT).await.unwrap();
    phone.app.refresh().await.unwrap();

    w.stop_server().await;
    let err = phone.app.refresh().await.unwrap_err();
    assert!(matches!(err, Error::Network(_)), "{err:?}");
    // What was pulled is still shown.
    assert_eq!(
        phone
            .app
            .requests(eid_core::Language::English)
            .unwrap()
            .len(),
        1
    );
    let unlock = phone.app.unlock(&acc, &request, PIN).await.unwrap();
    let err = phone.app.approve(&unlock, true, None).await.unwrap_err();
    assert!(matches!(err, Error::Network(_)), "{err:?}");

    // The app is killed; the server comes back; the signed decision is
    // resent and confirmed.
    phone.restart().unwrap();
    assert!(matches!(
        phone.app.retry_unsent_decisions().await,
        Err(Error::Network(_))
    ));
    w.restart_server().await.unwrap();
    assert_eq!(phone.app.retry_unsent_decisions().await.unwrap(), 1);
    assert_eq!(phone.app.retry_unsent_decisions().await.unwrap(), 0);
    let status = w.rp_status(request, TEXT).await.unwrap();
    assert_eq!(status.status, RequestStatus::Approved);
    assert!(phone.app.refresh().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_lost_answer_is_retried_with_the_same_decision_and_gets_the_same_receipt() {
    let w = World::start().await.unwrap();
    let person = w.person(USER).await.unwrap();
    let mitm = Mitm::start(&w, Tamper::Nothing).await.unwrap();
    let phone = w
        .phone_via("grete", &mitm.base_url, &mitm.spki_pin)
        .unwrap();
    let acc = phone
        .app
        .activate(USER, &person.code, PIN)
        .await
        .unwrap()
        .authenticator_id;
    let request = w.login(USER, TEXT).await.unwrap();
    phone.app.refresh().await.unwrap();

    // The server records the approval; the phone never hears back.
    mitm.set(Tamper::SwallowAnswers);
    let unlock = phone.app.unlock(&acc, &request, PIN).await.unwrap();
    let err = phone.app.approve(&unlock, true, None).await.unwrap_err();
    assert!(matches!(err, Error::Network(_)), "{err:?}");
    let on_server = w.rp_status(request, TEXT).await.unwrap();
    assert_eq!(on_server.status, RequestStatus::Approved);

    // Resending the stored decision (no new PIN, no new signature) returns
    // exactly the receipt the server issued the first time.
    mitm.set(Tamper::Nothing);
    assert_eq!(phone.app.retry_unsent_decisions().await.unwrap(), 1);
    let again = phone.app.approve(&unlock, true, None).await.unwrap();
    assert_eq!(Some(again), on_server.receipt);
}
