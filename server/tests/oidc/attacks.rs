//! Attacks on the login pages and the client-facing endpoints (see
//! docs/threat-model.md, "The web: OpenID Connect and the login pages"):
//! what a stranger with a browser, or a client's key holder, tries, and
//! that each gets nothing and changes nothing.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

use super::common::Harness;
use super::support::*;

const USER: &str = "bo.jensen-42";

/// A browser at the login page of a freshly pushed login: the page's path,
/// the login cookie and the form's CSRF token.
struct Browser {
    path: String,
    cookie: String,
    csrf: String,
}

/// Pushes a login for `client` and arrives with a browser.
async fn arrive(h: &Harness, client: &TestClient) -> Browser {
    let http = &h.endpoint.client;
    let base = &h.endpoint.base_url;
    let request_uri = push(h, client).await;
    let mut authorize = url::Url::parse(&format!("{base}/oidc/authorize")).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("client_id", &client.id)
        .append_pair("request_uri", &request_uri);
    let arrived = http.get(authorize).send().await.unwrap();
    assert_eq!(arrived.status().as_u16(), 303);
    let path = arrived.headers()["location"].to_str().unwrap().to_owned();
    let cookie = arrived.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = http
        .get(format!("{base}{path}"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = page.find("name=\"csrf\" value=\"").expect("the csrf field") + 19;
    let csrf = page[at..at + page[at..].find('"').unwrap()].to_owned();
    Browser { path, cookie, csrf }
}

/// Posts `user_id` on the browser's page; the status and the page it then
/// shows.
async fn type_user_id(h: &Harness, b: &Browser, user_id: &str) -> (u16, String) {
    let http = &h.endpoint.client;
    let base = &h.endpoint.base_url;
    let posted = http
        .post(format!("{base}{}/user-id", b.path))
        .header("cookie", &b.cookie)
        .header("origin", base.as_str())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("csrf", b.csrf.as_str()), ("user_id", user_id)]))
        .send()
        .await
        .unwrap();
    let status = posted.status().as_u16();
    let page = http
        .get(format!("{base}{}", b.path))
        .header("cookie", &b.cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (status, page)
}

#[tokio::test]
async fn a_persons_own_limits_do_not_tell_a_stranger_that_their_user_id_exists() {
    // One pending request per person: the second login for a known user ID
    // meets the person's cap, which an unknown user ID never does.
    let h = Harness::start_with(|c| c.max_pending_per_identity = 1).await;
    let sp = harness_provider(&h).await;
    let _person = person(&h, USER).await;
    let client = register(&h, sp, KeyKind::Secret, "https://bank.example/cb").await;

    for user_id in [USER, "nobody-at-all"] {
        for attempt in 0..2 {
            let browser = arrive(&h, &client).await;
            let (status, page) = type_user_id(&h, &browser, user_id).await;
            assert_eq!(status, 303, "{user_id}, attempt {attempt}: {page}");
            assert!(
                page.contains("id=\"binding-code\""),
                "{user_id}, attempt {attempt}: the waiting page, with a code"
            );
        }
    }
}

/// Signs `claims` under a hand-made `header` with the client's P-256 key.
fn sign_with_header(
    pkcs8: &[u8],
    header: &serde_json::Value,
    claims: &serde_json::Value,
) -> String {
    let rng = ring::rand::SystemRandom::new();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng).unwrap();
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
    );
    let signature = key.sign(&rng, input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
}

#[tokio::test]
async fn a_client_assertion_with_critical_header_parameters_is_refused() {
    let h = Harness::start().await;
    let sp = harness_provider(&h).await;
    let client = register(&h, sp, KeyKind::Ec, "https://bank.example/cb").await;
    let aud = format!("{}/oidc/par", issuer(&h));
    let params = par_params(&client);
    let pkcs8 = client.ec_pkcs8().to_vec();

    // RFC 7515 section 4.1.11: a `crit` this server does not understand
    // (it understands none) makes the JWS invalid.
    let crit = serde_json::json!({ "alg": "ES256", "crit": ["exp"], "exp": 1 });
    let jwt = sign_with_header(&pkcs8, &crit, &claims(&h, &client, &aud));
    post_form(&h, "/oidc/par", &Auth::Assertion(jwt), &pairs(&params))
        .await
        .assert_error(401, "invalid_client");
    assert_eq!(logins(&h), 0, "nothing stored");

    // The same without `crit` passes: it was the header alone.
    let plain = serde_json::json!({ "alg": "ES256" });
    let jwt = sign_with_header(&pkcs8, &plain, &claims(&h, &client, &aud));
    let answer = post_form(&h, "/oidc/par", &Auth::Assertion(jwt), &pairs(&params)).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
}
