//! The bare HTTP/2 transport (`Http2Connection`) against a small h2 server
//! over TLS 1.3 on loopback: the pin is checked, HTTP/2 is required, an
//! error answer is a typed error, and the requests carry the same headers
//! and bodies as the reqwest transport's.
#![allow(missing_docs)]

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use eid_api_client::{
    ApiFailure, Call, Endpoint, Http2Connection, ProviderClient, SoftPhone, Transport,
    TransportError, decode_answer,
};
use eid_core::client::spki_pin_of_certificate;
use eid_protocol::wire::{ErrorBody, ErrorCode, ErrorDetail};

/// What the server saw of one request.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    version: http::Version,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

struct Server {
    base_url: String,
    pin: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// A TLS 1.3 server with a fresh self-signed key offering `alpn`; over h2
/// it answers 404 with an error body on `/missing`, `{"ok":true}` otherwise.
async fn server(alpn: &[&[u8]]) -> Server {
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
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, log) = (acceptor.clone(), log.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut connection) = h2::server::handshake(tls).await else {
                    return;
                };
                while let Some(Ok((request, mut respond))) = connection.accept().await {
                    let log = log.clone();
                    tokio::spawn(async move {
                        let (parts, mut body) = request.into_parts();
                        let mut bytes = Vec::new();
                        while let Some(Ok(chunk)) = body.data().await {
                            let _ = body.flow_control().release_capacity(chunk.len());
                            bytes.extend_from_slice(&chunk);
                        }
                        let mut headers: Vec<(String, String)> = parts
                            .headers
                            .iter()
                            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
                            .collect();
                        headers.sort();
                        let path = parts.uri.path_and_query().unwrap().to_string();
                        log.lock().unwrap().push(Seen {
                            version: parts.version,
                            method: parts.method.to_string(),
                            path: path.clone(),
                            headers,
                            body: bytes,
                        });
                        let (status, answer) = if path == "/missing" {
                            let body = ErrorBody {
                                error: ErrorDetail {
                                    code: ErrorCode::ClockSkew,
                                    message: "no".into(),
                                },
                            };
                            (404, serde_json::to_vec(&body).unwrap())
                        } else {
                            (200, br#"{"ok":true}"#.to_vec())
                        };
                        let response = http::Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(())
                            .unwrap();
                        let mut send = respond.send_response(response, false).unwrap();
                        send.send_data(Bytes::from(answer), true).unwrap();
                    });
                }
            });
        }
    });
    Server {
        base_url: format!("https://127.0.0.1:{port}"),
        pin,
        seen,
    }
}

#[tokio::test]
async fn http2_is_negotiated_and_answers_are_read() {
    let server = server(&[b"h2"]).await;
    let connection = Http2Connection::connect(&server.base_url, &server.pin)
        .await
        .unwrap();
    let answer = connection
        .call(Call::post("/v1/anything", br#"{"a":1}"#.to_vec()))
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    let value: serde_json::Value = decode_answer(&answer).unwrap();
    assert_eq!(value["ok"], true);
    // Several calls share the one connection (streams), concurrently too.
    let (a, b) = tokio::join!(
        connection.call(Call::get("/a?x=1")),
        connection.call(Call::get("/b"))
    );
    assert_eq!((a.unwrap().status, b.unwrap().status), (200, 200));
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|s| s.version == http::Version::HTTP_2));
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].body, br#"{"a":1}"#);
}

#[tokio::test]
async fn a_key_that_does_not_match_the_pin_is_refused() {
    let server = server(&[b"h2"]).await;
    let other = rcgen::generate_simple_self_signed(vec!["x".into()]).unwrap();
    let wrong = spki_pin_of_certificate(other.cert.der()).unwrap();
    match Http2Connection::connect(&server.base_url, &wrong).await {
        Err(TransportError::Connect(e)) => {
            // The pinned verifier refused the certificate.
            let tls = e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>());
            assert!(
                matches!(tls, Some(rustls::Error::InvalidCertificate(_))),
                "{e}"
            );
        }
        other => panic!("expected a refused handshake, got {other:?}"),
    }
    assert!(server.seen.lock().unwrap().is_empty());
    // Not a pin at all.
    assert!(matches!(
        Http2Connection::connect(&server.base_url, "sha256/nope").await,
        Err(TransportError::Pin(_))
    ));
}

#[tokio::test]
async fn a_server_without_http2_is_refused() {
    let server = server(&[b"http/1.1"]).await;
    let refused = Http2Connection::connect(&server.base_url, &server.pin).await;
    assert!(
        matches!(
            refused,
            Err(TransportError::NotHttp2 | TransportError::Connect(_))
        ),
        "{refused:?}"
    );
    assert!(matches!(
        Http2Connection::connect("http://127.0.0.1:1", &server.pin).await,
        Err(TransportError::BaseUrl)
    ));
}

#[tokio::test]
async fn an_error_answer_is_a_typed_failure() {
    let server = server(&[b"h2"]).await;
    let connection = Arc::new(
        Http2Connection::connect(&server.base_url, &server.pin)
            .await
            .unwrap(),
    );
    let answer = connection.call(Call::get("/missing")).await.unwrap();
    assert_eq!(answer.status, 404);
    match decode_answer::<serde_json::Value>(&answer) {
        Err(ApiFailure::Server { status: 404, body }) => {
            assert_eq!(body.error.code, ErrorCode::ClockSkew)
        }
        other => panic!("expected a typed failure, got {other:?}"),
    }
    // A 200 that is not the expected JSON is `Unexpected`.
    let provider = ProviderClient::new(connection, "key");
    assert!(matches!(
        provider.server_key().await,
        Err(ApiFailure::Unexpected { status: 200, .. })
    ));
}

/// The bare transport sends what the reqwest one sends: method, path,
/// body and every application header (reqwest adds only `accept: */*`),
/// for the provider's and the phone's calls and for a form with cookies.
#[tokio::test]
async fn both_transports_send_the_same_requests() {
    let server = server(&[b"h2"]).await;
    let lean = Arc::new(
        Http2Connection::connect(&server.base_url, &server.pin)
            .await
            .unwrap(),
    );
    let endpoint = Endpoint::new_http2(&server.base_url, &server.pin).unwrap();
    let mut phone = SoftPhone::new();
    phone.authenticator_id = Some(eid_protocol::AuthenticatorId([7; 16]));
    for round in 0..2 {
        let provider_lean = ProviderClient::new(lean.clone(), "sp-key");
        let provider_reqwest = ProviderClient::new(endpoint.clone(), "sp-key");
        let request = eid_protocol::RequestId([round; 16]);
        let _ = provider_lean.status(request, 0).await;
        let _ = provider_reqwest.status(request, 0).await;
        let _ = provider_lean
            .create_request("anna", eid_protocol::RequestKind::Login, "Log in", None)
            .await;
        let _ = provider_reqwest
            .create_request("anna", eid_protocol::RequestKind::Login, "Log in", None)
            .await;
        let _ = provider_lean.cancel(request).await;
        let _ = provider_reqwest.cancel(request).await;
    }
    let basic = eid_api_client::bearer("x").unwrap();
    let extra = [("cookie", "login=abc"), ("origin", "https://127.0.0.1")];
    let form = || Call::form("/oidc/par", "a=1&b=%2B".into()).with_headers(&extra);
    let answer = lean.call(form().authorized(&basic)).await.unwrap();
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let answer = endpoint.call(form().authorized(&basic)).await.unwrap();
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let _ = SoftPhone::pull(&lean, &[&phone], 1_000).await;
    let _ = SoftPhone::pull(&endpoint, &[&phone], 1_000).await;
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 16);
    for pair in seen.chunks(2) {
        let (lean, reqwest) = (&pair[0], &pair[1]);
        assert_eq!(lean.method, reqwest.method);
        assert_eq!(lean.path, reqwest.path);
        let without_accept: Vec<_> = reqwest
            .headers
            .iter()
            .filter(|(n, _)| n != "accept")
            .cloned()
            .collect();
        if lean.path == "/v1/device/pull" {
            // The pull's nonce and signature differ between the two calls.
            let names =
                |h: &[(String, String)]| h.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
            assert_eq!(names(&lean.headers), names(&without_accept));
        } else {
            assert_eq!(lean.headers, without_accept, "{}", lean.path);
            assert_eq!(lean.body, reqwest.body);
        }
    }
    assert!(seen[12].headers.contains(&(
        "content-type".into(),
        "application/x-www-form-urlencoded".into()
    )));
    let pull = &seen[14];
    for header in [
        "eid-timestamp",
        "eid-nonce",
        "eid-signature",
        "content-type",
    ] {
        assert!(pull.headers.iter().any(|(n, _)| n == header), "{header}");
    }
    let status = &seen[0];
    assert!(
        status
            .headers
            .contains(&("authorization".into(), "Bearer sp-key".into()))
    );
}
