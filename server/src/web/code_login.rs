//! The login page's steps for a code device (docs/login-page.md): after
//! the user ID, the six-digit code from the code display or audio code
//! reader (`/oidc/login/{id}/code`), then the access code
//! (`/oidc/login/{id}/access-code`), as MitID orders them.
//!
//! An unknown user ID, a person without a code device of the chosen kind,
//! another person's device, a blocked device or identity, a replayed code
//! and a wrong code all get the same answer, so the steps tell nobody
//! whether a user ID exists or what it holds; each wrong answer also counts
//! against the address (the per-address limit of wrong codes that guards
//! activation codes). Wrong codes and wrong access codes count on the
//! device: three in a row block it (see `crate::code_devices::check`).
//!
//! A right access code completes the login in one store write with a
//! server-signed hardware receipt naming the method and the device (by the
//! SHA-256 of its serial), and the page sends the browser back to the
//! service provider with the code. The way back is a link (and an
//! immediate refresh), not a redirect of the form post: the pages' policy
//! lets forms post to this origin only, which browsers apply to a post's
//! redirects too.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::Response;
use eid_protocol::messages::HardwareReceiptBody;
use eid_protocol::wire::{ErrorBody, SignedHardwareReceipt};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::login::{
    Failure, Frame, PageRefusals, Refusal, bound, csrf_token, html, login_path, provider_name,
    see_other, step_path,
};
use super::texts::Lang;
use crate::api::AppState;
use crate::api::guard::Source;
use crate::code_devices::check::{self, CodeOutcome};
use crate::oidc::method::LoginMethod;
use crate::oidc::{CODE_LIFETIME_MS, handle_sha256, new_handle};
use crate::store::{CodeAttempt, CodeDeviceKind, OidcLogin};

#[derive(Template)]
#[template(path = "code.html")]
struct CodePage<'a> {
    page: Frame,
    provider: &'a str,
    action: String,
    csrf: String,
    help: &'static str,
    error: Option<&'static str>,
    again_href: String,
}

#[derive(Template)]
#[template(path = "access_code.html")]
struct AccessCodePage<'a> {
    page: Frame,
    provider: &'a str,
    action: String,
    csrf: String,
    error: Option<&'static str>,
    again_href: String,
}

#[derive(Template)]
#[template(path = "done.html")]
struct DonePage<'a> {
    page: Frame,
    provider: &'a str,
    back_href: String,
}

/// The code form as the OpenAPI document describes it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Read by the document only; the handler parses the body itself.
pub(crate) struct CodeFormDoc {
    /// The page's CSRF token.
    csrf: String,
    /// The six digits from the code device.
    #[schema(max_length = 6)]
    code: String,
}

/// The access-code form as the OpenAPI document describes it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Read by the document only; the handler parses the body itself.
pub(crate) struct AccessCodeFormDoc {
    /// The page's CSRF token.
    csrf: String,
    /// The access code.
    #[schema(max_length = 256)]
    access_code: String,
}

/// The device kind a code-device method needs.
fn kind_of(method: LoginMethod) -> Option<CodeDeviceKind> {
    match method {
        LoginMethod::CodeDisplay => Some(CodeDeviceKind::CodeDisplay),
        LoginMethod::CodeReader => Some(CodeDeviceKind::CodeReader),
        _ => None,
    }
}

/// The two fields of a step's form, each exactly once, with a right CSRF
/// token and a form content type; `None` otherwise.
fn form_field(
    headers: &HeaderMap,
    body: &[u8],
    secret: &str,
    name: &str,
) -> Option<Zeroizing<String>> {
    let form_ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_ok {
        return None;
    }
    let pairs: Vec<(String, Zeroizing<String>)> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), Zeroizing::new(v.into_owned())))
        .collect();
    let one = |field: &str| {
        let mut values = pairs.iter().filter(|(k, _)| k == field).map(|(_, v)| v);
        let first = values.next().cloned();
        values.next().is_none().then_some(first).flatten()
    };
    let csrf = one("csrf")?;
    if !bool::from(csrf.as_bytes().ct_eq(csrf_token(secret).as_bytes())) {
        return None;
    }
    one(name)
}

/// The login, bound to this browser, with a code-device method chosen.
async fn code_login(
    state: &AppState,
    raw_id: &str,
    headers: &HeaderMap,
) -> Result<Result<(OidcLogin, Zeroizing<String>, Lang, CodeDeviceKind), Response>, Failure> {
    let (login, secret, lang) = bound(state, raw_id, &[], headers).await?;
    match kind_of(login.method) {
        Some(kind) => Ok(Ok((login, secret, lang, kind))),
        // Another method (or none yet): its own step.
        None => Ok(Err(see_other(&step_path(login.id, login.method)))),
    }
}

fn code_page(
    login: &OidcLogin,
    secret: &str,
    lang: Lang,
    provider: &str,
    kind: CodeDeviceKind,
    error: Option<(StatusCode, &'static str)>,
) -> Response {
    let path = login_path(login.id);
    let m = lang.methods();
    let (status, error) = match error {
        Some((status, message)) => (status, Some(message)),
        None => (StatusCode::OK, None),
    };
    html(
        status,
        CodePage {
            page: Frame::new(lang, &format!("{path}/code")),
            provider,
            action: format!("{path}/code"),
            csrf: csrf_token(secret),
            help: match kind {
                CodeDeviceKind::CodeDisplay => m.code_help_display,
                CodeDeviceKind::CodeReader => m.code_help_reader,
            },
            error,
            again_href: format!("{path}?again=1"),
        },
    )
}

fn access_code_page(
    login: &OidcLogin,
    secret: &str,
    lang: Lang,
    provider: &str,
    error: Option<(StatusCode, &'static str)>,
) -> Response {
    let path = login_path(login.id);
    let (status, error) = match error {
        Some((status, message)) => (status, Some(message)),
        None => (StatusCode::OK, None),
    };
    html(
        status,
        AccessCodePage {
            page: Frame::new(lang, &format!("{path}/access-code")),
            provider,
            action: format!("{path}/access-code"),
            csrf: csrf_token(secret),
            error,
            again_href: format!("{path}?again=1"),
        },
    )
}

/// `GET /oidc/login/{login_id}/code`: the six-digit code's page.
#[utoipa::path(get, path = "/oidc/login/{login_id}/code", tag = "oidc login page",
    params(("login_id" = String, Path, description = "32 hex digits")),
    responses(
        (status = 200, description = "the page", content_type = "text/html", body = String),
        (status = 303, description = "another method's step, or the access code's once the code passed", headers(("Location" = String))),
        PageRefusals))]
pub(crate) async fn code_get(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let (login, secret, lang, kind) = match code_login(&state, &raw_id, &headers).await? {
        Ok(found) => found,
        Err(elsewhere) => return Ok(elsewhere),
    };
    if login.first_factor.is_some() {
        return Ok(see_other(&format!("{}/access-code", login_path(login.id))));
    }
    let provider = provider_name(&state, &login)
        .await
        .map_err(|e| Failure::from(e).with(lang))?;
    Ok(code_page(&login, &secret, lang, &provider, kind, None))
}

/// `POST /oidc/login/{login_id}/code`: the six digits. Right: on to the
/// access code. Anything else: the same page again with one message.
#[utoipa::path(post, path = "/oidc/login/{login_id}/code", tag = "oidc login page",
    params(("login_id" = String, Path, description = "32 hex digits")),
    request_body(content = CodeFormDoc, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "the code passed: on to the access code", headers(("Location" = String))),
        (status = 400, description = "a stale page (CSRF token) or a malformed form: the page again", content_type = "text/html", body = String),
        (status = 422, description = "the code did not pass (one answer whatever the reason): the page again", content_type = "text/html", body = String),
        (status = 413, description = "payload_too_large", body = ErrorBody),
        PageRefusals))]
pub(crate) async fn code_post(
    State(state): State<AppState>,
    Source(source): Source,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Failure> {
    let (login, secret, lang, kind) = match code_login(&state, &raw_id, &headers).await? {
        Ok(found) => found,
        Err(elsewhere) => return Ok(elsewhere),
    };
    let m = lang.methods();
    let provider = provider_name(&state, &login)
        .await
        .map_err(|e| Failure::from(e).with(lang))?;
    let Some(typed) = form_field(&headers, &body, &secret, "code") else {
        return Ok(code_page(
            &login,
            &secret,
            lang,
            &provider,
            kind,
            Some((StatusCode::BAD_REQUEST, lang.words().bad_form)),
        ));
    };
    let now = state.now_ms();
    let refused = |login: &OidcLogin| {
        code_page(
            login,
            &secret,
            lang,
            &provider,
            kind,
            Some((StatusCode::UNPROCESSABLE_ENTITY, m.refused)),
        )
    };
    // An address that sent many wrong codes waits before any is looked at.
    if state.sources.may_try_code(source, now).is_err() {
        return Ok(refused(&login));
    }
    let identity = login.hardware_identity_id;
    // The chosen kind must be the person's device's: a person without a
    // code reader who picks it fails like a wrong code.
    let device_kind_ok = match identity {
        Some(id) => check::usable_device(&*state.store, id, now)
            .await
            .map_err(|e| Failure::from(e).with(lang))?
            .is_some_and(|d| d.kind == kind),
        None => false,
    };
    let (outcome, serial, recorded) = check::check_code(
        &*state.store,
        (&state.kek, &state.code_device_turns),
        identity.filter(|_| device_kind_ok),
        typed.trim(),
        now,
    )
    .await
    .map_err(|e| Failure::from(e).with(lang))?;
    match (outcome, serial) {
        (CodeOutcome::Passed, Some(serial)) => {
            let passed = state
                .store
                .pass_oidc_first_factor(login.id, login.method, serial)
                .await
                .map_err(|e| Failure::from(e).with(lang))?;
            if !passed {
                return Err(Failure(lang, Refusal::AlreadyDone));
            }
            Ok(see_other(&format!("{}/access-code", login_path(login.id))))
        }
        _ => {
            state.sources.wrong_code(source, now);
            // No device of this kind (or none at all, or an unknown user
            // ID): the write a real device's failure makes.
            if recorded.is_none() {
                super::stand_in_write(&state, now)
                    .await
                    .map_err(|e| Failure::from(e).with(lang))?;
            }
            Ok(refused(&login))
        }
    }
}

/// `GET /oidc/login/{login_id}/access-code`: the access code's page (after
/// the code passed).
#[utoipa::path(get, path = "/oidc/login/{login_id}/access-code", tag = "oidc login page",
    params(("login_id" = String, Path, description = "32 hex digits")),
    responses(
        (status = 200, description = "the page", content_type = "text/html", body = String),
        (status = 303, description = "the code's step first, or another method's step", headers(("Location" = String))),
        PageRefusals))]
pub(crate) async fn access_code_get(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let (login, secret, lang, _) = match code_login(&state, &raw_id, &headers).await? {
        Ok(found) => found,
        Err(elsewhere) => return Ok(elsewhere),
    };
    if login.first_factor.is_none() {
        return Ok(see_other(&format!("{}/code", login_path(login.id))));
    }
    let provider = provider_name(&state, &login)
        .await
        .map_err(|e| Failure::from(e).with(lang))?;
    Ok(access_code_page(&login, &secret, lang, &provider, None))
}

/// `POST /oidc/login/{login_id}/access-code`: the access code. Right: the
/// login is complete, and the page links back to the service provider with
/// the code. Wrong: the page again (three wrong in a row block the device).
#[utoipa::path(post, path = "/oidc/login/{login_id}/access-code", tag = "oidc login page",
    params(("login_id" = String, Path, description = "32 hex digits")),
    request_body(content = AccessCodeFormDoc, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "logged in: a page that takes the browser back to the redirect URI with code, state and iss", content_type = "text/html", body = String),
        (status = 303, description = "the code's step first, or another method's step", headers(("Location" = String))),
        (status = 400, description = "a stale page (CSRF token) or a malformed form: the page again", content_type = "text/html", body = String),
        (status = 422, description = "the access code did not pass (one answer whatever the reason): the page again", content_type = "text/html", body = String),
        (status = 413, description = "payload_too_large", body = ErrorBody),
        PageRefusals))]
pub(crate) async fn access_code_post(
    State(state): State<AppState>,
    Source(source): Source,
    Path(raw_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Failure> {
    let (login, secret, lang, _) = match code_login(&state, &raw_id, &headers).await? {
        Ok(found) => found,
        Err(elsewhere) => return Ok(elsewhere),
    };
    let Some(serial) = login.first_factor.clone() else {
        return Ok(see_other(&format!("{}/code", login_path(login.id))));
    };
    let provider = provider_name(&state, &login)
        .await
        .map_err(|e| Failure::from(e).with(lang))?;
    let Some(typed) = form_field(&headers, &body, &secret, "access_code") else {
        return Ok(access_code_page(
            &login,
            &secret,
            lang,
            &provider,
            Some((StatusCode::BAD_REQUEST, lang.words().bad_form)),
        ));
    };
    let now = state.now_ms();
    let refused = || {
        access_code_page(
            &login,
            &secret,
            lang,
            &provider,
            Some((StatusCode::UNPROCESSABLE_ENTITY, lang.methods().refused)),
        )
    };
    if state.sources.may_try_code(source, now).is_err() {
        return Ok(refused());
    }
    // One check of the device at a time, held to the end: tries sent at
    // once would all read the failures before any of them was counted.
    let Some(_turn) = state.code_device_turns.take(&serial) else {
        state.sources.wrong_code(source, now);
        return Ok(refused());
    };
    let store_failed = |e| Failure::from(e).with(lang);
    // The device must still be the identity's, active and unblocked (a block
    // or a block of the identity since the code step stops here too).
    let device = match login.hardware_identity_id {
        Some(identity) => check::usable_device(&*state.store, identity, now)
            .await
            .map_err(store_failed)?
            .filter(|d| d.serial == serial),
        None => None,
    };
    let Some(device) = device else {
        state.sources.wrong_code(source, now);
        return Ok(refused());
    };
    let Some(stored) = device.access_code_hash.clone() else {
        return Ok(refused());
    };
    // Argon2id takes tens of milliseconds of CPU: off the async workers.
    let right = tokio::task::spawn_blocking(move || crate::access_code::verify(&stored, &typed))
        .await
        .unwrap_or(false);
    if !right {
        state.sources.wrong_code(source, now);
        state
            .store
            .record_code_device_attempt(&serial, CodeAttempt::WrongAccessCode, now)
            .await
            .map_err(store_failed)?;
        return Ok(refused());
    }
    let client = crate::api::oidc_client_of(&state, &login.client_id)
        .await
        .map_err(store_failed)?
        .ok_or(Failure(lang, Refusal::BadLink))?;
    let Some(identity_id) = device.identity_id else {
        return Err(Failure(lang, Refusal::Internal));
    };
    let receipt = HardwareReceiptBody {
        login_id: login.id.0,
        identity_id,
        method: login.method.as_str().to_owned(),
        authenticator_sha256: eid_protocol::sha256(serial.as_bytes()),
        service_provider_id: client.service_provider_id,
        completed_at_ms: now,
    };
    let signature = state.signing_key.sign(&receipt.signing_bytes());
    let code = new_handle();
    let completed = state
        .store
        .complete_oidc_login_by_hardware(
            login.id,
            SignedHardwareReceipt { receipt, signature },
            handle_sha256(&code),
            now.saturating_add(CODE_LIFETIME_MS),
        )
        .await
        .map_err(store_failed)?;
    if !completed {
        return Err(Failure(lang, Refusal::AlreadyDone));
    }
    state
        .store
        .record_code_device_attempt(&serial, CodeAttempt::LoggedIn, now)
        .await
        .map_err(store_failed)?;
    tracing::info!(login = %login.id, method = login.method.as_str(), "login completed by a code device");
    back_to_provider(&state, &login, (&uri, &headers), lang, &code, &provider)
}

/// The page that ends a login completed on this origin's form: it takes the
/// browser back to the redirect URI with `code`, `state` and `iss` by a link
/// and an immediate refresh. A redirect of the form's post would be refused
/// by the browser: the pages' `form-action 'self'` applies to a post's
/// redirects too.
pub(crate) fn back_to_provider(
    state: &AppState,
    login: &OidcLogin,
    (uri, headers): (&Uri, &HeaderMap),
    lang: Lang,
    code: &str,
    provider: &str,
) -> Result<Response, Failure> {
    let issuer = crate::api::oidc::issuer(state, uri, headers)
        .map_err(|_| Failure(lang, Refusal::BadLink))?;
    let mut back =
        url::Url::parse(&login.params.redirect_uri).map_err(|_| Failure(lang, Refusal::BadLink))?;
    {
        let mut q = back.query_pairs_mut();
        q.append_pair("code", code);
        if let Some(s) = &login.params.state {
            q.append_pair("state", s);
        }
        q.append_pair("iss", &issuer);
    }
    let path = login_path(login.id);
    Ok(html(
        StatusCode::OK,
        DonePage {
            page: Frame::new(lang, &path),
            provider,
            back_href: back.to_string(),
        },
    ))
}
