//! The person blocks their own identity from the app ("I suspect abuse"):
//! signed by the device, no PIN; pending requests are cancelled, new requests
//! and decisions refused, until support unblocks.

use eid_core::{AuthenticatorState, Error};
use eid_e2e_tests::{PIN, World};
use eid_protocol::wire::RequestStatus;

const USER: &str = "grete#1950x";
const TEXT: &str = "Log på Nordisk Netbank";

#[tokio::test]
async fn blocking_from_the_app_cancels_refuses_and_holds_until_support_unblocks() {
    let w = World::start().await.unwrap();
    let person = w.person(USER).await.unwrap();
    let phone = w.phone("grete").unwrap();
    let authenticator = phone.app.activate(USER, &person.code, PIN).await.unwrap();
    let acc = authenticator.authenticator_id;
    // A second phone of the same person learns of the block on its next pull.
    let other = w.another_phone(&person, "other").await.unwrap();

    let pending = w.login(USER, TEXT).await.unwrap();
    phone.app.refresh().await.unwrap();
    let unlock = phone.app.unlock(&acc, &pending, PIN).await.unwrap();

    // No PIN needed to block.
    phone.app.block_identity(&acc).await.unwrap();

    assert_eq!(
        phone.app.authenticators().unwrap()[0].state,
        AuthenticatorState::Blocked
    );
    assert!(phone.app.refresh().await.unwrap().is_empty());
    assert_eq!(
        w.rp_status(pending, TEXT).await.unwrap().status,
        RequestStatus::Cancelled
    );
    // The unlock taken before the block cannot approve any more.
    assert!(phone.app.approve(&unlock, true, None).await.is_err());
    let refused = w.login(USER, TEXT).await.unwrap_err().to_string();
    assert!(refused.contains("blocked"), "{refused}");
    assert!(w.admin.identity(person.identity_id).await.unwrap().blocked);
    other.app.refresh().await.unwrap();
    assert_eq!(
        other.app.authenticators().unwrap()[0].state,
        AuthenticatorState::Blocked
    );

    // Blocking again is harmless; unblocking is for support.
    phone.app.block_identity(&acc).await.unwrap();
    w.admin
        .unblock(person.identity_id, "test: support case")
        .await
        .unwrap();
    let request = w.login(USER, TEXT).await.unwrap();
    let views = phone.app.refresh().await.unwrap();
    assert_eq!(views.len(), 1);
    assert_eq!(
        phone.app.authenticators().unwrap()[0].state,
        AuthenticatorState::Active
    );
    let unlock = phone.app.unlock(&acc, &request, PIN).await.unwrap();
    phone.app.approve(&unlock, true, None).await.unwrap();
    assert_eq!(
        w.rp_status(request, TEXT).await.unwrap().status,
        RequestStatus::Approved
    );
}

#[tokio::test]
async fn a_block_needs_the_device_key_and_the_server() {
    let mut w = World::start().await.unwrap();
    let person = w.person(USER).await.unwrap();
    let phone = w.phone("grete").unwrap();
    let acc = phone
        .app
        .activate(USER, &person.code, PIN)
        .await
        .unwrap()
        .authenticator_id;
    // An authenticator this phone does not have.
    let stranger = eid_protocol::AuthenticatorId([7; 16]);
    assert_eq!(
        phone.app.block_identity(&stranger).await.unwrap_err(),
        Error::UnknownAuthenticator
    );
    // Server down: a clear network error and nothing changes locally.
    w.stop_server().await;
    assert!(matches!(
        phone.app.block_identity(&acc).await,
        Err(Error::Network(_))
    ));
    assert_eq!(
        phone.app.authenticators().unwrap()[0].state,
        AuthenticatorState::Active
    );
    w.restart_server().await.unwrap();
    assert!(!w.admin.identity(person.identity_id).await.unwrap().blocked);
    // A phone clock more than 5 minutes off does not stop the block: the
    // server refuses the timestamp once with its own time, and the core
    // signs again with it (scenarios_clock.rs covers ±24 h).
    phone.clock.set_wall(w.now_ms() + 600_000);
    phone.app.block_identity(&acc).await.unwrap();
    assert!(w.admin.identity(person.identity_id).await.unwrap().blocked);
}
