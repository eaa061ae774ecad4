//! The phone call scam where it happens (docs/threat-model.md, "A caller
//! on the line"): the phone's context provider reports a call or screen
//! sharing, the app leads with the warning and holds the swipe until the
//! person confirms they started this themselves, the decision signs what the
//! phone saw, and the server's call policy stops the eID's own kinds,
//! flags a service provider's login, and tells the person.

use std::sync::Arc;

use eid_api_client::{Endpoint, SelfServiceClient, SoftPhone};
use eid_core::{CallSignals, DEFAULT_MIN_READ_MS, Error, FixedContext, Signal, WarningKind};
use eid_e2e_tests::{PIN, Person, World};
use eid_protocol::wire::{ContactChannel, CreateIdentityRequest, ErrorCode, RequestStatus};
use eid_protocol::{CallContext, CallVerdict, IdentityId, Outcome};

const USER: &str = "grete#1950x";
const OLD_PHONE: &str = "+4512345678";
const OLD_EMAIL: &str = "grete.h1@example.dk";
const SCAMMER_PHONE: &str = "+4599887766";
const TEXT: &str = "Log på Nordisk Netbank";

fn on_call() -> CallSignals {
    CallSignals {
        call: Signal::On,
        screen_shared: Signal::Off,
        remote_control: Signal::Unknown,
    }
}

async fn grete(w: &World) -> Person {
    let identity_id = w
        .admin
        .create_identity_with(&CreateIdentityRequest {
            user_id: USER.into(),
            display_name: Some("Grete Hansen".into()),
            phone: Some(OLD_PHONE.into()),
            email: Some(OLD_EMAIL.into()),
        })
        .await
        .unwrap()
        .identity_id;
    let code = w.admin.issue_activation_code(identity_id).await.unwrap();
    Person {
        identity_id,
        user_id: USER.into(),
        code: code.activation_code,
    }
}

/// (kind, channel, address) of every delivery of the identity's events.
fn deliveries(w: &World, identity: IdentityId, kind: &str) -> Vec<(String, String)> {
    let c = w.read_database().unwrap();
    let mut stmt = c
        .prepare(
            "SELECT d.channel, d.address FROM event_deliveries d JOIN security_events e ON e.id = d.event_id \
             WHERE e.identity_id = ?1 AND e.kind = ?2 ORDER BY d.id",
        )
        .unwrap();
    stmt.query_map(
        rusqlite::params![identity.as_bytes().as_slice(), kind],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// The seed's scam: a caller posing as the bank has the person approve a
/// self-service login while staying on the line. The app warns first and
/// holds the swipe; the person, talked through it, confirms anyway; the
/// server stops the approval, cancels the change and tells the person on
/// every channel; the caller's portal session gets nothing.
#[tokio::test]
async fn a_caller_posing_as_the_bank_asks_for_a_self_service_login_on_the_call_and_it_is_stopped() {
    let w = World::start().await.unwrap();
    let victim = grete(&w).await;
    // The production read time: the gate opens only after it.
    let phone = w.phone_configured("grete", |_| {}).unwrap();
    let acc = phone
        .app
        .activate(USER, &victim.code, PIN)
        .await
        .unwrap()
        .authenticator_id;
    phone
        .app
        .set_context_provider(Arc::new(FixedContext(on_call())))
        .unwrap();
    let scammer = SelfServiceClient::new(Endpoint::new(&w.base_url(), &w.spki_pin).unwrap());
    let step = scammer
        .start_contact_change(USER, ContactChannel::Phone, SCAMMER_PHONE)
        .await
        .unwrap();

    // The screen leads with the call warning, and the swipe waits.
    let views = phone.app.refresh().await.unwrap();
    let view = views
        .iter()
        .find(|v| v.request_id == step.request_id)
        .unwrap();
    assert_eq!(view.warnings[0].kind, WarningKind::OnCall);
    assert!(view.warnings[0].text.starts_with("Du taler i telefon."));
    assert!(view.needs_started_myself);
    let unlock = phone.app.unlock(&acc, &step.request_id, PIN).await.unwrap();
    phone.clock.advance(DEFAULT_MIN_READ_MS);
    assert_eq!(
        phone
            .app
            .approve(&unlock, true, Some(&step.binding_code))
            .await,
        Err(Error::StartedMyselfRequired)
    );

    // "Yes, I started it", says the person, as the caller tells them to.
    phone
        .app
        .confirm_started_myself(&acc, &step.request_id)
        .unwrap();
    let stopped = phone
        .app
        .approve(&unlock, true, Some(&step.binding_code))
        .await;
    assert!(
        matches!(
            &stopped,
            Err(Error::Rejected {
                code: ErrorCode::StoppedOnCall,
                ..
            })
        ),
        "{stopped:?}"
    );

    // Told on every channel, in the app's feed too.
    let notices = deliveries(&w, victim.identity_id, "approval_stopped_on_call");
    assert!(
        notices.contains(&("sms".into(), OLD_PHONE.into()))
            && notices.contains(&("email".into(), OLD_EMAIL.into())),
        "{notices:?}"
    );
    assert!(
        !notices.iter().any(|(_, a)| a == SCAMMER_PHONE),
        "the caller's number hears nothing: {notices:?}"
    );
    assert!(phone.app.refresh().await.unwrap().is_empty());
    let feed = phone.app.events(&acc, eid_core::Language::English).unwrap();
    let event = feed
        .iter()
        .find(|e| e.kind == eid_core::SecurityEventKind::ApprovalStoppedOnCall)
        .expect("the stop is in the app's feed");
    assert!(
        event.body.contains("because you were on a call"),
        "{event:?}"
    );

    // The change went nowhere: the caller can't confirm it, now or later.
    w.advance(eid_e2e_tests::HOUR_MS + 1, &[&phone]);
    assert!(
        scammer
            .confirm_contact_change(USER, step.change_id)
            .await
            .is_err()
    );
    let phone_number: Option<String> = w
        .read_database()
        .unwrap()
        .query_row(
            "SELECT phone FROM identities WHERE id = ?1",
            [victim.identity_id.as_bytes().as_slice()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(phone_number.as_deref(), Some(OLD_PHONE));
}

/// Once the call is over, the same person's own self-service login goes
/// through: the policy judges the moment, not the person.
#[tokio::test]
async fn after_hanging_up_the_person_s_own_self_service_login_is_approved() {
    let w = World::start().await.unwrap();
    let victim = grete(&w).await;
    let (phone, acc) = w.activated_for(&victim, "grete").await.unwrap();
    let hung_up = CallSignals {
        call: Signal::Off,
        ..on_call()
    };
    phone
        .app
        .set_context_provider(Arc::new(FixedContext(hung_up)))
        .unwrap();
    let portal = SelfServiceClient::new(Endpoint::new(&w.base_url(), &w.spki_pin).unwrap());
    let step = portal
        .start_contact_change(USER, ContactChannel::Email, "grete.ny@example.dk")
        .await
        .unwrap();
    let views = phone.app.refresh().await.unwrap();
    assert_eq!(views[0].call_warning, None);
    assert!(!views[0].needs_started_myself);
    let unlock = phone.app.unlock(&acc, &step.request_id, PIN).await.unwrap();
    let receipt = phone
        .app
        .approve(&unlock, true, Some(&step.binding_code))
        .await
        .unwrap();
    assert_eq!(receipt.receipt.call_context, Some(hung_up.signed(false)));
}

/// A service provider's login on a call is not stopped by default: it
/// reaches the provider approved, flagged, with the context the receipt
/// signs, so the bank can hold the payment and call the person back.
#[tokio::test]
async fn a_login_on_a_call_reaches_the_provider_flagged_with_what_the_phone_saw() {
    let w = World::start().await.unwrap();
    let person = w.person("bo#1985q").await.unwrap();
    let (phone, acc) = w.activated_for(&person, "bo").await.unwrap();
    let shared = CallSignals {
        screen_shared: Signal::On,
        ..CallSignals::UNKNOWN
    };
    phone
        .app
        .set_context_provider(Arc::new(FixedContext(shared)))
        .unwrap();
    let req = w.login(&person.user_id, TEXT).await.unwrap();
    let views = phone.app.refresh().await.unwrap();
    assert_eq!(views[0].warnings[0].kind, WarningKind::ScreenShared);
    let unlock = phone.app.unlock(&acc, &req, PIN).await.unwrap();
    phone.app.confirm_started_myself(&acc, &req).unwrap();
    phone.app.approve(&unlock, true, None).await.unwrap();
    let status = w.rp_status(req, TEXT).await.unwrap();
    assert_eq!(status.status, RequestStatus::Approved);
    assert_eq!(status.call_verdict, CallVerdict::Flagged);
    let signed = status.receipt.unwrap().receipt.call_context.unwrap();
    assert_eq!(signed, shared.signed(true));
}

/// A phone that cannot tell (no provider) signs "unknown", is not held
/// back, and its approval is clear; an older phone's version-1 decision
/// keeps working beside it and reads as unknown.
#[tokio::test]
async fn unknown_is_not_on_and_an_older_phone_keeps_working() {
    let w = World::start().await.unwrap();
    let person = w.person("anna#1990r").await.unwrap();
    let (phone, acc) = w.activated_for(&person, "anna").await.unwrap();
    let req = w.login(&person.user_id, TEXT).await.unwrap();
    phone.app.refresh().await.unwrap();
    let unlock = phone.app.unlock(&acc, &req, PIN).await.unwrap();
    phone.app.approve(&unlock, true, None).await.unwrap();
    let status = w.rp_status(req, TEXT).await.unwrap();
    assert_eq!(status.call_context, Some(CallContext::UNKNOWN));
    assert_eq!(status.call_verdict, CallVerdict::Clear);

    // An older phone (protocol version 1, no context at all).
    let older = w.person("carl#1970z").await.unwrap();
    let endpoint = Endpoint::new(&w.base_url(), &w.spki_pin).unwrap();
    let mut soft = SoftPhone::new();
    soft.activate(&endpoint, &older.user_id, &older.code)
        .await
        .unwrap();
    let req = w.login(&older.user_id, TEXT).await.unwrap();
    let pulled = SoftPhone::pull(&endpoint, &[&soft], w.now_ms())
        .await
        .unwrap();
    let envelope = pulled.accounts[0].requests[0].envelope.clone();
    let decision = soft.decide(&envelope, Outcome::Approve, None, true);
    assert_eq!(decision.decision.call_context, None);
    soft.submit(&endpoint, &decision).await.unwrap();
    let status = w.rp_status(req, TEXT).await.unwrap();
    assert_eq!(status.status, RequestStatus::Approved);
    assert_eq!(status.call_context, None);
    assert_eq!(status.call_verdict, CallVerdict::Clear);
}
