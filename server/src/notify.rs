//! Security-event notifications: the dispatcher that works off the
//! `event_deliveries` outbox, the [`NotificationChannel`] trait and its two
//! adapters (e-mail over SMTP with `lettre`, SMS through an HTTP webhook), and
//! the layout of the texts (their wording is in `crate::texts`).
//!
//! Delivery is **at least once**. Each event row and its delivery rows are
//! written in the same transaction as what caused the event, so nothing that
//! committed can be lost. The dispatcher claims due rows in small batches (the
//! claim counts the attempt and leases the row for `lease_secs`), delivers,
//! and marks each delivered, or records the error and a retry time with
//! exponential back-off up to a cap; after `max_attempts` a row is given up
//! and kept, with its error, for support. If the server dies between sending
//! and marking, the lease runs out and the message is sent again: a person may
//! rarely get a notification twice, never zero times.
//!
//! The app's feed is not a channel here: the pull reads `security_events`
//! itself, in the pull's consistent snapshot, so the feed needs no dispatch and
//! cannot miss an event that committed.
//!
//! Phishing hygiene: the texts never contain a link (people must learn that a
//! message about their eID with a link is fake), and show only masked details.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use eid_protocol::events::SecurityEventKind;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::config::{NotificationsConfig, SmsWebhookConfig, SmtpConfig, SmtpSecurity};
use crate::store::{ClaimedDelivery, DeliveryOutcome, Store, StoredEvent};

pub use crate::store::Channel;

/// One message to one address.
#[derive(Clone, PartialEq, Eq)]
pub struct Notification {
    /// Where it goes (phone number or e-mail address).
    pub to: String,
    /// E-mail subject (SMS has none).
    pub subject: String,
    /// The text.
    pub text: String,
}

impl std::fmt::Debug for Notification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The address is personal data: never in logs.
        f.debug_struct("Notification")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Why a delivery failed. Messages carry no personal data (no addresses).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying (connection refused, timeout, 4xx SMTP, 5xx HTTP).
    #[error("transient: {0}")]
    Transient(String),
    /// Will not get better (5xx SMTP, 4xx HTTP, a malformed address).
    #[error("permanent: {0}")]
    Permanent(String),
}

/// A way to reach a person outside the app.
#[async_trait]
pub trait NotificationChannel: Send + Sync {
    /// Which channel this is (deliveries are claimed per channel).
    fn channel(&self) -> Channel;
    /// Delivers one notification.
    async fn deliver(&self, n: &Notification) -> Result<(), DeliveryError>;
}

// ---------------------------------------------------------------- texts
//
// The wording itself is in `crate::texts`; this part lays it out.

/// `dd.mm.yyyy hh:mm UTC` for Unix milliseconds.
pub fn format_utc(ms: u64) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{day:02}.{month:02}.{year} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

/// The texts of one event: `(e-mail subject, e-mail body, SMS text)`, each in
/// Danish then English. What happened, when, and what to do if it wasn't you.
/// Only the event's masked detail is shown; never a link.
pub fn render(event: &StoredEvent, support_phone: Option<&str>) -> (String, String, String) {
    let (da, en) = crate::texts::event_headline(event.kind);
    let when = format_utc(event.occurred_at_ms);
    let detail = event
        .detail
        .as_deref()
        .map(|d| format!(" ({d})"))
        .unwrap_or_default();
    let (call_da, call_en) = match support_phone {
        Some(p) => (
            format!("ring til eID-support på {p}"),
            format!("call eID support on {p}"),
        ),
        None => (
            "ring til eID-support".to_owned(),
            "call eID support".to_owned(),
        ),
    };
    // Once blocked, the app cannot block again: support is the way.
    let (act_da, act_en) = if event.kind == SecurityEventKind::IdentityBlocked {
        (
            format!("Var det ikke dig, så {call_da}."),
            format!("If it wasn't you, {call_en}."),
        )
    } else {
        (
            format!("Var det ikke dig? Spær dit eID i appen, eller {call_da}."),
            format!("Wasn't you? Block your eID in the app, or {call_en}."),
        )
    };
    let subject = format!("eID: {da} / {en}");
    let body = format!(
        "{da}{detail}.\r\nTidspunkt: {when}.\r\n{act_da}\r\n\
         Vi sender aldrig links. Klik aldrig på links i beskeder om dit eID.\r\n\r\n\
         {en}{detail}.\r\nTime: {when}.\r\n{act_en}\r\n\
         We never send links. Never click links in messages about your eID.\r\n"
    );
    let sms = format!("eID: {da}{detail}, {when}. {act_da} / {en}{detail}. {act_en}");
    (subject, body, sms)
}

/// The retry delay after `attempts` failed attempts: `base * 2^(attempts-1)`,
/// at most `cap`.
pub fn backoff_ms(attempts: u32, base_ms: u64, cap_ms: u64) -> u64 {
    let shift = attempts.saturating_sub(1).min(40);
    base_ms.saturating_mul(1u64 << shift).min(cap_ms)
}

// ---------------------------------------------------------------- SMTP

/// E-mail through an SMTP relay (`lettre`, tokio, rustls).
pub struct SmtpChannel {
    transport: lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
    from: lettre::message::Mailbox,
}

impl std::fmt::Debug for SmtpChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpChannel").finish_non_exhaustive()
    }
}

impl SmtpChannel {
    /// A channel for `config`.
    pub fn new(config: &SmtpConfig) -> anyhow::Result<Self> {
        use lettre::{AsyncSmtpTransport, Tokio1Executor};
        let builder = match config.security {
            SmtpSecurity::None => {
                // Plain SMTP carries the notices (and any login) in clear:
                // only to a relay on this machine.
                let host = config.host.trim_start_matches('[').trim_end_matches(']');
                let loopback = host == "localhost"
                    || host
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|a| a.is_loopback());
                anyhow::ensure!(
                    loopback && config.username.is_none(),
                    "notifications.smtp.security = \"none\" only to a loopback relay, without a login"
                );
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            }
            SmtpSecurity::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)?
            }
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host)?,
        };
        let mut builder = builder
            .port(config.port)
            .timeout(Some(Duration::from_secs(config.timeout_secs.max(1))));
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            builder =
                builder.credentials(lettre::transport::smtp::authentication::Credentials::new(
                    user.clone(),
                    password.clone(),
                ));
        }
        let from = config
            .from
            .parse()
            .map_err(|_| anyhow::anyhow!("notifications.smtp.from is not an e-mail address"))?;
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }
}

#[async_trait]
impl NotificationChannel for SmtpChannel {
    fn channel(&self) -> Channel {
        Channel::Email
    }

    async fn deliver(&self, n: &Notification) -> Result<(), DeliveryError> {
        use lettre::AsyncTransport;
        use lettre::message::header::{ContentTransferEncoding, ContentType};
        let to: lettre::message::Mailbox =
            n.to.parse()
                .map_err(|_| DeliveryError::Permanent("invalid recipient address".into()))?;
        let body = lettre::message::Body::new_with_encoding(
            n.text.clone(),
            ContentTransferEncoding::QuotedPrintable,
        )
        .map_err(|_| DeliveryError::Permanent("body cannot be encoded".into()))?;
        let message = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(n.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| DeliveryError::Permanent(format!("message: {e}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            // Only the reply code: the relay's text may quote the address.
            Err(e) => {
                let code = e
                    .status()
                    .map_or_else(|| "no reply".to_owned(), |c| c.to_string());
                if e.is_permanent() {
                    Err(DeliveryError::Permanent(format!("SMTP {code}")))
                } else if e.is_timeout() {
                    Err(DeliveryError::Transient("SMTP timeout".into()))
                } else if e.is_transient() {
                    Err(DeliveryError::Transient(format!("SMTP {code}")))
                } else {
                    Err(DeliveryError::Transient(
                        "SMTP connection failed".to_owned(),
                    ))
                }
            }
        }
    }
}

// ---------------------------------------------------------------- SMS webhook

/// SMS through an HTTP webhook: POST `{"to": "+45...", "text": "..."}`; any
/// 2xx answer is a delivery.
pub struct SmsWebhookChannel {
    http: reqwest::Client,
    url: reqwest::Url,
    bearer_token: Option<String>,
}

impl std::fmt::Debug for SmsWebhookChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Neither the token nor the URL (which may carry a key) is shown.
        f.debug_struct("SmsWebhookChannel").finish_non_exhaustive()
    }
}

impl SmsWebhookChannel {
    /// A channel for `config`.
    pub fn new(config: &SmsWebhookConfig) -> anyhow::Result<Self> {
        let url = reqwest::Url::parse(&config.url)
            .map_err(|_| anyhow::anyhow!("notifications.sms.url is not a URL"))?;
        let host = url.host_str().unwrap_or("");
        let loopback = host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|a| a.is_loopback());
        anyhow::ensure!(
            url.scheme() == "https" || (url.scheme() == "http" && loopback),
            "notifications.sms.url must be https:// (http:// only to a loopback address)"
        );
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
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(config.timeout_secs.max(1)))
            .timeout(Duration::from_secs(config.timeout_secs.max(1)))
            .build()?;
        Ok(Self {
            http,
            url,
            bearer_token: config.bearer_token.clone(),
        })
    }
}

#[async_trait]
impl NotificationChannel for SmsWebhookChannel {
    fn channel(&self) -> Channel {
        Channel::Sms
    }

    async fn deliver(&self, n: &Notification) -> Result<(), DeliveryError> {
        let mut request = self
            .http
            .post(self.url.clone())
            .json(&serde_json::json!({ "to": n.to, "text": n.text }));
        if let Some(token) = &self.bearer_token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| {
            DeliveryError::Transient(if e.is_timeout() {
                "webhook timeout".to_owned()
            } else {
                "webhook unreachable".to_owned()
            })
        })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.is_server_error()
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || status == reqwest::StatusCode::REQUEST_TIMEOUT
        {
            Err(DeliveryError::Transient(format!("webhook HTTP {status}")))
        } else {
            Err(DeliveryError::Permanent(format!("webhook HTTP {status}")))
        }
    }
}

// ---------------------------------------------------------------- dispatcher

/// Works off the delivery outbox through the configured channels.
pub struct Dispatcher {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    channels: Vec<Arc<dyn NotificationChannel>>,
    config: NotificationsConfig,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field(
                "channels",
                &self
                    .channels
                    .iter()
                    .map(|c| c.channel())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// A dispatcher with the channels `config` configures, or `None` when it
    /// configures none (the dispatcher is then off and deliveries wait).
    pub fn from_config(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        config: &NotificationsConfig,
    ) -> anyhow::Result<Option<Self>> {
        let mut channels: Vec<Arc<dyn NotificationChannel>> = Vec::new();
        if let Some(smtp) = &config.smtp {
            channels.push(Arc::new(SmtpChannel::new(smtp)?));
        }
        if let Some(sms) = &config.sms {
            channels.push(Arc::new(SmsWebhookChannel::new(sms)?));
        }
        if channels.is_empty() {
            return Ok(None);
        }
        Ok(Some(Self::new(store, clock, channels, config.clone())))
    }

    /// A dispatcher over explicit channels.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        channels: Vec<Arc<dyn NotificationChannel>>,
        config: NotificationsConfig,
    ) -> Self {
        Self {
            store,
            clock,
            channels,
            config,
        }
    }

    /// Polls until `shutdown` changes.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let poll = Duration::from_millis(self.config.poll_interval_ms.max(10));
        loop {
            if let Err(e) = self.run_once().await {
                tracing::warn!(error = %e, "notification dispatch failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.changed() => break,
            }
        }
    }

    /// Claims and delivers due deliveries until none are due; returns how
    /// many were delivered.
    pub async fn run_once(&self) -> anyhow::Result<usize> {
        let kinds: Vec<Channel> = self.channels.iter().map(|c| c.channel()).collect();
        let mut delivered = 0;
        loop {
            let now = self.clock.now_ms();
            let batch = self
                .store
                .claim_deliveries(
                    kinds.clone(),
                    now,
                    self.config.batch_size.max(1),
                    self.config.lease_secs.saturating_mul(1000),
                    self.config.max_attempts.max(1),
                )
                .await?;
            if batch.is_empty() {
                return Ok(delivered);
            }
            let results =
                futures_util::future::join_all(batch.iter().map(|d| self.deliver(d))).await;
            for (d, result) in batch.iter().zip(results) {
                let now = self.clock.now_ms();
                let outcome = match result {
                    Ok(()) => {
                        delivered += 1;
                        tracing::info!(
                            delivery = d.id,
                            channel = d.channel.as_str(),
                            kind = d.event.kind.as_str(),
                            attempts = d.attempts,
                            "notification delivered"
                        );
                        DeliveryOutcome::Delivered
                    }
                    Err(e) => {
                        let give_up = matches!(e, DeliveryError::Permanent(_))
                            || d.attempts >= self.config.max_attempts.max(1);
                        tracing::warn!(delivery = d.id, channel = d.channel.as_str(),
                            kind = d.event.kind.as_str(), attempts = d.attempts, give_up,
                            error = %e, "notification not delivered");
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
                self.store.finish_delivery(d.id, outcome, now).await?;
            }
        }
    }

    async fn deliver(&self, d: &ClaimedDelivery) -> Result<(), DeliveryError> {
        let Some(channel) = self.channels.iter().find(|c| c.channel() == d.channel) else {
            return Err(DeliveryError::Transient("channel not configured".into()));
        };
        let (subject, body, sms) = render(&d.event, self.config.support_phone.as_deref());
        let n = Notification {
            to: d.address.clone(),
            subject,
            text: match d.channel {
                Channel::Email => body,
                Channel::Sms => sms,
            },
        };
        // Bounded so a hung peer cannot outlive the lease.
        let limit = Duration::from_secs(self.config.lease_secs.max(2) / 2);
        match tokio::time::timeout(limit, channel.deliver(&n)).await {
            Ok(r) => r,
            Err(_) => Err(DeliveryError::Transient("delivery timed out".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SmsWebhookConfig, SmtpConfig, SmtpSecurity};

    fn event(kind: SecurityEventKind, detail: Option<&str>) -> StoredEvent {
        StoredEvent {
            id: 1,
            kind,
            authenticator_id: None,
            detail: detail.map(str::to_owned),
            // 2026-11-26 04:10:00 UTC
            occurred_at_ms: 1_795_666_200_000,
            audit_id: None,
        }
    }

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(format_utc(0), "01.01.1970 00:00 UTC");
        assert_eq!(format_utc(951_782_400_000), "29.02.2000 00:00 UTC");
        assert_eq!(format_utc(1_795_666_200_000), "26.11.2026 04:10 UTC");
    }

    #[test]
    fn every_kind_says_what_when_and_what_to_do_without_links() {
        let mut kinds = SecurityEventKind::ALL.to_vec();
        kinds.push(SecurityEventKind::Unknown);
        let mut subjects = std::collections::HashSet::new();
        for kind in kinds {
            let (subject, body, sms) = render(&event(kind, None), Some("+45 70 00 00 00"));
            assert!(
                subjects.insert(subject.clone()),
                "{kind:?} shares a subject"
            );
            for text in [&subject, &body, &sms] {
                for link in ["http", "www.", "://", ".dk/", ".com"] {
                    assert!(!text.contains(link), "{kind:?}: {text}");
                }
            }
            for text in [&body, &sms] {
                assert!(text.contains("26.11.2026 04:10 UTC"), "{text}");
                assert!(text.contains("+45 70 00 00 00"), "{text}");
                assert!(text.contains("support"), "{text}");
            }
            assert!(body.contains("Tidspunkt") && body.contains("Time"));
            assert!(body.contains("aldrig links") && body.contains("never send links"));
        }
        let (_, body, _) = render(&event(SecurityEventKind::Used, None), None);
        assert!(
            body.contains("Spær dit eID i appen") && body.contains("Block your eID in the app")
        );
        let (_, body, _) = render(&event(SecurityEventKind::IdentityBlocked, None), None);
        assert!(
            !body.contains("in the app"),
            "a blocked eID cannot be blocked again"
        );
    }

    #[test]
    fn the_detail_is_shown_as_given() {
        let (_, body, sms) = render(
            &event(SecurityEventKind::Used, Some("Nordisk Bank A/S")),
            None,
        );
        assert!(body.contains("Dit eID er brugt (Nordisk Bank A/S)."));
        assert!(sms.contains("Your eID was used (Nordisk Bank A/S)"));
    }

    #[test]
    fn channels_are_built_from_config_and_plain_http_is_only_for_loopback() {
        for security in [SmtpSecurity::Starttls, SmtpSecurity::Tls] {
            let smtp = SmtpConfig {
                host: "smtp.example.dk".into(),
                port: 587,
                from: "eID <no-reply@eid.example.dk>".into(),
                security,
                username: Some("eid".into()),
                password: Some("secret-password".into()),
                timeout_secs: 10,
            };
            SmtpChannel::new(&smtp).unwrap();
            assert!(!format!("{smtp:?}").contains("secret-password"));
            let bad = SmtpConfig {
                from: "not an address".into(),
                ..smtp
            };
            assert!(SmtpChannel::new(&bad).is_err());
        }
        // Plain SMTP: only to a loopback relay, and never with a login.
        let plain = |host: &str, username: Option<&str>| SmtpConfig {
            host: host.into(),
            port: 2525,
            from: "eID <no-reply@eid.example.dk>".into(),
            security: SmtpSecurity::None,
            username: username.map(Into::into),
            password: username.map(|_| "secret-password".into()),
            timeout_secs: 10,
        };
        SmtpChannel::new(&plain("127.0.0.1", None)).unwrap();
        SmtpChannel::new(&plain("localhost", None)).unwrap();
        assert!(SmtpChannel::new(&plain("smtp.example.dk", None)).is_err());
        assert!(SmtpChannel::new(&plain("127.0.0.1", Some("eid"))).is_err());
        let sms = |url: &str| SmsWebhookConfig {
            url: url.into(),
            bearer_token: Some("token-123".into()),
            timeout_secs: 10,
        };
        for ok in [
            "https://sms.example.dk/send",
            "http://127.0.0.1:9000/sms",
            "http://[::1]:9000/sms",
            "http://localhost/sms",
        ] {
            SmsWebhookChannel::new(&sms(ok)).unwrap();
        }
        for bad in [
            "http://sms.example.dk/send",
            "ftp://127.0.0.1/x",
            "not a url",
        ] {
            assert!(SmsWebhookChannel::new(&sms(bad)).is_err(), "{bad}");
        }
        let debug = format!("{:?}", sms("https://sms.example.dk/send?key=k-456"));
        assert!(
            !debug.contains("token-123") && !debug.contains("k-456"),
            "{debug}"
        );
        let n = Notification {
            to: "+4520304050".into(),
            subject: "s".into(),
            text: "t".into(),
        };
        assert!(!format!("{n:?}").contains("+4520304050"));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let base = 30_000;
        let cap = 3_600_000;
        assert_eq!(backoff_ms(1, base, cap), 30_000);
        assert_eq!(backoff_ms(2, base, cap), 60_000);
        assert_eq!(backoff_ms(3, base, cap), 120_000);
        assert_eq!(backoff_ms(7, base, cap), 1_920_000);
        assert_eq!(backoff_ms(8, base, cap), cap);
        assert_eq!(backoff_ms(u32::MAX, base, cap), cap);
        assert_eq!(backoff_ms(0, base, cap), 30_000);
        assert_eq!(backoff_ms(100, u64::MAX, u64::MAX), u64::MAX);
    }
}
