//! Certificate pinning (docs/threat-model.md): the core trusts only the server's pinned
//! key (SPKI), whatever CA vouches for another one, and speaks TLS 1.3 only.
//! Both attacks run against a TLS front end on loopback that forwards to the
//! real server, so each refusal is the pin's (or the version's) doing: the
//! same front end works for a phone that pins what it presents.

use std::sync::Arc;

use eid_core::Error;
use eid_e2e_tests::{Mitm, PIN, Tamper, World};
use eid_protocol::wire::RequestStatus;
use tokio_rustls::rustls::{self, pki_types};

const USER: &str = "grete#1950x";
const TEXT: &str = "Log på Netbank";

/// A second CA ("CA-2", which the OS might trust) and a server certificate
/// for 127.0.0.1 chained to it.
struct RogueCa {
    ca_der: pki_types::CertificateDer<'static>,
    chain: Vec<pki_types::CertificateDer<'static>>,
    key: pki_types::PrivateKeyDer<'static>,
}

fn rogue_ca() -> RogueCa {
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "CA-2 Trusted Root");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let leaf_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut leaf_params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    // The same name as the real server's development certificate.
    leaf_params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "eID reference server (development)",
    );
    leaf_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    RogueCa {
        ca_der: ca.der().clone(),
        chain: vec![leaf.der().clone(), ca.der().clone()],
        key: pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS server configuration limited to `versions`.
fn server_config(
    versions: &[&'static rustls::SupportedProtocolVersion],
    chain: Vec<pki_types::CertificateDer<'static>>,
    key: pki_types::PrivateKeyDer<'static>,
) -> Arc<rustls::ServerConfig> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A WebPKI client that trusts `root` handshakes with `base_url`: the chain
/// is valid for that CA (what a phone trusting the OS store would accept).
async fn webpki_handshake(base_url: &str, root: pki_types::CertificateDer<'static>) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let addr = base_url.strip_prefix("https://").unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = pki_types::ServerName::try_from("127.0.0.1").unwrap();
    connector
        .connect(name, tcp)
        .await
        .expect("the rogue chain is valid for CA-2");
}

#[tokio::test]
async fn rogue_ca_certificate_is_refused_by_the_pin() {
    let w = World::start().await.unwrap();
    let person = w.person(USER).await.unwrap();
    let phone = w.phone("grete").unwrap();
    phone.app.activate(USER, &person.code, PIN).await.unwrap();
    let request = w.login(USER, TEXT).await.unwrap();

    let rogue = rogue_ca();
    let rogue_pin = eid_core::spki_pin_of_certificate(&rogue.chain[0]).unwrap();
    assert_ne!(rogue_pin, w.spki_pin);
    let config = server_config(
        &[&rustls::version::TLS13],
        rogue.chain.clone(),
        rogue.key.clone_key(),
    );
    let mitm = Mitm::start_with_tls(
        &w,
        Tamper::Nothing,
        config,
        rogue_pin.clone(),
        tempfile::tempdir().unwrap(),
    )
    .await
    .unwrap();
    // The chain is valid: a client trusting CA-2 (as an OS store might)
    // accepts it for 127.0.0.1.
    webpki_handshake(&mitm.base_url, rogue.ca_der.clone()).await;

    // The victim's phone, routed to the rogue front end (DNS spoofing, a
    // hostile Wi-Fi), pins the real server's key and refuses it.
    drop(phone);
    let phone = w.phone_via("grete", &mitm.base_url, &w.spki_pin).unwrap();
    assert_eq!(
        phone.app.refresh().await.unwrap_err(),
        Error::Network("TLS: the server key does not match the pin".into())
    );
    // Nothing was learned or decided through it.
    assert!(
        phone
            .app
            .requests(eid_core::Language::English)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        w.rp_status(request, TEXT).await.unwrap().status,
        RequestStatus::Pending
    );

    // Control: the same front end works for a phone that pins the rogue key
    // (so the refusal above is the pin's, not a broken proxy's).
    let other = w.person("anna#2024x").await.unwrap();
    let unpinned = w.phone_via("anna", &mitm.base_url, &rogue_pin).unwrap();
    unpinned
        .app
        .activate("anna#2024x", &other.code, PIN)
        .await
        .unwrap();
    w.login("anna#2024x", TEXT).await.unwrap();
    assert_eq!(unpinned.app.refresh().await.unwrap().len(), 1);

    // The real server, pinned, still works for the victim.
    drop(phone);
    let phone = w.phone("grete").unwrap();
    assert_eq!(phone.app.refresh().await.unwrap().len(), 1);
}

#[tokio::test]
async fn tls12_server_is_refused() {
    let w = World::start().await.unwrap();
    let person = w.person(USER).await.unwrap();
    let phone = w.phone("grete").unwrap();
    phone.app.activate(USER, &person.code, PIN).await.unwrap();
    w.login(USER, TEXT).await.unwrap();

    // A front end with the server's own (pinned) certificate and key that
    // speaks only TLS 1.2: a downgrade, not a wrong key.
    let server_dir = w.dir.path().join("server");
    use pki_types::pem::PemObject as _;
    let chain: Vec<pki_types::CertificateDer<'static>> =
        pki_types::CertificateDer::pem_file_iter(server_dir.join("dev-tls-cert.pem"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    let key = pki_types::PrivateKeyDer::from_pem_file(server_dir.join("dev-tls-key.pem")).unwrap();
    assert_eq!(
        eid_core::spki_pin_of_certificate(&chain[0]).unwrap(),
        w.spki_pin
    );
    let tls12 = Mitm::start_with_tls(
        &w,
        Tamper::Nothing,
        server_config(&[&rustls::version::TLS12], chain.clone(), key.clone_key()),
        w.spki_pin.clone(),
        tempfile::tempdir().unwrap(),
    )
    .await
    .unwrap();
    drop(phone);
    let phone = w.phone_via("grete", &tls12.base_url, &w.spki_pin).unwrap();
    assert_eq!(
        phone.app.refresh().await.unwrap_err(),
        Error::Network("TLS handshake failed".into())
    );

    // A front end offering both versions negotiates TLS 1.3 and works: the
    // refusal above is the version's.
    let both = Mitm::start_with_tls(
        &w,
        Tamper::Nothing,
        server_config(
            &[&rustls::version::TLS13, &rustls::version::TLS12],
            chain,
            key,
        ),
        w.spki_pin.clone(),
        tempfile::tempdir().unwrap(),
    )
    .await
    .unwrap();
    drop(phone);
    let phone = w.phone_via("grete", &both.base_url, &w.spki_pin).unwrap();
    assert_eq!(phone.app.refresh().await.unwrap().len(), 1);
}
