//! The self-service page where a person activates a code device with the
//! activation code from support (docs/authenticators.md):
//! `/self-service/code-device`. The same rules as the API's
//! `POST /v1/code-devices/activate` (`crate::code_devices::activation`):
//! one answer for every mismatch, a wrong activation code counted, the
//! address waiting after many wrong codes.
//!
//! The page has no login of its own, so its form is protected by a
//! double-submit token: a random value in an HttpOnly, SameSite=Strict
//! cookie and the same value in the form; another site can neither read the
//! cookie nor make the browser send it with its own post (and the origin
//! check refuses such posts anyway).

use askama::Template;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::cookie;
use super::login::{Frame, html, param, query_params};
use super::texts::Lang;
use crate::api::AppState;
use crate::api::guard::Source;
use crate::code_devices::activation::{ActivationInput, ActivationOutcome, activate_by_support};

/// The page.
pub(crate) const PATH: &str = "/self-service/code-device";
/// The form's double-submit cookie.
const CSRF_COOKIE: &str = "__Secure-eid_code_device";

#[derive(Template)]
#[template(path = "code_device_activate.html")]
struct ActivatePage<'a> {
    page: Frame,
    action: &'static str,
    csrf: String,
    user_id: &'a str,
    serial: &'a str,
    error: Option<&'static str>,
    done: Option<&'static str>,
}

/// The activation form as the OpenAPI document describes it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Read by the document only; the handler parses the body itself.
pub(crate) struct ActivateFormDoc {
    /// The page's token (also in its cookie).
    csrf: String,
    /// The person's user ID.
    #[schema(max_length = 64)]
    user_id: String,
    /// The activation code from support.
    #[schema(max_length = 32)]
    activation_code: String,
    /// The device's serial number.
    #[schema(max_length = 64)]
    serial: String,
    /// A code from the device.
    #[schema(max_length = 6)]
    first_code: String,
    /// The device's next code.
    #[schema(max_length = 6)]
    second_code: String,
    /// The access code chosen.
    #[schema(max_length = 256)]
    access_code: String,
    /// The access code again.
    #[schema(max_length = 256)]
    access_code_again: String,
}

fn lang_of(query: &[(String, String)], headers: &HeaderMap) -> Lang {
    param(query, "lang")
        .and_then(Lang::parse)
        .or_else(|| {
            headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(Lang::from_accept_language)
        })
        .unwrap_or(Lang::Da)
}

fn page(
    lang: Lang,
    status: StatusCode,
    csrf: &str,
    (user_id, serial): (&str, &str),
    error: Option<&'static str>,
    done: Option<&'static str>,
) -> Response {
    let mut response = html(
        status,
        ActivatePage {
            page: Frame::new(lang, PATH),
            action: PATH,
            csrf: csrf.to_owned(),
            user_id,
            serial,
            error,
            done,
        },
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{CSRF_COOKIE}={csrf}; Path={PATH}; Secure; HttpOnly; SameSite=Strict; Max-Age=3600"
    )) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// `GET /self-service/code-device`: the activation form.
#[utoipa::path(get, path = "/self-service/code-device", tag = "self-service pages",
    params(("lang" = Option<String>, Query, description = "da or en")),
    responses(
        (status = 200, description = "the form, with its token's cookie", content_type = "text/html", body = String,
            headers(("Set-Cookie" = String))),
        (status = 429, description = "rate_limited (per address)", body = eid_protocol::wire::ErrorBody)))]
pub(crate) async fn form(RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    let pairs = query_params(query.as_deref()).unwrap_or_default();
    let lang = lang_of(&pairs, &headers);
    let csrf = crate::oidc::new_handle();
    page(lang, StatusCode::OK, &csrf, ("", ""), None, None)
}

/// `POST /self-service/code-device`: activates the device, or the form
/// again with one message.
#[utoipa::path(post, path = "/self-service/code-device", tag = "self-service pages",
    params(("lang" = Option<String>, Query, description = "da or en")),
    request_body(content = ActivateFormDoc, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "activated: the page says so", content_type = "text/html", body = String),
        (status = 400, description = "a stale page (token) or a malformed form: the form again", content_type = "text/html", body = String),
        (status = 403, description = "origin_refused: a post from another site's page", body = eid_protocol::wire::ErrorBody),
        (status = 409, description = "the person has a code device; a second one is approved in the app", content_type = "text/html", body = String),
        (status = 413, description = "payload_too_large", body = eid_protocol::wire::ErrorBody),
        (status = 422, description = "refused (one answer for every mismatch), or the access code breaks a rule: the form again", content_type = "text/html", body = String),
        (status = 429, description = "rate_limited (per address), or too many wrong codes from this address", content_type = "text/html", body = String),
        (status = 500, description = "the store failed", content_type = "text/html", body = String)))]
pub(crate) async fn submit(
    State(state): State<AppState>,
    Source(source): Source,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let pairs = query_params(query.as_deref()).unwrap_or_default();
    let lang = lang_of(&pairs, &headers);
    let m = lang.methods();
    let fresh = crate::oidc::new_handle();
    let form_ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let fields: Vec<(String, Zeroizing<String>)> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), Zeroizing::new(v.into_owned())))
        .collect();
    let one = |name: &str| {
        let mut values = fields.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
        let first = values.next().cloned();
        values.next().is_none().then_some(first).flatten()
    };
    let token_ok = match (one("csrf"), cookie(&headers, CSRF_COOKIE)) {
        (Some(sent), Some(kept)) => bool::from(sent.as_bytes().ct_eq(kept.as_bytes())),
        _ => false,
    };
    let names = [
        "user_id",
        "activation_code",
        "serial",
        "first_code",
        "second_code",
        "access_code",
        "access_code_again",
    ];
    let values: Option<Vec<Zeroizing<String>>> = names.iter().map(|n| one(n)).collect();
    let (Some(values), true, true) = (values, form_ok, token_ok) else {
        return page(
            lang,
            StatusCode::BAD_REQUEST,
            &fresh,
            ("", ""),
            Some(lang.words().bad_form),
            None,
        );
    };
    let [
        user_id,
        activation_code,
        serial,
        first,
        second,
        access,
        again,
    ]: [Zeroizing<String>; 7] = match values.try_into() {
        Ok(all) => all,
        Err(_) => return page(lang, StatusCode::BAD_REQUEST, &fresh, ("", ""), None, None),
    };
    let shown = (user_id.trim(), serial.trim());
    if user_id.len() > 64 || serial.len() > 64 || activation_code.len() > 32 {
        return page(
            lang,
            StatusCode::UNPROCESSABLE_ENTITY,
            &fresh,
            ("", ""),
            Some(m.activation_refused),
            None,
        );
    }
    let now = state.now_ms();
    if state.sources.may_try_code(source, now).is_err() {
        return page(
            lang,
            StatusCode::TOO_MANY_REQUESTS,
            &fresh,
            shown,
            Some(lang.words().busy),
            None,
        );
    }
    let input = ActivationInput {
        user_id: user_id.trim().to_owned(),
        activation_code,
        serial: serial.trim().to_owned(),
        first_code: first.to_string(),
        second_code: second.to_string(),
        access_code: access,
        access_code_again: again,
    };
    let outcome = activate_by_support(
        &*state.store,
        &state.kek,
        input,
        crate::api::ACTIVATION_CODE_MAX_TRIES,
        now,
    )
    .await;
    let (status, error, done) = match outcome {
        Ok(ActivationOutcome::Activated(_)) => (StatusCode::OK, None, Some(m.activated)),
        Ok(ActivationOutcome::Refused) => {
            state.sources.wrong_code(source, now);
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(m.activation_refused),
                None,
            )
        }
        Ok(ActivationOutcome::AlreadyHasOne) => {
            (StatusCode::CONFLICT, Some(m.already_has_one), None)
        }
        Ok(ActivationOutcome::AccessCodesDiffer) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(m.access_codes_differ),
            None,
        ),
        Ok(ActivationOutcome::BadAccessCode(_)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(m.weak_access_code),
            None,
        ),
        Err(e) => {
            tracing::error!(error = %e, "code device activation page: store failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Some(lang.words().busy),
                None,
            )
        }
    };
    page(lang, status, &fresh, shown, error, done)
}
