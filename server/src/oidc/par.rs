//! The pushed authorization request (RFC 9126) at `POST /oidc/par`: the
//! client, authenticated, pushes every authorization parameter; each is
//! checked here, and a login is stored under a fresh single-use
//! `request_uri` that starts it in a browser within 60 s.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::IntoResponse;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use super::client_auth::authenticate;
use super::form::{OAuthError, OAuthErrorBody, OAuthForm};
use super::{
    LOGIN_LIFETIME_MS, REQUEST_URI_LIFETIME_MS, REQUEST_URI_PREFIX, handle_sha256, new_handle,
};
use crate::api::AppState;
use crate::store::{AuthParams, LoginId, LoginMethod, OidcClient, OidcLogin};

/// The NSIS level every login with the app gives (two factors: the device
/// key and the PIN).
pub const ACR_SUBSTANTIAL: &str = "https://data.gov.dk/concept/core/nsis/loa/Substantial";
/// The NSIS level below; a client may ask for it and gets Substantial.
pub const ACR_LOW: &str = "https://data.gov.dk/concept/core/nsis/loa/Low";
/// The NSIS level above, reached with a chip (see `super::method`).
pub const ACR_HIGH: &str = "https://data.gov.dk/concept/core/nsis/loa/High";
/// The longest `state` and `nonce`, in bytes.
pub const MAX_STATE_LEN: usize = 512;
/// The longest `login_hint` (a user ID), in bytes.
pub const MAX_LOGIN_HINT_LEN: usize = 64;
/// The longest `ui_locales`, in bytes.
const MAX_UI_LOCALES_LEN: usize = 64;

/// The parameters of a pushed authorization request, as a form (for the
/// OpenAPI document; the handler reads the form strictly itself).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct ParForm {
    /// `code`, the only response type.
    response_type: String,
    /// The authenticated client's id.
    client_id: String,
    /// One of the client's redirect URIs, byte for byte.
    redirect_uri: String,
    /// Space-separated; contains `openid`; a subset of the client's scopes.
    scope: String,
    /// Returned with the code; printable ASCII.
    #[schema(max_length = 512)]
    state: Option<String>,
    /// Put into the ID token; printable ASCII.
    #[schema(max_length = 512)]
    nonce: Option<String>,
    /// BASE64URL(SHA-256(code_verifier)).
    #[schema(min_length = 43, max_length = 43, pattern = "^[A-Za-z0-9_-]{43}$")]
    code_challenge: String,
    /// `S256`, the only method.
    code_challenge_method: String,
    /// The person's user ID, prefilled on the login page.
    #[schema(max_length = 64)]
    login_hint: Option<String>,
    /// Base64url (no padding) of the UTF-8 text the app shows; the rules of
    /// `/v1/rp` requests apply. Default: "Login at `<provider>`" (English) or
    /// "Login hos `<provider>`" (Danish).
    reference_text: Option<String>,
    /// Space-separated NSIS levels: Low and/or Substantial.
    acr_values: Option<String>,
    /// `da` or `en` (a space-separated preference list).
    ui_locales: Option<String>,
    /// `login`, the only value.
    prompt: Option<String>,
    /// `query`, the only mode (anything else is refused).
    response_mode: Option<String>,
    /// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer` for
    /// `private_key_jwt`.
    client_assertion_type: Option<String>,
    /// The client assertion (a JWT, ES256 or RS256).
    client_assertion: Option<String>,
}

/// The answer to a pushed authorization request (RFC 9126 section 2.2).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ParCreated {
    /// `urn:ietf:params:oauth:request_uri:` and a random handle; single use.
    request_uri: String,
    /// Seconds the `request_uri` may start a login: 60.
    expires_in: u64,
}

/// Pushes an authorization request (RFC 9126). The client authenticates
/// (`client_secret_basic` or `private_key_jwt`); every parameter is checked
/// and a `request_uri` for `GET /oidc/authorize` is returned, usable once
/// within 60 s.
#[utoipa::path(post, path = "/oidc/par", tag = "oidc",
    security(("client_secret_basic" = []), ()),
    request_body(content = ParForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 201, body = ParCreated),
        (status = 400, description = "invalid_request, invalid_scope, unsupported_response_type or request_not_supported", body = OAuthErrorBody),
        (status = 401, description = "invalid_client", body = OAuthErrorBody,
            headers(("WWW-Authenticate" = String, description = "Basic realm=\"eid\" when Basic authentication was tried"))),
        (status = 413, description = "invalid_request: the form is larger than 16 KiB", body = OAuthErrorBody),
        (status = 500, description = "server_error", body = OAuthErrorBody)))]
pub(crate) async fn par(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    form: OAuthForm,
) -> Result<impl IntoResponse, OAuthError> {
    let issuer = crate::api::oidc_issuer(&state, &uri, &headers)?;
    let client = authenticate(&state, &headers, &form, &issuer).await?;
    let provider_name = crate::api::provider_name_of(&state, client.service_provider_id)
        .await?
        .ok_or_else(OAuthError::server_error)?;
    let params = check_params(&form, &client, &provider_name)?;
    let now = state.now_ms();
    let request_uri = format!("{REQUEST_URI_PREFIX}{}", new_handle().as_str());
    let login = OidcLogin {
        id: LoginId::random(),
        client_id: client.client_id,
        params,
        created_at_ms: now,
        request_uri_expires_at_ms: now + REQUEST_URI_LIFETIME_MS,
        expires_at_ms: now + LOGIN_LIFETIME_MS,
        browser_sha256: None,
        request_id: None,
        request_expires_at_ms: None,
        code_expires_at_ms: None,
        redeemed_at_ms: None,
        access_expires_at_ms: None,
        revoked: false,
        method: LoginMethod::App,
        hardware_identity_id: None,
        first_factor: None,
        hardware_receipt: None,
    };
    let login_id = login.id;
    state
        .store
        .create_oidc_login(login, handle_sha256(&request_uri))
        .await?;
    tracing::debug!(login = %login_id, "pushed authorization request stored");
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(ParCreated {
            request_uri,
            expires_in: REQUEST_URI_LIFETIME_MS / 1000,
        }),
    ))
}

/// Checks every authorization parameter against the rules and the client.
pub fn check_params(
    form: &OAuthForm,
    client: &OidcClient,
    provider_name: &str,
) -> Result<AuthParams, OAuthError> {
    let bad = |m: &str| OAuthError::invalid_request(m);
    if form.has("request") {
        return Err(OAuthError::bad_request(
            "request_not_supported",
            "request objects are not supported; push the parameters themselves",
        ));
    }
    if form.has("request_uri") {
        return Err(bad("request_uri must not be pushed (RFC 9126 section 2.1)"));
    }
    match form.get("response_type") {
        None => return Err(bad("response_type is required")),
        Some("code") => {}
        Some(_) => {
            return Err(OAuthError::bad_request(
                "unsupported_response_type",
                "response_type must be code",
            ));
        }
    }
    // The code goes back in the query, the only mode: a client that asked
    // for a post or a fragment (to keep the code out of URLs, logs and
    // Referer) is told, not silently answered in the query.
    match form.get("response_mode") {
        None | Some("query") => {}
        Some(_) => return Err(bad("response_mode: only query is supported")),
    }
    match form.get("client_id") {
        None => return Err(bad("client_id is required")),
        Some(id) if id == client.client_id => {}
        Some(_) => return Err(bad("client_id is not the authenticated client")),
    }
    let redirect_uri = form
        .get("redirect_uri")
        .ok_or_else(|| bad("redirect_uri is required"))?;
    if !client.redirect_uris.iter().any(|r| r == redirect_uri) {
        return Err(bad(
            "redirect_uri is not one of the client's registered redirect URIs (compared byte for byte)",
        ));
    }
    let scope = check_scope(form.get("scope"), &client.scopes)?;
    let state = printable(form.get("state"), "state", MAX_STATE_LEN)?;
    let nonce = printable(form.get("nonce"), "nonce", MAX_STATE_LEN)?;
    let code_challenge = form
        .get("code_challenge")
        .ok_or_else(|| bad("code_challenge is required (PKCE)"))?;
    if code_challenge.len() != 43
        || !code_challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(bad(
            "code_challenge must be 43 base64url characters: BASE64URL(SHA-256(code_verifier))",
        ));
    }
    match form.get("code_challenge_method") {
        Some("S256") => {}
        None => return Err(bad("code_challenge_method is required and must be S256")),
        Some(_) => return Err(bad("code_challenge_method must be S256 (plain is refused)")),
    }
    let login_hint = match form.get("login_hint") {
        Some(hint) if hint.len() > MAX_LOGIN_HINT_LEN || hint.chars().any(char::is_control) => {
            return Err(OAuthError::invalid_request(format!(
                "login_hint must be a user ID of at most {MAX_LOGIN_HINT_LEN} bytes"
            )));
        }
        hint => hint.map(str::to_owned),
    };
    let lang = check_ui_locales(form.get("ui_locales"))?;
    let reference_text = match form.get("reference_text") {
        Some(encoded) => {
            let bytes = URL_SAFE_NO_PAD
                .decode(encoded)
                .map_err(|_| bad("reference_text must be base64url without padding"))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| bad("reference_text must be base64url of UTF-8"))?;
            crate::cache::normalize_reference_text(&text)
                .map_err(|e| OAuthError::invalid_request(format!("reference_text: {e}")))?
        }
        None => default_reference_text(provider_name, lang.as_deref()),
    };
    check_acr_values(form.get("acr_values"))?;
    match form.get("prompt") {
        None | Some("login") => {}
        Some(_) => return Err(bad("prompt: only login is supported")),
    }
    Ok(AuthParams {
        redirect_uri: redirect_uri.to_owned(),
        scope,
        state,
        nonce,
        code_challenge: code_challenge.to_owned(),
        reference_text,
        login_hint,
        // The level the login must reach: the lowest named (any of them
        // satisfies the client), at least Substantial; the page offers the
        // methods of that level (`super::method`).
        acr: super::method::Level::requested(form.get("acr_values"))
            .acr()
            .to_owned(),
        lang,
    })
}

/// The reference text when the client sends none: the provider's name in
/// a line the app's text rules accept (the Danish "Log på hos" reads like
/// one of the app's own lines and is refused; "Login hos" is not). A name
/// the rules would refuse in this line (they were checked alone, at
/// registration) falls back to a plain "Login".
pub fn default_reference_text(provider_name: &str, lang: Option<&str>) -> String {
    let text = match lang {
        Some("da") => format!("Login hos {provider_name}"),
        _ => format!("Login at {provider_name}"),
    };
    crate::cache::normalize_reference_text(&text).unwrap_or_else(|_| "Login".to_owned())
}

fn check_scope(scope: Option<&str>, allowed: &[String]) -> Result<String, OAuthError> {
    let invalid = |m: &str| OAuthError::bad_request("invalid_scope", m);
    let scope = scope.ok_or_else(|| invalid("scope is required and must contain openid"))?;
    let tokens: Vec<&str> = scope.split(' ').collect();
    if tokens.iter().any(|t| t.is_empty()) {
        return Err(invalid("scope: tokens separated by single spaces"));
    }
    for (i, token) in tokens.iter().enumerate() {
        if tokens[..i].contains(token) {
            return Err(invalid("scope: a scope is named twice"));
        }
        if !allowed.iter().any(|a| a == token) {
            return Err(invalid("scope: a scope the client is not registered for"));
        }
    }
    if !tokens.contains(&"openid") {
        return Err(invalid("scope must contain openid"));
    }
    Ok(scope.to_owned())
}

/// An optional `state` or `nonce`: printable ASCII (RFC 6749 VSCHAR), at
/// most `max` bytes.
fn printable(value: Option<&str>, name: &str, max: usize) -> Result<Option<String>, OAuthError> {
    match value {
        Some(v) if v.len() > max || !v.bytes().all(|b| (0x20..=0x7e).contains(&b)) => {
            Err(OAuthError::invalid_request(format!(
                "{name} must be printable ASCII of at most {max} bytes"
            )))
        }
        v => Ok(v.map(str::to_owned)),
    }
}

/// The page's language: the first of `da` and `en` in the preference list
/// (a region such as `da-DK` counts as its language); other languages are
/// skipped (OpenID Connect Core 3.1.2.1: not an error).
fn check_ui_locales(value: Option<&str>) -> Result<Option<String>, OAuthError> {
    let Some(value) = value else { return Ok(None) };
    let tag_syntax = |t: &str| {
        !t.is_empty() && t.len() <= 35 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if value.len() > MAX_UI_LOCALES_LEN || !value.split(' ').all(tag_syntax) {
        return Err(OAuthError::invalid_request(
            "ui_locales must be space-separated language tags (da or en are used)",
        ));
    }
    Ok(value.split(' ').find_map(|tag| {
        let language = tag
            .split('-')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        matches!(language.as_str(), "da" | "en").then_some(language)
    }))
}

/// `acr_values`: the NSIS levels Low, Substantial (the app and the code
/// devices reach it) and High (a chip reaches it), nothing else.
fn check_acr_values(value: Option<&str>) -> Result<(), OAuthError> {
    let Some(value) = value else { return Ok(()) };
    if value
        .split(' ')
        .all(|v| v == ACR_SUBSTANTIAL || v == ACR_LOW || v == ACR_HIGH)
    {
        Ok(())
    } else {
        Err(OAuthError::invalid_request(format!(
            "acr_values: only {ACR_LOW}, {ACR_SUBSTANTIAL} and {ACR_HIGH} can be given"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_reference_text_passes_the_app_text_rules_in_both_languages() {
        assert_eq!(
            default_reference_text("Nordisk Bank A/S", None),
            "Login at Nordisk Bank A/S"
        );
        assert_eq!(
            default_reference_text("Nordisk Bank A/S", Some("en")),
            "Login at Nordisk Bank A/S"
        );
        assert_eq!(
            default_reference_text("Nordisk Bank A/S", Some("da")),
            "Login hos Nordisk Bank A/S"
        );
        // The wording first considered is refused by the rules.
        assert!(eid_protocol::text::normalize_reference_text("Log på hos Nordisk Bank").is_err());
        for text in [
            default_reference_text("Sparekassen Vest", Some("da")),
            default_reference_text("Sparekassen Vest", Some("en")),
        ] {
            assert_eq!(eid_protocol::text::validate_reference_text(&text), Ok(()));
        }
    }

    #[test]
    fn ui_locales_pick_the_first_supported_language() {
        assert_eq!(check_ui_locales(None).unwrap(), None);
        assert_eq!(check_ui_locales(Some("da")).unwrap().as_deref(), Some("da"));
        assert_eq!(
            check_ui_locales(Some("fr-CA en da")).unwrap().as_deref(),
            Some("en")
        );
        assert_eq!(
            check_ui_locales(Some("DA-dk")).unwrap().as_deref(),
            Some("da")
        );
        assert_eq!(check_ui_locales(Some("fr")).unwrap(), None);
        assert!(check_ui_locales(Some("da  en")).is_err());
        assert!(check_ui_locales(Some("d<a")).is_err());
    }

    #[test]
    fn acr_values_take_the_three_nsis_levels_and_nothing_else() {
        assert!(check_acr_values(Some(ACR_SUBSTANTIAL)).is_ok());
        assert!(check_acr_values(Some(&format!("{ACR_LOW} {ACR_SUBSTANTIAL}"))).is_ok());
        assert!(check_acr_values(Some("https://data.gov.dk/concept/core/nsis/loa/High")).is_ok());
        assert!(
            check_acr_values(Some("https://data.gov.dk/concept/core/nsis/loa/Highest")).is_err()
        );
        assert!(check_acr_values(Some("")).is_err());
    }

    #[test]
    fn scopes_must_contain_openid_and_stay_within_the_clients() {
        let allowed = ["openid".to_owned(), "profile".to_owned()];
        assert_eq!(check_scope(Some("openid"), &allowed).unwrap(), "openid");
        assert_eq!(
            check_scope(Some("profile openid"), &allowed).unwrap(),
            "profile openid"
        );
        for bad in [
            None,
            Some("profile"),
            Some("openid email"),
            Some("openid  profile"),
            Some("openid openid"),
        ] {
            assert_eq!(
                check_scope(bad, &allowed).unwrap_err().error,
                "invalid_scope"
            );
        }
    }
}
