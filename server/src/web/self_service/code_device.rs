//! Taking a code device into use by an approval in the app, on the web
//! (docs/authenticators.md, "Activation"): `/self-service/code-device/app`.
//!
//! The person types their user ID, the device's serial number, two
//! consecutive codes from it and a new access code; the page then starts
//! the same activation request as the API
//! (`crate::api::code_devices::start_app_activation`: kind `code_device`,
//! the loudest warning in the app, every channel notified on approval), but
//! bound to this browser by a rotating binding code that the person types
//! in the app, as on the sign-in page. So a caller who talks a person into
//! approving cannot use an activation they started on their own screen: the
//! app asks for the code shown where the request was started.
//!
//! An unknown or blocked user ID gets a stand-in code that no app will ask
//! for, so the page is no user-ID oracle. The form needs no sign-in: the
//! device's codes prove that the browser holds the device, the approval that
//! the person consents. Its CSRF token is derived from the sign-in form's
//! random cookie; the waiting activation lives in a sealed cookie of its own
//! purpose ([`token`]).

use zeroize::Zeroizing;

use super::*;
use crate::api::code_devices::{AppActivationRefused, start_app_activation};

/// The page.
pub(crate) const PATH_CODE_DEVICE_APP: &str = "/self-service/code-device/app";
/// Its live status while the request waits in the app.
pub(crate) const PATH_CODE_DEVICE_APP_STATUS: &str = "/self-service/code-device/app/status";
/// The QR of the binding code shown now.
pub(crate) const PATH_CODE_DEVICE_APP_QR: &str = "/self-service/code-device/app/qr.svg";
/// The sealed activation request this browser started.
const DEVICE_COOKIE: &str = "__Host-eid_ss_device";

#[derive(Template)]
#[template(path = "code_device_app.html")]
struct FormPage<'a> {
    page: Frame,
    csrf: String,
    user_id: &'a str,
    serial: &'a str,
    error: Option<&'a str>,
    notice: Option<&'a str>,
}

/// The form as the OpenAPI document describes it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Read by the document only; the handler parses the body itself.
pub(crate) struct ByAppFormDoc {
    /// The page's token (derived from its cookie).
    csrf: String,
    /// The person's user ID.
    #[schema(max_length = 64)]
    user_id: String,
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

/// Where this browser's activation stands.
enum Stage {
    /// None started here (or one this server did not seal).
    None,
    /// Waiting in the app; shows this secret's codes until `expires_at_ms`.
    Waiting {
        secret: BindingSecret,
        expires_at_ms: u64,
    },
    /// Approved: the approval's own write took the device into use.
    Activated,
    /// The person refused in the app.
    Refused { fraud: bool },
    /// It lapsed, or was cancelled (a block, the call policy, a new start).
    Expired,
}

async fn stage_of(state: &AppState, headers: &HeaderMap, now: u64) -> Result<Stage, StoreError> {
    let Some(token) =
        cookie(headers, DEVICE_COOKIE).and_then(|s| token::open(state, Purpose::CodeDevice, s))
    else {
        return Ok(Stage::None);
    };
    let Some(request) = state.store.request(token.request_id).await? else {
        // The stand-in of an unknown or blocked user ID: waits, then lapses.
        let expires_at_ms = token
            .issued_at_ms
            .saturating_add(state.config.request_lifetime_secs.saturating_mul(1000));
        if now >= expires_at_ms {
            return Ok(Stage::Expired);
        }
        return Ok(Stage::Waiting {
            secret: stand_in_secret(&token),
            expires_at_ms,
        });
    };
    let e = &request.envelope;
    if e.kind != RequestKind::CodeDevice || e.service_provider_id != SELF_SERVICE_PROVIDER_ID {
        return Ok(Stage::None);
    }
    Ok(match request.status_at(now) {
        RequestStatus::Pending => match rotating(request.binding_code.as_deref()) {
            Some(secret) => Stage::Waiting {
                secret,
                expires_at_ms: e.expires_at_ms,
            },
            None => Stage::Expired,
        },
        RequestStatus::Approved => Stage::Activated,
        RequestStatus::Denied => Stage::Refused { fraud: false },
        RequestStatus::FraudReported => Stage::Refused { fraud: true },
        _ => Stage::Expired,
    })
}

/// The form, with a fresh form cookie when the browser has none.
fn form_page(
    lang: Lang,
    headers: &HeaderMap,
    status: StatusCode,
    (user_id, serial): (&str, &str),
    error: Option<&str>,
    notice: Option<&str>,
) -> Response {
    let kept = cookie(headers, FORM_COOKIE).filter(|v| v.len() == 64);
    let secret = kept.map_or_else(
        || hex::encode(eid_protocol::crypto::random_array::<32>()),
        str::to_owned,
    );
    let mut response = html(
        status,
        FormPage {
            page: Frame::new(lang, PATH_CODE_DEVICE_APP),
            csrf: csrf_token(&secret),
            user_id,
            serial,
            error,
            notice,
        },
    );
    if kept.is_none() {
        set_cookie(&mut response, FORM_COOKIE, &secret, None);
    }
    response
}

/// `GET /self-service/code-device/app`: the form, the code while the
/// request waits in the app, or how it ended.
#[utoipa::path(get, path = "/self-service/code-device/app", tag = "self-service pages",
    params(
        ("lang" = Option<String>, Query, description = "da or en"),
        ("again" = Option<String>, Query, description = "1: the form again, whatever waits")),
    responses(
        (status = 200, description = "the form, the waiting code, or the outcome", content_type = "text/html", body = String),
        (status = 429, description = "rate_limited (per address)", body = eid_protocol::wire::ErrorBody),
        (status = 500, description = "the store failed", content_type = "text/html", body = String)))]
pub(crate) async fn by_app_page(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let pairs = query_params(query.as_deref()).unwrap_or_default();
    let lang = lang_of(&pairs, &headers);
    let (w, m) = (lang.words(), lang.methods());
    let now = state.now_ms();
    let stage = if param(&pairs, "again") == Some("1") {
        Stage::None
    } else {
        stage_of(&state, &headers, now)
            .await
            .map_err(|e| Failure::from(e).with(lang))?
    };
    let ended = |message: &'static str| {
        let mut response = html(
            StatusCode::OK,
            OutcomePage {
                page: Frame::new(lang, PATH_CODE_DEVICE_APP),
                heading: m.by_app_heading,
                message,
                link_href: "/self-service/code-device/app?again=1",
                link_label: m.by_app_again,
            },
        );
        clear(&mut response, DEVICE_COOKIE);
        response
    };
    let response = match stage {
        Stage::Waiting {
            secret,
            expires_at_ms,
        } => waiting_page(
            lang,
            m.by_app_what.to_owned(),
            (PATH_CODE_DEVICE_APP_STATUS, PATH_CODE_DEVICE_APP_QR),
            {
                let (step, code) = shown_code(&secret, now);
                (code, step)
            },
            countdown(now, expires_at_ms),
            ("/self-service/code-device/app?again=1", m.by_app_again),
        ),
        Stage::Activated => ended(m.activated),
        Stage::Refused { fraud } => ended(if fraud { w.fraud } else { m.by_app_refused }),
        Stage::Expired => form_page(
            lang,
            &headers,
            StatusCode::OK,
            ("", ""),
            None,
            Some(w.expired),
        ),
        Stage::None => form_page(lang, &headers, StatusCode::OK, ("", ""), None, None),
    };
    Ok(with_lang(response, &pairs))
}

/// `POST /self-service/code-device/app`: checks the device's codes and the
/// access code, starts the request in the app, then shows its code.
#[utoipa::path(post, path = "/self-service/code-device/app", tag = "self-service pages",
    request_body(content = ByAppFormDoc, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "started: to the page with the binding code", headers(("Location" = String))),
        (status = 400, description = "a stale page (token) or a malformed form: the form again", content_type = "text/html", body = String),
        (status = 403, description = "no form cookie (another browser), or origin_refused", content_type = "text/html", body = String),
        (status = 413, description = "payload_too_large", body = eid_protocol::wire::ErrorBody),
        (status = 422, description = "the serial number and codes match no unassigned device (one answer for every mismatch), or the access code breaks a rule or differs: the form again", content_type = "text/html", body = String),
        (status = 429, description = "rate_limited, or too many wrong codes from this address: the form again", content_type = "text/html", body = String),
        (status = 500, description = "the store failed", content_type = "text/html", body = String)))]
pub(crate) async fn by_app_start(
    State(state): State<AppState>,
    Source(source): Source,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Failure> {
    let lang = lang_of(&[], &headers);
    let (w, m) = (lang.words(), lang.methods());
    let Some(secret) = cookie(&headers, FORM_COOKIE) else {
        return Err(Failure(lang, Refusal::OtherBrowser));
    };
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    // Parsed here rather than by `Form`, so the access codes are wiped.
    let fields: Vec<(String, Zeroizing<String>)> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), Zeroizing::new(v.into_owned())))
        .collect();
    let one = |name: &str| {
        let mut values = fields.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
        let first = values.next().cloned();
        values.next().is_none().then_some(first).flatten()
    };
    let csrf_ok = one("csrf")
        .is_some_and(|sent| bool::from(sent.as_bytes().ct_eq(csrf_token(secret).as_bytes())));
    let names = [
        "user_id",
        "serial",
        "first_code",
        "second_code",
        "access_code",
        "access_code_again",
    ];
    let values: Option<Vec<Zeroizing<String>>> = names.iter().map(|n| one(n)).collect();
    let bad_form = || {
        form_page(
            lang,
            &headers,
            StatusCode::BAD_REQUEST,
            ("", ""),
            Some(w.bad_form),
            None,
        )
    };
    let (Some(values), true, true) = (values, declared, csrf_ok) else {
        return Ok(bad_form());
    };
    let Ok([user_id, serial, first, second, access, again]) =
        <[Zeroizing<String>; 6]>::try_from(values)
    else {
        return Ok(bad_form());
    };
    let shown: (String, String) = (
        user_id.trim().chars().take(MAX_USER_ID_LEN).collect(),
        serial.trim().chars().take(64).collect(),
    );
    let again_page = |status: StatusCode, error: &'static str| {
        form_page(
            lang,
            &headers,
            status,
            (&shown.0, &shown.1),
            Some(error),
            None,
        )
    };
    if !bool::from(access.as_bytes().ct_eq(again.as_bytes())) {
        return Ok(again_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            m.access_codes_differ,
        ));
    }
    let now = state.now_ms();
    // An activation still waiting from this browser is withdrawn first (the
    // person starts again, e.g. after a typo).
    if let Some(previous) =
        cookie(&headers, DEVICE_COOKIE).and_then(|s| token::open(&state, Purpose::CodeDevice, s))
    {
        let cancelled = state
            .store
            .cancel_request(previous.request_id, SELF_SERVICE_PROVIDER_ID, now)
            .await
            .map_err(|e| Failure::from(e).with(lang))?;
        if cancelled == crate::store::CancelResult::Cancelled {
            state.waiters.wake(previous.request_id);
        }
    }
    let req = eid_protocol::wire::RequestCodeDeviceActivation {
        user_id: user_id.trim().to_owned(),
        serial: serial.trim().to_owned(),
        first_code: first.trim().to_owned(),
        second_code: second.trim().to_owned(),
        access_code: access.to_string(),
    };
    let binding = StoredBinding::Rotating(BindingSecret::random());
    let started = match start_app_activation(&state, source, req, Some(binding)).await {
        Ok(started) => started,
        Err(refused) => {
            let (status, error) = match refused {
                AppActivationRefused::WrongCodes(_) | AppActivationRefused::TooManyStarts(_) => {
                    (StatusCode::TOO_MANY_REQUESTS, w.busy)
                }
                AppActivationRefused::TooLong | AppActivationRefused::NoMatch => {
                    (StatusCode::UNPROCESSABLE_ENTITY, m.by_app_mismatch)
                }
                AppActivationRefused::AccessCode(_) => {
                    (StatusCode::UNPROCESSABLE_ENTITY, m.weak_access_code)
                }
                AppActivationRefused::Request(r) if r.error.code == ErrorCode::Internal => {
                    return Err(Failure(lang, Refusal::Internal));
                }
                AppActivationRefused::Request(_) => (StatusCode::TOO_MANY_REQUESTS, w.busy),
            };
            return Ok(again_page(status, error));
        }
    };
    let sealed = token::seal(
        &state,
        &Token::new(
            Purpose::CodeDevice,
            started.request_id,
            ChangeId([0; 16]),
            now,
        ),
    );
    let mut response = see_other(PATH_CODE_DEVICE_APP);
    set_cookie(
        &mut response,
        DEVICE_COOKIE,
        &sealed,
        Some(state.config.request_lifetime_secs),
    );
    Ok(response)
}

/// `GET /self-service/code-device/app/status`: what the page's script
/// shows every second.
#[utoipa::path(get, path = "/self-service/code-device/app/status", tag = "self-service pages",
    responses(
        (status = 200, description = "waiting (with the code), or where the page goes now", content_type = "application/json"),
        (status = 403, description = "no activation started in this browser"),
        (status = 429, description = "rate_limited (per address)", body = eid_protocol::wire::ErrorBody),
        (status = 500, description = "the store failed")))]
pub(crate) async fn by_app_status(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, StatusCode> {
    let lang = lang_of(&[], &headers);
    let (w, m) = (lang.words(), lang.methods());
    let now = state.now_ms();
    let stage = stage_of(&state, &headers, now)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    let status = match stage {
        Stage::None => return Err(StatusCode::FORBIDDEN),
        Stage::Waiting {
            secret,
            expires_at_ms,
        } => waiting(w, &secret, now, expires_at_ms),
        Stage::Activated => moving_on("approved", m.activated, PATH_CODE_DEVICE_APP),
        Stage::Refused { fraud } => moving_on(
            "refused",
            if fraud { w.fraud } else { m.by_app_refused },
            PATH_CODE_DEVICE_APP,
        ),
        Stage::Expired => moving_on("expired", w.expired, PATH_CODE_DEVICE_APP),
    };
    Ok(Json(status).into_response())
}

/// `GET /self-service/code-device/app/qr.svg`: the QR of the code shown now.
#[utoipa::path(get, path = "/self-service/code-device/app/qr.svg", tag = "self-service pages",
    responses(
        (status = 200, description = "the QR", content_type = "image/svg+xml"),
        (status = 404, description = "no activation waits in this browser"),
        (status = 429, description = "rate_limited (per address)", body = eid_protocol::wire::ErrorBody)))]
pub(crate) async fn by_app_qr(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, StatusCode> {
    let now = state.now_ms();
    let Ok(Stage::Waiting { secret, .. }) = stage_of(&state, &headers, now).await else {
        return Err(StatusCode::NOT_FOUND);
    };
    let (step, _) = shown_code(&secret, now);
    svg(&format!("{QR_PREFIX}{}", secret.code_for_step(step)))
}
