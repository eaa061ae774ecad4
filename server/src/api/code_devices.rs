//! `POST /v1/code-devices/activate`: a person activates a code device with
//! support's activation code, two consecutive codes from the device and a
//! new access code (docs/authenticators.md). No credentials: behind the
//! per-address limit and the origin check like the app's activation, and a
//! source that sends wrong activation codes waits longer each time.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use eid_protocol::wire::{
    ActivateCodeDeviceRequest, CodeDeviceActivated, CodeDeviceActivationRequested, ErrorBody,
    ErrorCode, RequestCodeDeviceActivation,
};
use eid_protocol::{RequestId, RequestKind, SELF_SERVICE_PROVIDER_ID, SELF_SERVICE_PROVIDER_NAME};
use zeroize::Zeroizing;

use super::guard::Source;
use super::rp::{RetryLater, retry_later};
use super::{ACTIVATION_CODE_MAX_TRIES, ApiJson, AppState};
use crate::code_devices::activation::{ActivationInput, ActivationOutcome, activate_by_support};
use crate::error::ApiError;

/// The path of the activation.
pub(crate) const PATH_ACTIVATE_CODE_DEVICE: &str = "/v1/code-devices/activate";
/// The path of an activation approved in the app.
pub(crate) const PATH_CODE_DEVICE_ACTIVATION_REQUESTS: &str =
    "/v1/code-devices/activation-requests";

/// Activates an unassigned code device on the person's identity.
#[utoipa::path(post, path = "/v1/code-devices/activate", tag = "code devices",
    request_body = ActivateCodeDeviceRequest,
    responses(
        (status = 201, body = CodeDeviceActivated),
        (status = 400, description = "malformed_request, or invalid_parameter: the access code breaks a rule (the message says which)", body = ErrorBody),
        (status = 403, description = "invalid_activation_code: the user ID, activation code, serial number or codes do not match a usable activation (one answer for all), or origin_refused", body = ErrorBody),
        (status = 409, description = "code_device_exists: the person has an active code device; a second one replaces it only through the app", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not declared application/json", body = ErrorBody),
        (status = 429, description = "rate_limited: too many calls, or too many wrong codes, from this address; see the Retry-After header",
            body = ErrorBody,
            headers(("Retry-After" = u64, description = "seconds until this address may call again")))))]
pub(crate) async fn activate(
    State(state): State<AppState>,
    Source(source): Source,
    ApiJson(req): ApiJson<ActivateCodeDeviceRequest>,
) -> Result<(StatusCode, Json<CodeDeviceActivated>), RetryLater> {
    let now = state.now_ms();
    if let Err(wait) = state.sources.may_try_code(source, now) {
        return Err(retry_later(
            ErrorCode::RateLimited,
            "too many wrong activation codes from this address",
            wait,
        ));
    }
    if req.user_id.len() > 64
        || req.activation_code.len() > 32
        || req.serial.len() > 64
        || req.first_code.len() > 6
        || req.second_code.len() > 6
        || req.access_code.len() > 4 * crate::access_code::MAX_LEN
    {
        return Err(ApiError::malformed("a field is too long").into());
    }
    let serial = req.serial.trim().to_owned();
    let access_code = Zeroizing::new(req.access_code);
    let input = ActivationInput {
        user_id: req.user_id,
        activation_code: Zeroizing::new(req.activation_code),
        serial: serial.clone(),
        first_code: req.first_code,
        second_code: req.second_code,
        access_code_again: access_code.clone(),
        access_code,
    };
    match activate_by_support(
        &*state.store,
        &state.kek,
        input,
        ACTIVATION_CODE_MAX_TRIES,
        now,
    )
    .await?
    {
        ActivationOutcome::Activated(identity) => {
            tracing::info!(%identity, "code device activated by support's code");
            Ok((
                StatusCode::CREATED,
                Json(CodeDeviceActivated {
                    masked_serial: crate::code_devices::masked_serial(&serial),
                }),
            ))
        }
        ActivationOutcome::Refused => {
            state.sources.wrong_code(source, now);
            Err(ApiError::new(
                ErrorCode::InvalidActivationCode,
                "the user ID, activation code, serial number and codes do not match a usable activation",
            )
            .into())
        }
        ActivationOutcome::AlreadyHasOne => Err(ApiError::new(
            ErrorCode::CodeDeviceExists,
            "an active code device exists; replace it through the app",
        )
        .into()),
        ActivationOutcome::BadAccessCode(e) => {
            Err(ApiError::new(ErrorCode::InvalidParameter, format!("access_code: {e}")).into())
        }
        ActivationOutcome::AccessCodesDiffer => Err(ApiError::new(
            ErrorCode::InvalidParameter,
            "access_code: the two access codes differ",
        )
        .into()),
    }
}

/// Asks the person to approve, in the app, activating an unassigned code
/// device on their identity: a request of kind `code_device` from the eID
/// itself, with the loudest warning. On approval the device is active and a
/// code device the person had is deactivated, both notified on every
/// channel. The device's two codes prove the caller holds it; the access
/// code is chosen now and stored only on approval.
#[utoipa::path(post, path = "/v1/code-devices/activation-requests", tag = "code devices",
    request_body = RequestCodeDeviceActivation,
    responses(
        (status = 201, description = "the request waits in the app (for an unknown or blocked user ID a stand-in that none shows)", body = CodeDeviceActivationRequested),
        (status = 400, description = "malformed_request, or invalid_parameter: the access code breaks a rule, or the serial number and codes do not match an unassigned code device", body = ErrorBody),
        (status = 403, description = "origin_refused", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not declared application/json", body = ErrorBody),
        (status = 429, description = "rate_limited: too many calls, too many wrong codes, or too many activations for this user ID (known or not), from this address; see the Retry-After header",
            body = ErrorBody,
            headers(("Retry-After" = u64, description = "seconds until this address may call again")))))]
pub(crate) async fn request_activation(
    State(state): State<AppState>,
    Source(source): Source,
    ApiJson(req): ApiJson<RequestCodeDeviceActivation>,
) -> Result<(StatusCode, Json<CodeDeviceActivationRequested>), RetryLater> {
    let nothing = "the serial number and codes do not match an unassigned code device";
    match start_app_activation(&state, source, req, None).await {
        Ok(started) => Ok((
            StatusCode::CREATED,
            Json(CodeDeviceActivationRequested {
                request_id: started.request_id,
                expires_at_ms: started.expires_at_ms,
            }),
        )),
        Err(AppActivationRefused::WrongCodes(wait)) => Err(retry_later(
            ErrorCode::RateLimited,
            "too many wrong codes from this address",
            wait,
        )),
        Err(AppActivationRefused::TooLong) => {
            Err(ApiError::malformed("a field is too long").into())
        }
        Err(AppActivationRefused::AccessCode(e)) => {
            Err(ApiError::new(ErrorCode::InvalidParameter, format!("access_code: {e}")).into())
        }
        Err(AppActivationRefused::NoMatch) => {
            Err(ApiError::new(ErrorCode::InvalidParameter, nothing).into())
        }
        Err(AppActivationRefused::TooManyStarts(wait)) => Err(retry_later(
            ErrorCode::RateLimited,
            "too many activations for this user ID from this address",
            wait,
        )),
        Err(AppActivationRefused::Request(refused)) => Err(refused),
    }
}

/// Answers with a stand-in after as many durable writes as a real start
/// makes (the request, then the device's pending activation: two commits,
/// each waiting for an fsync of milliseconds), so the answer's time does not
/// tell a user ID with an app from one without (docs/threat-model.md).
/// `wrote`: the refused creation made one of them (`RetryLater::wrote`: a
/// fraud hold's first refusal records its event, and on PostgreSQL a
/// refusal whose lock waited for a concurrent create commits the lock).
async fn stand_in_after_writes(
    state: &AppState,
    stand_in: AppActivation,
    wrote: bool,
    now: u64,
) -> Result<AppActivation, AppActivationRefused> {
    if !wrote {
        crate::web::stand_in_write(state, now).await?;
    }
    crate::web::stand_in_write(state, now).await?;
    Ok(stand_in)
}

/// An activation waiting in the app. For an unknown or blocked user ID it
/// is a stand-in: an id no request has, which lapses unseen (the caller
/// learns nothing about the user ID).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AppActivation {
    /// The request in the app (or the stand-in's id).
    pub(crate) request_id: RequestId,
    /// When it lapses.
    pub(crate) expires_at_ms: u64,
}

/// Why an activation by approval in the app did not start.
pub(crate) enum AppActivationRefused {
    /// This address sent too many wrong codes: wait this many milliseconds.
    WrongCodes(u64),
    /// A field is longer than any valid value.
    TooLong,
    /// The chosen access code breaks a rule.
    AccessCode(crate::access_code::AccessCodeError),
    /// The serial number and codes match no unassigned code device (one
    /// answer for every mismatch; counted against the address).
    NoMatch,
    /// This address started enough activations for this user ID (known or
    /// not) for now: wait this many milliseconds.
    TooManyStarts(u64),
    /// The request could not be created (a limit of the address or the
    /// service; the person's own limits give the stand-in instead).
    Request(RetryLater),
}

impl From<crate::store::StoreError> for AppActivationRefused {
    fn from(e: crate::store::StoreError) -> Self {
        AppActivationRefused::Request(ApiError::from(e).into())
    }
}

/// Starts an activation approved in the app: checks the device's two codes
/// and the access code's rules, creates the request of kind `code_device`
/// (with `binding` when a page shows a binding code for it) and records the
/// device, the step and the access code's hash with it. The API and the
/// self-service page both start here.
pub(crate) async fn start_app_activation(
    state: &AppState,
    source: std::net::IpAddr,
    req: RequestCodeDeviceActivation,
    binding: Option<eid_protocol::binding::StoredBinding>,
) -> Result<AppActivation, AppActivationRefused> {
    use crate::code_devices::activation::consecutive_step;
    let now = state.now_ms();
    state
        .sources
        .may_try_code(source, now)
        .map_err(AppActivationRefused::WrongCodes)?;
    if req.user_id.len() > 64
        || req.serial.len() > 64
        || req.first_code.len() > 6
        || req.second_code.len() > 6
        || req.access_code.len() > 4 * crate::access_code::MAX_LEN
    {
        return Err(AppActivationRefused::TooLong);
    }
    let access_code = Zeroizing::new(req.access_code);
    let chosen = crate::access_code::check(&access_code, &req.user_id)
        .map_err(AppActivationRefused::AccessCode)?;
    let serial = req.serial.trim().to_owned();
    let device = state
        .store
        .code_device(&serial)
        .await?
        .filter(|d| d.state == crate::store::CodeDeviceState::Unassigned);
    let step = device.as_ref().and_then(|d| {
        let seed = state.kek.open(&d.serial, &d.sealed_seed).ok()?;
        consecutive_step(
            d.params(),
            &seed,
            req.first_code.trim(),
            req.second_code.trim(),
            now,
        )
    });
    let Some(step) = step else {
        state.sources.wrong_code(source, now);
        return Err(AppActivationRefused::NoMatch);
    };
    // Each start asks the person in the app: one address gets a few per
    // user ID an hour, known or not (docs/threat-model.md, "Strangers who
    // know a user ID"), so a stranger with a device cannot fill the
    // person's app and use up the person's own request limits. Counted
    // after the codes, before their step is used.
    state
        .sources
        .start(
            crate::api::sources::StartKind::CodeDevice,
            source,
            &crate::userid::fold(&req.user_id),
            now,
        )
        .map_err(AppActivationRefused::TooManyStarts)?;
    // The codes' step is used before the user ID is looked at, for a known
    // user ID and a stand-in alike: codes sent again get the same refusal
    // whoever they name (else the refusal would tell that the first try
    // reached a real person), and never make a request in anyone's app.
    if !state.store.use_unassigned_code_step(&serial, step).await? {
        return Err(AppActivationRefused::NoMatch);
    }
    let hash = tokio::task::spawn_blocking(move || crate::access_code::hash(&chosen))
        .await
        .map_err(|_| {
            AppActivationRefused::Request(
                ApiError::new(ErrorCode::Internal, "hashing failed").into(),
            )
        })?;
    let masked = crate::code_devices::masked_serial(&serial);
    let internal = |what: &str| {
        AppActivationRefused::Request(ApiError::new(ErrorCode::Internal, what.to_owned()).into())
    };
    let text = eid_protocol::text::normalize_reference_text(&format!(
        "Tilføj kodeviser eller kodeoplæser med serienummer {masked}"
    ))
    .map_err(|_| internal("the request's text"))?;
    let created = crate::api::rp::create_for_provider(
        state,
        (
            SELF_SERVICE_PROVIDER_ID,
            SELF_SERVICE_PROVIDER_NAME.to_owned(),
        ),
        RequestKind::CodeDevice,
        &req.user_id,
        text,
        binding,
        now,
    )
    .await;
    let stand_in = AppActivation {
        request_id: crate::ids::request_id(now),
        expires_at_ms: now.saturating_add(state.config.request_lifetime_secs.saturating_mul(1000)),
    };
    let request = match created {
        Ok(crate::api::rp::Created::Request(r)) => r,
        Ok(crate::api::rp::Created::UnknownIdentity) => {
            return stand_in_after_writes(state, stand_in, false, now).await;
        }
        Err(refused) if refused.about_the_person => {
            return stand_in_after_writes(state, stand_in, refused.wrote, now).await;
        }
        Err(refused) => return Err(AppActivationRefused::Request(refused)),
    };
    let identity_id = state
        .store
        .request(request.request_id)
        .await?
        .map(|r| r.envelope.identity_id)
        .ok_or_else(|| internal("the request vanished"))?;
    let recorded = state
        .store
        .request_code_device_activation(&serial, identity_id, request.request_id, step, hash)
        .await?;
    if !recorded {
        // Another activation used a later step of the device in between, or
        // the phone decided the request before the activation was recorded
        // (then the cancel finds it decided, and the device stays unassigned).
        state
            .store
            .cancel_request(request.request_id, SELF_SERVICE_PROVIDER_ID, now)
            .await?;
        state.waiters.wake(request.request_id);
        return Err(AppActivationRefused::NoMatch);
    }
    tracing::info!(request = %request.request_id, "code device activation waits for the app");
    Ok(AppActivation {
        request_id: request.request_id,
        expires_at_ms: request.expires_at_ms,
    })
}
