//! TLS with the server's public key pinned (SPKI SHA-256), TLS 1.3 only. The
//! verifier is the core's own (`eid_core::client::pinned_tls_config`), so QA
//! tools trust the server exactly as the phone does.

/// A pin that can't be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PinError {
    /// Not a `sha256/<base64 of 32 bytes>` pin, or the TLS stack refused it.
    #[error("unusable pin or TLS setup: {0}")]
    Tls(String),
}

/// A reqwest client that trusts only the server key with this pin. With
/// `http2`, it offers HTTP/2 (ALPN h2) so many requests share a connection.
/// It never follows a redirect: the API answers and never redirects, and the
/// login page's redirects are what a test or load generator looks at.
pub fn pinned_client(spki_pin: &str, http2: bool) -> Result<reqwest::Client, PinError> {
    let mut tls =
        eid_core::client::pinned_tls_config(spki_pin).map_err(|e| PinError::Tls(e.to_string()))?;
    if http2 {
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    }
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(std::time::Duration::from_secs(90))
        .connect_timeout(std::time::Duration::from_secs(10))
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| PinError::Tls(e.to_string()))
}
