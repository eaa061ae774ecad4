//! The call context against a real server (docs/protocol.md, "Call
//! context"): a version-2 decision carries what the phone saw, the receipt
//! signs it, the service provider reads it with the call policy's verdict,
//! and the policy stops, flags or allows an approval per request kind and
//! per provider. A version-1 decision (an older phone) keeps working and
//! reads as all unknown.

mod common;

use common::{Harness, assert_code};
use eid_api_client::{SelfServiceClient, SoftPhone};
use eid_protocol::events::SecurityEventKind;
use eid_protocol::messages::{DOMAIN_RECEIPT, DOMAIN_RECEIPT_V2};
use eid_protocol::wire::{
    self, ContactChannel, EnrolmentStarted, ErrorCode, RequestStatus, SignedReceipt,
    StartEnrolmentRequest,
};
use eid_protocol::{
    CallContext, CallVerdict, Decision, EnrolmentProof, Outcome, RequestEnvelopeBody, RequestKind,
    Signal,
};
use eid_server::policy::CallDisposition;

const USER: &str = "Grete#1950x";

fn seen(call: Signal, screen_shared: Signal, remote_control: Signal) -> CallContext {
    CallContext {
        call,
        screen_shared,
        remote_control,
        confirmed_self_started: false,
    }
}

fn on_call() -> CallContext {
    CallContext {
        confirmed_self_started: true,
        ..seen(Signal::On, Signal::Off, Signal::Unknown)
    }
}

/// Signs and submits a decision with `context` (`None`: version 1).
async fn decide(
    h: &Harness,
    phone: &mut SoftPhone,
    envelope: &RequestEnvelopeBody,
    outcome: Outcome,
    context: Option<CallContext>,
) -> Result<SignedReceipt, eid_api_client::ApiFailure> {
    phone.counter += 1;
    let mut decision = Decision::for_envelope(envelope, phone.id(), outcome, None, phone.counter);
    decision.call_context = context;
    let pin = (outcome == Outcome::Approve).then_some(&phone.pin_key);
    let submit = SoftPhone::sign_decision(&phone.device_key, pin, decision);
    phone.submit(&h.endpoint, &submit).await
}

fn receipt_domain(receipt: &SignedReceipt) -> Vec<u8> {
    let bytes = receipt.receipt.signing_bytes();
    bytes[1..=usize::from(bytes[0])].to_vec()
}

async fn feed_kinds(h: &Harness, phone: &SoftPhone) -> Vec<SecurityEventKind> {
    let pulled = SoftPhone::pull(&h.endpoint, &[phone], h.now())
        .await
        .unwrap();
    pulled.accounts[0].events.iter().map(|e| e.kind).collect()
}

#[tokio::test]
async fn a_login_approved_on_a_call_is_flagged_to_the_provider_with_the_signed_context() {
    let h = Harness::start().await;
    let (_, mut phone) = h.person(USER).await;
    let envelope = h.login_request(USER, &phone, "Log på Netbank").await;
    let receipt = decide(&h, &mut phone, &envelope, Outcome::Approve, Some(on_call()))
        .await
        .unwrap();
    assert_eq!(receipt.receipt.call_context, Some(on_call()));
    assert_eq!(receipt_domain(&receipt), DOMAIN_RECEIPT_V2.as_bytes());
    // The provider verifies the receipt with the server key: the context is
    // signed, not a side note.
    let key = h.rp.server_key().await.unwrap();
    key.verify(&receipt.receipt.signing_bytes(), &receipt.signature)
        .unwrap();
    let mut forged = receipt.receipt.clone();
    forged.call_context = Some(CallContext::UNKNOWN);
    assert!(
        key.verify(&forged.signing_bytes(), &receipt.signature)
            .is_err()
    );

    let status = h.rp.status(envelope.request_id, 0).await.unwrap();
    assert_eq!(status.status, RequestStatus::Approved);
    assert_eq!(status.call_context, Some(on_call()));
    assert_eq!(status.call_verdict, CallVerdict::Flagged);
}

#[tokio::test]
async fn signals_off_or_unknown_and_refusals_on_a_call_are_clear() {
    let h = Harness::start().await;
    let (_, mut phone) = h.person(USER).await;
    let all_off = seen(Signal::Off, Signal::Off, Signal::Off);
    for context in [all_off, CallContext::UNKNOWN] {
        let envelope = h.login_request(USER, &phone, "Log på Netbank").await;
        decide(&h, &mut phone, &envelope, Outcome::Approve, Some(context))
            .await
            .unwrap();
        let status = h.rp.status(envelope.request_id, 0).await.unwrap();
        assert_eq!(status.status, RequestStatus::Approved);
        assert_eq!(status.call_context, Some(context));
        assert_eq!(status.call_verdict, CallVerdict::Clear);
    }
    // A denial during a call is always welcome.
    let envelope = h.login_request(USER, &phone, "Log på Netbank").await;
    decide(&h, &mut phone, &envelope, Outcome::Deny, Some(on_call()))
        .await
        .unwrap();
    let status = h.rp.status(envelope.request_id, 0).await.unwrap();
    assert_eq!(status.status, RequestStatus::Denied);
    assert_eq!(status.call_verdict, CallVerdict::Clear);
}

#[tokio::test]
async fn an_older_phone_s_version_1_decision_keeps_working_and_reads_as_unknown() {
    let h = Harness::start().await;
    let (_, mut phone) = h.person(USER).await;
    let envelope = h.login_request(USER, &phone, "Log på Netbank").await;
    let receipt = decide(&h, &mut phone, &envelope, Outcome::Approve, None)
        .await
        .unwrap();
    assert_eq!(receipt.receipt.call_context, None);
    assert_eq!(receipt_domain(&receipt), DOMAIN_RECEIPT.as_bytes());
    let status = h.rp.status(envelope.request_id, 0).await.unwrap();
    assert_eq!(status.status, RequestStatus::Approved);
    assert_eq!(status.call_context, None);
    assert_eq!(status.call_verdict, CallVerdict::Clear);
    // And the JSON an older provider client reads has no new required field.
    let json = serde_json::to_value(&status).unwrap();
    assert!(json.get("call_context").is_none());
}

#[tokio::test]
async fn a_provider_that_asks_for_it_gets_its_logins_on_a_call_refused_and_others_are_flagged() {
    let mut h = Harness::start().await;
    let (_, mut phone) = h.person(USER).await;
    let envelope = h.login_request(USER, &phone, "Log på Netbank").await;
    let strict = envelope.service_provider_id;
    // The same server again, now with this provider asking for `refuse`.
    let server = h.server.take().unwrap();
    let pin = server.spki_pin.clone();
    server.shutdown().await;
    let mut config = common::config(h.dir.path());
    config.call_policy.providers.insert(
        strict.to_string(),
        eid_server::config::ProviderCallPolicy {
            login: Some(CallDisposition::Refuse),
            signature: None,
        },
    );
    let restarted = eid_server::start(eid_server::ServerOptions {
        config,
        clock: h.clock.clone(),
    })
    .await
    .unwrap();
    let endpoint = eid_api_client::Endpoint::new(&restarted.base_url(), &pin).unwrap();
    let rp = eid_api_client::ProviderClient::new(endpoint.clone(), &h.rp_api_key);
    h.endpoint = endpoint;
    assert_code(
        decide(&h, &mut phone, &envelope, Outcome::Approve, Some(on_call())).await,
        ErrorCode::StoppedOnCall,
    );
    let status = rp.status(envelope.request_id, 0).await.unwrap();
    assert_eq!(status.status, RequestStatus::Cancelled);
    assert_eq!(status.call_verdict, CallVerdict::Stopped);
    // Its signatures follow the default: flagged.
    let created = rp
        .create_request(USER, RequestKind::Signature, "Overførsel 100,00 kr.", None)
        .await
        .unwrap();
    let envelope = h.envelope(&phone, created.request_id).await;
    decide(&h, &mut phone, &envelope, Outcome::Approve, Some(on_call()))
        .await
        .unwrap();
    let status = rp.status(envelope.request_id, 0).await.unwrap();
    assert_eq!(status.call_verdict, CallVerdict::Flagged);
    restarted.shutdown().await;
}

#[tokio::test]
async fn under_allow_a_login_on_a_call_goes_through_and_says_so() {
    let h = Harness::start_with(|c| c.call_policy.login = CallDisposition::Allow).await;
    let (_, mut phone) = h.person(USER).await;
    let envelope = h.login_request(USER, &phone, "Log på Netbank").await;
    decide(&h, &mut phone, &envelope, Outcome::Approve, Some(on_call()))
        .await
        .unwrap();
    let status = h.rp.status(envelope.request_id, 0).await.unwrap();
    assert_eq!(status.status, RequestStatus::Approved);
    assert_eq!(status.call_verdict, CallVerdict::Allowed);
}

#[tokio::test]
async fn a_refused_kind_approved_on_a_call_is_stopped_cancelled_and_notified() {
    let h = Harness::start_with(|c| {
        c.call_policy.signature = CallDisposition::Refuse;
    })
    .await;
    let (_, mut phone) = h.person(USER).await;
    let created =
        h.rp.create_request(
            USER,
            RequestKind::Signature,
            "Overførsel 9.800,00 kr.",
            None,
        )
        .await
        .unwrap();
    let envelope = h.envelope(&phone, created.request_id).await;
    // Screen sharing alone is enough.
    let shared = seen(Signal::Off, Signal::On, Signal::Off);
    assert_code(
        decide(&h, &mut phone, &envelope, Outcome::Approve, Some(shared)).await,
        ErrorCode::StoppedOnCall,
    );
    let status = h.rp.status(envelope.request_id, 0).await.unwrap();
    assert_eq!(status.status, RequestStatus::Cancelled);
    assert_eq!(status.receipt, None);
    assert_eq!(status.call_context, Some(shared));
    assert_eq!(status.call_verdict, CallVerdict::Stopped);
    assert!(
        feed_kinds(&h, &phone)
            .await
            .contains(&SecurityEventKind::ApprovalStoppedOnCall)
    );
    // Nothing more can be decided on it.
    assert_code(
        decide(&h, &mut phone, &envelope, Outcome::Approve, None).await,
        ErrorCode::RequestClosed,
    );
    // The same kind with nothing on goes through.
    let created =
        h.rp.create_request(
            USER,
            RequestKind::Signature,
            "Overførsel 9.800,00 kr.",
            None,
        )
        .await
        .unwrap();
    let envelope = h.envelope(&phone, created.request_id).await;
    decide(
        &h,
        &mut phone,
        &envelope,
        Outcome::Approve,
        Some(seen(Signal::Off, Signal::Off, Signal::Unknown)),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_wrong_pin_on_a_call_is_counted_not_stopped() {
    // The policy judges only an otherwise valid approval: a wrong PIN cannot
    // be used to cancel someone's request.
    let h = Harness::start_with(|c| c.call_policy.login = CallDisposition::Refuse).await;
    let (_, mut phone) = h.person(USER).await;
    let envelope = h.login_request(USER, &phone, "Log på Netbank").await;
    phone.counter += 1;
    let decision =
        Decision::for_envelope(&envelope, phone.id(), Outcome::Approve, None, phone.counter)
            .with_call_context(on_call());
    let impostor = eid_protocol::crypto::SoftwareSigningKey::generate();
    let submit = SoftPhone::sign_decision(&phone.device_key, Some(&impostor), decision);
    assert_code(
        phone.submit(&h.endpoint, &submit).await,
        ErrorCode::WrongPin,
    );
    let status = h.rp.status(envelope.request_id, 0).await.unwrap();
    assert_eq!(status.status, RequestStatus::Pending);
    assert_eq!(status.call_verdict, CallVerdict::Clear);
}

#[tokio::test]
async fn self_service_logins_and_new_devices_on_a_call_are_stopped_by_default() {
    let h = Harness::start().await;
    let (_, mut phone) = h.person(USER).await;
    // A self-service login (a contact change's first login).
    let portal = SelfServiceClient::new(h.endpoint.clone());
    let step = portal
        .start_contact_change(USER, ContactChannel::Email, "svindler@example.org")
        .await
        .unwrap();
    let envelope = h.envelope(&phone, step.request_id).await;
    assert_eq!(envelope.kind, RequestKind::SelfService);
    phone.counter += 1;
    let decision = Decision::for_envelope(
        &envelope,
        phone.id(),
        Outcome::Approve,
        Some(step.binding_code.clone()),
        phone.counter,
    )
    .with_call_context(on_call());
    let submit = SoftPhone::sign_decision(&phone.device_key, Some(&phone.pin_key), decision);
    assert_code(
        phone.submit(&h.endpoint, &submit).await,
        ErrorCode::StoppedOnCall,
    );
    // The change is over (its status is not even shown: its first login
    // was never approved), and the app no longer lists it as open.
    assert_code(
        portal.contact_change_status(USER, step.change_id).await,
        ErrorCode::UnknownChange,
    );
    let pulled = SoftPhone::pull(&h.endpoint, &[&phone], h.now())
        .await
        .unwrap();
    assert!(pulled.accounts[0].contact_changes.is_empty());
    assert!(pulled.accounts[0].requests.is_empty());

    // A new device.
    let newcomer = SoftPhone::new();
    let proof = EnrolmentProof {
        user_id: USER,
        device_public_key: newcomer.device_key.public_key(),
        pin_public_key: newcomer.pin_key.public_key(),
    }
    .signing_bytes();
    let body = StartEnrolmentRequest {
        user_id: USER.into(),
        device_public_key: newcomer.device_key.public_key().clone(),
        pin_public_key: newcomer.pin_key.public_key().clone(),
        device_signature: newcomer.device_key.sign(&proof),
        pin_signature: newcomer.pin_key.sign(&proof),
    };
    let started: EnrolmentStarted = h
        .endpoint
        .client
        .post(format!("{}{}", h.endpoint.base_url, wire::PATH_ENROLMENTS))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pulled = SoftPhone::pull(&h.endpoint, &[&phone], h.now())
        .await
        .unwrap();
    let envelope = pulled.accounts[0]
        .requests
        .iter()
        .map(|r| r.envelope.clone())
        .find(|e| e.kind == RequestKind::NewDevice)
        .expect("the new device's request");
    phone.counter += 1;
    let decision = Decision::for_envelope(
        &envelope,
        phone.id(),
        Outcome::Approve,
        Some(started.code.clone()),
        phone.counter,
    )
    .with_call_context(seen(Signal::Unknown, Signal::Unknown, Signal::On));
    let submit = SoftPhone::sign_decision(&phone.device_key, Some(&phone.pin_key), decision);
    assert_code(
        phone.submit(&h.endpoint, &submit).await,
        ErrorCode::StoppedOnCall,
    );
    let kinds = feed_kinds(&h, &phone).await;
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == SecurityEventKind::ApprovalStoppedOnCall)
            .count(),
        2
    );
    assert!(kinds.contains(&SecurityEventKind::NewDeviceCancelled));
}

#[tokio::test]
async fn a_stopped_approval_sent_again_gets_the_same_stopped_answer_and_changes_nothing() {
    // A retry after a lost answer: the phone must still learn why.
    let h = Harness::start_with(|c| c.call_policy.login = CallDisposition::Refuse).await;
    let (_, mut phone) = h.person(USER).await;
    let envelope = h.login_request(USER, &phone, "Log på Netbank").await;
    phone.counter += 1;
    let decision =
        Decision::for_envelope(&envelope, phone.id(), Outcome::Approve, None, phone.counter)
            .with_call_context(on_call());
    let submit = SoftPhone::sign_decision(&phone.device_key, Some(&phone.pin_key), decision);
    for _ in 0..2 {
        assert_code(
            phone.submit(&h.endpoint, &submit).await,
            ErrorCode::StoppedOnCall,
        );
    }
    let status = h.rp.status(envelope.request_id, 0).await.unwrap();
    assert_eq!(status.status, RequestStatus::Cancelled);
    assert_eq!(status.call_verdict, CallVerdict::Stopped);
    // One stop, one event.
    let stops = feed_kinds(&h, &phone)
        .await
        .into_iter()
        .filter(|k| *k == SecurityEventKind::ApprovalStoppedOnCall)
        .count();
    assert_eq!(stops, 1);
    // Another approval of the closed request, without that context, is
    // simply closed.
    assert_code(
        decide(&h, &mut phone, &envelope, Outcome::Approve, None).await,
        ErrorCode::RequestClosed,
    );
}

#[tokio::test]
async fn an_older_phone_s_version_1_approval_of_a_refused_kind_is_accepted_as_unknown() {
    // The conscious choice (docs/protocol.md, "Call context"): an older
    // phone cannot tell, and refusing its self-service logins and new
    // devices would lock every person with it out of both. Only "on" is
    // judged; the verdict says clear and the provider sees no context.
    let h = Harness::start().await;
    let (_, mut phone) = h.person(USER).await;
    let portal = SelfServiceClient::new(h.endpoint.clone());
    let step = portal
        .start_contact_change(USER, ContactChannel::Email, "ny@example.org")
        .await
        .unwrap();
    let envelope = h.envelope(&phone, step.request_id).await;
    assert_eq!(envelope.kind, RequestKind::SelfService);
    phone.counter += 1;
    let decision = Decision::for_envelope(
        &envelope,
        phone.id(),
        Outcome::Approve,
        Some(step.binding_code.clone()),
        phone.counter,
    );
    assert_eq!(decision.call_context, None);
    let submit = SoftPhone::sign_decision(&phone.device_key, Some(&phone.pin_key), decision);
    let receipt = phone.submit(&h.endpoint, &submit).await.unwrap();
    assert_eq!(receipt.receipt.call_context, None);
    assert_eq!(receipt_domain(&receipt), DOMAIN_RECEIPT.as_bytes());
    let kinds = feed_kinds(&h, &phone).await;
    assert!(!kinds.contains(&SecurityEventKind::ApprovalStoppedOnCall));
}

#[test]
fn the_default_policy_refuses_the_eid_s_own_kinds_and_flags_providers() {
    let policy = eid_server::config::CallPolicyConfig::default();
    let any = eid_protocol::ServiceProviderId([7; 16]);
    assert_eq!(
        policy.disposition(
            RequestKind::SelfService,
            eid_protocol::SELF_SERVICE_PROVIDER_ID
        ),
        CallDisposition::Refuse
    );
    assert_eq!(
        policy.disposition(
            RequestKind::NewDevice,
            eid_protocol::SELF_SERVICE_PROVIDER_ID
        ),
        CallDisposition::Refuse
    );
    assert_eq!(
        policy.disposition(RequestKind::Login, any),
        CallDisposition::Flag
    );
    assert_eq!(
        policy.disposition(RequestKind::Signature, any),
        CallDisposition::Flag
    );
}

#[test]
fn a_provider_s_own_choice_applies_to_its_logins_and_signatures_only() {
    let mut policy = eid_server::config::CallPolicyConfig::default();
    let strict = eid_protocol::ServiceProviderId([7; 16]);
    let other = eid_protocol::ServiceProviderId([8; 16]);
    policy.providers.insert(
        strict.to_string(),
        eid_server::config::ProviderCallPolicy {
            login: Some(CallDisposition::Refuse),
            signature: None,
        },
    );
    assert_eq!(
        policy.disposition(RequestKind::Login, strict),
        CallDisposition::Refuse
    );
    assert_eq!(
        policy.disposition(RequestKind::Signature, strict),
        CallDisposition::Flag
    );
    assert_eq!(
        policy.disposition(RequestKind::Login, other),
        CallDisposition::Flag
    );
}

#[tokio::test]
async fn a_malformed_call_context_is_refused_as_malformed_and_changes_nothing() {
    let h = Harness::start().await;
    let (_, mut phone) = h.person(USER).await;
    let envelope = h.login_request(USER, &phone, "Log på Netbank").await;
    phone.counter += 1;
    let decision =
        Decision::for_envelope(&envelope, phone.id(), Outcome::Approve, None, phone.counter)
            .with_call_context(on_call());
    let submit = SoftPhone::sign_decision(&phone.device_key, Some(&phone.pin_key), decision);
    let good = serde_json::to_value(&submit).unwrap();
    for (field, value) in [
        ("call", serde_json::json!("maybe")),
        ("screen_shared", serde_json::json!(2)),
        ("confirmed_self_started", serde_json::json!("yes")),
        ("camera", serde_json::json!("on")),
    ] {
        let mut bad = good.clone();
        bad["decision"]["call_context"][field] = value;
        let answer = h
            .endpoint
            .client
            .post(format!("{}{}", h.endpoint.base_url, wire::PATH_DECISIONS))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 400, "{field}");
        let body: wire::ErrorBody = answer.json().await.unwrap();
        assert_eq!(body.error.code, ErrorCode::MalformedRequest, "{field}");
    }
    let status = h.rp.status(envelope.request_id, 0).await.unwrap();
    assert_eq!(status.status, RequestStatus::Pending);
    // The intact decision still goes through afterwards.
    phone.submit(&h.endpoint, &submit).await.unwrap();
}
