//! Service providers' API keys (list, rotate with a grace period, revoke)
//! and their signed webhooks, over real TLS with a real SQLite file and a
//! small HTTP receiver on 127.0.0.1 standing in for the bank.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Harness, assert_code};
use eid_api_client::{AdminClient, ProviderClient};
use eid_protocol::wire::{AgentRole, ApiKeyStateInfo, ErrorCode, RequestStatus, WebhookEvent};
use eid_protocol::{Outcome, RequestId, RequestKind, ServiceProviderId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const USER: &str = "karen#1985x";

/// Registers a second provider; its id and client.
async fn provider(h: &Harness, name: &str) -> (ServiceProviderId, String) {
    let sp = h.admin.register_service_provider(name).await.unwrap();
    (sp.service_provider_id, sp.api_key)
}

/// Whether `key` is accepted: an authorized status read of an unknown
/// request is `unknown_request`, a refused key `unauthorized`.
async fn key_works(h: &Harness, key: &str) -> bool {
    let client = ProviderClient::new(h.endpoint.clone(), key);
    match client.status(RequestId::random(), 0).await {
        Err(eid_api_client::ApiFailure::Server { body, .. }) => match body.error.code {
            ErrorCode::UnknownRequest => true,
            ErrorCode::Unauthorized => false,
            other => panic!("unexpected {other:?}"),
        },
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn an_old_key_works_during_the_grace_period_and_not_after() {
    let h = Harness::start_with(|c| c.api_key_grace_secs = 3600).await;
    let (id, old_key) = provider(&h, "Sparekassen Vest").await;
    assert!(key_works(&h, &old_key).await, "cached while active");

    let rotated = h.admin.rotate_api_key(id).await.unwrap();
    assert_eq!(rotated.old_keys_expire_at_ms, h.now() + 3_600_000);
    assert_eq!(rotated.key.state, ApiKeyStateInfo::Active);
    assert!(rotated.api_key.starts_with("eidsp_"));
    assert!(key_works(&h, &old_key).await, "in its grace period");
    assert!(key_works(&h, &rotated.api_key).await);

    let list = h.admin.api_keys(id).await.unwrap();
    assert_eq!(list.keys.len(), 2);
    assert_eq!(list.keys[0].state, ApiKeyStateInfo::RotatingOut);
    assert_eq!(list.keys[0].expires_at_ms, Some(h.now() + 3_600_000));
    assert_eq!(list.keys[1].key_id, rotated.key.key_id);
    let text = serde_json::to_string(&list).unwrap();
    assert!(!text.contains(&old_key[6..]) && !text.contains(&rotated.api_key[6..]));

    h.clock.advance_ms(3_600_000 - 1);
    assert!(key_works(&h, &old_key).await, "a moment before the end");
    h.clock.advance_ms(1);
    assert!(!key_works(&h, &old_key).await, "the grace period is over");
    assert!(key_works(&h, &rotated.api_key).await);
    let list = h.admin.api_keys(id).await.unwrap();
    assert_eq!(list.keys[0].state, ApiKeyStateInfo::Expired);
    assert_eq!(list.keys[1].state, ApiKeyStateInfo::Active);
}

#[tokio::test]
async fn a_revoked_key_is_refused_at_once_and_the_others_keep_working() {
    let h = Harness::start().await;
    let (id, old_key) = provider(&h, "Sparekassen Vest").await;
    let rotated = h.admin.rotate_api_key(id).await.unwrap();
    // Both cached now.
    assert!(key_works(&h, &old_key).await);
    assert!(key_works(&h, &rotated.api_key).await);

    let old_id = h.admin.api_keys(id).await.unwrap().keys[0].key_id;
    let after = h.admin.revoke_api_key(id, old_id).await.unwrap();
    assert_eq!(after.keys[0].state, ApiKeyStateInfo::Revoked);
    assert!(after.keys[0].revoked_at_ms.is_some());
    assert!(!key_works(&h, &old_key).await, "no stale cache hit");
    assert!(key_works(&h, &rotated.api_key).await);
    // The harness's own provider is untouched.
    assert!(key_works(&h, &h.rp_api_key).await);

    // Revoking again, another provider's key, or an unknown key changes nothing.
    assert_code(
        h.admin.revoke_api_key(id, old_id).await,
        ErrorCode::UnknownApiKey,
    );
    let (other, _) = provider(&h, "Andelskassen Syd").await;
    let new_id = after.keys[1].key_id;
    assert_code(
        h.admin.revoke_api_key(other, new_id).await,
        ErrorCode::UnknownApiKey,
    );
    assert_code(
        h.admin
            .revoke_api_key(ServiceProviderId::random(), new_id)
            .await,
        ErrorCode::UnknownServiceProvider,
    );
    assert_code(
        h.admin.api_keys(ServiceProviderId::random()).await,
        ErrorCode::UnknownServiceProvider,
    );
    assert!(key_works(&h, &rotated.api_key).await);

    let actions: Vec<String> = h
        .admin
        .audit(None, Some(20), None)
        .await
        .unwrap()
        .entries
        .into_iter()
        .filter(|e| e.service_provider_id == Some(id))
        .map(|e| e.action)
        .collect();
    for action in ["rotate_api_key", "list_api_keys", "revoke_api_key"] {
        assert!(actions.iter().any(|a| a == action), "{action} audited");
    }
}

#[tokio::test]
async fn support_agents_may_not_manage_keys_or_webhooks() {
    let h = Harness::start().await;
    let (id, key) = provider(&h, "Sparekassen Vest").await;
    let created = h
        .admin
        .create_agent("Helpdesk Anna", AgentRole::Support)
        .await
        .unwrap();
    let support = AdminClient::new(h.endpoint.clone(), &created.token);
    assert_code(support.api_keys(id).await, ErrorCode::ForbiddenRole);
    assert_code(support.rotate_api_key(id).await, ErrorCode::ForbiddenRole);
    assert_code(
        support.revoke_api_key(id, 1).await,
        ErrorCode::ForbiddenRole,
    );
    assert_code(
        support
            .set_webhook(id, Some("https://bank.example/hook"))
            .await,
        ErrorCode::ForbiddenRole,
    );
    // Nothing changed.
    assert_eq!(h.admin.api_keys(id).await.unwrap().keys.len(), 1);
    assert!(key_works(&h, &key).await);
}

#[tokio::test]
async fn bad_webhook_urls_are_refused_and_change_nothing() {
    let h = Harness::start().await;
    let (id, _) = provider(&h, "Sparekassen Vest").await;
    for bad in [
        "http://bank.example/hook",
        "not a url",
        "https://u:p@bank.example/",
    ] {
        assert_code(
            h.admin.set_webhook(id, Some(bad)).await,
            ErrorCode::InvalidParameter,
        );
    }
    assert_code(
        h.admin
            .set_webhook(ServiceProviderId::random(), Some("https://bank.example/"))
            .await,
        ErrorCode::UnknownServiceProvider,
    );
}

#[test]
fn the_key_and_webhook_endpoints_are_in_the_openapi_document() {
    let doc = eid_server::api::openapi().to_json().unwrap();
    for path in [
        "/v1/admin/service-providers/{service_provider_id}/api-keys",
        "/v1/admin/service-providers/{service_provider_id}/api-keys/rotate",
        "/v1/admin/service-providers/{service_provider_id}/api-keys/{key_id}/revoke",
        "/v1/admin/service-providers/{service_provider_id}/webhook",
    ] {
        assert!(doc.contains(path), "{path} missing");
    }
    assert!(doc.contains("unknown_api_key"));
    assert!(
        doc.contains("\"WebhookEvent\""),
        "the webhook body's schema"
    );
}

// ---------------------------------------------------------------- webhooks

/// One POST the receiver got: its `Eid-Signature` header and body.
#[derive(Debug, Clone)]
struct Received {
    signature: String,
    body: Vec<u8>,
}

/// A minimal HTTP/1.1 receiver on 127.0.0.1 answering each POST with the
/// next status of `answers` (the last one repeats).
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(answers: Vec<u16>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/eid/events", listener.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        tokio::spawn(async move {
            let mut n = 0;
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Read the head, then Content-Length bytes of body.
                let (head_end, length) = loop {
                    let read = stream.read(&mut chunk).await.unwrap_or(0);
                    if read == 0 {
                        break (None, 0);
                    }
                    buf.extend_from_slice(&chunk[..read]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (Some(end + 4), length);
                    }
                };
                let Some(start) = head_end else { continue };
                while buf.len() < start + length {
                    let read = stream.read(&mut chunk).await.unwrap_or(0);
                    if read == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..read]);
                }
                let head = String::from_utf8_lossy(&buf[..start]).to_string();
                let signature = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("eid-signature")
                            .then(|| value.trim().to_owned())
                    })
                    .unwrap_or_default();
                sink.lock().unwrap().push(Received {
                    signature,
                    body: buf[start..(start + length).min(buf.len())].to_vec(),
                });
                let status = answers[n.min(answers.len() - 1)];
                n += 1;
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = stream.write_all(reply.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
        });
        Self { url, got }
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits (real time) until `n` POSTs arrived.
    async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..200 {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {n} webhook POSTs, got {}", self.received().len());
    }
}

/// Checks `Eid-Signature: t=...,v1=...` over `<t>.<body>` with `secret`
/// (hex) the way a receiver does; returns t.
fn verify(secret_hex: &str, received: &Received) -> u64 {
    try_verify(secret_hex, received).expect("valid signature")
}

fn try_verify(secret_hex: &str, received: &Received) -> Option<u64> {
    let (t, v1) = received.signature.split_once(',').expect("t=...,v1=...");
    let t = t.strip_prefix("t=").unwrap();
    let v1 = v1.strip_prefix("v1=").unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &hex::decode(secret_hex).unwrap());
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(&received.body);
    ring::hmac::verify(&key, &signed, &hex::decode(v1).unwrap()).ok()?;
    t.parse().ok()
}

/// A request of `client` to the person, approved (or `outcome`) on `phone`.
async fn decided_request(
    h: &Harness,
    client: &ProviderClient,
    phone: &mut eid_api_client::SoftPhone,
    outcome: Outcome,
) -> RequestId {
    let created = client
        .create_request(USER, RequestKind::Login, "Log på Netbank", None)
        .await
        .unwrap();
    let envelope = h.envelope(phone, created.request_id).await;
    let decision = phone.decide(&envelope, outcome, None, true);
    phone.submit(&h.endpoint, &decision).await.unwrap();
    created.request_id
}

#[tokio::test]
async fn an_approval_is_posted_to_the_webhook_with_a_valid_signature() {
    let h = Harness::start().await;
    let (_, mut phone) = h.person(USER).await;
    let (id, key) = provider(&h, "Sparekassen Vest").await;
    let client = ProviderClient::new(h.endpoint.clone(), &key);
    let receiver = Receiver::start(vec![200]).await;
    let set = h.admin.set_webhook(id, Some(&receiver.url)).await.unwrap();
    let secret = set.secret.expect("the secret, shown once");
    assert_eq!(secret.len(), 64, "32 random bytes in hex");

    let request_id = decided_request(&h, &client, &mut phone, Outcome::Approve).await;
    let got = receiver.wait_for(1).await;
    let t = verify(&secret, &got[0]);
    assert!(t.abs_diff(h.now() / 1000) <= 1);
    let event: WebhookEvent = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(event.request_id, request_id);
    assert_eq!(event.status, RequestStatus::Approved);
    assert!(event.decided_at_ms <= h.now());
    // A wrong secret does not verify.
    let wrong = hex::encode([7u8; 32]);
    assert_eq!(try_verify(&wrong, &got[0]), None);

    // A cancellation is an event too.
    let created = client
        .create_request(USER, RequestKind::Login, "Log på Netbank", None)
        .await
        .unwrap();
    client.cancel(created.request_id).await.unwrap();
    let got = receiver.wait_for(2).await;
    verify(&secret, &got[1]);
    let event: WebhookEvent = serde_json::from_slice(&got[1].body).unwrap();
    assert_eq!(
        (event.request_id, event.status),
        (created.request_id, RequestStatus::Cancelled)
    );
}

#[tokio::test]
async fn a_receiver_answering_500_gets_the_event_again_after_the_back_off() {
    let h = Harness::start().await;
    let (_, mut phone) = h.person(USER).await;
    let (id, key) = provider(&h, "Sparekassen Vest").await;
    let client = ProviderClient::new(h.endpoint.clone(), &key);
    let receiver = Receiver::start(vec![500, 200]).await;
    let secret = h
        .admin
        .set_webhook(id, Some(&receiver.url))
        .await
        .unwrap()
        .secret
        .unwrap();

    let request_id = decided_request(&h, &client, &mut phone, Outcome::Deny).await;
    let first = receiver.wait_for(1).await;
    // Not again before the first back-off (1 s on the server's clock).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(receiver.received().len(), 1, "waits for its retry time");
    h.clock.advance_ms(1_000);
    let got = receiver.wait_for(2).await;
    assert_eq!(got[0].body, first[0].body);
    assert_eq!(got[1].body, first[0].body, "the same event");
    verify(&secret, &got[1]);
    let event: WebhookEvent = serde_json::from_slice(&got[1].body).unwrap();
    assert_eq!(
        (event.request_id, event.status),
        (request_id, RequestStatus::Denied)
    );
    // Delivered (2xx): never sent again.
    h.clock.advance_ms(3_600_000);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(receiver.received().len(), 2);
}

#[tokio::test]
async fn nothing_is_sent_for_a_provider_without_a_webhook() {
    let h = Harness::start().await;
    let (_, mut phone) = h.person(USER).await;
    let (id, key) = provider(&h, "Sparekassen Vest").await;
    let with_hook = ProviderClient::new(h.endpoint.clone(), &key);
    let receiver = Receiver::start(vec![200]).await;
    h.admin.set_webhook(id, Some(&receiver.url)).await.unwrap();

    // The harness's provider has no webhook: its decision sends nothing.
    let rp = ProviderClient::new(h.endpoint.clone(), &h.rp_api_key);
    decided_request(&h, &rp, &mut phone, Outcome::Approve).await;
    // The other provider's does, and is the only POST.
    let request_id = decided_request(&h, &with_hook, &mut phone, Outcome::Approve).await;
    let got = receiver.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let got_later = receiver.received();
    assert_eq!(got_later.len(), 1, "{got:?}");
    let event: WebhookEvent = serde_json::from_slice(&got_later[0].body).unwrap();
    assert_eq!(event.request_id, request_id);

    // Removed: nothing more.
    let removed = h.admin.set_webhook(id, None).await.unwrap();
    assert_eq!((removed.url, removed.secret), (None, None));
    decided_request(&h, &with_hook, &mut phone, Outcome::Approve).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(receiver.received().len(), 1);
}
