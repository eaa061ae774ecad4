//! A new device added from an existing one (docs/threat-model.md): the new phone asks
//! and shows a code, the existing phone approves a new-device request (PIN,
//! swipe, the code), a waiting period of an hour follows during which the
//! existing phone sees the new device and can cancel it, every step is a
//! security event, and a cap limits devices per identity.

use std::time::Duration;

use eid_api_client::SoftPhone;
use eid_core::{EnrolmentStatus, Error, PendingDeviceState, WarningKind};
use eid_e2e_tests::{HOUR_MS, MINUTE_MS, PIN, Person, Phone, World};
use eid_protocol::crypto::SoftwareSigningKey;
use eid_protocol::wire::{
    self, EnrolmentStarted, EnrolmentState, EnrolmentStatusRequest, EnrolmentStatusResponse,
    ErrorBody, ErrorCode, RequestStatus, StartEnrolmentRequest,
};
use eid_protocol::{
    ActivationProof, AuthenticatorId, EnrolmentProof, IdentityId, Nonce16, RequestKind,
};

const TEXT: &str = "Log på Nordisk Netbank";

/// A person with one activated phone ("a").
async fn person_with_phone(w: &World, user: &str) -> (Person, Phone, AuthenticatorId) {
    let person = w.person(user).await.unwrap();
    let (phone, acc) = w
        .activated_for(&person, &format!("{user}-a"))
        .await
        .unwrap();
    (person, phone, acc)
}

/// The existing phone pulls and returns the new-device request it shows.
async fn new_device_request(phone: &Phone) -> eid_core::RequestView {
    let views = phone.app.refresh().await.unwrap();
    let mut new_device: Vec<_> = views
        .into_iter()
        .filter(|v| v.kind == RequestKind::NewDevice)
        .collect();
    assert_eq!(new_device.len(), 1, "exactly one new-device request");
    new_device.pop().unwrap()
}

/// The existing phone approves the new-device request with PIN, swipe and `code`.
async fn approve_with_code(
    phone: &Phone,
    acc: &AuthenticatorId,
    code: &str,
) -> eid_core::Result<()> {
    let view = new_device_request(phone).await;
    let unlock = phone.app.unlock(acc, &view.request_id, PIN).await?;
    phone.app.approve(&unlock, true, Some(code)).await?;
    Ok(())
}

/// The security events recorded for an identity, oldest first (the outbox
/// that the app's feed and the SMS/e-mail dispatcher read).
fn events(w: &World, identity: IdentityId) -> Vec<String> {
    let db = w.read_database().unwrap();
    let mut stmt = db
        .prepare("SELECT kind FROM security_events WHERE identity_id = ?1 ORDER BY id")
        .unwrap();
    stmt.query_map([identity.as_bytes().as_slice()], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The SMS and e-mail deliveries queued for an identity's new-device events:
/// (event kind, channel, address), sorted.
fn deliveries(w: &World, identity: IdentityId) -> Vec<(String, String, String)> {
    let db = w.read_database().unwrap();
    let mut stmt = db
        .prepare(
            "SELECT e.kind, d.channel, d.address FROM event_deliveries d \
             JOIN security_events e ON e.id = d.event_id \
             WHERE e.identity_id = ?1 AND e.kind LIKE 'new_device%' ORDER BY e.id, d.channel",
        )
        .unwrap();
    stmt.query_map([identity.as_bytes().as_slice()], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// The identity's device events since its first device was activated (that
/// activation's own `device_activated` is left out).
fn new_device_events(w: &World, identity: IdentityId) -> Vec<String> {
    events(w, identity)
        .into_iter()
        .filter(|k| k.starts_with("new_device") || k == "device_activated")
        .skip_while(|k| k == "device_activated")
        .collect()
}

async fn authenticator_count(w: &World, identity: IdentityId) -> usize {
    w.admin
        .identity(identity)
        .await
        .unwrap()
        .authenticators
        .len()
}

#[tokio::test]
async fn new_device_happy_path_waits_an_hour_then_works() {
    let w = World::start().await.unwrap();
    let user = "grete#1950x";
    let (person, a, acc_a) = person_with_phone(&w, user).await;
    let b = w.phone("grete-b").unwrap();

    let enrolment = b.app.start_device_enrolment(user, PIN).await.unwrap();
    assert_eq!(enrolment.code.len(), 8);
    assert_eq!(
        enrolment.qr_payload,
        format!("eid-bind:v1:{}", enrolment.code)
    );
    assert_eq!(
        b.app.pending_device_enrolment().unwrap(),
        Some(enrolment.clone())
    );
    assert_eq!(
        b.app.poll_device_enrolment().await.unwrap(),
        EnrolmentStatus::AwaitingApproval
    );

    // Phone A sees the request with the strongest warning, from the eID itself.
    let view = new_device_request(&a).await;
    assert!(
        view.warnings
            .iter()
            .any(|x| x.kind == WarningKind::NewDevice),
        "{:?}",
        view.warnings
    );
    assert_eq!(
        view.provider_name.as_deref(),
        Some(eid_protocol::SELF_SERVICE_PROVIDER_NAME)
    );
    let text = view.reference_text.clone().unwrap();
    assert!(
        text.contains("Tilføj ny enhed") && text.contains("Add a new device"),
        "{text}"
    );
    let pending = a.app.pending_devices(&acc_a).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].state, PendingDeviceState::AwaitingApproval);
    assert_eq!(pending[0].enrolment_id, enrolment.enrolment_id);

    // The code is required to approve.
    let unlock = a.app.unlock(&acc_a, &view.request_id, PIN).await.unwrap();
    assert_eq!(
        a.app.approve(&unlock, true, None).await,
        Err(Error::BindingCodeRequired)
    );
    // Scanning the new phone's QR code hands its payload to the core as is.
    a.app
        .approve(&unlock, true, Some(&enrolment.qr_payload))
        .await
        .unwrap();

    // The waiting period, by the server's clock.
    let Ok(EnrolmentStatus::Waiting {
        usable_at_ms,
        remaining_ms,
    }) = b.app.poll_device_enrolment().await
    else {
        panic!("expected waiting");
    };
    assert_eq!(remaining_ms, HOUR_MS);
    assert_eq!(usable_at_ms, w.now_ms() + HOUR_MS);
    a.app.refresh().await.unwrap();
    let pending = a.app.pending_devices(&acc_a).unwrap();
    assert_eq!(pending[0].state, PendingDeviceState::Waiting);
    assert_eq!(pending[0].usable_at_ms, Some(usable_at_ms));

    w.advance(59 * MINUTE_MS, &[&a, &b]);
    assert!(matches!(
        b.app.poll_device_enrolment().await,
        Ok(EnrolmentStatus::Waiting { remaining_ms, .. }) if remaining_ms == MINUTE_MS
    ));
    assert_eq!(authenticator_count(&w, person.identity_id).await, 1);
    // Even a login request now does not reach the new phone.
    assert!(b.app.authenticators().unwrap().is_empty());

    w.advance(MINUTE_MS, &[&a, &b]);
    let EnrolmentStatus::Activated(authenticator) = b.app.poll_device_enrolment().await.unwrap()
    else {
        panic!("expected activation");
    };
    assert_eq!(authenticator.authenticator_id, enrolment.enrolment_id);
    assert_eq!(authenticator.identity_id, person.identity_id);
    assert_eq!(b.app.authenticators().unwrap(), vec![authenticator.clone()]);
    assert_eq!(b.app.pending_device_enrolment().unwrap(), None);
    assert_eq!(
        b.app.poll_device_enrolment().await,
        Err(Error::NoPendingEnrolment)
    );
    assert_eq!(authenticator_count(&w, person.identity_id).await, 2);
    a.app.refresh().await.unwrap();
    assert!(a.app.pending_devices(&acc_a).unwrap().is_empty());
    assert_eq!(
        new_device_events(&w, person.identity_id),
        [
            "new_device_requested",
            "new_device_approved",
            "device_activated"
        ]
    );

    // The new phone approves a login with its own PIN.
    let request = w.login(user, TEXT).await.unwrap();
    let views = b.app.refresh().await.unwrap();
    assert_eq!(views.len(), 1);
    let unlock = b
        .app
        .unlock(&authenticator.authenticator_id, &request, PIN)
        .await
        .unwrap();
    let receipt = b.app.approve(&unlock, true, None).await.unwrap();
    assert_eq!(
        receipt.receipt.authenticator_id,
        authenticator.authenticator_id
    );
    assert_eq!(
        w.rp_status(request, TEXT).await.unwrap().status,
        RequestStatus::Approved
    );
}

#[tokio::test]
async fn scammer_adds_a_new_phone_is_stopped_by_waiting_period_notification_and_cancel() {
    let w = World::start().await.unwrap();
    let user = "victim#1950x";
    // The victim has a phone number and e-mail on file: every step reaches them.
    let identity = w
        .admin
        .create_identity_with(&wire::CreateIdentityRequest {
            user_id: user.into(),
            display_name: None,
            phone: Some("+4520304050".into()),
            email: Some("victim@example.dk".into()),
        })
        .await
        .unwrap()
        .identity_id;
    let code = w
        .admin
        .issue_activation_code(identity)
        .await
        .unwrap()
        .activation_code;
    let victim = w.phone("victim").unwrap();
    let acc = victim
        .app
        .activate(user, &code, PIN)
        .await
        .unwrap()
        .authenticator_id;
    let scammer = w.phone("scammer").unwrap();

    // "The bank" phones: "approve the security check and read me the code".
    let enrolment = scammer
        .app
        .start_device_enrolment(user, "529174")
        .await
        .unwrap();
    approve_with_code(&victim, &acc, &enrolment.code)
        .await
        .unwrap();
    assert!(matches!(
        scammer.app.poll_device_enrolment().await,
        Ok(EnrolmentStatus::Waiting { .. })
    ));
    // The waiting period holds: the scammer cannot use the identity yet.
    w.advance(30 * MINUTE_MS, &[&victim, &scammer]);
    assert!(matches!(
        scammer.app.poll_device_enrolment().await,
        Ok(EnrolmentStatus::Waiting { .. })
    ));
    assert!(scammer.app.authenticators().unwrap().is_empty());
    // The notifications went out (the outbox feeds the app, SMS and e-mail).
    assert_eq!(
        new_device_events(&w, identity),
        ["new_device_requested", "new_device_approved"]
    );
    assert_eq!(
        deliveries(&w, identity),
        [
            (
                "new_device_requested".into(),
                "email".into(),
                "victim@example.dk".into()
            ),
            (
                "new_device_requested".into(),
                "sms".into(),
                "+4520304050".into()
            ),
            (
                "new_device_approved".into(),
                "email".into(),
                "victim@example.dk".into()
            ),
            (
                "new_device_approved".into(),
                "sms".into(),
                "+4520304050".into()
            ),
        ]
    );

    // The victim opens the app, sees the new device and cancels it (no PIN).
    victim.app.refresh().await.unwrap();
    let pending = victim.app.pending_devices(&acc).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].state, PendingDeviceState::Waiting);
    victim
        .app
        .cancel_device_enrolment(&acc, &pending[0].enrolment_id)
        .await
        .unwrap();
    assert!(victim.app.pending_devices(&acc).unwrap().is_empty());
    assert_eq!(
        new_device_events(&w, identity),
        [
            "new_device_requested",
            "new_device_approved",
            "new_device_cancelled"
        ]
    );

    // The scammer's phone gets a typed refusal and its keys are gone.
    assert_eq!(
        scammer.app.poll_device_enrolment().await,
        Err(Error::EnrolmentRefused)
    );
    assert_eq!(scammer.app.pending_device_enrolment().unwrap(), None);
    // Never, even after the hour, and not by replaying its own status call.
    w.advance(2 * HOUR_MS, &[&victim, &scammer]);
    let mut soft = SoftPhone::new();
    soft.authenticator_id = Some(enrolment.enrolment_id);
    assert_eq!(
        status_code(&w, &soft, enrolment.enrolment_id).await,
        Err(ErrorCode::InvalidSignature),
        "another key cannot poll the enrolment"
    );
    assert_eq!(authenticator_count(&w, identity).await, 1);
    assert!(scammer.app.authenticators().unwrap().is_empty());
    // Cancelling again: typed, nothing changes.
    assert_eq!(
        (victim
            .app
            .cancel_device_enrolment(&acc, &enrolment.enrolment_id)
            .await)
            .err()
            .and_then(|e| e.server_code()),
        Some(ErrorCode::EnrolmentClosed)
    );
    assert_eq!(new_device_events(&w, identity).len(), 3);
}

#[tokio::test]
async fn wrong_code_is_refused_and_deny_or_this_wasnt_me_cancels_the_enrolment() {
    let w = World::start().await.unwrap();
    for (i, outcome) in ["deny", "fraud"].into_iter().enumerate() {
        let user = format!("bent#{i}1950x");
        let (person, a, acc) = person_with_phone(&w, &user).await;
        let b = w.phone(&format!("bent-b{i}")).unwrap();
        let enrolment = b.app.start_device_enrolment(&user, PIN).await.unwrap();
        let view = new_device_request(&a).await;
        let wrong = if enrolment.code == "00000000" {
            "00000001"
        } else {
            "00000000"
        };
        let unlock = a.app.unlock(&acc, &view.request_id, PIN).await.unwrap();
        assert_eq!(
            a.app.approve(&unlock, true, Some(wrong)).await,
            Err(Error::WrongBindingCode)
        );
        // Nothing changed: still awaiting approval.
        assert_eq!(
            b.app.poll_device_enrolment().await,
            Ok(EnrolmentStatus::AwaitingApproval)
        );
        if outcome == "deny" {
            a.app.deny(&acc, &view.request_id).await.unwrap();
        } else {
            a.app.report_fraud(&acc, &view.request_id).await.unwrap();
        }
        assert_eq!(
            b.app.poll_device_enrolment().await,
            Err(Error::EnrolmentRefused)
        );
        let kinds = new_device_events(&w, person.identity_id);
        assert_eq!(kinds, ["new_device_requested", "new_device_cancelled"]);
        a.app.refresh().await.unwrap();
        assert!(a.app.pending_devices(&acc).unwrap().is_empty());
    }

    // Three wrong codes cancel the request, and with it the enrolment.
    let user = "carl#1950x";
    let (_, a, acc) = person_with_phone(&w, user).await;
    let b = w.phone("carl-b").unwrap();
    let enrolment = b.app.start_device_enrolment(user, PIN).await.unwrap();
    let view = new_device_request(&a).await;
    let wrong = if enrolment.code == "11111111" {
        "22222222"
    } else {
        "11111111"
    };
    for _ in 0..2 {
        let unlock = a.app.unlock(&acc, &view.request_id, PIN).await.unwrap();
        assert_eq!(
            a.app.approve(&unlock, true, Some(wrong)).await,
            Err(Error::WrongBindingCode)
        );
    }
    let unlock = a.app.unlock(&acc, &view.request_id, PIN).await.unwrap();
    assert_eq!(
        (a.app.approve(&unlock, true, Some(wrong)).await)
            .err()
            .and_then(|e| e.server_code()),
        Some(ErrorCode::RequestClosed)
    );
    assert_eq!(
        b.app.poll_device_enrolment().await,
        Err(Error::EnrolmentRefused)
    );
}

#[tokio::test]
async fn an_undecided_new_device_request_expires_and_the_enrolment_dies() {
    let w = World::start().await.unwrap();
    let user = "dora#1950x";
    let (person, a, acc) = person_with_phone(&w, user).await;
    let b = w.phone("dora-b").unwrap();
    let enrolment = b.app.start_device_enrolment(user, PIN).await.unwrap();
    assert_eq!(enrolment.expires_at_ms, w.now_ms() + 5 * MINUTE_MS);
    w.advance(5 * MINUTE_MS, &[&a, &b]);
    assert!(a.app.refresh().await.unwrap().is_empty());
    assert!(a.app.pending_devices(&acc).unwrap().is_empty());
    assert_eq!(
        b.app.poll_device_enrolment().await,
        Err(Error::EnrolmentRefused)
    );
    assert_eq!(authenticator_count(&w, person.identity_id).await, 1);
    // A new enrolment can start afterwards.
    let again = b.app.start_device_enrolment(user, PIN).await.unwrap();
    assert_ne!(again.enrolment_id, enrolment.enrolment_id);
    approve_with_code(&a, &acc, &again.code).await.unwrap();
}

#[tokio::test]
async fn device_cap_refuses_a_fourth_device_and_blocked_or_unknown_ids_get_nothing() {
    let w = World::start().await.unwrap();
    let user = "erik#1950x";
    let (person, a, acc) = person_with_phone(&w, user).await;
    w.another_phone(&person, "erik-2").await.unwrap();
    // The third device is being added (counts toward the cap while waiting).
    let third = w.phone("erik-3").unwrap();
    let e3 = third.app.start_device_enrolment(user, PIN).await.unwrap();
    approve_with_code(&a, &acc, &e3.code).await.unwrap();
    let fourth = w.phone("erik-4").unwrap();
    assert_eq!(
        (fourth.app.start_device_enrolment(user, PIN).await)
            .err()
            .and_then(|e| e.server_code()),
        Some(ErrorCode::DeviceLimitReached)
    );
    assert_eq!(fourth.app.pending_device_enrolment().unwrap(), None);
    assert!(
        a.app.refresh().await.unwrap().is_empty(),
        "no request for the 4th"
    );
    w.advance(HOUR_MS, &[&a, &third, &fourth]);
    assert!(matches!(
        third.app.poll_device_enrolment().await,
        Ok(EnrolmentStatus::Activated(_))
    ));
    assert_eq!(authenticator_count(&w, person.identity_id).await, 3);
    assert_eq!(
        (fourth.app.start_device_enrolment(user, PIN).await)
            .err()
            .and_then(|e| e.server_code()),
        Some(ErrorCode::DeviceLimitReached)
    );

    // An unknown user ID and a blocked identity get an answer like any other
    // (no user enumeration), but no request is ever shown and the enrolment
    // can never complete.
    let (blocked, blocked_phone, blocked_acc) = person_with_phone(&w, "frida#1950x").await;
    w.admin
        .block(blocked.identity_id, "test: support case")
        .await
        .unwrap();
    let to_blocked = w.phone("frida-b").unwrap();
    let to_unknown = w.phone("nobody").unwrap();
    let e_blocked = to_blocked
        .app
        .start_device_enrolment("frida#1950x", PIN)
        .await
        .unwrap();
    let e_unknown = to_unknown
        .app
        .start_device_enrolment("nobody#1950x", PIN)
        .await
        .unwrap();
    for e in [&e_blocked, &e_unknown] {
        assert_eq!(e.code.len(), 8);
    }
    for phone in [&to_blocked, &to_unknown] {
        assert_eq!(
            phone.app.poll_device_enrolment().await,
            Ok(EnrolmentStatus::AwaitingApproval)
        );
    }
    w.admin
        .unblock(blocked.identity_id, "test: support case")
        .await
        .unwrap();
    assert!(blocked_phone.app.refresh().await.unwrap().is_empty());
    assert!(
        blocked_phone
            .app
            .pending_devices(&blocked_acc)
            .unwrap()
            .is_empty()
    );
    assert!(new_device_events(&w, blocked.identity_id).is_empty());
    w.advance(5 * MINUTE_MS, &[&to_blocked, &to_unknown]);
    for phone in [&to_blocked, &to_unknown] {
        assert_eq!(
            phone.app.poll_device_enrolment().await,
            Err(Error::EnrolmentRefused)
        );
    }
}

#[tokio::test]
async fn blocking_during_the_wait_kills_the_new_device_for_good() {
    let w = World::start().await.unwrap();
    let user = "gorm#1950x";
    let (person, a, acc) = person_with_phone(&w, user).await;
    let b = w.phone("gorm-b").unwrap();
    let e = b.app.start_device_enrolment(user, PIN).await.unwrap();
    approve_with_code(&a, &acc, &e.code).await.unwrap();
    // "I suspect abuse": the person blocks from the app.
    a.app.block_identity(&acc).await.unwrap();
    w.admin
        .unblock(person.identity_id, "test: support case")
        .await
        .unwrap();
    w.advance(HOUR_MS, &[&a, &b]);
    assert_eq!(
        b.app.poll_device_enrolment().await,
        Err(Error::EnrolmentRefused)
    );
    assert_eq!(authenticator_count(&w, person.identity_id).await, 1);
}

#[tokio::test]
async fn new_devices_await_approval_side_by_side_and_a_lost_answer_gets_the_same_enrolment() {
    let w = World::start().await.unwrap();
    let user = "hans#1950x";
    let (_, a, acc) = person_with_phone(&w, user).await;
    let mut first = SoftPhone::new();
    let request = enrolment_request(user, &first.device_key, &first.pin_key);
    let started = start_raw(&w, &request).await.unwrap();
    // The same keys again (a retry after a lost answer): the same enrolment;
    // and so for a decoy, so a retry does not tell an unknown user ID apart.
    assert_eq!(start_raw(&w, &request).await.unwrap(), started);
    let stranger = SoftPhone::new();
    let unknown = enrolment_request("nobody#1950x", &stranger.device_key, &stranger.pin_key);
    let decoy = start_raw(&w, &unknown).await.unwrap();
    assert_eq!(start_raw(&w, &unknown).await.unwrap(), decoy);
    first.authenticator_id = Some(started.enrolment_id);

    // Another new phone meanwhile (the person's own, or a stranger's): its
    // request shows beside the first, each with its own code, so neither
    // can hide the other (docs/threat-model.md, "Strangers who know a user
    // ID").
    let b = w.phone("hans-b").unwrap();
    let e = b.app.start_device_enrolment(user, PIN).await.unwrap();
    assert_ne!(e.enrolment_id, started.enrolment_id);
    let views: Vec<_> = a
        .app
        .refresh()
        .await
        .unwrap()
        .into_iter()
        .filter(|v| v.kind == RequestKind::NewDevice)
        .collect();
    assert_eq!(views.len(), 2, "both new-device requests show");
    let pending = a.app.pending_devices(&acc).unwrap();
    let mut ids: Vec<_> = pending.iter().map(|p| p.enrolment_id).collect();
    ids.sort();
    let mut expected = vec![started.enrolment_id, e.enrolment_id];
    expected.sort();
    assert_eq!(ids, expected);
    // The first phone's code approves only the first phone's request.
    let mut approved = 0;
    for view in &views {
        let unlock = a.app.unlock(&acc, &view.request_id, PIN).await.unwrap();
        match a.app.approve(&unlock, true, Some(&started.code)).await {
            Ok(_) => approved += 1,
            Err(err) => {
                assert!(
                    e.code == started.code || err == Error::WrongBindingCode,
                    "{err:?}"
                );
            }
        }
    }
    assert_eq!(approved, 1);
    assert_eq!(
        status_code(&w, &first, started.enrolment_id)
            .await
            .unwrap()
            .state,
        EnrolmentState::Waiting
    );
    assert_eq!(
        b.app.poll_device_enrolment().await,
        Ok(EnrolmentStatus::AwaitingApproval)
    );
    w.advance(5 * MINUTE_MS, &[&a, &b]);
    assert_eq!(
        b.app.poll_device_enrolment().await,
        Err(Error::EnrolmentRefused)
    );
}

// ---------------------------------------------------------------- raw protocol

fn enrolment_request(
    user: &str,
    device: &SoftwareSigningKey,
    pin: &SoftwareSigningKey,
) -> StartEnrolmentRequest {
    let proof = EnrolmentProof {
        user_id: user,
        device_public_key: device.public_key(),
        pin_public_key: pin.public_key(),
    }
    .signing_bytes();
    StartEnrolmentRequest {
        user_id: user.into(),
        device_public_key: device.public_key().clone(),
        pin_public_key: pin.public_key().clone(),
        device_signature: device.sign(&proof),
        pin_signature: pin.sign(&proof),
    }
}

async fn post_raw(
    w: &World,
    path: &str,
    body: Vec<u8>,
    headers: Option<&eid_api_client::SignedHeaders>,
) -> (u16, Vec<u8>) {
    let endpoint = eid_api_client::Endpoint::new(&w.base_url(), &w.spki_pin).unwrap();
    let mut request = endpoint
        .client
        .post(format!("{}{path}", endpoint.base_url))
        .header("content-type", "application/json")
        .timeout(Duration::from_secs(5))
        .body(body);
    if let Some(h) = headers {
        request = request
            .header(wire::HEADER_TIMESTAMP, &h.timestamp)
            .header(wire::HEADER_NONCE, &h.nonce)
            .header(wire::HEADER_SIGNATURE, &h.signature);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

fn error_code(status: u16, bytes: &[u8]) -> ErrorCode {
    assert!(status >= 400, "expected an error, got {status}");
    serde_json::from_slice::<ErrorBody>(bytes)
        .unwrap()
        .error
        .code
}

async fn start_raw(w: &World, req: &StartEnrolmentRequest) -> Result<EnrolmentStarted, ErrorCode> {
    let (status, bytes) = post_raw(
        w,
        wire::PATH_ENROLMENTS,
        serde_json::to_vec(req).unwrap(),
        None,
    )
    .await;
    if status == 201 {
        Ok(serde_json::from_slice(&bytes).unwrap())
    } else {
        Err(error_code(status, &bytes))
    }
}

/// A status poll signed by `signer`'s device key for `enrolment`.
async fn status_code(
    w: &World,
    signer: &SoftPhone,
    enrolment: AuthenticatorId,
) -> Result<EnrolmentStatusResponse, ErrorCode> {
    let body = serde_json::to_vec(&EnrolmentStatusRequest {
        enrolment_id: enrolment,
    })
    .unwrap();
    let headers = SoftPhone::sign_device_request(
        &[signer],
        wire::PATH_ENROLMENT_STATUS,
        &body,
        w.now_ms(),
        Nonce16::random(),
    );
    let (status, bytes) = post_raw(w, wire::PATH_ENROLMENT_STATUS, body, Some(&headers)).await;
    if status == 200 {
        Ok(serde_json::from_slice(&bytes).unwrap())
    } else {
        Err(error_code(status, &bytes))
    }
}

#[tokio::test]
async fn bad_enrolment_input_gets_typed_errors_and_changes_nothing() {
    let w = World::start().await.unwrap();
    let user = "ida#1950x";
    let (person, a, acc) = person_with_phone(&w, user).await;
    let device = SoftwareSigningKey::generate();
    let pin = SoftwareSigningKey::generate();
    let good = enrolment_request(user, &device, &pin);

    // Not JSON, an invalid point, equal keys.
    let (s, b) = post_raw(&w, wire::PATH_ENROLMENTS, b"{not json".to_vec(), None).await;
    assert_eq!(error_code(s, &b), ErrorCode::MalformedRequest);
    let mut json = serde_json::to_value(&good).unwrap();
    json["device_public_key"] = serde_json::Value::String(wire::b64::encode(&[4u8; 65]));
    let (s, b) = post_raw(
        &w,
        wire::PATH_ENROLMENTS,
        json.to_string().into_bytes(),
        None,
    )
    .await;
    assert_eq!(error_code(s, &b), ErrorCode::MalformedRequest);
    let same = enrolment_request(user, &device, &device);
    assert_eq!(
        start_raw(&w, &same).await.unwrap_err(),
        ErrorCode::MalformedRequest
    );
    // A proof signed by another key, or for another user ID.
    let other = SoftwareSigningKey::generate();
    let mut forged = good.clone();
    forged.pin_signature = enrolment_request(user, &device, &other).pin_signature;
    assert_eq!(
        start_raw(&w, &forged).await.unwrap_err(),
        ErrorCode::InvalidSignature
    );
    let mut forged = good.clone();
    forged.device_signature = enrolment_request(user, &other, &pin).device_signature;
    assert_eq!(
        start_raw(&w, &forged).await.unwrap_err(),
        ErrorCode::InvalidSignature
    );
    let mut renamed = good.clone();
    renamed.user_id = "Ida#1950x".into();
    assert_eq!(
        start_raw(&w, &renamed).await.unwrap_err(),
        ErrorCode::InvalidSignature
    );
    // An activation proof (other domain) does not stand in for an enrolment proof.
    let activation = ActivationProof {
        user_id: user,
        device_public_key: device.public_key(),
        pin_public_key: pin.public_key(),
    }
    .signing_bytes();
    let mut cross = good.clone();
    cross.device_signature = device.sign(&activation);
    cross.pin_signature = pin.sign(&activation);
    assert_eq!(
        start_raw(&w, &cross).await.unwrap_err(),
        ErrorCode::InvalidSignature
    );
    // Nothing reached phone A and nothing was recorded.
    assert!(a.app.refresh().await.unwrap().is_empty());
    assert!(new_device_events(&w, person.identity_id).is_empty());

    // Status polls: unknown enrolment, wrong key, replayed nonce, wrong path.
    let started = start_raw(&w, &good).await.unwrap();
    let mut new_device = SoftPhone::new();
    new_device.device_key = device;
    new_device.authenticator_id = Some(started.enrolment_id);
    let mut stranger = SoftPhone::new();
    stranger.authenticator_id = Some(AuthenticatorId::random());
    assert_eq!(
        status_code(&w, &stranger, stranger.id()).await.unwrap_err(),
        ErrorCode::UnknownEnrolment
    );
    stranger.authenticator_id = Some(started.enrolment_id);
    assert_eq!(
        status_code(&w, &stranger, started.enrolment_id)
            .await
            .unwrap_err(),
        ErrorCode::InvalidSignature
    );
    let body = serde_json::to_vec(&EnrolmentStatusRequest {
        enrolment_id: started.enrolment_id,
    })
    .unwrap();
    let headers = SoftPhone::sign_device_request(
        &[&new_device],
        wire::PATH_ENROLMENT_STATUS,
        &body,
        w.now_ms(),
        Nonce16::random(),
    );
    let (s, bytes) = post_raw(
        &w,
        wire::PATH_ENROLMENT_STATUS,
        body.clone(),
        Some(&headers),
    )
    .await;
    assert_eq!(s, 200);
    let status: EnrolmentStatusResponse = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(status.state, EnrolmentState::AwaitingApproval);
    let (s, bytes) = post_raw(
        &w,
        wire::PATH_ENROLMENT_STATUS,
        body.clone(),
        Some(&headers),
    )
    .await;
    assert_eq!(error_code(s, &bytes), ErrorCode::ReplayedNonce);
    // A pull signature does not work as a status signature (path signed).
    let pull_headers = SoftPhone::sign_device_request(
        &[&new_device],
        wire::PATH_PULL,
        &body,
        w.now_ms(),
        Nonce16::random(),
    );
    let (s, bytes) = post_raw(&w, wire::PATH_ENROLMENT_STATUS, body, Some(&pull_headers)).await;
    assert_eq!(error_code(s, &bytes), ErrorCode::InvalidSignature);

    // Cancel: only an authenticator of the same identity, and a known id.
    let (_, other_phone, other_acc) = person_with_phone(&w, "jens#1950x").await;
    assert_eq!(
        (other_phone
            .app
            .cancel_device_enrolment(&other_acc, &started.enrolment_id)
            .await)
            .err()
            .and_then(|e| e.server_code()),
        Some(ErrorCode::UnknownEnrolment)
    );
    assert_eq!(
        (a.app
            .cancel_device_enrolment(&acc, &AuthenticatorId::random())
            .await)
            .err()
            .and_then(|e| e.server_code()),
        Some(ErrorCode::UnknownEnrolment)
    );
    // Still live and unchanged.
    assert_eq!(
        status_code(&w, &new_device, started.enrolment_id)
            .await
            .unwrap()
            .state,
        EnrolmentState::AwaitingApproval
    );
    assert_eq!(
        new_device_events(&w, person.identity_id),
        ["new_device_requested"]
    );
}

#[tokio::test]
async fn new_phone_and_server_restart_mid_wait_and_resume() {
    let mut w = World::start().await.unwrap();
    let user = "karen#1950x";
    let (person, a, acc) = person_with_phone(&w, user).await;
    let mut b = w.phone("karen-b").unwrap();
    let e = b.app.start_device_enrolment(user, PIN).await.unwrap();
    b.restart().unwrap();
    assert_eq!(b.app.pending_device_enrolment().unwrap(), Some(e.clone()));
    approve_with_code(&a, &acc, &e.code).await.unwrap();
    w.advance(20 * MINUTE_MS, &[&a, &b]);
    b.restart().unwrap();
    w.restart_server().await.unwrap();
    assert!(matches!(
        b.app.poll_device_enrolment().await,
        Ok(EnrolmentStatus::Waiting { remaining_ms, .. }) if remaining_ms == 40 * MINUTE_MS
    ));
    a.app.refresh().await.unwrap();
    assert_eq!(a.app.pending_devices(&acc).unwrap().len(), 1);
    w.advance(40 * MINUTE_MS, &[&a, &b]);
    w.restart_server().await.unwrap();
    b.restart().unwrap();
    let EnrolmentStatus::Activated(authenticator) = b.app.poll_device_enrolment().await.unwrap()
    else {
        panic!("expected activation");
    };
    b.restart().unwrap();
    assert_eq!(b.app.authenticators().unwrap(), vec![authenticator.clone()]);
    assert_eq!(authenticator_count(&w, person.identity_id).await, 2);
    let request = w.login(user, TEXT).await.unwrap();
    b.app.refresh().await.unwrap();
    let unlock = b
        .app
        .unlock(&authenticator.authenticator_id, &request, PIN)
        .await
        .unwrap();
    b.app.approve(&unlock, true, None).await.unwrap();
}

#[tokio::test]
async fn the_new_phone_may_give_up_and_its_keys_are_deleted() {
    let w = World::start().await.unwrap();
    let user = "lars#1950x";
    let (_, a, _) = person_with_phone(&w, user).await;
    let b = w.phone("lars-b").unwrap();
    assert_eq!(
        b.app.start_device_enrolment(user, "123456").await.err(),
        Some(Error::PinPolicy(eid_core::PinPolicyError::Sequence))
    );
    assert_eq!(b.app.pending_device_enrolment().unwrap(), None);
    b.app.start_device_enrolment(user, PIN).await.unwrap();
    b.app.discard_device_enrolment().unwrap();
    assert_eq!(b.app.pending_device_enrolment().unwrap(), None);
    assert_eq!(
        b.app.poll_device_enrolment().await,
        Err(Error::NoPendingEnrolment)
    );
    let keystore =
        std::fs::read_to_string(b.dir.join("keystore").join("software-keystore.v1")).unwrap();
    assert_eq!(
        keystore.lines().filter(|l| !l.is_empty()).count(),
        0,
        "the enrolment's keys are deleted"
    );
    assert_eq!(a.app.refresh().await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_enrolment_endpoints_are_in_the_openapi_document() {
    let w = World::start().await.unwrap();
    let doc = w.openapi().await.unwrap();
    for path in [
        wire::PATH_ENROLMENTS,
        wire::PATH_ENROLMENT_STATUS,
        wire::PATH_ENROLMENT_CANCEL,
    ] {
        assert!(doc["paths"][path]["post"].is_object(), "{path} documented");
    }
    for schema in [
        "StartEnrolmentRequest",
        "EnrolmentStarted",
        "EnrolmentStatusResponse",
        "CancelEnrolmentRequest",
        "PulledEnrolment",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "{schema} documented"
        );
    }
}
