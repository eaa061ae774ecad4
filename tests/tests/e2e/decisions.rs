//! Approve, deny and report fraud, each seen by the service provider with a
//! valid receipt; expiry; replay; nothing approved without a fresh unlock.

use eid_core::{Action, Error};
use eid_e2e_tests::{PIN, World};
use eid_protocol::wire::{ErrorCode, RequestStatus};
use eid_protocol::{Outcome, RequestKind};

const USER: &str = "grete#1950x";
const TEXT: &str = "Overfør 2.500,00 kr. til konto 1234-567890";

#[tokio::test]
async fn approve_deny_and_fraud_each_reach_the_relying_party_with_a_receipt() {
    let w = World::start().await.unwrap();
    let phone = w.activated_phone("grete", USER).await.unwrap();
    let acc = phone.app.authenticators().unwrap()[0].authenticator_id;
    let approve = w.login(USER, TEXT).await.unwrap();
    let deny = w.login(USER, TEXT).await.unwrap();
    let fraud = w.login(USER, TEXT).await.unwrap();
    assert_eq!(phone.app.refresh().await.unwrap().len(), 3);

    let unlock = phone.app.unlock(&acc, &approve, PIN).await.unwrap();
    let approved = phone.app.approve(&unlock, true, None).await.unwrap();
    let denied = phone.app.deny(&acc, &deny).await.unwrap();
    let reported = phone.app.report_fraud(&acc, &fraud).await.unwrap();

    for (request, receipt, status, outcome) in [
        (approve, approved, RequestStatus::Approved, Outcome::Approve),
        (deny, denied, RequestStatus::Denied, Outcome::Deny),
        (
            fraud,
            reported,
            RequestStatus::FraudReported,
            Outcome::ReportFraud,
        ),
    ] {
        let seen = w.rp_status(request, TEXT).await.unwrap();
        assert_eq!(seen.status, status);
        assert_eq!(seen.receipt, Some(receipt.clone()));
        assert_eq!(receipt.receipt.outcome, outcome);
        assert_eq!(receipt.receipt.request_id, request);
        assert_eq!(receipt.receipt.authenticator_id, acc);
    }
    assert!(phone.app.refresh().await.unwrap().is_empty());
}

#[tokio::test]
async fn approval_needs_the_swipe_a_fresh_unlock_and_the_binding_code() {
    let w = World::start().await.unwrap();
    let phone = w.activated_phone("grete", USER).await.unwrap();
    let acc = phone.app.authenticators().unwrap()[0].authenticator_id;
    let request =
        w.rp.create_request(USER, RequestKind::Login, TEXT, Some("K7-42QX"))
            .await
            .unwrap()
            .request_id;
    phone.app.refresh().await.unwrap();

    let unlock = phone.app.unlock(&acc, &request, PIN).await.unwrap();
    assert_eq!(
        phone
            .app
            .approve(&unlock, false, Some("K7-42QX"))
            .await
            .unwrap_err(),
        Error::SwipeRequired
    );
    assert_eq!(
        phone.app.approve(&unlock, true, None).await.unwrap_err(),
        Error::BindingCodeRequired
    );
    // The unlock lasts a minute on the monotonic clock.
    w.advance(61_000, &[&phone]);
    assert_eq!(
        phone
            .app
            .approve(&unlock, true, Some("K7-42QX"))
            .await
            .unwrap_err(),
        Error::UnlockInvalid
    );
    // A wrong binding code is refused by the server and changes nothing.
    let unlock = phone.app.unlock(&acc, &request, PIN).await.unwrap();
    assert_eq!(
        phone
            .app
            .approve(&unlock, true, Some("WRONG-1"))
            .await
            .unwrap_err(),
        Error::WrongBindingCode
    );
    assert_eq!(
        w.rp_status(request, TEXT).await.unwrap().status,
        RequestStatus::Pending
    );
    // A malformed code is refused on the phone before anything is sent, and
    // the unlock survives it.
    let unlock = phone.app.unlock(&acc, &request, PIN).await.unwrap();
    assert_eq!(
        phone
            .app
            .approve(&unlock, true, Some("K7\u{200b}42QX"))
            .await
            .unwrap_err(),
        Error::WrongBindingCode
    );
    // Typed in lower case with spaces, or scanned as a QR payload: the same code.
    let receipt = phone
        .app
        .approve(&unlock, true, Some(" k7 42qx "))
        .await
        .unwrap();
    // The unlock was single use: the same token cannot approve again, but
    // asking again for the same decision returns the same receipt.
    assert_eq!(
        phone
            .app
            .approve(&unlock, true, Some("K7-42QX"))
            .await
            .unwrap(),
        receipt
    );
    assert_eq!(
        w.rp_status(request, TEXT).await.unwrap().status,
        RequestStatus::Approved
    );
}

#[tokio::test]
async fn an_expired_request_cannot_be_approved_and_disappears() {
    let w = World::start().await.unwrap();
    let phone = w.activated_phone("grete", USER).await.unwrap();
    let acc = phone.app.authenticators().unwrap()[0].authenticator_id;
    let request = w.login(USER, TEXT).await.unwrap();
    let views = phone.app.refresh().await.unwrap();
    assert!(views[0].time_left_ms <= 300_000);

    // PIN entered in time, but the swipe comes too late.
    w.advance(299_000, &[&phone]);
    let unlock = phone.app.unlock(&acc, &request, PIN).await.unwrap();
    let view = &phone.app.requests(eid_core::Language::English).unwrap()[0];
    assert!(view.time_left_ms <= 1_000);
    w.advance(1_000, &[&phone]);
    assert_eq!(
        phone.app.approve(&unlock, true, None).await.unwrap_err(),
        Error::Expired
    );
    assert!(
        phone
            .app
            .requests(eid_core::Language::English)
            .unwrap()
            .is_empty()
    );
    assert!(phone.app.refresh().await.unwrap().is_empty());
    assert_eq!(
        w.rp_status(request, TEXT).await.unwrap().status,
        RequestStatus::Expired
    );

    // A phone whose wall clock is wrong still counts down from the server's
    // deadline: the phone's clock is 10 minutes behind here. The pull is
    // signed with the server's time (learnt from the earlier pulls), so the
    // server's ±5 minute check passes.
    let request = w.login(USER, TEXT).await.unwrap();
    phone.clock.set_wall(w.now_ms() - 600_000);
    let views = phone.app.refresh().await.unwrap();
    assert_eq!(views[0].request_id, request);
    assert!(views[0].time_left_ms > 290_000 && views[0].time_left_ms <= 300_000);
    assert!(!views[0].actions.is_empty());
    assert!(views[0].actions.contains(&Action::Approve));
}

#[tokio::test]
async fn a_request_is_decided_once_across_devices_and_replays_change_nothing() {
    let w = World::start().await.unwrap();
    let person = w.person(USER).await.unwrap();
    let first = w.phone("first").unwrap();
    first.app.activate(USER, &person.code, PIN).await.unwrap();
    let second = w.another_phone(&person, "second").await.unwrap();
    let acc1 = first.app.authenticators().unwrap()[0].authenticator_id;
    let acc2 = second.app.authenticators().unwrap()[0].authenticator_id;

    let request = w.login(USER, TEXT).await.unwrap();
    first.app.refresh().await.unwrap();
    second.app.refresh().await.unwrap();
    let unlock1 = first.app.unlock(&acc1, &request, PIN).await.unwrap();
    let unlock2 = second.app.unlock(&acc2, &request, PIN).await.unwrap();
    let receipt = first.app.approve(&unlock1, true, None).await.unwrap();
    // The other device loses, whatever it tries.
    assert_eq!(
        (second.app.approve(&unlock2, true, None).await.unwrap_err()).server_code(),
        Some(ErrorCode::RequestClosed)
    );
    // The winner denying afterwards is refused locally: one decision only.
    assert_eq!(
        first.app.deny(&acc1, &request).await.unwrap_err(),
        Error::AlreadyDecided
    );
    let status = w.rp_status(request, TEXT).await.unwrap();
    assert_eq!(status.status, RequestStatus::Approved);
    assert_eq!(status.receipt, Some(receipt));
}
