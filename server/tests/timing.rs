//! The answers that must not tell a known user ID from an unknown one also
//! must not differ in time (docs/threat-model.md, "Strangers who know a user
//! ID"): medians of 200 calls each on 127.0.0.1, interleaved, within a
//! generous tolerance (0.3 ms, or 20 %). One test in its own binary, so no
//! other test of the same run competes for the machine while it measures.

mod common;

use std::time::{Duration, Instant};

use common::{Harness, assert_code};
use eid_api_client::{SelfServiceClient, SoftPhone};
use eid_protocol::wire::{ContactChannel, ErrorCode};
use eid_server::config::PerAddressConfig;

const USER: &str = "grete#1950x";
const OTHER: &str = "hans#1950x";
const UNKNOWN: &str = "nobody#1950x";
const HOUR_MS: u64 = 3_600_000;
const CALLS: usize = 200;

/// Median of `samples` in microseconds.
fn median_us(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1e6
}

#[track_caller]
fn assert_close(what: &str, a_name: &str, a: f64, b_name: &str, b: f64) {
    println!("{what}: median {a_name} {a:.0} us, {b_name} {b:.0} us");
    let diff = (a - b).abs();
    assert!(
        diff < 300.0 || diff < 0.2 * a.max(b),
        "{what}: {a_name} {a:.0} us vs {b_name} {b:.0} us"
    );
}

#[tokio::test]
async fn known_and_unknown_user_ids_take_the_same_time() {
    let h = Harness::start_with(|c| c.floods.per_address = PerAddressConfig::off()).await;
    let (with_code, _) = h.person(USER).await;
    h.admin.create_identity(OTHER, None).await.unwrap();

    // Self-service starts: a real user ID and one nobody has. Each round an
    // hour later by the server's clock, so no limit is ever reached.
    let portal = SelfServiceClient::new(h.endpoint.clone());
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..CALLS {
        h.clock.advance_ms(HOUR_MS + 1);
        let value = format!("a{i}@example.org");
        for (user, into) in [(USER, &mut known), (UNKNOWN, &mut unknown)] {
            let t = Instant::now();
            portal
                .start_contact_change(user, ContactChannel::Email, &value)
                .await
                .unwrap();
            into.push(t.elapsed());
        }
    }
    assert_close(
        "self-service start",
        "known",
        median_us(known),
        "unknown",
        median_us(unknown),
    );

    // Wrong activation codes: for an identity with a live code, and for one
    // without (a fresh code each round: the ceiling would void it).
    let (mut live, mut none) = (Vec::new(), Vec::new());
    let mut guesser = SoftPhone::new();
    for _ in 0..CALLS {
        h.admin.issue_activation_code(with_code).await.unwrap();
        h.clock.advance_ms(HOUR_MS + 1);
        for (user, into) in [(USER, &mut live), (OTHER, &mut none)] {
            let t = Instant::now();
            let result = guesser.activate(&h.endpoint, user, "AAAAA-AAAAA").await;
            into.push(t.elapsed());
            assert_code(result, ErrorCode::InvalidActivationCode);
        }
    }
    assert_close(
        "wrong activation code",
        "live code",
        median_us(live),
        "no code",
        median_us(none),
    );
}
