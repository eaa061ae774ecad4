//! The app's list of the person's hardware authenticators (code devices and
//! chip; docs/integration.md) and their deactivation.
//!
//! Listing is a signed device call like a pull. Deactivating is the app's
//! existing PIN-proved pattern (as turning "notify me on every use" off):
//! the device key signs the call and the PIN key signs a
//! [`HardwareDeactivation`], after the person swiped to confirm. A wrong
//! PIN counts toward the central lockout. The request-of-its-own-kind
//! pattern is not used: the action is the person's own, on their own phone,
//! and needs no second device.

use axum::Json;
use axum::extract::State;
use eid_protocol::messages::HardwareDeactivation;
use eid_protocol::wire::{
    self, DeactivateHardwareRequest, DeactivateHardwareResponse, ErrorBody, ErrorCode,
    HardwareListRequest, HardwareListResponse,
};

use super::AppState;
use super::device::verify_pin_proof;
use super::signed::{DeviceSigned, SignedBody, Signers};
use crate::chip::ChipError;
use crate::chip::list::{DeactivateOutcome, chip_info, deactivate, hardware_list};
use crate::error::{ApiError, ApiResult};
use crate::store::ChipId;

impl SignedBody for HardwareListRequest {
    const PATH: &'static str = wire::PATH_DEVICE_HARDWARE;
    const MALFORMED: &'static str = "invalid hardware list body";

    fn signers(&self) -> Signers {
        Signers::Authenticators(vec![self.authenticator_id])
    }
}

impl SignedBody for DeactivateHardwareRequest {
    const PATH: &'static str = wire::PATH_DEVICE_HARDWARE_DEACTIVATE;
    const MALFORMED: &'static str = "invalid hardware deactivation body";

    fn signers(&self) -> Signers {
        Signers::Authenticators(vec![self.authenticator_id])
    }
}

impl From<ChipError> for ApiError {
    fn from(e: ChipError) -> Self {
        tracing::error!(error = %e, "hardware authenticators: chip failed");
        ApiError::new(ErrorCode::Internal, "the server failed; retry later")
    }
}

/// Lists the person's hardware authenticators (kind, masked serial, state,
/// added, last use, works from). Signed by the device key like a pull.
#[utoipa::path(post, path = "/v1/device/hardware", tag = "device", request_body = HardwareListRequest,
    params(
        ("eid-timestamp" = String, Header, description = "device clock, Unix milliseconds"),
        ("eid-nonce" = String, Header, description = "single-use nonce, 32 hex digits"),
        ("eid-signature" = String, Header, description = "authenticator_id:base64url(DER signature)")),
    responses(
        (status = 200, body = HardwareListResponse),
        (status = 400, body = ErrorBody),
        (status = 401, description = "invalid_signature or clock_skew", body = ErrorBody),
        (status = 403, description = "authenticator_locked", body = ErrorBody),
        (status = 404, description = "unknown_authenticator", body = ErrorBody),
        (status = 409, description = "replayed_nonce", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not declared application/json", body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    DeviceSigned { body: req, .. }: DeviceSigned<HardwareListRequest>,
) -> ApiResult<Json<HardwareListResponse>> {
    let authenticator = super::device::unlocked_authenticator(&state, req.authenticator_id).await?;
    let hardware = hardware_list(&state, authenticator.identity_id).await?;
    Ok(Json(HardwareListResponse { hardware }))
}

/// Deactivates one hardware authenticator of the person (a pending chip:
/// cancels its registration), recorded and notified on every channel.
/// Signed by the device key; `pin_proof` is the PIN key's signature over the
/// [`HardwareDeactivation`].
#[utoipa::path(post, path = "/v1/device/hardware/deactivate", tag = "device", request_body = DeactivateHardwareRequest,
    params(
        ("eid-timestamp" = String, Header, description = "device clock, Unix milliseconds"),
        ("eid-nonce" = String, Header, description = "single-use nonce, 32 hex digits"),
        ("eid-signature" = String, Header, description = "authenticator_id:base64url(DER signature)")),
    responses(
        (status = 200, body = DeactivateHardwareResponse),
        (status = 400, body = ErrorBody),
        (status = 401, description = "invalid_signature or clock_skew (also of the PIN proof)", body = ErrorBody),
        (status = 403, description = "wrong_pin (the PIN proof), authenticator_locked", body = ErrorBody),
        (status = 404, description = "unknown_authenticator, unknown_hardware (no such hardware authenticator of this person)", body = ErrorBody),
        (status = 409, description = "replayed_nonce", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not declared application/json", body = ErrorBody)))]
pub(crate) async fn deactivate_one(
    State(state): State<AppState>,
    DeviceSigned { body: req, .. }: DeviceSigned<DeactivateHardwareRequest>,
) -> ApiResult<Json<DeactivateHardwareResponse>> {
    let authenticator = super::device::unlocked_authenticator(&state, req.authenticator_id).await?;
    let message = HardwareDeactivation {
        authenticator_id: authenticator.id,
        hardware_id: req.hardware_id.clone(),
        issued_at_ms: req.pin_proof.issued_at_ms,
        nonce: req.pin_proof.nonce,
    }
    .signing_bytes();
    verify_pin_proof(&state, &authenticator, &message, &req.pin_proof).await?;
    let unknown = || ApiError::new(ErrorCode::UnknownHardware, "no such hardware authenticator");
    // A chip's id first; an id no chip of this person has may be one of
    // their code devices (both are 32 hex digits, neither guessable from
    // the other's kind).
    if let Some(id) = ChipId::parse(&req.hardware_id) {
        match deactivate(&state, authenticator.identity_id, id).await? {
            DeactivateOutcome::Unknown => {}
            DeactivateOutcome::Deactivated | DeactivateOutcome::AlreadyDeactivated => {
                tracing::info!(authenticator = %authenticator.id, "chip deactivated from the app");
                let now = state.now_ms();
                let chip = state
                    .store
                    .chips_of(authenticator.identity_id)
                    .await?
                    .into_iter()
                    .find(|c| c.id == id)
                    .ok_or_else(unknown)?;
                return Ok(Json(DeactivateHardwareResponse {
                    hardware: chip_info(&chip, now),
                }));
            }
        }
    }
    let device = state
        .store
        .code_devices_of(authenticator.identity_id)
        .await?
        .into_iter()
        .find(|d| crate::code_devices::hardware_id(&d.serial) == req.hardware_id)
        .ok_or_else(unknown)?;
    let now = state.now_ms();
    // Already deactivated is an answer, not an error: the app may resend
    // after losing the first answer.
    state
        .store
        .deactivate_code_device(authenticator.identity_id, &device.serial, now)
        .await?;
    tracing::info!(authenticator = %authenticator.id, "code device deactivated from the app");
    let device = state
        .store
        .code_device(&device.serial)
        .await?
        .ok_or_else(unknown)?;
    Ok(Json(DeactivateHardwareResponse {
        hardware: crate::code_devices::listed(&device, now),
    }))
}
