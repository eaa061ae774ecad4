//! Service providers' webhooks: the dispatcher that POSTs each queued
//! event (a request decided or cancelled) to the provider's URL, signed
//! with the provider's secret, retrying with exponential back-off.
//!
//! The queue is an outbox (`webhook_deliveries`), written in the same
//! transaction as the decision, so a decision never waits for the bank's
//! server and no event is lost when the server stops. Delivery is at least
//! once: a receiver must treat a repeated `request_id` + `status` as one
//! event. The signature scheme and how to verify it are in docs/webhooks.md.

use std::sync::Arc;
use std::time::Duration;

use eid_protocol::wire::WebhookEvent;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::config::WebhooksConfig;
use crate::notify::backoff_ms;
use crate::store::{ClaimedWebhookDelivery, DeliveryOutcome, Store};

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "Eid-Signature";

/// The `Eid-Signature` value for `body` sent at `unix_secs`:
/// `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` (the
/// scheme Stripe uses, so receivers can reuse its verification code).
pub fn signature(secret: &[u8], unix_secs: u64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(unix_secs.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("t={unix_secs},v1={}", hex::encode(ctx.sign().as_ref()))
}

/// Works off the webhook outbox.
pub struct WebhookDispatcher {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    http: reqwest::Client,
    config: WebhooksConfig,
}

impl std::fmt::Debug for WebhookDispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookDispatcher")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Why one POST failed (no secret and no body in it).
#[derive(Debug, thiserror::Error)]
enum PostError {
    /// The receiver answered, but not 2xx.
    #[error("the receiver answered HTTP {0}")]
    Status(u16),
    /// No answer (connection, TLS, timeout).
    #[error("no answer from the receiver ({0})")]
    Transport(&'static str),
}

impl WebhookDispatcher {
    /// A dispatcher with the system's root certificates.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        config: &WebhooksConfig,
    ) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let timeout = Duration::from_secs(config.timeout_secs.max(1));
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .no_proxy()
            // A redirect would send the signed event somewhere the admin
            // did not register.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .timeout(timeout)
            .build()?;
        Ok(Self {
            store,
            clock,
            http,
            config: config.clone(),
        })
    }

    /// Polls until `shutdown` changes.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let poll = Duration::from_millis(self.config.poll_interval_ms.max(10));
        loop {
            if let Err(e) = self.run_once().await {
                tracing::warn!(error = %e, "webhook dispatch failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.changed() => break,
            }
        }
    }

    /// Claims and sends due deliveries until none are due; returns how many
    /// were delivered.
    pub async fn run_once(&self) -> anyhow::Result<usize> {
        let mut delivered = 0;
        let max_attempts = self.config.max_attempts.max(1);
        loop {
            let batch = self
                .store
                .claim_webhook_deliveries(
                    self.clock.now_ms(),
                    self.config.batch_size.max(1),
                    self.config.lease_secs.saturating_mul(1000),
                    max_attempts,
                )
                .await?;
            if batch.is_empty() {
                return Ok(delivered);
            }
            let results = futures_util::future::join_all(batch.iter().map(|d| self.post(d))).await;
            for (d, result) in batch.iter().zip(results) {
                let now = self.clock.now_ms();
                let outcome = match result {
                    Ok(()) => {
                        delivered += 1;
                        tracing::info!(delivery = d.id, service_provider = %d.webhook.service_provider_id,
                            attempts = d.attempts, "webhook delivered");
                        DeliveryOutcome::Delivered
                    }
                    Err(e) => {
                        let give_up = d.attempts >= max_attempts;
                        tracing::warn!(delivery = d.id, service_provider = %d.webhook.service_provider_id,
                            attempts = d.attempts, give_up, error = %e, "webhook not delivered");
                        DeliveryOutcome::Failed {
                            error: e.to_string(),
                            retry_at_ms: (!give_up).then(|| {
                                now.saturating_add(backoff_ms(
                                    d.attempts,
                                    self.config.retry_base_secs.saturating_mul(1000),
                                    self.config.retry_cap_secs.saturating_mul(1000),
                                ))
                            }),
                        }
                    }
                };
                self.store
                    .finish_webhook_delivery(d.id, outcome, now)
                    .await?;
            }
        }
    }

    /// One signed POST of one event.
    async fn post(&self, d: &ClaimedWebhookDelivery) -> Result<(), PostError> {
        let body = serde_json::to_vec(&WebhookEvent {
            request_id: d.request_id,
            status: d.status,
            decided_at_ms: d.decided_at_ms,
        })
        .map_err(|_| PostError::Transport("encoding"))?;
        let unix_secs = self.clock.now_ms() / 1000;
        let response = self
            .http
            .post(&d.webhook.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                SIGNATURE_HEADER,
                signature(&d.webhook.secret, unix_secs, &body),
            )
            .body(body)
            .send()
            .await
            .map_err(|e| {
                PostError::Transport(if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connection refused or failed"
                } else {
                    "request failed"
                })
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(PostError::Status(status.as_u16()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_over_the_time_a_dot_and_the_body() {
        // What a receiver computes: one HMAC over "<t>.<body>".
        let sig = signature(b"secret", 1_700_000_000, b"{\"a\":1}");
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"secret");
        let expected = ring::hmac::sign(&key, b"1700000000.{\"a\":1}");
        assert_eq!(
            sig,
            format!("t=1700000000,v1={}", hex::encode(expected.as_ref()))
        );
        assert_ne!(sig, signature(b"other", 1_700_000_000, b"{\"a\":1}"));
        assert_ne!(sig, signature(b"secret", 1_700_000_001, b"{\"a\":1}"));
    }
}
