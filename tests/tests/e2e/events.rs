//! Security events and notifications, end to end: the server records an
//! event in its outbox in the same transaction as what caused it; the app's
//! feed reads it on the next pull; the dispatcher delivers it by real SMTP to
//! a sink on 127.0.0.1 and by the SMS webhook to a receiver on 127.0.0.1,
//! retrying with back-off and surviving restarts.

use std::sync::Arc;
use std::time::Duration;

use eid_api_client::SoftPhone;
use eid_api_client::{ApiFailure, Endpoint, decode};
use eid_core::{Language, SecurityEventKind};
use eid_e2e_tests::notify::{Mail, SmsReceiver, SmtpSink};
use eid_e2e_tests::{ConfigureFn, PIN, PROVIDER_NAME, Person, Phone, World};
use eid_protocol::crypto::SoftwareSigningKey;
use eid_protocol::messages::SettingsChange;
use eid_protocol::wire::{
    self, CreateIdentityRequest, DeviceSettingsRequest, DeviceSettingsResponse, ErrorCode,
    PinProof, PullRequest, PullResponse,
};
use eid_protocol::{AuthenticatorId, Decision, Nonce16, Outcome};
use eid_server::Config;
use eid_server::config::{SmsWebhookConfig, SmtpConfig, SmtpSecurity};

const USER: &str = "anna#2024x";
const PHONE: &str = "+4520304050";
const EMAIL: &str = "anna.jensen@example.dk";
const TEXT: &str = "Log på Nordisk Netbank";

/// The server with both channels pointed at the receivers; the dispatcher
/// polls every 20 ms; retries start at 30 s (the manual clock moves them).
fn channels(smtp_port: u16, sms_url: &str, max_attempts: u32) -> ConfigureFn {
    let sms_url = sms_url.to_owned();
    Arc::new(move |c: &mut Config| {
        c.notifications.poll_interval_ms = 20;
        c.notifications.max_attempts = max_attempts;
        c.notifications.support_phone = Some("+45 70 10 20 30".into());
        c.notifications.smtp = Some(SmtpConfig {
            host: "127.0.0.1".into(),
            port: smtp_port,
            from: "eID <no-reply@eid.test>".into(),
            security: SmtpSecurity::None,
            username: None,
            password: None,
            timeout_secs: 10,
        });
        c.notifications.sms = Some(SmsWebhookConfig {
            url: sms_url.clone(),
            bearer_token: None,
            timeout_secs: 10,
        });
    })
}

async fn world_with_receivers() -> (World, SmtpSink, SmsReceiver) {
    let smtp = SmtpSink::start().await.unwrap();
    let sms = SmsReceiver::start().await.unwrap();
    let w = World::start_configured(channels(smtp.addr.port(), &sms.url, 10))
        .await
        .unwrap();
    (w, smtp, sms)
}

/// A person with a phone number and an e-mail address.
async fn person(w: &World) -> Person {
    let created = w
        .admin
        .create_identity_with(&CreateIdentityRequest {
            user_id: USER.into(),
            display_name: Some("Anna Jensen".into()),
            phone: Some(PHONE.into()),
            email: Some(EMAIL.into()),
        })
        .await
        .unwrap();
    let code = w
        .admin
        .issue_activation_code(created.identity_id)
        .await
        .unwrap();
    Person {
        identity_id: created.identity_id,
        user_id: USER.into(),
        code: code.activation_code,
    }
}

async fn approve(w: &World, phone: &Phone, authenticator: &AuthenticatorId) {
    let request = w.login(USER, TEXT).await.unwrap();
    phone.app.refresh().await.unwrap();
    let unlock = phone
        .app
        .unlock(authenticator, &request, PIN)
        .await
        .unwrap();
    phone.app.approve(&unlock, true, None).await.unwrap();
}

fn feed_kinds(phone: &Phone, authenticator: &AuthenticatorId) -> Vec<SecurityEventKind> {
    phone
        .app
        .events(authenticator, Language::English)
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect()
}

/// One row of the server's delivery outbox.
#[derive(Debug, Clone)]
struct Delivery {
    kind: String,
    channel: String,
    address: String,
    attempts: u32,
    delivered: bool,
    last_error: Option<String>,
    next_attempt_ms: i64,
}

impl Delivery {
    /// Tried and failed, and not being tried right now (a claimed row is
    /// leased for 300 s; a failed one waits its back-off of at most 60 s here).
    fn failed_and_waiting(&self, now_ms: u64) -> bool {
        !self.delivered
            && self.last_error.is_some()
            && self.next_attempt_ms <= now_ms as i64 + 120_000
    }

    /// Failed for the last time: the server parks a given-up row at the far
    /// end of its due index. (A row claimed for its last attempt already
    /// counts that attempt and still shows the previous error, so attempts
    /// and error alone do not say the attempt was made.)
    fn given_up(&self) -> bool {
        !self.delivered && self.last_error.is_some() && self.next_attempt_ms == i64::MAX
    }
}

fn deliveries(w: &World) -> Vec<Delivery> {
    let conn = w.read_database().unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT e.kind, d.channel, d.address, d.attempts, d.delivered_at_ms IS NOT NULL, d.last_error, \
             d.next_attempt_ms \
             FROM event_deliveries d JOIN security_events e ON e.id = d.event_id ORDER BY d.id",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok(Delivery {
            kind: r.get(0)?,
            channel: r.get(1)?,
            address: r.get(2)?,
            attempts: r.get(3)?,
            delivered: r.get(4)?,
            last_error: r.get(5)?,
            next_attempt_ms: r.get(6)?,
        })
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

/// An e-mail to the person about `english` (the English half of the
/// subject), with no unmasked personal data and no link.
fn assert_mail(mail: &Mail, english: &str) {
    assert_eq!(mail.rcpt_to, vec![EMAIL.to_owned()]);
    assert_eq!(mail.mail_from, "no-reply@eid.test");
    assert!(mail.header("To").unwrap().contains(EMAIL));
    let subject = mail.header("Subject").unwrap();
    assert!(subject.starts_with("eID: "), "{subject}");
    assert!(subject.ends_with(english), "{subject}");
    let body = mail.body();
    assert!(body.contains("Var det ikke dig") || body.contains("Var det ikke dig, så"));
    assert!(body.contains("+45 70 10 20 30"), "{body}");
    for text in [&subject, &body] {
        for secret in [
            USER,
            PHONE,
            EMAIL,
            "anna.jensen",
            "Anna Jensen",
            "http",
            "www.",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}

fn subjects(mails: &[Mail]) -> Vec<String> {
    mails
        .iter()
        .map(|m| m.header("Subject").unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn activation_fraud_block_and_unblock_reach_the_feed_email_and_sms() {
    let (w, smtp, sms) = world_with_receivers().await;
    let person = person(&w).await;
    let (phone, acc) = w.activated_for(&person, "anna").await.unwrap();

    let request = w.login(USER, TEXT).await.unwrap();
    phone.app.refresh().await.unwrap();
    phone.app.report_fraud(&acc, &request).await.unwrap();
    w.admin
        .block(person.identity_id, "test: support case")
        .await
        .unwrap();
    w.admin
        .unblock(person.identity_id, "test: support case")
        .await
        .unwrap();
    // Blocking again from the app ("I suspect abuse").
    phone.app.block_identity(&acc).await.unwrap();
    // Blocking what is blocked changes nothing and tells nobody again.
    w.admin
        .block(person.identity_id, "test: support case")
        .await
        .unwrap();

    // The feed: newest first, even though the authenticator is blocked now.
    phone.app.refresh().await.unwrap();
    let feed = phone.app.events(&acc, Language::English).unwrap();
    use SecurityEventKind as K;
    assert_eq!(
        feed.iter().map(|e| e.kind).collect::<Vec<_>>(),
        vec![
            K::IdentityBlocked,
            K::IdentityUnblocked,
            K::IdentityBlocked,
            K::FraudReported,
            K::DeviceActivated
        ]
    );
    assert!(feed.iter().all(|e| e.critical));
    assert!(feed.iter().all(|e| e.occurred_at_ms == w.now_ms()));
    assert!(feed[4].this_device && feed[4].body.starts_with("This phone was activated"));
    assert!(feed[3].this_device);
    assert!(
        feed[3].body.contains(PROVIDER_NAME),
        "the provider is named: {}",
        feed[3].body
    );
    assert_eq!(feed[0].title, "eID blocked");
    let danish = phone.app.events(&acc, Language::Danish).unwrap();
    assert_eq!(danish[0].title, "eID spærret");
    // A second pull brings nothing twice.
    phone.app.refresh().await.unwrap();
    assert_eq!(phone.app.events(&acc, Language::English).unwrap(), feed);

    // Every event went out by e-mail and SMS, once each.
    let mails = smtp.wait_for(5).await;
    let texts = sms.wait_for(5).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(smtp.mails().len(), 5);
    assert_eq!(sms.received().len(), 5);
    let expected = [
        "A new device was activated for your eID",
        "A request was reported as fraud",
        "Your eID was blocked",
        "Your eID was unblocked",
        "Your eID was blocked",
    ];
    let got = subjects(&mails);
    for english in expected {
        let mail = mails
            .iter()
            .find(|m| m.header("Subject").unwrap().ends_with(english))
            .unwrap_or_else(|| panic!("no mail about {english}: {got:?}"));
        assert_mail(mail, english);
    }
    let fraud = mails
        .iter()
        .find(|m| m.header("Subject").unwrap().ends_with(expected[1]))
        .unwrap();
    assert!(fraud.body().contains(PROVIDER_NAME));
    for text in &texts {
        assert_eq!(text.to, PHONE);
        assert!(text.text.starts_with("eID: "));
        for secret in [USER, EMAIL, "http"] {
            assert!(!text.text.contains(secret), "{}", text.text);
        }
    }
    for english in expected {
        assert!(
            texts.iter().any(|t| t.text.contains(english)),
            "no SMS about {english}"
        );
    }
    let rows = deliveries(&w);
    assert_eq!(rows.len(), 10);
    assert!(rows.iter().all(|d| d.delivered && d.attempts == 1));
}

#[tokio::test]
async fn a_pin_lockout_from_a_cloned_device_key_is_in_the_feed_and_notified() {
    let (w, smtp, sms) = world_with_receivers().await;
    let person = person(&w).await;
    let (phone, acc) = w.activated_for(&person, "anna").await.unwrap();
    // A second authenticator whose PIN key the attacker does not have.
    let endpoint = Endpoint::new(&w.base_url(), &w.spki_pin).unwrap();
    let code = w
        .admin
        .issue_activation_code(person.identity_id)
        .await
        .unwrap()
        .activation_code;
    let mut thief = SoftPhone::new();
    thief.activate(&endpoint, USER, &code).await.unwrap();
    w.login(USER, TEXT).await.unwrap();
    let pulled = SoftPhone::pull(&endpoint, &[&thief], w.now_ms())
        .await
        .unwrap();
    let envelope = pulled.accounts[0].requests[0].envelope.clone();
    let guess = SoftwareSigningKey::generate();
    for _ in 0..12 {
        thief.counter += 1;
        let decision =
            Decision::for_envelope(&envelope, thief.id(), Outcome::Approve, None, thief.counter);
        let d = SoftPhone::sign_decision(&thief.device_key, Some(&guess), decision);
        assert!(thief.submit(&endpoint, &d).await.is_err());
    }

    phone.app.refresh().await.unwrap();
    let feed = phone.app.events(&acc, Language::English).unwrap();
    use SecurityEventKind as K;
    // One lockout event, however many tries came after it.
    assert_eq!(
        feed.iter().map(|e| e.kind).collect::<Vec<_>>(),
        vec![K::PinLockout, K::DeviceActivated, K::DeviceActivated]
    );
    assert!(!feed[0].this_device, "another device was locked");
    assert!(!feed[1].this_device && feed[2].this_device);
    assert!(feed[0].body.contains("must be activated again"));

    let mails = smtp.wait_for(3).await;
    assert_eq!(mails.len(), 3);
    let lockout = mails
        .iter()
        .find(|m| {
            m.header("Subject")
                .unwrap()
                .ends_with("An eID app was locked after too many wrong PINs")
        })
        .expect("lockout mail");
    assert_mail(lockout, "An eID app was locked after too many wrong PINs");
    let texts = sms.wait_for(3).await;
    assert!(
        texts
            .iter()
            .any(|t| t.to == PHONE && t.text.contains("too many wrong PINs"))
    );

    // The locked key cannot switch the person's notifications off (or on).
    let body = serde_json::to_vec(&DeviceSettingsRequest {
        authenticator_id: thief.id(),
        notify_every_use: true,
        pin_proof: None,
    })
    .unwrap();
    let err = post_settings(&endpoint, &[&thief], &body, w.now_ms(), Nonce16::random())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::AuthenticatorLocked));
    phone.app.refresh().await.unwrap();
    assert!(!phone.app.notify_every_use(&acc).unwrap());
}

#[tokio::test]
async fn notify_every_use_is_off_by_default_turned_on_from_the_app_and_off_with_the_pin() {
    let (w, smtp, sms) = world_with_receivers().await;
    let person = person(&w).await;
    let (phone, acc) = w.activated_for(&person, "anna").await.unwrap();
    let other = w.another_phone(&person, "tablet").await.unwrap();
    let other_acc = other.app.authenticators().unwrap()[0].authenticator_id;

    // Off: an approval records nothing.
    assert!(!phone.app.notify_every_use(&acc).unwrap());
    approve(&w, &phone, &acc).await;
    phone.app.refresh().await.unwrap();
    use SecurityEventKind as K;
    assert_eq!(
        feed_kinds(&phone, &acc),
        vec![K::DeviceActivated, K::DeviceActivated]
    );
    smtp.wait_for(2).await;
    sms.wait_for(2).await;

    // On, from the app: it is the identity's setting, so the other device
    // of the same person sees it too.
    phone.app.turn_on_notify_every_use(&acc).await.unwrap();
    assert!(phone.app.notify_every_use(&acc).unwrap());
    other.app.refresh().await.unwrap();
    assert!(other.app.notify_every_use(&other_acc).unwrap());

    approve(&w, &phone, &acc).await;
    phone.app.refresh().await.unwrap();
    let feed = phone.app.events(&acc, Language::English).unwrap();
    assert_eq!(feed[0].kind, K::Used);
    assert!(!feed[0].critical, "a use is routine");
    assert!(feed[0].this_device);
    assert_eq!(feed[0].title, "eID used");
    assert!(feed[0].body.contains(PROVIDER_NAME), "{}", feed[0].body);
    assert_eq!(feed.len(), 3);
    let mails = smtp.wait_for(3).await;
    assert_eq!(mails.len(), 3);
    let used = mails
        .iter()
        .find(|m| m.header("Subject").unwrap().ends_with("Your eID was used"))
        .expect("use mail");
    assert_mail(used, "Your eID was used");
    assert!(used.body().contains(PROVIDER_NAME));
    let texts = sms.wait_for(3).await;
    assert!(
        texts
            .iter()
            .any(|t| t.to == PHONE && t.text.contains("Your eID was used"))
    );

    // Off again (with the PIN): the person hears of that, then nothing more.
    other
        .app
        .turn_off_notify_every_use(&other_acc, PIN)
        .await
        .unwrap();
    approve(&w, &phone, &acc).await;
    phone.app.refresh().await.unwrap();
    assert!(!phone.app.notify_every_use(&acc).unwrap());
    let feed = phone.app.events(&acc, Language::English).unwrap();
    assert_eq!(feed.len(), 4);
    assert_eq!(feed[0].kind, K::NotifyEveryUseTurnedOff);
    assert!(!feed[0].this_device, "turned off on the other device");
    smtp.wait_for(4).await;
    sms.wait_for(4).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(smtp.mails().len(), 4);
    assert_eq!(sms.received().len(), 4);
}

#[tokio::test]
async fn a_failing_sms_webhook_is_retried_with_back_off_and_delivers_once() {
    let (w, smtp, sms) = world_with_receivers().await;
    sms.fail_next(1);
    let person = person(&w).await;
    let _phone = w.activated_for(&person, "anna").await.unwrap();

    wait_until("the first SMS attempt", || {
        deliveries(&w)
            .iter()
            .any(|d| d.channel == "sms" && d.failed_and_waiting(w.now_ms()))
    })
    .await;
    let sms_row = || {
        deliveries(&w)
            .into_iter()
            .find(|d| d.channel == "sms")
            .unwrap()
    };
    let row = sms_row();
    assert_eq!((row.attempts, row.delivered), (1, false));
    assert_eq!(row.address, PHONE);
    assert!(row.last_error.unwrap().contains("500"));
    assert_eq!(row.kind, "device_activated");
    // The e-mail is not held up by the failing SMS.
    assert_eq!(smtp.wait_for(1).await.len(), 1);
    // Backing off: no new attempt before the retry time.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sms.calls(), 1);
    assert!(sms.received().is_empty());

    w.clock.advance_ms(29_000);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sms.calls(), 1, "30 s back-off");
    w.clock.advance_ms(1_000);
    let got = sms.wait_for(1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].to, PHONE);
    wait_until("the delivery to be marked", || sms_row().delivered).await;
    let row = sms_row();
    assert_eq!(row.attempts, 2);
    // Delivered once: later polls and clock moves send nothing again.
    w.clock.advance_ms(3_600_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sms.calls(), 2);
    assert_eq!(sms.received().len(), 1);
}

#[tokio::test]
async fn an_unreachable_smtp_relay_loses_nothing_and_delivers_when_it_comes_up() {
    // A port with nobody listening (yet).
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let smtp_addr = reserved.local_addr().unwrap();
    drop(reserved);
    let sms = SmsReceiver::start().await.unwrap();
    let w = World::start_configured(channels(smtp_addr.port(), &sms.url, 10))
        .await
        .unwrap();
    let person = person(&w).await;
    let (_phone, _acc) = w.activated_for(&person, "anna").await.unwrap();
    w.admin
        .block(person.identity_id, "test: support case")
        .await
        .unwrap();

    let emails = || {
        deliveries(&w)
            .into_iter()
            .filter(|d| d.channel == "email")
            .collect::<Vec<_>>()
    };
    wait_until("both e-mails tried once", || {
        emails()
            .iter()
            .filter(|d| d.attempts == 1 && d.failed_and_waiting(w.now_ms()))
            .count()
            == 2
    })
    .await;
    assert!(emails().iter().all(|d| !d.delivered && d.address == EMAIL));
    // SMS is not held up.
    assert_eq!(sms.wait_for(2).await.len(), 2);

    w.clock.advance_ms(30_000);
    wait_until("a second attempt", || {
        emails()
            .iter()
            .all(|d| d.attempts == 2 && d.failed_and_waiting(w.now_ms()))
    })
    .await;

    let smtp = SmtpSink::start_on(smtp_addr).await.unwrap();
    w.clock.advance_ms(60_000);
    let mails = smtp.wait_for(2).await;
    assert_eq!(mails.len(), 2, "{:?}", deliveries(&w));
    wait_until("both marked delivered", || {
        emails().iter().all(|d| d.delivered && d.attempts == 3)
    })
    .await;
    let got = subjects(&mails);
    for english in [
        "A new device was activated for your eID",
        "Your eID was blocked",
    ] {
        let mail = mails
            .iter()
            .find(|m| m.header("Subject").unwrap().ends_with(english))
            .unwrap_or_else(|| panic!("no mail about {english}: {got:?}"));
        assert_mail(mail, english);
    }
}

#[tokio::test]
async fn a_delivery_is_given_up_after_the_last_attempt_and_kept() {
    let smtp = SmtpSink::start().await.unwrap();
    let sms = SmsReceiver::start().await.unwrap();
    let w = World::start_configured(channels(smtp.addr.port(), &sms.url, 3))
        .await
        .unwrap();
    sms.fail_next(usize::MAX);
    let person = person(&w).await;
    let _phone = w.activated_for(&person, "anna").await.unwrap();
    for (attempt, backoff) in [(1, 30_000), (2, 60_000), (3, 0)] {
        wait_until("an attempt to fail", || {
            deliveries(&w).iter().any(|d| {
                d.channel == "sms"
                    && d.attempts == attempt
                    && d.last_error.is_some()
                    && if attempt == 3 {
                        d.given_up()
                    } else {
                        d.failed_and_waiting(w.now_ms())
                    }
            })
        })
        .await;
        assert_eq!(sms.calls() as u32, attempt);
        w.clock.advance_ms(backoff);
    }
    w.clock.advance_ms(24 * 3_600_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sms.calls(), 3, "bounded attempts");
    let row = deliveries(&w)
        .into_iter()
        .find(|d| d.channel == "sms")
        .unwrap();
    assert_eq!((row.attempts, row.delivered), (3, false));
    assert!(row.last_error.is_some(), "kept with its error for support");
    assert_eq!(smtp.wait_for(1).await.len(), 1);
}

#[tokio::test]
async fn deliveries_wait_in_the_outbox_without_channels_and_go_out_after_a_restart() {
    // No channel configured: the dispatcher is off; the feed works anyway.
    let mut w = World::start().await.unwrap();
    let person = person(&w).await;
    let (phone, acc) = w.activated_for(&person, "anna").await.unwrap();
    phone.app.block_identity(&acc).await.unwrap();
    phone.app.refresh().await.unwrap();
    assert_eq!(
        feed_kinds(&phone, &acc),
        vec![
            SecurityEventKind::IdentityBlocked,
            SecurityEventKind::DeviceActivated
        ]
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rows = deliveries(&w);
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|d| d.attempts == 0 && !d.delivered));

    let smtp = SmtpSink::start().await.unwrap();
    let sms = SmsReceiver::start().await.unwrap();
    w.reconfigure(channels(smtp.addr.port(), &sms.url, 10));
    w.restart_server().await.unwrap();
    assert_eq!(smtp.wait_for(2).await.len(), 2);
    assert_eq!(sms.wait_for(2).await.len(), 2);
    wait_until("all delivered", || {
        deliveries(&w)
            .iter()
            .all(|d| d.delivered && d.attempts == 1)
    })
    .await;
}

async fn post_settings(
    endpoint: &Endpoint,
    signers: &[&SoftPhone],
    body: &[u8],
    timestamp_ms: u64,
    nonce: Nonce16,
) -> Result<DeviceSettingsResponse, ApiFailure> {
    post_signed(
        endpoint,
        wire::PATH_DEVICE_SETTINGS,
        signers,
        body,
        timestamp_ms,
        nonce,
    )
    .await
}

async fn post_signed<T: serde::de::DeserializeOwned>(
    endpoint: &Endpoint,
    path: &str,
    signers: &[&SoftPhone],
    body: &[u8],
    timestamp_ms: u64,
    nonce: Nonce16,
) -> Result<T, ApiFailure> {
    let headers = SoftPhone::sign_device_request(signers, path, body, timestamp_ms, nonce);
    decode(
        endpoint
            .client
            .post(format!("{}{}", endpoint.base_url, path))
            .header("content-type", "application/json")
            .header(wire::HEADER_TIMESTAMP, headers.timestamp)
            .header(wire::HEADER_NONCE, headers.nonce)
            .header(wire::HEADER_SIGNATURE, headers.signature)
            .body(body.to_vec())
            .send()
            .await?,
    )
    .await
}

#[tokio::test]
async fn the_settings_endpoint_refuses_bad_input_and_changes_nothing() {
    let w = World::start().await.unwrap();
    let person = person(&w).await;
    let (phone, acc) = w.activated_for(&person, "anna").await.unwrap();
    let endpoint = Endpoint::new(&w.base_url(), &w.spki_pin).unwrap();
    let code = w
        .admin
        .issue_activation_code(person.identity_id)
        .await
        .unwrap()
        .activation_code;
    let mut device = SoftPhone::new();
    device.activate(&endpoint, USER, &code).await.unwrap();
    let turn_on = |id: AuthenticatorId| {
        serde_json::to_vec(&DeviceSettingsRequest {
            authenticator_id: id,
            notify_every_use: true,
            pin_proof: None,
        })
        .unwrap()
    };
    let now = w.now_ms();

    // Signed with another key under the device's id.
    let mut forger = SoftPhone::new();
    forger.authenticator_id = Some(device.id());
    let err = post_settings(
        &endpoint,
        &[&forger],
        &turn_on(device.id()),
        now,
        Nonce16::random(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidSignature));
    // Signed by the device, but naming the person's phone.
    let err = post_settings(&endpoint, &[&device], &turn_on(acc), now, Nonce16::random())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidSignature));
    // An authenticator the server never activated.
    let mut ghost = SoftPhone::new();
    ghost.authenticator_id = Some(AuthenticatorId::random());
    let err = post_settings(
        &endpoint,
        &[&ghost],
        &turn_on(ghost.id()),
        now,
        Nonce16::random(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UnknownAuthenticator));
    // A stale timestamp.
    let err = post_settings(
        &endpoint,
        &[&device],
        &turn_on(device.id()),
        now - 600_000,
        Nonce16::random(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ClockSkew));
    // Not the settings body.
    let err = post_settings(
        &endpoint,
        &[&device],
        b"{\"notify_every_use\": 1}",
        now,
        Nonce16::random(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::MalformedRequest));
    // A pull with cursors that do not match the authenticators.
    let pull = serde_json::to_vec(&PullRequest {
        authenticator_ids: vec![device.id()],
        feed_after: vec![0, 0],
        events_after: Vec::new(),
        decisions_after: Vec::new(),
    })
    .unwrap();
    let err = post_signed::<PullResponse>(
        &endpoint,
        wire::PATH_PULL,
        &[&device],
        &pull,
        now,
        Nonce16::random(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidParameter));
    // Both kinds of feed cursor at once.
    let pull = serde_json::to_vec(&PullRequest {
        authenticator_ids: vec![device.id()],
        feed_after: vec![0],
        events_after: vec![0],
        decisions_after: Vec::new(),
    })
    .unwrap();
    let err = post_signed::<PullResponse>(
        &endpoint,
        wire::PATH_PULL,
        &[&device],
        &pull,
        now,
        Nonce16::random(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidParameter));

    phone.app.refresh().await.unwrap();
    assert!(
        !phone.app.notify_every_use(&acc).unwrap(),
        "nothing changed"
    );

    // The real thing works once; its replay is refused.
    let nonce = Nonce16::random();
    let ok = post_settings(&endpoint, &[&device], &turn_on(device.id()), now, nonce)
        .await
        .unwrap();
    assert!(ok.notify_every_use);
    assert_eq!(ok.identity_id, person.identity_id);
    let off = serde_json::to_vec(&DeviceSettingsRequest {
        authenticator_id: device.id(),
        notify_every_use: false,
        pin_proof: None,
    })
    .unwrap();
    let err = post_settings(&endpoint, &[&device], &off, now, nonce)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ReplayedNonce));
    phone.app.refresh().await.unwrap();
    assert!(phone.app.notify_every_use(&acc).unwrap());
}

#[tokio::test]
async fn an_unknown_event_kind_does_not_break_the_pull_and_the_feed_is_capped() {
    let w = World::start().await.unwrap();
    let person = person(&w).await;
    let (phone, acc) = w.activated_for(&person, "anna").await.unwrap();
    phone.app.refresh().await.unwrap();
    assert_eq!(
        feed_kinds(&phone, &acc),
        vec![SecurityEventKind::DeviceActivated]
    );

    // A newer server's events: 60 uses, then a kind this build never heard of.
    {
        let conn = rusqlite::Connection::open(w.database_path()).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        let id = person.identity_id.as_bytes().to_vec();
        for _ in 0..60 {
            conn.execute(
                "INSERT INTO security_events (identity_id, kind, detail, occurred_at_ms) \
                 VALUES (?1, 'used', 'Nordisk Bank A/S', ?2)",
                rusqlite::params![id, w.now_ms() as i64],
            )
            .unwrap();
        }
        conn.execute(
            "INSERT INTO security_events (identity_id, kind, detail, occurred_at_ms) \
             VALUES (?1, 'device_teleported', 'Mars', ?2)",
            rusqlite::params![id, w.now_ms() as i64],
        )
        .unwrap();
    }
    phone.app.refresh().await.unwrap();
    // One pull brings at most 50, the oldest after the cursor: 50 uses.
    let feed = phone.app.events(&acc, Language::English).unwrap();
    assert_eq!(feed.len(), 1 + wire::MAX_FEED_EVENTS);
    assert!(feed[0].kind == SecurityEventKind::Used);
    // The next one the rest: 10 uses and the unknown one.
    phone.app.refresh().await.unwrap();
    let feed = phone.app.events(&acc, Language::English).unwrap();
    assert_eq!(feed.len(), 1 + 60 + 1);
    assert_eq!(feed[0].kind, SecurityEventKind::Unknown);
    assert_eq!(feed[0].title, "Security event");
    assert!(feed[0].critical);
    assert_eq!(
        feed.iter()
            .filter(|e| e.kind == SecurityEventKind::Used)
            .count(),
        60
    );
    assert_eq!(
        feed.last().unwrap().kind,
        SecurityEventKind::DeviceActivated
    );
    // Nothing new on the next pull.
    phone.app.refresh().await.unwrap();
    assert_eq!(phone.app.events(&acc, Language::English).unwrap(), feed);
}

#[tokio::test]
async fn a_flood_of_events_between_two_pulls_all_arrive_over_successive_pulls() {
    let w = World::start().await.unwrap();
    let person = person(&w).await;
    let (phone, acc) = w.activated_for(&person, "anna").await.unwrap();
    phone.app.refresh().await.unwrap();
    assert_eq!(phone.app.events(&acc, Language::English).unwrap().len(), 1);

    // 120 events between two pulls: more than one pull returns.
    {
        let conn = rusqlite::Connection::open(w.database_path()).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        let id = person.identity_id.as_bytes().to_vec();
        for i in 0..120 {
            conn.execute(
                "INSERT INTO security_events (identity_id, kind, detail, occurred_at_ms) \
                 VALUES (?1, 'used', ?2, ?3)",
                rusqlite::params![id, format!("Bank {i}"), w.now_ms() as i64],
            )
            .unwrap();
        }
    }
    let pulls = 120_usize.div_ceil(wire::MAX_FEED_EVENTS);
    for _ in 0..pulls {
        phone.app.refresh().await.unwrap();
    }
    let feed = phone.app.events(&acc, Language::English).unwrap();
    assert_eq!(feed.len(), 1 + 120, "every event arrived");
    for i in 0..120 {
        let detail = format!("Bank {i}");
        assert!(
            feed.iter().any(|e| e.body.contains(&detail)),
            "event {i} arrived"
        );
    }
    // Nothing more, and nothing twice, on the next pull.
    phone.app.refresh().await.unwrap();
    assert_eq!(phone.app.events(&acc, Language::English).unwrap(), feed);
}

#[tokio::test]
async fn a_thief_with_the_unlocked_phone_cannot_turn_notify_every_use_off_without_the_pin() {
    let w = World::start().await.unwrap();
    let person = person(&w).await;
    let (phone, acc) = w.activated_for(&person, "anna").await.unwrap();
    let endpoint = Endpoint::new(&w.base_url(), &w.spki_pin).unwrap();
    let code = w
        .admin
        .issue_activation_code(person.identity_id)
        .await
        .unwrap()
        .activation_code;
    let mut device = SoftPhone::new();
    device.activate(&endpoint, USER, &code).await.unwrap();
    phone.app.refresh().await.unwrap();
    let on = serde_json::to_vec(&DeviceSettingsRequest {
        authenticator_id: device.id(),
        notify_every_use: true,
        pin_proof: None,
    })
    .unwrap();
    post_settings(&endpoint, &[&device], &on, w.now_ms(), Nonce16::random())
        .await
        .unwrap();

    // The device key alone (what a thief holding the unlocked phone has).
    let off = serde_json::to_vec(&DeviceSettingsRequest {
        authenticator_id: device.id(),
        notify_every_use: false,
        pin_proof: None,
    })
    .unwrap();
    let err = post_settings(&endpoint, &[&device], &off, w.now_ms(), Nonce16::random())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidSignature));
    phone.app.refresh().await.unwrap();
    assert!(phone.app.notify_every_use(&acc).unwrap(), "still on");

    // A proof signed by another key (a guessed PIN unwraps nothing, so a
    // thief can only sign with a key of their own): a wrong PIN, counted.
    let proof = |key: &SoftwareSigningKey, issued_at_ms: u64, nonce: Nonce16| {
        let change = SettingsChange {
            authenticator_id: device.id(),
            notify_every_use: false,
            issued_at_ms,
            nonce,
        };
        serde_json::to_vec(&DeviceSettingsRequest {
            authenticator_id: device.id(),
            notify_every_use: false,
            pin_proof: Some(PinProof {
                issued_at_ms,
                nonce,
                signature: key.sign(&change.signing_bytes()),
            }),
        })
        .unwrap()
    };
    let forged = proof(
        &SoftwareSigningKey::generate(),
        w.now_ms(),
        Nonce16::random(),
    );
    let err = post_settings(
        &endpoint,
        &[&device],
        &forged,
        w.now_ms(),
        Nonce16::random(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::WrongPin));
    // The right PIN key, but a stale proof.
    let stale = proof(&device.pin_key, w.now_ms() - 600_000, Nonce16::random());
    let err = post_settings(&endpoint, &[&device], &stale, w.now_ms(), Nonce16::random())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ClockSkew));
    phone.app.refresh().await.unwrap();
    assert!(phone.app.notify_every_use(&acc).unwrap(), "still on");

    // With the PIN key: off, once; the same proof again is a replay.
    let signed = proof(&device.pin_key, w.now_ms(), Nonce16::random());
    post_settings(
        &endpoint,
        &[&device],
        &signed,
        w.now_ms(),
        Nonce16::random(),
    )
    .await
    .unwrap();
    let err = post_settings(
        &endpoint,
        &[&device],
        &signed,
        w.now_ms(),
        Nonce16::random(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ReplayedNonce));
    phone.app.refresh().await.unwrap();
    assert!(!phone.app.notify_every_use(&acc).unwrap());
    assert_eq!(
        feed_kinds(&phone, &acc)[0],
        SecurityEventKind::NotifyEveryUseTurnedOff
    );
}

#[tokio::test]
async fn turning_notify_every_use_off_needs_the_pin_and_the_person_hears_of_it_everywhere() {
    let (w, smtp, sms) = world_with_receivers().await;
    let person = person(&w).await;
    let (phone, acc) = w.activated_for(&person, "anna").await.unwrap();
    smtp.wait_for(1).await;
    sms.wait_for(1).await;
    phone.app.turn_on_notify_every_use(&acc).await.unwrap();

    // A wrong PIN changes nothing (and counts like any PIN entry).
    let err = phone
        .app
        .turn_off_notify_every_use(&acc, "999999")
        .await
        .unwrap_err();
    assert!(matches!(err, eid_core::Error::WrongPin { .. }), "{err:?}");
    phone.app.refresh().await.unwrap();
    assert!(phone.app.notify_every_use(&acc).unwrap());

    phone
        .app
        .turn_off_notify_every_use(&acc, PIN)
        .await
        .unwrap();
    assert!(!phone.app.notify_every_use(&acc).unwrap());
    phone.app.refresh().await.unwrap();
    let feed = phone.app.events(&acc, Language::English).unwrap();
    assert_eq!(feed[0].kind, SecurityEventKind::NotifyEveryUseTurnedOff);
    assert!(feed[0].critical);
    assert!(feed[0].this_device);
    assert_eq!(feed[0].title, "Notify on every use turned off");
    let mails = smtp.wait_for(2).await;
    assert!(mails.iter().any(|m| {
        m.header("Subject")
            .unwrap()
            .ends_with("Notifications on every use of your eID were turned off")
    }));
    let texts = sms.wait_for(2).await;
    assert!(texts.iter().any(|t| {
        t.to == PHONE
            && t.text
                .contains("Notifications on every use of your eID were turned off")
    }));
}
