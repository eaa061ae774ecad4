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

/// A reqwest client that trusts only the server key with this pin.
pub fn pinned_client(spki_pin: &str) -> Result<reqwest::Client, PinError> {
    let tls =
        eid_core::client::pinned_tls_config(spki_pin).map_err(|e| PinError::Tls(e.to_string()))?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(std::time::Duration::from_secs(90))
        .connect_timeout(std::time::Duration::from_secs(10))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| PinError::Tls(e.to_string()))
}
