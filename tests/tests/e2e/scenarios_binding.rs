//! Channel binding from the login screen (docs/threat-model.md): a service provider asks
//! the server for a binding; the server returns a short code to type or a
//! secret for a QR code that changes every second, to the service provider only.
//! The phone signs the code it was given; the server checks it (a rotating
//! code only within 30 s back and 3 s ahead of its clock) and three wrong
//! codes cancel the request. One test per attack.

use eid_api_client::{Endpoint, SoftPhone};
use eid_core::Error;
use eid_e2e_tests::{PIN, Phone, World};
use eid_protocol::binding::canonical_binding_code;
use eid_protocol::wire::{BindingMode, CreateRequestRequest, ErrorCode, RequestStatus};
use eid_protocol::{Outcome, RequestId, RequestKind};

use crate::support::error_code;

const USER: &str = "grete#1950x";
const TEXT: &str = "Log på Netbank";

/// The service provider creates a login with a server-made binding.
async fn bound_login(w: &World, mode: BindingMode) -> eid_protocol::wire::RequestCreated {
    w.rp.create_bound_request(USER, RequestKind::Login, TEXT, mode)
        .await
        .unwrap()
}

/// Unlocks and swipes with `code` (what the person scanned or typed).
async fn approve_with(phone: &Phone, request: RequestId, code: Option<&str>) -> Result<(), Error> {
    let acc = phone.app.authenticators().unwrap()[0].authenticator_id;
    let unlock = phone.app.unlock(&acc, &request, PIN).await?;
    phone.app.approve(&unlock, true, code).await.map(|_| ())
}

async fn status(w: &World, request: RequestId) -> RequestStatus {
    w.rp_status(request, TEXT).await.unwrap().status
}

#[tokio::test]
async fn relayed_login_without_the_screen_code_is_refused() {
    // The real-time phishing relay: the scammer types the victim's user ID
    // into the bank's real login page; the bank's screen (with the rotating
    // QR) is in front of the scammer, not the victim. The victim gets the
    // push and tries to approve.
    let w = World::start().await.unwrap();
    let person = w.person(USER).await.unwrap();
    let phone = w.phone("victim").unwrap();
    phone.app.activate(USER, &person.code, PIN).await.unwrap();
    let created = bound_login(&w, BindingMode::Qr).await;
    let request = created.request_id;
    let secret = created.binding_secret.clone().unwrap();

    // The app knows a code is needed, and never got it (nor the secret).
    let views = phone.app.refresh().await.unwrap();
    assert_eq!(views.len(), 1);
    assert!(
        views[0]
            .warnings
            .iter()
            .any(|w| w.kind == eid_core::WarningKind::BindingCodeRequired)
    );
    // Without the screen, the app has nothing to send.
    assert_eq!(
        approve_with(&phone, request, None).await.unwrap_err(),
        Error::BindingCodeRequired
    );
    // A code the victim makes up (or a stale one the scammer read aloud from
    // another session) is refused by the server; the third cancels.
    assert_eq!(
        approve_with(&phone, request, Some("ABCD-EFGH"))
            .await
            .unwrap_err(),
        Error::WrongBindingCode
    );
    assert_eq!(status(&w, request).await, RequestStatus::Pending);

    // A patched app that skips the core's check and approves without a code
    // is refused by the server, which counts it as a wrong code.
    let endpoint = Endpoint::new(&w.base_url(), &w.spki_pin).unwrap();
    let mut patched = SoftPhone::new();
    let code = w
        .admin
        .issue_activation_code(person.identity_id)
        .await
        .unwrap();
    patched
        .activate(&endpoint, USER, &code.activation_code)
        .await
        .unwrap();
    let pulled = SoftPhone::pull(&endpoint, &[&patched], w.now_ms())
        .await
        .unwrap();
    let envelope = pulled.accounts[0].requests[0].envelope.clone();
    assert!(envelope.binding_required);
    // The phone's view of the request carries neither the secret nor a code.
    let pulled_json = serde_json::to_string(&pulled).unwrap();
    assert!(!pulled_json.contains(&secret.to_hex()));
    assert!(!pulled_json.contains(&secret.code_at(w.now_ms())));
    let unbound = patched.decide(&envelope, Outcome::Approve, None, true);
    assert_eq!(
        error_code(&patched.submit(&endpoint, &unbound).await.unwrap_err()),
        ErrorCode::BindingMismatch
    );
    assert_eq!(status(&w, request).await, RequestStatus::Pending);
    // Third wrong code: the request is cancelled, and even the right code
    // cannot approve it any more.
    let guessed = patched.decide(&envelope, Outcome::Approve, Some("ZZZZ2222".into()), true);
    assert_eq!(
        error_code(&patched.submit(&endpoint, &guessed).await.unwrap_err()),
        ErrorCode::RequestClosed
    );
    assert_eq!(status(&w, request).await, RequestStatus::Cancelled);
    let right = patched.decide(
        &envelope,
        Outcome::Approve,
        Some(secret.qr_payload_at(w.now_ms())),
        true,
    );
    assert_eq!(
        error_code(&patched.submit(&endpoint, &right).await.unwrap_err()),
        ErrorCode::RequestClosed
    );
    assert_eq!(status(&w, request).await, RequestStatus::Cancelled);
}

#[tokio::test]
async fn rotating_qr_code_is_accepted_within_its_window() {
    let w = World::start().await.unwrap();
    let phone = w.activated_phone("grete", USER).await.unwrap();
    let created = bound_login(&w, BindingMode::Qr).await;
    assert!(created.binding_code.is_none());
    let secret = created.binding_secret.clone().unwrap();
    // The JSON the service provider got carries the secret as 64 hex digits.
    assert_eq!(secret.to_hex().len(), 64);

    // The screen shows a new QR every second.
    let shown_at = w.now_ms();
    let scanned = secret.qr_payload_at(shown_at);
    assert!(scanned.starts_with("eid-bind:v1:"));
    assert_ne!(scanned, secret.qr_payload_at(shown_at + 1_000));
    phone.app.refresh().await.unwrap();

    // Scanned, then PIN and swipe take 25 s: still inside the window.
    w.advance(25_000, &[&phone]);
    approve_with(&phone, created.request_id, Some(&scanned))
        .await
        .unwrap();
    assert_eq!(
        status(&w, created.request_id).await,
        RequestStatus::Approved
    );

    // A login screen whose clock runs 2 s ahead of the server's: accepted.
    let ahead = bound_login(&w, BindingMode::Qr).await;
    let ahead_secret = ahead.binding_secret.clone().unwrap();
    phone.app.refresh().await.unwrap();
    approve_with(
        &phone,
        ahead.request_id,
        Some(&ahead_secret.qr_payload_at(w.now_ms() + 2_000)),
    )
    .await
    .unwrap();
    assert_eq!(status(&w, ahead.request_id).await, RequestStatus::Approved);

    // A code from 10 s in the future (precomputed with the secret, or a
    // screen far off) is refused; another request's code is refused too.
    let future = bound_login(&w, BindingMode::Qr).await;
    let future_secret = future.binding_secret.clone().unwrap();
    phone.app.refresh().await.unwrap();
    assert_eq!(
        approve_with(
            &phone,
            future.request_id,
            Some(&future_secret.qr_payload_at(w.now_ms() + 10_000)),
        )
        .await
        .unwrap_err(),
        Error::WrongBindingCode
    );
    assert_eq!(
        approve_with(
            &phone,
            future.request_id,
            Some(&ahead_secret.qr_payload_at(w.now_ms())),
        )
        .await
        .unwrap_err(),
        Error::WrongBindingCode
    );
    assert_eq!(status(&w, future.request_id).await, RequestStatus::Pending);
    // The current code, typed by hand from under the QR, lower case: accepted.
    let typed = future_secret.code_at(w.now_ms()).to_lowercase();
    approve_with(&phone, future.request_id, Some(&typed))
        .await
        .unwrap();
    assert_eq!(status(&w, future.request_id).await, RequestStatus::Approved);
}

#[tokio::test]
async fn photographed_qr_code_replayed_after_the_window_is_refused() {
    let w = World::start().await.unwrap();
    let phone = w.activated_phone("grete", USER).await.unwrap();
    let created = bound_login(&w, BindingMode::Qr).await;
    let secret = created.binding_secret.clone().unwrap();
    // Someone photographs the login screen's QR ...
    let photo = secret.qr_payload_at(w.now_ms());
    phone.app.refresh().await.unwrap();
    // ... and gets the victim to scan the photo 31 s later.
    w.advance(31_000, &[&phone]);
    assert_eq!(
        approve_with(&phone, created.request_id, Some(&photo))
            .await
            .unwrap_err(),
        Error::WrongBindingCode
    );
    // Much later, still refused, and it counts: the second wrong try.
    w.advance(120_000, &[&phone]);
    assert_eq!(
        approve_with(&phone, created.request_id, Some(&photo))
            .await
            .unwrap_err(),
        Error::WrongBindingCode
    );
    assert_eq!(status(&w, created.request_id).await, RequestStatus::Pending);
    // The person in front of the real screen scans the live QR: accepted.
    approve_with(
        &phone,
        created.request_id,
        Some(&secret.qr_payload_at(w.now_ms())),
    )
    .await
    .unwrap();
    assert_eq!(
        status(&w, created.request_id).await,
        RequestStatus::Approved
    );

    // Replay the photo three times on a fresh request: the third cancels it.
    let next = bound_login(&w, BindingMode::Qr).await;
    let next_secret = next.binding_secret.clone().unwrap();
    let photo = next_secret.qr_payload_at(w.now_ms());
    phone.app.refresh().await.unwrap();
    w.advance(40_000, &[&phone]);
    for _ in 0..2 {
        assert_eq!(
            approve_with(&phone, next.request_id, Some(&photo))
                .await
                .unwrap_err(),
            Error::WrongBindingCode
        );
    }
    assert!(
        approve_with(&phone, next.request_id, Some(&photo))
            .await
            .is_err()
    );
    assert_eq!(status(&w, next.request_id).await, RequestStatus::Cancelled);
}

#[tokio::test]
async fn typed_short_code_from_the_screen_is_accepted_and_a_guess_is_refused() {
    let w = World::start().await.unwrap();
    let phone = w.activated_phone("grete", USER).await.unwrap();
    let created = bound_login(&w, BindingMode::Code).await;
    assert!(created.binding_secret.is_none());
    let code = created.binding_code.clone().unwrap();
    assert_eq!(code.len(), 8);
    assert_eq!(canonical_binding_code(&code).unwrap(), code);
    // Codes differ per request.
    let other = bound_login(&w, BindingMode::Code).await;
    assert_ne!(other.binding_code.as_deref(), Some(code.as_str()));
    phone.app.refresh().await.unwrap();

    // A typed code does not rotate: reading and typing may take a minute.
    w.advance(60_000, &[&phone]);
    // Another request's code is refused.
    assert_eq!(
        approve_with(&phone, created.request_id, other.binding_code.as_deref())
            .await
            .unwrap_err(),
        Error::WrongBindingCode
    );
    // Typed as people type: lower case, with a hyphen.
    let typed = format!("{}-{}", &code[..4], &code[4..]).to_lowercase();
    approve_with(&phone, created.request_id, Some(&typed))
        .await
        .unwrap();
    assert_eq!(
        status(&w, created.request_id).await,
        RequestStatus::Approved
    );

    // Guessing the other request's code: three tries, then it is cancelled.
    for guess in ["AAAA2222", "BBBB3333"] {
        assert_eq!(
            approve_with(&phone, other.request_id, Some(guess))
                .await
                .unwrap_err(),
            Error::WrongBindingCode
        );
    }
    assert!(
        approve_with(&phone, other.request_id, Some("CCCC4444"))
            .await
            .is_err()
    );
    assert_eq!(status(&w, other.request_id).await, RequestStatus::Cancelled);
}

#[tokio::test]
async fn relying_party_static_code_still_works() {
    let w = World::start().await.unwrap();
    let phone = w.activated_phone("grete", USER).await.unwrap();
    let created =
        w.rp.create_request(USER, RequestKind::Login, TEXT, Some("k7-42qx"))
            .await
            .unwrap();
    // Nothing is handed back for a code the service provider chose itself.
    assert!(created.binding_code.is_none() && created.binding_secret.is_none());
    phone.app.refresh().await.unwrap();
    approve_with(&phone, created.request_id, Some("eid-bind:v1:K742QX"))
        .await
        .unwrap();
    assert_eq!(
        status(&w, created.request_id).await,
        RequestStatus::Approved
    );
}

#[tokio::test]
async fn malformed_binding_option_is_a_typed_error_and_creates_nothing() {
    let w = World::start().await.unwrap();
    let phone = w.activated_phone("grete", USER).await.unwrap();
    let sp = w
        .admin
        .register_service_provider("Anden Bank")
        .await
        .unwrap();
    let endpoint = Endpoint::new(&w.base_url(), &w.spki_pin).unwrap();
    let post = |body: serde_json::Value| {
        let endpoint = endpoint.clone();
        let key = sp.api_key.clone();
        async move {
            let response = endpoint
                .client
                .post(format!("{}/v1/rp/requests", endpoint.base_url))
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: eid_protocol::wire::ErrorBody = response.json().await.unwrap();
            (status, body.error.code)
        }
    };
    let base = |binding: serde_json::Value| {
        serde_json::json!({
            "user_id": USER, "kind": "login", "reference_text": TEXT, "binding": binding,
        })
    };
    for bad in [
        serde_json::json!("sms"),
        serde_json::json!("QR"),
        serde_json::json!(""),
        serde_json::json!(1),
        serde_json::json!({"qr": true}),
    ] {
        assert_eq!(
            post(base(bad.clone())).await,
            (400, ErrorCode::MalformedRequest),
            "{bad}"
        );
    }
    // Both a code of its own and a server binding: which one would count?
    let both = CreateRequestRequest {
        user_id: USER.into(),
        kind: RequestKind::Login,
        reference_text: TEXT.into(),
        binding_code: Some("K742QX".into()),
        binding: Some(BindingMode::Qr),
    };
    assert_eq!(
        error_code(&w.rp.create_request_with(&both).await.unwrap_err()),
        ErrorCode::InvalidParameter
    );
    // A bad code of its own is refused as before.
    assert_eq!(
        error_code(
            &w.rp
                .create_request(USER, RequestKind::Login, TEXT, Some("K7\u{200b}42"))
                .await
                .unwrap_err()
        ),
        ErrorCode::InvalidParameter
    );
    // A binding for an unknown person is refused before any secret is made.
    assert_eq!(
        error_code(
            &w.rp
                .create_bound_request("nobody#1", RequestKind::Login, TEXT, BindingMode::Qr)
                .await
                .unwrap_err()
        ),
        ErrorCode::UnknownIdentity
    );
    // Nothing reached the phone.
    assert!(phone.app.refresh().await.unwrap().is_empty());
    // `null` is the same as leaving it out (old service providers).
    let (status, _) = {
        let response = endpoint
            .client
            .post(format!("{}/v1/rp/requests", endpoint.base_url))
            .bearer_auth(&sp.api_key)
            .json(&base(serde_json::Value::Null))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), ())
    };
    assert_eq!(status, 201);
    let views = phone.app.refresh().await.unwrap();
    assert_eq!(views.len(), 1);
    assert!(
        !views[0]
            .warnings
            .iter()
            .any(|w| w.kind == eid_core::WarningKind::BindingCodeRequired)
    );

    // The wire additions are in the published API description.
    let doc = w.openapi().await.unwrap();
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["BindingMode"].is_object(), "BindingMode documented");
    assert!(schemas["CreateRequestRequest"]["properties"]["binding"].is_object());
    assert!(schemas["RequestCreated"]["properties"]["binding_secret"].is_object());
    assert!(schemas["RequestCreated"]["properties"]["binding_code"].is_object());
}
