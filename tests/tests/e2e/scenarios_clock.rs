//! Clock safety (docs/threat-model.md): a phone clock set a day off, at any stage,
//! changes nothing. Countdowns come from the server's deadline measured on the
//! monotonic clock; device-signed requests carry the server's time as last
//! seen (learnt from a pull, or from a `clock_skew` refusal after a restart),
//! never the phone's wall clock alone; PIN waits are kept on the monotonic
//! clock within a process and never shortened by a clock moved back.

use eid_core::Error;
use eid_e2e_tests::{DAY_MS, PIN, Phone, World};
use eid_protocol::REQUEST_LIFETIME_MS;
use eid_protocol::wire::RequestStatus;

/// Sets the phone's wall clock a day ahead (`ahead`) or behind the server's.
fn skew(w: &World, phone: &Phone, ahead: bool) {
    let now = w.now_ms();
    phone
        .clock
        .set_wall(if ahead { now + DAY_MS } else { now - DAY_MS });
}

async fn a_day_off_at_every_stage(ahead: bool) {
    let mut w = World::start().await.unwrap();
    let person = w.person("dina#1977s").await.unwrap();
    let (mut phone, id) = w.activated_for(&person, "skewed").await.unwrap();

    // Before the first pull: the signed pull is refused for its timestamp
    // once, the core learns the server's time and signs again.
    skew(&w, &phone, ahead);
    let text = "Log på Netbank";
    let req = w.login(&person.user_id, text).await.unwrap();
    let views = phone.app.refresh().await.unwrap();
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].time_left_ms, REQUEST_LIFETIME_MS);

    // Between pull and approve: the clock jumps the other way; the countdown
    // only follows the monotonic clock.
    skew(&w, &phone, !ahead);
    w.advance(60_000, &[&phone]);
    let views = phone.app.requests(eid_core::Language::English).unwrap();
    assert_eq!(views[0].time_left_ms, REQUEST_LIFETIME_MS - 60_000);
    let token = phone.app.unlock(&id, &req, PIN).await.unwrap();
    phone.app.approve(&token, true, None).await.unwrap();
    assert_eq!(
        w.rp_status(req, text).await.unwrap().status,
        RequestStatus::Approved
    );

    // After approve: pulls keep working with the clock off.
    skew(&w, &phone, ahead);
    assert!(phone.app.refresh().await.unwrap().is_empty());

    // Across a restart (the learnt server time is gone with the process):
    // the first pull corrects itself again; the deadline is the server's.
    let late = w.login(&person.user_id, "Log på igen").await.unwrap();
    phone.app.refresh().await.unwrap();
    w.advance(REQUEST_LIFETIME_MS - 2_000, &[&phone]);
    skew(&w, &phone, !ahead);
    phone.restart().unwrap();
    let views = phone.app.refresh().await.unwrap();
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].time_left_ms, 2_000);
    // Accepted just before the server's deadline...
    let token = phone.app.unlock(&id, &late, PIN).await.unwrap();
    w.advance(1_000, &[&phone]);
    phone.app.approve(&token, true, None).await.unwrap();

    // ...and refused after it, whatever the wall clock says.
    let expired = w.login(&person.user_id, "For sent").await.unwrap();
    phone.app.refresh().await.unwrap();
    w.advance(REQUEST_LIFETIME_MS + 1, &[&phone]);
    // A clock put back a day would give a wall-clock countdown a day more.
    phone.clock.set_wall(w.now_ms() - DAY_MS);
    assert!(
        phone
            .app
            .requests(eid_core::Language::English)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        phone.app.unlock(&id, &expired, PIN).await.err(),
        Some(Error::Expired)
    );
    assert_eq!(
        phone.app.deny(&id, &expired).await.err(),
        Some(Error::Expired)
    );
    assert_eq!(
        w.rp_status(expired, "For sent").await.unwrap().status,
        RequestStatus::Expired
    );
    w.stop_server().await;
}

#[tokio::test]
async fn a_phone_clock_a_day_ahead_changes_nothing() {
    a_day_off_at_every_stage(true).await;
}

#[tokio::test]
async fn a_phone_clock_a_day_behind_changes_nothing() {
    a_day_off_at_every_stage(false).await;
}

#[tokio::test]
async fn device_calls_other_than_the_pull_correct_a_wrong_clock_too() {
    let w = World::start().await.unwrap();
    let person = w.person("eli#1966t").await.unwrap();
    let (phone, id) = w.activated_for(&person, "blocker").await.unwrap();
    // No pull yet in this process: "block my identity" must still work with
    // the phone's clock a day ahead (an emergency action).
    skew(&w, &phone, true);
    phone.app.turn_on_notify_every_use(&id).await.unwrap();
    phone.app.block_identity(&id).await.unwrap();
    assert_eq!(
        phone.app.authenticators().unwrap()[0].state,
        eid_core::AuthenticatorState::Blocked
    );
}

#[tokio::test]
async fn moving_the_clock_does_not_shorten_a_pin_lockout() {
    let w = World::start().await.unwrap();
    let person = w.person("finn#1955u").await.unwrap();
    let (mut phone, id) = w.activated_for(&person, "guessing").await.unwrap();
    let req = w.login(&person.user_id, "Log på").await.unwrap();
    phone.app.refresh().await.unwrap();
    for _ in 0..3 {
        assert!(matches!(
            phone.app.unlock(&id, &req, "000111").await,
            Err(Error::WrongPin { .. })
        ));
    }
    // A day ahead: the wait is kept on the monotonic clock.
    skew(&w, &phone, true);
    assert!(matches!(
        phone.app.unlock(&id, &req, PIN).await,
        Err(Error::LockedOut { .. })
    ));
    // A day back, now and across a restart: still locked, never shorter.
    skew(&w, &phone, false);
    assert!(matches!(
        phone.app.unlock(&id, &req, PIN).await,
        Err(Error::LockedOut { retry_after_ms }) if retry_after_ms >= 59_000
    ));
    phone.restart().unwrap();
    phone.app.refresh().await.unwrap();
    assert!(matches!(
        phone.app.unlock(&id, &req, PIN).await,
        Err(Error::LockedOut { retry_after_ms }) if retry_after_ms >= 59_000
    ));
    // With the clock right again and the minute over, the right PIN works.
    phone.clock.set_wall(w.now_ms());
    w.advance(60_000, &[&phone]);
    phone.app.unlock(&id, &req, PIN).await.unwrap();
}
