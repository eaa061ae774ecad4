//! Activation, the PIN policy and interrupted activations, against the real server.

use eid_core::{Action, Error, PinPolicyError, WarningKind};
use eid_e2e_tests::{Mitm, PIN, PROVIDER_NAME, Tamper, World};
use eid_protocol::RequestKind;
use eid_protocol::wire::{ErrorCode, RequestStatus};

const USER: &str = "grete#1950x";
const TEXT: &str = "Log på Nordisk Netbank – sag 4471";

#[tokio::test]
async fn activate_then_approve_a_login_seen_by_the_relying_party() {
    let w = World::start().await.unwrap();
    let person = w.person(USER).await.unwrap();
    let phone = w.phone("grete").unwrap();

    let authenticator = phone.app.activate(USER, &person.code, PIN).await.unwrap();
    assert_eq!(authenticator.identity_id, person.identity_id);
    assert_eq!(
        phone.app.authenticators().unwrap(),
        vec![authenticator.clone()]
    );
    let server_side = w.admin.identity(person.identity_id).await.unwrap();
    assert_eq!(server_side.authenticators.len(), 1);
    assert_eq!(
        server_side.authenticators[0].authenticator_id,
        authenticator.authenticator_id
    );

    let request = w.login(USER, TEXT).await.unwrap();
    let views = phone.app.refresh().await.unwrap();
    assert_eq!(views.len(), 1);
    let view = &views[0];
    assert_eq!(view.request_id, request);
    assert_eq!(view.authenticator_id, authenticator.authenticator_id);
    assert_eq!(view.kind, RequestKind::Login);
    assert_eq!(view.provider_name.as_deref(), Some(PROVIDER_NAME));
    assert_eq!(view.reference_text.as_deref(), Some(TEXT));
    assert!(view.time_left_ms > 290_000 && view.time_left_ms <= 300_000);
    assert!(
        view.warnings
            .iter()
            .any(|w| w.kind == WarningKind::OnlyApproveWhatYouStarted)
    );
    assert!(view.actions.contains(&Action::Approve));
    assert!(view.actions.contains(&Action::ReportFraud));

    let unlock = phone
        .app
        .unlock(&authenticator.authenticator_id, &request, PIN)
        .await
        .unwrap();
    let receipt = phone.app.approve(&unlock, true, None).await.unwrap();

    let status = w.rp_status(request, TEXT).await.unwrap();
    assert_eq!(status.status, RequestStatus::Approved);
    assert_eq!(status.receipt.as_ref(), Some(&receipt));
    assert_eq!(
        receipt.receipt.authenticator_id,
        authenticator.authenticator_id
    );
    // Decided requests leave the phone's list.
    assert!(phone.app.refresh().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_wrong_activation_code_is_refused_and_leaves_nothing_behind() {
    let w = World::start().await.unwrap();
    let person = w.person(USER).await.unwrap();
    let phone = w.phone("grete").unwrap();

    let err = phone
        .app
        .activate(USER, "AAAAA-AAAAA", PIN)
        .await
        .unwrap_err();
    assert_eq!((err).server_code(), Some(ErrorCode::InvalidActivationCode));
    assert!(phone.app.authenticators().unwrap().is_empty());
    assert_eq!(phone.app.pending_activation().unwrap(), None);
    assert!(
        w.admin
            .identity(person.identity_id)
            .await
            .unwrap()
            .authenticators
            .is_empty()
    );
    // An unknown user ID gets the same answer (no user-ID oracle).
    let err = phone
        .app
        .activate("nobody#1234x", &person.code, PIN)
        .await
        .unwrap_err();
    assert_eq!((err).server_code(), Some(ErrorCode::InvalidActivationCode));
    // The right code still works (two wrong tries, far below the ceiling).
    phone.app.activate(USER, &person.code, PIN).await.unwrap();
    assert_eq!(phone.app.authenticators().unwrap().len(), 1);
}

#[tokio::test]
async fn weak_pins_are_refused_with_a_reason_before_anything_is_sent() {
    let w = World::start().await.unwrap();
    let person = w.person(USER).await.unwrap();
    let phone = w.phone("grete").unwrap();
    for weak in [
        "123456", "111111", "121212", "654321", "12345", "12a456", "241299",
    ] {
        let err = phone
            .app
            .activate(USER, &person.code, weak)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::PinPolicy(_)),
            "{weak} gave {err:?} instead of a policy refusal"
        );
    }
    assert!(matches!(
        phone.app.activate(USER, &person.code, "111111").await,
        Err(Error::PinPolicy(PinPolicyError::AllSame))
    ));
    // Nothing reached the server: the code still has all its tries.
    assert!(phone.app.authenticators().unwrap().is_empty());
    phone.app.activate(USER, &person.code, PIN).await.unwrap();
}

#[tokio::test]
async fn an_interrupted_activation_resumes_to_the_same_authenticator() {
    let w = World::start().await.unwrap();
    let person = w.person(USER).await.unwrap();
    let mitm = Mitm::start(&w, Tamper::SwallowAnswers).await.unwrap();
    let mut phone = w
        .phone_via("grete", &mitm.base_url, &mitm.spki_pin)
        .unwrap();

    // The server activates, the answer never arrives.
    let err = phone
        .app
        .activate(USER, &person.code, PIN)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Network(_)), "{err:?}");
    assert!(phone.app.authenticators().unwrap().is_empty());
    let pending = phone.app.pending_activation().unwrap().unwrap();
    assert_eq!(pending.user_id, USER);

    // The app is killed and restarted; the activation survives.
    phone.restart().unwrap();
    assert!(phone.app.pending_activation().unwrap().is_some());
    mitm.set(Tamper::Nothing);
    let authenticator = phone.app.resume_activation(&person.code).await.unwrap();
    let server_side = w.admin.identity(person.identity_id).await.unwrap();
    assert_eq!(server_side.authenticators.len(), 1);
    assert_eq!(
        server_side.authenticators[0].authenticator_id,
        authenticator.authenticator_id
    );
    assert_eq!(phone.app.pending_activation().unwrap(), None);
    assert!(matches!(
        phone.app.resume_activation(&person.code).await,
        Err(Error::NoPendingActivation)
    ));
}

#[tokio::test]
async fn an_interrupted_activation_can_be_discarded() {
    let w = World::start().await.unwrap();
    let person = w.person(USER).await.unwrap();
    let mut w_stopped = w;
    let phone = w_stopped.phone("grete").unwrap();
    w_stopped.stop_server().await;
    let err = phone
        .app
        .activate(USER, &person.code, PIN)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Network(_)), "{err:?}");
    assert!(phone.app.pending_activation().unwrap().is_some());
    phone.app.discard_activation().unwrap();
    assert_eq!(phone.app.pending_activation().unwrap(), None);
    assert!(matches!(
        phone.app.resume_activation(&person.code).await,
        Err(Error::NoPendingActivation)
    ));
    // A fresh activation works once the server is back.
    w_stopped.restart_server().await.unwrap();
    phone.app.activate(USER, &person.code, PIN).await.unwrap();
    assert_eq!(phone.app.authenticators().unwrap().len(), 1);
}
