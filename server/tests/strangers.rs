//! A stranger who knows someone's user ID, calling the endpoints that need
//! no credentials from their own address (docs/threat-model.md, "Strangers
//! who know a user ID"): they must not use up the person's allowances, void
//! the person's activation code, hide the person's own new device, or learn
//! whether a user ID exists from what the answers look like or how long
//! they take.
//!
//! Two sources are two loopback addresses: the person's client connects
//! from 127.0.0.1, the stranger's from 127.0.0.2 (all of 127.0.0.0/8 is
//! this machine).

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::{Harness, assert_code};
use eid_api_client::{ApiFailure, Endpoint, SelfServiceClient, SoftPhone};
use eid_protocol::wire::{
    self, ContactChannel, EnrolmentStarted, ErrorBody, ErrorCode, StartEnrolmentRequest,
};
use eid_protocol::{EnrolmentProof, RequestKind};
use eid_server::Config;
use eid_server::config::PerAddressConfig;

const USER: &str = "grete#1950x";
const HOUR_MS: u64 = 3_600_000;
/// Self-service starts one source may make for one user ID in an hour.
const CHANGE_STARTS: usize = 5;

fn stranger_ip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))
}

/// A pinned client for the harness's server whose connections come from
/// `local` (a loopback address).
fn endpoint_from(h: &Harness, local: IpAddr) -> Endpoint {
    let tls = eid_core::client::pinned_tls_config(&h.server().spki_pin).unwrap();
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .local_address(local)
        .timeout(Duration::from_secs(30))
        .tcp_nodelay(true)
        .build()
        .unwrap();
    Endpoint {
        base_url: h.endpoint.base_url.clone(),
        client,
    }
}

/// The per-address token bucket off: these tests count the per-source and
/// per-person limits, not the bucket in front of them.
fn no_bucket(c: &mut Config) {
    c.floods.per_address = PerAddressConfig::off();
}

/// A signed enrolment start for `user` with the keys of `phone`.
fn enrolment_request(user: &str, phone: &SoftPhone) -> StartEnrolmentRequest {
    let proof = EnrolmentProof {
        user_id: user,
        device_public_key: phone.device_key.public_key(),
        pin_public_key: phone.pin_key.public_key(),
    }
    .signing_bytes();
    StartEnrolmentRequest {
        user_id: user.into(),
        device_public_key: phone.device_key.public_key().clone(),
        pin_public_key: phone.pin_key.public_key().clone(),
        device_signature: phone.device_key.sign(&proof),
        pin_signature: phone.pin_key.sign(&proof),
    }
}

/// Starts a new-device enrolment for `user` from `endpoint` with fresh keys.
async fn start_enrolment(
    endpoint: &Endpoint,
    user: &str,
) -> Result<EnrolmentStarted, (u16, ErrorBody)> {
    let body = enrolment_request(user, &SoftPhone::new());
    let resp = endpoint
        .client
        .post(format!("{}{}", endpoint.base_url, wire::PATH_ENROLMENTS))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    if status == 201 {
        Ok(resp.json().await.unwrap())
    } else {
        Err((status, resp.json().await.unwrap()))
    }
}

/// The kinds of the requests the phone's pull shows.
async fn pulled_kinds(h: &Harness, phone: &SoftPhone) -> Vec<RequestKind> {
    let pulled = SoftPhone::pull(&h.endpoint, &[phone], h.now())
        .await
        .unwrap();
    pulled.accounts[0]
        .requests
        .iter()
        .map(|r| r.envelope.kind)
        .collect()
}

#[tokio::test]
async fn a_strangers_starts_do_not_use_up_the_persons_own() {
    let h = Harness::start_with(no_bucket).await;
    let (_, phone) = h.person(USER).await;
    let stranger = endpoint_from(&h, stranger_ip());
    let stranger_portal = SelfServiceClient::new(stranger.clone());

    // Three new-device starts and five self-service starts by a stranger
    // (before, three of each used up the person's hour).
    for _ in 0..3 {
        start_enrolment(&stranger, USER).await.unwrap();
    }
    for i in 0..CHANGE_STARTS {
        stranger_portal
            .start_contact_change(USER, ContactChannel::Email, &format!("x{i}@example.org"))
            .await
            .unwrap();
    }
    // The stranger's next ones are refused, to the stranger only.
    let (status, body) = start_enrolment(&stranger, USER).await.unwrap_err();
    assert_eq!((status, body.error.code), (429, ErrorCode::RateLimited));
    assert_code(
        stranger_portal
            .start_contact_change(USER, ContactChannel::Email, "y@example.org")
            .await,
        ErrorCode::RateLimited,
    );

    // The person's own start from their own address is real: its request
    // reaches the phone (before, it was a decoy: 201, nothing stored).
    let portal = SelfServiceClient::new(h.endpoint.clone());
    let step = portal
        .start_contact_change(USER, ContactChannel::Email, "grete@example.org")
        .await
        .unwrap();
    let pulled = SoftPhone::pull(&h.endpoint, &[&phone], h.now())
        .await
        .unwrap();
    assert!(
        pulled.accounts[0]
            .requests
            .iter()
            .any(|r| r.envelope.request_id == step.request_id),
        "the person's own self-service login reaches the phone"
    );

    // And the person's own new phone: its request shows beside the
    // stranger's, each with its own code, none hidden.
    start_enrolment(&h.endpoint, USER).await.unwrap();
    let new_devices = pulled_kinds(&h, &phone)
        .await
        .into_iter()
        .filter(|k| *k == RequestKind::NewDevice)
        .count();
    assert_eq!(new_devices, 4, "every waiting enrolment shows on the phone");
}

#[tokio::test]
async fn an_hour_later_the_stranger_may_start_again() {
    let h = Harness::start_with(no_bucket).await;
    h.person(USER).await;
    let stranger = SelfServiceClient::new(endpoint_from(&h, stranger_ip()));
    for _ in 0..CHANGE_STARTS {
        stranger
            .start_contact_change(USER, ContactChannel::Email, "x@example.org")
            .await
            .unwrap();
    }
    assert_code(
        stranger
            .start_contact_change(USER, ContactChannel::Email, "x@example.org")
            .await,
        ErrorCode::RateLimited,
    );
    // Unknown user IDs count the same per source (no oracle in the 429).
    for _ in 0..CHANGE_STARTS {
        stranger
            .start_contact_change("nobody#1950x", ContactChannel::Email, "x@example.org")
            .await
            .unwrap();
    }
    assert_code(
        stranger
            .start_contact_change("nobody#1950x", ContactChannel::Email, "x@example.org")
            .await,
        ErrorCode::RateLimited,
    );
    h.clock.advance_ms(HOUR_MS);
    stranger
        .start_contact_change(USER, ContactChannel::Email, "x@example.org")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_strangers_wrong_activation_codes_do_not_void_the_persons_code() {
    let h = Harness::start_with(no_bucket).await;
    let identity = h
        .admin
        .create_identity(USER, None)
        .await
        .unwrap()
        .identity_id;
    let code = h.admin.issue_activation_code(identity).await.unwrap();
    let stranger = endpoint_from(&h, stranger_ip());
    let mut guesser = SoftPhone::new();
    for _ in 0..3 {
        assert_code(
            guesser.activate(&stranger, USER, "AAAAA-AAAAA").await,
            ErrorCode::InvalidActivationCode,
        );
    }
    // The person's letter still works.
    let mut phone = SoftPhone::new();
    phone
        .activate(&h.endpoint, USER, &code.activation_code)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_source_that_keeps_guessing_activation_codes_must_wait_longer_and_longer() {
    let h = Harness::start_with(no_bucket).await;
    let identity = h
        .admin
        .create_identity(USER, None)
        .await
        .unwrap()
        .identity_id;
    let code = h.admin.issue_activation_code(identity).await.unwrap();
    let stranger = endpoint_from(&h, stranger_ip());
    let mut guesser = SoftPhone::new();
    for _ in 0..5 {
        assert_code(
            guesser.activate(&stranger, USER, "AAAAA-AAAAA").await,
            ErrorCode::InvalidActivationCode,
        );
    }
    // Past the free tries: refused before the code is looked at, to this
    // source only, with a wait that grows with each wrong code.
    let retry_after = |e: Result<_, ApiFailure>| match e {
        Err(ApiFailure::Server { body, .. }) => {
            assert_eq!(body.error.code, ErrorCode::RateLimited);
            body.error.message
        }
        other => panic!("expected rate_limited, got {other:?}"),
    };
    let first = retry_after(guesser.activate(&stranger, USER, "AAAAA-AAAAA").await);
    assert!(first.contains("60 s"), "{first}");
    h.clock.advance_ms(60_000);
    assert_code(
        guesser.activate(&stranger, USER, "AAAAA-AAAAA").await,
        ErrorCode::InvalidActivationCode,
    );
    let second = retry_after(guesser.activate(&stranger, USER, "AAAAA-AAAAA").await);
    assert!(second.contains("120 s"), "{second}");
    // The person, elsewhere, is not affected; six wrong tries did not void
    // the code.
    let mut phone = SoftPhone::new();
    phone
        .activate(&h.endpoint, USER, &code.activation_code)
        .await
        .unwrap();
}

#[tokio::test]
async fn twenty_wrong_codes_from_many_sources_void_the_code_and_tell_the_person() {
    let h = Harness::start_with(no_bucket).await;
    let identity = h
        .admin
        .create_identity(USER, None)
        .await
        .unwrap()
        .identity_id;
    let code = h.admin.issue_activation_code(identity).await.unwrap();
    let mut guesser = SoftPhone::new();
    for i in 0..20u8 {
        let from = endpoint_from(&h, IpAddr::V4(Ipv4Addr::new(127, 0, 1, i / 4 + 1)));
        assert_code(
            guesser.activate(&from, USER, "AAAAA-AAAAA").await,
            ErrorCode::InvalidActivationCode,
        );
    }
    let mut phone = SoftPhone::new();
    assert_code(
        phone
            .activate(&h.endpoint, USER, &code.activation_code)
            .await,
        ErrorCode::InvalidActivationCode,
    );
    let info = h.admin.identity(identity).await.unwrap();
    assert!(info.authenticators.is_empty());
    // Told once (the event goes to the person's SMS, e-mail and feed).
    let db = rusqlite::Connection::open(&h.server().database_path).unwrap();
    let voided: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM security_events WHERE kind = 'activation_code_voided'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(voided, 1);
}

#[tokio::test]
async fn a_provider_asking_for_unknown_user_ids_is_counted_in_its_flood_window() {
    let h = Harness::start_with(|c| {
        no_bucket(c);
        c.floods.per_provider_per_minute = 5;
    })
    .await;
    for i in 0..5 {
        assert_code(
            h.rp.create_request(
                &format!("nobody{i}#1950x"),
                RequestKind::Login,
                "Log ind",
                None,
            )
            .await,
            ErrorCode::UnknownIdentity,
        );
    }
    assert_code(
        h.rp.create_request("nobody9#1950x", RequestKind::Login, "Log ind", None)
            .await,
        ErrorCode::RateLimited,
    );
    h.clock.advance_ms(60_000);
    assert_code(
        h.rp.create_request("nobody9#1950x", RequestKind::Login, "Log ind", None)
            .await,
        ErrorCode::UnknownIdentity,
    );
}

#[tokio::test]
async fn answers_for_known_and_unknown_user_ids_look_the_same() {
    let h = Harness::start_with(no_bucket).await;
    h.person(USER).await;
    let raw = |path: &'static str, body: serde_json::Value| {
        let endpoint = h.endpoint.clone();
        async move {
            let resp = endpoint
                .client
                .post(format!("{}{}", endpoint.base_url, path))
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body: serde_json::Value = resp.json().await.unwrap();
            (status, body)
        }
    };
    // The shape of a JSON value: its keys, recursively, without the values.
    fn shape(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => m
                .iter()
                .map(|(k, v)| (k.clone(), shape(v)))
                .collect::<serde_json::Map<_, _>>()
                .into(),
            serde_json::Value::String(_) => "string".into(),
            serde_json::Value::Number(_) => "number".into(),
            other => other.clone(),
        }
    }
    for user in [USER, "nobody#1950x"] {
        let (status, body) = raw(
            wire::PATH_SELF_SERVICE_CONTACT_CHANGES,
            serde_json::json!({"user_id": user, "channel": "email", "new_value": "a@example.org"}),
        )
        .await;
        assert_eq!(status, 201, "{user}");
        assert_eq!(
            shape(&body),
            serde_json::json!({"change_id": "string", "request_id": "string", "expires_at_ms": "number", "binding_code": "string"}),
            "{user}"
        );
    }
    let mut bodies = Vec::new();
    for user in [USER, "nobody#1950x"] {
        let (status, body) = raw(
            wire::PATH_ACTIVATE,
            serde_json::to_value(activation_body(user)).unwrap(),
        )
        .await;
        bodies.push((status, body));
    }
    assert_eq!(bodies[0], bodies[1], "a wrong code reads the same for both");
    assert_eq!(bodies[0].0, 403);
}

/// A signed activation body with a wrong code for `user`.
fn activation_body(user: &str) -> wire::ActivateRequest {
    let phone = SoftPhone::new();
    let proof = eid_protocol::messages::ActivationProof {
        user_id: user,
        device_public_key: phone.device_key.public_key(),
        pin_public_key: phone.pin_key.public_key(),
    }
    .signing_bytes();
    wire::ActivateRequest {
        user_id: user.into(),
        activation_code: "AAAAA-AAAAA".into(),
        device_public_key: phone.device_key.public_key().clone(),
        pin_public_key: phone.pin_key.public_key().clone(),
        device_signature: phone.device_key.sign(&proof),
        pin_signature: phone.pin_key.sign(&proof),
    }
}
