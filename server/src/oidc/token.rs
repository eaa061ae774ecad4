//! The token endpoint `POST /oidc/token` (`authorization_code` grant only):
//! the client, authenticated, redeems a code once, within 60 s, with the
//! `redirect_uri` of its pushed request and the PKCE verifier (RFC 7636,
//! S256), and gets the ID token and an access token for userinfo.
//!
//! Any mismatch (another client, another `redirect_uri`, a wrong
//! verifier, an identity blocked since the approval) burns the code, so a
//! stolen code gives at most one try; a code presented again after its
//! redemption revokes the access token the first redemption gave (RFC 6749
//! section 4.1.2). Every such case answers the same `invalid_grant`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::response::IntoResponse;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use subtle::ConstantTimeEq;

use super::client_auth::authenticate;
use super::form::{OAuthError, OAuthErrorBody, OAuthForm};
use super::id_token::{self, Evidence, IdTokenContext};
use super::{TOKEN_LIFETIME_MS, handle_sha256, new_handle};
use crate::api::AppState;
use crate::store::{OidcClient, RedeemResult};
use eid_protocol::IdentityId;

/// The shortest PKCE verifier (RFC 7636 section 4.1).
pub const MIN_VERIFIER_LEN: usize = 43;
/// The longest PKCE verifier.
pub const MAX_VERIFIER_LEN: usize = 128;

/// The answer every refused code gets, whatever the reason.
const BAD_CODE: &str = "the code is unknown, expired or used, or was issued for another client, redirect_uri or code_verifier";

/// The parameters of a token request, as a form (for the OpenAPI document;
/// the handler reads the form strictly itself).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct TokenForm {
    /// `authorization_code`, the only grant.
    grant_type: String,
    /// The code from the redirect.
    code: String,
    /// The `redirect_uri` of the pushed request.
    redirect_uri: String,
    /// The PKCE verifier: 43 to 128 unreserved characters.
    #[schema(
        min_length = 43,
        max_length = 128,
        pattern = "^[A-Za-z0-9._~-]{43,128}$"
    )]
    code_verifier: String,
    /// The client's id (optional with Basic authentication).
    client_id: Option<String>,
    /// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer` for
    /// `private_key_jwt`.
    client_assertion_type: Option<String>,
    /// The client assertion (a JWT, ES256 or RS256).
    client_assertion: Option<String>,
}

/// The token answer (OpenID Connect Core section 3.1.3.3).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TokenResponse {
    /// For the userinfo endpoint; lives 300 s.
    access_token: String,
    /// `Bearer`.
    token_type: &'static str,
    /// Seconds the access token lives: 300.
    expires_in: u64,
    /// The ID token: a JWS, ES256, `kid` of the JWKS.
    id_token: String,
    /// The granted scopes.
    scope: String,
}

/// Redeems an authorization code (`grant_type=authorization_code`) for an
/// ID token and an access token. The client authenticates as at PAR.
#[utoipa::path(post, path = "/oidc/token", tag = "oidc",
    security(("client_secret_basic" = []), ()),
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, body = TokenResponse),
        (status = 400, description = "invalid_request, invalid_grant (unknown, expired or reused code, other client, redirect_uri or verifier) or unsupported_grant_type", body = OAuthErrorBody),
        (status = 401, description = "invalid_client", body = OAuthErrorBody,
            headers(("WWW-Authenticate" = String, description = "Basic realm=\"eid\" when Basic authentication was tried"))),
        (status = 413, description = "invalid_request: the form is larger than 16 KiB", body = OAuthErrorBody),
        (status = 500, description = "server_error", body = OAuthErrorBody)))]
pub(crate) async fn token(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    form: OAuthForm,
) -> Result<impl IntoResponse, OAuthError> {
    let issuer = crate::api::oidc_issuer(&state, &uri, &headers)?;
    let client = authenticate(&state, &headers, &form, &issuer).await?;
    match form.get("grant_type") {
        None => return Err(OAuthError::invalid_request("grant_type is required")),
        Some("authorization_code") => {}
        Some(_) => {
            return Err(OAuthError::bad_request(
                "unsupported_grant_type",
                "grant_type must be authorization_code",
            ));
        }
    }
    if form
        .get("client_id")
        .is_some_and(|id| id != client.client_id)
    {
        return Err(OAuthError::invalid_request(
            "client_id is not the authenticated client",
        ));
    }
    let required = |name: &'static str| {
        form.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("{name} is required")))
    };
    let code = required("code")?;
    let redirect_uri = required("redirect_uri")?;
    let verifier = required("code_verifier")?;
    let code_sha256 = handle_sha256(code);
    let Some(login) = state.store.oidc_login_by_code(code_sha256).await? else {
        return Err(OAuthError::invalid_grant(BAD_CODE));
    };
    let request = match (&login.hardware_receipt, login.request_id) {
        (None, Some(id)) => state.store.request(id).await?,
        _ => None,
    };
    let evidence = match (&login.hardware_receipt, &request) {
        (Some(receipt), _) if receipt.receipt.method == login.method.as_str() => {
            Some(Evidence::Hardware(receipt))
        }
        (None, Some(request)) if !login.method.is_hardware() => Some(Evidence::App(request)),
        _ => None,
    };
    let now = state.now_ms();
    let checked = (login.client_id == client.client_id
        && login.params.redirect_uri == redirect_uri
        && pkce_matches(verifier, &login.params.code_challenge))
    .then_some(evidence)
    .flatten()
    // The evidence was made for the client's provider (the login pages do
    // so); checked again so that a code never carries another's decision.
    .filter(|e| e.service_provider_id() == client.service_provider_id);
    // An identity blocked since the approval (a stolen phone, a fraud case)
    // gets no ID token, as it can log in nowhere else either.
    let checked = match checked {
        Some(e) => state
            .store
            .identity(e.identity_id())
            .await?
            .filter(|identity| !identity.blocked)
            .map(|_| e),
        None => None,
    };
    let Some(evidence) = checked else {
        // Burnt: a stolen code gets one try. A code used before is
        // reported as reused by the store, which revokes its access token.
        let burnt = state.store.redeem_oidc_code(code_sha256, None, now).await?;
        tracing::debug!(login = %login.id, ?burnt, "code refused and burnt");
        return Err(OAuthError::invalid_grant(BAD_CODE));
    };
    let access_token = new_handle();
    let access_expires_at_ms = now + TOKEN_LIFETIME_MS;
    let redeemed = state
        .store
        .redeem_oidc_code(
            code_sha256,
            Some((handle_sha256(&access_token), access_expires_at_ms)),
            now,
        )
        .await?;
    let login = match redeemed {
        RedeemResult::Redeemed(login) => login,
        other => {
            tracing::debug!(login = %login.id, result = ?other, "code not redeemed");
            return Err(OAuthError::invalid_grant(BAD_CODE));
        }
    };
    let sub = subject(&state, &client, evidence.identity_id());
    let claims = id_token::claims(
        IdTokenContext {
            issuer: &issuer,
            client_id: &client.client_id,
            sub: &sub,
            nonce: login.params.nonce.as_deref(),
            now_ms: now,
        },
        evidence,
    )
    .map_err(|e| {
        // The store issues codes only for approved requests and completed
        // hardware logins.
        tracing::error!(login = %login.id, error = %e, "a code of a login without approval");
        OAuthError::server_error()
    })?;
    let claims = serde_json::to_value(&claims).map_err(|_| OAuthError::server_error())?;
    let id_token = state.id_token_key.sign_jwt(&claims).map_err(|e| {
        tracing::error!(error = %e, "ID token signing failed");
        OAuthError::server_error()
    })?;
    tracing::info!(login = %login.id, client = %client.client_id, "ID token issued");
    Ok((
        [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::PRAGMA, HeaderValue::from_static("no-cache")),
        ],
        Json(TokenResponse {
            access_token: access_token.to_string(),
            token_type: "Bearer",
            expires_in: TOKEN_LIFETIME_MS / 1000,
            id_token,
            scope: login.params.scope,
        }),
    ))
}

/// The person's pairwise `sub` at the client's sector.
pub(crate) fn subject(state: &AppState, client: &OidcClient, identity_id: IdentityId) -> String {
    state.pairwise_key.subject(&client.sector, identity_id)
}

/// Whether `verifier` is a well-formed PKCE verifier (43 to 128 unreserved
/// characters) whose BASE64URL(SHA-256) is `challenge`, compared in
/// constant time.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    if !(MIN_VERIFIER_LEN..=MAX_VERIFIER_LEN).contains(&verifier.len())
        || !verifier.bytes().all(unreserved)
    {
        return false;
    }
    let computed = URL_SAFE_NO_PAD.encode(eid_protocol::sha256(verifier.as_bytes()));
    computed.as_bytes().ct_eq(challenge.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc7636_example_verifier_matches_its_challenge_only() {
        // RFC 7636 appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches(
            verifier,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"
        ));
        assert!(!pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj",
            challenge
        ));
        // Too short, too long, or with a reserved character: never a match.
        assert!(!pkce_matches("short", challenge));
        assert!(!pkce_matches(&"a".repeat(129), challenge));
        assert!(!pkce_matches(
            "dBjftJeZ4CVP+mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            challenge
        ));
    }
}
