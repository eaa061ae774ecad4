//! The OpenID Connect login for `eid-loadgen --flow oidc`, done the way a
//! service provider's server, a browser and the phone do it (docs/oidc.md):
//! PAR (client_secret_basic, PKCE S256) → authorize → the login page (user
//! ID, the binding code read from the page) → the phone pulls and approves
//! with that code → continue → the code redeemed at the token endpoint → the
//! ID token's signature (ES256, key from the JWKS), `iss`, `aud`, `nonce`,
//! `exp` and `acr` checked. Nothing is skipped that a real login does.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use eid_api_client::{AdminClient, Answer, Call, Endpoint, SoftPhone, Transport};
use eid_protocol::wire::RegisterOidcClientRequest;
use eid_protocol::{Outcome, ServiceProviderId};

/// The steps of one OIDC login, as reported.
pub(crate) const STEPS: [&str; 7] = [
    "par",
    "authorize",
    "user_id",
    "phone_pull",
    "phone_approve",
    "continue",
    "token",
];

/// The redirect URI the client registers; the load generator reads the
/// redirect's `Location` and never follows it.
const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

/// What every login of the run shares: the client and the provider's keys.
pub(crate) struct Client {
    client_id: String,
    /// `Basic base64(client_id:secret)` (client_secret_basic), sensitive,
    /// as reqwest's `basic_auth` builds it.
    basic: reqwest::header::HeaderValue,
    issuer: String,
    id_token_key: ring::signature::UnparsedPublicKey<Vec<u8>>,
    kid: String,
}

/// Registers a client for `sp` (client_secret_basic) and reads discovery and
/// the JWKS, as a service provider's library does once.
pub(crate) async fn register(
    admin: &AdminClient,
    endpoint: &Endpoint,
    sp: ServiceProviderId,
) -> anyhow::Result<Client> {
    let registered = admin
        .register_oidc_client(&RegisterOidcClientRequest {
            service_provider_id: sp,
            redirect_uris: vec![REDIRECT_URI.into()],
            client_secret_basic: true,
            jwk: None,
            scopes: vec!["openid".into()],
        })
        .await?;
    let secret = registered
        .client_secret
        .context("the client was registered without a secret")?;
    let discovery: serde_json::Value = endpoint
        .client
        .get(format!(
            "{}/.well-known/openid-configuration",
            endpoint.base_url
        ))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let issuer = discovery["issuer"]
        .as_str()
        .context("no issuer")?
        .to_owned();
    let jwks: serde_json::Value = endpoint
        .client
        .get(discovery["jwks_uri"].as_str().context("no jwks_uri")?)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let key = &jwks["keys"][0];
    ensure!(
        key["kty"] == "EC" && key["crv"] == "P-256",
        "JWKS key is not P-256"
    );
    let coordinate = |name: &str| -> anyhow::Result<Vec<u8>> {
        Ok(URL_SAFE_NO_PAD.decode(key[name].as_str().context("no coordinate")?)?)
    };
    let mut point = vec![4u8];
    point.extend(coordinate("x")?);
    point.extend(coordinate("y")?);
    let mut basic = reqwest::header::HeaderValue::from_str(&format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", registered.client_id, secret))
    ))?;
    basic.set_sensitive(true);
    Ok(Client {
        client_id: registered.client_id,
        basic,
        issuer,
        id_token_key: ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            point,
        ),
        kid: key["kid"].as_str().context("no kid")?.to_owned(),
    })
}

fn random_b64<const N: usize>() -> String {
    URL_SAFE_NO_PAD.encode(eid_protocol::crypto::random_array::<N>())
}

/// The value of `name` in a `Location`'s query.
fn query_value(location: &str, name: &str) -> Option<String> {
    let url = url::Url::parse(location).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The text of the element `id="{id}"` (the first tag carrying it), or the
/// `value` of an input with `name="{id}"`.
fn element_text(html: &str, id: &str) -> Option<String> {
    let start = html.find(&format!("id=\"{id}\""))?;
    let rest = &html[start..];
    let text = &rest[rest.find('>')? + 1..];
    Some(text[..text.find('<')?].to_owned())
}

fn input_value(html: &str, name: &str) -> Option<String> {
    let start = html.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &html[start + name.len() + 15..];
    Some(rest[..rest.find('"')?].to_owned())
}

fn location(answer: &Answer) -> anyhow::Result<String> {
    ensure!(
        answer.status == 303,
        "expected a redirect, got {}",
        answer.status
    );
    Ok(answer
        .header("location")
        .context("redirect without Location")?
        .to_owned())
}

/// The answer, if 2xx (as reqwest's `error_for_status`).
fn success(answer: Answer, what: &str) -> anyhow::Result<Answer> {
    ensure!(answer.is_success(), "{what}: HTTP {}", answer.status);
    Ok(answer)
}

/// A form body, encoded as reqwest's `form` encodes it.
fn form(pairs: &[(&str, &str)]) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        form.append_pair(name, value);
    }
    form.finish()
}

/// One full OIDC login for `user_id` with `phone`; records each step. The
/// service provider's, the browser's and the phone's calls all go through
/// `http`, with the same requests either transport sends (forms, the
/// client's Basic credentials, the login cookie, `Origin`); `base` is the
/// server's `https://host:port`, the browser's origin.
pub(crate) async fn one_login(
    http: &impl Transport,
    base: &str,
    client: &Client,
    phone: &mut SoftPhone,
    user_id: &str,
    steps: &mut [crate::Samples],
) -> anyhow::Result<Duration> {
    let mut marks = Vec::with_capacity(STEPS.len() + 1);
    marks.push(Instant::now());

    // The service provider pushes the request.
    let verifier = random_b64::<32>();
    let challenge = URL_SAFE_NO_PAD.encode(eid_protocol::sha256(verifier.as_bytes()));
    let (state, nonce) = (random_b64::<16>(), random_b64::<16>());
    let body = form(&[
        ("response_type", "code"),
        ("client_id", &client.client_id),
        ("redirect_uri", REDIRECT_URI),
        ("scope", "openid"),
        ("state", &state),
        ("nonce", &nonce),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
        ("login_hint", user_id),
    ]);
    let pushed = http
        .call(Call::form("/oidc/par", body).authorized(&client.basic))
        .await?;
    let pushed: serde_json::Value = serde_json::from_slice(&success(pushed, "PAR")?.body)?;
    let request_uri = pushed["request_uri"].as_str().context("no request_uri")?;
    marks.push(Instant::now());

    // The browser arrives and gets its cookie and the page.
    let authorize = format!(
        "/oidc/authorize?{}",
        form(&[
            ("client_id", &client.client_id),
            ("request_uri", request_uri)
        ])
    );
    let arrived = http.call(Call::get(&authorize)).await?;
    let page_path = location(&arrived)?;
    let cookie = arrived
        .header("set-cookie")
        .context("no login cookie")?
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned();
    let with_cookie = [("cookie", cookie.as_str())];
    let page = http
        .call(Call::get(&page_path).with_headers(&with_cookie))
        .await?;
    let page = String::from_utf8(success(page, "login page")?.body.to_vec())?;
    let csrf = input_value(&page, "csrf").context("no csrf field")?;
    marks.push(Instant::now());

    // The person types the user ID and reads the code.
    let user_id_path = format!("{page_path}/user-id");
    let posted = http
        .call(
            Call::form(
                &user_id_path,
                form(&[("csrf", csrf.as_str()), ("user_id", user_id)]),
            )
            .with_headers(&[("cookie", cookie.as_str()), ("origin", base)]),
        )
        .await?;
    location(&posted).context("user ID form")?;
    let page = http
        .call(Call::get(&page_path).with_headers(&with_cookie))
        .await?;
    let page = String::from_utf8(success(page, "login page")?.body.to_vec())?;
    let code: String = element_text(&page, "binding-code")
        .context("no binding code on the page")?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    marks.push(Instant::now());

    // The phone pulls, shows the request, and the person approves with the code.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let pulled = SoftPhone::pull(http, &[&*phone], now_ms).await?;
    let envelope = pulled.accounts[0]
        .requests
        .iter()
        .find(|r| r.envelope.binding_required)
        .context("the login's request is missing from the pull")?
        .envelope
        .clone();
    marks.push(Instant::now());
    let decision = phone.decide(&envelope, Outcome::Approve, Some(code), true);
    phone.submit(http, &decision).await?;
    marks.push(Instant::now());

    // The browser goes back to the service provider with the code.
    let continue_path = format!("{page_path}/continue");
    let back = http
        .call(Call::get(&continue_path).with_headers(&with_cookie))
        .await?;
    let back = location(&back).context("continue")?;
    ensure!(
        query_value(&back, "state").as_deref() == Some(state.as_str()),
        "state changed"
    );
    let code = query_value(&back, "code").context("no code in the redirect")?;
    marks.push(Instant::now());

    // The service provider redeems it and checks the ID token.
    let body = form(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", &verifier),
    ]);
    let tokens = http
        .call(Call::form("/oidc/token", body).authorized(&client.basic))
        .await?;
    let tokens: serde_json::Value = serde_json::from_slice(&success(tokens, "token")?.body)?;
    let id_token = tokens["id_token"].as_str().context("no id_token")?;
    verify_id_token(client, id_token, &nonce)?;
    marks.push(Instant::now());

    for (h, pair) in steps.iter_mut().zip(marks.windows(2)) {
        h.record((pair[1] - pair[0]).as_micros() as u64);
    }
    Ok(marks[marks.len() - 1] - marks[0])
}

/// Checks an ID token as a relying party must: signature with the JWKS key
/// of its `kid`, `iss`, `aud`, `nonce`, `exp`.
fn verify_id_token(client: &Client, token: &str, nonce: &str) -> anyhow::Result<()> {
    let (signed, signature) = token.rsplit_once('.').context("not a JWS")?;
    let (header, claims) = signed.split_once('.').context("not a JWS")?;
    let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header)?)?;
    ensure!(header["alg"] == "ES256", "alg is not ES256");
    ensure!(header["kid"] == client.kid.as_str(), "unknown kid");
    client
        .id_token_key
        .verify(signed.as_bytes(), &URL_SAFE_NO_PAD.decode(signature)?)
        .map_err(|_| anyhow::anyhow!("the ID token's signature does not verify"))?;
    let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims)?)?;
    ensure!(claims["iss"] == client.issuer.as_str(), "wrong iss");
    ensure!(claims["aud"] == client.client_id.as_str(), "wrong aud");
    ensure!(claims["nonce"] == nonce, "wrong nonce");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    if claims["exp"].as_u64().is_none_or(|exp| exp <= now) {
        bail!("expired ID token");
    }
    ensure!(claims["sub"].is_string(), "no sub");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_readers_find_the_code_and_the_csrf_field() {
        let page = r#"<input type="hidden" name="csrf" value="abc123"><p class="code"><span id="binding-code">ABCD EFGH</span></p>"#;
        assert_eq!(input_value(page, "csrf").as_deref(), Some("abc123"));
        assert_eq!(
            element_text(page, "binding-code").as_deref(),
            Some("ABCD EFGH")
        );
        assert_eq!(element_text(page, "missing"), None);
    }

    #[test]
    fn a_redirect_s_query_values_are_read_decoded() {
        let l = "http://127.0.0.1:9/callback?code=a%2Bb&state=s";
        assert_eq!(query_value(l, "code").as_deref(), Some("a+b"));
        assert_eq!(query_value(l, "iss"), None);
    }
}
