//! The pinned TLS client against a real TLS 1.3 listener on loopback.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use eid_core::{
    App, Config, Error, KdfCost, ServerConfig, SoftwareKeyStore, spki_pin_of_certificate,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves one fixed JSON error response per connection over TLS 1.3.
async fn serve() -> (u16, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let pin = spki_pin_of_certificate(ck.cert.der()).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key)
        .unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 16384];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let body = br#"{"error":{"code":"identity_blocked","message":"blocked"}}"#;
                let head = format!(
                    "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(head.as_bytes()).await;
                let _ = tls.write_all(body).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, pin)
}

fn authenticator(port: u16, pin: &str, dir: &std::path::Path) -> App {
    let mut config = Config::new(
        dir.join("core.db"),
        ServerConfig::new(format!("https://127.0.0.1:{port}"), pin),
    );
    config.kdf = KdfCost::Fixed(1);
    App::open(config, Arc::new(SoftwareKeyStore::in_memory())).unwrap()
}

#[tokio::test]
async fn pinned_server_is_reached_and_other_keys_are_refused() {
    let (port, pin) = serve().await;
    let dir = tempfile::tempdir().unwrap();

    // Right pin: the TLS 1.3 handshake succeeds and the server's typed error comes through.
    let a = authenticator(port, &pin, dir.path());
    let r = a.activate("Anna#2024", "ABCD", "483951").await;
    assert_eq!(
        r.err().and_then(|e| e.server_code()),
        Some(eid_protocol::wire::ErrorCode::IdentityBlocked)
    );
    // A refused activation leaves nothing behind.
    assert_eq!(a.pending_activation().unwrap(), None);

    // Wrong pin: refused during the handshake, reported as a network error.
    let other = rcgen::generate_simple_self_signed(vec!["x".into()]).unwrap();
    let wrong = spki_pin_of_certificate(other.cert.der()).unwrap();
    let dir2 = tempfile::tempdir().unwrap();
    let b = authenticator(port, &wrong, dir2.path());
    match b.activate("Anna#2024", "ABCD", "483951").await {
        Err(Error::Network(msg)) => assert!(msg.contains("pin"), "{msg}"),
        other => panic!("expected a pin failure, got {other:?}"),
    }
    // The activation is kept for a later resume (it never reached a server).
    assert!(b.pending_activation().unwrap().is_some());
}
