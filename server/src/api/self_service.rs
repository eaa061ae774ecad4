//! Self-service API: the portal a person's browser calls to change their phone
//! number, e-mail address or user ID. It has no credentials: the person is
//! identified by the user ID, then by approving self-service login requests
//! (kind `self_service`, from the built-in provider "eID Selvbetjening") in
//! the app. A phone or e-mail change needs two such logins at least
//! `self_service_gap_secs` apart (one hour; the server's clock decides), and
//! every attempt notifies both the old and the new contact.
//!
//! What the portal reveals: nothing about whether a user ID exists. A start
//! for an unknown or blocked user ID gets the same answer as a real one (a
//! fresh change id and request id), after the same store round trip and a
//! write to disk, but nothing about it is kept or sent; a change is
//! visible (confirm, status) only with its owner's user ID and only after its
//! first login was approved in the app, so a made-up start and a real one
//! that was not approved look the same. The user-ID rules that depend on the
//! person's data (not their name, phone or e-mail) and the uniqueness check
//! run only after the approval, in the write that applies the change, so the
//! portal is no oracle for taken user IDs or for someone's phone or e-mail.
//!
//! Every self-service login is bound to the portal session that asked for
//! it by a channel-binding code the answer carries: the app asks for it, so
//! a scammer's session started with the person's user ID cannot have its
//! login approved by the person who thinks it is their own.

use std::net::IpAddr;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use eid_protocol::binding::StoredBinding;
use eid_protocol::wire::{
    ChangeState, ChangeStatus, ContactChannel, ErrorBody, ErrorCode, ErrorDetail,
    PulledContactChange, RequestStatus, SelfServiceCaller, SelfServiceStep,
    StartContactChangeRequest, StartUserIdChangeRequest,
};
use eid_protocol::{
    ChangeId, IdentityId, Nonce16, RequestEnvelopeBody, RequestKind, SELF_SERVICE_PROVIDER_ID,
    SELF_SERVICE_PROVIDER_NAME,
};

use super::guard::Source;
use super::rp::{RetryLater, retry_later};
use super::sources::StartKind;
use super::{ApiJson, AppState, parse_id};
use crate::error::{ApiError, ApiResult};
use crate::store::{
    ChangeKind, ConfirmChangeResult, StartChangeResult, StoredChange, StoredRequest,
};
use crate::texts::contact_change_text;
use crate::{contact, userid};

/// How long the nonce written for a start that stores nothing is kept (its
/// write only evens out the time of the answer).
const UNKNOWN_START_KEEP_MS: u64 = 60_000;

/// The stable snake_case name of a change state (for messages).
pub(crate) fn state_name(state: ChangeState) -> &'static str {
    match state {
        ChangeState::AwaitingFirstLogin => "awaiting_first_login",
        ChangeState::WaitingSecondLogin => "waiting_second_login",
        ChangeState::AwaitingSecondLogin => "awaiting_second_login",
        ChangeState::Completed => "completed",
        ChangeState::Expired => "expired",
        ChangeState::Failed => "failed",
        _ => "cancelled",
    }
}

fn masked(channel: ContactChannel, value: &str) -> String {
    match channel {
        ContactChannel::Phone => contact::mask_phone(value),
        _ => contact::mask_email(value),
    }
}

/// An open contact change as the app's pull shows it (`None` when closed by
/// the clock).
pub(crate) fn pulled_change(change: &StoredChange, now_ms: u64) -> Option<PulledContactChange> {
    let ChangeKind::Contact(channel) = change.kind else {
        return None;
    };
    let state = change.state_at(now_ms);
    state.is_open().then(|| PulledContactChange {
        change_id: change.id,
        channel,
        new_value_masked: masked(channel, &change.new_value),
        state,
        earliest_completion_at_ms: change.earliest_second_login_at_ms,
        created_at_ms: change.created_at_ms,
    })
}

/// A signed self-service login request for `identity_id` showing `text`,
/// bound to the portal session that asked by a fresh channel-binding code:
/// the portal shows it and the app asks for it, so a login started by
/// someone else's session is not approved by the person who thinks it is
/// their own. Returns the request and its code.
fn self_service_request(
    state: &AppState,
    identity_id: IdentityId,
    text: &str,
    now: u64,
) -> ApiResult<(StoredRequest, String)> {
    let reference_text = eid_protocol::text::normalize_reference_text(text)
        .map_err(|e| ApiError::new(ErrorCode::InvalidParameter, e.to_string()))?;
    let envelope = RequestEnvelopeBody {
        request_id: crate::ids::request_id(now),
        identity_id,
        kind: RequestKind::SelfService,
        service_provider_id: SELF_SERVICE_PROVIDER_ID,
        service_provider_name: SELF_SERVICE_PROVIDER_NAME.to_owned(),
        reference_text,
        created_at_ms: now,
        expires_at_ms: now.saturating_add(state.config.request_lifetime_secs.saturating_mul(1000)),
        server_nonce: eid_protocol::crypto::random_array(),
        binding_required: true,
    };
    let envelope_signature = state.signing_key.sign(&envelope.signing_bytes());
    let code = eid_protocol::binding::random_short_code();
    let request = StoredRequest {
        envelope,
        envelope_signature,
        binding_code: Some(StoredBinding::Static(code.clone()).to_stored()),
        status: RequestStatus::Pending,
        decision: None,
    };
    Ok((request, code))
}

/// Starts a change for `user_id` asked from `source`; answers an unknown or
/// blocked user ID like a known one (see the module docs), also in time.
/// One source gets a few starts per user ID, known or not, per hour; past
/// them it alone is refused 429 (docs/threat-model.md, "Strangers who know a
/// user ID"); the person's allowance over all sources is only a backstop.
async fn start(
    state: &AppState,
    source: IpAddr,
    user_id: &str,
    kind: ChangeKind,
    new_value: String,
    text: &str,
) -> Result<(StatusCode, Json<SelfServiceStep>), RetryLater> {
    let now = state.now_ms();
    let folded = userid::fold(user_id);
    if let Err(wait) = state
        .sources
        .start(StartKind::SelfService, source, &folded, now)
    {
        return Err(retry_later(
            ErrorCode::RateLimited,
            "too many self-service starts for this user ID from this address",
            wait,
        ));
    }
    let known = super::identity_id_of(state, &folded).await?;
    // An unknown user ID goes the same way, with an identity id nobody has:
    // the store answers it like a blocked one, after the same round trip.
    let identity_id = known.unwrap_or_else(|| IdentityId(eid_protocol::crypto::random_array()));
    // Built (and signed) either way, so both answers cost about the same.
    let (request, binding_code) = self_service_request(state, identity_id, text, now)?;
    let step = SelfServiceStep {
        change_id: ChangeId::random(),
        request_id: request.envelope.request_id,
        expires_at_ms: request.envelope.expires_at_ms,
        binding_code,
    };
    let change = StoredChange {
        id: step.change_id,
        identity_id,
        kind,
        new_value,
        state: ChangeState::AwaitingFirstLogin,
        gap_ms: state.config.self_service_gap_secs.saturating_mul(1000),
        created_at_ms: now,
        first_request_id: step.request_id,
        first_expires_at_ms: step.expires_at_ms,
        first_login_at_ms: None,
        earliest_second_login_at_ms: None,
        second_request_id: None,
        second_expires_at_ms: None,
        failure: None,
    };
    match state
        .store
        .start_change(change, request, state.config.max_pending_per_identity, now)
        .await?
    {
        StartChangeResult::Created => {
            tracing::info!(identity = %identity_id, change = %step.change_id, "self-service change started");
        }
        StartChangeResult::UnknownIdentity | StartChangeResult::Blocked => {
            // A real start answers after its write reached the disk; so does
            // this one (a random nonce, forgotten by the minute tick like any
            // other), so the time of the answer does not tell them apart.
            state
                .store
                .use_nonce(Nonce16::random(), now.saturating_add(UNKNOWN_START_KEEP_MS))
                .await?;
            tracing::debug!(
                "self-service start for an unknown or blocked user ID, or past the limit; nothing done"
            );
        }
        StartChangeResult::ChangePending => {
            return Err(ApiError::new(
                ErrorCode::ChangePending,
                "a change of this kind is already under way; complete it or cancel it in the app first",
            )
            .into());
        }
        StartChangeResult::TooManyPending => {
            return Err(ApiError::new(
                ErrorCode::RequestClosed,
                "this person has too many pending requests; try later",
            )
            .into());
        }
    }
    Ok((StatusCode::CREATED, Json(step)))
}

/// Starts a change of phone number or e-mail address: the new value is
/// checked, and the first self-service login request is sent to the app.
/// Both the old and the new contact are notified. Any open change of phone or
/// e-mail that was not yet approved is replaced; one past its first login must
/// complete or be cancelled first. An unknown or blocked user ID gets the same
/// answer, but nothing happens.
#[utoipa::path(post, path = "/v1/self-service/contact-changes", tag = "self-service",
    request_body = StartContactChangeRequest,
    responses(
        (status = 201, body = SelfServiceStep),
        (status = 400, body = ErrorBody),
        (status = 409, description = "change_pending or request_closed (too many pending requests)", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 403, description = "origin_refused (a web page of another site)", body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not declared application/json", body = ErrorBody),
        (status = 422, description = "invalid_contact", body = ErrorBody),
        (status = 429, description = "rate_limited: too many calls, or too many starts for this user ID, from this address; see the Retry-After header",
            body = ErrorBody,
            headers(("Retry-After" = u64, description = "seconds until this address may call again")))))]
pub(crate) async fn start_contact_change(
    State(state): State<AppState>,
    Source(source): Source,
    ApiJson(req): ApiJson<StartContactChangeRequest>,
) -> Result<(StatusCode, Json<SelfServiceStep>), RetryLater> {
    start_contact(&state, source, &req.user_id, req.channel, &req.new_value).await
}

/// Starts a phone or e-mail change for `user_id` asked from `source`, as
/// [`start_contact_change`] does (the self-service pages call it too).
pub(crate) async fn start_contact(
    state: &AppState,
    source: IpAddr,
    user_id: &str,
    channel: ContactChannel,
    new_value: &str,
) -> Result<(StatusCode, Json<SelfServiceStep>), RetryLater> {
    let checked = match channel {
        ContactChannel::Phone => contact::check_phone(new_value),
        _ => contact::check_email(new_value),
    }
    .map_err(|e| ApiError::new(ErrorCode::InvalidContact, e.to_string()))?;
    let text = format!(
        "{} (trin 1 af 2)",
        contact_change_text(channel, &masked(channel, &checked))
    );
    start(
        state,
        source,
        user_id,
        ChangeKind::Contact(channel),
        checked,
        &text,
    )
    .await
}

/// Starts a change of user ID. The rules that hold for everyone (length, the
/// mix of letters, digits and special characters, allowed characters, not
/// CPR-like) are checked now, with the reason; the rest (not the person's
/// name, phone or e-mail; not taken, regardless of case) when the
/// self-service login is approved, atomically with the change. See the
/// status endpoint for the outcome.
#[utoipa::path(post, path = "/v1/self-service/user-id-changes", tag = "self-service",
    request_body = StartUserIdChangeRequest,
    responses(
        (status = 201, body = SelfServiceStep),
        (status = 400, body = ErrorBody),
        (status = 409, description = "change_pending or request_closed (too many pending requests)", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 403, description = "origin_refused (a web page of another site)", body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not declared application/json", body = ErrorBody),
        (status = 422, description = "invalid_user_id", body = ErrorBody),
        (status = 429, description = "rate_limited: too many calls, or too many starts for this user ID, from this address; see the Retry-After header",
            body = ErrorBody,
            headers(("Retry-After" = u64, description = "seconds until this address may call again")))))]
pub(crate) async fn start_user_id_change(
    State(state): State<AppState>,
    Source(source): Source,
    ApiJson(req): ApiJson<StartUserIdChangeRequest>,
) -> Result<(StatusCode, Json<SelfServiceStep>), RetryLater> {
    start_user_id(&state, source, &req.user_id, &req.new_user_id).await
}

/// Starts a user-ID change for `user_id` asked from `source`, as
/// [`start_user_id_change`] does (the self-service pages call it too).
pub(crate) async fn start_user_id(
    state: &AppState,
    source: IpAddr,
    user_id: &str,
    new_user_id: &str,
) -> Result<(StatusCode, Json<SelfServiceStep>), RetryLater> {
    let checked = userid::check(new_user_id, userid::PersonalData::default())
        .map_err(|e| ApiError::new(ErrorCode::InvalidUserId, e.to_string()))?;
    let text = format!("Skift bruger-ID til {checked}");
    start(state, source, user_id, ChangeKind::UserId, checked, &text).await
}

/// The caller's change, visible only with its owner's user ID and once its
/// first login was approved; anything else is `unknown_change`.
pub(crate) async fn own_change(
    state: &AppState,
    raw_id: &str,
    user_id: &str,
    contact: bool,
) -> ApiResult<StoredChange> {
    let id: ChangeId = parse_id(raw_id, "change_id")?;
    let unknown = || {
        ApiError::new(
            ErrorCode::UnknownChange,
            "no change with this id is under way for this user ID (or its first login was not approved)",
        )
    };
    let (change, identity) = state.store.change(id).await?.ok_or_else(unknown)?;
    let owner = eid_protocol::crypto::constant_time_eq(
        identity.user_id_folded.as_bytes(),
        userid::fold(user_id).as_bytes(),
    );
    let kind_matches = matches!(change.kind, ChangeKind::Contact(_)) == contact;
    if !owner || !kind_matches || change.first_login_at_ms.is_none() {
        return Err(unknown());
    }
    Ok(change)
}

fn status_of(change: &StoredChange, now: u64) -> ChangeStatus {
    ChangeStatus {
        change_id: change.id,
        state: change.state_at(now),
        channel: match change.kind {
            ChangeKind::Contact(c) => Some(c),
            ChangeKind::UserId => None,
        },
        earliest_second_login_at_ms: change.earliest_second_login_at_ms,
        failure: change.failure.as_ref().map(|(code, message)| ErrorDetail {
            code: *code,
            message: message.clone(),
        }),
    }
}

/// Asks for the second self-service login of a phone or e-mail change. Before
/// the earliest time (first login + the gap) it is refused with `too_early`
/// (the message says when) and the attempt is notified to the old and the new
/// contact; after it, the second login request is sent to the app, and its
/// approval completes the change. Asking again while that request is pending
/// returns it. If it lapses, the change can be confirmed again (within 24
/// hours of the first login).
#[utoipa::path(post, path = "/v1/self-service/contact-changes/{change_id}/confirm", tag = "self-service",
    request_body = SelfServiceCaller,
    params(("change_id" = String, Path, description = "32 hex digits")),
    responses(
        (status = 201, description = "the second login request", body = SelfServiceStep),
        (status = 200, description = "the second login request, already pending", body = SelfServiceStep),
        (status = 400, body = ErrorBody),
        (status = 403, description = "identity_blocked, or origin_refused (a web page of another site)", body = ErrorBody),
        (status = 404, description = "unknown_change", body = ErrorBody),
        (status = 409, description = "too_early, change_closed or request_closed", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not declared application/json", body = ErrorBody),
        (status = 429, description = "rate_limited: too many calls from this address; see the Retry-After header",
            body = ErrorBody,
            headers(("Retry-After" = u64, description = "seconds until this address may call again")))))]
pub(crate) async fn confirm_contact_change(
    State(state): State<AppState>,
    Path(change_id): Path<String>,
    ApiJson(req): ApiJson<SelfServiceCaller>,
) -> ApiResult<(StatusCode, Json<SelfServiceStep>)> {
    let change = own_change(&state, &change_id, &req.user_id, true).await?;
    confirm(&state, change).await
}

/// Asks for the second login of `change`, one [`own_change`] let through,
/// as [`confirm_contact_change`] does (the self-service pages call it too).
pub(crate) async fn confirm(
    state: &AppState,
    change: StoredChange,
) -> ApiResult<(StatusCode, Json<SelfServiceStep>)> {
    let ChangeKind::Contact(channel) = change.kind else {
        return Err(ApiError::new(
            ErrorCode::UnknownChange,
            "not a contact change",
        ));
    };
    let now = state.now_ms();
    let text = format!(
        "{} (trin 2 af 2)",
        contact_change_text(channel, &masked(channel, &change.new_value))
    );
    let (request, binding_code) = self_service_request(state, change.identity_id, &text, now)?;
    let step = SelfServiceStep {
        change_id: change.id,
        request_id: request.envelope.request_id,
        expires_at_ms: request.envelope.expires_at_ms,
        binding_code,
    };
    match state
        .store
        .confirm_change(
            change.id,
            request,
            state.config.max_pending_per_identity,
            now,
        )
        .await?
    {
        ConfirmChangeResult::Created => {
            tracing::info!(change = %change.id, "self-service second login asked for");
            Ok((StatusCode::CREATED, Json(step)))
        }
        ConfirmChangeResult::Existing {
            request_id,
            expires_at_ms,
            binding_code,
        } => Ok((
            StatusCode::OK,
            Json(SelfServiceStep {
                change_id: change.id,
                request_id,
                expires_at_ms,
                // The same portal session asking again (it holds the
                // change id and the user ID) sees the same code.
                binding_code: binding_code
                    .as_deref()
                    .and_then(|stored| StoredBinding::from_stored(stored).ok())
                    .and_then(|b| match b {
                        StoredBinding::Static(code) => Some(code),
                        StoredBinding::Rotating(_) => None,
                    })
                    .unwrap_or_default(),
            }),
        )),
        ConfirmChangeResult::TooEarly(earliest) => {
            tracing::warn!(change = %change.id, "self-service second login asked for too early");
            Err(ApiError::new(
                ErrorCode::TooEarly,
                format!(
                    "too early: the second login is possible from {earliest} (Unix ms, server time), in {} s; \
                     this attempt was notified to the old and the new contact",
                    (earliest - now).div_ceil(1000)
                ),
            ))
        }
        ConfirmChangeResult::Closed(s) => Err(ApiError::new(
            ErrorCode::ChangeClosed,
            format!("the change is no longer open ({})", state_name(s)),
        )),
        ConfirmChangeResult::Unknown => Err(ApiError::new(
            ErrorCode::UnknownChange,
            "no change with this id is under way for this user ID",
        )),
        ConfirmChangeResult::Blocked => Err(ApiError::new(
            ErrorCode::IdentityBlocked,
            "the identity is blocked",
        )),
        ConfirmChangeResult::TooManyPending => Err(ApiError::new(
            ErrorCode::RequestClosed,
            "this person has too many pending requests; try later",
        )),
    }
}

/// Where a phone or e-mail change stands (after its first login).
#[utoipa::path(post, path = "/v1/self-service/contact-changes/{change_id}/status", tag = "self-service",
    request_body = SelfServiceCaller,
    params(("change_id" = String, Path, description = "32 hex digits")),
    responses(
        (status = 200, body = ChangeStatus),
        (status = 400, body = ErrorBody),
        (status = 404, description = "unknown_change", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 403, description = "origin_refused (a web page of another site)", body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not declared application/json", body = ErrorBody),
        (status = 429, description = "rate_limited: too many calls from this address; see the Retry-After header",
            body = ErrorBody,
            headers(("Retry-After" = u64, description = "seconds until this address may call again")))))]
pub(crate) async fn contact_change_status(
    State(state): State<AppState>,
    Path(change_id): Path<String>,
    ApiJson(req): ApiJson<SelfServiceCaller>,
) -> ApiResult<Json<ChangeStatus>> {
    let change = own_change(&state, &change_id, &req.user_id, true).await?;
    Ok(Json(status_of(&change, state.now_ms())))
}

/// Where a user-ID change stands (after its login): `completed`, or `failed`
/// with the reason (`invalid_user_id` or `user_id_taken`). The user ID to give
/// is the person's current one: the new one once the change completed.
#[utoipa::path(post, path = "/v1/self-service/user-id-changes/{change_id}/status", tag = "self-service",
    request_body = SelfServiceCaller,
    params(("change_id" = String, Path, description = "32 hex digits")),
    responses(
        (status = 200, body = ChangeStatus),
        (status = 400, body = ErrorBody),
        (status = 404, description = "unknown_change", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 403, description = "origin_refused (a web page of another site)", body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not declared application/json", body = ErrorBody),
        (status = 429, description = "rate_limited: too many calls from this address; see the Retry-After header",
            body = ErrorBody,
            headers(("Retry-After" = u64, description = "seconds until this address may call again")))))]
pub(crate) async fn user_id_change_status(
    State(state): State<AppState>,
    Path(change_id): Path<String>,
    ApiJson(req): ApiJson<SelfServiceCaller>,
) -> ApiResult<Json<ChangeStatus>> {
    let change = own_change(&state, &change_id, &req.user_id, false).await?;
    Ok(Json(status_of(&change, state.now_ms())))
}
