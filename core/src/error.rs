//! The core's errors: one public enum, each variant actionable by the app, and
//! one crate-private `InternalError` that keeps the cause of a failure the
//! app cannot act on (a SQLite error, a poisoned lock, a failed task, a
//! serialization error, a decision counter race).
//!
//! Internal failures become a public [`Error`] in one place
//! (`impl From<InternalError> for Error`): database failures are
//! [`Error::Storage`], everything else [`Error::Internal`]. Both carry a
//! [`Cause`] through which the original error stays reachable with
//! [`std::error::Error::source`].
//!
//! No variant carries a secret (PIN, key material) or personal data; `Display`
//! texts are for developers and logs, the app maps variants to its own wording.

use std::sync::Arc;

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
    /// locked by the server: the authenticator must be activated again.
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
    /// No such authenticator on this phone.
    #[error("no such account on this phone")]
    UnknownAuthenticator,
    /// No such pending request for this authenticator.
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
        /// The server's explanation (developer-facing; the server puts no
        /// user data in it), for tools that show it (`eid --json`).
        message: String,
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
    /// A call, screen sharing or remote control is on and the person has not
    /// confirmed they started this request themselves
    /// ([`App::confirm_started_myself`](crate::App::confirm_started_myself),
    /// after the read time). Nothing was signed or counted; the PIN unlock
    /// is still valid.
    #[error("a call or screen sharing is on: confirm that you started this yourself first")]
    StartedMyselfRequired,
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
    /// The local database failed, or holds data the core cannot read. The
    /// cause (e.g. the SQLite error) is the [`std::error::Error::source`].
    #[error("storage error: {0}")]
    Storage(#[source] Cause),
    /// The core failed inside, not in the database: a poisoned lock, a
    /// background task that died, a value that could not be serialized, or
    /// a decision counter that kept moving. The cause is the
    /// [`std::error::Error::source`].
    #[error("internal error: {0}")]
    Internal(#[source] Cause),
    /// The platform keystore failed.
    #[error("keystore error: {0}")]
    KeyStore(#[from] KeyStoreError),
}

/// What failed inside the core, with its cause. Crate-private: the app sees
/// it only as the [`Cause`] of [`Error::Storage`] or [`Error::Internal`].
impl Error {
    /// The server's error code, when the server refused the call.
    pub fn server_code(&self) -> Option<ErrorCode> {
        match self {
            Error::Rejected { code, .. } => Some(*code),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum InternalError {
    /// SQLite failed.
    #[error("{0}")]
    Database(#[from] rusqlite::Error),
    /// The database file or its folder could not be created or made private.
    #[error("database file: {0}")]
    DatabaseFile(#[source] std::io::Error),
    /// A schema migration failed.
    #[error("{0}")]
    Migration(#[from] rusqlite_migration::Error),
    /// A stored value does not decode (the database was edited or damaged).
    #[error("corrupt {0}")]
    Corrupt(&'static str),
    /// The connection is not in the durable mode a PIN attempt needs.
    #[error("database not in durable mode")]
    NotDurable,
    /// A value could not be serialized to JSON.
    #[error("{0}")]
    Serialization(#[from] serde_json::Error),
    /// A thread panicked while holding one of the core's locks.
    #[error("internal lock poisoned")]
    PoisonedLock,
    /// A blocking task (PIN check, key generation) panicked or was cancelled.
    #[error("background task failed")]
    Task(#[from] tokio::task::JoinError),
    /// Other decisions kept taking the next decision counter while this one
    /// was being signed.
    #[error("decision counter kept moving")]
    CounterRace,
}

impl InternalError {
    /// Whether the failure is the database's (else the core's own).
    fn is_storage(&self) -> bool {
        match self {
            Self::Database(_)
            | Self::DatabaseFile(_)
            | Self::Migration(_)
            | Self::Corrupt(_)
            | Self::NotDurable => true,
            Self::Serialization(_) | Self::PoisonedLock | Self::Task(_) | Self::CounterRace => {
                false
            }
        }
    }
}

/// The one place an internal failure becomes a public error.
impl From<InternalError> for Error {
    fn from(e: InternalError) -> Self {
        if e.is_storage() {
            Error::Storage(Cause(Arc::new(e)))
        } else {
            Error::Internal(Cause(Arc::new(e)))
        }
    }
}

/// Lets `?` lift the causes [`InternalError`] wraps straight into [`Error`]
/// (through `From<InternalError>`, so the classification stays in one place).
macro_rules! through_internal_error {
    ($($cause:ty),* $(,)?) => {$(
        impl From<$cause> for Error {
            fn from(e: $cause) -> Self {
                InternalError::from(e).into()
            }
        }
    )*};
}

through_internal_error!(
    rusqlite::Error,
    rusqlite_migration::Error,
    serde_json::Error,
    tokio::task::JoinError,
);

/// Why the core failed inside (the payload of [`Error::Storage`] and
/// [`Error::Internal`]). Its `Display` names the failure without personal
/// data; [`std::error::Error::source`] gives the underlying error (e.g. the
/// `rusqlite::Error`) where there is one. Shared, so [`Error`] stays `Clone`.
#[derive(Debug, Clone)]
pub struct Cause(Arc<InternalError>);

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Two causes are equal when they are the same kind of failure with the same
/// description: the underlying errors (SQLite, JSON, task) cannot be compared
/// themselves, and tests compare [`Error`]s.
impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(self.0.as_ref()) == std::mem::discriminant(other.0.as_ref())
            && self.0.to_string() == other.0.to_string()
    }
}

impl Eq for Cause {}

/// The core's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn a_database_failure_is_storage_and_keeps_the_sqlite_error_as_source() {
        let e = Error::from(rusqlite::Error::InvalidQuery);
        assert!(matches!(e, Error::Storage(_)));
        let cause = e.source().expect("the cause");
        let sqlite = cause.source().expect("the SQLite error");
        assert!(sqlite.downcast_ref::<rusqlite::Error>().is_some());
        assert_eq!(
            e.to_string(),
            format!("storage error: {}", rusqlite::Error::InvalidQuery)
        );
    }

    #[test]
    fn a_poisoned_lock_or_counter_race_is_internal_not_storage() {
        for e in [InternalError::PoisonedLock, InternalError::CounterRace] {
            assert!(matches!(Error::from(e), Error::Internal(_)));
        }
        let json = serde_json::from_str::<u8>("x").unwrap_err();
        assert!(matches!(Error::from(json), Error::Internal(_)));
        assert!(matches!(
            Error::from(InternalError::Corrupt("id")),
            Error::Storage(_)
        ));
    }

    #[test]
    fn causes_compare_by_kind_and_description() {
        let a = Error::from(InternalError::Corrupt("id"));
        assert_eq!(a, a.clone());
        assert_eq!(a, Error::from(InternalError::Corrupt("id")));
        assert_ne!(a, Error::from(InternalError::Corrupt("key")));
        assert_ne!(
            Error::from(InternalError::PoisonedLock),
            Error::from(InternalError::CounterRace)
        );
    }
}
