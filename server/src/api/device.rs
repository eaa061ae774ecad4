//! Device API: activation, the signed pull, and signed decisions.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use eid_protocol::messages::{ActivationProof, ReceiptBody, SettingsChange};
use eid_protocol::wire::{
    self, AccountState, ActivateRequest, ActivateResponse, BlockRequest, BlockResponse,
    CancelContactChangeRequest, ChangeState, ChangeStatus, DeviceSettingsRequest,
    DeviceSettingsResponse, EnrolmentState, ErrorBody, ErrorCode, FeedEvent, PullRequest,
    PullResponse, PulledAccount, PulledEnrolment, SignedEnvelope, SignedReceipt,
    SubmitDecisionRequest,
};
use eid_protocol::{AuthenticatorId, CallVerdict, MAX_DEVICE_CLOCK_SKEW_MS, Nonce16, Outcome};

use super::guard::Source;
use super::rp::{RetryLater, retry_later};
use super::signed::{DeviceSigned, bad_signature};
use super::{ApiJson, AppState, CENTRAL_PIN_LOCK_AT};
use crate::api::admin::activation_code_hash;
use crate::error::{ApiError, ApiResult};
use crate::limits::BINDING_CODE_MAX_TRIES;
use crate::store::{
    ActivationResult, Authenticator, AuthenticatorState, CancelChangeResult, DecideResult,
    DecisionRecord, Enrolment, EnrolmentStoredState, FeedCursors, StopResult,
};
use crate::userid;

/// How long the nonce written for an activation without a usable code is
/// kept (its write only evens out the time of the answer).
const NO_CODE_KEEP_MS: u64 = 60_000;

/// Activates an authenticator: the user ID and single-use activation code bind
/// the device key and PIN key (each proving possession) to the identity.
#[utoipa::path(post, path = "/v1/device/activate", tag = "device", request_body = ActivateRequest,
    responses(
        (status = 201, body = ActivateResponse),
        (status = 400, body = ErrorBody),
        (status = 401, description = "invalid_signature", body = ErrorBody),
        (status = 403, description = "invalid_activation_code or identity_blocked, or origin_refused (a web page of another site)", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not declared application/json", body = ErrorBody),
        (status = 429, description = "rate_limited: too many calls, or too many wrong codes, from this address; see the Retry-After header",
            body = ErrorBody,
            headers(("Retry-After" = u64, description = "seconds until this address may call again")))))]
pub(crate) async fn activate(
    State(state): State<AppState>,
    Source(source): Source,
    ApiJson(req): ApiJson<ActivateRequest>,
) -> Result<(StatusCode, Json<ActivateResponse>), RetryLater> {
    for key in [&req.device_public_key, &req.pin_public_key] {
        key.validate()
            .map_err(|_| ApiError::malformed("a public key is not a valid P-256 point"))?;
    }
    if req.device_public_key == req.pin_public_key {
        return Err(ApiError::malformed("the device key and the PIN key must differ").into());
    }
    let proof = ActivationProof {
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
    // A source that sent too many wrong codes waits, longer with each, before
    // any code of any user ID is looked at: guessing costs the guesser, and
    // the code's own ceiling is far out of one source's reach.
    if let Err(wait) = state.sources.may_try_code(source, now) {
        return Err(retry_later(
            ErrorCode::RateLimited,
            "too many wrong activation codes from this address",
            wait,
        ));
    }
    let code = req.activation_code.clone();
    let authenticator = Authenticator {
        id: AuthenticatorId::random(),
        identity_id: eid_protocol::IdentityId([0; 16]), // set by the store
        device_public_key: req.device_public_key,
        pin_public_key: req.pin_public_key,
        state: AuthenticatorState::Active,
        failed_pin_count: 0,
        last_counter: 0,
        activated_at_ms: now,
    };
    let result = state
        .store
        .activate(
            &userid::fold(&req.user_id),
            Box::new(move |identity_id| activation_code_hash(identity_id, &code)),
            super::ACTIVATION_CODE_MAX_TRIES,
            now,
            authenticator,
        )
        .await?;
    crate::crash::point("server.activation.code_used");
    let again = matches!(result, ActivationResult::AlreadyActivated(_));
    let no_code = matches!(result, ActivationResult::NoUsableCode);
    match result {
        ActivationResult::Activated(auth) | ActivationResult::AlreadyActivated(auth) => {
            if again {
                tracing::info!(authenticator = %auth.id, "activation retried; same authenticator returned");
            } else {
                tracing::info!(authenticator = %auth.id, identity = %auth.identity_id, "authenticator activated");
            }
            Ok((
                StatusCode::CREATED,
                Json(ActivateResponse {
                    authenticator_id: auth.id,
                    identity_id: auth.identity_id,
                    server_public_key: state.signing_key.public_key().clone(),
                }),
            ))
        }
        // One answer for a wrong, used, expired or void code and an unknown user
        // ID, so the endpoint does not reveal which user IDs exist.
        ActivationResult::WrongCode | ActivationResult::NoUsableCode => {
            if no_code {
                // A wrong code for a live code is written (its tries count);
                // so is this answer (a random nonce, forgotten by the minute
                // tick), so the time does not tell whether a code is live.
                state
                    .store
                    .use_nonce(Nonce16::random(), now.saturating_add(NO_CODE_KEEP_MS))
                    .await?;
            }
            state.sources.wrong_code(source, now);
            Err(ApiError::new(
                ErrorCode::InvalidActivationCode,
                "the user ID and activation code do not match a usable code",
            )
            .into())
        }
        ActivationResult::Blocked => {
            Err(ApiError::new(ErrorCode::IdentityBlocked, "the identity is blocked").into())
        }
    }
}

/// Blocks the caller's identity at once ("I suspect abuse"): pending requests
/// are cancelled, new requests and decisions refused. Signed by the device key
/// like a pull (headers `eid-timestamp`, `eid-nonce`, `eid-signature`); no PIN.
/// Unblocking is for support, after checking who asks.
#[utoipa::path(post, path = "/v1/device/block", tag = "device", request_body = BlockRequest,
    params(
        ("eid-timestamp" = String, Header, description = "device clock, Unix milliseconds"),
        ("eid-nonce" = String, Header, description = "single-use nonce, 32 hex digits"),
        ("eid-signature" = String, Header, description = "authenticator_id:base64url(DER signature)")),
    responses(
        (status = 200, body = BlockResponse),
        (status = 400, body = ErrorBody),
        (status = 401, description = "invalid_signature or clock_skew", body = ErrorBody),
        (status = 404, description = "unknown_authenticator", body = ErrorBody),
        (status = 409, description = "replayed_nonce", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not declared application/json", body = ErrorBody)))]
pub(crate) async fn block(
    State(state): State<AppState>,
    DeviceSigned { body: req, .. }: DeviceSigned<BlockRequest>,
) -> ApiResult<Json<BlockResponse>> {
    let id = req.authenticator_id;
    // Blocking only stops things, so a locked authenticator may still do
    // it (not `unlocked_authenticator`).
    let authenticator = known_authenticator(&state, id).await?;
    let cancelled = state
        .store
        .set_blocked(authenticator.identity_id, true, state.now_ms())
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::UnknownIdentity, "no such identity"))?;
    for request_id in &cancelled {
        state.waiters.wake(*request_id);
    }
    tracing::info!(identity = %authenticator.identity_id, authenticator = %id,
        cancelled = cancelled.len(), "identity blocked from the app");
    Ok(Json(BlockResponse {
        identity_id: authenticator.identity_id,
        cancelled_requests: u32::try_from(cancelled.len()).unwrap_or(u32::MAX),
    }))
}

/// The authenticator `id`, refused when unknown.
async fn known_authenticator(
    state: &AppState,
    id: eid_protocol::AuthenticatorId,
) -> ApiResult<Authenticator> {
    state
        .store
        .authenticators(vec![id])
        .await?
        .pop()
        .flatten()
        .ok_or_else(|| ApiError::new(ErrorCode::UnknownAuthenticator, "no such authenticator"))
}

/// The authenticator `id` asking a signed device call, refused when unknown
/// or locked (its device key may be a thief's).
pub(crate) async fn unlocked_authenticator(
    state: &AppState,
    id: eid_protocol::AuthenticatorId,
) -> ApiResult<Authenticator> {
    let authenticator = known_authenticator(state, id).await?;
    if authenticator.state == AuthenticatorState::Locked {
        return Err(ApiError::new(
            ErrorCode::AuthenticatorLocked,
            "the authenticator is locked; activate again",
        ));
    }
    Ok(authenticator)
}

/// Sets the person's notification settings ("notify me on every use"). Signed
/// by the device key like a pull (headers `eid-timestamp`, `eid-nonce`,
/// `eid-signature`). Turning it on needs no PIN (it only adds
/// notifications); turning it off needs the PIN key's `pin_proof` and is a
/// `notify_every_use_turned_off` event notified on every channel.
#[utoipa::path(post, path = "/v1/device/settings", tag = "device", request_body = DeviceSettingsRequest,
    params(
        ("eid-timestamp" = String, Header, description = "device clock, Unix milliseconds"),
        ("eid-nonce" = String, Header, description = "single-use nonce, 32 hex digits"),
        ("eid-signature" = String, Header, description = "authenticator_id:base64url(DER signature)")),
    responses(
        (status = 200, body = DeviceSettingsResponse),
        (status = 400, body = ErrorBody),
        (status = 401, description = "invalid_signature (turning off without the PIN proof) or clock_skew", body = ErrorBody),
        (status = 403, description = "wrong_pin (the PIN proof), authenticator_locked", body = ErrorBody),
        (status = 404, description = "unknown_authenticator", body = ErrorBody),
        (status = 409, description = "replayed_nonce", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not declared application/json", body = ErrorBody)))]
pub(crate) async fn settings(
    State(state): State<AppState>,
    DeviceSigned { body: req, .. }: DeviceSigned<DeviceSettingsRequest>,
) -> ApiResult<Json<DeviceSettingsResponse>> {
    let id = req.authenticator_id;
    // A locked authenticator's device key may be in a thief's hands; it
    // must not switch the person's notifications off.
    let authenticator = unlocked_authenticator(&state, id).await?;
    // The device key alone may be a thief's (an unlocked phone): silencing
    // the notifications needs the PIN too, like an approval.
    match &req.pin_proof {
        Some(proof) => verify_settings_pin_proof(&state, &authenticator, &req, proof).await?,
        None if !req.notify_every_use => {
            return Err(ApiError::new(
                ErrorCode::InvalidSignature,
                "turning notify-every-use off needs the PIN signature",
            ));
        }
        None => {}
    }
    if !state
        .store
        .set_notify_every_use(
            authenticator.identity_id,
            req.notify_every_use,
            id,
            state.now_ms(),
        )
        .await?
    {
        return Err(ApiError::new(
            ErrorCode::UnknownIdentity,
            "no such identity",
        ));
    }
    tracing::info!(authenticator = %id, notify_every_use = req.notify_every_use,
        "notification settings changed from the app");
    Ok(Json(DeviceSettingsResponse {
        identity_id: authenticator.identity_id,
        notify_every_use: req.notify_every_use,
    }))
}

/// Checks a settings change's PIN proof (see [`verify_pin_proof`]).
async fn verify_settings_pin_proof(
    state: &AppState,
    authenticator: &Authenticator,
    req: &DeviceSettingsRequest,
    proof: &wire::PinProof,
) -> ApiResult<()> {
    let message = SettingsChange {
        authenticator_id: authenticator.id,
        notify_every_use: req.notify_every_use,
        issued_at_ms: proof.issued_at_ms,
        nonce: proof.nonce,
    }
    .signing_bytes();
    verify_pin_proof(state, authenticator, &message, proof).await
}

/// Checks a PIN proof over `message` (a PIN-proved action of the app other
/// than a decision): the PIN key's signature (a wrong one counts toward the
/// central lockout, like a decision's), a time within the device clock
/// window, and a nonce never used before.
pub(crate) async fn verify_pin_proof(
    state: &AppState,
    authenticator: &Authenticator,
    message: &[u8],
    proof: &wire::PinProof,
) -> ApiResult<()> {
    let now = state.now_ms();
    if now.abs_diff(proof.issued_at_ms) > MAX_DEVICE_CLOCK_SKEW_MS {
        return Err(ApiError::new(
            ErrorCode::ClockSkew,
            "the PIN proof's time is more than 5 minutes off",
        )
        .with_server_time(now));
    }
    if authenticator
        .pin_public_key
        .verify(message, &proof.signature)
        .is_err()
    {
        let count = state
            .store
            .record_wrong_pin(authenticator.id, CENTRAL_PIN_LOCK_AT, now)
            .await?;
        tracing::warn!(authenticator = %authenticator.id, count, "wrong PIN signature on a PIN-proved action");
        return Err(if count >= CENTRAL_PIN_LOCK_AT {
            ApiError::new(
                ErrorCode::AuthenticatorLocked,
                "too many wrong PINs; the authenticator is locked",
            )
        } else {
            ApiError::new(
                ErrorCode::WrongPin,
                format!(
                    "wrong PIN signature; {} tries left",
                    CENTRAL_PIN_LOCK_AT - count
                ),
            )
        });
    }
    let keep_until = proof.issued_at_ms.max(now) + MAX_DEVICE_CLOCK_SKEW_MS;
    if !state.store.use_nonce(proof.nonce, keep_until).await? {
        return Err(ApiError::new(
            ErrorCode::ReplayedNonce,
            "this PIN proof was already used",
        ));
    }
    Ok(())
}

/// Pulls the pending requests of one or several authenticators on one phone, in
/// one round trip. Signed by each authenticator's device key over method, path,
/// body hash, timestamp and nonce (headers `eid-timestamp`, `eid-nonce`,
/// `eid-signature`).
#[utoipa::path(post, path = "/v1/device/pull", tag = "device", request_body = PullRequest,
    params(
        ("eid-timestamp" = String, Header, description = "device clock, Unix milliseconds"),
        ("eid-nonce" = String, Header, description = "single-use nonce, 32 hex digits"),
        ("eid-signature" = String, Header, description = "authenticator_id:base64url(DER signature), comma-separated")),
    responses(
        (status = 200, body = PullResponse),
        (status = 400, body = ErrorBody),
        (status = 401, description = "invalid_signature or clock_skew", body = ErrorBody),
        (status = 404, description = "unknown_authenticator", body = ErrorBody),
        (status = 409, description = "replayed_nonce", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not declared application/json", body = ErrorBody)))]
pub(crate) async fn pull(
    State(state): State<AppState>,
    DeviceSigned {
        body: req,
        keys,
        pull_nonce,
    }: DeviceSigned<PullRequest>,
) -> ApiResult<Json<PullResponse>> {
    let ids = req.authenticator_ids;
    // A phone that pages its feed sends `events_after`; older phones
    // `feed_after` (or nothing) and keep getting the newest events.
    let feed = if req.events_after.is_empty() {
        FeedCursors::NewestAbove(req.feed_after)
    } else {
        FeedCursors::OldestAbove(req.events_after)
    };
    let decisions_after = req.decisions_after;
    let now = state.now_ms();
    // The nonce, verified by the extractor, is used with the read: a
    // replayed pull gets nothing of it.
    let super::signed::PullNonce {
        nonce,
        keep_until_ms,
    } = pull_nonce.ok_or(crate::store::StoreError::Inconsistent(
        "a pull without its nonce",
    ))?;
    let snapshot = state
        .store
        .pull_with_nonce(nonce, keep_until_ms, ids, feed, decisions_after, now)
        .await?
        .ok_or_else(super::signed::replayed_nonce)?;
    let identities = snapshot.identities;
    let mut events = snapshot.events.into_iter();
    // Present: activation never deletes an authenticator, and its key was found.
    let authenticators: Vec<Authenticator> = snapshot
        .authenticators
        .into_iter()
        .zip(&keys)
        .map(|(auth, key)| {
            auth.ok_or_else(|| {
                ApiError::new(
                    ErrorCode::UnknownAuthenticator,
                    format!("unknown authenticator {}", key.authenticator_id),
                )
            })
        })
        .collect::<ApiResult<_>>()?;
    // Requests go only to Active accounts (the snapshot already left out
    // blocked identities; a locked authenticator gets none either).
    let mut account_states = Vec::with_capacity(authenticators.len());
    for (auth, identity) in authenticators.iter().zip(&identities) {
        let blocked = identity.as_ref().is_none_or(|i| i.blocked);
        let account_state = match (auth.state, blocked) {
            (AuthenticatorState::Locked, _) => AccountState::Locked,
            (_, true) => AccountState::Blocked,
            _ => AccountState::Active,
        };
        account_states.push(account_state);
    }
    let pending = &snapshot.pending;
    let changes = &snapshot.contact_changes;
    let mut decisions = snapshot.decisions.into_iter();
    let accounts = authenticators
        .iter()
        .zip(account_states)
        .zip(&identities)
        .map(|((auth, account_state), identity)| PulledAccount {
            authenticator_id: auth.id,
            decisions: decisions.next().unwrap_or_default(),
            state: account_state,
            // The feed is shown whatever the state: a blocked or locked
            // account most needs to see why.
            events: events
                .next()
                .unwrap_or_default()
                .into_iter()
                .map(|e| FeedEvent {
                    event_id: e.id,
                    kind: e.kind,
                    occurred_at_ms: e.occurred_at_ms,
                    authenticator_id: e.authenticator_id,
                    detail: e.detail,
                })
                .collect(),
            notify_every_use: identity.as_ref().is_some_and(|i| i.notify_every_use),
            user_id: identity.as_ref().map(|i| i.user_id.clone()),
            contact_changes: changes
                .iter()
                .filter(|c| c.identity_id == auth.identity_id)
                .filter_map(|c| super::self_service::pulled_change(c, now))
                .collect(),
            requests: if account_state == AccountState::Active {
                pending
                    .iter()
                    .filter(|r| r.envelope.identity_id == auth.identity_id)
                    .map(|r| SignedEnvelope {
                        envelope: r.envelope.clone(),
                        signature: r.envelope_signature.clone(),
                    })
                    .collect()
            } else {
                Vec::new()
            },
            device_enrolments: if account_state == AccountState::Active {
                snapshot
                    .enrolments
                    .iter()
                    .filter(|e| e.identity_id == Some(auth.identity_id))
                    .filter_map(pulled_enrolment)
                    .collect()
            } else {
                Vec::new()
            },
        })
        .collect();
    Ok(Json(PullResponse {
        server_time_ms: now,
        accounts,
    }))
}

/// What an existing device sees of a live enrolment in its pull.
fn pulled_enrolment(e: &Enrolment) -> Option<PulledEnrolment> {
    let state = match e.state {
        EnrolmentStoredState::AwaitingApproval => EnrolmentState::AwaitingApproval,
        EnrolmentStoredState::Waiting => EnrolmentState::Waiting,
        _ => return None,
    };
    Some(PulledEnrolment {
        enrolment_id: e.id,
        state,
        requested_at_ms: e.requested_at_ms,
        usable_at_ms: e.usable_at_ms,
    })
}

/// The answer to an approval the call policy stopped (also to the same
/// approval sent again).
fn stopped_on_call() -> ApiError {
    ApiError::new(
        ErrorCode::StoppedOnCall,
        "the phone saw a call, screen sharing or remote control; this kind of request is not approved then. The request was cancelled and the person notified",
    )
}

/// Submits a decision signed by the device key and (to approve) the PIN key.
/// Exactly one decision per request wins; resubmitting the same decision
/// returns the same receipt.
#[utoipa::path(post, path = "/v1/device/decisions", tag = "device", request_body = SubmitDecisionRequest,
    responses(
        (status = 200, description = "accepted, or the same decision resubmitted", body = SignedReceipt),
        (status = 400, body = ErrorBody),
        (status = 401, description = "invalid_signature", body = ErrorBody),
        (status = 403, description = "wrong_pin, identity_blocked, authenticator_locked, binding_mismatch, or stopped_on_call (an approval while the phone saw a call, screen sharing or remote control, of a kind the call policy refuses: the request was cancelled and the person notified)", body = ErrorBody),
        (status = 404, description = "unknown_request or unknown_authenticator", body = ErrorBody),
        (status = 409, description = "request_closed or counter_replay", body = ErrorBody),
        (status = 410, description = "request_expired", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not declared application/json", body = ErrorBody),
        (status = 422, description = "decision_mismatch", body = ErrorBody)))]
pub(crate) async fn submit_decision(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<SubmitDecisionRequest>,
) -> ApiResult<Json<SignedReceipt>> {
    let d = &req.decision;
    let context = state
        .store
        .decision_context(d.request_id, d.authenticator_id)
        .await?;
    let request = context
        .request
        .ok_or_else(|| ApiError::new(ErrorCode::UnknownRequest, "no such request"))?;
    let auth = context
        .authenticator
        .ok_or_else(|| ApiError::new(ErrorCode::UnknownAuthenticator, "no such authenticator"))?;
    let message = d.signing_bytes();
    auth.device_public_key
        .verify(&message, &req.device_signature)
        .map_err(|_| bad_signature("device signature"))?;
    let decision_sha256 = eid_protocol::sha256(&message);

    // The same decision again (a retry after a lost answer): same receipt.
    if let Some(existing) = &request.decision {
        if existing.decision_sha256 == decision_sha256 {
            return Ok(Json(existing.receipt.clone()));
        }
        return Err(ApiError::new(
            ErrorCode::RequestClosed,
            "the request was already decided",
        ));
    }

    let e = &request.envelope;
    if auth.identity_id != e.identity_id || d.identity_id != e.identity_id {
        return Err(ApiError::new(
            ErrorCode::DecisionMismatch,
            "the request is not for this authenticator's identity",
        ));
    }
    let matches = d.kind == e.kind
        && d.reference_text_sha256 == e.reference_text_sha256()
        && d.service_provider_id == e.service_provider_id
        && d.service_provider_name == e.service_provider_name
        && d.expires_at_ms == e.expires_at_ms
        && d.server_nonce == e.server_nonce;
    if !matches {
        return Err(ApiError::new(
            ErrorCode::DecisionMismatch,
            "the decision does not match the request (reference text, provider, deadline or nonce)",
        ));
    }
    if context.identity.as_ref().is_none_or(|i| i.blocked) {
        return Err(ApiError::new(
            ErrorCode::IdentityBlocked,
            "the identity is blocked",
        ));
    }
    if auth.state == AuthenticatorState::Locked {
        return Err(ApiError::new(
            ErrorCode::AuthenticatorLocked,
            "the authenticator is locked; activate again",
        ));
    }
    let now = state.now_ms();
    match request.status_at(now) {
        wire::RequestStatus::Pending => {}
        wire::RequestStatus::Expired => {
            return Err(ApiError::new(
                ErrorCode::RequestExpired,
                "the request has expired",
            ));
        }
        _ => {
            // The stopped approval sent again (a retry after a lost answer):
            // the same answer, so the phone tells the person why. The stop
            // keeps no hash of the decision; the same authenticator's
            // approval with the same signed context is that decision for
            // what the answer says.
            if d.outcome == Outcome::Approve
                && let Some(stop) = state.store.call_stop(d.request_id).await?
                && stop.authenticator_id == auth.id
                && d.call_context == Some(stop.call_context)
            {
                return Err(stopped_on_call());
            }
            return Err(ApiError::new(
                ErrorCode::RequestClosed,
                "the request is closed",
            ));
        }
    }

    // The PIN key: required to approve, verified whenever present. A wrong one
    // counts toward the central lockout.
    let pin_verified = match &req.pin_signature {
        Some(sig) => {
            if auth.pin_public_key.verify(&message, sig).is_err() {
                let count = state
                    .store
                    .record_wrong_pin(auth.id, CENTRAL_PIN_LOCK_AT, state.now_ms())
                    .await?;
                tracing::warn!(authenticator = %auth.id, count, "wrong PIN signature");
                return Err(if count >= CENTRAL_PIN_LOCK_AT {
                    ApiError::new(
                        ErrorCode::AuthenticatorLocked,
                        "too many wrong PINs; the authenticator is locked",
                    )
                } else {
                    ApiError::new(
                        ErrorCode::WrongPin,
                        format!(
                            "wrong PIN signature; {} tries left",
                            CENTRAL_PIN_LOCK_AT - count
                        ),
                    )
                });
            }
            true
        }
        None if d.outcome == Outcome::Approve => {
            return Err(ApiError::new(
                ErrorCode::InvalidSignature,
                "an approval needs the PIN signature",
            ));
        }
        None => false,
    };
    if d.outcome == Outcome::Approve
        && let Some(expected) = &request.binding_code
    {
        // Compared in canonical form (the stored code is canonical; the
        // signature covers whatever form the phone sent). A rotating code must
        // be from the last 30 s by the server's clock (a photographed QR
        // replayed later is refused). An unreadable stored binding accepts
        // nothing.
        let presented = d
            .binding_code
            .as_deref()
            .and_then(|c| eid_protocol::binding::canonical_binding_code(c).ok())
            .unwrap_or_default();
        let accepted = eid_protocol::binding::StoredBinding::from_stored(expected)
            .is_ok_and(|b| b.accepts(&presented, now));
        if !accepted {
            // Guessing is bounded: a few wrong codes cancel the request.
            let count = state
                .store
                .record_binding_mismatch(d.request_id, BINDING_CODE_MAX_TRIES, state.now_ms())
                .await?;
            if count >= BINDING_CODE_MAX_TRIES {
                state.waiters.wake(d.request_id);
                return Err(ApiError::new(
                    ErrorCode::RequestClosed,
                    "too many wrong codes; the request was cancelled",
                ));
            }
            return Err(ApiError::new(
                ErrorCode::BindingMismatch,
                "the code from the login screen is missing or wrong",
            ));
        }
    }

    // The call policy (docs/protocol.md, "Call context"): judged only now,
    // once the approval is otherwise valid, so a wrong PIN or code cannot be
    // used to cancel someone's request.
    let call_context = d.call_context_or_unknown();
    let call_verdict = crate::policy::call_verdict(
        d.outcome,
        &call_context,
        state
            .config
            .call_policy
            .disposition(e.kind, e.service_provider_id),
    );
    if call_verdict == CallVerdict::Stopped {
        let stopped = state
            .store
            .stop_on_call(d.request_id, auth.id, call_context, now)
            .await?;
        state.waiters.wake(d.request_id);
        return Err(match stopped {
            StopResult::Stopped => {
                tracing::info!(request = %d.request_id, authenticator = %auth.id, kind = ?e.kind, "approval stopped: the phone saw a call or screen sharing");
                stopped_on_call()
            }
            StopResult::NotPending => {
                ApiError::new(ErrorCode::RequestClosed, "the request is closed")
            }
        });
    }

    let receipt = ReceiptBody {
        request_id: d.request_id,
        identity_id: e.identity_id,
        authenticator_id: auth.id,
        outcome: d.outcome,
        kind: e.kind,
        reference_text_sha256: d.reference_text_sha256,
        service_provider_id: e.service_provider_id,
        decided_at_ms: now,
        decision_sha256,
        counter: d.counter,
        call_context: d.call_context,
    };
    let signature = state.signing_key.sign(&receipt.signing_bytes());
    let record = DecisionRecord {
        authenticator_id: auth.id,
        outcome: d.outcome,
        counter: d.counter,
        decision_sha256,
        receipt: SignedReceipt { receipt, signature },
        decided_at_ms: now,
        call_verdict,
    };
    // What was judged above: the store may record the decision at once
    // when it finds these facts unchanged.
    let judged = crate::store::DecisionFacts::of(&request, &auth, context.identity.as_ref());
    let result = state
        .store
        .decide_judged(d.request_id, record, pin_verified, now, judged)
        .await?;
    crate::crash::point("server.decision.committed");
    match result {
        DecideResult::Accepted(record) => {
            state.waiters.wake(d.request_id);
            if e.kind == eid_protocol::RequestKind::SelfService && d.outcome == Outcome::Approve {
                // The approval may have changed the user ID: forget every
                // cached user ID of this identity (the store is read again).
                state
                    .identity_ids
                    .remove_where(|_, id| *id == e.identity_id);
            }
            tracing::info!(request = %d.request_id, authenticator = %auth.id, outcome = ?d.outcome, "decision accepted");
            Ok(Json(record.receipt))
        }
        DecideResult::AlreadyDecided(existing) if existing.decision_sha256 == decision_sha256 => {
            Ok(Json(existing.receipt))
        }
        DecideResult::AlreadyDecided(_) | DecideResult::Cancelled => Err(ApiError::new(
            ErrorCode::RequestClosed,
            "the request was already decided",
        )),
        DecideResult::Expired => Err(ApiError::new(
            ErrorCode::RequestExpired,
            "the request has expired",
        )),
        DecideResult::CounterReplay => Err(ApiError::new(
            ErrorCode::CounterReplay,
            "the decision counter is not above this authenticator's last one",
        )),
        DecideResult::NotAllowed => Err(ApiError::new(
            ErrorCode::AuthenticatorLocked,
            "the authenticator is locked or the identity blocked",
        )),
    }
}

/// Cancels an open phone or e-mail change of the caller's identity ("that
/// wasn't me"): its pending self-service login is cancelled too, and the old
/// and new contact are notified. Signed by the device key like a pull
/// (headers `eid-timestamp`, `eid-nonce`, `eid-signature`); no PIN.
#[utoipa::path(post, path = "/v1/device/contact-changes/cancel", tag = "device",
    request_body = CancelContactChangeRequest,
    params(
        ("eid-timestamp" = String, Header, description = "device clock, Unix milliseconds"),
        ("eid-nonce" = String, Header, description = "single-use nonce, 32 hex digits"),
        ("eid-signature" = String, Header, description = "authenticator_id:base64url(DER signature)")),
    responses(
        (status = 200, body = ChangeStatus),
        (status = 400, body = ErrorBody),
        (status = 401, description = "invalid_signature or clock_skew", body = ErrorBody),
        (status = 404, description = "unknown_authenticator or unknown_change", body = ErrorBody),
        (status = 409, description = "replayed_nonce or change_closed", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not declared application/json", body = ErrorBody)))]
pub(crate) async fn cancel_contact_change(
    State(state): State<AppState>,
    DeviceSigned { body: req, .. }: DeviceSigned<CancelContactChangeRequest>,
) -> ApiResult<Json<ChangeStatus>> {
    let id = req.authenticator_id;
    let authenticator = state
        .store
        .authenticators(vec![id])
        .await?
        .pop()
        .flatten()
        .ok_or_else(|| ApiError::new(ErrorCode::UnknownAuthenticator, "no such authenticator"))?;
    let now = state.now_ms();
    match state
        .store
        .cancel_change(req.change_id, authenticator.identity_id, id, now)
        .await?
    {
        CancelChangeResult::Cancelled(request) => {
            if let Some(r) = request {
                state.waiters.wake(r);
            }
            tracing::info!(identity = %authenticator.identity_id, authenticator = %id,
                "self-service change cancelled from the app");
            Ok(Json(ChangeStatus {
                change_id: req.change_id,
                state: ChangeState::Cancelled,
                channel: None,
                earliest_second_login_at_ms: None,
                failure: None,
            }))
        }
        CancelChangeResult::Closed(s) => Err(ApiError::new(
            ErrorCode::ChangeClosed,
            format!(
                "the change is no longer open ({})",
                super::self_service::state_name(s)
            ),
        )),
        CancelChangeResult::Unknown => Err(ApiError::new(
            ErrorCode::UnknownChange,
            "this identity has no such change",
        )),
    }
}
