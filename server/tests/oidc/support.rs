//! Fixtures of the OIDC tests: clients with a secret, an ES256 or an RS256
//! key, signed client assertions, raw form posts, and a login whose code is
//! issued straight in the store (the browser part is tested in `flow.rs`).
#![allow(unreachable_pub)]

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use eid_api_client::SoftPhone;
use eid_protocol::wire::{ClientJwk, OidcClientRegistered, RegisterOidcClientRequest};
use eid_protocol::{IdentityId, Outcome, RequestKind, ServiceProviderId};
use eid_server::store::{LoginId, SqliteStore, Store};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};

use super::common::Harness;

/// The PKCS#1 DER of a 2048-bit RSA key made with OpenSSL for these tests
/// only (base64).
const RSA_2048_PKCS1: &[&str] = &[
    "MIIEpAIBAAKCAQEAyFp9lgZZ/2Ds5YtZFwAo1stJfuplbKo0rQVWQqJBoX96LrVU3eKcgau5x2hM",
    "mAHAqcWnCv3714O3IFr4sPU9uE/B8GrpjJZC41J1G6cW3iO2fVtMpgm9XdXLotabBO0t2I0F7BnC",
    "ZXA7FwwHaqKCO+qQgKP2UESul72CdJNb2DiuvV4LeP/frlaC4DzVp7K0OLr0S7IoEwjdga2rnZoZ",
    "wvceTNeL7nlESUcSJFrxqNicRJQABurzG57Sg5tkZv3qOagMmjRvk3Uyvbcm9bP9hmfbaYSutXUC",
    "vUF6fs/ADtmzfMEm62uSDlqgzuMJNrQCms1XrzS7v7zicSEjBvBqjQIDAQABAoIBAE0psNGNe67k",
    "DQjxDKxTlub230T+kHZz7RqwAgNiy2UgHBYOJ3PXeZBla4UVsd4fWqzoH0gX/p0HsQlIkBxTL2Sj",
    "bx2hh3ZqTrOPR+QRC7kdRwTrm08dVC3mD+oUvhp9IFmVIrFGUHzR5ygerWKP2RmrYuDwhQZwFVAC",
    "oFI2iLpyluLbiGch8oDfXVuPGaO5rAizf4CoVC5wE6SEVGEaY5lS5qEygVtmPJdz+5uP1Bx+jKRK",
    "e7KTZ6hB1oTpbViC10HIVjv8zJ+IrBDA5FfWwjKpxUb5i9GPINi3uN/Wa6RmTaLd8S7OlS5nFFpF",
    "qcyHPdMQ7vMpB2SFqQdhmK2gM28CgYEA+lgcJJ+BSn/YPJ/0nlXZviMZ4SncCrGwwzjmJxKnTHeK",
    "8Cr2n1G3a19NrHLcCNV5jqiQXCuDJSIuq+f9/+5a1z7CA5LvfvpiPsdfrSaz09oHAm3fhwZMbtdk",
    "X91FBPYRkNvZJxOWQOxs/b/if9BLRoBLv19ExpqDXeNtVuABeJMCgYEAzOFBKKG3upgC6OK/wLSt",
    "YGn33yASxKQ0m8GsHnhUTI9Ggv44tiYA7aINsQ5kEiM4lOAlDKIA3JPsLLnuW1vgUlF7yb8ZuhWG",
    "EtjDAT+OItp19GANShiuTn6shVbDjIeX7EDUzzUmrK7uRfkPDMCxCV2OIsvJaSds0Acqs57QJF8C",
    "gYB2bpCB0uO7dte5doKnFT45cSmhF8h9Vqqk8JoRCgYTaspT7D9YB7SaGzAH0R6/Hx6umpgQwpT8",
    "UDt8H/hNx1k6Uvo97plWnOU1heSBabnRE2gVgh0pJ5WpKkTWBTvNqQuOWDNXBTEj7bVyJgDlLoku",
    "BSvQkSVcP2S+WgU0AC0x+QKBgQCXg1W+iKno8hXkyBtqlbNKA9PtTDjU92J4dWemOPKOk75fjUW/",
    "Xqd9FUTu1WeoCigD4SdFCmF8vmAAS5g8M9vWxK+46PxLozM9qNO9jpS8rbZhfM8XJt1w6zkGer2u",
    "pW/ypZc7jWEGf29yi9dXZQEHngpJLU/L1f4gccxgfWgMHQKBgQCK1X/hN31pqeNpL4OXuC73FE94",
    "bIn4eVS0AweBipblwZEjSONzROI3+Vg3N7klvt1C5owNrtic4VF5O8kp5ek/P9IK9TACkc3A8zIZ",
    "AwOi+GLihtJ2AeQGCNgo+7XDkXKEvfST9Pd70HWslF5rGdVDHdSQbe38K7TOtNBiyI/bCQ==",
];
/// Its modulus, base64url.
const RSA_2048_N: &str = "yFp9lgZZ_2Ds5YtZFwAo1stJfuplbKo0rQVWQqJBoX96LrVU3eKcgau5x2hMmAHAqcWnCv3714O3IFr4sPU9uE_B8GrpjJZC41J1G6cW3iO2fVtMpgm9XdXLotabBO0t2I0F7BnCZXA7FwwHaqKCO-qQgKP2UESul72CdJNb2DiuvV4LeP_frlaC4DzVp7K0OLr0S7IoEwjdga2rnZoZwvceTNeL7nlESUcSJFrxqNicRJQABurzG57Sg5tkZv3qOagMmjRvk3Uyvbcm9bP9hmfbaYSutXUCvUF6fs_ADtmzfMEm62uSDlqgzuMJNrQCms1XrzS7v7zicSEjBvBqjQ";
/// The modulus of a 1024-bit RSA key made with OpenSSL.
const RSA_1024_N: &str = "u0lmshVn1_MK9IOzhWTlw2qyo6wNIo3gvr8YUuh10Y0PDhsCNAR4SWW8Vi2O2AHB9HbxcAZz-cTqP-jG5Vjwy_A5WqGmgYGIT3-OxX2IaEusI-9MpQbWSGKULSUtGuGcsf_8zRQk2cXo8_1MemGygeF32DUzrCq3RdEomnHygqE";

/// The public half of the test RSA key.
pub fn rsa_jwk() -> ClientJwk {
    rsa_jwk_of_bits(2048)
}

/// A public RSA JWK of 2048 or 1024 bits.
pub fn rsa_jwk_of_bits(bits: usize) -> ClientJwk {
    ClientJwk {
        kty: "RSA".into(),
        crv: None,
        x: None,
        y: None,
        n: Some(if bits == 1024 { RSA_1024_N } else { RSA_2048_N }.into()),
        e: Some("AQAB".into()),
    }
}

/// How a test client authenticates.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum KeyKind {
    /// A client secret only.
    Secret,
    /// An ES256 key only.
    Ec,
    /// An RS256 key only.
    Rsa,
}

/// A registered client and its credentials.
pub struct TestClient {
    pub id: String,
    pub secret: Option<String>,
    pub kind: KeyKind,
    /// PKCS#8 of its P-256 key, when it has one.
    ec_pkcs8: Option<Vec<u8>>,
    pub redirect_uri: String,
}

impl TestClient {
    /// The PKCS#8 of its P-256 key (an ES256 client only).
    pub fn ec_pkcs8(&self) -> &[u8] {
        self.ec_pkcs8.as_deref().expect("an ES256 client")
    }
}

/// A fresh P-256 key: its PKCS#8 and its public JWK.
pub fn ec_key() -> (Vec<u8>, ClientJwk) {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref();
    let jwk = ClientJwk {
        kty: "EC".into(),
        crv: Some("P-256".into()),
        x: Some(URL_SAFE_NO_PAD.encode(&point[1..33])),
        y: Some(URL_SAFE_NO_PAD.encode(&point[33..65])),
        n: None,
        e: None,
    };
    (pkcs8.as_ref().to_vec(), jwk)
}

/// Registers a client of provider `sp` with redirect URI `redirect_uri`.
pub async fn register(
    h: &Harness,
    sp: ServiceProviderId,
    kind: KeyKind,
    redirect_uri: &str,
) -> TestClient {
    let (ec_pkcs8, jwk) = match kind {
        KeyKind::Secret => (None, None),
        KeyKind::Ec => {
            let (pkcs8, jwk) = ec_key();
            (Some(pkcs8), Some(jwk))
        }
        KeyKind::Rsa => (None, Some(rsa_jwk())),
    };
    let registered: OidcClientRegistered = h
        .admin
        .register_oidc_client(&RegisterOidcClientRequest {
            service_provider_id: sp,
            redirect_uris: vec![redirect_uri.to_owned()],
            client_secret_basic: kind == KeyKind::Secret,
            jwk,
            scopes: vec!["openid".into()],
        })
        .await
        .unwrap();
    TestClient {
        id: registered.client_id,
        secret: registered.client_secret,
        kind,
        ec_pkcs8,
        redirect_uri: redirect_uri.to_owned(),
    }
}

/// The id of the harness's own provider ("Nordisk Bank A/S", whose API key
/// `h.rp` holds).
pub async fn harness_provider(h: &Harness) -> ServiceProviderId {
    // The harness registered it first; the audit names it.
    let entries = h.admin.audit(None, Some(100), None).await.unwrap().entries;
    entries
        .iter()
        .rev()
        .find(|e| e.action == "register_provider")
        .and_then(|e| e.service_provider_id)
        .expect("the harness's provider")
}

/// The issuer of the harness's server.
pub fn issuer(h: &Harness) -> String {
    h.endpoint.base_url.trim_end_matches('/').to_owned()
}

/// The server's clock, in seconds.
pub fn now_s(h: &Harness) -> u64 {
    h.now() / 1000
}

/// Standard assertion claims for `client` with audience `aud`.
pub fn claims(h: &Harness, client: &TestClient, aud: &str) -> serde_json::Value {
    serde_json::json!({
        "iss": client.id,
        "sub": client.id,
        "aud": aud,
        "exp": now_s(h) + 60,
        "iat": now_s(h),
        "jti": URL_SAFE_NO_PAD.encode(eid_protocol::crypto::random_array::<16>()),
    })
}

/// `claims` signed with the client's key.
pub fn sign(client: &TestClient, claims: &serde_json::Value) -> String {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    match client.kind {
        KeyKind::Ec => jsonwebtoken::encode(
            &Header::new(Algorithm::ES256),
            claims,
            &EncodingKey::from_ec_der(client.ec_pkcs8.as_ref().unwrap()),
        )
        .unwrap(),
        KeyKind::Rsa => jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            claims,
            &EncodingKey::from_rsa_der(&rsa_pkcs1()),
        )
        .unwrap(),
        KeyKind::Secret => panic!("a secret-only client signs nothing"),
    }
}

/// The test RSA key's PKCS#1 DER.
pub fn rsa_pkcs1() -> Vec<u8> {
    STANDARD.decode(RSA_2048_PKCS1.concat()).unwrap()
}

/// A JWS with any header and claims, signed with `signature` bytes.
pub fn raw_jws(header: &serde_json::Value, claims: &serde_json::Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// How a form post authenticates.
pub enum Auth<'a> {
    /// Not at all.
    None,
    /// HTTP Basic with this id and secret (form-urlencoded first).
    Basic(&'a str, &'a str),
    /// A client assertion.
    Assertion(String),
}

/// An answer: status, headers and the JSON body (`Null` if none).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: serde_json::Value,
}

impl Answer {
    /// The header's value, or "".
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    /// Asserts an OAuth error answer.
    #[track_caller]
    pub fn assert_error(&self, status: u16, error: &str) {
        assert_eq!(
            (self.status, self.body["error"].as_str()),
            (status, Some(error)),
            "{}",
            self.body
        );
        assert!(self.body["error_description"].is_string(), "{}", self.body);
        assert_eq!(self.header("cache-control"), "no-store");
    }
}

/// Encodes form pairs.
pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// Posts a raw body with a content type.
pub async fn post_raw(
    h: &Harness,
    path: &str,
    auth: &Auth<'_>,
    content_type: &str,
    body: String,
) -> Answer {
    let mut req = h
        .endpoint
        .client
        .post(format!("{}{path}", h.endpoint.base_url))
        .header("content-type", content_type)
        .body(body);
    if let Auth::Basic(id, secret) = auth {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        req = req.header(
            "authorization",
            format!(
                "Basic {}",
                STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
            ),
        );
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

/// Posts a form, with the assertion (if any) added to it.
pub async fn post_form(h: &Harness, path: &str, auth: &Auth<'_>, pairs: &[(&str, &str)]) -> Answer {
    let mut pairs = pairs.to_vec();
    if let Auth::Assertion(jwt) = auth {
        pairs.push((
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ));
        pairs.push(("client_assertion", jwt.as_str()));
    }
    post_raw(
        h,
        path,
        auth,
        "application/x-www-form-urlencoded",
        form(&pairs),
    )
    .await
}

/// The client's own authentication for a post to `path`.
pub fn auth_of<'a>(h: &Harness, client: &'a TestClient) -> Auth<'a> {
    match client.kind {
        KeyKind::Secret => Auth::Basic(&client.id, client.secret.as_deref().unwrap()),
        // The issuer alone is an assertion's audience.
        _ => Auth::Assertion(sign(client, &claims(h, client, &issuer(h)))),
    }
}

/// The PKCE verifier of the tests (RFC 7636 appendix B) and its challenge.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// A valid PAR form for `client`, as owned pairs (tests change them).
pub fn par_params(client: &TestClient) -> Vec<(String, String)> {
    [
        ("response_type", "code"),
        ("client_id", client.id.as_str()),
        ("redirect_uri", client.redirect_uri.as_str()),
        ("scope", "openid"),
        ("state", "af0ifjsldkj"),
        ("nonce", "n-0S6_WzA2Mj"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

/// Borrowed pairs of owned ones.
pub fn pairs(owned: &[(String, String)]) -> Vec<(&str, &str)> {
    owned
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// Pushes a valid request for `client`; returns its `request_uri`.
pub async fn push(h: &Harness, client: &TestClient) -> String {
    let params = par_params(client);
    let answer = post_form(h, "/oidc/par", &auth_of(h, client), &pairs(&params)).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    answer.body["request_uri"].as_str().unwrap().to_owned()
}

/// How many logins are stored.
pub fn logins(h: &Harness) -> u32 {
    h.database()
        .query_row("SELECT COUNT(*) FROM oidc_logins", [], |r| r.get(0))
        .unwrap()
}

/// A second handle on the server's store, for what the browser would do.
pub fn store(h: &Harness) -> SqliteStore {
    SqliteStore::open(&h.dir.path().join("eid-server.sqlite3")).unwrap()
}

/// A login of `client` whose request `person` approved in the app and
/// whose code is `code`: pushed over HTTP, then bound, given its request
/// (created by the harness's provider API, approved by the phone) and its
/// code straight in the store, as the browser pages do (see `flow.rs` for
/// the same through the pages).
pub async fn approved_login(
    h: &Harness,
    client: &TestClient,
    user_id: &str,
    phone: &mut SoftPhone,
) -> (LoginId, String) {
    let request_uri = push(h, client).await;
    let store = store(h);
    let now = h.now();
    let login = match store
        .bind_oidc_login(
            eid_protocol::sha256(request_uri.as_bytes()),
            &client.id,
            [9; 32],
            now,
        )
        .await
        .unwrap()
    {
        eid_server::store::BindLoginResult::Bound(login) => login,
        other => panic!("not bound: {other:?}"),
    };
    let text = login.params.reference_text.clone();
    let created =
        h.rp.create_request(user_id, RequestKind::Login, &text, None)
            .await
            .unwrap();
    assert!(
        store
            .set_oidc_login_request(login.id, None, created.request_id, created.expires_at_ms)
            .await
            .unwrap()
    );
    let envelope = h.envelope(phone, created.request_id).await;
    let decision = phone.decide(&envelope, Outcome::Approve, None, true);
    phone.submit(&h.endpoint, &decision).await.unwrap();
    let code = URL_SAFE_NO_PAD.encode(eid_protocol::crypto::random_array::<32>());
    assert!(
        store
            .issue_oidc_code(
                login.id,
                created.request_id,
                eid_protocol::sha256(code.as_bytes()),
                h.now() + 60_000,
            )
            .await
            .unwrap()
    );
    (login.id, code)
}

/// A token request for `code` by `client`, with its own authentication.
pub async fn redeem(h: &Harness, client: &TestClient, code: &str, verifier: &str) -> Answer {
    post_form(
        h,
        "/oidc/token",
        &auth_of(h, client),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &client.redirect_uri),
            ("code_verifier", verifier),
        ],
    )
    .await
}

/// Userinfo with a Bearer token.
pub async fn userinfo(h: &Harness, token: Option<&str>, post: bool) -> Answer {
    let url = format!("{}/oidc/userinfo", h.endpoint.base_url);
    let mut req = if post {
        h.endpoint.client.post(url)
    } else {
        h.endpoint.client.get(url)
    };
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.json().await.unwrap_or(serde_json::Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

/// A person with a phone (re-exported for the modules).
pub async fn person(h: &Harness, user_id: &str) -> (IdentityId, SoftPhone) {
    h.person(user_id).await
}
