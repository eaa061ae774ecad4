//! API errors: a stable code, an HTTP status, and a message with no user data.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use eid_protocol::wire::{ErrorBody, ErrorCode, ErrorDetail};

use crate::store::StoreError;

/// An error answered to a client as a JSON [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// Stable code.
    pub code: ErrorCode,
    /// Developer-facing explanation (never secrets or user data).
    pub message: String,
    /// The server's time, sent as the `eid-server-time` header (clock-skew
    /// refusals, so the device can correct its request timestamp).
    pub server_time_ms: Option<u64>,
    /// The storage could not be reached: answered 503 with `Retry-After`
    /// (nothing was written), whatever the code.
    pub unavailable: bool,
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            server_time_ms: None,
            unavailable: false,
        }
    }

    /// The same error, telling the client the server's time.
    pub fn with_server_time(mut self, now_ms: u64) -> Self {
        self.server_time_ms = Some(now_ms);
        self
    }

    /// The HTTP status for the code.
    pub fn status(&self) -> StatusCode {
        use ErrorCode::*;
        if self.unavailable {
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        match self.code {
            MalformedRequest | InvalidParameter => StatusCode::BAD_REQUEST,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Unauthorized | InvalidSignature | ClockSkew => StatusCode::UNAUTHORIZED,
            InvalidActivationCode
            | IdentityBlocked
            | AuthenticatorLocked
            | BindingMismatch
            | StoppedOnCall
            | WrongPin
            | DeviceLimitReached
            | OriginRefused
            | ForbiddenRole => StatusCode::FORBIDDEN,
            UnknownIdentity
            | UnknownAuthenticator
            | UnknownRequest
            | UnknownEnrolment
            | UnknownChange
            | UnknownAgent
            | UnknownServiceProvider
            | UnknownApiKey
            | UnknownHardware
            | NotFound => StatusCode::NOT_FOUND,
            ReplayedNonce | UserIdTaken | RequestClosed | CounterReplay | TooEarly
            | ChangePending | ChangeClosed | SerialTaken | CodeDeviceExists => StatusCode::CONFLICT,
            RequestExpired | EnrolmentClosed => StatusCode::GONE,
            InvalidUserId | InvalidContact | InvalidReferenceText | InvalidProviderName
            | DecisionMismatch => StatusCode::UNPROCESSABLE_ENTITY,
            RateLimited | CoolingDown => StatusCode::TOO_MANY_REQUESTS,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// Malformed input.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::MalformedRequest, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let mut resp = (status, Json(body)).into_response();
        if self.unavailable {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        if let Some(t) = self.server_time_ms
            && let Ok(v) = axum::http::HeaderValue::from_str(&t.to_string())
        {
            resp.headers_mut()
                .insert(eid_protocol::wire::HEADER_SERVER_TIME, v);
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        // The detail goes to the log, not to the client.
        if e.is_unavailable() {
            tracing::warn!(error = %e, "storage unavailable");
            return ApiError {
                unavailable: true,
                ..ApiError::new(ErrorCode::Internal, "storage unavailable; retry later")
            };
        }
        tracing::error!(error = %e, "storage error");
        ApiError::new(ErrorCode::Internal, "internal storage error; retry later")
    }
}

/// Handler result.
pub type ApiResult<T> = Result<T, ApiError>;
