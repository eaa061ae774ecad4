//! `POST /v1/code-devices/activate`: a person activates a code device with
//! support's activation code, two consecutive codes from the device and a
//! new access code (docs/authenticators.md). No credentials: behind the
//! per-address limit and the origin check like the app's activation, and a
//! source that sends wrong activation codes waits longer each time.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use eid_protocol::wire::{ActivateCodeDeviceRequest, CodeDeviceActivated, ErrorBody, ErrorCode};
use zeroize::Zeroizing;

use super::guard::Source;
use super::rp::{RetryLater, retry_later};
use super::{ACTIVATION_CODE_MAX_TRIES, ApiJson, AppState};
use crate::code_devices::activation::{ActivationInput, ActivationOutcome, activate_by_support};
use crate::error::ApiError;

/// The path of the activation.
pub(crate) const PATH_ACTIVATE_CODE_DEVICE: &str = "/v1/code-devices/activate";

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
