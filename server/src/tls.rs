//! TLS on rustls with the ring provider, TLS 1.3 only, and the accept loop.
//!
//! Development mode creates a self-signed P-256 certificate for `localhost` and
//! `127.0.0.1` in the data folder (kept, so the pin is stable across restarts)
//! and reports its SPKI pin: `sha256/` + base64 of SHA-256 over the
//! certificate's SubjectPublicKeyInfo DER. The core pins exactly this.

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

/// A loaded certificate chain, key and the leaf's SPKI pin.
#[derive(Debug)]
pub struct TlsMaterial {
    /// The rustls configuration.
    pub config: Arc<ServerConfig>,
    /// `sha256/<base64>` of the leaf certificate's SPKI.
    pub spki_pin: String,
}

/// The SPKI pin of a DER certificate.
pub fn spki_pin_of_certificate(der: &[u8]) -> anyhow::Result<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)?;
    Ok(spki_pin_of_spki(cert.tbs_certificate.subject_pki.raw))
}

/// The pin string for SPKI DER bytes.
pub fn spki_pin_of_spki(spki_der: &[u8]) -> String {
    format!(
        "sha256/{}",
        base64::engine::general_purpose::STANDARD.encode(eid_protocol::sha256(spki_der))
    )
}

/// Loads the configured certificate, or creates/loads the development one.
pub fn load_or_create(
    cert_path: Option<&Path>,
    key_path: Option<&Path>,
    data_dir: &Path,
) -> anyhow::Result<TlsMaterial> {
    let (cert_pem_path, key_pem_path) = match (cert_path, key_path) {
        (Some(c), Some(k)) => (c.to_owned(), k.to_owned()),
        (None, None) => {
            let c = data_dir.join("dev-tls-cert.pem");
            let k = data_dir.join("dev-tls-key.pem");
            if !c.exists() || !k.exists() {
                create_dev_certificate(&c, &k)?;
            }
            (c, k)
        }
        _ => anyhow::bail!("tls.cert_path and tls.key_path must be given together"),
    };
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(&cert_pem_path)?.collect::<Result<_, _>>()?;
    let leaf = chain
        .first()
        .ok_or_else(|| anyhow::anyhow!("no certificate in {}", cert_pem_path.display()))?;
    let spki_pin = spki_pin_of_certificate(leaf)?;
    let key = PrivateKeyDer::from_pem_file(&key_pem_path)?;
    let config = server_config(chain, key)?;
    Ok(TlsMaterial { config, spki_pin })
}

/// A TLS 1.3-only server configuration on the ring provider, ALPN h2 and http/1.1.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> anyhow::Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn create_dev_certificate(cert_path: &Path, key_path: &Path) -> anyhow::Result<()> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "eID reference server (development)",
    );
    let cert = params.self_signed(&key)?;
    crate::write_private_file(key_path, key.serialize_pem().as_bytes())?;
    std::fs::write(cert_path, cert.pem())?;
    Ok(())
}
