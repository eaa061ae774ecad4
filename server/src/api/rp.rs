//! Service-provider API: create a request, read or long-poll its status, cancel.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use eid_protocol::binding::{BindingSecret, StoredBinding};
use eid_protocol::wire::{
    BindingMode, CreateRequestRequest, ErrorBody, ErrorCode, RequestCreated, RequestStatus,
    RequestStatusResponse,
};
use eid_protocol::{CallVerdict, RequestEnvelopeBody, RequestId, ServiceProviderId};

use super::{ApiJson, AppState, Provider, parse_id};
use crate::error::{ApiError, ApiResult};
use crate::limits::{LimitScope, MAX_WAIT_SECS, RequestLimits};
use crate::store::{CancelResult, CreateResult, StoredRequest};
use crate::userid;

/// The status a service provider reads, with the call context: from the
/// signed receipt of an accepted decision, or, for a request the call policy
/// stopped, from the stop (read only for a cancelled request).
async fn status_response(
    state: &AppState,
    request: &StoredRequest,
    now_ms: u64,
) -> ApiResult<RequestStatusResponse> {
    let status = request.status_at(now_ms);
    let (call_context, call_verdict) = match &request.decision {
        Some(d) => (d.receipt.receipt.call_context, d.call_verdict),
        None if status == RequestStatus::Cancelled => {
            match state.store.call_stop(request.envelope.request_id).await? {
                Some(stop) => (Some(stop.call_context), CallVerdict::Stopped),
                None => (None, CallVerdict::Clear),
            }
        }
        None => (None, CallVerdict::Clear),
    };
    Ok(RequestStatusResponse {
        request_id: request.envelope.request_id,
        status,
        kind: request.envelope.kind,
        reference_text_sha256: request.envelope.reference_text_sha256(),
        created_at_ms: request.envelope.created_at_ms,
        expires_at_ms: request.envelope.expires_at_ms,
        receipt: request.decision.as_ref().map(|d| d.receipt.clone()),
        call_context,
        call_verdict,
    })
}

/// An error answered with a `Retry-After` header (whole seconds, rounded up).
pub(crate) struct RetryLater {
    pub(crate) error: ApiError,
    pub(crate) retry_after_secs: Option<u64>,
    /// The refusal depends on the person the user ID names (blocked, their
    /// pending cap, their window, the fraud hold), not on the caller: the
    /// login pages answer it like an unknown user ID, so that it tells a
    /// stranger nothing about whether the user ID exists.
    pub(crate) about_the_person: bool,
    /// The refusal made a durable commit (a fraud hold's first refusal
    /// records its event; on PostgreSQL a refusal made on facts that
    /// changed while the identity's lock waited commits the lock), as a
    /// real request's creation does (`Store::create_request_durable`): a login
    /// page's stand-in for it then makes none of its own, so that the
    /// answer waits for as many flushes as an unknown user ID's.
    pub(crate) wrote: bool,
}

impl From<ApiError> for RetryLater {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            retry_after_secs: None,
            about_the_person: false,
            wrote: false,
        }
    }
}

impl RetryLater {
    fn about_the_person(self) -> Self {
        Self {
            about_the_person: true,
            ..self
        }
    }

    fn wrote(self, wrote: bool) -> Self {
        Self { wrote, ..self }
    }
}

impl From<crate::store::StoreError> for RetryLater {
    fn from(error: crate::store::StoreError) -> Self {
        ApiError::from(error).into()
    }
}

impl IntoResponse for RetryLater {
    fn into_response(self) -> Response {
        let mut response = self.error.into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

pub(crate) fn retry_later(code: ErrorCode, what: &str, retry_after_ms: u64) -> RetryLater {
    let secs = retry_after_ms.div_ceil(1000).max(1);
    RetryLater {
        error: ApiError::new(code, format!("{what}; retry after {secs} s")),
        retry_after_secs: Some(secs),
        about_the_person: false,
        wrote: false,
    }
}

/// The answer to a request for a user ID no identity has: `unknown_identity`
/// (404), counted in the provider's per-provider windows (apart from its
/// requests, with the same limits), so that a provider, or someone with its
/// key, cannot walk user IDs faster than it may ask; past them
/// `rate_limited` (429) with `Retry-After`. The provider is authenticated and
/// needs to know that a user ID is wrong, so the 404 stays (see
/// docs/threat-model.md).
fn unknown_identity(
    state: &AppState,
    sp: ServiceProviderId,
    limits: &RequestLimits,
    now_ms: u64,
) -> RetryLater {
    match state
        .sources
        .unknown_user_id(sp, &limits.per_provider, now_ms)
    {
        Ok(()) => ApiError::new(ErrorCode::UnknownIdentity, "no identity has this user ID").into(),
        Err(wait) => retry_later(
            ErrorCode::RateLimited,
            "too many requests for unknown user IDs from this service provider recently",
            wait,
        ),
    }
}

/// Asks a person to log in or sign. The request expires 300 s after creation by
/// the server's clock. With `binding` the server creates the channel-binding
/// code (`code`) or rotating-QR secret (`qr`) and returns it here, for the
/// service provider's login screen only.
///
/// Against floods (MFA fatigue), besides the pending cap: rate limits per
/// person and per service provider (`rate_limited`, 429 with `Retry-After`), and
/// a cool-down after the person reported one of this service provider's
/// requests as fraud (`cooling_down`, 429 with `Retry-After`).
#[utoipa::path(post, path = "/v1/rp/requests", tag = "relying party", security(("api_key" = [])),
    request_body = CreateRequestRequest,
    responses(
        (status = 201, body = RequestCreated),
        (status = 400, body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "identity_blocked", body = ErrorBody),
        (status = 404, description = "unknown_identity", body = ErrorBody),
        (status = 409, description = "too many pending requests", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not declared application/json", body = ErrorBody),
        (status = 422, description = "invalid_reference_text", body = ErrorBody),
        (status = 429, description = "rate_limited or cooling_down; see the Retry-After header",
            body = ErrorBody,
            headers(("Retry-After" = u64, description = "seconds until a new request may be accepted")))))]
pub(crate) async fn create_request(
    Provider(sp): Provider,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CreateRequestRequest>,
) -> Result<(StatusCode, Json<RequestCreated>), RetryLater> {
    if req.kind.is_first_party() {
        return Err(ApiError::new(
            ErrorCode::InvalidParameter,
            "kind: a relying party may ask only for login or signature",
        )
        .into());
    }
    let reference_text = crate::cache::normalize_reference_text(&req.reference_text)
        .map_err(|e| ApiError::new(ErrorCode::InvalidReferenceText, e.to_string()))?;
    // Refused rather than normalized: the receipt signs the SHA-256 of the
    // stored text, so a provider that hashes the text it sent must have sent
    // exactly these bytes (docs/protocol.md, "Reference text").
    if reference_text != req.reference_text {
        return Err(ApiError::new(
            ErrorCode::InvalidReferenceText,
            "reference_text is not in Unicode Normalization Form C: send NFC \
             (the receipt signs the SHA-256 of the exact bytes sent)",
        )
        .into());
    }
    // Stored in canonical form, which is what the phone signs; a server-issued
    // rotating secret is stored behind its prefix in the same column.
    let (binding, created_code, created_secret) = match (&req.binding_code, req.binding) {
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                ErrorCode::InvalidParameter,
                "binding: give either binding or binding_code, not both",
            )
            .into());
        }
        (Some(code), None) => {
            let code = eid_protocol::binding::canonical_binding_code(code).map_err(|e| {
                ApiError::new(ErrorCode::InvalidParameter, format!("binding_code: {e}"))
            })?;
            (Some(StoredBinding::Static(code)), None, None)
        }
        (None, Some(BindingMode::Code)) => {
            let code = eid_protocol::binding::random_short_code();
            (Some(StoredBinding::Static(code.clone())), Some(code), None)
        }
        (None, Some(BindingMode::Qr)) => {
            let secret = BindingSecret::random();
            (
                Some(StoredBinding::Rotating(secret.clone())),
                None,
                Some(secret),
            )
        }
        (None, Some(_)) => {
            return Err(ApiError::new(ErrorCode::InvalidParameter, "binding: code or qr").into());
        }
        (None, None) => (None, None, None),
    };
    let now = state.now_ms();
    let envelope = match create_for_provider(
        &state,
        (sp.id, sp.name),
        req.kind,
        &req.user_id,
        reference_text,
        binding,
        now,
    )
    .await?
    {
        Created::Request(envelope) => envelope,
        Created::UnknownIdentity => {
            let limits = RequestLimits::from_config(&state.config, sp.id);
            return Err(unknown_identity(&state, sp.id, &limits, now));
        }
    };
    let created = RequestCreated {
        request_id: envelope.request_id,
        created_at_ms: envelope.created_at_ms,
        expires_at_ms: envelope.expires_at_ms,
        binding_code: created_code,
        binding_secret: created_secret,
    };
    tracing::debug!(request = %created.request_id, service_provider = %sp.id, "request created");
    Ok((StatusCode::CREATED, Json(created)))
}

/// The times and id of a request just made.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewRequest {
    pub(crate) request_id: RequestId,
    pub(crate) created_at_ms: u64,
    pub(crate) expires_at_ms: u64,
}

/// What [`create_for_provider`] made.
pub(crate) enum Created {
    /// The request, signed and stored.
    Request(NewRequest),
    /// No identity has the user ID (the caller decides what to reveal).
    UnknownIdentity,
}

/// Creates a provider's request for the person with `user_id`, under every
/// rule a request of the `/v1/rp` API follows (blocking, the pending cap,
/// the rate limits, the fraud hold), for the API and for the OIDC login
/// page alike. `reference_text` is already normalized.
pub(crate) async fn create_for_provider(
    state: &AppState,
    (sp_id, sp_name): (ServiceProviderId, String),
    kind: eid_protocol::RequestKind,
    user_id: &str,
    reference_text: String,
    binding: Option<StoredBinding>,
    now: u64,
) -> Result<Created, RetryLater> {
    let binding_code = binding.as_ref().map(StoredBinding::to_stored);
    // Only the immutable user-ID → identity mapping is looked up here (and
    // cached); blocked and the pending limit are checked in the write.
    let folded = userid::fold(user_id);
    let limits = RequestLimits::from_config(&state.config, sp_id);
    let Some(identity_id) = super::identity_id_of(state, &folded).await? else {
        return Ok(Created::UnknownIdentity);
    };
    let envelope = RequestEnvelopeBody {
        request_id: crate::ids::request_id(now),
        identity_id,
        kind,
        service_provider_id: sp_id,
        service_provider_name: sp_name,
        reference_text,
        created_at_ms: now,
        expires_at_ms: now.saturating_add(state.config.request_lifetime_secs.saturating_mul(1000)),
        server_nonce: eid_protocol::crypto::random_array(),
        binding_required: binding_code.is_some(),
    };
    // Signed once here; pulls hand out the stored signature.
    let envelope_signature = state.signing_key.sign(&envelope.signing_bytes());
    let made = NewRequest {
        request_id: envelope.request_id,
        created_at_ms: envelope.created_at_ms,
        expires_at_ms: envelope.expires_at_ms,
    };
    let stored = StoredRequest {
        envelope,
        envelope_signature,
        binding_code,
        status: RequestStatus::Pending,
        decision: None,
    };
    let (created, durable) = state
        .store
        .create_request_durable(stored, limits, now)
        .await
        .map_err(ApiError::from)?;
    let refused = match created {
        CreateResult::Created => return Ok(Created::Request(made)),
        CreateResult::UnknownIdentity => return Ok(Created::UnknownIdentity),
        CreateResult::Blocked => Err(RetryLater::from(ApiError::new(
            ErrorCode::IdentityBlocked,
            "the identity is blocked",
        ))
        .about_the_person()),
        CreateResult::TooManyPending => Err(RetryLater::from(ApiError::new(
            ErrorCode::RequestClosed,
            "this person has too many pending requests; try later",
        ))
        .about_the_person()),
        CreateResult::RateLimited {
            scope,
            retry_after_ms,
        } => {
            let (what, about_the_person) = match scope {
                LimitScope::Identity => ("too many requests for this person recently", true),
                LimitScope::Provider => (
                    "too many requests from this service provider recently",
                    false,
                ),
            };
            let refused = retry_later(ErrorCode::RateLimited, what, retry_after_ms);
            Err(if about_the_person {
                refused.about_the_person()
            } else {
                refused
            })
        }
        CreateResult::CoolingDown { retry_after_ms, .. } => Err(retry_later(
            ErrorCode::CoolingDown,
            "this person reported a request from this service provider as fraud; \
             its requests for them are held",
            retry_after_ms,
        )
        .about_the_person()),
    };
    refused.map_err(|r| r.wrote(durable))
}

fn parse_wait(query: Option<&str>) -> ApiResult<u64> {
    let Some(query) = query else { return Ok(0) };
    let mut wait = 0;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("wait", v)) => {
                wait = v
                    .parse::<u64>()
                    .ok()
                    .filter(|w| *w <= MAX_WAIT_SECS)
                    .ok_or_else(|| {
                        ApiError::new(ErrorCode::InvalidParameter, "wait: 0 to 60 seconds")
                    })?;
            }
            _ => {
                return Err(ApiError::new(
                    ErrorCode::InvalidParameter,
                    "unknown query parameter",
                ));
            }
        }
    }
    Ok(wait)
}

async fn load_own(
    state: &AppState,
    sp_id: eid_protocol::ServiceProviderId,
    id: RequestId,
) -> ApiResult<StoredRequest> {
    match state.store.request(id).await? {
        // Another provider's request is reported as unknown, not as forbidden.
        Some(r) if r.envelope.service_provider_id == sp_id => Ok(r),
        _ => Err(ApiError::new(ErrorCode::UnknownRequest, "no such request")),
    }
}

/// A request's status and, once decided, the server-signed receipt binding the
/// outcome, the reference-text hash and the authenticator. `?wait=N` long-polls
/// up to N seconds (at most 60) while the request is pending.
#[utoipa::path(get, path = "/v1/rp/requests/{request_id}", tag = "relying party", security(("api_key" = [])),
    params(
        ("request_id" = String, Path, description = "32 hex digits"),
        ("wait" = Option<u64>, Query, description = "long-poll seconds, 0 to 60", minimum = 0, maximum = 60)),
    responses(
        (status = 200, body = RequestStatusResponse),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(crate) async fn get_request(
    Provider(sp): Provider,
    State(state): State<AppState>,
    Path(request_id): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<RequestStatusResponse>> {
    let id: RequestId = parse_id(&request_id, "request_id")?;
    let wait = parse_wait(query.as_deref())?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    loop {
        let notify = state.waiters.subscribe(id);
        let outcome = wait_once(&state, sp.id, id, &notify, deadline).await;
        state.waiters.release(id, notify);
        if let Some(answer) = outcome {
            return answer;
        }
    }
}

/// One round of the long-poll: `Some(answer)` when done, `None` to look again.
async fn wait_once(
    state: &AppState,
    sp_id: eid_protocol::ServiceProviderId,
    id: RequestId,
    notify: &tokio::sync::Notify,
    deadline: tokio::time::Instant,
) -> Option<ApiResult<Json<RequestStatusResponse>>> {
    // Register interest before reading, so a decision in between still wakes us.
    let notified = notify.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    let request = load_own(state, sp_id, id).await;
    let now = state.now_ms();
    let pending_ms = match &request {
        Ok(r) if r.status_at(now) == RequestStatus::Pending => Some(r.envelope.expires_at_ms - now),
        _ => None,
    };
    let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
    let Some(pending_ms) = pending_ms.filter(|_| !remaining.is_zero()) else {
        return Some(match request {
            Ok(r) => status_response(state, &r, now).await.map(Json),
            Err(e) => Err(e),
        });
    };
    tokio::select! {
        _ = &mut notified => None,
        _ = tokio::time::sleep(remaining.min(Duration::from_millis(pending_ms))) => None,
    }
}

/// Cancels a pending request.
#[utoipa::path(post, path = "/v1/rp/requests/{request_id}/cancel", tag = "relying party",
    security(("api_key" = [])),
    params(("request_id" = String, Path, description = "32 hex digits")),
    responses(
        (status = 200, body = RequestStatusResponse),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "request_closed", body = ErrorBody)))]
pub(crate) async fn cancel_request(
    Provider(sp): Provider,
    State(state): State<AppState>,
    Path(request_id): Path<String>,
) -> ApiResult<Json<RequestStatusResponse>> {
    let id: RequestId = parse_id(&request_id, "request_id")?;
    let now = state.now_ms();
    match state.store.cancel_request(id, sp.id, now).await? {
        CancelResult::Cancelled => {
            state.waiters.wake(id);
            let request = load_own(&state, sp.id, id).await?;
            Ok(Json(status_response(&state, &request, now).await?))
        }
        CancelResult::NotPending(_) => Err(ApiError::new(
            ErrorCode::RequestClosed,
            "the request is no longer pending",
        )),
        CancelResult::Unknown => Err(ApiError::new(ErrorCode::UnknownRequest, "no such request")),
    }
}
