//! Found by the crash-consistency work (docs/reliability.md): decisions
//! signed while the server is unreachable used to be resent in the order of
//! the phone's wall clock, but the server accepts them only in counter order.
//! If the person set the phone's clock back between two offline approvals, the
//! later decision (higher counter, earlier timestamp) was resent first; the
//! earlier one then met `counter_replay`, which the core treats as final and
//! stores as refused: an approval the person made was dropped. The core now
//! resends in counter order (core/src/store/decisions.rs); these tests keep it so.

use eid_core::Error;
use eid_e2e_tests::{PIN, World};
use eid_protocol::wire::RequestStatus;

const USER: &str = "grete#1950x";
const TEXT: &str = "Log på Nordisk Netbank";

#[tokio::test]
async fn offline_approvals_are_resent_in_counter_order_even_if_the_clock_went_back() {
    let mut w = World::start().await.unwrap();
    let phone = w.activated_phone("grete", USER).await.unwrap();
    let acc = phone.app.authenticators().unwrap()[0].authenticator_id;
    let first = w.login(USER, TEXT).await.unwrap();
    let second = w.login(USER, TEXT).await.unwrap();
    phone.app.refresh().await.unwrap();

    w.stop_server().await;
    let unlock = phone.app.unlock(&acc, &first, PIN).await.unwrap();
    let err = phone.app.approve(&unlock, true, None).await.unwrap_err();
    assert!(matches!(err, Error::Network(_)), "{err:?}");
    // The person sets the phone's clock back an hour, then approves the second.
    let wall = eid_core::Clock::wall_ms(phone.clock.as_ref());
    phone.clock.set_wall(wall - 3_600_000);
    let unlock = phone.app.unlock(&acc, &second, PIN).await.unwrap();
    let err = phone.app.approve(&unlock, true, None).await.unwrap_err();
    assert!(matches!(err, Error::Network(_)), "{err:?}");

    w.restart_server().await.unwrap();
    assert_eq!(phone.app.retry_unsent_decisions().await.unwrap(), 2);
    for r in [first, second] {
        let status = w.rp_status(r, TEXT).await.unwrap();
        assert_eq!(status.status, RequestStatus::Approved);
    }
}

#[tokio::test]
async fn offline_approvals_are_resent_and_land_once_each() {
    // The same without the clock change: both land, in order, once.
    let mut w = World::start().await.unwrap();
    let phone = w.activated_phone("grete", USER).await.unwrap();
    let acc = phone.app.authenticators().unwrap()[0].authenticator_id;
    let first = w.login(USER, TEXT).await.unwrap();
    let second = w.login(USER, TEXT).await.unwrap();
    phone.app.refresh().await.unwrap();

    w.stop_server().await;
    for r in [first, second] {
        let unlock = phone.app.unlock(&acc, &r, PIN).await.unwrap();
        let err = phone.app.approve(&unlock, true, None).await.unwrap_err();
        assert!(matches!(err, Error::Network(_)), "{err:?}");
        phone.clock.advance(5);
    }
    w.restart_server().await.unwrap();
    assert_eq!(phone.app.retry_unsent_decisions().await.unwrap(), 2);
    assert_eq!(phone.app.retry_unsent_decisions().await.unwrap(), 0);
    for r in [first, second] {
        let status = w.rp_status(r, TEXT).await.unwrap();
        assert_eq!(status.status, RequestStatus::Approved);
    }
}
