//! The OpenID Connect provider over real TLS with a real SQLite file (see
//! docs/oidc.md): the registration of OIDC clients by an administrator, the
//! discovery document and the JWKS here; client authentication and PAR in
//! `oidc/par.rs`, the token and userinfo endpoints in `oidc/token.rs`, the
//! whole login through the hosted pages in `oidc/flow.rs`; attacks on the
//! pages and the endpoints in `oidc/attacks.rs`.

#[path = "oidc/attacks.rs"]
mod attacks;
#[path = "oidc/code_device.rs"]
mod code_device;
mod common;
#[path = "oidc/flow.rs"]
mod flow;
#[path = "oidc/par.rs"]
mod par;
#[path = "oidc/support.rs"]
mod support;
#[path = "oidc/token.rs"]
mod token;

use common::{Harness, assert_code};
use eid_api_client::{AdminClient, ApiFailure};
use eid_protocol::ServiceProviderId;
use eid_protocol::wire::{
    AgentRole, ClientJwk, ErrorCode, OidcClientAuthMethod, RegisterOidcClientRequest,
};

/// A P-256 public key whose point is on the curve.
fn on_curve_jwk() -> ClientJwk {
    ClientJwk {
        kty: "EC".into(),
        crv: Some("P-256".into()),
        x: Some("f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU".into()),
        y: Some("x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0".into()),
        n: None,
        e: None,
    }
}

async fn provider(h: &Harness, name: &str) -> ServiceProviderId {
    h.admin
        .register_service_provider(name)
        .await
        .unwrap()
        .service_provider_id
}

fn request(sp: ServiceProviderId) -> RegisterOidcClientRequest {
    RegisterOidcClientRequest {
        service_provider_id: sp,
        redirect_uris: vec![
            "https://bank.example/oidc/cb".into(),
            "https://bank.example/oidc/cb2".into(),
        ],
        client_secret_basic: true,
        jwk: Some(on_curve_jwk()),
        scopes: vec!["openid".into()],
    }
}

/// The message of a typed server error with this code.
#[track_caller]
fn message<T: std::fmt::Debug>(result: Result<T, ApiFailure>, code: ErrorCode) -> String {
    match result {
        Err(ApiFailure::Server { body, .. }) => {
            assert_eq!(body.error.code, code, "{}", body.error.message);
            body.error.message
        }
        other => panic!("expected {code:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn an_administrator_registers_a_client_whose_secret_is_shown_once_and_stored_hashed() {
    let h = Harness::start().await;
    let sp = provider(&h, "Sparekassen Vest").await;

    let client = h.admin.register_oidc_client(&request(sp)).await.unwrap();
    assert!(client.client_id.starts_with("eidoc_"));
    assert_eq!(client.client_id.len(), 28);
    assert_eq!(client.service_provider_id, sp);
    assert_eq!(client.redirect_uris, request(sp).redirect_uris);
    assert_eq!(client.scopes, ["openid"]);
    assert_eq!(client.sector, "bank.example");
    assert_eq!(
        client.token_endpoint_auth_methods,
        [
            OidcClientAuthMethod::ClientSecretBasic,
            OidcClientAuthMethod::PrivateKeyJwt
        ]
    );
    let secret = client
        .client_secret
        .clone()
        .expect("a secret was asked for");
    assert!(secret.starts_with("eidcs_"));
    assert_eq!(secret.len(), 49);
    // Its Debug (what a log line would show) leaves the secret out.
    assert!(!format!("{client:?}").contains(&secret[6..]));

    // Stored: the secret's SHA-256 and the key in its RFC 7638 form, never
    // the secret itself.
    let (hash, jwk, sector): (Vec<u8>, String, String) = h
        .database()
        .query_row(
            "SELECT secret_sha256, jwk, sector FROM oidc_clients WHERE client_id = ?1",
            [&client.client_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(hash, eid_protocol::sha256(secret.as_bytes()));
    assert_eq!(
        jwk,
        r#"{"crv":"P-256","kty":"EC","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#
    );
    assert_eq!(sector, "bank.example");
    let secret_stored: bool = h
        .database()
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM oidc_clients WHERE redirect_uris LIKE ?1 \
             OR scopes LIKE ?1 OR jwk LIKE ?1)",
            [format!("%{}%", &secret[6..])],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!secret_stored);

    // The audit names the bootstrap administrator and the provider.
    let audit = h.admin.audit(None, Some(1), None).await.unwrap().entries;
    assert_eq!(audit[0].action, "register_oidc_client");
    assert_eq!(audit[0].outcome, "done");
    assert_eq!(audit[0].agent_id, None);
    assert_eq!(audit[0].service_provider_id, Some(sp));
}

#[tokio::test]
async fn an_rsa_key_of_2048_bits_is_registered_in_its_thumbprint_form() {
    let h = Harness::start().await;
    let sp = provider(&h, "Sparekassen Vest").await;
    let mut req = request(sp);
    req.client_secret_basic = false;
    req.jwk = Some(support::rsa_jwk());
    let client = h.admin.register_oidc_client(&req).await.unwrap();
    assert_eq!(
        client.token_endpoint_auth_methods,
        [OidcClientAuthMethod::PrivateKeyJwt]
    );
    let jwk: String = h
        .database()
        .query_row(
            "SELECT jwk FROM oidc_clients WHERE client_id = ?1",
            [&client.client_id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        jwk,
        format!(
            r#"{{"e":"AQAB","kty":"RSA","n":"{}"}}"#,
            support::rsa_jwk().n.unwrap()
        )
    );
}

#[tokio::test]
async fn a_client_with_only_a_key_gets_no_secret_and_a_loopback_uri_is_its_own_sector() {
    let h = Harness::start().await;
    let sp = provider(&h, "Sparekassen Vest").await;
    let mut req = request(sp);
    req.client_secret_basic = false;
    req.redirect_uris = vec!["http://127.0.0.1:8443/cb".into()];
    req.scopes = vec!["openid".into(), "profile".into()];

    // Raw, to see that the answer has no client_secret member at all.
    let resp = h
        .endpoint
        .client
        .post(format!("{}/v1/admin/oidc-clients", h.endpoint.base_url))
        .bearer_auth(h.server().admin_token.as_str())
        .json(&req)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body.get("client_secret"), None);
    assert_eq!(
        body["token_endpoint_auth_methods"],
        serde_json::json!(["private_key_jwt"])
    );
    assert_eq!(body["sector"], "127.0.0.1");
    assert_eq!(body["scopes"], serde_json::json!(["openid", "profile"]));
}

#[tokio::test]
async fn a_support_agent_may_not_register_a_client_and_the_refusal_is_audited() {
    let h = Harness::start().await;
    let sp = provider(&h, "Sparekassen Vest").await;
    let created = h
        .admin
        .create_agent("Bo Support", AgentRole::Support)
        .await
        .unwrap();
    let support = AdminClient::new(h.endpoint.clone(), &created.token);

    assert_code(
        support.register_oidc_client(&request(sp)).await,
        ErrorCode::ForbiddenRole,
    );
    let audit = h.admin.audit(None, Some(1), None).await.unwrap().entries;
    assert_eq!(audit[0].action, "register_oidc_client");
    assert_eq!(audit[0].outcome, "refused_role");
    assert_eq!(audit[0].agent_id, Some(created.agent.agent_id));
    let clients: u32 = h
        .database()
        .query_row("SELECT COUNT(*) FROM oidc_clients", [], |r| r.get(0))
        .unwrap();
    assert_eq!(clients, 0);
}

#[tokio::test]
async fn registrations_that_break_the_rules_are_refused_with_the_field_named() {
    let h = Harness::start().await;
    let sp = provider(&h, "Sparekassen Vest").await;
    let refused = |tweak: fn(&mut RegisterOidcClientRequest)| {
        let mut req = request(sp);
        tweak(&mut req);
        let admin = h.admin.clone();
        async move { admin.register_oidc_client(&req).await }
    };

    assert_eq!(
        message(
            refused(|r| r.redirect_uris = vec!["http://bank.example/cb".into()]).await,
            ErrorCode::InvalidParameter
        ),
        "redirect_uris: URI 0 must be https, or http on 127.0.0.1"
    );
    assert_eq!(
        message(
            refused(|r| r.redirect_uris = vec!["https://bank.example/cb#x".into()]).await,
            ErrorCode::InvalidParameter
        ),
        "redirect_uris: URI 0 has a fragment"
    );
    assert_eq!(
        message(
            refused(|r| r.redirect_uris = vec!["https://BANK.example/cb".into()]).await,
            ErrorCode::InvalidParameter
        ),
        "redirect_uris: URI 0 is not in its normal form; write it as https://bank.example/cb"
    );
    assert_eq!(
        message(
            refused(|r| r.redirect_uris.push("https://other.example/cb".into())).await,
            ErrorCode::InvalidParameter
        ),
        "redirect_uris: all URIs must share one host"
    );
    assert_eq!(
        message(
            refused(|r| r.redirect_uris.clear()).await,
            ErrorCode::InvalidParameter
        ),
        "redirect_uris: give 1 to 10 URIs"
    );
    assert_eq!(
        message(
            refused(|r| r.scopes = vec!["profile".into()]).await,
            ErrorCode::InvalidParameter
        ),
        "scopes: must contain openid"
    );
    assert_eq!(
        message(
            refused(|r| {
                r.client_secret_basic = false;
                r.jwk = None;
            })
            .await,
            ErrorCode::InvalidParameter
        ),
        "a client needs client_secret_basic, a jwk, or both"
    );
    assert_eq!(
        message(
            refused(|r| r.jwk.as_mut().unwrap().y =
                Some("y_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0".into()))
            .await,
            ErrorCode::InvalidParameter
        ),
        "jwk: the point is not on the P-256 curve"
    );
    assert_eq!(
        message(
            refused(|r| r.jwk = Some(support::rsa_jwk_of_bits(1024))).await,
            ErrorCode::InvalidParameter
        ),
        "jwk: the RSA modulus must have 2048 to 8192 bits"
    );
    assert_eq!(
        message(
            refused(|r| r.service_provider_id = ServiceProviderId::random()).await,
            ErrorCode::UnknownServiceProvider
        ),
        "no such service provider"
    );
    // None of them stored a client or an audit row of a registration.
    let clients: u32 = h
        .database()
        .query_row("SELECT COUNT(*) FROM oidc_clients", [], |r| r.get(0))
        .unwrap();
    assert_eq!(clients, 0);
    let audit = h.admin.audit(None, Some(1), None).await.unwrap().entries;
    assert_eq!(audit[0].action, "register_provider");
}

/// A GET over the harness's pinned TLS client: status, `Cache-Control`
/// and the JSON body.
async fn get_json(h: &Harness, path: &str) -> (u16, String, serde_json::Value) {
    let resp = h
        .endpoint
        .client
        .get(format!("{}{}", h.endpoint.base_url, path))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let cache = resp
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, cache, resp.json().await.unwrap())
}

#[tokio::test]
async fn discovery_names_the_issuer_by_the_host_called_and_the_flows_it_is_built_for() {
    let h = Harness::start().await;
    let issuer = h.endpoint.base_url.trim_end_matches('/').to_owned();
    assert!(issuer.starts_with("https://127.0.0.1:"));

    let (status, cache, doc) = get_json(&h, "/.well-known/openid-configuration").await;
    assert_eq!(status, 200);
    assert_eq!(cache, "public, max-age=300");
    assert_eq!(
        doc,
        serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/oidc/authorize"),
            "token_endpoint": format!("{issuer}/oidc/token"),
            "userinfo_endpoint": format!("{issuer}/oidc/userinfo"),
            "jwks_uri": format!("{issuer}/oidc/jwks"),
            "pushed_authorization_request_endpoint": format!("{issuer}/oidc/par"),
            "require_pushed_authorization_requests": true,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid"],
            "claims_supported": ["iss", "aud", "exp", "iat", "auth_time", "nonce", "sub", "acr", "amr",
                "eid_request_id", "eid_receipt_sha256", "eid_reference_text_sha256",
                "eid_call_context", "eid_call_verdict"],
            "acr_values_supported": ["https://data.gov.dk/concept/core/nsis/loa/Substantial",
                "https://data.gov.dk/concept/core/nsis/loa/High"],
        })
    );
}

#[tokio::test]
async fn a_configured_issuer_is_used_whatever_host_was_called() {
    let h = Harness::start_with(|c| c.oidc_issuer = Some("https://eid.example".into())).await;
    let (status, _, doc) = get_json(&h, "/.well-known/openid-configuration").await;
    assert_eq!(status, 200);
    assert_eq!(doc["issuer"], "https://eid.example");
    assert_eq!(doc["jwks_uri"], "https://eid.example/oidc/jwks");
    // An issuer that could not appear byte for byte in `iss` is refused
    // when the configuration is read.
    for bad in [
        "https://eid.example/",
        "http://eid.example",
        "https://eid.example/x",
    ] {
        let err =
            eid_server::Config::from_toml_str(&format!("oidc_issuer = \"{bad}\"")).unwrap_err();
        assert!(
            err.to_string()
                .contains("is not an https origin without a trailing slash"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn the_jwks_holds_one_es256_key_of_its_own_named_by_its_thumbprint() {
    let h = Harness::start().await;
    let (status, cache, jwks) = get_json(&h, "/oidc/jwks").await;
    assert_eq!(status, 200);
    assert_eq!(cache, "public, max-age=300");
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-256");
    assert_eq!(key["alg"], "ES256");
    assert_eq!(key["use"], "sig");
    let (x, y) = (key["x"].as_str().unwrap(), key["y"].as_str().unwrap());
    // RFC 7638: SHA-256 over the required members in order, base64url.
    let thumbprint = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    assert_eq!(
        key["kid"],
        b64.encode(eid_protocol::sha256(thumbprint.as_bytes()))
    );

    // Not the key that signs requests and receipts.
    let server_key = h.rp.server_key().await.unwrap();
    let mut point = vec![0x04];
    point.extend(b64.decode(x).unwrap());
    point.extend(b64.decode(y).unwrap());
    assert_ne!(point.as_slice(), server_key.as_bytes().as_slice());
    // Its own file in the data folder, readable by the owner only.
    let path = h.dir.path().join("oidc-id-token-key.pk8");
    assert!(path.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

/// An `openidconnect` HTTP client over the harness's pinned TLS client.
fn oidc_http(
    h: &Harness,
) -> impl Fn(
    openidconnect::HttpRequest,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<openidconnect::HttpResponse, reqwest::Error>>>,
> {
    let client = h.endpoint.client.clone();
    move |req: openidconnect::HttpRequest| {
        let client = client.clone();
        Box::pin(async move {
            let resp = client
                .request(req.method().clone(), req.uri().to_string())
                .headers(req.headers().clone())
                .body(req.into_body())
                .send()
                .await?;
            let mut answer = openidconnect::http::Response::builder().status(resp.status());
            for (name, value) in resp.headers() {
                answer = answer.header(name, value);
            }
            Ok(answer.body(resp.bytes().await?.to_vec()).unwrap())
        })
    }
}

#[tokio::test]
async fn an_independent_oidc_library_reads_discovery_and_verifies_a_token_of_the_published_key() {
    use openidconnect::core::{
        CoreIdToken, CoreIdTokenVerifier, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    };
    use openidconnect::{ClientId, IssuerUrl, Nonce};

    let h = Harness::start().await;
    let issuer = h.endpoint.base_url.trim_end_matches('/').to_owned();
    let http = oidc_http(&h);
    // Discovery checks that the document names the issuer it was fetched
    // for, and fetches the JWKS from jwks_uri.
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(issuer.clone()).unwrap(), &http)
            .await
            .unwrap();
    assert_eq!(metadata.issuer().as_str(), issuer);
    assert_eq!(metadata.jwks().keys().len(), 1);

    // A token signed with the server's ID-token key (read from its file, as
    // the token endpoint will) verifies with the published key only.
    let key = eid_server::oidc::IdTokenKey::load_or_create(h.dir.path()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": issuer, "aud": "eidoc_test", "sub": "pairwise-subject",
        "iat": now, "exp": now + 300, "nonce": "n-0S6_WzA2Mj",
        "acr": "https://data.gov.dk/concept/core/nsis/loa/Substantial",
    });
    let verifier = CoreIdTokenVerifier::new_public_client(
        ClientId::new("eidoc_test".into()),
        IssuerUrl::new(issuer.clone()).unwrap(),
        metadata.jwks().clone(),
    )
    .set_allowed_algs([CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
    let nonce = Nonce::new("n-0S6_WzA2Mj".into());

    let token: CoreIdToken = key.sign_jwt(&claims).unwrap().parse().unwrap();
    let verified = token.claims(&verifier, &nonce).unwrap();
    assert_eq!(verified.subject().as_str(), "pairwise-subject");
    assert_eq!(
        verified.auth_context_ref().unwrap().as_str(),
        "https://data.gov.dk/concept/core/nsis/loa/Substantial"
    );
    // Another key (another data folder) is not trusted, whatever it signs.
    let stranger_dir = tempfile::tempdir().unwrap();
    let stranger = eid_server::oidc::IdTokenKey::load_or_create(stranger_dir.path()).unwrap();
    let forged: CoreIdToken = stranger.sign_jwt(&claims).unwrap().parse().unwrap();
    assert!(forged.claims(&verifier, &nonce).is_err());
    // Nor a wrong nonce.
    assert!(
        token
            .claims(&verifier, &Nonce::new("other".into()))
            .is_err()
    );
}
