//! Client authentication and the pushed authorization request: both
//! methods and both key types succeed; every broken credential or
//! parameter gets its own clear OAuth error and stores nothing.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::common::Harness;
use super::support::*;

const PAR: &str = "/oidc/par";

#[tokio::test]
async fn a_client_with_a_secret_pushes_a_request_and_gets_a_request_uri_for_60_seconds() {
    let h = Harness::start().await;
    let sp = harness_provider(&h).await;
    let client = register(&h, sp, KeyKind::Secret, "https://bank.example/cb").await;

    let params = par_params(&client);
    let answer = post_form(&h, PAR, &auth_of(&h, &client), &pairs(&params)).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.header("cache-control"), "no-store");
    assert_eq!(answer.body["expires_in"], 60);
    let request_uri = answer.body["request_uri"].as_str().unwrap();
    let handle = request_uri
        .strip_prefix("urn:ietf:params:oauth:request_uri:")
        .unwrap();
    assert_eq!(URL_SAFE_NO_PAD.decode(handle).unwrap().len(), 32);

    // Stored under the hash of the whole request_uri, with the checked
    // parameters and the default reference text.
    let (hash, params, expires): (Vec<u8>, String, u64) = h
        .database()
        .query_row(
            "SELECT request_uri_sha256, params, request_uri_expires_at_ms FROM oidc_logins",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(hash, eid_protocol::sha256(request_uri.as_bytes()));
    assert_eq!(expires, h.now() + 60_000);
    let params: serde_json::Value = serde_json::from_str(&params).unwrap();
    assert_eq!(params["redirect_uri"], "https://bank.example/cb");
    assert_eq!(params["scope"], "openid");
    assert_eq!(params["state"], "af0ifjsldkj");
    assert_eq!(params["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(params["code_challenge"], CHALLENGE);
    assert_eq!(params["reference_text"], "Login at Nordisk Bank A/S");
    assert_eq!(
        params["acr"],
        "https://data.gov.dk/concept/core/nsis/loa/Substantial"
    );
    // Each push is a new login with a new request_uri.
    let again = push(&h, &client).await;
    assert_ne!(again, request_uri);
    assert_eq!(logins(&h), 2);
}

#[tokio::test]
async fn es256_and_rs256_assertions_authenticate_with_the_issuer_alone_as_audience() {
    let h = Harness::start().await;
    let sp = harness_provider(&h).await;
    let issuer = issuer(&h);
    for kind in [KeyKind::Ec, KeyKind::Rsa] {
        let client = register(&h, sp, kind, "https://bank.example/cb").await;
        for aud in [serde_json::json!(issuer), serde_json::json!([issuer])] {
            let mut c = claims(&h, &client, &issuer);
            c["aud"] = aud.clone();
            let jwt = sign(&client, &c);
            let params = par_params(&client);
            let answer = post_form(&h, PAR, &Auth::Assertion(jwt), &pairs(&params)).await;
            assert_eq!(answer.status, 201, "{kind:?} {aud}: {}", answer.body);
        }
        // An assertion made for an endpoint's URL, or for several audiences,
        // may have been made for another server (audience injection).
        for aud in [
            serde_json::json!(format!("{issuer}/oidc/par")),
            serde_json::json!(format!("{issuer}/oidc/token")),
            serde_json::json!([issuer, "https://other.example"]),
            serde_json::json!([]),
        ] {
            let mut c = claims(&h, &client, &issuer);
            c["aud"] = aud.clone();
            let jwt = sign(&client, &c);
            let params = par_params(&client);
            let answer = post_form(&h, PAR, &Auth::Assertion(jwt), &pairs(&params)).await;
            answer.assert_error(401, "invalid_client");
        }
        // Without client_id in the form the assertion's iss names the
        // client; PAR itself then still wants its client_id.
        let jwt = sign(&client, &claims(&h, &client, &issuer));
        let mut params = par_params(&client);
        params.retain(|(k, _)| k != "client_id");
        let answer = post_form(&h, PAR, &Auth::Assertion(jwt), &pairs(&params)).await;
        answer.assert_error(400, "invalid_request");
        assert_eq!(answer.body["error_description"], "client_id is required");
    }
    assert_eq!(logins(&h), 4);
}

#[tokio::test]
async fn broken_client_credentials_are_refused_as_invalid_client_and_store_nothing() {
    let h = Harness::start().await;
    let sp = harness_provider(&h).await;
    let issuer = issuer(&h);
    let with_secret = register(&h, sp, KeyKind::Secret, "https://bank.example/cb").await;
    let ec = register(&h, sp, KeyKind::Ec, "https://bank.example/cb").await;
    let rsa = register(&h, sp, KeyKind::Rsa, "https://bank.example/cb").await;
    let secret = with_secret.secret.clone().unwrap();

    let check = |answer: Answer, basic: bool, what: &str| {
        assert_eq!(answer.status, 401, "{what}: {}", answer.body);
        assert_eq!(answer.body["error"], "invalid_client", "{what}");
        let challenge = answer.header("www-authenticate");
        if basic {
            assert_eq!(challenge, "Basic realm=\"eid\"", "{what}");
        } else {
            assert_eq!(challenge, "", "{what}");
        }
        let description = answer.body["error_description"].as_str().unwrap();
        assert!(!description.contains(&secret), "{what}");
    };
    let params = par_params(&with_secret);

    // Basic: unknown client, wrong secret, a key-only client, no password.
    for (id, s, what) in [
        ("eidoc_unknown", secret.as_str(), "unknown client"),
        (with_secret.id.as_str(), "eidcs_wrong", "wrong secret"),
        (ec.id.as_str(), secret.as_str(), "client without secret"),
        (with_secret.id.as_str(), "", "empty secret"),
    ] {
        let answer = post_form(&h, PAR, &Auth::Basic(id, s), &pairs(&params)).await;
        check(answer, true, what);
    }
    // No authentication at all.
    check(
        post_form(&h, PAR, &Auth::None, &pairs(&params)).await,
        false,
        "none",
    );

    // Assertions, each broken in one way.
    let ec_params = par_params(&ec);
    let good = claims(&h, &ec, &issuer);
    let tweak = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut c = good.clone();
        f(&mut c);
        c
    };
    let (other_key_pkcs8, _) = ec_key();
    let stored_jwk: String = h
        .database()
        .query_row(
            "SELECT jwk FROM oidc_clients WHERE client_id = ?1",
            [&ec.id],
            |r| r.get(0),
        )
        .unwrap();
    let other_key_jwt = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
        &good,
        &jsonwebtoken::EncodingKey::from_ec_der(&other_key_pkcs8),
    )
    .unwrap();
    let cases: Vec<(&str, String)> = vec![
        ("signed by another key", other_key_jwt),
        (
            "wrong aud",
            sign(&ec, &tweak(&|c| c["aud"] = "https://other.example".into())),
        ),
        (
            "aud of another endpoint of this server",
            sign(
                &ec,
                &tweak(&|c| c["aud"] = format!("{issuer}/oidc/userinfo").into()),
            ),
        ),
        (
            "expired",
            sign(&ec, &tweak(&|c| c["exp"] = (now_s(&h) - 60).into())),
        ),
        (
            "lives ten minutes",
            sign(&ec, &tweak(&|c| c["exp"] = (now_s(&h) + 600).into())),
        ),
        (
            "no exp",
            sign(
                &ec,
                &tweak(&|c| {
                    c.as_object_mut().unwrap().remove("exp");
                }),
            ),
        ),
        (
            "no jti",
            sign(
                &ec,
                &tweak(&|c| {
                    c.as_object_mut().unwrap().remove("jti");
                }),
            ),
        ),
        (
            "sub is not the client",
            sign(&ec, &tweak(&|c| c["sub"] = "someone".into())),
        ),
        (
            "not yet valid",
            sign(&ec, &tweak(&|c| c["nbf"] = (now_s(&h) + 120).into())),
        ),
        (
            "alg none",
            raw_jws(&serde_json::json!({"alg": "none"}), &good, b""),
        ),
        (
            // The classic confusion: the public key as an HMAC secret.
            "HS256 with the public JWK as secret",
            jsonwebtoken::encode(
                &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
                &good,
                &jsonwebtoken::EncodingKey::from_secret(stored_jwk.as_bytes()),
            )
            .unwrap(),
        ),
        ("not a JWT", "abc.def".into()),
    ];
    for (what, jwt) in cases {
        let answer = post_form(&h, PAR, &Auth::Assertion(jwt), &pairs(&ec_params)).await;
        check(answer, false, what);
    }
    // RS256 is refused for an EC key, ES256 for an RSA key.
    let rsa_params = par_params(&rsa);
    let ec_signed_for_rsa = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
        &claims(&h, &rsa, &issuer),
        &jsonwebtoken::EncodingKey::from_ec_der(&other_key_pkcs8),
    )
    .unwrap();
    check(
        post_form(
            &h,
            PAR,
            &Auth::Assertion(ec_signed_for_rsa),
            &pairs(&rsa_params),
        )
        .await,
        false,
        "ES256 for an RSA key",
    );
    // The wrong assertion type, and Basic and an assertion together.
    let mut wrong_type = pairs(&ec_params);
    let jwt = sign(&ec, &claims(&h, &ec, &issuer));
    wrong_type.push(("client_assertion_type", "urn:example:other"));
    wrong_type.push(("client_assertion", &jwt));
    check(
        post_form(&h, PAR, &Auth::None, &wrong_type).await,
        false,
        "wrong assertion type",
    );
    let answer = post_raw(
        &h,
        PAR,
        &Auth::Basic(&with_secret.id, &secret),
        "application/x-www-form-urlencoded",
        form(&{
            let mut p = pairs(&params);
            p.push((
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ));
            p.push(("client_assertion", &jwt));
            p
        }),
    )
    .await;
    check(answer, true, "two methods");

    // A jti is single use: the same assertion twice.
    let jwt = sign(&ec, &claims(&h, &ec, &issuer));
    let first = post_form(&h, PAR, &Auth::Assertion(jwt.clone()), &pairs(&ec_params)).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let replayed = post_form(&h, PAR, &Auth::Assertion(jwt), &pairs(&ec_params)).await;
    check(replayed, false, "replayed jti");
    assert_eq!(
        replayed_description(&h, &ec, &ec_params).await,
        "the client assertion's jti was used before"
    );
    // Only the one good push was stored.
    assert_eq!(logins(&h), 2);
}

/// The description of a replay, for a fresh assertion used twice.
async fn replayed_description(
    h: &Harness,
    client: &TestClient,
    params: &[(String, String)],
) -> String {
    let jwt = sign(client, &claims(h, client, &issuer(h)));
    let first = post_form(h, PAR, &Auth::Assertion(jwt.clone()), &pairs(params)).await;
    assert_eq!(first.status, 201);
    let second = post_form(h, PAR, &Auth::Assertion(jwt), &pairs(params)).await;
    second.body["error_description"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn broken_authorization_parameters_get_a_clear_error_and_store_nothing() {
    let h = Harness::start().await;
    let sp = harness_provider(&h).await;
    let client = register(&h, sp, KeyKind::Secret, "https://bank.example/cb").await;
    let auth = auth_of(&h, &client);
    let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s.as_bytes());

    let set = |name: &str, value: Option<&str>| {
        let mut p = par_params(&client);
        p.retain(|(k, _)| k != name);
        if let Some(v) = value {
            p.push((name.to_owned(), v.to_owned()));
        }
        p
    };
    let long_state = "s".repeat(513);
    let long_hint = "u".repeat(65);
    let not_utf8 = URL_SAFE_NO_PAD.encode([0xff, 0xfe]);
    let screen_imitation = b64("ADVARSEL: godkend straks");
    // (what, the form, the OAuth error)
    type Case<'a> = (&'a str, Vec<(String, String)>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            "no response_type",
            set("response_type", None),
            "invalid_request",
        ),
        (
            "response_type token",
            set("response_type", Some("token")),
            "unsupported_response_type",
        ),
        (
            "other client_id",
            set("client_id", Some("eidoc_other")),
            "invalid_request",
        ),
        (
            "no redirect_uri",
            set("redirect_uri", None),
            "invalid_request",
        ),
        (
            "redirect_uri mismatch",
            set("redirect_uri", Some("https://bank.example/cb/")),
            "invalid_request",
        ),
        (
            "redirect_uri of another host",
            set("redirect_uri", Some("https://evil.example/cb")),
            "invalid_request",
        ),
        ("no scope", set("scope", None), "invalid_scope"),
        (
            "scope without openid",
            set("scope", Some("profile")),
            "invalid_scope",
        ),
        (
            "scope not registered",
            set("scope", Some("openid profile")),
            "invalid_scope",
        ),
        (
            "state too long",
            set("state", Some(&long_state)),
            "invalid_request",
        ),
        (
            "nonce with a control character",
            set("nonce", Some("a\u{7}b")),
            "invalid_request",
        ),
        (
            "no code_challenge",
            set("code_challenge", None),
            "invalid_request",
        ),
        (
            "short code_challenge",
            set("code_challenge", Some("abc")),
            "invalid_request",
        ),
        (
            "code_challenge with padding",
            set(
                "code_challenge",
                Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c="),
            ),
            "invalid_request",
        ),
        (
            "no code_challenge_method",
            set("code_challenge_method", None),
            "invalid_request",
        ),
        (
            "plain PKCE",
            set("code_challenge_method", Some("plain")),
            "invalid_request",
        ),
        (
            "login_hint too long",
            set("login_hint", Some(&long_hint)),
            "invalid_request",
        ),
        (
            "reference_text not base64url",
            set("reference_text", Some("a+b/")),
            "invalid_request",
        ),
        (
            "reference_text not UTF-8",
            set("reference_text", Some(&not_utf8)),
            "invalid_request",
        ),
        (
            "reference_text imitating the app",
            set("reference_text", Some(&screen_imitation)),
            "invalid_request",
        ),
        (
            "an acr that is no NSIS level",
            set(
                "acr_values",
                Some("https://data.gov.dk/concept/core/nsis/loa/Highest"),
            ),
            "invalid_request",
        ),
        (
            "prompt none",
            set("prompt", Some("none")),
            "invalid_request",
        ),
        // A client that asks for the code in a post or a fragment (to keep
        // it out of URLs and logs) must not silently get it in the query.
        (
            "response_mode form_post",
            set("response_mode", Some("form_post")),
            "invalid_request",
        ),
        (
            "response_mode fragment",
            set("response_mode", Some("fragment")),
            "invalid_request",
        ),
        (
            "a request object",
            set("request", Some("eyJhbGciOiJub25lIn0.e30.")),
            "request_not_supported",
        ),
        (
            "a request_uri",
            set("request_uri", Some("urn:x")),
            "invalid_request",
        ),
    ];
    for (what, params, error) in cases {
        let answer = post_form(&h, PAR, &auth, &pairs(&params)).await;
        assert_eq!(answer.status, 400, "{what}: {}", answer.body);
        assert_eq!(answer.body["error"], error, "{what}: {}", answer.body);
        answer.assert_error(400, error);
    }
    // The messages name the parameter.
    let plain = post_form(
        &h,
        PAR,
        &auth,
        &pairs(&set("code_challenge_method", Some("plain"))),
    )
    .await;
    assert_eq!(
        plain.body["error_description"],
        "code_challenge_method must be S256 (plain is refused)"
    );

    // A parameter sent twice.
    let base = par_params(&client);
    let mut twice = pairs(&base);
    twice.push(("state", "second"));
    let answer = post_form(&h, PAR, &auth, &twice).await;
    answer.assert_error(400, "invalid_request");
    assert_eq!(
        answer.body["error_description"],
        "state: a parameter may be sent only once"
    );
    // Not a form, a form that is not UTF-8, a form too large.
    let body = form(&pairs(&par_params(&client)));
    post_raw(&h, PAR, &auth, "application/json", body.clone())
        .await
        .assert_error(400, "invalid_request");
    post_raw(
        &h,
        PAR,
        &auth,
        "application/x-www-form-urlencoded",
        format!("{body}&x=%FF"),
    )
    .await
    .assert_error(400, "invalid_request");
    let big = format!("{body}&padding={}", "p".repeat(17 * 1024));
    post_raw(&h, PAR, &auth, "application/x-www-form-urlencoded", big)
        .await
        .assert_error(413, "invalid_request");

    assert_eq!(logins(&h), 0);
}

#[tokio::test]
async fn a_reference_text_is_stored_normalized_and_the_danish_default_passes_the_text_rules() {
    let h = Harness::start().await;
    let sp = harness_provider(&h).await;
    let client = register(&h, sp, KeyKind::Secret, "https://bank.example/cb").await;
    let auth = auth_of(&h, &client);

    // "Log ind i Netbank" with a decomposed "å" nowhere; an e + combining
    // acute accent is stored as the composed é (NFC).
    let mut params = par_params(&client);
    params.push((
        "reference_text".into(),
        URL_SAFE_NO_PAD.encode("Cafe\u{301} Netbank".as_bytes()),
    ));
    params.push(("login_hint".into(), "anna.hansen".into()));
    params.push(("ui_locales".into(), "fr da".into()));
    params.push(("prompt".into(), "login".into()));
    params.push(("response_mode".into(), "query".into()));
    params.push((
        "acr_values".into(),
        "https://data.gov.dk/concept/core/nsis/loa/Low".into(),
    ));
    let answer = post_form(&h, PAR, &auth, &pairs(&params)).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let mut danish = par_params(&client);
    danish.push(("ui_locales".into(), "da".into()));
    let answer = post_form(&h, PAR, &auth, &pairs(&danish)).await;
    assert_eq!(answer.status, 201, "{}", answer.body);

    let stored: Vec<serde_json::Value> = h
        .database()
        .prepare("SELECT params FROM oidc_logins ORDER BY created_at_ms, rowid")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|p| serde_json::from_str(&p.unwrap()).unwrap())
        .collect();
    assert_eq!(stored[0]["reference_text"], "Caf\u{e9} Netbank");
    assert_eq!(stored[0]["login_hint"], "anna.hansen");
    assert_eq!(stored[0]["lang"], "da");
    // Low was asked for; the login gives Substantial.
    assert_eq!(
        stored[0]["acr"],
        "https://data.gov.dk/concept/core/nsis/loa/Substantial"
    );
    assert_eq!(stored[1]["reference_text"], "Login hos Nordisk Bank A/S");
    assert_eq!(
        eid_protocol::text::validate_reference_text("Login hos Nordisk Bank A/S"),
        Ok(())
    );
}
