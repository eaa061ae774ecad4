//! What several subjects check in the same way beyond the fixtures of the
//! `eid-e2e-tests` library: how the server refused an API call.

use eid_api_client::ApiFailure;
use eid_protocol::wire::ErrorCode;

/// A refused API call as the server answered it.
#[derive(Debug)]
pub(crate) struct Refusal {
    /// The stable error code; none when the server did not answer.
    pub(crate) code: Option<ErrorCode>,
    /// The HTTP status; 0 when the server did not answer.
    pub(crate) status: u16,
    /// The server's message, or the failure's own text when the server did
    /// not answer (a network error, say).
    pub(crate) message: String,
}

/// How the server refused the call that failed with `e`.
pub(crate) fn refusal(e: &ApiFailure) -> Refusal {
    match e {
        ApiFailure::Server { status, body } => Refusal {
            code: Some(body.error.code),
            status: *status,
            message: body.error.message.clone(),
        },
        other => Refusal {
            code: other.code(),
            status: 0,
            message: other.to_string(),
        },
    }
}

/// The server's error code for the call that failed with `e`; panics when the
/// failure carries none (the call never got a typed answer).
#[track_caller]
pub(crate) fn error_code(e: &ApiFailure) -> ErrorCode {
    e.code()
        .unwrap_or_else(|| panic!("expected a typed error, got {e}"))
}
