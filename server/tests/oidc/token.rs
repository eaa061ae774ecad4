//! The token and userinfo endpoints: a code whose request was approved is
//! redeemed once for an ID token an independent library verifies; every
//! mismatch burns the code; a second redemption revokes the access token.
//! The login's browser part is done straight in the store here (see
//! `support::approved_login`); `flow.rs` does it through the pages.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{
    CoreIdToken, CoreIdTokenVerifier, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{ClientId, IssuerUrl, Nonce};

use super::common::Harness;
use super::support::*;

const TOKEN: &str = "/oidc/token";
const USER: &str = "anna.hansen-7";

/// The payload of a JWS, unverified (the verification is the library's).
fn payload(jwt: &str) -> serde_json::Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// Verifies an ID token with the `openidconnect` crate, from discovery on.
async fn verify(h: &Harness, client: &TestClient, id_token: &str, nonce: &str) -> String {
    let issuer = issuer(h);
    let metadata = CoreProviderMetadata::discover_async(
        IssuerUrl::new(issuer.clone()).unwrap(),
        &super::oidc_http(h),
    )
    .await
    .unwrap();
    let verifier = CoreIdTokenVerifier::new_public_client(
        ClientId::new(client.id.clone()),
        IssuerUrl::new(issuer).unwrap(),
        metadata.jwks().clone(),
    )
    .set_allowed_algs([CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
    let token: CoreIdToken = id_token.parse().unwrap();
    let claims = token.claims(&verifier, &Nonce::new(nonce.into())).unwrap();
    claims.subject().as_str().to_owned()
}

#[tokio::test]
async fn an_approved_login_is_redeemed_once_for_an_id_token_a_standard_library_verifies() {
    let h = Harness::start().await;
    let sp = harness_provider(&h).await;
    let (identity, mut phone) = person(&h, USER).await;
    let client = register(&h, sp, KeyKind::Secret, "https://bank.example/cb").await;
    let (_, code) = approved_login(&h, &client, USER, &mut phone).await;

    let answer = redeem(&h, &client, &code, VERIFIER).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.header("cache-control"), "no-store");
    assert_eq!(answer.body["token_type"], "Bearer");
    assert_eq!(answer.body["expires_in"], 300);
    assert_eq!(answer.body["scope"], "openid");
    let id_token = answer.body["id_token"].as_str().unwrap();
    let sub = verify(&h, &client, id_token, "n-0S6_WzA2Mj").await;

    // The claims exactly.
    let claims = payload(id_token);
    let iat = claims["iat"].as_u64().unwrap();
    assert_eq!(iat, h.now() / 1000);
    let request_id = claims["eid_request_id"].as_str().unwrap();
    let status = h.rp.status(request_id.parse().unwrap(), 0).await.unwrap();
    // The receipt the provider's API gives; the token carries its hash only.
    let receipt = hex::encode(eid_protocol::sha256(
        &status.receipt.as_ref().unwrap().receipt.signing_bytes(),
    ));
    let mut keys: Vec<&str> = claims
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mut expected = [
        "iss",
        "aud",
        "exp",
        "iat",
        "auth_time",
        "nonce",
        "sub",
        "acr",
        "amr",
        "eid_request_id",
        "eid_receipt_sha256",
        "eid_reference_text_sha256",
        "eid_call_verdict",
    ];
    expected.sort_unstable();
    assert_eq!(keys, expected);
    assert_eq!(claims["iss"], issuer(&h));
    assert_eq!(claims["aud"], client.id);
    assert_eq!(claims["exp"].as_u64().unwrap(), iat + 300);
    assert!(claims["auth_time"].as_u64().unwrap() <= iat);
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(claims["sub"], sub);
    assert_eq!(
        claims["acr"],
        "https://data.gov.dk/concept/core/nsis/loa/Substantial"
    );
    assert_eq!(claims["amr"], serde_json::json!(["code_app"]));
    assert_eq!(request_id.len(), 32);
    assert_eq!(claims["eid_receipt_sha256"], receipt.as_str());
    // Nothing in the token is the same at every service provider.
    let text = claims.to_string();
    let receipt_body = &status.receipt.as_ref().unwrap().receipt;
    assert!(!text.contains(&receipt_body.identity_id.to_string()));
    assert!(!text.contains(&receipt_body.authenticator_id.to_string()));
    assert_eq!(
        claims["eid_reference_text_sha256"],
        hex::encode(status.reference_text_sha256)
    );
    assert_eq!(
        status.reference_text_sha256,
        eid_protocol::sha256(b"Login at Nordisk Bank A/S")
    );
    // The header names the JWKS key.
    let header: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(id_token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    let jwks = h
        .endpoint
        .client
        .get(format!("{}/oidc/jwks", h.endpoint.base_url))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(header["kid"], jwks["keys"][0]["kid"]);
    assert_eq!(header["typ"], "JWT");

    // The sub is pairwise: neither the user ID nor the identity id.
    assert!(!sub.contains(USER));
    assert!(!sub.contains(&identity.to_string()));
    assert_eq!(URL_SAFE_NO_PAD.decode(&sub).unwrap().len(), 32);

    // Userinfo answers the same sub, by GET and by POST.
    let access = answer.body["access_token"].as_str().unwrap();
    for post in [false, true] {
        let info = userinfo(&h, Some(access), post).await;
        assert_eq!(info.status, 200, "{}", info.body);
        assert_eq!(info.body, serde_json::json!({ "sub": sub }));
        assert_eq!(info.header("cache-control"), "no-store");
    }

    // A second redemption fails and revokes the access token.
    redeem(&h, &client, &code, VERIFIER)
        .await
        .assert_error(400, "invalid_grant");
    let revoked = userinfo(&h, Some(access), false).await;
    assert_eq!(revoked.status, 401);
    assert_eq!(
        revoked.header("www-authenticate"),
        "Bearer error=\"invalid_token\""
    );
}

#[tokio::test]
async fn the_same_person_gets_one_sub_per_sector_whatever_the_client_and_key_type() {
    let h = Harness::start().await;
    let sp = harness_provider(&h).await;
    let (_, mut phone) = person(&h, USER).await;
    let bank = register(&h, sp, KeyKind::Ec, "https://bank.example/cb").await;
    let bank_again = register(&h, sp, KeyKind::Rsa, "https://bank.example/other").await;
    let shop = register(&h, sp, KeyKind::Secret, "https://shop.example/cb").await;

    let mut subs = Vec::new();
    for client in [&bank, &bank_again, &shop] {
        let (_, code) = approved_login(&h, client, USER, &mut phone).await;
        let answer = redeem(&h, client, &code, VERIFIER).await;
        assert_eq!(answer.status, 200, "{:?}: {}", client.kind, answer.body);
        let id_token = answer.body["id_token"].as_str().unwrap();
        subs.push(verify(&h, client, id_token, "n-0S6_WzA2Mj").await);
    }
    assert_eq!(subs[0], subs[1], "one sector, one sub");
    assert_ne!(subs[0], subs[2], "another sector, another sub");

    // The server keeps the derivation secret in a file of its own.
    let path = h.dir.path().join("oidc-pairwise.key");
    assert_eq!(std::fs::read_to_string(&path).unwrap().len(), 43);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn a_code_presented_with_any_mismatch_is_burnt_and_answers_invalid_grant() {
    let h = Harness::start().await;
    let sp = harness_provider(&h).await;
    let (_, mut phone) = person(&h, USER).await;
    let client = register(&h, sp, KeyKind::Secret, "https://bank.example/cb").await;
    let other = register(&h, sp, KeyKind::Ec, "https://bank.example/cb").await;

    // Another client, another redirect_uri, a wrong or malformed verifier:
    // each fails, and the code is gone for the right request after it.
    let wrong_verifier = "x".repeat(43);
    for mismatch in ["client", "redirect_uri", "verifier", "short verifier"] {
        let (_, code) = approved_login(&h, &client, USER, &mut phone).await;
        let answer = match mismatch {
            "client" => redeem(&h, &other, &code, VERIFIER).await,
            "redirect_uri" => {
                post_form(
                    &h,
                    TOKEN,
                    &auth_of(&h, &client),
                    &[
                        ("grant_type", "authorization_code"),
                        ("code", &code),
                        ("redirect_uri", "https://bank.example/cb2"),
                        ("code_verifier", VERIFIER),
                    ],
                )
                .await
            }
            "verifier" => redeem(&h, &client, &code, &wrong_verifier).await,
            _ => redeem(&h, &client, &code, "abc").await,
        };
        answer.assert_error(400, "invalid_grant");
        redeem(&h, &client, &code, VERIFIER)
            .await
            .assert_error(400, "invalid_grant");
    }

    // A code past its 60 s.
    let (_, code) = approved_login(&h, &client, USER, &mut phone).await;
    h.clock.advance_ms(60_001);
    redeem(&h, &client, &code, VERIFIER)
        .await
        .assert_error(400, "invalid_grant");
}

#[tokio::test]
async fn token_requests_that_are_malformed_or_unauthenticated_are_refused_and_change_nothing() {
    let h = Harness::start().await;
    let sp = harness_provider(&h).await;
    let (_, mut phone) = person(&h, USER).await;
    let client = register(&h, sp, KeyKind::Secret, "https://bank.example/cb").await;
    let (_, code) = approved_login(&h, &client, USER, &mut phone).await;
    let auth = auth_of(&h, &client);
    let good = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "https://bank.example/cb"),
        ("code_verifier", VERIFIER),
    ];
    let without = |name: &str| -> Vec<(&str, &str)> {
        good.iter().copied().filter(|(k, _)| *k != name).collect()
    };

    // An unknown code.
    redeem(&h, &client, "unknown-code", VERIFIER)
        .await
        .assert_error(400, "invalid_grant");
    // Another grant type, none, missing parameters.
    let mut refresh = without("grant_type");
    refresh.push(("grant_type", "refresh_token"));
    post_form(&h, TOKEN, &auth, &refresh)
        .await
        .assert_error(400, "unsupported_grant_type");
    for name in ["grant_type", "code", "redirect_uri", "code_verifier"] {
        post_form(&h, TOKEN, &auth, &without(name))
            .await
            .assert_error(400, "invalid_request");
    }
    // A body that is not a form, a parameter twice.
    post_raw(
        &h,
        TOKEN,
        &auth,
        "application/json",
        serde_json::json!({"grant_type": "authorization_code", "code": code}).to_string(),
    )
    .await
    .assert_error(400, "invalid_request");
    let mut twice = good.to_vec();
    twice.push(("code", "another"));
    post_form(&h, TOKEN, &auth, &twice)
        .await
        .assert_error(400, "invalid_request");
    // No or wrong client authentication.
    let answer = post_form(&h, TOKEN, &Auth::None, &good).await;
    answer.assert_error(401, "invalid_client");
    let answer = post_form(&h, TOKEN, &Auth::Basic(&client.id, "eidcs_wrong"), &good).await;
    answer.assert_error(401, "invalid_client");
    assert_eq!(answer.header("www-authenticate"), "Basic realm=\"eid\"");

    // None of them touched the code: it still redeems.
    let answer = redeem(&h, &client, &code, VERIFIER).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[tokio::test]
async fn userinfo_without_a_valid_access_token_is_refused_with_a_bearer_challenge() {
    let h = Harness::start().await;
    let sp = harness_provider(&h).await;
    let (_, mut phone) = person(&h, USER).await;
    let client = register(&h, sp, KeyKind::Secret, "https://bank.example/cb").await;
    for post in [false, true] {
        for token in [None, Some("unknown-token")] {
            let answer = userinfo(&h, token, post).await;
            answer.assert_error(401, "invalid_token");
            assert_eq!(
                answer.header("www-authenticate"),
                "Bearer error=\"invalid_token\""
            );
        }
    }
    // An access token past its 300 s.
    let (_, code) = approved_login(&h, &client, USER, &mut phone).await;
    let answer = redeem(&h, &client, &code, VERIFIER).await;
    let access = answer.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(userinfo(&h, Some(&access), false).await.status, 200);
    h.clock.advance_ms(300_000);
    userinfo(&h, Some(&access), false)
        .await
        .assert_error(401, "invalid_token");
}

/// Support blocks an identity (a stolen phone, a fraud case) between the
/// person's approval and the client's token request: the code must not
/// give an ID token for the blocked identity, as a blocked identity logs
/// in nowhere else either.
#[tokio::test]
async fn a_code_of_an_identity_blocked_since_the_approval_gives_no_id_token() {
    let h = Harness::start().await;
    let sp = harness_provider(&h).await;
    let (identity, mut phone) = person(&h, USER).await;
    let client = register(&h, sp, KeyKind::Secret, "https://bank.example/cb").await;
    let (_, code) = approved_login(&h, &client, USER, &mut phone).await;
    h.admin
        .block(identity, "case 4711: phone stolen")
        .await
        .unwrap();
    redeem(&h, &client, &code, VERIFIER)
        .await
        .assert_error(400, "invalid_grant");
}

/// The same for userinfo: the access token of a login whose identity
/// support blocked since is answered as revoked.
#[tokio::test]
async fn userinfo_answers_nothing_for_an_identity_blocked_since_the_login() {
    let h = Harness::start().await;
    let sp = harness_provider(&h).await;
    let (identity, mut phone) = person(&h, USER).await;
    let client = register(&h, sp, KeyKind::Secret, "https://bank.example/cb").await;
    let (_, code) = approved_login(&h, &client, USER, &mut phone).await;
    let tokens = redeem(&h, &client, &code, VERIFIER).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    let access = tokens.body["access_token"].as_str();
    assert_eq!(userinfo(&h, access, false).await.status, 200);
    h.admin
        .block(identity, "case 4711: phone stolen")
        .await
        .unwrap();
    userinfo(&h, access, false)
        .await
        .assert_error(401, "invalid_token");
}
