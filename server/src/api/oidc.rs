//! OpenID Connect endpoints (see docs/oidc.md): the discovery document and
//! the JWKS with the ID-token signing key. The PAR, token and userinfo
//! endpoints it names are in `crate::oidc`; the authorization endpoint and
//! the login page are the browser's (`web`).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::response::IntoResponse;
use eid_protocol::wire::ErrorBody;
use serde::Serialize;

use super::AppState;
use crate::error::{ApiError, ApiResult};
use crate::oidc::{PublicJwk, is_issuer};

/// The discovery document's path (OpenID Connect Discovery 1.0, section 4).
pub(crate) const PATH_DISCOVERY: &str = "/.well-known/openid-configuration";
/// The JWKS path.
pub(crate) const PATH_JWKS: &str = "/oidc/jwks";
/// The pushed authorization request endpoint (RFC 9126).
pub(crate) const PATH_PAR: &str = "/oidc/par";
/// The authorization endpoint.
const PATH_AUTHORIZE: &str = "/oidc/authorize";
/// The token endpoint.
pub(crate) const PATH_TOKEN: &str = "/oidc/token";
/// The userinfo endpoint.
pub(crate) const PATH_USERINFO: &str = "/oidc/userinfo";
/// The NSIS assurance level of a login with the app (two factors: the
/// device key and the PIN).
pub(crate) const ACR_NSIS_SUBSTANTIAL: &str =
    "https://data.gov.dk/concept/core/nsis/loa/Substantial";

/// How long a client may cache the two documents. The signing key changes
/// only by hand; a client that meets an unknown `kid` fetches again.
const CACHE_CONTROL: &str = "public, max-age=300";

/// The provider's metadata (OpenID Connect Discovery 1.0 and RFC 8414).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ProviderMetadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: String,
    jwks_uri: String,
    pushed_authorization_request_endpoint: String,
    require_pushed_authorization_requests: bool,
    response_types_supported: Vec<&'static str>,
    response_modes_supported: Vec<&'static str>,
    grant_types_supported: Vec<&'static str>,
    subject_types_supported: Vec<&'static str>,
    id_token_signing_alg_values_supported: Vec<&'static str>,
    token_endpoint_auth_methods_supported: Vec<&'static str>,
    token_endpoint_auth_signing_alg_values_supported: Vec<&'static str>,
    code_challenge_methods_supported: Vec<&'static str>,
    scopes_supported: Vec<&'static str>,
    claims_supported: Vec<&'static str>,
    acr_values_supported: Vec<&'static str>,
}

/// The public keys ID tokens are signed with (RFC 7517).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct JwkSet {
    keys: Vec<PublicJwk>,
}

/// The issuer: the configured one, else `https://` and the host this
/// request came by (development; see `Config::oidc_issuer`).
pub(crate) fn issuer(state: &AppState, uri: &Uri, headers: &HeaderMap) -> ApiResult<String> {
    if let Some(configured) = &state.config.oidc_issuer {
        return Ok(configured.clone());
    }
    let authority = match uri.authority() {
        Some(a) => a.as_str().to_owned(),
        None => headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
    };
    issuer_of_host(&authority)
        .ok_or_else(|| ApiError::malformed("no usable Host to name the issuer by"))
}

/// The issuer named by a request's host (`host` or `host:port`), normalized
/// by the URL parser (lower case, no default port), so one server name
/// gives one issuer however the client wrote it. Anything else a URL
/// authority may hold (user info before `@`, which the parser would drop to
/// name the host after it) is refused, as is a path, query or fragment.
fn issuer_of_host(authority: &str) -> Option<String> {
    if authority.is_empty() || authority.contains(['@', '/', '?', '#', '\\']) {
        return None;
    }
    url::Url::parse(&format!("https://{authority}"))
        .ok()
        .map(|u| u.origin().ascii_serialization())
        .filter(|i| is_issuer(i))
}

#[cfg(test)]
mod tests {
    use super::issuer_of_host;

    #[test]
    fn a_host_names_its_issuer_and_user_info_or_a_path_names_none() {
        assert_eq!(
            issuer_of_host("EID.example:443").as_deref(),
            Some("https://eid.example")
        );
        assert_eq!(
            issuer_of_host("127.0.0.1:8443").as_deref(),
            Some("https://127.0.0.1:8443")
        );
        for bad in [
            "",
            "evil.example:443@eid.example",
            "evil.example@eid.example",
            "eid.example/x",
            "eid.example?x",
            "eid.example#x",
            "eid.example\\x",
        ] {
            assert_eq!(issuer_of_host(bad), None, "{bad}");
        }
    }
}

fn cached<T: Serialize>(body: T) -> impl IntoResponse {
    (
        [(
            header::CACHE_CONTROL,
            HeaderValue::from_static(CACHE_CONTROL),
        )],
        Json(body),
    )
}

/// The OpenID Connect discovery document. The issuer is `oidc_issuer`
/// from the configuration, else `https://` and the request's host.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "oidc",
    responses((status = 200, body = ProviderMetadata),
        (status = 400, description = "malformed_request: no oidc_issuer is configured and the Host is unusable", body = ErrorBody)))]
pub(crate) async fn discovery(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<impl IntoResponse> {
    let issuer = issuer(&state, &uri, &headers)?;
    let at = |path: &str| format!("{issuer}{path}");
    Ok(cached(ProviderMetadata {
        authorization_endpoint: at(PATH_AUTHORIZE),
        token_endpoint: at(PATH_TOKEN),
        userinfo_endpoint: at(PATH_USERINFO),
        jwks_uri: at(PATH_JWKS),
        pushed_authorization_request_endpoint: at(PATH_PAR),
        issuer,
        require_pushed_authorization_requests: true,
        response_types_supported: vec!["code"],
        response_modes_supported: vec!["query"],
        grant_types_supported: vec!["authorization_code"],
        subject_types_supported: vec!["pairwise"],
        id_token_signing_alg_values_supported: vec!["ES256"],
        token_endpoint_auth_methods_supported: vec!["client_secret_basic", "private_key_jwt"],
        token_endpoint_auth_signing_alg_values_supported: vec!["ES256", "RS256"],
        code_challenge_methods_supported: vec!["S256"],
        scopes_supported: vec!["openid"],
        claims_supported: vec![
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
            "eid_call_context",
            "eid_call_verdict",
        ],
        acr_values_supported: vec![ACR_NSIS_SUBSTANTIAL, crate::oidc::par::ACR_HIGH],
    }))
}

/// The JWKS: the key ID tokens are signed with (ES256, `kid` = its RFC 7638
/// thumbprint) first, then, during a rotation, the next key and the
/// previous one.
#[utoipa::path(get, path = "/oidc/jwks", tag = "oidc",
    responses((status = 200, body = JwkSet)))]
pub(crate) async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    cached(JwkSet {
        keys: state.id_token_key.published(),
    })
}
