//! A bare HTTP/2 client: one TLS 1.3 connection (tokio-rustls, the core's
//! pinned verifier, ALPN `h2` only) and h2's client, with the authority
//! parsed once. For the load generator, whose CPU shares the cores with the
//! server it measures: no URL parsing, pool, redirect policy, per-request
//! client clone or body channel per call. Each request still goes through
//! HPACK, HTTP/2 framing, flow control and TLS like any other.
//!
//! The connection is not re-opened: when it fails, every later call fails
//! (the load generator counts errors). A response body is read in full, up
//! to 4 MiB, within the request timeout.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use rustls_pki_types::ServerName;

use crate::transport::{Answer, Call, Transport};
use crate::{ApiFailure, pinning};

/// Most bytes read from one response body (as the phone library's client).
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// Why the HTTP/2 transport failed below HTTP.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The base URL is not `https://host[:port]`.
    #[error("the base URL must be https://host[:port]")]
    BaseUrl,
    /// The pin or the TLS set-up was refused.
    #[error(transparent)]
    Pin(#[from] pinning::PinError),
    /// TCP connect, or the TLS handshake (a key that does not match the pin
    /// ends here).
    #[error("connect: {0}")]
    Connect(#[source] std::io::Error),
    /// The server did not agree to HTTP/2 (ALPN `h2`).
    #[error("the server did not negotiate HTTP/2")]
    NotHttp2,
    /// The HTTP/2 connection or stream failed.
    #[error("HTTP/2: {0}")]
    Http2(#[from] h2::Error),
    /// A path or header that HTTP cannot carry.
    #[error("a request that HTTP cannot carry: {0}")]
    Unsendable(String),
    /// The answer did not come within the request timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The answer's body was larger than 4 MiB.
    #[error("response body too large")]
    TooLarge,
}

/// One HTTP/2 connection to the server, shared by every call made through
/// it (streams are multiplexed; the server's stream limit applies).
#[derive(Debug)]
pub struct Http2Connection {
    send: h2::client::SendRequest<Bytes>,
    authority: Authority,
    timeout: Duration,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for Http2Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl Http2Connection {
    /// Connects to `base_url` (`https://host:port`) and trusts only the
    /// server key with `spki_pin`; refuses a server that does not speak
    /// HTTP/2. Requests time out after 90 s (as the reqwest client's do).
    /// Must run inside a tokio runtime: a task drives the connection.
    pub async fn connect(base_url: &str, spki_pin: &str) -> Result<Self, TransportError> {
        Self::connect_with(base_url, spki_pin, Duration::from_secs(90)).await
    }

    /// [`Http2Connection::connect`] with another request timeout.
    pub async fn connect_with(
        base_url: &str,
        spki_pin: &str,
        timeout: Duration,
    ) -> Result<Self, TransportError> {
        let rest = base_url
            .trim_end_matches('/')
            .strip_prefix("https://")
            .ok_or(TransportError::BaseUrl)?;
        if rest.contains(['/', '@', '?', '#']) {
            return Err(TransportError::BaseUrl);
        }
        let authority: Authority = rest.parse().map_err(|_| TransportError::BaseUrl)?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = authority.port_u16().unwrap_or(443);
        let server_name =
            ServerName::try_from(host.clone()).map_err(|_| TransportError::BaseUrl)?;
        let mut tls = eid_core::client::pinned_tls_config(spki_pin)
            .map_err(|e| pinning::PinError::Tls(e.to_string()))?;
        tls.alpn_protocols = vec![b"h2".to_vec()];
        let connect = async {
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            tokio_rustls::TlsConnector::from(Arc::new(tls))
                .connect(server_name, tcp)
                .await
        };
        let stream = tokio::time::timeout(Duration::from_secs(10), connect)
            .await
            .map_err(|_| TransportError::Timeout(Duration::from_secs(10)))?
            .map_err(TransportError::Connect)?;
        if stream.get_ref().1.alpn_protocol() != Some(b"h2".as_slice()) {
            return Err(TransportError::NotHttp2);
        }
        // Windows as hyper's client sets them (2 MiB a stream, 5 MiB the
        // connection), so small answers seldom cost a WINDOW_UPDATE.
        let (send, connection) = h2::client::Builder::new()
            .initial_window_size(2 * 1024 * 1024)
            .initial_connection_window_size(5 * 1024 * 1024)
            .enable_push(false)
            .handshake::<_, Bytes>(stream)
            .await?;
        let driver = tokio::spawn(async move {
            // Ends when the connection closes or fails; the calls see why.
            let _ = connection.await;
        });
        Ok(Self {
            send,
            authority,
            timeout,
            driver,
        })
    }

    fn request(&self, call: &Call<'_>) -> Result<http::Request<()>, TransportError> {
        let path = PathAndQuery::try_from(call.path)
            .map_err(|_| TransportError::Unsendable(call.path.to_owned()))?;
        let uri = http::Uri::builder()
            .scheme(Scheme::HTTPS)
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|e| TransportError::Unsendable(e.to_string()))?;
        let mut request = http::Request::new(());
        *request.method_mut() = call.method.clone();
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        if let Some(value) = call.authorization {
            headers.insert(AUTHORIZATION, value.clone());
        }
        match &call.body {
            Some(body) => {
                let content_type = HeaderValue::from_str(call.content_type)
                    .map_err(|_| TransportError::Unsendable("content-type header".into()))?;
                headers.insert(CONTENT_TYPE, content_type);
                headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
            }
            // As hyper does: an empty POST says it is empty.
            None if call.method == http::Method::POST => {
                headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
            }
            None => {}
        }
        for (name, value) in call.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| TransportError::Unsendable(format!("{name} header")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| TransportError::Unsendable(format!("{name} header")))?;
            headers.insert(name, value);
        }
        Ok(request)
    }

    async fn exchange(&self, call: Call<'_>) -> Result<Answer, TransportError> {
        let request = self.request(&call)?;
        let mut send = self.send.clone().ready().await?;
        let (response, mut stream) = send.send_request(request, call.body.is_none())?;
        if let Some(body) = call.body {
            stream.send_data(Bytes::from(body), true)?;
        }
        let response = response.await?;
        let (parts, mut body) = response.into_parts();
        let status = parts.status.as_u16();
        let mut first: Option<Bytes> = None;
        let mut more: Option<BytesMut> = None;
        while let Some(chunk) = body.data().await {
            let chunk = chunk?;
            let _ = body.flow_control().release_capacity(chunk.len());
            match (&mut first, &mut more) {
                (None, _) => first = Some(chunk),
                (Some(f), None) => {
                    let mut joined = BytesMut::with_capacity(f.len() + chunk.len());
                    joined.extend_from_slice(f);
                    joined.extend_from_slice(&chunk);
                    more = Some(joined);
                }
                (Some(_), Some(m)) => m.extend_from_slice(&chunk),
            }
            let len = more
                .as_ref()
                .map_or_else(|| first.as_ref().map_or(0, Bytes::len), BytesMut::len);
            if len > MAX_RESPONSE_BYTES {
                return Err(TransportError::TooLarge);
            }
        }
        let body = match more {
            Some(m) => m.freeze(),
            None => first.unwrap_or_default(),
        };
        Ok(Answer {
            status,
            headers: parts.headers,
            body,
        })
    }
}

impl Transport for Http2Connection {
    async fn call(&self, call: Call<'_>) -> Result<Answer, ApiFailure> {
        match tokio::time::timeout(self.timeout, self.exchange(call)).await {
            Ok(answer) => Ok(answer?),
            Err(_) => Err(TransportError::Timeout(self.timeout).into()),
        }
    }
}
