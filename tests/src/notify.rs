//! Receivers for the server's notifications, on 127.0.0.1: a minimal SMTP
//! server that captures every message (the e-mail channel talks real SMTP to
//! it through `lettre`), and an HTTP receiver for the SMS webhook that can be
//! told to fail.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// One captured e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// The envelope sender (`MAIL FROM`).
    pub mail_from: String,
    /// The envelope recipients (`RCPT TO`).
    pub rcpt_to: Vec<String>,
    /// The message as sent in `DATA` (headers and body, dot-unstuffed).
    pub data: String,
}

impl Mail {
    /// A header's value (unfolded; RFC 2047 encoded words decoded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let mut unfolded: Vec<String> = Vec::new();
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some(last) = unfolded.last_mut() {
                    last.push_str(line);
                }
            } else {
                unfolded.push(line.to_owned());
            }
        }
        unfolded.iter().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| decode_words(v.trim()))
        })
    }

    /// The body, decoded from quoted-printable or base64 as its header says.
    pub fn body(&self) -> String {
        let body = self
            .data
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_owned();
        match self
            .header("Content-Transfer-Encoding")
            .map(|e| e.to_ascii_lowercase())
            .as_deref()
        {
            Some("quoted-printable") => decode_quoted_printable(&body),
            Some("base64") => {
                let compact: String = body.split_whitespace().collect();
                String::from_utf8_lossy(
                    &base64::engine::general_purpose::STANDARD
                        .decode(compact)
                        .unwrap_or_default(),
                )
                .into_owned()
            }
            _ => body,
        }
    }
}

/// Decodes RFC 2047 encoded words (`=?utf-8?b?...?=`, `=?utf-8?q?...?=`).
fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut last_was_word = false;
    for token in value.split_whitespace() {
        let lower = token.to_ascii_lowercase();
        if lower.starts_with("=?utf-8?") && token.ends_with("?=") && token.len() > 12 {
            let encoding = lower.as_bytes()[8];
            let text = &token[10..token.len() - 2];
            let bytes = match encoding {
                b'b' => base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .unwrap_or_default(),
                _ => decode_quoted_printable(&text.replace('_', " ")).into_bytes(),
            };
            // Whitespace between two encoded words is not part of the text.
            if !out.is_empty() && !last_was_word {
                out.push(' ');
            }
            out.push_str(&String::from_utf8_lossy(&bytes));
            last_was_word = true;
        } else {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(token);
            last_was_word = false;
        }
    }
    out
}

fn decode_quoted_printable(text: &str) -> String {
    let text = text.replace("=\r\n", "");
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A minimal SMTP server on 127.0.0.1 that accepts and keeps every message.
pub struct SmtpSink {
    /// Where it listens.
    pub addr: SocketAddr,
    mails: Arc<Mutex<Vec<Mail>>>,
    shutdown: watch::Sender<bool>,
}

impl SmtpSink {
    /// Starts on a free port.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_on("127.0.0.1:0".parse()?).await
    }

    /// Starts on `addr` (a port reserved earlier, say).
    pub async fn start_on(addr: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let mails = Arc::new(Mutex::new(Vec::new()));
        let (shutdown, mut shutdown_rx) = watch::channel(false);
        let store = mails.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        if let Ok((stream, _)) = accepted {
                            tokio::spawn(session(stream, store.clone()));
                        }
                    }
                    _ = shutdown_rx.changed() => break,
                }
            }
        });
        Ok(Self {
            addr,
            mails,
            shutdown,
        })
    }

    /// The messages captured so far.
    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().expect("mails").clone()
    }

    /// Waits (up to 10 s) until at least `n` messages arrived; returns all.
    pub async fn wait_for(&self, n: usize) -> Vec<Mail> {
        for _ in 0..500 {
            let mails = self.mails();
            if mails.len() >= n {
                return mails;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.mails()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

async fn session(stream: TcpStream, mails: Arc<Mutex<Vec<Mail>>>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink.test ESMTP\r\n").await?;
    let mut from = String::new();
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let upper = command.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-sink.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
        } else if upper.starts_with("HELO") {
            b"250 sink.test\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            from = angle(&command);
            to.clear();
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            to.push(angle(&command));
            b"250 OK\r\n"
        } else if upper == "DATA" {
            write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            mails.lock().expect("mails").push(Mail {
                mail_from: from.clone(),
                rcpt_to: std::mem::take(&mut to),
                data,
            });
            b"250 OK queued\r\n"
        } else if upper == "QUIT" {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else if upper == "RSET" || upper == "NOOP" {
            b"250 OK\r\n"
        } else {
            b"502 not implemented\r\n"
        };
        write.write_all(reply).await?;
    }
}

fn angle(command: &str) -> String {
    command
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map_or_else(String::new, |(addr, _)| addr.to_owned())
}

/// One SMS as the webhook received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sms {
    /// The phone number.
    pub to: String,
    /// The text.
    pub text: String,
}

#[derive(Clone, Default)]
struct SmsState {
    received: Arc<Mutex<Vec<Sms>>>,
    calls: Arc<AtomicUsize>,
    fail_next: Arc<AtomicUsize>,
}

/// The SMS gateway's webhook on 127.0.0.1: `POST /sms` with `{"to", "text"}`.
pub struct SmsReceiver {
    /// `http://127.0.0.1:PORT/sms`.
    pub url: String,
    state: SmsState,
    shutdown: watch::Sender<bool>,
}

impl SmsReceiver {
    /// Starts on a free port.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = SmsState::default();
        let app = axum::Router::new()
            .route("/sms", axum::routing::post(receive))
            .with_state(state.clone());
        let (shutdown, mut shutdown_rx) = watch::channel(false);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = shutdown_rx.changed().await;
                })
                .await;
        });
        Ok(Self {
            url: format!("http://{addr}/sms"),
            state,
            shutdown,
        })
    }

    /// The next `n` calls are answered `500` (and not kept).
    pub fn fail_next(&self, n: usize) {
        self.state.fail_next.store(n, Ordering::SeqCst);
    }

    /// Calls so far, failed ones included.
    pub fn calls(&self) -> usize {
        self.state.calls.load(Ordering::SeqCst)
    }

    /// The messages accepted so far.
    pub fn received(&self) -> Vec<Sms> {
        self.state.received.lock().expect("sms").clone()
    }

    /// Waits (up to 10 s) until at least `n` messages were accepted.
    pub async fn wait_for(&self, n: usize) -> Vec<Sms> {
        for _ in 0..500 {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.received()
    }
}

impl Drop for SmsReceiver {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

async fn receive(
    axum::extract::State(state): axum::extract::State<SmsState>,
    Json(body): Json<serde_json::Value>,
) -> StatusCode {
    state.calls.fetch_add(1, Ordering::SeqCst);
    let failing = state
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let (Some(to), Some(text)) = (body["to"].as_str(), body["text"].as_str()) else {
        return StatusCode::BAD_REQUEST;
    };
    state.received.lock().expect("sms").push(Sms {
        to: to.to_owned(),
        text: text.to_owned(),
    });
    StatusCode::OK
}
