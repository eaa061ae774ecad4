//! Self-service, the user-ID change included (docs/threat-model.md): a person's browser asks
//! the portal to change their phone number, e-mail address or user ID; the app
//! shows self-service login requests; a contact change needs two approvals at
//! least an hour apart (server clock); every attempt notifies both the old and
//! the new contact; the app shows the open change and can cancel it. And the
//! scam docs/threat-model.md names: "the bank" phones the victim and has them approve a
//! self-service login.

use eid_api_client::{Endpoint, SelfServiceClient, SoftPhone};
use eid_core::{AuthenticatorState, Error, WarningKind};
use eid_e2e_tests::{HOUR_MS, PIN, Person, Phone, World};
use eid_protocol::wire::{
    self, ChangeState, ContactChannel, CreateIdentityRequest, ErrorCode, RequestStatus,
    SelfServiceStep,
};
use eid_protocol::{AuthenticatorId, ChangeId, IdentityId, Nonce16, RequestKind};

use crate::support::error_code;

const OLD_PHONE: &str = "+4512345678";
const OLD_EMAIL: &str = "grete.h1@example.dk";
const NEW_PHONE: &str = "+4587654321";
const NEW_EMAIL: &str = "grete.ny@example.dk";
const SCAMMER_PHONE: &str = "+4599887766";
const USER: &str = "grete#1950x";
const TEXT: &str = "Log på Nordisk Netbank";

// ---------------------------------------------------------------- fixtures

fn portal(w: &World) -> SelfServiceClient {
    SelfServiceClient::new(Endpoint::new(&w.base_url(), &w.spki_pin).unwrap())
}

/// A person with a name, phone and e-mail, and a fresh activation code.
async fn person(w: &World, user_id: &str, phone: &str, email: &str) -> Person {
    let identity_id = w
        .admin
        .create_identity_with(&CreateIdentityRequest {
            user_id: user_id.into(),
            display_name: Some("Grete Hansen".into()),
            phone: Some(phone.into()),
            email: Some(email.into()),
        })
        .await
        .unwrap()
        .identity_id;
    let code = w.admin.issue_activation_code(identity_id).await.unwrap();
    Person {
        identity_id,
        user_id: user_id.into(),
        code: code.activation_code,
    }
}

async fn grete(w: &World) -> (Person, Phone, AuthenticatorId) {
    let p = person(w, USER, OLD_PHONE, OLD_EMAIL).await;
    let (phone, acc) = w.activated_for(&p, "grete").await.unwrap();
    (p, phone, acc)
}

/// Pulls, checks the self-service request is there with `text_part` in its
/// reference text, and approves it with PIN, swipe and the code the portal
/// showed for it.
async fn approve(phone: &Phone, acc: &AuthenticatorId, step: &SelfServiceStep, text_part: &str) {
    let request = step.request_id;
    let views = phone.app.refresh().await.unwrap();
    let view = views
        .iter()
        .find(|v| v.request_id == request)
        .expect("the self-service request reaches the app");
    assert_eq!(view.kind, RequestKind::SelfService);
    assert_eq!(view.provider_name.as_deref(), Some("eID Selvbetjening"));
    let text = view.reference_text.clone().unwrap();
    assert!(text.contains(text_part), "{text}");
    let unlock = phone.app.unlock(acc, &request, PIN).await.unwrap();
    phone
        .app
        .approve(&unlock, true, Some(&step.binding_code))
        .await
        .unwrap();
}

/// The identity's security events: (kind, detail), oldest first.
fn events(w: &World, identity: IdentityId) -> Vec<(String, Option<String>)> {
    let c = w.read_database().unwrap();
    let mut stmt = c
        .prepare("SELECT kind, detail FROM security_events WHERE identity_id = ?1 ORDER BY id")
        .unwrap();
    stmt.query_map([identity.as_bytes().as_slice()], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn count_events(w: &World, identity: IdentityId, kind: &str) -> usize {
    events(w, identity)
        .iter()
        .filter(|(k, _)| k == kind)
        .count()
}

/// The delivery rows (channel, address) of the identity's events of `kind`.
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

fn has(rows: &[(String, String)], channel: &str, address: &str) -> bool {
    rows.iter().any(|(c, a)| c == channel && a == address)
}

fn change_rows(w: &World) -> i64 {
    w.read_database()
        .unwrap()
        .query_row("SELECT COUNT(*) FROM self_service_changes", [], |r| {
            r.get(0)
        })
        .unwrap()
}

// ---------------------------------------------------------------- happy paths

#[tokio::test]
async fn phone_change_needs_two_logins_an_hour_apart_and_the_app_shows_it_between() {
    let w = World::start().await.unwrap();
    let (p, phone, acc) = grete(&w).await;
    let portal = portal(&w);

    let step1 = portal
        .start_contact_change(USER, ContactChannel::Phone, "+45 87 65 43 21")
        .await
        .unwrap();
    // Before the first login: the app shows the change, no completion time.
    approve_later_check(&phone, &acc, ChangeState::AwaitingFirstLogin, None).await;
    approve(
        &phone,
        &acc,
        &step1,
        "Skift telefonnummer til +45••••••21 (trin 1 af 2)",
    )
    .await;
    let first_login_at = w.now_ms();

    // Between the logins: the app (on its next pull) shows the change and
    // when it can complete.
    phone.app.refresh().await.unwrap();
    let changes = phone.app.pending_contact_changes(&acc).unwrap();
    assert_eq!(changes.len(), 1, "{changes:?}");
    let c = &changes[0];
    assert_eq!(c.change_id, step1.change_id);
    assert_eq!(c.channel, ContactChannel::Phone);
    assert_eq!(c.new_value_masked, "+45••••••21");
    assert_eq!(c.state, ChangeState::WaitingSecondLogin);
    assert_eq!(c.earliest_completion_at_ms, Some(first_login_at + HOUR_MS));
    let status = portal
        .contact_change_status(USER, step1.change_id)
        .await
        .unwrap();
    assert_eq!(status.state, ChangeState::WaitingSecondLogin);
    assert_eq!(
        status.earliest_second_login_at_ms,
        Some(first_login_at + HOUR_MS)
    );
    // Still the old phone.
    let info = w.admin.identity(p.identity_id).await.unwrap();
    assert_eq!(info.phone_masked.as_deref(), Some("+45••••••78"));

    // Exactly an hour later the second login may come.
    w.advance(HOUR_MS, &[&phone]);
    let step2 = portal
        .confirm_contact_change(USER, step1.change_id)
        .await
        .unwrap();
    assert_eq!(step2.change_id, step1.change_id);
    assert_ne!(step2.request_id, step1.request_id);
    // Asking again while it is pending returns the same request.
    let again = portal
        .confirm_contact_change(USER, step1.change_id)
        .await
        .unwrap();
    assert_eq!(again, step2);
    approve_later_check(
        &phone,
        &acc,
        ChangeState::AwaitingSecondLogin,
        Some(first_login_at + HOUR_MS),
    )
    .await;
    approve(&phone, &acc, &step2, "(trin 2 af 2)").await;

    let info = w.admin.identity(p.identity_id).await.unwrap();
    assert_eq!(info.phone_masked.as_deref(), Some("+45••••••21"));
    assert_eq!(info.email_masked.as_deref(), Some("g•••@e•••.dk"));
    let status = portal
        .contact_change_status(USER, step1.change_id)
        .await
        .unwrap();
    assert_eq!(status.state, ChangeState::Completed);
    phone.app.refresh().await.unwrap();
    assert!(phone.app.pending_contact_changes(&acc).unwrap().is_empty());

    // Notified: the start to old and new, the completion to old and new.
    let started = deliveries(&w, p.identity_id, "contact_change_started");
    assert!(
        has(&started, "sms", OLD_PHONE) && has(&started, "sms", NEW_PHONE),
        "{started:?}"
    );
    assert!(has(&started, "email", OLD_EMAIL), "{started:?}");
    let completed = deliveries(&w, p.identity_id, "contact_change_completed");
    assert!(
        has(&completed, "sms", OLD_PHONE) && has(&completed, "sms", NEW_PHONE),
        "{completed:?}"
    );
    let (_, detail) = events(&w, p.identity_id)
        .into_iter()
        .find(|(k, _)| k == "contact_change_completed")
        .unwrap();
    assert_eq!(
        detail.as_deref(),
        Some("Skift telefonnummer til +45••••••21")
    );
    // The new number is never stored in an event's text unmasked.
    assert!(
        events(&w, p.identity_id)
            .iter()
            .all(|(_, d)| !d.as_deref().unwrap_or("").contains("87654321"))
    );
    // A finished change cannot be confirmed again.
    let closed = portal
        .confirm_contact_change(USER, step1.change_id)
        .await
        .unwrap_err();
    assert_eq!(error_code(&closed), ErrorCode::ChangeClosed);
}

/// Pulls and checks the app shows one change in `state` with `earliest`.
async fn approve_later_check(
    phone: &Phone,
    acc: &AuthenticatorId,
    state: ChangeState,
    earliest: Option<u64>,
) {
    phone.app.refresh().await.unwrap();
    let changes = phone.app.pending_contact_changes(acc).unwrap();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].state, state);
    assert_eq!(changes[0].earliest_completion_at_ms, earliest);
}

#[tokio::test]
async fn email_change_completes_after_the_gap_and_notifies_old_and_new_address() {
    let w = World::start().await.unwrap();
    let (p, phone, acc) = grete(&w).await;
    let portal = portal(&w);
    let step1 = portal
        .start_contact_change(USER, ContactChannel::Email, "Grete.Ny@Example.DK")
        .await
        .unwrap();
    approve(
        &phone,
        &acc,
        &step1,
        "Skift e-mailadresse til G•••@e•••.dk (trin 1 af 2)",
    )
    .await;
    // One millisecond short of the hour is too early.
    w.advance(HOUR_MS - 1, &[&phone]);
    let early = portal
        .confirm_contact_change(USER, step1.change_id)
        .await
        .unwrap_err();
    assert_eq!(error_code(&early), ErrorCode::TooEarly);
    w.advance(1, &[&phone]);
    let step2 = portal
        .confirm_contact_change(USER, step1.change_id)
        .await
        .unwrap();
    approve(&phone, &acc, &step2, "(trin 2 af 2)").await;
    let info = w.admin.identity(p.identity_id).await.unwrap();
    assert_eq!(info.email_masked.as_deref(), Some("G•••@e•••.dk"));
    assert_eq!(info.phone_masked.as_deref(), Some("+45••••••78"));
    let completed = deliveries(&w, p.identity_id, "contact_change_completed");
    assert!(has(&completed, "email", OLD_EMAIL), "{completed:?}");
    assert!(
        has(&completed, "email", "Grete.Ny@example.dk"),
        "{completed:?}"
    );
    assert!(has(&completed, "sms", OLD_PHONE), "{completed:?}");
}

// ---------------------------------------------------------------- the scam

/// "The bank" phones the victim and talks them into approving a self-service
/// login. The second login cannot come within the hour; every try is
/// notified to the victim's phone and e-mail (and the scammer's number); the
/// victim sees the change in the app and cancels it; after the hour the
/// scammer's confirm fails.
#[tokio::test]
async fn bank_caller_self_service_login_cannot_finish_within_the_hour() {
    let w = World::start().await.unwrap();
    let (victim, phone, acc) = grete(&w).await;
    let scammer = portal(&w);

    let step1 = scammer
        .start_contact_change(USER, ContactChannel::Phone, SCAMMER_PHONE)
        .await
        .unwrap();
    // The victim, on the phone with "the bank", approves. The app warned.
    let views = phone.app.refresh().await.unwrap();
    assert!(!views[0].warnings.is_empty());
    approve(&phone, &acc, &step1, "+45••••••66").await;

    // The scammer tries to finish at once, and again after 59 minutes.
    let refused = scammer
        .confirm_contact_change(USER, step1.change_id)
        .await
        .unwrap_err();
    assert_eq!(error_code(&refused), ErrorCode::TooEarly);
    let message = refused.to_string();
    let earliest = w.now_ms() + HOUR_MS;
    assert!(message.contains(&earliest.to_string()), "{message}");
    w.advance(59 * 60_000, &[&phone]);
    let refused = scammer
        .confirm_contact_change(USER, step1.change_id)
        .await
        .unwrap_err();
    assert_eq!(error_code(&refused), ErrorCode::TooEarly);
    assert!(refused.to_string().contains("in 60 s"), "{refused}");
    // No second login request reached the phone.
    assert!(phone.app.refresh().await.unwrap().is_empty());

    // Every attempt was recorded: the start, the approved first login and
    // two early tries. The old phone and e-mail hear of all four; the new
    // (scammer's) number only of what followed the owner's approval, so a
    // stranger typing someone's user ID at the portal learns nothing and
    // can't make the eID send messages to numbers of their choosing.
    assert_eq!(
        count_events(&w, victim.identity_id, "contact_change_started"),
        4
    );
    let notices = deliveries(&w, victim.identity_id, "contact_change_started");
    for (channel, address, times) in [
        ("sms", OLD_PHONE, 4),
        ("email", OLD_EMAIL, 4),
        ("sms", SCAMMER_PHONE, 3),
    ] {
        let n = notices
            .iter()
            .filter(|(c, a)| c == channel && a == address)
            .count();
        assert_eq!(n, times, "{channel} {address}: {notices:?}");
    }
    let tries = events(&w, victim.identity_id);
    assert!(
        tries
            .iter()
            .filter(|(_, d)| d
                .as_deref()
                .unwrap_or("")
                .starts_with("Forsøg på at fuldføre før tid"))
            .count()
            == 2,
        "{tries:?}"
    );

    // The victim opens the app, sees the change and when it would complete,
    // and cancels it: no PIN needed.
    let changes = phone.app.pending_contact_changes(&acc).unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].new_value_masked, "+45••••••66");
    assert_eq!(changes[0].earliest_completion_at_ms, Some(earliest));
    phone
        .app
        .cancel_contact_change(&acc, &changes[0].change_id)
        .await
        .unwrap();
    assert!(phone.app.pending_contact_changes(&acc).unwrap().is_empty());
    let cancelled = deliveries(&w, victim.identity_id, "contact_change_cancelled");
    assert!(
        has(&cancelled, "sms", OLD_PHONE) && has(&cancelled, "sms", SCAMMER_PHONE),
        "{cancelled:?}"
    );
    // Cancelling again is refused, and changes nothing.
    assert_eq!(
        (phone
            .app
            .cancel_contact_change(&acc, &changes[0].change_id)
            .await
            .unwrap_err())
        .server_code(),
        Some(ErrorCode::ChangeClosed)
    );

    // After the hour the scammer's confirm fails; the phone number is the victim's.
    w.advance(2 * 60_000, &[&phone]);
    let closed = scammer
        .confirm_contact_change(USER, step1.change_id)
        .await
        .unwrap_err();
    assert_eq!(error_code(&closed), ErrorCode::ChangeClosed);
    assert_eq!(
        scammer
            .contact_change_status(USER, step1.change_id)
            .await
            .unwrap()
            .state,
        ChangeState::Cancelled
    );
    let info = w.admin.identity(victim.identity_id).await.unwrap();
    assert_eq!(info.phone_masked.as_deref(), Some("+45••••••78"));
    assert!(phone.app.refresh().await.unwrap().is_empty());
    phone.app.refresh().await.unwrap();
    assert!(phone.app.pending_contact_changes(&acc).unwrap().is_empty());
    assert_eq!(
        count_events(&w, victim.identity_id, "contact_change_completed"),
        0
    );
}

// ---------------------------------------------------------------- refusals and expiry

#[tokio::test]
async fn deny_on_the_first_login_cancels_the_change() {
    let w = World::start().await.unwrap();
    let (p, phone, acc) = grete(&w).await;
    let portal = portal(&w);
    let step1 = portal
        .start_contact_change(USER, ContactChannel::Phone, NEW_PHONE)
        .await
        .unwrap();
    phone.app.refresh().await.unwrap();
    phone.app.deny(&acc, &step1.request_id).await.unwrap();
    // Never approved: the portal does not even show it.
    let e = portal
        .confirm_contact_change(USER, step1.change_id)
        .await
        .unwrap_err();
    assert_eq!(error_code(&e), ErrorCode::UnknownChange);
    phone.app.refresh().await.unwrap();
    assert!(phone.app.pending_contact_changes(&acc).unwrap().is_empty());
    // Refused before approval: only the stored contact hears of it.
    let cancelled = deliveries(&w, p.identity_id, "contact_change_cancelled");
    assert!(
        has(&cancelled, "sms", OLD_PHONE) && !has(&cancelled, "sms", NEW_PHONE),
        "{cancelled:?}"
    );
    // A new change can start.
    portal
        .start_contact_change(USER, ContactChannel::Phone, NEW_PHONE)
        .await
        .unwrap();
}

#[tokio::test]
async fn fraud_report_on_the_second_login_cancels_the_change() {
    let w = World::start().await.unwrap();
    let (p, phone, acc) = grete(&w).await;
    let portal = portal(&w);
    let step1 = portal
        .start_contact_change(USER, ContactChannel::Email, NEW_EMAIL)
        .await
        .unwrap();
    approve(&phone, &acc, &step1, "trin 1").await;
    w.advance(HOUR_MS, &[&phone]);
    let step2 = portal
        .confirm_contact_change(USER, step1.change_id)
        .await
        .unwrap();
    phone.app.refresh().await.unwrap();
    phone
        .app
        .report_fraud(&acc, &step2.request_id)
        .await
        .unwrap();
    let status = portal
        .contact_change_status(USER, step1.change_id)
        .await
        .unwrap();
    assert_eq!(status.state, ChangeState::Cancelled);
    let e = portal
        .confirm_contact_change(USER, step1.change_id)
        .await
        .unwrap_err();
    assert_eq!(error_code(&e), ErrorCode::ChangeClosed);
    let info = w.admin.identity(p.identity_id).await.unwrap();
    assert_eq!(info.email_masked.as_deref(), Some("g•••@e•••.dk"));
    assert_eq!(
        count_events(&w, p.identity_id, "contact_change_cancelled"),
        1
    );
}

/// A second-login request that lapses leaves the change re-confirmable (the
/// hour was served; letting a request lapse is no sign of fraud); an
/// unapproved first login expires the change; a change not completed within
/// a day of its first login expires.
#[tokio::test]
async fn a_lapsed_second_login_can_be_asked_again_and_an_unapproved_first_login_expires() {
    let w = World::start().await.unwrap();
    let (p, phone, acc) = grete(&w).await;
    let portal = portal(&w);
    let step1 = portal
        .start_contact_change(USER, ContactChannel::Phone, NEW_PHONE)
        .await
        .unwrap();
    approve(&phone, &acc, &step1, "trin 1").await;
    w.advance(HOUR_MS, &[&phone]);
    let lapsed = portal
        .confirm_contact_change(USER, step1.change_id)
        .await
        .unwrap();
    w.advance(301_000, &[&phone]);
    let status = portal
        .contact_change_status(USER, step1.change_id)
        .await
        .unwrap();
    assert_eq!(status.state, ChangeState::WaitingSecondLogin);
    let step2 = portal
        .confirm_contact_change(USER, step1.change_id)
        .await
        .unwrap();
    assert_ne!(step2.request_id, lapsed.request_id);
    // The lapsed request cannot be approved any more.
    let views = phone.app.refresh().await.unwrap();
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].request_id, step2.request_id);
    // A day after the first login the change is over.
    w.advance(24 * HOUR_MS, &[&phone]);
    let e = portal
        .confirm_contact_change(USER, step1.change_id)
        .await
        .unwrap_err();
    assert_eq!(error_code(&e), ErrorCode::ChangeClosed);
    phone.app.refresh().await.unwrap();
    assert!(phone.app.pending_contact_changes(&acc).unwrap().is_empty());

    // A first login nobody approves: the change expires with its request.
    let unapproved = portal
        .start_contact_change(USER, ContactChannel::Phone, NEW_PHONE)
        .await
        .unwrap();
    phone.app.refresh().await.unwrap();
    assert_eq!(phone.app.pending_contact_changes(&acc).unwrap().len(), 1);
    w.advance(300_000, &[&phone]);
    phone.app.refresh().await.unwrap();
    assert!(phone.app.pending_contact_changes(&acc).unwrap().is_empty());
    let e = portal
        .confirm_contact_change(USER, unapproved.change_id)
        .await
        .unwrap_err();
    assert_eq!(error_code(&e), ErrorCode::UnknownChange);

    // The server's minute tick records both expiries and notifies them (old
    // and new contact); run here on the same database.
    use eid_server::store::Store as _;
    let store = eid_server::store::SqliteStore::open(
        &w.dir.path().join("server").join("eid-server.sqlite3"),
    )
    .unwrap();
    assert_eq!(store.expire_changes(w.now_ms(), 1000).await.unwrap(), 2);
    assert_eq!(store.expire_changes(w.now_ms(), 1000).await.unwrap(), 0);
    let expired: Vec<_> = events(&w, p.identity_id)
        .into_iter()
        .filter(|(k, d)| {
            k == "contact_change_cancelled" && d.as_deref().unwrap_or("").starts_with("Udløbet")
        })
        .collect();
    assert_eq!(expired.len(), 2, "{expired:?}");
    // The approved change's expiry reaches the new number too; the
    // unapproved one's only the stored contacts (one SMS to the new number).
    let cancelled = deliveries(&w, p.identity_id, "contact_change_cancelled");
    let to_new = cancelled
        .iter()
        .filter(|(c, a)| c == "sms" && a == NEW_PHONE)
        .count();
    assert!(
        has(&cancelled, "sms", OLD_PHONE) && to_new == 1,
        "{cancelled:?}"
    );
}

#[tokio::test]
async fn one_change_at_a_time_an_unapproved_one_is_replaced_and_a_block_ends_it() {
    let w = World::start().await.unwrap();
    let (p, phone, acc) = grete(&w).await;
    let portal = portal(&w);
    let first = portal
        .start_contact_change(USER, ContactChannel::Phone, SCAMMER_PHONE)
        .await
        .unwrap();
    // A new start replaces a change nobody approved (with its request).
    let second = portal
        .start_contact_change(USER, ContactChannel::Email, NEW_EMAIL)
        .await
        .unwrap();
    let views = phone.app.refresh().await.unwrap();
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].request_id, second.request_id);
    assert!(
        phone
            .app
            .unlock(&acc, &first.request_id, PIN)
            .await
            .is_err()
    );
    approve(&phone, &acc, &second, "e-mailadresse").await;
    // Past its first login, a change blocks another one until it ends.
    let busy = portal
        .start_contact_change(USER, ContactChannel::Phone, SCAMMER_PHONE)
        .await
        .unwrap_err();
    assert_eq!(error_code(&busy), ErrorCode::ChangePending);
    // A user-ID change is another family: not blocked by it.
    portal
        .start_user_id_change(USER, "Grete!2026x")
        .await
        .unwrap();

    // Blocking the identity ends the change; a start for a blocked identity
    // answers alike but does nothing.
    phone.app.block_identity(&acc).await.unwrap();
    w.advance(HOUR_MS, &[&phone]);
    let e = portal
        .confirm_contact_change(USER, second.change_id)
        .await
        .unwrap_err();
    assert_eq!(error_code(&e), ErrorCode::IdentityBlocked);
    let before = change_rows(&w);
    let ghost = portal
        .start_contact_change(USER, ContactChannel::Phone, SCAMMER_PHONE)
        .await
        .unwrap();
    assert_eq!(change_rows(&w), before);
    assert_eq!(
        error_code(
            &portal
                .confirm_contact_change(USER, ghost.change_id)
                .await
                .unwrap_err()
        ),
        ErrorCode::UnknownChange
    );
    w.admin
        .unblock(p.identity_id, "test: support case")
        .await
        .unwrap();
    let e = portal
        .confirm_contact_change(USER, second.change_id)
        .await
        .unwrap_err();
    assert_eq!(error_code(&e), ErrorCode::ChangeClosed);
    assert_eq!(
        phone.app.authenticators().unwrap()[0].state,
        AuthenticatorState::Blocked
    );
}

// ---------------------------------------------------------------- user ID

#[tokio::test]
async fn user_id_rules_are_refused_with_reasons_through_the_api() {
    let w = World::start().await.unwrap();
    let (p, phone, acc) = grete(&w).await;
    let portal = portal(&w);
    // Rules that hold for everyone: refused at once, with the reason.
    for (bad, reason) in [
        ("ab#1", "8 to 40 characters"),
        (
            "abcdefgh1",
            "one letter, one digit and one special character",
        ),
        (
            "abc def#1",
            "may contain letters, digits and these special characters",
        ),
        ("0101801234#a", "CPR"),
    ] {
        let e = portal.start_user_id_change(USER, bad).await.unwrap_err();
        assert_eq!(error_code(&e), ErrorCode::InvalidUserId, "{bad}");
        assert!(e.to_string().contains(reason), "{bad}: {e}");
    }
    assert_eq!(change_rows(&w), 0);
    // Rules about the person's own data are checked after the login (so the
    // portal cannot be used to test guesses of someone's phone or e-mail),
    // with the reason in the change's status; the user ID stays.
    for (bad, reason) in [
        ("Tlf#12345678", "phone number"),
        ("grete.h1@example.dk", "e-mail"),
        ("Grete#Hansen1", "name"),
    ] {
        let step = portal.start_user_id_change(USER, bad).await.unwrap();
        approve(&phone, &acc, &step, "Skift bruger-ID til").await;
        let status = portal
            .user_id_change_status(USER, step.change_id)
            .await
            .unwrap();
        assert_eq!(status.state, ChangeState::Failed, "{bad}");
        let failure = status.failure.unwrap();
        assert_eq!(failure.code, ErrorCode::InvalidUserId);
        assert!(
            failure.message.contains(reason),
            "{bad}: {}",
            failure.message
        );
    }
    assert_eq!(w.admin.identity(p.identity_id).await.unwrap().user_id, USER);
    assert_eq!(count_events(&w, p.identity_id, "user_id_changed"), 0);
}

#[tokio::test]
async fn user_id_change_applies_on_approval_old_id_stops_working_and_case_cannot_collide() {
    let w = World::start().await.unwrap();
    let (p, phone, acc) = grete(&w).await;
    let portal = portal(&w);
    // The old user ID is cached by the service-provider API now.
    let before = w.login(USER, TEXT).await.unwrap();
    phone.app.refresh().await.unwrap();
    phone.app.deny(&acc, &before).await.unwrap();

    let step = portal
        .start_user_id_change(USER, "Ny#Bruger2026")
        .await
        .unwrap();
    approve(&phone, &acc, &step, "Skift bruger-ID til Ny#Bruger2026").await;
    let status = portal
        .user_id_change_status("ny#bruger2026", step.change_id)
        .await
        .unwrap();
    assert_eq!(status.state, ChangeState::Completed);
    assert_eq!(
        w.admin.identity(p.identity_id).await.unwrap().user_id,
        "Ny#Bruger2026"
    );
    assert_eq!(count_events(&w, p.identity_id, "user_id_changed"), 1);

    // The old user ID is unknown to service providers; the new one works, in
    // any case.
    let old = w.login(USER, TEXT).await.unwrap_err();
    assert!(
        old.to_string().contains("no identity has this user ID"),
        "{old}"
    );
    let request = w.login("NY#BRUGER2026", TEXT).await.unwrap();
    let views = phone.app.refresh().await.unwrap();
    assert_eq!(views.len(), 1);
    // The household list shows the new user ID after the pull.
    assert_eq!(
        phone.app.authenticators().unwrap()[0].user_id,
        "Ny#Bruger2026"
    );
    assert_eq!(views[0].user_id, "Ny#Bruger2026");
    let unlock = phone.app.unlock(&acc, &request, PIN).await.unwrap();
    phone.app.approve(&unlock, true, None).await.unwrap();
    assert_eq!(
        w.rp_status(request, TEXT).await.unwrap().status,
        RequestStatus::Approved
    );
    // The old user ID no longer starts anything (answered alike, nothing stored).
    let rows = change_rows(&w);
    portal
        .start_user_id_change(USER, "Andet#Navn1")
        .await
        .unwrap();
    assert_eq!(change_rows(&w), rows);

    // Another identity cannot take it by case, neither through support nor
    // through self-service (refused at approval, atomically).
    let taken = w
        .admin
        .create_identity("NY#bruger2026", None)
        .await
        .unwrap_err();
    assert_eq!(error_code(&taken), ErrorCode::UserIdTaken);
    let other = person(&w, "anders#1960y", "+4522334455", "anders@example.dk").await;
    let other_phone = w.phone("anders").unwrap();
    let other_acc = other_phone
        .app
        .activate(&other.user_id, &other.code, PIN)
        .await
        .unwrap()
        .authenticator_id;
    let grab = portal
        .start_user_id_change(&other.user_id, "ny#BRUGER2026")
        .await
        .unwrap();
    approve(&other_phone, &other_acc, &grab, "Skift bruger-ID til").await;
    let status = portal
        .user_id_change_status(&other.user_id, grab.change_id)
        .await
        .unwrap();
    assert_eq!(status.state, ChangeState::Failed);
    assert_eq!(status.failure.unwrap().code, ErrorCode::UserIdTaken);
    assert_eq!(
        w.admin.identity(other.identity_id).await.unwrap().user_id,
        "anders#1960y"
    );
    // The old user ID of Grete is free now, for anyone.
    let freed = portal
        .start_user_id_change(&other.user_id, USER)
        .await
        .unwrap();
    approve(&other_phone, &other_acc, &freed, USER).await;
    assert_eq!(
        w.admin.identity(other.identity_id).await.unwrap().user_id,
        USER
    );
    // The service-provider API follows: USER is Anders now.
    let to_anders = w.login(USER, TEXT).await.unwrap();
    assert!(phone.app.refresh().await.unwrap().is_empty());
    assert_eq!(
        other_phone.app.refresh().await.unwrap()[0].request_id,
        to_anders
    );
}

/// Two changes to the same user ID race; the one approved first wins and the
/// other fails with `user_id_taken` (checked in the write that applies it).
#[tokio::test]
async fn a_user_id_taken_between_start_and_approval_fails_the_change() {
    let w = World::start().await.unwrap();
    let (_, phone, acc) = grete(&w).await;
    let other = person(&w, "anders#1960y", "+4522334455", "anders@example.dk").await;
    let other_phone = w.phone("anders").unwrap();
    let other_acc = other_phone
        .app
        .activate(&other.user_id, &other.code, PIN)
        .await
        .unwrap()
        .authenticator_id;
    let portal = portal(&w);
    let mine = portal
        .start_user_id_change(USER, "Faelles#Navn1")
        .await
        .unwrap();
    let theirs = portal
        .start_user_id_change(&other.user_id, "faelles#navn1")
        .await
        .unwrap();
    approve(&other_phone, &other_acc, &theirs, "faelles#navn1").await;
    approve(&phone, &acc, &mine, "Faelles#Navn1").await;
    let status = portal
        .user_id_change_status(USER, mine.change_id)
        .await
        .unwrap();
    assert_eq!(status.state, ChangeState::Failed);
    let failure = status.failure.unwrap();
    assert_eq!(failure.code, ErrorCode::UserIdTaken);
    assert!(failure.message.contains("taken"), "{}", failure.message);
}

// ---------------------------------------------------------------- bad input

#[tokio::test]
async fn bad_input_gets_typed_errors_and_changes_nothing() {
    let w = World::start().await.unwrap();
    let (p, phone, acc) = grete(&w).await;
    let portal = portal(&w);
    let post = |path: &'static str, body: &'static str| {
        let portal = portal.clone();
        async move {
            portal
                .post_raw::<SelfServiceStep>(path, body.as_bytes().to_vec())
                .await
                .unwrap_err()
        }
    };
    for (path, body) in [
        (wire::PATH_SELF_SERVICE_CONTACT_CHANGES, "{not json"),
        (
            wire::PATH_SELF_SERVICE_CONTACT_CHANGES,
            r#"{"user_id":"grete#1950x","channel":"fax","new_value":"1"}"#,
        ),
        (
            wire::PATH_SELF_SERVICE_CONTACT_CHANGES,
            r#"{"user_id":"grete#1950x","channel":"phone","new_value":"+4587654321","extra":1}"#,
        ),
        (
            wire::PATH_SELF_SERVICE_USER_ID_CHANGES,
            r#"{"user_id":"grete#1950x"}"#,
        ),
    ] {
        assert_eq!(
            error_code(&post(path, body).await),
            ErrorCode::MalformedRequest,
            "{body}"
        );
    }
    for bad in ["12345678", "+45", "+4512a45678"] {
        let e = portal
            .start_contact_change(USER, ContactChannel::Phone, bad)
            .await
            .unwrap_err();
        assert_eq!(error_code(&e), ErrorCode::InvalidContact, "{bad}");
    }
    for bad in ["grete", "a@b", "grete@@example.dk"] {
        let e = portal
            .start_contact_change(USER, ContactChannel::Email, bad)
            .await
            .unwrap_err();
        assert_eq!(error_code(&e), ErrorCode::InvalidContact, "{bad}");
    }
    assert_eq!(change_rows(&w), 0);
    assert!(phone.app.refresh().await.unwrap().is_empty());

    // An unknown user ID gets the same answer as a real one; nothing is stored.
    let ghost = portal
        .start_contact_change("nobody#1234", ContactChannel::Phone, NEW_PHONE)
        .await
        .unwrap();
    assert_eq!(change_rows(&w), 0);
    assert_eq!(
        error_code(
            &portal
                .confirm_contact_change("nobody#1234", ghost.change_id)
                .await
                .unwrap_err()
        ),
        ErrorCode::UnknownChange
    );

    // A real change, past its first login.
    let step1 = portal
        .start_contact_change(USER, ContactChannel::Phone, NEW_PHONE)
        .await
        .unwrap();
    approve(&phone, &acc, &step1, "trin 1").await;
    let events_before = events(&w, p.identity_id).len();
    // Unknown change id, malformed id, someone else's user ID.
    let unknown = portal
        .confirm_contact_change(USER, ChangeId([9; 16]))
        .await
        .unwrap_err();
    assert_eq!(error_code(&unknown), ErrorCode::UnknownChange);
    let malformed = portal
        .post_raw::<SelfServiceStep>(
            "/v1/self-service/contact-changes/XYZ/confirm",
            br#"{"user_id":"grete#1950x"}"#.to_vec(),
        )
        .await
        .unwrap_err();
    assert_eq!(error_code(&malformed), ErrorCode::MalformedRequest);
    let other = person(&w, "anders#1960y", "+4522334455", "anders@example.dk").await;
    w.advance(HOUR_MS, &[&phone]);
    let not_yours = portal
        .confirm_contact_change(&other.user_id, step1.change_id)
        .await
        .unwrap_err();
    assert_eq!(error_code(&not_yours), ErrorCode::UnknownChange);
    let not_yours = portal
        .contact_change_status(&other.user_id, step1.change_id)
        .await
        .unwrap_err();
    assert_eq!(error_code(&not_yours), ErrorCode::UnknownChange);
    // A contact change is not a user-ID change.
    let wrong_kind = portal
        .user_id_change_status(USER, step1.change_id)
        .await
        .unwrap_err();
    assert_eq!(error_code(&wrong_kind), ErrorCode::UnknownChange);
    assert_eq!(events(&w, p.identity_id).len(), events_before);
    assert!(phone.app.refresh().await.unwrap().is_empty());

    // Cancel with a bad signature: another device's signature under the
    // victim's authenticator id.
    let endpoint = Endpoint::new(&w.base_url(), &w.spki_pin).unwrap();
    let mut mallory = SoftPhone::new();
    let code_m = w
        .admin
        .issue_activation_code(other.identity_id)
        .await
        .unwrap();
    mallory
        .activate(&endpoint, &other.user_id, &code_m.activation_code)
        .await
        .unwrap();
    let body = serde_json::to_vec(&wire::CancelContactChangeRequest {
        authenticator_id: acc,
        change_id: step1.change_id,
    })
    .unwrap();
    let signed = SoftPhone::sign_device_request(
        &[&mallory],
        wire::PATH_CANCEL_CONTACT_CHANGE,
        &body,
        w.now_ms(),
        Nonce16::random(),
    );
    let forged = signed
        .signature
        .replacen(&mallory.id().to_string(), &acc.to_string(), 1);
    let response = endpoint
        .client
        .post(format!(
            "{}{}",
            w.base_url(),
            wire::PATH_CANCEL_CONTACT_CHANGE
        ))
        .header("content-type", "application/json")
        .header(wire::HEADER_TIMESTAMP, &signed.timestamp)
        .header(wire::HEADER_NONCE, &signed.nonce)
        .header(wire::HEADER_SIGNATURE, forged)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let e = eid_api_client::decode::<wire::ChangeStatus>(response)
        .await
        .unwrap_err();
    assert_eq!(error_code(&e), ErrorCode::InvalidSignature);
    // Mallory's own, valid signature over a cancel of Grete's change: not hers.
    let body = serde_json::to_vec(&wire::CancelContactChangeRequest {
        authenticator_id: mallory.id(),
        change_id: step1.change_id,
    })
    .unwrap();
    let signed = SoftPhone::sign_device_request(
        &[&mallory],
        wire::PATH_CANCEL_CONTACT_CHANGE,
        &body,
        w.now_ms(),
        Nonce16::random(),
    );
    let response = endpoint
        .client
        .post(format!(
            "{}{}",
            w.base_url(),
            wire::PATH_CANCEL_CONTACT_CHANGE
        ))
        .header("content-type", "application/json")
        .header(wire::HEADER_TIMESTAMP, &signed.timestamp)
        .header(wire::HEADER_NONCE, &signed.nonce)
        .header(wire::HEADER_SIGNATURE, &signed.signature)
        .body(body)
        .send()
        .await
        .unwrap();
    let e = eid_api_client::decode::<wire::ChangeStatus>(response)
        .await
        .unwrap_err();
    assert_eq!(error_code(&e), ErrorCode::UnknownChange);
    // The app refuses an authenticator it does not have, and an unknown change.
    assert_eq!(
        phone
            .app
            .cancel_contact_change(&AuthenticatorId([7; 16]), &step1.change_id)
            .await
            .unwrap_err(),
        Error::UnknownAuthenticator
    );
    assert_eq!(
        (phone
            .app
            .cancel_contact_change(&acc, &ChangeId([9; 16]))
            .await
            .unwrap_err())
        .server_code(),
        Some(ErrorCode::UnknownChange)
    );

    // Nothing changed: the change still completes.
    let status = portal
        .contact_change_status(USER, step1.change_id)
        .await
        .unwrap();
    assert_eq!(status.state, ChangeState::WaitingSecondLogin);
    let step2 = portal
        .confirm_contact_change(USER, step1.change_id)
        .await
        .unwrap();
    approve(&phone, &acc, &step2, "trin 2").await;
    assert_eq!(
        w.admin
            .identity(p.identity_id)
            .await
            .unwrap()
            .phone_masked
            .as_deref(),
        Some("+45••••••21")
    );
}

/// The service-provider API still refuses first-party kinds, so "the bank"
/// cannot send a self-service login itself.
#[tokio::test]
async fn a_relying_party_cannot_ask_for_a_self_service_login() {
    let w = World::start().await.unwrap();
    let (_, phone, _) = grete(&w).await;
    let e =
        w.rp.create_request(USER, RequestKind::SelfService, "Skift telefonnummer", None)
            .await
            .unwrap_err();
    assert_eq!(error_code(&e), ErrorCode::InvalidParameter);
    assert!(phone.app.refresh().await.unwrap().is_empty());
}

/// Every self-service endpoint is in the OpenAPI document.
#[tokio::test]
async fn the_self_service_api_is_documented() {
    let w = World::start().await.unwrap();
    let doc = w.openapi().await.unwrap();
    for path in [
        wire::PATH_SELF_SERVICE_CONTACT_CHANGES,
        "/v1/self-service/contact-changes/{change_id}/confirm",
        "/v1/self-service/contact-changes/{change_id}/status",
        wire::PATH_SELF_SERVICE_USER_ID_CHANGES,
        "/v1/self-service/user-id-changes/{change_id}/status",
        wire::PATH_CANCEL_CONTACT_CHANGE,
    ] {
        assert!(doc["paths"][path]["post"].is_object(), "{path} documented");
    }
    for schema in [
        "SelfServiceStep",
        "ChangeStatus",
        "ChangeState",
        "PulledContactChange",
    ] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
}

/// The pending-request cap holds for self-service logins too; a refused start
/// stores nothing.
#[tokio::test]
async fn a_start_over_the_pending_cap_is_refused_and_stores_nothing() {
    let w = World::start().await.unwrap();
    let (p, phone, _acc) = grete(&w).await;
    // Ten pending, two minutes apart in fives (the rate limit is 5 a minute).
    for round in 0..2 {
        if round > 0 {
            w.advance(60_000, &[&phone]);
        }
        for _ in 0..5 {
            w.login(USER, TEXT).await.unwrap();
        }
    }
    let e = portal(&w)
        .start_contact_change(USER, ContactChannel::Phone, NEW_PHONE)
        .await
        .unwrap_err();
    assert_eq!(error_code(&e), ErrorCode::RequestClosed);
    assert_eq!(change_rows(&w), 0);
    assert_eq!(count_events(&w, p.identity_id, "contact_change_started"), 0);
}

// ---------------------------------------------------------------- channel binding

/// A scammer's portal session, started with the person's user ID, sends a
/// self-service login the person may take for their own: it is approved
/// only with the code that session's portal shows, which the person does
/// not have.
#[tokio::test]
async fn a_self_service_login_is_approved_only_with_the_code_its_portal_session_shows() {
    let w = World::start().await.unwrap();
    let (p, phone, acc) = grete(&w).await;
    let portal = portal(&w);
    let scam = portal
        .start_contact_change(USER, ContactChannel::Phone, SCAMMER_PHONE)
        .await
        .unwrap();
    let views = phone.app.refresh().await.unwrap();
    let view = views
        .iter()
        .find(|v| v.request_id == scam.request_id)
        .expect("the scammer's login reaches the app");
    assert!(
        view.warnings
            .iter()
            .any(|w| w.kind == WarningKind::BindingCodeRequired),
        "the app asks for the portal's code"
    );
    assert!(!scam.binding_code.is_empty(), "the portal shows a code");
    let unlock = phone.app.unlock(&acc, &scam.request_id, PIN).await.unwrap();
    let err = phone.app.approve(&unlock, true, None).await.unwrap_err();
    assert!(matches!(err, Error::BindingCodeRequired), "{err:?}");

    // Grete's own portal session shows her another code; typed for the
    // scammer's login, it is refused by the server and nothing changes.
    let own = portal
        .start_user_id_change(USER, "Grete#Ny2026")
        .await
        .unwrap();
    assert_ne!(own.binding_code, scam.binding_code);
    let unlock = phone.app.unlock(&acc, &scam.request_id, PIN).await.unwrap();
    let err = phone
        .app
        .approve(&unlock, true, Some(&own.binding_code))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::WrongBindingCode), "{err:?}");
    assert_eq!(
        count_events(&w, p.identity_id, "contact_change_completed"),
        0
    );
    let status = portal
        .contact_change_status(USER, scam.change_id)
        .await
        .unwrap_err();
    assert_eq!(
        error_code(&status),
        ErrorCode::UnknownChange,
        "not approved"
    );

    // Her own login, with her own code, goes through.
    approve(&phone, &acc, &own, "Skift bruger-ID til").await;
    assert_eq!(
        w.admin.identity(p.identity_id).await.unwrap().user_id,
        "Grete#Ny2026"
    );
}
