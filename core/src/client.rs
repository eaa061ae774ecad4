//! HTTPS client for the server's device API: TLS 1.3 only, `ring` provider,
//! and a certificate check that pins the server's public key.
//!
//! The verifier accepts exactly the certificate whose SubjectPublicKeyInfo has
//! the configured SHA-256 (no CA, no name or date checks: the pin is the trust
//! anchor), then checks the TLS 1.3 handshake signature against that
//! certificate's key with `rustls::crypto::verify_tls13_signature`. Sessions
//! are never resumed, so every new connection shows its certificate and
//! meets the pin.
//!
//! Device requests (pull, block, settings, enrolment status and cancel,
//! contact-change cancel) are signed here too: one timestamp taken from the
//! server's clock as last seen, one fresh nonce, and per authenticator a device-key
//! signature over its authenticator id, method, path, body hash, timestamp
//! and nonce, sent as the `eid-timestamp`, `eid-nonce` and `eid-signature`
//! headers. A `clock_skew` refusal teaches the server's time and the request
//! is signed once more.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use bytes::Bytes;
use eid_protocol::wire::{self, ErrorBody, ErrorCode};
use eid_protocol::{AuthenticatorId, DeviceRequestAuth, Nonce16, Signature};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::keystore::KeyStoreError;
use crate::store::AuthenticatorRow;
use crate::{Inner, lock};

/// Where the server is and how to recognise it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Base URL, `https://host:port` (no trailing path).
    pub base_url: String,
    /// The server's SPKI pin: `sha256/<standard base64 of SHA-256(SPKI DER)>`.
    pub spki_pin: String,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout.
    pub request_timeout: Duration,
}

impl ServerConfig {
    /// A config with default timeouts (5 s connect, 15 s per request).
    pub fn new(base_url: impl Into<String>, spki_pin: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            spki_pin: spki_pin.into(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
        }
    }
}

/// Parses `sha256/<base64>` (or bare base64) into the 32-byte digest.
pub fn parse_spki_pin(pin: &str) -> Result<[u8; 32]> {
    let b64 = pin.strip_prefix("sha256/").unwrap_or(pin).trim();
    let bytes = STANDARD
        .decode(b64)
        .or_else(|_| STANDARD_NO_PAD.decode(b64))
        .map_err(|_| Error::Config("SPKI pin is not base64".into()))?;
    bytes
        .try_into()
        .map_err(|_| Error::Config("SPKI pin must be a SHA-256 digest".into()))
}

/// The pin of a DER certificate: `sha256/<base64 of SHA-256(SPKI DER)>`.
pub fn spki_pin_of_certificate(cert_der: &[u8]) -> Result<String> {
    let digest = spki_sha256(cert_der).ok_or_else(|| Error::Config("bad certificate".into()))?;
    Ok(format!("sha256/{}", STANDARD.encode(digest)))
}

fn spki_sha256(cert_der: &[u8]) -> Option<[u8; 32]> {
    // webpki already comes with rustls; a general X.509 parser would add
    // about half a megabyte to the phone library for this one field.
    let der = rustls_pki_types::CertificateDer::from(cert_der);
    let cert = webpki::EndEntityCert::try_from(&der).ok()?;
    Some(eid_protocol::sha256(&cert.subject_public_key_info()))
}

/// Accepts only the pinned server key; TLS 1.3 handshake signatures only.
#[derive(Debug)]
pub(crate) struct PinnedVerifier {
    pin: [u8; 32],
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedVerifier {
    pub(crate) fn new(pin: [u8; 32], algorithms: WebPkiSupportedAlgorithms) -> Self {
        Self { pin, algorithms }
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let digest = spki_sha256(end_entity).ok_or(rustls::Error::InvalidCertificate(
            CertificateError::BadEncoding,
        ))?;
        if eid_protocol::crypto::constant_time_eq(&digest, &self.pin) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not allowed".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The only handshake signature the pinned server may use: ECDSA P-256 with
/// SHA-256 (the server's certificate key is P-256).
static PINNED_SERVER_SIGNATURES: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[webpki::ring::ECDSA_P256_SHA256],
    mapping: &[(
        SignatureScheme::ECDSA_NISTP256_SHA256,
        &[webpki::ring::ECDSA_P256_SHA256],
    )],
};

/// Randomness for the TLS handshake, from ring's system source.
#[derive(Debug)]
struct SystemRandomness;

impl rustls::crypto::SecureRandom for SystemRandomness {
    fn fill(&self, buf: &mut [u8]) -> Result<(), rustls::crypto::GetRandomFailed> {
        use ring::rand::SecureRandom as _;
        ring::rand::SystemRandom::new()
            .fill(buf)
            .map_err(|_| rustls::crypto::GetRandomFailed)
    }
}

/// The client never presents a certificate, so it loads no private keys.
#[derive(Debug)]
struct NoClientKeys;

impl rustls::crypto::KeyProvider for NoClientKeys {
    fn load_private_key(
        &self,
        _key_der: rustls_pki_types::PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
        Err(rustls::Error::General("no client keys".into()))
    }
}

/// The phone's TLS capabilities, and no more: TLS 1.3 with AES-128-GCM,
/// P-256 key exchange and P-256 signatures, on ring. Leaving out the
/// algorithms the pinned server never uses (ChaCha20, X25519, P-384, RSA,
/// Ed25519, TLS 1.2) keeps them out of the phone library.
fn phone_crypto_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::CryptoProvider {
        cipher_suites: vec![rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256],
        kx_groups: vec![rustls::crypto::ring::kx_group::SECP256R1],
        signature_verification_algorithms: PINNED_SERVER_SIGNATURES,
        secure_random: &SystemRandomness,
        key_provider: &NoClientKeys,
    }
}

/// A rustls client configuration on ring, TLS 1.3 only, that trusts exactly the
/// server key whose SPKI hashes to `spki_pin` (`sha256/<base64>`).
pub fn pinned_tls_config(spki_pin: &str) -> Result<rustls::ClientConfig> {
    let pin = parse_spki_pin(spki_pin)?;
    let provider = Arc::new(phone_crypto_provider());
    let verifier = PinnedVerifier::new(pin, provider.signature_verification_algorithms);
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Config(format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    // No session resumption: a resumed TLS 1.3 handshake has no certificate,
    // so the pin would not be checked, and a server holding a leaked session
    // cache could answer with any key. A full handshake per new connection
    // is cheap next to the phone's few requests (kept-alive connections are
    // reused anyway).
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

/// Most bytes accepted in a response body.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// Most idle connections kept for reuse: a pull signs for a few
/// authenticators at once, and nothing else runs in parallel.
const MAX_IDLE: usize = 4;

/// The HTTPS client: HTTP/1.1 over kept-alive TLS connections, on hyper's
/// connection API (`hyper::client::conn::http1`).
///
/// Not reqwest: the phone makes a handful of JSON POSTs to one pinned host,
/// so a general client's redirects, proxies, cookies, URL parsing with IDNA
/// (and its Unicode tables) and pool are dead weight in the library the
/// shells ship (about 0.3 MiB of it; docs/benchmarks.md). What it keeps is
/// what hyper does: the HTTP/1.1 framing, keep-alive and body limits.
#[derive(Clone)]
pub(crate) struct Client {
    inner: Arc<Transport>,
    /// The server's time from the last `clock_skew` refusal, not yet used.
    skew_server_time: Arc<std::sync::Mutex<Option<u64>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("authority", &self.inner.authority)
            .finish_non_exhaustive()
    }
}

/// Where and how to connect, and the idle connections.
struct Transport {
    tls: tokio_rustls::TlsConnector,
    /// `host:port` for the `Host` header.
    authority: String,
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    connect_timeout: Duration,
    request_timeout: Duration,
    idle: std::sync::Mutex<Vec<Link>>,
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Why a request failed below HTTP; mapped to [`Error::Network`] classes.
enum Failure {
    Timeout,
    Connect(std::io::Error),
    Http(hyper::Error),
    Body,
    /// A header value that HTTP cannot carry (never from this crate's callers).
    Unsendable,
}

impl Client {
    pub(crate) fn new(cfg: &ServerConfig) -> Result<Self> {
        let base = cfg.base_url.trim_end_matches('/');
        let Some(authority) = base.strip_prefix("https://") else {
            return Err(Error::Config("the base URL must be https://".into()));
        };
        let parsed: http::uri::Authority = authority
            .parse()
            .map_err(|_| Error::Config("the base URL must be https://host[:port]".into()))?;
        if authority.contains(['/', '@', '?', '#']) {
            return Err(Error::Config(
                "the base URL must be https://host[:port], without a path".into(),
            ));
        }
        let port = parsed.port_u16().unwrap_or(443);
        // An IPv6 literal comes bracketed; the socket address and the TLS
        // name take it bare.
        let host = parsed
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let server_name = ServerName::try_from(host.clone())
            .map_err(|_| Error::Config("the base URL's host is not a valid name".into()))?;
        let tls = pinned_tls_config(&cfg.spki_pin)?;
        Ok(Self {
            inner: Arc::new(Transport {
                tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
                authority: parsed.as_str().to_owned(),
                host,
                port,
                server_name,
                connect_timeout: cfg.connect_timeout,
                request_timeout: cfg.request_timeout,
                idle: std::sync::Mutex::new(Vec::new()),
            }),
            skew_server_time: Arc::new(std::sync::Mutex::new(None)),
        })
    }

    /// The server's time from the last `clock_skew` refusal (taken once).
    pub(crate) fn take_skew_server_time(&self) -> Option<u64> {
        self.skew_server_time.lock().ok().and_then(|mut t| t.take())
    }

    /// Starts a new connection for the next request when no kept-alive one
    /// can take it, so that its TCP connect and TLS handshake run on the
    /// runtime while the caller still reads its store and signs (a cold
    /// open's pull). The pin is checked in its handshake as on any
    /// connection. `None` outside a tokio runtime or with an idle connection.
    pub(crate) fn warm_up(&self) -> Option<Warm> {
        let idle = self.inner.idle.lock().ok()?;
        if idle.iter().any(|l| !l.ended() && !l.sender.is_closed()) {
            return None;
        }
        drop(idle);
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let transport = Arc::clone(&self.inner);
        Some(Warm(
            runtime.spawn(async move { transport.connect().await }),
        ))
    }

    /// POSTs `body` (JSON bytes, sent exactly) with extra headers; decodes the answer.
    pub(crate) async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Vec<u8>,
        headers: &[(&'static str, String)],
    ) -> Result<T> {
        self.post_on(None, path, body, headers).await
    }

    /// [`Client::post`] on the connection `warm` made, if no kept-alive one
    /// can take the request.
    pub(crate) async fn post_on<T: DeserializeOwned>(
        &self,
        warm: Option<Warm>,
        path: &str,
        body: Vec<u8>,
        headers: &[(&'static str, String)],
    ) -> Result<T> {
        let exchange = self.inner.exchange(warm, path, Bytes::from(body), headers);
        let (status, server_time_ms, bytes) =
            match tokio::time::timeout(self.inner.request_timeout, exchange).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(Failure::Body)) => {
                    return Err(Error::InvalidResponse("response too large".into()));
                }
                Ok(Err(failure)) => return Err(network_error(failure)),
                Err(_) => return Err(network_error(Failure::Timeout)),
            };
        if status.is_success() {
            serde_json::from_slice(&bytes)
                .map_err(|_| Error::InvalidResponse(format!("unreadable {path} answer")))
        } else {
            match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(body) => {
                    if body.error.code == ErrorCode::ClockSkew
                        && let Some(t) = server_time_ms
                        && let Ok(mut last) = self.skew_server_time.lock()
                    {
                        *last = Some(t);
                    }
                    Err(Error::Rejected {
                        code: body.error.code,
                        message: body.error.message,
                    })
                }
                Err(_) => Err(Error::InvalidResponse(format!("HTTP {}", status.as_u16()))),
            }
        }
    }
}

impl Transport {
    /// Sends a POST on an idle connection or a new one; returns the status,
    /// the server's time header and the body (at most [`MAX_RESPONSE_BYTES`]).
    async fn exchange(
        &self,
        warm: Option<Warm>,
        path: &str,
        body: Bytes,
        headers: &[(&'static str, String)],
    ) -> std::result::Result<(http::StatusCode, Option<u64>, Bytes), Failure> {
        // `resendable`: a connection that may have been closed before this
        // request's first byte left, a kept-alive one or one warmed up while
        // the caller read its store and signed.
        let (mut link, resendable) = match self.take_idle().await {
            Some(link) => {
                // Not needed: its attempt is stopped now, not after the request.
                drop(warm);
                (link, true)
            }
            None => match warm {
                Some(warm) => (self.connect_warm(warm).await?, true),
                None => (self.connect().await?, false),
            },
        };
        let req = self.request(path, body, headers)?;
        let sent = link.drive(|sender| sender.try_send_request(req)).await;
        let resp = match sent {
            Ok(resp) => resp,
            Err(mut e) => match e.take_message() {
                // The server closed a kept-alive or warmed-up connection
                // before the request left (its idle or header timeout): hyper
                // hands the request back only when none of it was written, so
                // it is sent once more, on a new connection. Anything else
                // (the server may have read it) is the caller's error: never
                // resent here.
                Some(req) if resendable => {
                    link = self.connect().await?;
                    link.drive(|sender| sender.send_request(req))
                        .await
                        .map_err(Failure::Http)?
                }
                _ => return Err(Failure::Http(e.into_error())),
            },
        };
        let status = resp.status();
        let server_time_ms = resp
            .headers()
            .get(wire::HEADER_SERVER_TIME)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let body = link
            .drive(|_| Limited::new(resp.into_body(), MAX_RESPONSE_BYTES).collect())
            .await
            .map_err(|e| match e.downcast::<hyper::Error>() {
                Ok(e) => Failure::Http(*e),
                Err(_) => Failure::Body,
            })?
            .to_bytes();
        self.put_idle(link);
        Ok((status, server_time_ms, body))
    }

    fn request(
        &self,
        path: &str,
        body: Bytes,
        headers: &[(&'static str, String)],
    ) -> std::result::Result<hyper::Request<Full<Bytes>>, Failure> {
        let mut req = hyper::Request::post(path)
            .header(http::header::HOST, &self.authority)
            .header(http::header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        req.body(Full::new(body)).map_err(|_| Failure::Unsendable)
    }

    /// An idle connection that can take a request now. One the server
    /// closed since is dropped here, so a request never starts on it.
    ///
    /// A connection whose last answer was just read may not be ready yet:
    /// the connection has still to see the end of that answer. Waiting for
    /// it is a few microseconds; dropping it (as a check of `is_ready` alone
    /// did) cost a new TCP connection and TLS handshake.
    async fn take_idle(&self) -> Option<Link> {
        loop {
            let mut link = self.idle.lock().ok()?.pop()?;
            if link.ended() || link.sender.is_closed() {
                continue;
            }
            // Bounded: a connection that does not become ready is dropped
            // and the request goes on a new one.
            let ready = link.ready();
            if let Ok(Ok(())) = tokio::time::timeout(self.connect_timeout, ready).await
                && !link.ended()
            {
                return Some(link);
            }
        }
    }

    fn put_idle(&self, link: Link) {
        if !link.ended()
            && !link.sender.is_closed()
            && let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(link);
        }
    }

    /// The connection `warm` made for this request, or a new one. Its
    /// failure is this request's: it was this request's connection, started
    /// early (its connect timeout ran from [`Client::warm_up`], so a pull is
    /// bounded by its local work plus the request timeout). Only a warm-up
    /// task that did not finish (it panicked, or the runtime is shutting
    /// down) leaves the connection to be made here.
    async fn connect_warm(&self, mut warm: Warm) -> std::result::Result<Link, Failure> {
        if let Ok(made) = (&mut warm.0).await {
            return made;
        }
        self.connect().await
    }

    /// TCP, then TLS against the pin, then the HTTP/1.1 handshake, within
    /// the connect timeout. The connection is driven by the request that
    /// uses it ([`Link::drive`]), not by a task of its own.
    async fn connect(&self) -> std::result::Result<Link, Failure> {
        let connecting = async {
            let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(Failure::Connect)?;
            tcp.set_nodelay(true).map_err(Failure::Connect)?;
            self.tls
                .connect(self.server_name.clone(), tcp)
                .await
                .map_err(Failure::Connect)
        };
        let tls = tokio::time::timeout(self.connect_timeout, connecting)
            .await
            .map_err(|_| Failure::Timeout)??;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(Failure::Http)?;
        Ok(Link {
            sender,
            connection: Some(Box::pin(connection)),
        })
    }
}

/// A connection being made ahead of the request that will use it
/// ([`Client::warm_up`]). Dropped unused (the caller failed before its
/// request), the attempt is stopped and its socket closed.
pub(crate) struct Warm(tokio::task::JoinHandle<std::result::Result<Link, Failure>>);

impl Drop for Warm {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One HTTP/1.1 connection: the handle requests are sent on and the
/// connection itself (reading and writing the socket).
///
/// The connection is polled by the request that uses it, on the caller's
/// task, instead of by a task of its own: every request and answer then
/// passed between two tasks, and on a multi-threaded runtime between two
/// threads (a wake-up and a context switch each way). An idle connection is
/// not polled at all; one the server closed meanwhile shows it when polled
/// next (its request comes back unsent, see [`Transport::exchange`]).
/// Dropping a `Link` closes the socket.
struct Link {
    sender: Sender,
    /// `None` once the connection has finished.
    connection: Option<std::pin::Pin<Box<Connection>>>,
}

type Connection = hyper::client::conn::http1::Connection<
    TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
    Full<Bytes>,
>;

impl Link {
    /// Waits until the sender can take a request, driving the connection.
    async fn ready(&mut self) -> hyper::Result<()> {
        let Self { sender, connection } = self;
        std::future::poll_fn(|cx| {
            if let std::task::Poll::Ready(out) = sender.poll_ready(cx) {
                return std::task::Poll::Ready(out);
            }
            if poll_connection(connection, cx) {
                return sender.poll_ready(cx);
            }
            std::task::Poll::Pending
        })
        .await
    }

    /// Runs `work` (started on the sender) while driving the connection,
    /// until `work` is done. If the connection ends first, `work` still runs
    /// to its end (hyper fails what the connection can no longer answer).
    async fn drive<F: std::future::Future>(
        &mut self,
        work: impl FnOnce(&mut Sender) -> F,
    ) -> F::Output {
        let mut work = std::pin::pin!(work(&mut self.sender));
        let connection = &mut self.connection;
        std::future::poll_fn(|cx| {
            if let std::task::Poll::Ready(out) = work.as_mut().poll(cx) {
                return std::task::Poll::Ready(out);
            }
            if poll_connection(connection, cx) {
                // The connection is dropped: whatever it still held for
                // `work` (the answer, the rest of a body) has failed.
                return work.as_mut().poll(cx);
            }
            std::task::Poll::Pending
        })
        .await
    }

    /// The connection finished (closed by either side, or failed).
    fn ended(&self) -> bool {
        self.connection.is_none()
    }
}

/// Polls the connection if it still runs; `true` if it has just ended (it
/// is then dropped, which settles every answer and body it still owed).
fn poll_connection(
    connection: &mut Option<std::pin::Pin<Box<Connection>>>,
    cx: &mut std::task::Context<'_>,
) -> bool {
    let Some(running) = connection else {
        return false;
    };
    if running.as_mut().poll(cx).is_ready() {
        *connection = None;
        return true;
    }
    false
}

/// Names the failure class (no URLs with user data, no bodies).
fn network_error(failure: Failure) -> Error {
    let found_tls = match &failure {
        Failure::Connect(e) => find_rustls_error(e),
        Failure::Http(e) => find_rustls_error(e),
        Failure::Timeout | Failure::Body | Failure::Unsendable => None,
    };
    if let Some(tls) = found_tls {
        let what = match tls {
            rustls::Error::InvalidCertificate(_) => "TLS: the server key does not match the pin",
            _ => "TLS handshake failed",
        };
        return Error::Network(what.into());
    }
    let class = match failure {
        Failure::Timeout => "timeout",
        Failure::Connect(_) => "cannot connect",
        Failure::Http(e) if e.is_incomplete_message() || e.is_body_write_aborted() => {
            "connection broke while reading"
        }
        Failure::Http(e) if e.is_timeout() => "timeout",
        Failure::Http(_) => "request failed",
        Failure::Body => "connection broke while reading",
        Failure::Unsendable => "request failed",
    };
    Error::Network(class.into())
}

fn find_rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur: Option<&'a (dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(tls) = find_rustls_error(inner)
        {
            return Some(tls);
        }
        cur = err.source();
    }
    None
}

// ------------------------------------------------------------ request signing
// `impl Inner` because signing needs the keystore, the clock and the server
// time learnt from pulls, which live in the authenticator's shared state.

impl Inner {
    /// Records the server's time (from a pull) against the monotonic clock.
    pub(crate) fn learn_server_time(&self, server_time_ms: u64) -> Result<()> {
        *lock(&self.server_clock)? = Some((server_time_ms, self.clock.monotonic_ms()));
        Ok(())
    }

    /// The timestamp for a device-signed request: the server's clock as last
    /// seen plus monotonic time since; the wall clock only until the server
    /// was first heard from in this process.
    pub(crate) fn request_timestamp(&self) -> Result<u64> {
        Ok(match *lock(&self.server_clock)? {
            Some((server, mono)) => {
                server.saturating_add(self.clock.monotonic_ms().saturating_sub(mono))
            }
            None => self.clock.wall_ms(),
        })
    }

    /// POSTs a request signed by each authenticator's device key. If the server
    /// refuses the timestamp (`clock_skew`: the phone's clock is off and the
    /// server's time is not known yet in this process), learns the server's
    /// time from the refusal and signs once more (new nonce).
    pub(crate) async fn device_post<T: serde::de::DeserializeOwned>(
        &self,
        authenticators: &[AuthenticatorRow],
        path: &str,
        body: Vec<u8>,
    ) -> Result<T> {
        self.device_post_on(None, authenticators, path, body).await
    }

    /// [`Inner::device_post`] on the connection `warm` made
    /// ([`Client::warm_up`]), if no kept-alive one can take it.
    pub(crate) async fn device_post_on<T: serde::de::DeserializeOwned>(
        &self,
        warm: Option<Warm>,
        authenticators: &[AuthenticatorRow],
        path: &str,
        body: Vec<u8>,
    ) -> Result<T> {
        let headers = self.device_auth_headers(authenticators, path, &body)?;
        match self
            .client
            .post_on(warm, path, body.clone(), &headers)
            .await
        {
            Err(Error::Rejected {
                code: ErrorCode::ClockSkew,
                message,
            }) => {
                let Some(t) = self.client.take_skew_server_time() else {
                    return Err(Error::Rejected {
                        code: ErrorCode::ClockSkew,
                        message,
                    });
                };
                self.learn_server_time(t)?;
                let headers = self.device_auth_headers(authenticators, path, &body)?;
                self.client.post(path, body, &headers).await
            }
            other => other,
        }
    }

    pub(crate) fn device_auth_headers(
        &self,
        authenticators: &[AuthenticatorRow],
        path: &str,
        body: &[u8],
    ) -> Result<Vec<(&'static str, String)>> {
        let signers: Vec<(AuthenticatorId, &str)> = authenticators
            .iter()
            .map(|a| (a.authenticator_id, a.device_key_alias.as_str()))
            .collect();
        self.signed_headers(&signers, path, body)
    }

    /// Device-request headers signed by each `(id, device key alias)`.
    pub(crate) fn signed_headers(
        &self,
        signers: &[(AuthenticatorId, &str)],
        path: &str,
        body: &[u8],
    ) -> Result<Vec<(&'static str, String)>> {
        let timestamp_ms = self.request_timestamp()?;
        let nonce = Nonce16::random();
        let body_sha256 = eid_protocol::sha256(body);
        let mut pairs = Vec::with_capacity(signers.len());
        for (id, alias) in signers {
            let msg = DeviceRequestAuth {
                authenticator_id: *id,
                method: "POST",
                path,
                body_sha256,
                timestamp_ms,
                nonce,
            }
            .signing_bytes();
            let sig = Signature::from_der(&self.keystore.sign(alias, &msg)?)
                .map_err(|_| KeyStoreError::Failure("bad signature".into()))?;
            pairs.push((*id, sig));
        }
        Ok(vec![
            (wire::HEADER_TIMESTAMP, timestamp_ms.to_string()),
            (wire::HEADER_NONCE, nonce.to_string()),
            (
                wire::HEADER_SIGNATURE,
                wire::format_signature_header(&pairs),
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier_for(pin: &str) -> PinnedVerifier {
        let provider = rustls::crypto::ring::default_provider();
        PinnedVerifier::new(
            parse_spki_pin(pin).unwrap(),
            provider.signature_verification_algorithms,
        )
    }

    #[test]
    fn pinned_verifier_accepts_pin_and_refuses_other_keys() {
        let good = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let pin = spki_pin_of_certificate(good.cert.der()).unwrap();
        assert!(pin.starts_with("sha256/"));
        // The pin is SHA-256 of the SPKI, i.e. of the key: rcgen's own SPKI agrees.
        assert_eq!(
            pin,
            format!(
                "sha256/{}",
                STANDARD.encode(eid_protocol::sha256(
                    &rcgen::PublicKeyData::subject_public_key_info(&good.signing_key)
                ))
            )
        );
        let v = verifier_for(&pin);
        let name = ServerName::try_from("127.0.0.1").unwrap();
        assert!(
            v.verify_server_cert(good.cert.der(), &[], &name, &[], UnixTime::now())
                .is_ok()
        );
        assert!(matches!(
            v.verify_server_cert(other.cert.der(), &[], &name, &[], UnixTime::now()),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure
            ))
        ));
        assert!(
            v.verify_server_cert(
                &CertificateDer::from(vec![1, 2, 3]),
                &[],
                &name,
                &[],
                UnixTime::now()
            )
            .is_err()
        );
        assert!(
            v.supported_verify_schemes()
                .contains(&SignatureScheme::ECDSA_NISTP256_SHA256)
        );
    }

    #[test]
    fn config_is_checked() {
        assert!(matches!(parse_spki_pin("sha256/!!"), Err(Error::Config(_))));
        assert!(matches!(
            parse_spki_pin("sha256/AAAA"),
            Err(Error::Config(_))
        ));
        let pin = format!("sha256/{}", STANDARD.encode([7u8; 32]));
        assert_eq!(parse_spki_pin(&pin).unwrap(), [7u8; 32]);
        assert!(matches!(
            Client::new(&ServerConfig::new("http://127.0.0.1:1", pin.clone())),
            Err(Error::Config(_))
        ));
        assert!(Client::new(&ServerConfig::new("https://127.0.0.1:1/", pin)).is_ok());
    }

    /// A TLS 1.3 server on loopback that serves the `n`-th connection
    /// (from 1) with `configs[min(n - 1, last)]`, closes the connections
    /// numbered in `closed` right after their handshake, and answers every
    /// other one's request `200 {}` and closes. Returns the port and the
    /// numbers of the connections whose request it read.
    async fn serve_with(
        configs: Vec<Arc<rustls::ServerConfig>>,
        closed: &'static [usize],
    ) -> (u16, Arc<std::sync::Mutex<Vec<usize>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let read = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = read.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while let Ok((tcp, _)) = listener.accept().await {
                let cfg = configs[n.min(configs.len() - 1)].clone();
                n += 1;
                let seen = seen.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await else {
                        return;
                    };
                    if closed.contains(&n) {
                        let _ = tls.shutdown().await;
                        return;
                    }
                    let mut buf = vec![0u8; 16384];
                    let mut got = Vec::new();
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => got.extend_from_slice(&buf[..k]),
                        }
                    }
                    seen.lock().unwrap().push(n);
                    let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";
                    let _ = tls.write_all(head.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        (port, read)
    }

    /// A client pinned to the certificate of a server's first connection,
    /// which shows another certificate on every later one (with `sessions`
    /// shared between the two): a second full handshake fails the pin.
    async fn pinned_client_of_a_switching_server(
        sessions: Arc<dyn rustls::server::StoresServerSessions>,
    ) -> Client {
        let good = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let (port, _) = serve_with(
            vec![
                server_config(&good, sessions.clone()),
                server_config(&other, sessions),
            ],
            &[],
        )
        .await;
        let pin = spki_pin_of_certificate(good.cert.der()).unwrap();
        Client::new(&ServerConfig::new(format!("https://127.0.0.1:{port}"), pin)).unwrap()
    }

    fn server_config(
        ck: &rcgen::CertifiedKey<rcgen::KeyPair>,
        sessions: Arc<dyn rustls::server::StoresServerSessions>,
    ) -> Arc<rustls::ServerConfig> {
        let key = rustls_pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
        let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key)
        .unwrap();
        cfg.session_storage = sessions;
        Arc::new(cfg)
    }

    #[tokio::test]
    async fn every_new_connection_checks_the_pin_even_where_the_server_would_resume() {
        // The first connection meets the pinned key; the second meets
        // another key on a server holding the first one's TLS sessions (a
        // leaked session cache). Resuming would skip the certificate, and
        // with it the pin: the phone must not resume.
        let client =
            pinned_client_of_a_switching_server(rustls::server::ServerSessionMemoryCache::new(16))
                .await;
        let first: serde_json::Value = client.post("/v1/x", b"{}".to_vec(), &[]).await.unwrap();
        assert_eq!(first, serde_json::json!({}));
        let second: Result<serde_json::Value> = client.post("/v1/x", b"{}".to_vec(), &[]).await;
        assert_eq!(
            second,
            Err(Error::Network(
                "TLS: the server key does not match the pin".into()
            ))
        );
    }

    /// What the scripted server does with the n-th request it reads (over
    /// all connections; the last entry repeats).
    #[derive(Clone, Copy, Debug)]
    enum Reply {
        /// `200 {}`, connection kept alive.
        Ok,
        /// Reads it and never answers.
        Silent,
        /// Reads it and closes the connection without an answer.
        Drop,
        /// Announces and sends more than the client accepts.
        Huge,
        /// `200 {}`, then closes the connection (as at an idle timeout).
        OkThenClose,
    }

    /// A TLS server on `addr` following `replies`; returns the base URL, the
    /// pin, and the heads of the requests it read.
    async fn scripted(
        addr: &str,
        replies: Vec<Reply>,
    ) -> (String, String, Arc<std::sync::Mutex<Vec<String>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let pin = spki_pin_of_certificate(ck.cert.der()).unwrap();
        let cfg = server_config(&ck, Arc::new(rustls::server::NoServerSessionStorage {}));
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let local = listener.local_addr().unwrap();
        let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = heads.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (cfg, seen, replies) = (cfg.clone(), seen.clone(), replies.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await else {
                        return;
                    };
                    let mut got = Vec::new();
                    let mut buf = vec![0u8; 16384];
                    loop {
                        let end = loop {
                            if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                                break i + 4;
                            }
                            match tls.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(k) => got.extend_from_slice(&buf[..k]),
                            }
                        };
                        let head = String::from_utf8_lossy(&got[..end]).to_string();
                        let length: usize = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        while got.len() < end + length {
                            match tls.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(k) => got.extend_from_slice(&buf[..k]),
                            }
                        }
                        got.drain(..end + length);
                        let n = {
                            let mut seen = seen.lock().unwrap();
                            seen.push(head);
                            seen.len() - 1
                        };
                        match replies[n.min(replies.len() - 1)] {
                            Reply::Ok => {
                                let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                                if tls.write_all(answer.as_bytes()).await.is_err() {
                                    return;
                                }
                            }
                            Reply::Silent => {
                                tokio::time::sleep(Duration::from_secs(3600)).await;
                                return;
                            }
                            Reply::Drop => return,
                            Reply::OkThenClose => {
                                let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                                let _ = tls.write_all(answer.as_bytes()).await;
                                let _ = tls.shutdown().await;
                                return;
                            }
                            Reply::Huge => {
                                let size = MAX_RESPONSE_BYTES + 1024;
                                let answer = format!(
                                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {size}\r\n\r\n"
                                );
                                let _ = tls.write_all(answer.as_bytes()).await;
                                let _ = tls.write_all(&vec![b' '; size]).await;
                                return;
                            }
                        }
                    }
                });
            }
        });
        (format!("https://{local}"), pin, heads)
    }

    #[tokio::test]
    async fn a_request_the_server_read_and_dropped_is_not_sent_again() {
        // The second request goes out on the kept-alive connection; the
        // server reads it and closes. It may have acted on it: the client
        // reports a network error and never sends it a second time itself
        // (the core's resend of a stored decision is its own, idempotent,
        // choice).
        let (base, pin, heads) =
            scripted("127.0.0.1:0", vec![Reply::Ok, Reply::Drop, Reply::Ok]).await;
        let client = Client::new(&ServerConfig::new(base, pin)).unwrap();
        let first: Result<serde_json::Value> = client.post("/v1/x", b"{}".to_vec(), &[]).await;
        assert!(first.is_ok(), "{first:?}");
        // Let the connection report itself ready for the next request.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second: Result<serde_json::Value> = client.post("/v1/y", b"{}".to_vec(), &[]).await;
        assert!(matches!(second, Err(Error::Network(_))), "{second:?}");
        let heads = heads.lock().unwrap();
        assert_eq!(heads.len(), 2, "{heads:?}");
        assert!(heads[1].starts_with("POST /v1/y "));
    }

    #[tokio::test]
    async fn a_kept_alive_connection_the_server_closed_while_idle_is_not_used() {
        // The connection is driven only while a request uses it: the
        // server's close of the idle connection is seen when the next
        // request takes it, and that request goes on a new connection.
        let (base, pin, heads) = scripted("127.0.0.1:0", vec![Reply::OkThenClose, Reply::Ok]).await;
        let client = Client::new(&ServerConfig::new(base, pin)).unwrap();
        let first: Result<serde_json::Value> = client.post("/v1/x", b"{}".to_vec(), &[]).await;
        assert!(first.is_ok(), "{first:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second: Result<serde_json::Value> = client.post("/v1/y", b"{}".to_vec(), &[]).await;
        assert!(second.is_ok(), "{second:?}");
        let heads = heads.lock().unwrap();
        assert_eq!(heads.len(), 2, "{heads:?}");
        assert!(heads[1].starts_with("POST /v1/y "));
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out_and_a_huge_answer_is_refused() {
        let (base, pin, _) = scripted("127.0.0.1:0", vec![Reply::Silent]).await;
        let mut cfg = ServerConfig::new(base, pin);
        cfg.request_timeout = Duration::from_millis(300);
        let client = Client::new(&cfg).unwrap();
        let r: Result<serde_json::Value> = client.post("/v1/x", b"{}".to_vec(), &[]).await;
        assert_eq!(r, Err(Error::Network("timeout".into())));

        let (base, pin, _) = scripted("127.0.0.1:0", vec![Reply::Huge]).await;
        let client = Client::new(&ServerConfig::new(base, pin)).unwrap();
        let r: Result<serde_json::Value> = client.post("/v1/x", b"{}".to_vec(), &[]).await;
        assert_eq!(r, Err(Error::InvalidResponse("response too large".into())));
    }

    #[tokio::test]
    async fn the_host_header_names_an_ipv6_literal_bracketed_with_its_port() {
        let (base, pin, heads) = scripted("[::1]:0", vec![Reply::Ok]).await;
        assert!(base.starts_with("https://[::1]:"));
        let client = Client::new(&ServerConfig::new(base.clone(), pin)).unwrap();
        let r: Result<serde_json::Value> = client.post("/v1/x", b"{}".to_vec(), &[]).await;
        assert!(r.is_ok(), "{r:?}");
        let host = base.trim_start_matches("https://").to_ascii_lowercase();
        let heads = heads.lock().unwrap();
        assert!(
            heads[0]
                .to_ascii_lowercase()
                .contains(&format!("\r\nhost: {host}\r\n")),
            "{}",
            heads[0]
        );
    }

    #[tokio::test]
    async fn a_header_value_with_a_line_break_is_not_sent() {
        let (base, pin, heads) = scripted("127.0.0.1:0", vec![Reply::Ok]).await;
        let client = Client::new(&ServerConfig::new(base, pin)).unwrap();
        let injected = [("eid-nonce", "x\r\nx-injected: 1".to_owned())];
        let r: Result<serde_json::Value> = client.post("/v1/x", b"{}".to_vec(), &injected).await;
        assert_eq!(r, Err(Error::Network("request failed".into())));
        assert!(heads.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn two_clients_of_one_server_never_share_a_connection() {
        // A second client with another pin must meet the server itself
        // (and fail), not ride on the first client's verified connection.
        let (base, pin, heads) = scripted("127.0.0.1:0", vec![Reply::Ok]).await;
        let first = Client::new(&ServerConfig::new(base.clone(), pin)).unwrap();
        let r: Result<serde_json::Value> = first.post("/v1/x", b"{}".to_vec(), &[]).await;
        assert!(r.is_ok(), "{r:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let other_pin = format!("sha256/{}", STANDARD.encode([7u8; 32]));
        let second = Client::new(&ServerConfig::new(base, other_pin)).unwrap();
        let r: Result<serde_json::Value> = second.post("/v1/x", b"{}".to_vec(), &[]).await;
        assert_eq!(
            r,
            Err(Error::Network(
                "TLS: the server key does not match the pin".into()
            ))
        );
        // The first client still reuses its own.
        let r: Result<serde_json::Value> = first.post("/v1/x", b"{}".to_vec(), &[]).await;
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(heads.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_warmed_up_connection_is_the_one_the_next_request_uses_and_checks_the_pin() {
        // The server's first connection shows the pinned key, every later
        // one another key: a request that succeeds went on the warmed-up
        // connection, and a warm-up that meets the other key fails its
        // request as any connection would.
        let client = pinned_client_of_a_switching_server(Arc::new(
            rustls::server::NoServerSessionStorage {},
        ))
        .await;
        let warm = client.warm_up();
        assert!(warm.is_some());
        // Let the warm-up finish first, so the request cannot have made it.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let first: Result<serde_json::Value> =
            client.post_on(warm, "/v1/x", b"{}".to_vec(), &[]).await;
        assert_eq!(first, Ok(serde_json::json!({})));
        // The server closed that connection: the next warm-up makes a new one.
        let warm = client.warm_up();
        assert!(warm.is_some());
        let second: Result<serde_json::Value> =
            client.post_on(warm, "/v1/x", b"{}".to_vec(), &[]).await;
        assert_eq!(
            second,
            Err(Error::Network(
                "TLS: the server key does not match the pin".into()
            ))
        );
    }

    #[tokio::test]
    async fn no_connection_is_warmed_up_while_a_kept_alive_one_can_take_the_request() {
        let (base, pin, heads) = scripted("127.0.0.1:0", vec![Reply::Ok]).await;
        let client = Client::new(&ServerConfig::new(base, pin)).unwrap();
        let first: Result<serde_json::Value> = client.post("/v1/x", b"{}".to_vec(), &[]).await;
        assert!(first.is_ok(), "{first:?}");
        assert!(client.warm_up().is_none());
        let second: Result<serde_json::Value> = client
            .post_on(client.warm_up(), "/v1/y", b"{}".to_vec(), &[])
            .await;
        assert!(second.is_ok(), "{second:?}");
        assert_eq!(heads.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_network_error_with_or_without_a_warm_up() {
        let pin = format!("sha256/{}", STANDARD.encode([7u8; 32]));
        let mut cfg = ServerConfig::new("https://127.0.0.1:9", pin);
        cfg.connect_timeout = Duration::from_millis(500);
        let client = Client::new(&cfg).unwrap();
        let plain: Result<serde_json::Value> = client.post("/v1/x", b"{}".to_vec(), &[]).await;
        assert!(matches!(plain, Err(Error::Network(_))), "{plain:?}");
        let warm = client.warm_up();
        assert!(warm.is_some());
        let warmed: Result<serde_json::Value> =
            client.post_on(warm, "/v1/x", b"{}".to_vec(), &[]).await;
        assert_eq!(warmed, plain);
    }

    #[test]
    fn no_connection_is_warmed_up_outside_a_runtime() {
        let pin = format!("sha256/{}", STANDARD.encode([7u8; 32]));
        let client = Client::new(&ServerConfig::new("https://127.0.0.1:9", pin)).unwrap();
        assert!(client.warm_up().is_none());
    }

    #[tokio::test]
    async fn a_warm_up_dropped_unused_closes_its_connection() {
        use tokio::io::AsyncReadExt;
        // A server that accepts and then says nothing: the handshake stalls
        // until the phone gives up on it.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let pin = format!("sha256/{}", STANDARD.encode([7u8; 32]));
        let client =
            Client::new(&ServerConfig::new(format!("https://127.0.0.1:{port}"), pin)).unwrap();
        let warm = client.warm_up().unwrap();
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut hello = vec![0u8; 4096];
        assert!(tcp.read(&mut hello).await.unwrap() > 0, "a ClientHello");
        drop(warm);
        let closed = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut hello)).await;
        assert!(
            matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
            "the socket is closed: {closed:?}"
        );
    }

    #[tokio::test]
    async fn a_request_the_server_never_read_on_a_warmed_up_connection_goes_on_a_new_one() {
        // The server closes its first connection right after the handshake
        // (as a header timeout would while the phone still signs), and
        // answers on the next: the request is sent once more, on a new
        // connection, since none of it was written.
        let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let pin = spki_pin_of_certificate(ck.cert.der()).unwrap();
        let cfg = server_config(&ck, Arc::new(rustls::server::NoServerSessionStorage {}));
        let (port, read) = serve_with(vec![cfg], &[1]).await;
        let client =
            Client::new(&ServerConfig::new(format!("https://127.0.0.1:{port}"), pin)).unwrap();
        let warm = client.warm_up();
        assert!(warm.is_some());
        // The warm-up is done and the server's close has arrived.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r: Result<serde_json::Value> = client.post_on(warm, "/v1/x", b"{}".to_vec(), &[]).await;
        assert_eq!(r, Ok(serde_json::json!({})));
        assert_eq!(*read.lock().unwrap(), vec![2]);
    }
}
