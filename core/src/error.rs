//! The core's error type: one enum, each variant actionable by the app.
//!
//! No variant carries a secret (PIN, key material) or personal data; `Display`
//! texts are for developers and logs, the app maps variants to its own wording.

use eid_protocol::text::TextError;
use eid_protocol::wire::ErrorCode;

use crate::keystore::KeyStoreError;
use crate::pin::PinPolicyError;

/// Everything that can go wrong in the core.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The PIN was wrong. `retry_after_ms` is the wait before the next try
    /// (0 when none); after `attempts_left` more wrong PINs the PIN key is destroyed.
    #[error("wrong PIN: {attempts_left} attempts left, retry after {retry_after_ms} ms")]
    WrongPin {
        /// Wrong PINs left before the PIN key is destroyed.
        attempts_left: u32,
        /// Milliseconds to wait before the next attempt (0 = none).
        retry_after_ms: u64,
    },
    /// Too many wrong PINs recently: wait before trying again.
    #[error("locked after wrong PINs: retry after {retry_after_ms} ms")]
    LockedOut {
        /// Milliseconds to wait.
        retry_after_ms: u64,
    },
    /// The PIN key was destroyed (too many wrong PINs) or the authenticator is
    /// locked by the server: the account must be activated again.
    #[error("this account must be activated again")]
    ReactivationRequired,
    /// The new PIN breaks the PIN policy.
    #[error("PIN refused: {0}")]
    PinPolicy(#[from] PinPolicyError),
    /// The request expired (server deadline measured on the monotonic clock).
    #[error("the request has expired")]
    Expired,
    /// The server could not be reached or the connection failed (retry later).
    /// The text names the failure class only.
    #[error("network error: {0}")]
    Network(String),
    /// No such account on this phone.
    #[error("no such account on this phone")]
    UnknownAccount,
    /// No such pending request for this account.
    #[error("no such pending request")]
    UnknownRequest,
    /// The identity is blocked: no approvals are possible.
    #[error("the identity is blocked")]
    Blocked,
    /// The server refused the call with a stable error code.
    #[error("the server refused the call: {code:?}")]
    Rejected {
        /// The server's error code.
        code: ErrorCode,
    },
    /// A server signature (envelope or receipt) did not verify, or a signed
    /// message did not match what was expected.
    #[error("invalid server signature or mismatching signed data")]
    InvalidServerSignature,
    /// The server answered something the core cannot use.
    #[error("invalid server response: {0}")]
    InvalidResponse(String),
    /// The reference text or provider name broke the text rules; only deny and
    /// report-fraud are possible for this request.
    #[error("the request's text was refused: {0}")]
    TextRefused(TextError),
    /// Approve needs the swipe to be confirmed on the screen showing the text.
    #[error("the swipe was not confirmed")]
    SwipeRequired,
    /// The request needs the code shown where it was started (channel binding).
    #[error("enter the code shown where the request was started")]
    BindingCodeRequired,
    /// The code typed does not match the one shown where the request was
    /// started. Nothing was recorded; check the code and try again.
    #[error("the code does not match the one shown where the request was started")]
    WrongBindingCode,
    /// The request was approved too soon after it was first shown (minimum
    /// read time). Nothing was signed or counted and the PIN unlock is still
    /// valid: approve again after `wait_ms`. Deny and report-fraud are never
    /// refused so.
    #[error("approved too soon after the request was shown: wait {wait_ms} ms")]
    TooFast {
        /// Milliseconds still to wait (monotonic).
        wait_ms: u64,
    },
    /// The unlock is unknown, already used, expired, or for another request.
    #[error("the PIN unlock is no longer valid; enter the PIN again")]
    UnlockInvalid,
    /// A different decision was already made for this request on this phone.
    #[error("a different decision was already made for this request")]
    AlreadyDecided,
    /// The configuration is invalid (e.g. a malformed SPKI pin or base URL).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// No interrupted activation to resume.
    #[error("no activation to resume")]
    NoPendingActivation,
    /// No device enrolment (new device from an existing one) on this phone.
    #[error("no device enrolment on this phone")]
    NoPendingEnrolment,
    /// The device enrolment is over without a new device: refused or
    /// cancelled on an existing device, expired undecided, or the identity
    /// was blocked. Its keys are deleted; start again.
    #[error("the device enrolment was refused, cancelled or expired")]
    EnrolmentRefused,
    /// The device journal's hash chain does not verify from entry `entry`
    /// (0-based) on: the local database was edited outside the core.
    #[error("the device journal is broken at entry {entry}")]
    JournalBroken {
        /// The first entry whose link does not follow.
        entry: u64,
    },
    /// The local database failed.
    #[error("storage error: {0}")]
    Storage(String),
    /// The platform keystore failed.
    #[error("keystore error: {0}")]
    KeyStore(#[from] KeyStoreError),
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Storage(e.to_string())
    }
}

impl From<rusqlite_migration::Error> for Error {
    fn from(e: rusqlite_migration::Error) -> Self {
        Error::Storage(e.to_string())
    }
}

/// The core's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
