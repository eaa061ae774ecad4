//! Client authentication at the PAR and token endpoints (see docs/oidc.md):
//! `client_secret_basic` (RFC 6749 section 2.3.1) and `private_key_jwt`
//! (OpenID Connect Core section 9, RFC 7523) with ES256 or RS256.
//!
//! Assertions are verified with the `jsonwebtoken` crate on ring: its
//! signature check, the `alg` pinned to the registered key's type (so
//! neither `none` nor an HMAC with the public key as secret can pass), and
//! `iss`, `sub` and `aud`. Time and replay are checked here against the
//! server's clock (which tests set): `exp` must lie ahead, and at most five
//! minutes, and each `jti` is used once, remembered until the assertion
//! expires.
//!
//! Every failure is 401 `invalid_client` with a short reason; which check
//! failed is not spelled out further, and neither the secret nor the
//! assertion is ever logged.

use std::collections::HashSet;

use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use eid_protocol::Nonce16;
use eid_protocol::wire::ClientJwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::form::{OAuthError, OAuthForm, form_decode};
use super::secret_matches;
use crate::api::AppState;
use crate::store::{OidcClient, StoreError};

/// The only `client_assertion_type` (RFC 7523 section 2.2).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How far ahead an assertion's `exp` may lie: it is a one-time proof, not
/// a credential to keep.
pub const MAX_ASSERTION_LIFETIME_S: u64 = 300;
/// How far the client's clock may be off the server's, either way.
pub const CLOCK_LEEWAY_S: u64 = 10;
/// The longest `jti` accepted.
pub const MAX_JTI_LEN: usize = 256;

/// The challenge sent with a refused Basic authentication.
const BASIC_CHALLENGE: &str = "Basic realm=\"eid\"";

/// Why a client could not be authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthFailure {
    /// Neither Basic nor an assertion was sent.
    Missing,
    /// Both were sent (RFC 6749 section 2.3: one method per request).
    SeveralMethods,
    /// The Basic header is not `base64(urlencoded id ":" urlencoded secret)`.
    MalformedBasic,
    /// No such client, or it has no secret, or the secret is wrong.
    WrongSecret,
    /// `client_assertion_type` is not the JWT bearer type, or the assertion
    /// is missing.
    WrongAssertionType,
    /// No such client, or it has no key.
    NoKey,
    /// Signature, `alg`, `iss`, `sub` or `aud` are wrong, a claim is
    /// missing or malformed, or the header lists `crit` extensions.
    InvalidAssertion,
    /// `exp` has passed, or lies more than five minutes ahead, or `nbf` is
    /// still ahead.
    AssertionTime,
    /// The `jti` was used before.
    Replayed,
}

impl ClientAuthFailure {
    /// The short reason given to the client.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => {
                "client authentication required (client_secret_basic or private_key_jwt)"
            }
            Self::SeveralMethods => "use one client authentication method, not several",
            Self::MalformedBasic => "malformed Basic credentials",
            Self::WrongSecret => "unknown client or wrong secret",
            Self::WrongAssertionType => {
                "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer, with a client_assertion"
            }
            Self::NoKey => "unknown client or no key registered for private_key_jwt",
            Self::InvalidAssertion => "invalid client assertion",
            Self::AssertionTime => {
                "the client assertion has expired, is not yet valid, or lives longer than 5 minutes"
            }
            Self::Replayed => "the client assertion's jti was used before",
        }
    }
}

/// The claims of a client assertion this module reads itself (the library
/// checks `iss`, `sub` and `aud`).
#[derive(serde::Deserialize)]
struct AssertionClaims {
    exp: u64,
    #[serde(default)]
    nbf: Option<u64>,
    jti: String,
    /// Checked again here: one value only (the library accepts an array
    /// that merely contains an allowed value).
    aud: serde_json::Value,
}

/// A verified assertion's `jti` and until when it must be remembered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAssertion {
    /// The digest the store remembers (see [`jti_nonce`]).
    pub nonce: Nonce16,
    /// The assertion's `exp`, in ms, plus the leeway.
    pub keep_until_ms: u64,
}

/// Authenticates the client of an OAuth request (PAR or token). An
/// assertion's `aud` must be `issuer` alone (see [`verify_assertion`]),
/// though RFC 9126 section 2 also lets servers take the endpoints' URLs.
pub(crate) async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    form: &OAuthForm,
    issuer: &str,
) -> Result<OidcClient, OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.get(..6)
                .filter(|scheme| scheme.eq_ignore_ascii_case("basic "))
                .map(|_| &v[6..])
        });
    let assertion_sent = form.has("client_assertion") || form.has("client_assertion_type");
    let result = match (basic, assertion_sent) {
        (Some(_), true) => Err(ClientAuthFailure::SeveralMethods),
        (Some(credentials), false) => by_secret(state, credentials).await?,
        (None, true) => by_assertion(state, form, &[issuer.to_owned()]).await?,
        (None, false) => Err(ClientAuthFailure::Missing),
    };
    result.map_err(|failure| {
        tracing::debug!(reason = failure.reason(), "client authentication refused");
        OAuthError {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: failure.reason().to_owned(),
            www_authenticate: basic.is_some().then_some(BASIC_CHALLENGE),
        }
    })
}

/// Splits Basic credentials into the form-urlencoded client id and secret.
pub fn parse_basic(
    credentials: &str,
) -> Result<(String, zeroize::Zeroizing<String>), ClientAuthFailure> {
    let decoded = zeroize::Zeroizing::new(
        STANDARD
            .decode(credentials.trim())
            .map_err(|_| ClientAuthFailure::MalformedBasic)?,
    );
    let colon = decoded
        .iter()
        .position(|b| *b == b':')
        .ok_or(ClientAuthFailure::MalformedBasic)?;
    let id = form_decode(&decoded[..colon]).ok_or(ClientAuthFailure::MalformedBasic)?;
    let secret = zeroize::Zeroizing::new(
        form_decode(&decoded[colon + 1..]).ok_or(ClientAuthFailure::MalformedBasic)?,
    );
    Ok((id, secret))
}

/// The outcome of one method: the client or why not; a store failure is
/// the outer error (500, not a refusal).
type Outcome = Result<Result<OidcClient, ClientAuthFailure>, StoreError>;

async fn by_secret(state: &AppState, credentials: &str) -> Outcome {
    let (client_id, secret) = match parse_basic(credentials) {
        Ok(parsed) => parsed,
        Err(failure) => return Ok(Err(failure)),
    };
    let client = crate::api::oidc_client_of(state, &client_id).await?;
    // An unknown client still costs one hash and compare, so the answer's
    // time does not tell known client ids from unknown ones.
    let stored = client
        .as_ref()
        .and_then(|c| c.secret_sha256)
        .unwrap_or([0; 32]);
    let matches = secret_matches(&stored, &secret);
    Ok(match client {
        Some(c) if matches && c.secret_sha256.is_some() => Ok(c),
        _ => Err(ClientAuthFailure::WrongSecret),
    })
}

async fn by_assertion(state: &AppState, form: &OAuthForm, audiences: &[String]) -> Outcome {
    let (Some(JWT_BEARER), Some(jwt)) = (
        form.get("client_assertion_type"),
        form.get("client_assertion"),
    ) else {
        return Ok(Err(ClientAuthFailure::WrongAssertionType));
    };
    // The client is named by `client_id` when sent, else by the
    // assertion's (not yet verified) `iss`; the verification below then
    // requires `iss` = `sub` = this client.
    let client_id = match form.get("client_id") {
        Some(id) => id.to_owned(),
        None => match unverified_issuer(jwt) {
            Some(iss) => iss,
            None => return Ok(Err(ClientAuthFailure::InvalidAssertion)),
        },
    };
    let Some(client) = crate::api::oidc_client_of(state, &client_id)
        .await?
        .filter(|c| c.jwk.is_some())
    else {
        return Ok(Err(ClientAuthFailure::NoKey));
    };
    let verified = match verify_assertion(&client, jwt, audiences, state.now_ms()) {
        Ok(v) => v,
        Err(failure) => return Ok(Err(failure)),
    };
    // Recorded only after the signature verified, so that forged
    // assertions cannot use up a client's jti values.
    let fresh = state
        .store
        .use_nonce(verified.nonce, verified.keep_until_ms)
        .await?;
    Ok(if fresh {
        Ok(client)
    } else {
        Err(ClientAuthFailure::Replayed)
    })
}

/// The `iss` of an assertion, read without verifying it (only to find the
/// client whose key then verifies it).
fn unverified_issuer(jwt: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

/// Whether the JWS header names a `crit` member (or cannot be read, which
/// the library then refuses anyway).
fn has_critical_header(jwt: &str) -> bool {
    let Some(header) = jwt.split('.').next() else {
        return true;
    };
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(header) else {
        return true;
    };
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(members)) => members.contains_key("crit"),
        _ => true,
    }
}

/// The key and the one algorithm of a registered JWK (stored in its RFC
/// 7638 form, checked at registration).
fn decoding_key(stored_jwk: &str) -> Option<(DecodingKey, Algorithm)> {
    let jwk: ClientJwk = serde_json::from_str(stored_jwk).ok()?;
    match jwk.kty.as_str() {
        "EC" => Some((
            DecodingKey::from_ec_components(jwk.x.as_deref()?, jwk.y.as_deref()?).ok()?,
            Algorithm::ES256,
        )),
        "RSA" => Some((
            DecodingKey::from_rsa_components(jwk.n.as_deref()?, jwk.e.as_deref()?).ok()?,
            Algorithm::RS256,
        )),
        _ => None,
    }
}

/// Verifies a client assertion against the client's registered key at the
/// server's time `now_ms`; does not record the `jti` (the caller does, in
/// the store).
pub fn verify_assertion(
    client: &OidcClient,
    jwt: &str,
    audiences: &[String],
    now_ms: u64,
) -> Result<VerifiedAssertion, ClientAuthFailure> {
    let (key, alg) = client
        .jwk
        .as_deref()
        .and_then(decoding_key)
        .ok_or(ClientAuthFailure::NoKey)?;
    // RFC 7515 section 4.1.11: a recipient that does not understand every
    // extension `crit` lists must refuse the JWS; this server understands
    // none, and the library would ignore the member.
    if has_critical_header(jwt) {
        return Err(ClientAuthFailure::InvalidAssertion);
    }
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[&client.client_id]);
    validation.sub = Some(client.client_id.clone());
    validation.set_audience(audiences);
    validation.required_spec_claims =
        HashSet::from(["exp", "iss", "sub", "aud"].map(str::to_owned));
    // Against the server's clock, below, not the library's system time.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.leeway = 0;
    let claims = jsonwebtoken::decode::<AssertionClaims>(jwt, &key, &validation)
        .map_err(|_| ClientAuthFailure::InvalidAssertion)?
        .claims;
    if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_LEN {
        return Err(ClientAuthFailure::InvalidAssertion);
    }
    // The issuer alone, as a string or an array of just it: an assertion
    // made for an endpoint URL (or for several audiences) may have been
    // made for another server that names this one's endpoints in its
    // metadata (the audience injection of the 2025 OpenID Foundation
    // advisory; draft-ietf-oauth-rfc7523bis requires the issuer).
    let single = match &claims.aud {
        serde_json::Value::String(aud) => Some(aud.as_str()),
        serde_json::Value::Array(auds) if auds.len() == 1 => auds[0].as_str(),
        _ => None,
    };
    if !single.is_some_and(|aud| audiences.iter().any(|a| a == aud)) {
        return Err(ClientAuthFailure::InvalidAssertion);
    }
    let now_s = now_ms / 1000;
    let expired = claims.exp.saturating_add(CLOCK_LEEWAY_S) <= now_s;
    let too_long = claims.exp > now_s + MAX_ASSERTION_LIFETIME_S + CLOCK_LEEWAY_S;
    let early = claims.nbf.is_some_and(|nbf| nbf > now_s + CLOCK_LEEWAY_S);
    if expired || too_long || early {
        return Err(ClientAuthFailure::AssertionTime);
    }
    Ok(VerifiedAssertion {
        nonce: jti_nonce(&client.client_id, &claims.jti),
        keep_until_ms: (claims.exp + CLOCK_LEEWAY_S).saturating_mul(1000),
    })
}

/// The 16-byte digest under which a client's `jti` is remembered: the
/// first half of SHA-256 over a domain label, the client id's length, the
/// client id and the `jti` (two clients may pick the same `jti`).
pub fn jti_nonce(client_id: &str, jti: &str) -> Nonce16 {
    let mut input = b"eid-oidc-jti\0".to_vec();
    input.extend_from_slice(&(client_id.len() as u32).to_be_bytes());
    input.extend_from_slice(client_id.as_bytes());
    input.extend_from_slice(jti.as_bytes());
    let digest = eid_protocol::sha256(&input);
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    Nonce16(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_urlencoded_id_and_secret() {
        let encoded = STANDARD.encode("eidoc_a%2Bb:s%3Ae+cret");
        let (id, secret) = parse_basic(&encoded).unwrap();
        assert_eq!(id, "eidoc_a+b");
        assert_eq!(secret.as_str(), "s:e cret");
        for bad in ["not base64!", &STANDARD.encode("no colon")] {
            assert_eq!(
                parse_basic(bad).unwrap_err(),
                ClientAuthFailure::MalformedBasic
            );
        }
    }

    #[test]
    fn a_jti_is_remembered_per_client() {
        assert_eq!(jti_nonce("a", "1"), jti_nonce("a", "1"));
        assert_ne!(jti_nonce("a", "1"), jti_nonce("b", "1"));
        assert_ne!(jti_nonce("a", "1"), jti_nonce("a", "2"));
        // The length prefix keeps ("ab", "c") apart from ("a", "bc").
        assert_ne!(jti_nonce("ab", "c"), jti_nonce("a", "bc"));
    }
}
