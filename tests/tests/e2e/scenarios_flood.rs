//! Request floods (MFA fatigue), attack by attack, against the real server
//! over TLS with a manual clock: the pending cap, the rate limits per person
//! and per service provider (sliding windows, `rate_limited` with
//! `Retry-After`), and the cool-down after "this wasn't me" (`cooling_down`,
//! the person told once per cool-down).

use std::sync::Arc;

use eid_api_client::{ApiFailure, Endpoint, ProviderClient};
use eid_core::{Language, SecurityEventKind};
use eid_e2e_tests::{HOUR_MS, MINUTE_MS, PROVIDER_NAME, Phone, World};
use eid_protocol::wire::{CreateRequestRequest, ErrorCode};
use eid_protocol::{AuthenticatorId, RequestKind};
use eid_server::Config;

use crate::support::refusal;

const TEXT: &str = "Log på Nordisk Netbank";

async fn activated(w: &World, user_id: &str) -> (Phone, AuthenticatorId) {
    let person = w.person(user_id).await.unwrap();
    w.activated_for(&person, user_id).await.unwrap()
}

async fn create(rp: &ProviderClient, user_id: &str) -> Result<(), ApiFailure> {
    rp.create_request(user_id, RequestKind::Login, TEXT, None)
        .await
        .map(|_| ())
}

/// Rows in the server's `requests` table (what "changes nothing" is checked on).
fn stored_requests(w: &World) -> i64 {
    w.count_rows("requests").unwrap()
}

/// A second service provider with its own API key (for raw calls too).
async fn second_provider(w: &World, name: &str) -> (ProviderClient, String) {
    let sp = w.admin.register_service_provider(name).await.unwrap();
    let endpoint = Endpoint::new(&w.base_url(), &w.spki_pin).unwrap();
    (ProviderClient::new(endpoint, &sp.api_key), sp.api_key)
}

/// The raw answer to a create, for the status and `Retry-After` header.
async fn raw_create(w: &World, api_key: &str, user_id: &str) -> (u16, Option<u64>, String) {
    let endpoint = Endpoint::new(&w.base_url(), &w.spki_pin).unwrap();
    let response = endpoint
        .client
        .post(format!("{}/v1/rp/requests", endpoint.base_url))
        .bearer_auth(api_key)
        .json(&CreateRequestRequest {
            user_id: user_id.into(),
            kind: RequestKind::Login,
            reference_text: TEXT.into(),
            binding_code: None,
            binding: None,
        })
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (status, retry, response.text().await.unwrap())
}

#[tokio::test]
async fn mfa_fatigue_flood_is_capped_and_rate_limited() {
    // Production defaults: 5 a minute and 20 an hour per person, 10 pending.
    let w = World::start().await.unwrap();
    let (phone, acc) = activated(&w, "anna#2024x").await;
    let (_bob_phone, _) = activated(&w, "bob#2024x").await;
    let (other_rp, other_key) = second_provider(&w, "Andelskassen").await;

    // Minute 1: five requests, then the sixth is refused with a Retry-After.
    for _ in 0..5 {
        create(&w.rp, "anna#2024x").await.unwrap();
    }
    let before = stored_requests(&w);
    let e = create(&w.rp, "anna#2024x").await.unwrap_err();
    assert_eq!(
        (e.code(), refusal(&e).status),
        (Some(ErrorCode::RateLimited), 429)
    );
    assert!(
        refusal(&e).message.contains("retry after 60 s"),
        "{}",
        refusal(&e).message
    );
    // Another service provider cannot flood the same person either (the limit
    // is the person's), and the header says when to come back.
    let (status, retry, body) = raw_create(&w, &other_key, "anna#2024x").await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("rate_limited"), "{body}");
    assert_eq!(retry, Some(60));
    // Refused requests change nothing: not stored, not on the phone.
    assert_eq!(stored_requests(&w), before);
    assert_eq!(phone.app.refresh().await.unwrap().len(), 5);
    // Another person is not affected.
    create(&w.rp, "bob#2024x").await.unwrap();

    // The window slides: a minute later five more fit (10 pending).
    w.advance(MINUTE_MS, &[&phone]);
    for _ in 0..5 {
        create(&w.rp, "anna#2024x").await.unwrap();
    }
    // Next minute: the pending cap (10) refuses before the rate limit would.
    w.advance(MINUTE_MS, &[&phone]);
    let e = create(&w.rp, "anna#2024x").await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::RequestClosed));
    assert_eq!(phone.app.refresh().await.unwrap().len(), 10);

    // Once they expire, ten more fit in the hour; the 21st is refused until
    // the first five leave the hour window.
    w.advance(5 * MINUTE_MS, &[&phone]);
    for _ in 0..5 {
        create(&w.rp, "anna#2024x").await.unwrap();
    }
    w.advance(MINUTE_MS, &[&phone]);
    for _ in 0..5 {
        other_rp
            .create_request("anna#2024x", RequestKind::Login, TEXT, None)
            .await
            .unwrap();
    }
    // The person denies them all (so the pending cap is not what stops the
    // next one).
    for view in phone.app.refresh().await.unwrap() {
        phone.app.deny(&acc, &view.request_id).await.unwrap();
    }
    w.advance(MINUTE_MS, &[&phone]);
    let e = create(&w.rp, "anna#2024x").await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::RateLimited));
    // 9 minutes have passed since the first five: 51 minutes to go.
    assert!(
        refusal(&e).message.contains("retry after 3060 s"),
        "{}",
        refusal(&e).message
    );
    w.advance(3060 * 1000 - 1, &[&phone]);
    assert_eq!(
        create(&w.rp, "anna#2024x").await.unwrap_err().code(),
        Some(ErrorCode::RateLimited)
    );
    w.advance(1, &[&phone]);
    create(&w.rp, "anna#2024x").await.unwrap();
}

#[tokio::test]
async fn concurrent_flood_cannot_slip_past_the_rate_limit() {
    let w = World::start().await.unwrap();
    let (phone, _) = activated(&w, "anna#2024x").await;
    let rp = Arc::new(w.rp.clone());
    let mut tasks = Vec::new();
    for _ in 0..25 {
        let rp = rp.clone();
        tasks.push(tokio::spawn(async move { create(&rp, "anna#2024x").await }));
    }
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => created += 1,
            Err(e) => assert_eq!(e.code(), Some(ErrorCode::RateLimited), "{e}"),
        }
    }
    assert_eq!(created, 5);
    assert_eq!(stored_requests(&w), 5);
    assert_eq!(phone.app.refresh().await.unwrap().len(), 5);
}

#[tokio::test]
async fn relying_party_flood_over_many_people_is_rate_limited_per_provider() {
    let w = World::start_configured(Arc::new(|c: &mut Config| {
        c.floods.per_provider_per_minute = 3;
    }))
    .await
    .unwrap();
    for n in 0..4 {
        w.person(&format!("person{n}#2024x")).await.unwrap();
    }
    for n in 0..3 {
        create(&w.rp, &format!("person{n}#2024x")).await.unwrap();
    }
    let e = create(&w.rp, "person3#2024x").await.unwrap_err();
    assert_eq!(
        (e.code(), refusal(&e).status),
        (Some(ErrorCode::RateLimited), 429)
    );
    assert!(
        refusal(&e).message.contains("service provider"),
        "{}",
        refusal(&e).message
    );
    // Another service provider has its own budget.
    let (other, _) = second_provider(&w, "Andelskassen").await;
    other
        .create_request("person3#2024x", RequestKind::Login, TEXT, None)
        .await
        .unwrap();
    w.advance(MINUTE_MS, &[]);
    create(&w.rp, "person3#2024x").await.unwrap();
}

#[tokio::test]
async fn a_large_relying_party_gets_its_own_configured_limit() {
    // The override is keyed by provider id, which is known only after
    // registration: register, then restart with the override.
    let mut w = World::start_configured(Arc::new(|c: &mut Config| {
        c.floods.per_provider_per_minute = 1;
    }))
    .await
    .unwrap();
    let sp = w
        .admin
        .register_service_provider("Stor Bank")
        .await
        .unwrap();
    let id = sp.service_provider_id.to_string();
    w.reconfigure(Arc::new(move |c: &mut Config| {
        c.floods.per_provider_per_minute = 1;
        c.floods.provider_per_minute_overrides.insert(id.clone(), 3);
    }));
    w.restart_server().await.unwrap();
    let big = ProviderClient::new(
        Endpoint::new(&w.base_url(), &w.spki_pin).unwrap(),
        &sp.api_key,
    );
    for n in 0..4 {
        w.person(&format!("person{n}#2024x")).await.unwrap();
    }
    for n in 0..3 {
        big.create_request(&format!("person{n}#2024x"), RequestKind::Login, TEXT, None)
            .await
            .unwrap();
    }
    let e = big
        .create_request("person3#2024x", RequestKind::Login, TEXT, None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::RateLimited));
    // The default provider keeps the default of 1.
    create(&w.rp, "person3#2024x").await.unwrap();
    let e = create(&w.rp, "person0#2024x").await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::RateLimited));
}

#[tokio::test]
async fn after_this_wasnt_me_the_same_provider_is_held_and_the_person_told() {
    let mut w = World::start().await.unwrap();
    let (phone, acc) = activated(&w, "anna#2024x").await;
    let request = w.login("anna#2024x", TEXT).await.unwrap();
    phone.app.refresh().await.unwrap();
    phone.app.report_fraud(&acc, &request).await.unwrap();

    let before = stored_requests(&w);
    let e = create(&w.rp, "anna#2024x").await.unwrap_err();
    assert_eq!(
        (e.code(), refusal(&e).status),
        (Some(ErrorCode::CoolingDown), 429)
    );
    assert!(
        refusal(&e).message.contains("retry after 3600 s"),
        "{}",
        refusal(&e).message
    );
    // The flood goes on; every attempt is refused and nothing is stored.
    w.advance(10 * MINUTE_MS, &[&phone]);
    for _ in 0..3 {
        let e = create(&w.rp, "anna#2024x").await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::CoolingDown));
        assert!(
            refusal(&e).message.contains("retry after 3000 s"),
            "{}",
            refusal(&e).message
        );
    }
    assert_eq!(stored_requests(&w), before);
    assert!(phone.app.refresh().await.unwrap().is_empty());

    // The person is told, once (not once per attempt: that would be a
    // notification flood of its own), naming the provider.
    let feed = phone.app.events(&acc, Language::English).unwrap();
    let kinds: Vec<_> = feed.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![
            SecurityEventKind::RequestsHeld,
            SecurityEventKind::FraudReported,
            SecurityEventKind::DeviceActivated
        ]
    );
    assert_eq!(feed[0].title, "Requests held");
    assert!(feed[0].body.contains(PROVIDER_NAME), "{}", feed[0].body);
    assert!(feed[0].critical);
    let danish = phone.app.events(&acc, Language::Danish).unwrap();
    assert_eq!(danish[0].title, "Anmodninger stoppet");

    // The hold is stored: a restart does not lift it.
    w.restart_server().await.unwrap();
    let e = create(&w.rp, "anna#2024x").await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::CoolingDown));
}

#[tokio::test]
async fn after_this_wasnt_me_another_provider_is_not_held() {
    let w = World::start().await.unwrap();
    let (phone, acc) = activated(&w, "anna#2024x").await;
    let (_bob_phone, _) = activated(&w, "bob#2024x").await;
    let (other, _) = second_provider(&w, "Andelskassen").await;
    let request = w.login("anna#2024x", TEXT).await.unwrap();
    phone.app.refresh().await.unwrap();
    phone.app.report_fraud(&acc, &request).await.unwrap();

    other
        .create_request("anna#2024x", RequestKind::Login, TEXT, None)
        .await
        .unwrap();
    // The reported provider is held only for this person.
    create(&w.rp, "bob#2024x").await.unwrap();
    assert_eq!(
        create(&w.rp, "anna#2024x").await.unwrap_err().code(),
        Some(ErrorCode::CoolingDown)
    );
    // A plain "deny" holds nobody.
    let views = phone.app.refresh().await.unwrap();
    assert_eq!(views.len(), 1);
    phone.app.deny(&acc, &views[0].request_id).await.unwrap();
    other
        .create_request("anna#2024x", RequestKind::Login, TEXT, None)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_hold_ends_after_the_cool_down() {
    let w = World::start().await.unwrap();
    let (phone, acc) = activated(&w, "anna#2024x").await;
    let request = w.login("anna#2024x", TEXT).await.unwrap();
    phone.app.refresh().await.unwrap();
    phone.app.report_fraud(&acc, &request).await.unwrap();
    w.advance(HOUR_MS - 1, &[&phone]);
    let e = create(&w.rp, "anna#2024x").await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::CoolingDown));
    assert!(
        refusal(&e).message.contains("retry after 1 s"),
        "{}",
        refusal(&e).message
    );
    w.advance(1, &[&phone]);
    let second = w.login("anna#2024x", TEXT).await.unwrap();

    // A new report starts a new hold and a new notification.
    phone.app.refresh().await.unwrap();
    phone.app.report_fraud(&acc, &second).await.unwrap();
    assert_eq!(
        create(&w.rp, "anna#2024x").await.unwrap_err().code(),
        Some(ErrorCode::CoolingDown)
    );
    phone.app.refresh().await.unwrap();
    let held = phone
        .app
        .events(&acc, Language::English)
        .unwrap()
        .iter()
        .filter(|e| e.kind == SecurityEventKind::RequestsHeld)
        .count();
    assert_eq!(held, 2);
}

#[tokio::test]
async fn flood_refusals_and_bad_input_change_nothing_and_do_not_count() {
    let w = World::start_configured(Arc::new(|c: &mut Config| {
        c.floods.per_identity_per_minute = 2;
    }))
    .await
    .unwrap();
    let (phone, _) = activated(&w, "anna#2024x").await;
    // Bad input gets its typed error before any limit and is not counted.
    for _ in 0..5 {
        let e =
            w.rp.create_request("anna#2024x", RequestKind::Login, "Pay \u{202E}001", None)
                .await
                .unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::InvalidReferenceText));
        let e = create(&w.rp, "nobody#2024x").await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::UnknownIdentity));
    }
    create(&w.rp, "anna#2024x").await.unwrap();
    create(&w.rp, "anna#2024x").await.unwrap();
    for _ in 0..5 {
        let e = create(&w.rp, "anna#2024x").await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::RateLimited));
    }
    assert_eq!(stored_requests(&w), 2);
    // Refused attempts did not extend the window: a minute after the two,
    // two more fit.
    w.advance(MINUTE_MS, &[&phone]);
    create(&w.rp, "anna#2024x").await.unwrap();
    create(&w.rp, "anna#2024x").await.unwrap();
    assert_eq!(phone.app.refresh().await.unwrap().len(), 4);
}
