//! TLS with the server's public key pinned (SPKI SHA-256), on rustls + ring,
//! TLS 1.3 only. No certificate authority is trusted: only the pinned key.

use std::sync::Arc;

use base64::Engine;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// A pin that can't be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PinError {
    /// Not `sha256/<base64 of 32 bytes>`.
    #[error("a pin is 'sha256/' followed by the base64 of 32 bytes")]
    Malformed,
    /// The TLS stack could not be set up.
    #[error("TLS setup failed: {0}")]
    Tls(String),
}

/// Parses `sha256/<base64>` into the 32-byte digest.
pub fn parse_pin(pin: &str) -> Result<[u8; 32], PinError> {
    let b64 = pin.strip_prefix("sha256/").ok_or(PinError::Malformed)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| PinError::Malformed)?;
    bytes.try_into().map_err(|_| PinError::Malformed)
}

/// Accepts exactly the certificates whose SPKI hashes to the pin.
#[derive(Debug)]
pub struct SpkiPinVerifier {
    pin: [u8; 32],
    algorithms: WebPkiSupportedAlgorithms,
}

impl SpkiPinVerifier {
    /// A verifier for a parsed pin, checking handshake signatures with `provider`.
    pub fn new(pin: [u8; 32], provider: &CryptoProvider) -> Self {
        Self {
            pin,
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for SpkiPinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let (_, cert) = x509_parser::parse_x509_certificate(end_entity).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        let digest = eid_protocol::sha256(cert.tbs_certificate.subject_pki.raw);
        if eid_protocol::crypto::constant_time_eq(&digest, &self.pin) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls13RequiredForQuic,
        ))
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

/// A rustls client configuration (ring, TLS 1.3 only) pinned to `spki_pin`.
pub fn pinned_tls_config(spki_pin: &str) -> Result<rustls::ClientConfig, PinError> {
    let pin = parse_pin(spki_pin)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(SpkiPinVerifier::new(pin, &provider));
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| PinError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// A reqwest client over [`pinned_tls_config`].
pub fn pinned_client(spki_pin: &str) -> Result<reqwest::Client, PinError> {
    reqwest::Client::builder()
        .use_preconfigured_tls(pinned_tls_config(spki_pin)?)
        .timeout(std::time::Duration::from_secs(90))
        .connect_timeout(std::time::Duration::from_secs(10))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| PinError::Tls(e.to_string()))
}
