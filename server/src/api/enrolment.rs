//! Device API: a new device added from an existing one (docs/architecture.md §3;
//! the exchange in docs/protocol.md, "A new device from an existing one").
//!
//! The new phone asks (unsigned, proving possession of its two new keys) and
//! shows a code; the identity's existing phones get a new-device request with
//! the strongest warning, approved with PIN, swipe and that code. Approval
//! starts a waiting period (`new_device_wait_secs`, 1 hour) during which the
//! existing phones see the new device in their pull and can cancel it; every
//! step is a security event (app feed, SMS, e-mail). After the wait the new
//! phone's signed status poll activates it, if nothing was cancelled or
//! blocked and the device cap still holds.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use eid_protocol::crypto::random_array;
use eid_protocol::wire::{
    self, ActivateResponse, CancelEnrolmentRequest, EnrolmentCancelled, EnrolmentStarted,
    EnrolmentState, EnrolmentStatusRequest, EnrolmentStatusResponse, ErrorBody, ErrorCode,
    RequestStatus, StartEnrolmentRequest,
};
use eid_protocol::{
    AuthenticatorId, EnrolmentProof, IdentityId, RequestEnvelopeBody, RequestKind,
    SELF_SERVICE_PROVIDER_ID, SELF_SERVICE_PROVIDER_NAME,
};

use super::guard::Source;
use super::rp::{RetryLater, retry_later};
use super::signed::{DeviceSigned, bad_signature};
use super::sources::StartKind;
use super::{AppState, RawBody};
use crate::error::{ApiError, ApiResult};
use crate::limits::MAX_ENROLMENTS_PER_HOUR;
use crate::policy;
use crate::store::{
    CancelEnrolmentResult, Enrolment, EnrolmentPoll, EnrolmentStoredState, StartEnrolmentResult,
    StoredRequest,
};
use crate::userid;

/// Digits of the code the new device shows.
const CODE_DIGITS: usize = 8;

/// A fresh code: 8 decimal digits (easy to type on a phone; three wrong
/// codes cancel the request, so guessing has a 3 in 10^8 chance).
fn new_code() -> String {
    let mut out = String::with_capacity(CODE_DIGITS);
    while out.len() < CODE_DIGITS {
        for b in random_array::<16>() {
            // Rejection sampling: 250 is the largest multiple of 10 ≤ 256.
            if b < 250 && out.len() < CODE_DIGITS {
                out.push(char::from(b'0' + b % 10));
            }
        }
    }
    out
}

/// `YYYY-MM-DD HH:MM UTC` of a Unix time in milliseconds.
fn utc_minute(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// The reference text of a new-device request.
pub(crate) fn new_device_reference_text(requested_at_ms: u64) -> String {
    let when = utc_minute(requested_at_ms);
    format!(
        "Tilføj ny enhed til dit eID, bestilt {when}. Godkend kun, hvis du selv står med den nye telefon.\n\
         Add a new device to your eID, requested {when}. Approve only if you are holding the new phone yourself."
    )
}

fn started(e: &Enrolment) -> EnrolmentStarted {
    EnrolmentStarted {
        enrolment_id: e.id,
        code: e.code.clone(),
        qr_payload: format!("{}{}", wire::ENROLMENT_QR_PREFIX, e.code),
        expires_at_ms: e.expires_at_ms,
    }
}

/// A new device asks to be added to an identity. Unsigned (the device has no
/// authenticator yet): both new keys sign the enrolment proof. An unknown user
/// ID, a blocked identity, or an identity past the limits of all sources
/// together (several awaiting approval, or many this hour) gets the same
/// answer as a real enrolment, which is then never approved, so the endpoint
/// reveals no user IDs and cannot be used to flood a person with requests.
/// One source (client address) gets a few starts per user ID, known or not,
/// per hour, fewer after one of its enrolments was refused; past them it
/// alone is refused 429 (docs/threat-model.md, "Strangers who know a user
/// ID").
#[utoipa::path(post, path = "/v1/device/enrolments", tag = "device", request_body = StartEnrolmentRequest,
    responses(
        (status = 201, body = EnrolmentStarted),
        (status = 400, description = "malformed_request", body = ErrorBody),
        (status = 401, description = "invalid_signature", body = ErrorBody),
        (status = 403, description = "device_limit_reached, or origin_refused (a web page of another site)", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not declared application/json", body = ErrorBody),
        (status = 429, description = "rate_limited: too many calls, or too many starts for this user ID, from this address; see the Retry-After header",
            body = ErrorBody,
            headers(("Retry-After" = u64, description = "seconds until this address may call again")))))]
pub(crate) async fn start(
    State(state): State<AppState>,
    Source(source): Source,
    RawBody(body): RawBody,
) -> Result<(StatusCode, Json<EnrolmentStarted>), RetryLater> {
    let req: StartEnrolmentRequest =
        serde_json::from_slice(&body).map_err(|_| ApiError::malformed("invalid enrolment body"))?;
    for key in [&req.device_public_key, &req.pin_public_key] {
        key.validate()
            .map_err(|_| ApiError::malformed("a public key is not a valid P-256 point"))?;
    }
    if req.device_public_key == req.pin_public_key {
        return Err(ApiError::malformed("the device key and the PIN key must differ").into());
    }
    let proof = EnrolmentProof {
        user_id: &req.user_id,
        device_public_key: &req.device_public_key,
        pin_public_key: &req.pin_public_key,
    }
    .signing_bytes();
    req.device_public_key
        .verify(&proof, &req.device_signature)
        .map_err(|_| bad_signature("device signature"))?;
    req.pin_public_key
        .verify(&proof, &req.pin_signature)
        .map_err(|_| bad_signature("PIN signature"))?;

    let now = state.now_ms();
    let expires_at_ms = now.saturating_add(state.config.request_lifetime_secs.saturating_mul(1000));
    let code = new_code();
    let enrolment = Enrolment {
        id: AuthenticatorId::random(),
        identity_id: None,
        request_id: None,
        device_public_key: req.device_public_key,
        pin_public_key: req.pin_public_key,
        code: code.clone(),
        state: EnrolmentStoredState::AwaitingApproval,
        requested_at_ms: now,
        expires_at_ms,
        wait_ms: state.config.new_device_wait_secs.saturating_mul(1000),
        usable_at_ms: None,
    };
    let folded = userid::fold(&req.user_id);
    // Counted per source before anything is looked up, alike for every user
    // ID, so the refusal tells nothing about it.
    if let Err(wait) = state
        .sources
        .start(StartKind::Enrolment, source, &folded, now)
    {
        return Err(retry_later(
            ErrorCode::RateLimited,
            "too many new-device starts for this user ID from this address",
            wait,
        ));
    }
    // Through the eviction-aware lookup: a user ID changed meanwhile must not
    // be cached again under its old name.
    let identity_id = super::identity_id_of(&state, &folded).await?;
    // The request the existing devices see (signed here; the store re-checks
    // block, pending enrolments and the cap in its write). It is made and
    // signed for an unknown user ID too, so both answers cost the same.
    let envelope = RequestEnvelopeBody {
        request_id: crate::ids::request_id(now),
        identity_id: identity_id.unwrap_or_else(|| IdentityId(random_array())),
        kind: RequestKind::NewDevice,
        service_provider_id: SELF_SERVICE_PROVIDER_ID,
        service_provider_name: SELF_SERVICE_PROVIDER_NAME.to_owned(),
        reference_text: new_device_reference_text(now),
        created_at_ms: now,
        expires_at_ms,
        server_nonce: random_array(),
        binding_required: true,
    };
    let envelope_signature = state.signing_key.sign(&envelope.signing_bytes());
    let request = identity_id.map(|_| StoredRequest {
        envelope,
        envelope_signature,
        binding_code: Some(code),
        status: RequestStatus::Pending,
        decision: None,
    });
    let result = state
        .store
        .start_enrolment(
            enrolment,
            request,
            state.config.max_devices_per_identity,
            MAX_ENROLMENTS_PER_HOUR,
            now,
        )
        .await?;
    match result {
        StartEnrolmentResult::Started(e) | StartEnrolmentResult::Existing(e) => {
            tracing::info!(enrolment = %e.id, "device enrolment asked for");
            Ok((StatusCode::CREATED, Json(started(&e))))
        }
        StartEnrolmentResult::DeviceLimitReached => Err(ApiError::new(
            ErrorCode::DeviceLimitReached,
            "this identity has the most devices allowed; remove one first",
        )
        .into()),
    }
}

fn closed() -> ApiError {
    ApiError::new(
        ErrorCode::EnrolmentClosed,
        "the enrolment is over: refused, cancelled, expired or blocked; start again",
    )
}

/// The new device asks how its enrolment stands, signed by the new device key
/// (headers as for a pull, with the enrolment id in place of the authenticator
/// id). Once approved and the waiting period is over by the server's clock,
/// this call activates the new device: the answer then carries the
/// activation, as for a first activation.
#[utoipa::path(post, path = "/v1/device/enrolments/status", tag = "device", request_body = EnrolmentStatusRequest,
    params(
        ("eid-timestamp" = String, Header, description = "device clock, Unix milliseconds"),
        ("eid-nonce" = String, Header, description = "single-use nonce, 32 hex digits"),
        ("eid-signature" = String, Header, description = "enrolment_id:base64url(DER signature)")),
    responses(
        (status = 200, body = EnrolmentStatusResponse),
        (status = 400, body = ErrorBody),
        (status = 401, description = "invalid_signature or clock_skew", body = ErrorBody),
        (status = 404, description = "unknown_enrolment", body = ErrorBody),
        (status = 409, description = "replayed_nonce", body = ErrorBody),
        (status = 410, description = "enrolment_closed", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 403, description = "origin_refused (a web page of another site)", body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not declared application/json", body = ErrorBody),
        (status = 429, description = "rate_limited: too many calls from this address; see the Retry-After header",
            body = ErrorBody,
            headers(("Retry-After" = u64, description = "seconds until this address may call again")))))]
pub(crate) async fn status(
    State(state): State<AppState>,
    Source(source): Source,
    DeviceSigned { body: req, .. }: DeviceSigned<EnrolmentStatusRequest>,
) -> ApiResult<Json<EnrolmentStatusResponse>> {
    let id = req.enrolment_id;
    let now = state.now_ms();
    let poll = state
        .store
        .poll_enrolment(id, state.config.max_devices_per_identity, now)
        .await?;
    let response = |state_, usable_at_ms, activation| EnrolmentStatusResponse {
        enrolment_id: id,
        state: state_,
        server_time_ms: now,
        usable_at_ms,
        activation,
    };
    Ok(Json(match poll {
        EnrolmentPoll::AwaitingApproval(_) => {
            response(EnrolmentState::AwaitingApproval, None, None)
        }
        EnrolmentPoll::Waiting(e) => response(EnrolmentState::Waiting, e.usable_at_ms, None),
        EnrolmentPoll::Activated(a) => {
            tracing::info!(authenticator = %a.id, identity = %a.identity_id, "new device activated");
            response(
                EnrolmentState::Activated,
                None,
                Some(ActivateResponse {
                    authenticator_id: a.id,
                    identity_id: a.identity_id,
                    server_public_key: state.signing_key.public_key().clone(),
                }),
            )
        }
        EnrolmentPoll::Closed => {
            // The source that keeps a device the person refused gets fewer
            // starts; one whose request merely lapsed does not.
            if state
                .store
                .enrolment(id)
                .await?
                .is_some_and(|e| policy::enrolment_refused(&e, now))
            {
                state.sources.enrolment_refused(source, now);
            }
            return Err(closed());
        }
    }))
}

/// An existing device cancels a new device's enrolment of its identity (from
/// the waiting screen or its pull): allowed until the new device is
/// activated. Signed by the existing device key; no PIN, like blocking.
#[utoipa::path(post, path = "/v1/device/enrolments/cancel", tag = "device", request_body = CancelEnrolmentRequest,
    params(
        ("eid-timestamp" = String, Header, description = "device clock, Unix milliseconds"),
        ("eid-nonce" = String, Header, description = "single-use nonce, 32 hex digits"),
        ("eid-signature" = String, Header, description = "authenticator_id:base64url(DER signature)")),
    responses(
        (status = 200, body = EnrolmentCancelled),
        (status = 400, body = ErrorBody),
        (status = 401, description = "invalid_signature or clock_skew", body = ErrorBody),
        (status = 404, description = "unknown_authenticator or unknown_enrolment", body = ErrorBody),
        (status = 409, description = "replayed_nonce", body = ErrorBody),
        (status = 410, description = "enrolment_closed", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not declared application/json", body = ErrorBody)))]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    DeviceSigned { body: req, .. }: DeviceSigned<CancelEnrolmentRequest>,
) -> ApiResult<Json<EnrolmentCancelled>> {
    let result = state
        .store
        .cancel_enrolment(req.authenticator_id, req.enrolment_id, state.now_ms())
        .await?;
    match result {
        CancelEnrolmentResult::Cancelled(request) => {
            if let Some(request) = request {
                state.waiters.wake(request);
            }
            tracing::info!(enrolment = %req.enrolment_id, authenticator = %req.authenticator_id,
                "device enrolment cancelled from an existing device");
            Ok(Json(EnrolmentCancelled {
                enrolment_id: req.enrolment_id,
            }))
        }
        CancelEnrolmentResult::Closed => Err(closed()),
        CancelEnrolmentResult::Unknown => Err(ApiError::new(
            ErrorCode::UnknownEnrolment,
            "no such enrolment for this identity",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_eight_digits_and_vary() {
        let a = new_code();
        assert_eq!(a.len(), CODE_DIGITS);
        assert!(a.bytes().all(|b| b.is_ascii_digit()));
        assert!((0..8).any(|_| new_code() != a));
    }

    #[test]
    fn utc_minute_formats_known_dates() {
        assert_eq!(utc_minute(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_minute(951_782_400_000), "2000-02-29 00:00 UTC");
        assert_eq!(utc_minute(1_795_000_000_000), "2026-11-18 11:06 UTC");
    }

    #[test]
    fn reference_text_passes_the_text_rules() {
        let text = new_device_reference_text(1_795_000_000_000);
        assert_eq!(
            eid_protocol::text::normalize_reference_text(&text).unwrap(),
            text
        );
    }
}
