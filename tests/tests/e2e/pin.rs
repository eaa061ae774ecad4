//! PIN checking against the real server: counted attempts, escalating waits
//! that survive restarts, destruction of the PIN key at ten, PIN change.

use eid_core::{AuthenticatorState, Error};
use eid_e2e_tests::{MINUTE_MS, PIN, Phone, World};
use eid_protocol::{AuthenticatorId, RequestId};

const USER: &str = "grete#1950x";
const TEXT: &str = "Log på Nordisk Netbank";
const WRONG: &str = "902613";

async fn pulled_login(w: &World, phone: &Phone) -> RequestId {
    let request = w.login(USER, TEXT).await.unwrap();
    let views = phone.app.refresh().await.unwrap();
    assert!(views.iter().any(|v| v.request_id == request));
    request
}

fn authenticator(phone: &Phone) -> AuthenticatorId {
    phone.app.authenticators().unwrap()[0].authenticator_id
}

#[tokio::test]
async fn wrong_pins_escalate_survive_restarts_and_destroy_the_key_at_ten() {
    let w = World::start().await.unwrap();
    let mut phone = w.activated_phone("grete", USER).await.unwrap();
    let acc = authenticator(&phone);
    let request = pulled_login(&w, &phone).await;

    // 1st and 2nd wrong PIN: no wait yet, the attempts left are told.
    for left in [9, 8] {
        assert_eq!(
            phone.app.unlock(&acc, &request, WRONG).await.unwrap_err(),
            Error::WrongPin {
                attempts_left: left,
                retry_after_ms: 0
            }
        );
    }
    // The count is on disk: a restart (or kill -9) does not reset it.
    phone.restart().unwrap();
    phone.app.refresh().await.unwrap();
    assert_eq!(
        phone.app.unlock(&acc, &request, WRONG).await.unwrap_err(),
        Error::WrongPin {
            attempts_left: 7,
            retry_after_ms: MINUTE_MS
        }
    );
    // During the wait even the right PIN is refused, and not counted.
    assert!(matches!(
        phone.app.unlock(&acc, &request, PIN).await,
        Err(Error::LockedOut { retry_after_ms }) if retry_after_ms <= MINUTE_MS && retry_after_ms > 0
    ));
    phone.restart().unwrap();
    assert!(matches!(
        phone.app.change_pin(&acc, PIN, "502817").await,
        Err(Error::LockedOut { .. })
    ));
    // After the wait the right PIN works and resets the count.
    w.advance(MINUTE_MS, &[&phone]);
    let unlock = phone.app.unlock(&acc, &request, PIN).await.unwrap();
    phone.app.approve(&unlock, true, None).await.unwrap();

    // Ten wrong in a row (waiting out each delay) destroy the PIN key.
    let waits = [0, 0, 1, 5, 15, 60, 60, 60, 60];
    for (i, wait_minutes) in waits.iter().enumerate() {
        let err = phone
            .app
            .change_pin(&acc, WRONG, "502817")
            .await
            .unwrap_err();
        assert_eq!(
            err,
            Error::WrongPin {
                attempts_left: 9 - i as u32,
                retry_after_ms: wait_minutes * MINUTE_MS
            }
        );
        if i % 3 == 0 {
            phone.restart().unwrap();
        }
        w.advance(wait_minutes * MINUTE_MS, &[&phone]);
    }
    assert_eq!(
        phone
            .app
            .change_pin(&acc, WRONG, "502817")
            .await
            .unwrap_err(),
        Error::ReactivationRequired
    );
    phone.restart().unwrap();
    assert_eq!(
        phone.app.authenticators().unwrap()[0].state,
        AuthenticatorState::NeedsReactivation
    );
    // The right PIN no longer helps, and requests for the authenticator are not shown.
    let request = w.login(USER, TEXT).await.unwrap();
    assert!(phone.app.refresh().await.unwrap().is_empty());
    assert_eq!(
        phone.app.unlock(&acc, &request, PIN).await.unwrap_err(),
        Error::ReactivationRequired
    );
}

#[tokio::test]
async fn a_pin_change_needs_the_old_pin_and_keeps_the_same_keys() {
    let w = World::start().await.unwrap();
    let mut phone = w.activated_phone("grete", USER).await.unwrap();
    let acc = authenticator(&phone);
    assert_eq!(
        phone
            .app
            .change_pin(&acc, WRONG, "502817")
            .await
            .unwrap_err(),
        Error::WrongPin {
            attempts_left: 9,
            retry_after_ms: 0
        }
    );
    // A weak new PIN is refused before the old one is even tried.
    assert!(matches!(
        phone.app.change_pin(&acc, PIN, "123456").await,
        Err(Error::PinPolicy(_))
    ));
    phone.app.change_pin(&acc, PIN, "502817").await.unwrap();
    phone.restart().unwrap();

    // The old PIN is now wrong; the new one approves, and the server accepts
    // the PIN-key signature (the same PIN key, re-sealed).
    let request = pulled_login(&w, &phone).await;
    assert!(matches!(
        phone.app.unlock(&acc, &request, PIN).await,
        Err(Error::WrongPin { .. })
    ));
    let unlock = phone.app.unlock(&acc, &request, "502817").await.unwrap();
    phone.app.approve(&unlock, true, None).await.unwrap();
    let status = w.rp_status(request, TEXT).await.unwrap();
    assert_eq!(status.status, eid_protocol::wire::RequestStatus::Approved);
}
