//! The userinfo endpoint `GET|POST /oidc/userinfo`: with the access token
//! of a redeemed code (`Authorization: Bearer`), the person's pairwise
//! `sub`, the one claim there is. A token that is unknown, past its 300 s
//! or revoked (its code was presented again, or the identity was blocked
//! since) gets 401 with
//! `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750 section 3).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;

use super::form::{OAuthError, OAuthErrorBody};
use super::handle_sha256;
use crate::api::AppState;

/// The userinfo answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct UserInfo {
    /// The same pairwise subject as in the ID token.
    sub: String,
}

fn invalid_token(description: &str) -> OAuthError {
    OAuthError {
        status: StatusCode::UNAUTHORIZED,
        error: "invalid_token",
        description: description.to_owned(),
        www_authenticate: Some("Bearer error=\"invalid_token\""),
    }
}

/// The person's pairwise `sub`, for the access token from the token
/// endpoint.
#[utoipa::path(get, path = "/oidc/userinfo", tag = "oidc",
    security(("access_token" = [])),
    responses(
        (status = 200, body = UserInfo),
        (status = 401, description = "invalid_token: missing, unknown, expired or revoked access token", body = OAuthErrorBody,
            headers(("WWW-Authenticate" = String, description = "Bearer error=\"invalid_token\""))),
        (status = 500, description = "server_error", body = OAuthErrorBody)))]
pub(crate) async fn userinfo_get(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, OAuthError> {
    userinfo(state, headers).await
}

/// The same as `GET /oidc/userinfo` (OpenID Connect Core section 5.3.1
/// allows both); the token is read from the `Authorization` header only.
#[utoipa::path(post, path = "/oidc/userinfo", tag = "oidc",
    security(("access_token" = [])),
    responses(
        (status = 200, body = UserInfo),
        (status = 401, description = "invalid_token: missing, unknown, expired or revoked access token", body = OAuthErrorBody,
            headers(("WWW-Authenticate" = String, description = "Bearer error=\"invalid_token\""))),
        (status = 500, description = "server_error", body = OAuthErrorBody)))]
pub(crate) async fn userinfo_post(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, OAuthError> {
    userinfo(state, headers).await
}

async fn userinfo(state: AppState, headers: HeaderMap) -> Result<impl IntoResponse, OAuthError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.get(..7)
                .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
                .map(|_| v[7..].trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or_else(|| invalid_token("an access token is required: Authorization: Bearer"))?;
    let now = state.now_ms();
    let login = state
        .store
        .oidc_login_by_access_token(handle_sha256(token))
        .await?
        .filter(|l| !l.revoked && l.access_expires_at_ms.is_some_and(|exp| now < exp))
        .ok_or_else(|| invalid_token("the access token is unknown, expired or revoked"))?;
    let client = crate::api::oidc_client_of(&state, &login.client_id).await?;
    // A hardware login's receipt names the identity; an app login's request does.
    let identity_id = match (&login.hardware_receipt, login.request_id) {
        (Some(receipt), _) => Some(receipt.receipt.identity_id),
        (None, Some(id)) => state
            .store
            .request(id)
            .await?
            .map(|r| r.envelope.identity_id),
        (None, None) => None,
    };
    let (Some(client), Some(identity_id)) = (client, identity_id) else {
        tracing::error!(login = %login.id, "an access token without its client or evidence");
        return Err(OAuthError::server_error());
    };
    // An identity blocked since the login: its token is as good as revoked.
    let usable = state
        .store
        .identity(identity_id)
        .await?
        .is_some_and(|identity| !identity.blocked);
    if !usable {
        return Err(invalid_token(
            "the access token is unknown, expired or revoked",
        ));
    }
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(UserInfo {
            sub: super::token::subject(&state, &client, identity_id),
        }),
    ))
}
