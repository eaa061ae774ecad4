//! The hosted login page of an OpenID Connect login (see docs/oidc.md, "The
//! login page"): the browser arrives from the service provider with a
//! `request_uri`, the person types their user ID (and nothing else: no PIN
//! on the web), the page shows the channel-binding code and its QR while the
//! person approves in the app, and the browser goes back to the service
//! provider with a code, or with `access_denied`.
//!
//! An unknown or blocked user ID is answered like a known one: the page
//! shows a code that no app will ever ask for, until the time runs out, so
//! the page tells nobody whether a user ID exists. The code shown is a
//! rotating one (`eid_protocol::binding`); the page shows a new one every
//! [`SHOWN_STEPS`] seconds, each still accepted for 20 s after it changed.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use eid_protocol::binding::{BindingSecret, StoredBinding};
use eid_protocol::wire::{ErrorBody, ErrorCode, RequestStatus};
use eid_protocol::{RequestId, RequestKind};
use serde::Serialize;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::texts::{Lang, Words};
use super::{cookie, qr};
use crate::api::AppState;
use crate::api::rp::{Created, create_for_provider};
use crate::oidc::method::LoginMethod;
use crate::oidc::{
    CODE_LIFETIME_MS, LOGIN_LIFETIME_MS, REQUEST_URI_PREFIX, handle_sha256, new_handle,
};
use crate::store::{BindLoginResult, LoginId, OidcLogin, StoreError};

/// The authorization endpoint (only with a pushed request, RFC 9126).
pub(crate) const PATH_AUTHORIZE: &str = "/oidc/authorize";
/// The prefix of the cookie that binds a login to its browser: one cookie
/// per login, named with the login's id. `__Host-` (so `Path=/`, no
/// `Domain`): a `__Secure-` cookie can be planted by any host under the same
/// registrable domain, and a scammer's planted login cookie would make the
/// person's browser and the scammer's the same browser to this server.
const LOGIN_COOKIE: &str = "__Host-eid_login_";
/// The cookie holding the user ID, only when the person asked for it.
const USER_ID_COOKIE: &str = "__Secure-eid_user_id";
/// The cookie holding a language the person picked with the switch link.
const LANG_COOKIE: &str = "eid_lang";
/// How long the remembered user ID stays (a year).
const USER_ID_COOKIE_SECS: u64 = 365 * 24 * 3600;
/// The longest user ID the form takes (the user-ID rules allow fewer).
const MAX_USER_ID_LEN: usize = 64;
/// The longest `request_uri` worth looking up.
const MAX_REQUEST_URI_LEN: usize = 128;
/// Seconds between two codes on the page (each stays valid 30 s).
const SHOWN_STEPS: u64 = 10;
/// Domain tag of the stand-in secret shown for an unknown user ID.
const STAND_IN_DOMAIN: &[u8] = b"eid-authenticator/v1/oidc-stand-in";

/// What every page (login and self-service) has around its content.
pub(crate) struct Frame {
    pub(crate) lang: &'static str,
    pub(crate) w: &'static Words,
    /// The self-service pages' own words (unused by the login page's).
    pub(crate) s: &'static super::texts::SelfServiceWords,
    /// The login methods' and code-device steps' words.
    pub(crate) m: &'static super::texts::MethodWords,
    pub(crate) switch_href: String,
    pub(crate) other_lang: &'static str,
    pub(crate) other_name: &'static str,
}

impl Frame {
    pub(crate) fn new(lang: Lang, path: &str) -> Self {
        let other = lang.other();
        Self {
            lang: lang.tag(),
            w: lang.words(),
            s: lang.self_service(),
            m: lang.methods(),
            switch_href: format!("{path}?lang={}", other.tag()),
            other_lang: other.tag(),
            other_name: other.words().language_name,
        }
    }
}

#[derive(Template)]
#[template(path = "user_id.html")]
struct UserIdPage<'a> {
    page: Frame,
    provider: &'a str,
    action: String,
    csrf: String,
    user_id: &'a str,
    remember: bool,
    error: Option<&'a str>,
    /// The methods offered (value, label, checked); shown as a choice only
    /// when there is more than one.
    methods: Vec<(&'static str, &'static str, bool)>,
}

#[derive(Template)]
#[template(path = "waiting.html")]
struct WaitingPage<'a> {
    page: Frame,
    provider: &'a str,
    status_url: String,
    qr_url: String,
    code: String,
    step: u64,
    countdown: String,
    again_href: String,
}

#[derive(Template)]
#[template(path = "outcome.html")]
struct OutcomePage<'a> {
    page: Frame,
    heading: &'a str,
    message: &'a str,
    provider: &'a str,
    back_href: Option<String>,
    retry_href: Option<String>,
}

/// The error pages every login page may answer with, for the OpenAPI
/// document (one list, so the pages cannot describe them differently).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Read by the document only.
pub(crate) enum PageRefusals {
    /// An unknown client, or an unknown, used or expired `request_uri` or
    /// login: an error page, never a redirect.
    #[response(status = 400, content_type = "text/html")]
    BadLink(String),
    /// The login belongs to another browser (an error page), or
    /// `origin_refused`.
    #[response(status = 403, content_type = "text/html")]
    OtherBrowser(String),
    /// The login already went back to the service provider.
    #[response(status = 409, content_type = "text/html")]
    AlreadyDone(String),
    /// The login's time is over.
    #[response(status = 410, content_type = "text/html")]
    LoginOver(String),
    /// `rate_limited` (per address).
    #[response(status = 429)]
    RateLimited(ErrorBody),
    /// The store failed.
    #[response(status = 500, content_type = "text/html")]
    Internal(String),
}

/// A page answered with `status`; a template that fails to render (it
/// cannot, with these types) is an internal error without details.
pub(crate) fn html(status: StatusCode, page: impl Template) -> Response {
    match page.render() {
        Ok(body) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Why a page cannot go on; shown as an error page, never as a redirect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Unknown client, or an unknown, used or expired `request_uri` or login.
    BadLink,
    /// The login belongs to another browser (no or another cookie).
    OtherBrowser,
    /// The login's time is over.
    LoginOver,
    /// The login already went back to the service provider with its code.
    AlreadyDone,
    /// The store failed.
    Internal,
}

/// An error page in `lang`.
pub(crate) struct Failure(pub(crate) Lang, pub(crate) Refusal);

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "login page: store failed");
        Failure(Lang::Da, Refusal::Internal)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let Failure(lang, refusal) = self;
        let w = lang.words();
        let (status, message) = match refusal {
            Refusal::BadLink => (StatusCode::BAD_REQUEST, w.bad_link),
            Refusal::OtherBrowser => (StatusCode::FORBIDDEN, w.other_browser),
            Refusal::LoginOver => (StatusCode::GONE, w.login_over),
            Refusal::AlreadyDone => (StatusCode::CONFLICT, w.already_done),
            Refusal::Internal => (StatusCode::INTERNAL_SERVER_ERROR, w.busy),
        };
        html(
            status,
            OutcomePage {
                page: Frame::new(lang, "/oidc/authorize"),
                heading: w.error_heading,
                message,
                provider: "",
                back_href: None,
                retry_href: None,
            },
        )
    }
}

/// The query's parameters, each name at most once (a repeated one makes the
/// whole query unusable, as OAuth requires).
pub(crate) fn query_params(query: Option<&str>) -> Option<Vec<(String, String)>> {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    for (i, (k, _)) in pairs.iter().enumerate() {
        if pairs[..i].iter().any(|(seen, _)| seen == k) {
            return None;
        }
    }
    Some(pairs)
}

pub(crate) fn param<'p>(pairs: &'p [(String, String)], name: &str) -> Option<&'p str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The page's language: `?lang=`, then the one picked earlier on this
/// browser, then the service provider's `ui_locales`, then the browser's.
fn lang_of(query: &[(String, String)], headers: &HeaderMap, login: Option<&OidcLogin>) -> Lang {
    param(query, "lang")
        .and_then(Lang::parse)
        .or_else(|| cookie(headers, LANG_COOKIE).and_then(Lang::parse))
        .or_else(|| {
            login
                .and_then(|l| l.params.lang.as_deref())
                .and_then(Lang::parse)
        })
        .or_else(|| {
            headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(Lang::from_accept_language)
        })
        .unwrap_or(Lang::Da)
}

/// `Set-Cookie` for a language picked with the switch link.
fn lang_cookie(query: &[(String, String)]) -> Option<HeaderValue> {
    let lang = param(query, "lang").and_then(Lang::parse)?;
    HeaderValue::from_str(&format!(
        "{LANG_COOKIE}={}; Path=/oidc/; Secure; HttpOnly; SameSite=Lax; Max-Age={USER_ID_COOKIE_SECS}",
        lang.tag()
    ))
    .ok()
}

/// The name of the cookie of login `id`.
fn login_cookie_name(id: LoginId) -> String {
    format!("{LOGIN_COOKIE}{id}")
}

pub(crate) fn login_path(id: LoginId) -> String {
    format!("/oidc/login/{id}")
}

/// The page of a method's step after the user ID (the login's own page for
/// the app).
pub(crate) fn step_path(id: LoginId, method: LoginMethod) -> String {
    match method.step() {
        Some(step) => format!("/oidc/login/{id}/{step}"),
        None => login_path(id),
    }
}

/// The CSRF token of a login's forms: derived from the browser's cookie
/// secret, which another site can neither read nor send along.
pub(crate) fn csrf_token(secret: &str) -> String {
    let mut input = b"eid-authenticator/v1/oidc-csrf".to_vec();
    input.extend_from_slice(secret.as_bytes());
    hex::encode(eid_protocol::sha256(&input))
}

/// The login `raw_id` if this browser holds its cookie, with the cookie's
/// secret, and the page's language.
pub(crate) async fn bound(
    state: &AppState,
    raw_id: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
) -> Result<(OidcLogin, Zeroizing<String>, Lang), Failure> {
    let early = lang_of(query, headers, None);
    let id = LoginId::parse(raw_id).ok_or(Failure(early, Refusal::BadLink))?;
    let login = state
        .store
        .oidc_login(id)
        .await
        .map_err(|e| Failure::from(e).with(early))?
        .ok_or(Failure(early, Refusal::BadLink))?;
    let lang = lang_of(query, headers, Some(&login));
    let secret =
        cookie(headers, &login_cookie_name(login.id)).map(|s| Zeroizing::new(s.to_owned()));
    let owns = match (&secret, &login.browser_sha256) {
        (Some(secret), Some(stored)) => bool::from(handle_sha256(secret).ct_eq(stored)),
        _ => false,
    };
    let Some(secret) = secret.filter(|_| owns) else {
        return Err(Failure(lang, Refusal::OtherBrowser));
    };
    if login.code_expires_at_ms.is_some() {
        return Err(Failure(lang, Refusal::AlreadyDone));
    }
    if state.now_ms() >= login.expires_at_ms {
        return Err(Failure(lang, Refusal::LoginOver));
    }
    Ok((login, secret, lang))
}

impl Failure {
    pub(super) fn with(self, lang: Lang) -> Self {
        Failure(lang, self.1)
    }
}

/// `GET /oidc/authorize?client_id=..&request_uri=..`: binds the pushed
/// login to this browser and sends it to the login page. Anything wrong is
/// an error page here, never a redirect: the redirect URI of an unknown
/// or unchecked request must not be trusted.
#[utoipa::path(get, path = "/oidc/authorize", tag = "oidc login page",
    params(
        ("client_id" = String, Query, description = "the client that pushed the request", max_length = 128),
        ("request_uri" = String, Query, description = "from the PAR answer; single use, 60 s", max_length = 128)),
    responses(
        (status = 303, description = "to the login page, with the cookie binding the login to this browser",
            headers(("Location" = String), ("Set-Cookie" = String))),
        (status = 400, description = "unknown client, or an unknown, used or expired request_uri: an error page, never a redirect", content_type = "text/html", body = String),
        (status = 429, description = "rate_limited (per address)", body = ErrorBody)))]
pub(crate) async fn authorize(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let pairs = query_params(query.as_deref()).unwrap_or_default();
    let lang = lang_of(&pairs, &headers, None);
    let bad = || Failure(lang, Refusal::BadLink).into_response();
    let (Some(client_id), Some(request_uri)) =
        (param(&pairs, "client_id"), param(&pairs, "request_uri"))
    else {
        return bad();
    };
    if !request_uri.starts_with(REQUEST_URI_PREFIX)
        || request_uri.len() > MAX_REQUEST_URI_LEN
        || client_id.len() > MAX_REQUEST_URI_LEN
    {
        return bad();
    }
    let secret = new_handle();
    let bound = state
        .store
        .bind_oidc_login(
            handle_sha256(request_uri),
            client_id,
            handle_sha256(&secret),
            state.now_ms(),
        )
        .await;
    let login = match bound {
        Ok(BindLoginResult::Bound(login)) => *login,
        Ok(_) => return bad(),
        Err(e) => return Failure::from(e).with(lang).into_response(),
    };
    let path = login_path(login.id);
    let cookie = format!(
        "{}={}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={}",
        login_cookie_name(login.id),
        &*secret,
        LOGIN_LIFETIME_MS / 1000
    );
    let mut response = see_other(&path);
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

pub(crate) fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Where a login stands, as the page, the status and the continue step see it.
enum Stage {
    /// No request yet (or the person asked to start again): the user ID.
    UserId,
    /// The person chose a hardware method: its own step (`/code`, `/chip`).
    Hardware(LoginMethod),
    /// A request waits in the app; shows this secret's codes until `expires_at_ms`.
    Waiting {
        secret: BindingSecret,
        expires_at_ms: u64,
    },
    /// The person approved request `RequestId`.
    Approved(RequestId),
    /// The person refused (deny, or "this wasn't me").
    Refused { fraud: bool },
    /// The request's time ran out (or it was cancelled): start again.
    Expired,
}

/// The login's stage at `now`.
async fn stage(state: &AppState, login: &OidcLogin, now: u64) -> Result<Stage, StoreError> {
    // "App and chip" waits for the app like the app alone, then goes to
    // the chip's step (below, once approved).
    if login.method.is_hardware() && login.method != LoginMethod::AppAndChip {
        return Ok(Stage::Hardware(login.method));
    }
    let Some(request_id) = login.request_id else {
        return Ok(Stage::UserId);
    };
    let expires_at_ms = login.request_expires_at_ms.unwrap_or_default();
    let Some(request) = state.store.request(request_id).await? else {
        // The stand-in of an unknown user ID: waits, then expires.
        if now >= expires_at_ms {
            return Ok(Stage::Expired);
        }
        return Ok(Stage::Waiting {
            secret: stand_in_secret(login, request_id),
            expires_at_ms,
        });
    };
    Ok(match request.status_at(now) {
        RequestStatus::Pending => {
            let secret = request
                .binding_code
                .as_deref()
                .and_then(|b| StoredBinding::from_stored(b).ok())
                .and_then(|b| match b {
                    StoredBinding::Rotating(secret) => Some(secret),
                    StoredBinding::Static(_) => None,
                });
            match secret {
                Some(secret) => Stage::Waiting {
                    secret,
                    expires_at_ms: request.envelope.expires_at_ms,
                },
                // Every request this page makes has a rotating binding.
                None => Stage::Expired,
            }
        }
        RequestStatus::Approved if login.method == LoginMethod::AppAndChip => {
            Stage::Hardware(LoginMethod::AppAndChip)
        }
        RequestStatus::Approved => Stage::Approved(request_id),
        RequestStatus::Denied => Stage::Refused { fraud: false },
        RequestStatus::FraudReported => Stage::Refused { fraud: true },
        _ => Stage::Expired,
    })
}

/// Domain tag of the stand-in identity of an unknown user ID.
const STAND_IN_IDENTITY_DOMAIN: &[u8] = b"eid-authenticator/v1/oidc-stand-in-identity";

/// The identity id a hardware method's steps use for the unknown user ID
/// `folded`: derived from it, so the same every time, and held by no
/// identity (a 128-bit digest; identity ids are random), so every check of
/// the steps fails for it as for a person without the device.
fn stand_in_identity(folded: &str) -> eid_protocol::IdentityId {
    let mut input = STAND_IN_IDENTITY_DOMAIN.to_vec();
    input.extend_from_slice(folded.as_bytes());
    let digest = eid_protocol::sha256(&input);
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    eid_protocol::IdentityId(id)
}

/// The secret whose codes stand in for an unknown user ID's request: fixed
/// per login and stand-in id, so the page shows steady codes like a real one.
fn stand_in_secret(login: &OidcLogin, request_id: RequestId) -> BindingSecret {
    let mut input = STAND_IN_DOMAIN.to_vec();
    input.extend_from_slice(&login.browser_sha256.unwrap_or_default());
    input.extend_from_slice(request_id.as_bytes());
    BindingSecret::from_bytes(eid_protocol::sha256(&input))
}

/// The step whose code the page shows at `now_ms`, and the code, grouped in
/// fours for reading ("ABCD EFGH"; the app ignores the space).
pub(crate) fn shown_code(secret: &BindingSecret, now_ms: u64) -> (u64, String) {
    let step = now_ms / eid_protocol::binding::ROTATING_STEP_MS;
    let shown = step - step % SHOWN_STEPS;
    let code = secret.code_for_step(shown);
    let (a, b) = code.split_at(code.len() / 2);
    (shown, format!("{a} {b}"))
}

/// `m:ss` until `until_ms`.
pub(crate) fn countdown(now_ms: u64, until_ms: u64) -> String {
    let secs = until_ms.saturating_sub(now_ms).div_ceil(1000);
    format!("{}:{:02}", secs / 60, secs % 60)
}

/// The client's service provider's name, for the page's heading.
pub(super) async fn provider_name(
    state: &AppState,
    login: &OidcLogin,
) -> Result<String, StoreError> {
    let Some(client) = crate::api::oidc_client_of(state, &login.client_id).await? else {
        return Ok(String::new());
    };
    Ok(
        crate::api::provider_name_of(state, client.service_provider_id)
            .await?
            .unwrap_or_default(),
    )
}

fn with_lang_cookie(mut response: Response, query: &[(String, String)]) -> Response {
    if let Some(value) = lang_cookie(query) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `GET /oidc/login/{login_id}`: the page for the login's stage.
#[utoipa::path(get, path = "/oidc/login/{login_id}", tag = "oidc login page",
    params(
        ("login_id" = String, Path, description = "32 hex digits"),
        ("lang" = Option<String>, Query, description = "da or en"),
        ("again" = Option<String>, Query, description = "1: the user-ID step again (start again)")),
    responses(
        (status = 200, description = "the page", content_type = "text/html", body = String),
        (status = 303, description = "approved: on to continue", headers(("Location" = String))),
        PageRefusals))]
pub(crate) async fn page(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let pairs = query_params(query.as_deref()).unwrap_or_default();
    let (login, secret, lang) = bound(&state, &raw_id, &pairs, &headers).await?;
    let now = state.now_ms();
    let stage = stage(&state, &login, now)
        .await
        .map_err(|e| Failure::from(e).with(lang))?;
    let provider = provider_name(&state, &login)
        .await
        .map_err(|e| Failure::from(e).with(lang))?;
    let again = param(&pairs, "again") == Some("1");
    let path = login_path(login.id);
    let response = match stage {
        Stage::UserId => user_id_page(&login, &secret, lang, &provider, &headers, None),
        Stage::Waiting { .. } | Stage::Expired | Stage::Hardware(_) if again => {
            user_id_page(&login, &secret, lang, &provider, &headers, None)
        }
        Stage::Hardware(method) => see_other(&step_path(login.id, method)),
        Stage::Waiting {
            secret: binding,
            expires_at_ms,
        } => {
            let (step, code) = shown_code(&binding, now);
            html(
                StatusCode::OK,
                WaitingPage {
                    page: Frame::new(lang, &path),
                    provider: &provider,
                    status_url: format!("{path}/status"),
                    qr_url: format!("{path}/qr.svg"),
                    code,
                    step,
                    countdown: countdown(now, expires_at_ms),
                    again_href: format!("{path}?again=1"),
                },
            )
        }
        Stage::Approved(_) => see_other(&format!("{path}/continue")),
        Stage::Refused { fraud } => {
            let w = lang.words();
            html(
                StatusCode::OK,
                OutcomePage {
                    page: Frame::new(lang, &path),
                    heading: w.refused_heading,
                    message: if fraud { w.fraud } else { w.denied },
                    provider: &provider,
                    back_href: Some(format!("{path}/continue")),
                    retry_href: None,
                },
            )
        }
        Stage::Expired => {
            let w = lang.words();
            html(
                StatusCode::OK,
                OutcomePage {
                    page: Frame::new(lang, &path),
                    heading: w.expired_heading,
                    message: w.expired,
                    provider: &provider,
                    back_href: None,
                    retry_href: Some(path.clone()),
                },
            )
        }
    };
    Ok(with_lang_cookie(response, &pairs))
}

fn user_id_page(
    login: &OidcLogin,
    secret: &str,
    lang: Lang,
    provider: &str,
    headers: &HeaderMap,
    error: Option<(StatusCode, &str, &str)>,
) -> Response {
    let remembered = cookie(headers, USER_ID_COOKIE)
        .filter(|v| !v.is_empty())
        .map(|v| {
            url::form_urlencoded::parse(format!("u={v}").as_bytes())
                .map(|(_, v)| v.into_owned())
                .collect::<String>()
        });
    let (status, typed, message) = match error {
        Some((status, typed, message)) => (status, Some(typed), Some(message)),
        None => (StatusCode::OK, None, None),
    };
    let user_id = typed
        .map(str::to_owned)
        .or_else(|| remembered.clone())
        .or_else(|| login.params.login_hint.clone())
        .unwrap_or_default();
    let path = login_path(login.id);
    let m = lang.methods();
    let offered = LoginMethod::offered_for(Some(&login.params.acr));
    let chosen = if offered.contains(&login.method) {
        login.method
    } else {
        offered.first().copied().unwrap_or(LoginMethod::App)
    };
    let methods = offered
        .into_iter()
        .map(|method| {
            let label = match method {
                LoginMethod::App => m.app,
                LoginMethod::CodeDisplay => m.code_display,
                LoginMethod::CodeReader => m.code_reader,
                LoginMethod::Chip => m.chip,
                LoginMethod::AppAndChip => m.app_chip,
            };
            (method.as_str(), label, method == chosen)
        })
        .collect();
    html(
        status,
        UserIdPage {
            page: Frame::new(lang, &path),
            provider,
            action: format!("{path}/user-id"),
            csrf: csrf_token(secret),
            user_id: &user_id,
            remember: remembered.is_some(),
            error: message,
            methods,
        },
    )
}

/// The user-ID form as the OpenAPI document describes it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Read by the document only; the handler parses the body itself.
pub(crate) struct UserIdFormDoc {
    /// The page's CSRF token.
    csrf: String,
    /// The person's user ID (at most 64 characters).
    #[schema(max_length = 64)]
    user_id: String,
    /// `1`: remember the user ID on this browser.
    remember: Option<String>,
    /// The login method (docs/login-page.md): `app` (the default),
    /// `code_display`, `code_reader`, `chip` or `app_chip`; one the login's
    /// level offers.
    #[schema(max_length = 16)]
    method: Option<String>,
}

/// The fields of the user-ID form.
struct UserIdForm {
    csrf: String,
    user_id: String,
    remember: bool,
    /// `None`: a method name that is not one.
    method: Option<LoginMethod>,
}

fn user_id_form(body: &[u8]) -> Option<UserIdForm> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let one = |name: &str| {
        let mut values = pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
        let first = values.next().cloned();
        values.next().is_none().then_some(first).flatten()
    };
    Some(UserIdForm {
        csrf: one("csrf")?,
        user_id: one("user_id")?,
        remember: match pairs.iter().filter(|(k, _)| k == "remember").count() {
            0 => false,
            1 => one("remember").as_deref() == Some("1"),
            _ => return None,
        },
        method: match pairs.iter().filter(|(k, _)| k == "method").count() {
            0 => Some(LoginMethod::App),
            1 => one("method").as_deref().and_then(LoginMethod::parse),
            _ => return None,
        },
    })
}

/// `POST /oidc/login/{login_id}/user-id`: the person's user ID. Starts the
/// request in the app (or its stand-in), then shows the code.
#[utoipa::path(post, path = "/oidc/login/{login_id}/user-id", tag = "oidc login page",
    params(("login_id" = String, Path, description = "32 hex digits")),
    request_body(content = UserIdFormDoc, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "back to the page, which shows the code", headers(("Location" = String))),
        (status = 413, description = "payload_too_large", body = ErrorBody),
        (status = 422, description = "no usable user ID: the form again", content_type = "text/html", body = String),
        PageRefusals))]
pub(crate) async fn user_id(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Failure> {
    let (login, secret, lang) = bound(&state, &raw_id, &[], &headers).await?;
    let w = lang.words();
    let path = login_path(login.id);
    let provider = provider_name(&state, &login)
        .await
        .map_err(|e| Failure::from(e).with(lang))?;
    let form_ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let form = user_id_form(&body).filter(|_| form_ok);
    let csrf_ok = form
        .as_ref()
        .is_some_and(|f| bool::from(f.csrf.as_bytes().ct_eq(csrf_token(&secret).as_bytes())));
    let Some(form) = form.filter(|_| csrf_ok) else {
        return Ok(user_id_page(
            &login,
            &secret,
            lang,
            &provider,
            &headers,
            Some((StatusCode::BAD_REQUEST, "", w.bad_form)),
        ));
    };
    let typed = form.user_id.trim();
    if typed.is_empty() || typed.len() > MAX_USER_ID_LEN || typed.chars().any(char::is_control) {
        let shown: String = typed.chars().take(MAX_USER_ID_LEN).collect();
        return Ok(user_id_page(
            &login,
            &secret,
            lang,
            &provider,
            &headers,
            Some((StatusCode::UNPROCESSABLE_ENTITY, &shown, w.bad_user_id)),
        ));
    }
    let Some(method) = form
        .method
        .filter(|m| LoginMethod::offered_for(Some(&login.params.acr)).contains(m))
    else {
        return Ok(user_id_page(
            &login,
            &secret,
            lang,
            &provider,
            &headers,
            Some((
                StatusCode::UNPROCESSABLE_ENTITY,
                typed,
                lang.methods().not_offered,
            )),
        ));
    };
    let now = state.now_ms();
    // A request still waiting is withdrawn first (the person starts again,
    // e.g. after a typo); a decided one ends the login as it is.
    match stage(&state, &login, now)
        .await
        .map_err(|e| Failure::from(e).with(lang))?
    {
        Stage::Approved(_) | Stage::Refused { .. } => return Ok(see_other(&path)),
        Stage::Waiting { .. } => {
            if let Some(previous) = login.request_id
                && let Some(client) = crate::api::oidc_client_of(&state, &login.client_id)
                    .await
                    .map_err(|e| Failure::from(e).with(lang))?
            {
                state
                    .store
                    .cancel_request(previous, client.service_provider_id, now)
                    .await
                    .map_err(|e| Failure::from(e).with(lang))?;
                state.waiters.wake(previous);
            }
        }
        Stage::UserId | Stage::Expired | Stage::Hardware(_) => {}
    }
    if method.is_hardware() && method != LoginMethod::AppAndChip {
        // The identity is recorded whatever its state: a blocked one, or
        // one without the device, fails at the device's step like a wrong
        // code, so this step answers every user ID alike. An unknown user
        // ID gets a stand-in identity derived from it, which no identity
        // has: the steps after this one then see the same "someone" for a
        // user ID every time, as they would for a real one (the chip step's
        // stand-in names the same made-up chip on every visit).
        let folded = crate::userid::fold(typed);
        let identity_id = crate::api::identity_id_of(&state, &folded)
            .await
            .map_err(|_| Failure(lang, Refusal::Internal))?
            .unwrap_or_else(|| stand_in_identity(&folded));
        let chosen = state
            .store
            .choose_oidc_login_method(login.id, method, Some(identity_id))
            .await
            .map_err(|e| Failure::from(e).with(lang))?;
        if !chosen {
            return Err(Failure(lang, Refusal::AlreadyDone));
        }
        return Ok(remember_user_id(
            see_other(&step_path(login.id, method)),
            form.remember,
            typed,
        ));
    }
    let mut previous = login.request_id;
    if login.method.is_hardware() || method == LoginMethod::AppAndChip {
        // Back from a hardware method to the app, or the app's step of "app
        // and chip" (whose chip step is then the typed user ID's): the
        // login's request is forgotten (withdrawn above if it waited) and
        // made anew below.
        let identity_id = match method {
            LoginMethod::AppAndChip => {
                crate::api::identity_id_of(&state, &crate::userid::fold(typed))
                    .await
                    .map_err(|_| Failure(lang, Refusal::Internal))?
            }
            _ => None,
        };
        let chosen = state
            .store
            .choose_oidc_login_method(login.id, method, identity_id)
            .await
            .map_err(|e| Failure::from(e).with(lang))?;
        if !chosen {
            return Err(Failure(lang, Refusal::AlreadyDone));
        }
        previous = None;
    }
    let client = crate::api::oidc_client_of(&state, &login.client_id)
        .await
        .map_err(|e| Failure::from(e).with(lang))?
        .ok_or(Failure(lang, Refusal::BadLink))?;
    let created = create_for_provider(
        &state,
        (client.service_provider_id, provider.clone()),
        RequestKind::Login,
        typed,
        login.params.reference_text.clone(),
        Some(StoredBinding::Rotating(BindingSecret::random())),
        now,
    )
    .await;
    let stand_in_expiry =
        now.saturating_add(state.config.request_lifetime_secs.saturating_mul(1000));
    let mut real = None;
    // Whether the answer has waited for a durable write (a real request's,
    // or a refusal's own: `RetryLater::wrote`).
    let mut wrote = false;
    let (request_id, expires_at_ms) = match created {
        Ok(Created::Request(envelope)) => {
            real = Some(envelope.request_id);
            wrote = true;
            (envelope.request_id, envelope.expires_at_ms)
        }
        Ok(Created::UnknownIdentity) => (crate::ids::request_id(now), stand_in_expiry),
        // Blocked, or held by one of the person's own limits: the stand-in
        // too, as "busy" would be said of known user IDs only.
        Err(refused) if refused.about_the_person => {
            wrote = refused.wrote;
            (crate::ids::request_id(now), stand_in_expiry)
        }
        Err(refused) if refused.error.code == ErrorCode::Internal => {
            return Err(Failure(lang, Refusal::Internal));
        }
        Err(_) => {
            return Ok(user_id_page(
                &login,
                &secret,
                lang,
                &provider,
                &headers,
                Some((StatusCode::TOO_MANY_REQUESTS, typed, w.busy)),
            ));
        }
    };
    if !wrote {
        // The durable write a real request makes (its commit waits for the
        // fsync, milliseconds): without it the answer's time told a
        // stand-in from a real request. A refusal that made one says so
        // (`RetryLater::wrote`; docs/threat-model.md).
        super::stand_in_write(&state, now)
            .await
            .map_err(|e| Failure::from(e).with(lang))?;
    }
    let set = state
        .store
        .set_oidc_login_request(login.id, previous, request_id, expires_at_ms)
        .await
        .map_err(|e| Failure::from(e).with(lang))?;
    if !set {
        // Another post of this login got there first (a double submit, or
        // posts sent at once): its request is the one the page shows, so
        // this one is withdrawn rather than left waiting in the app.
        if let Some(orphan) = real {
            state
                .store
                .cancel_request(orphan, client.service_provider_id, now)
                .await
                .map_err(|e| Failure::from(e).with(lang))?;
            state.waiters.wake(orphan);
        }
        return Ok(see_other(&path));
    }
    Ok(remember_user_id(see_other(&path), form.remember, typed))
}

/// `response` with the cookie that remembers the user ID (ticked), or
/// forgets what was remembered before (not ticked).
fn remember_user_id(mut response: Response, remember: bool, typed: &str) -> Response {
    let remember = if remember {
        let encoded: String = url::form_urlencoded::byte_serialize(typed.as_bytes()).collect();
        format!(
            "{USER_ID_COOKIE}={encoded}; Path=/oidc/; Secure; HttpOnly; SameSite=Lax; Max-Age={USER_ID_COOKIE_SECS}"
        )
    } else {
        // Not ticked: whatever was remembered before goes.
        format!("{USER_ID_COOKIE}=; Path=/oidc/; Secure; HttpOnly; SameSite=Lax; Max-Age=0")
    };
    if let Ok(value) = HeaderValue::from_str(&remember) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The status the page's script reads every second.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Status {
    /// `user_id`, `waiting`, `approved`, `refused`, `expired`, or
    /// `hardware` (the person chose a hardware method: go to `next`).
    state: &'static str,
    /// The sentence for the `aria-live` status line.
    message: &'static str,
    /// The code shown now (empty unless waiting).
    code: String,
    /// Its step, so the script fetches a new QR only when it changed.
    step: u64,
    /// Time left, `m:ss`.
    countdown: String,
    /// Where to go now, when the page must change.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// `GET /oidc/login/{login_id}/status`: where the login stands, for the
/// page's script.
#[utoipa::path(get, path = "/oidc/login/{login_id}/status", tag = "oidc login page",
    params(("login_id" = String, Path, description = "32 hex digits")),
    responses(
        (status = 200, body = Status),
        (status = 403, description = "the login belongs to another browser"),
        (status = 410, description = "unknown, over or finished"),
        (status = 429, description = "rate_limited (per address)", body = ErrorBody),
        (status = 500, description = "the store failed")))]
pub(crate) async fn status(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, StatusCode> {
    let (login, _, lang) = bound(&state, &raw_id, &[], &headers).await.map_err(
        |Failure(_, refusal)| match refusal {
            Refusal::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Refusal::OtherBrowser => StatusCode::FORBIDDEN,
            _ => StatusCode::GONE,
        },
    )?;
    let now = state.now_ms();
    let w = lang.words();
    let path = login_path(login.id);
    let stage = stage(&state, &login, now)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    let status = match stage {
        Stage::Waiting {
            secret,
            expires_at_ms,
        } => {
            let (step, code) = shown_code(&secret, now);
            Status {
                state: "waiting",
                message: w.waiting,
                code,
                step,
                countdown: countdown(now, expires_at_ms),
                next: None,
            }
        }
        other => {
            let (state, message, next) = match other {
                Stage::Approved(_) => ("approved", w.approved, format!("{path}/continue")),
                Stage::Refused { fraud: true } => ("refused", w.fraud, path),
                Stage::Refused { fraud: false } => ("refused", w.denied, path),
                Stage::Expired => ("expired", w.expired, path),
                Stage::Hardware(method) => {
                    ("hardware", w.user_id_heading, step_path(login.id, method))
                }
                _ => ("user_id", w.user_id_heading, path),
            };
            Status {
                state,
                message,
                code: String::new(),
                step: 0,
                countdown: "0:00".into(),
                next: Some(next),
            }
        }
    };
    Ok(axum::Json(status).into_response())
}

/// `GET /oidc/login/{login_id}/qr.svg`: the QR of the code shown now.
#[utoipa::path(get, path = "/oidc/login/{login_id}/qr.svg", tag = "oidc login page",
    params(("login_id" = String, Path, description = "32 hex digits")),
    responses(
        (status = 200, content_type = "image/svg+xml", body = String),
        (status = 404, description = "no code to show (unknown login, another browser, not waiting)"),
        (status = 429, description = "rate_limited (per address)", body = ErrorBody),
        (status = 500, description = "the store failed")))]
pub(crate) async fn qr(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, StatusCode> {
    let (login, _, _) = bound(&state, &raw_id, &[], &headers)
        .await
        .map_err(|_| StatusCode::NOT_FOUND)?;
    let now = state.now_ms();
    let Ok(Stage::Waiting { secret, .. }) = stage(&state, &login, now).await else {
        return Err(StatusCode::NOT_FOUND);
    };
    let (step, _) = shown_code(&secret, now);
    let payload = format!(
        "{}{}",
        eid_protocol::binding::QR_PREFIX,
        secret.code_for_step(step)
    );
    let svg = qr::svg(&payload).ok_or(StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

/// `GET /oidc/login/{login_id}/continue`: back to the service provider,
/// with a code once the person approved (issued once), or with
/// `access_denied` once they refused; otherwise back to the page.
#[utoipa::path(get, path = "/oidc/login/{login_id}/continue", tag = "oidc login page",
    params(("login_id" = String, Path, description = "32 hex digits")),
    responses(
        (status = 303, description = "to the redirect URI with code, state and iss (approved), with error=access_denied (refused), or back to the page", headers(("Location" = String))),
        PageRefusals))]
pub(crate) async fn next(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let (login, _, lang) = bound(&state, &raw_id, &[], &headers).await?;
    let now = state.now_ms();
    let path = login_path(login.id);
    let stage = stage(&state, &login, now)
        .await
        .map_err(|e| Failure::from(e).with(lang))?;
    let issuer = crate::api::oidc::issuer(&state, &uri, &headers)
        .map_err(|_| Failure(lang, Refusal::BadLink))?;
    let back = |pairs: &[(&str, &str)]| -> Result<Response, Failure> {
        let mut url = url::Url::parse(&login.params.redirect_uri)
            .map_err(|_| Failure(lang, Refusal::BadLink))?;
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in pairs {
                q.append_pair(k, v);
            }
            if let Some(s) = &login.params.state {
                q.append_pair("state", s);
            }
            q.append_pair("iss", &issuer);
        }
        Ok(see_other(url.as_str()))
    };
    match stage {
        Stage::Approved(request_id) => {
            let code = new_handle();
            let issued = state
                .store
                .issue_oidc_code(
                    login.id,
                    request_id,
                    handle_sha256(&code),
                    now.saturating_add(CODE_LIFETIME_MS),
                )
                .await
                .map_err(|e| Failure::from(e).with(lang))?;
            if !issued {
                return Err(Failure(lang, Refusal::AlreadyDone));
            }
            back(&[("code", &code)])
        }
        Stage::Refused { fraud } => back(&[
            ("error", "access_denied"),
            (
                "error_description",
                if fraud {
                    "the person reported the login as fraud"
                } else {
                    "the person refused the login"
                },
            ),
        ]),
        _ => Ok(see_other(&path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shown_code_changes_every_ten_seconds_and_reads_in_fours() {
        let secret = BindingSecret::from_bytes([7; 32]);
        let (a_step, a) = shown_code(&secret, 1_000_000);
        let (b_step, b) = shown_code(&secret, 1_009_999);
        let (c_step, c) = shown_code(&secret, 1_010_000);
        assert_eq!((a_step, &a), (b_step, &b));
        assert_ne!(a, c);
        assert_eq!(c_step, a_step + SHOWN_STEPS);
        assert_eq!(a.len(), 9);
        assert_eq!(a.as_bytes()[4], b' ');
        // Still accepted by the server 20 s after the page moved on.
        let typed: String = a.chars().filter(|c| *c != ' ').collect();
        assert!(secret.accepts(&typed, 1_009_999 + 20_000));
    }

    #[test]
    fn the_countdown_rounds_up_to_whole_seconds() {
        assert_eq!(countdown(0, 300_000), "5:00");
        assert_eq!(countdown(1, 60_000), "1:00");
        assert_eq!(countdown(59_001, 60_000), "0:01");
        assert_eq!(countdown(70_000, 60_000), "0:00");
    }

    #[test]
    fn a_repeated_query_parameter_makes_the_query_unusable() {
        assert!(query_params(Some("a=1&b=2")).is_some());
        assert!(query_params(Some("a=1&a=2")).is_none());
    }

    #[test]
    fn the_user_id_form_takes_each_field_once() {
        let f = user_id_form(b"csrf=x&user_id=grete&remember=1").unwrap();
        assert_eq!(
            (f.csrf.as_str(), f.user_id.as_str(), f.remember),
            ("x", "grete", true)
        );
        assert!(!user_id_form(b"csrf=x&user_id=grete").unwrap().remember);
        assert_eq!(
            user_id_form(b"csrf=x&user_id=grete").unwrap().method,
            Some(LoginMethod::App)
        );
        assert_eq!(
            user_id_form(b"csrf=x&user_id=grete&method=code_display")
                .unwrap()
                .method,
            Some(LoginMethod::CodeDisplay)
        );
        assert_eq!(
            user_id_form(b"csrf=x&user_id=grete&method=sms")
                .unwrap()
                .method,
            None
        );
        assert!(user_id_form(b"csrf=x&user_id=g&method=app&method=chip").is_none());
        assert!(user_id_form(b"csrf=x&user_id=a&user_id=b").is_none());
        assert!(user_id_form(b"user_id=a").is_none());
    }

    #[test]
    fn the_csrf_token_depends_on_the_cookie_secret() {
        assert_ne!(csrf_token("a"), csrf_token("b"));
        assert_eq!(csrf_token("a"), csrf_token("a"));
    }
}
