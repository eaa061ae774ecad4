//! The whole login as a service provider and a person do it, through the
//! contract's HTTP pages (docs/oidc.md): PAR, the authorization endpoint
//! with the browser's cookie, the user-ID form with its `csrf` field, the
//! binding code read from `#binding-code`, the approval in the app, the
//! redirect back with `code`, `state` and `iss`, then the token endpoint,
//! the ID token verified with the `openidconnect` crate, and userinfo.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use eid_api_client::SoftPhone;
use eid_protocol::Outcome;
use openidconnect::core::{
    CoreIdToken, CoreIdTokenVerifier, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{ClientId, IssuerUrl, Nonce};

use super::common::Harness;
use super::support::*;

const USER: &str = "bo.jensen-42";

/// The `Location` of a 303.
#[track_caller]
fn see_other(resp: &reqwest::Response) -> String {
    assert_eq!(resp.status().as_u16(), 303, "expected a redirect");
    resp.headers()
        .get("location")
        .expect("Location")
        .to_str()
        .unwrap()
        .to_owned()
}

/// The text of the first element with `id`.
fn element_text(html: &str, id: &str) -> Option<String> {
    let start = html.find(&format!("id=\"{id}\""))?;
    let rest = &html[start..];
    let text = &rest[rest.find('>')? + 1..];
    Some(text[..text.find('<')?].to_owned())
}

/// The `value` of the `<input>` whose `name` is `name`, whatever the order
/// of its attributes.
fn input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let tag_start = html[..at].rfind('<')?;
    let tag = &html[tag_start..tag_start + html[tag_start..].find('>')?];
    let value = &tag[tag.find("value=\"")? + 7..];
    Some(value[..value.find('"')?].to_owned())
}

/// The query parameter `name` of a URL.
fn query_value(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// One login through the pages: PAR by `client`, the browser's way, the
/// person approving in the app; returns the redirect back to the client.
async fn login_through_pages(
    h: &Harness,
    client: &TestClient,
    user_id: &str,
    phone: &mut SoftPhone,
) -> String {
    let http = &h.endpoint.client;
    let base = &h.endpoint.base_url;
    let request_uri = push(h, client).await;

    let mut authorize = url::Url::parse(&format!("{base}/oidc/authorize")).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("client_id", &client.id)
        .append_pair("request_uri", &request_uri);
    let arrived = http.get(authorize).send().await.unwrap();
    let page_path = see_other(&arrived);
    assert!(page_path.starts_with("/oidc/login/"), "{page_path}");
    let cookie = arrived
        .headers()
        .get("set-cookie")
        .expect("the login cookie")
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let get_page = || async {
        http.get(format!("{base}{page_path}"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let page = get_page().await;
    let csrf = input_value(&page, "csrf").expect("the csrf field");
    let posted = http
        .post(format!("{base}{page_path}/user-id"))
        .header("cookie", &cookie)
        .header("origin", base.as_str())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("csrf", csrf.as_str()), ("user_id", user_id)]))
        .send()
        .await
        .unwrap();
    see_other(&posted);
    let page = get_page().await;
    let code: String = element_text(&page, "binding-code")
        .expect("the binding code")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    assert_eq!(code.len(), 8, "{code}");

    let pulled = SoftPhone::pull(&h.endpoint, &[&*phone], h.now())
        .await
        .unwrap();
    let envelope = pulled.accounts[0]
        .requests
        .iter()
        .find(|r| r.envelope.binding_required)
        .expect("the login's request in the app")
        .envelope
        .clone();
    assert_eq!(envelope.reference_text, "Login at Nordisk Bank A/S");
    let decision = phone.decide(&envelope, Outcome::Approve, Some(code), true);
    phone.submit(&h.endpoint, &decision).await.unwrap();

    let back = http
        .get(format!("{base}{page_path}/continue"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    see_other(&back)
}

#[tokio::test]
async fn a_person_logs_in_through_the_pages_and_the_client_gets_a_verified_id_token() {
    let h = Harness::start().await;
    let sp = harness_provider(&h).await;
    let (_, mut phone) = person(&h, USER).await;
    let bank = register(&h, sp, KeyKind::Ec, "https://bank.example/cb").await;
    let shop = register(&h, sp, KeyKind::Rsa, "https://shop.example/cb").await;
    let issuer = issuer(&h);

    let back = login_through_pages(&h, &bank, USER, &mut phone).await;
    assert!(back.starts_with("https://bank.example/cb?"), "{back}");
    assert_eq!(query_value(&back, "state").as_deref(), Some("af0ifjsldkj"));
    assert_eq!(query_value(&back, "iss").as_deref(), Some(issuer.as_str()));
    let code = query_value(&back, "code").expect("a code");

    // The code is no other client's.
    redeem(&h, &shop, &code, VERIFIER)
        .await
        .assert_error(400, "invalid_grant");
    // That try burnt it.
    redeem(&h, &bank, &code, VERIFIER)
        .await
        .assert_error(400, "invalid_grant");

    // The next login is redeemed by its client.
    let back = login_through_pages(&h, &bank, USER, &mut phone).await;
    let code = query_value(&back, "code").expect("a code");
    let tokens = redeem(&h, &bank, &code, VERIFIER).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    let id_token = tokens.body["id_token"].as_str().unwrap();
    let metadata = CoreProviderMetadata::discover_async(
        IssuerUrl::new(issuer.clone()).unwrap(),
        &super::oidc_http(&h),
    )
    .await
    .unwrap();
    let verifier = CoreIdTokenVerifier::new_public_client(
        ClientId::new(bank.id.clone()),
        IssuerUrl::new(issuer.clone()).unwrap(),
        metadata.jwks().clone(),
    )
    .set_allowed_algs([CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
    let token: CoreIdToken = id_token.parse().unwrap();
    let claims = token
        .claims(&verifier, &Nonce::new("n-0S6_WzA2Mj".into()))
        .unwrap();
    let bank_sub = claims.subject().as_str().to_owned();
    assert_eq!(
        claims.auth_context_ref().unwrap().as_str(),
        "https://data.gov.dk/concept/core/nsis/loa/Substantial"
    );
    assert_eq!(URL_SAFE_NO_PAD.decode(&bank_sub).unwrap().len(), 32);

    // Userinfo agrees; a second redemption revokes the access token.
    let access = tokens.body["access_token"].as_str().unwrap().to_owned();
    let info = userinfo(&h, Some(&access), false).await;
    assert_eq!(info.body, serde_json::json!({ "sub": bank_sub }));
    redeem(&h, &bank, &code, VERIFIER)
        .await
        .assert_error(400, "invalid_grant");
    userinfo(&h, Some(&access), false)
        .await
        .assert_error(401, "invalid_token");

    // Another sector sees another sub for the same person.
    let back = login_through_pages(&h, &shop, USER, &mut phone).await;
    let code = query_value(&back, "code").expect("a code");
    let tokens = redeem(&h, &shop, &code, VERIFIER).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    let shop_info = userinfo(&h, tokens.body["access_token"].as_str(), true).await;
    let shop_sub = shop_info.body["sub"].as_str().unwrap();
    assert_ne!(shop_sub, bank_sub);

    // A code redeemed after its 60 s is refused.
    let back = login_through_pages(&h, &bank, USER, &mut phone).await;
    let code = query_value(&back, "code").expect("a code");
    h.clock.advance_ms(61_000);
    redeem(&h, &bank, &code, VERIFIER)
        .await
        .assert_error(400, "invalid_grant");
}
