//! The OpenID Connect provider over real TLS with a real SQLite file: for
//! now the registration of OIDC clients by an administrator (see
//! docs/oidc.md for what exists and what is still to come).

mod common;

use common::{Harness, assert_code};
use eid_api_client::{AdminClient, ApiFailure};
use eid_protocol::ServiceProviderId;
use eid_protocol::wire::{
    AgentRole, EcPublicJwk, ErrorCode, OidcClientAuthMethod, RegisterOidcClientRequest,
};

/// The P-256 public key of RFC 7515 appendix A.3.
fn rfc7515_jwk() -> EcPublicJwk {
    EcPublicJwk {
        kty: "EC".into(),
        crv: "P-256".into(),
        x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU".into(),
        y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0".into(),
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
        jwk: Some(rfc7515_jwk()),
        scopes: vec!["openid".into()],
    }
}

fn database(h: &Harness) -> rusqlite::Connection {
    rusqlite::Connection::open(h.dir.path().join("eid-server.sqlite3")).unwrap()
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

    // Stored: the secret's SHA-256 and the key in its RFC 7638 form, never
    // the secret itself.
    let (hash, jwk, sector): (Vec<u8>, String, String) = database(&h)
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
    let secret_stored: bool = database(&h)
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
    let clients: u32 = database(&h)
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
                "y_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0".into())
            .await,
            ErrorCode::InvalidParameter
        ),
        "jwk: the point is not on the P-256 curve"
    );
    assert_eq!(
        message(
            refused(|r| r.service_provider_id = ServiceProviderId::random()).await,
            ErrorCode::UnknownServiceProvider
        ),
        "no such service provider"
    );
    // None of them stored a client or an audit row of a registration.
    let clients: u32 = database(&h)
        .query_row("SELECT COUNT(*) FROM oidc_clients", [], |r| r.get(0))
        .unwrap();
    assert_eq!(clients, 0);
    let audit = h.admin.audit(None, Some(1), None).await.unwrap().entries;
    assert_eq!(audit[0].action, "register_provider");
}
