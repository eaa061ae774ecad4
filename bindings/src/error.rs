//! The one public error of the facade, with actionable variants, and the
//! only place where the core's error is converted to it.

use eid_core::Error as CoreError;
use eid_protocol::wire::ErrorCode;

use crate::ids::IdKind;

/// What went wrong, in terms the app can act on. Texts carry no secrets and
/// no personal data; where a variant means exactly the core's, its text is
/// the core's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
///
/// Fields are never called `message`: in Kotlin every error is a `Throwable`,
/// whose `message` such a field would clash with, and the generated Kotlin
/// would not compile (a limitation of the uniffi generator itself, tracked
/// upstream as uniffi-rs issue 1434).
#[non_exhaustive]
pub enum EidError {
    /// Wrong PIN. Show `attempts_left`; wait `retry_after_ms` before the next try.
    #[error("wrong PIN: {attempts_left} attempts left")]
    WrongPin {
        /// Wrong PINs left before the PIN key is destroyed.
        attempts_left: u32,
        /// Milliseconds to wait before the next try (0 = none).
        retry_after_ms: u64,
    },
    /// Too many wrong PINs: wait before trying again.
    #[error("locked after wrong PINs")]
    LockedOut {
        /// Milliseconds to wait.
        retry_after_ms: u64,
    },
    /// The authenticator must be activated again (PIN key destroyed or the server
    /// locked the authenticator).
    #[error("{}", CoreError::ReactivationRequired)]
    NotActivated,
    /// The chosen PIN breaks the policy; `reason` says why (English, for logs;
    /// the app shows its own wording for `kind`).
    #[error("PIN refused: {reason}")]
    PinRefused {
        /// Which rule the PIN broke.
        kind: PinRefusal,
        /// Developer text.
        reason: String,
    },
    /// The request expired.
    #[error("{}", CoreError::Expired)]
    Expired,
    /// The server could not be reached; try again later. Nothing was lost.
    #[error("network error: {detail}")]
    Network {
        /// The failure class (no personal data).
        detail: String,
    },
    /// The identity is blocked.
    #[error("{}", CoreError::Blocked)]
    Blocked,
    /// The server refused the call; `code` is its stable error code.
    #[error("the server refused the call: {code:?}")]
    Rejected {
        /// The server's error code, e.g. `InvalidActivationCode`.
        code: ServerErrorCode,
    },
    /// An id passed in is not 32 lowercase hex digits: a bug in the app, not
    /// a state to refresh (ids come from the records this library returns).
    #[error("malformed {what:?} id")]
    InvalidId {
        /// Which kind of id.
        what: IdKind,
    },
    /// No such authenticator or request on this phone (refresh and try again).
    #[error("no such account or request on this phone")]
    UnknownRequest,
    /// The server's signature did not verify: the answer was tampered with.
    #[error("invalid server signature")]
    InvalidServerSignature,
    /// The request's text broke the display rules: it can only be denied.
    #[error("the request's text was refused")]
    TextRefused,
    /// Approve needs the completed swipe.
    #[error("{}", CoreError::SwipeRequired)]
    SwipeRequired,
    /// Enter the code shown where the request was started.
    #[error("the binding code is required")]
    BindingCodeRequired,
    /// The code typed did not match; nothing was recorded, try again.
    #[error("the binding code does not match")]
    WrongBindingCode,
    /// Approved too soon after the request was shown (minimum read time).
    /// Nothing was signed; the PIN unlock stays valid: approve again after
    /// `wait_ms`.
    #[error("approved too soon after the request was shown")]
    TooFast {
        /// Milliseconds still to wait.
        wait_ms: u64,
    },
    /// A call, screen sharing or remote control is on: the person must
    /// confirm "I started this myself" (`App.confirmStartedMyself`, after the
    /// read time) before the swipe. Nothing was signed; the unlock is kept.
    #[error("{}", CoreError::StartedMyselfRequired)]
    StartedMyselfRequired,
    /// The PIN unlock expired or was used: enter the PIN again.
    #[error("the PIN unlock is no longer valid")]
    UnlockInvalid,
    /// This phone already made another decision on the request.
    #[error("a different decision was already made")]
    AlreadyDecided,
    /// No interrupted activation to resume.
    #[error("{}", CoreError::NoPendingActivation)]
    NoPendingActivation,
    /// No device enrolment (new device from an existing one) on this phone.
    #[error("{}", CoreError::NoPendingEnrolment)]
    NoPendingEnrolment,
    /// The device enrolment was refused, cancelled on the existing phone,
    /// expired, or the identity was blocked; its keys are deleted. Start again.
    #[error("{}", CoreError::EnrolmentRefused)]
    EnrolmentRefused,
    /// Invalid configuration (server URL, TLS pin).
    #[error("invalid configuration: {detail}")]
    Config {
        /// What is wrong.
        detail: String,
    },
    /// A release build refused a keystore that keeps the device key in
    /// software (`KeyProtection::Software`): use the platform keystore, or,
    /// for tests only, set `AppConfig::allow_software_keystore`
    /// (docs/integration.md, section 2).
    #[error("a software keystore is refused in release builds")]
    SoftwareKeyStoreRefused,
    /// The platform keystore failed.
    #[error("keystore error: {detail}")]
    KeyStore {
        /// What failed.
        detail: String,
    },
    /// Local storage or an internal failure; report it.
    #[error("internal error: {detail}")]
    Internal {
        /// What failed.
        detail: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for EidError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        EidError::KeyStore { detail: e.reason }
    }
}

/// Which PIN rule a new PIN broke (in [`EidError::PinRefused`]). A flat
/// enum, not the core's `PinPolicyError`: the foreign languages need no
/// fields here (the required length is a fixed setting the app knows), and
/// `Unknown` keeps an older app working with a newer core's rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum PinRefusal {
    /// Not the required number of digits.
    WrongLength,
    /// Something other than the digits 0-9.
    NotDigits,
    /// All digits the same (111111).
    AllSame,
    /// An ascending or descending sequence (123456).
    Sequence,
    /// A short block repeated (121212).
    RepeatedPattern,
    /// Reads as a date.
    Date,
    /// On the list of commonly chosen PINs.
    Common,
    /// A rule this build does not know.
    Unknown,
}

impl From<&eid_core::PinPolicyError> for PinRefusal {
    fn from(e: &eid_core::PinPolicyError) -> Self {
        use eid_core::PinPolicyError as P;
        match e {
            P::WrongLength { .. } => Self::WrongLength,
            P::NotDigits => Self::NotDigits,
            P::AllSame => Self::AllSame,
            P::Sequence => Self::Sequence,
            P::RepeatedPattern => Self::RepeatedPattern,
            P::Date => Self::Date,
            P::Common => Self::Common,
            _ => Self::Unknown,
        }
    }
}

/// Declares [`ServerErrorCode`] with the same variants as the protocol's
/// `ErrorCode` plus `Unknown`, and the conversion between them, from the
/// protocol's own list (`eid_protocol::with_error_codes!`): a code added to
/// the protocol reaches the apps by name, never as `Unknown`, and the list is
/// written once.
macro_rules! server_error_codes {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// The server's stable error code (in [`EidError::Rejected`]). The
        /// protocol's `ErrorCode` plus `Unknown`, which it lacks: a code added
        /// to a newer core or server after this list was written arrives as
        /// `Unknown` (show a generic message), never as a failure.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
        pub enum ServerErrorCode {
            $($(#[$doc])* $name,)*
            /// A code this build does not know.
            Unknown,
        }

        impl From<ErrorCode> for ServerErrorCode {
            fn from(code: ErrorCode) -> Self {
                match code {
                    $(ErrorCode::$name => Self::$name,)*
                    _ => Self::Unknown,
                }
            }
        }
    };
}

eid_protocol::with_error_codes!(server_error_codes);

impl From<CoreError> for EidError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::WrongPin {
                attempts_left,
                retry_after_ms,
            } => EidError::WrongPin {
                attempts_left,
                retry_after_ms,
            },
            CoreError::LockedOut { retry_after_ms } => EidError::LockedOut { retry_after_ms },
            CoreError::ReactivationRequired => EidError::NotActivated,
            CoreError::PinPolicy(p) => EidError::PinRefused {
                kind: PinRefusal::from(&p),
                reason: p.to_string(),
            },
            CoreError::Expired => EidError::Expired,
            CoreError::Network(detail) => EidError::Network { detail },
            CoreError::UnknownAuthenticator | CoreError::UnknownRequest => EidError::UnknownRequest,
            CoreError::Blocked => EidError::Blocked,
            CoreError::Rejected { code, .. } => EidError::Rejected { code: code.into() },
            CoreError::InvalidServerSignature => EidError::InvalidServerSignature,
            CoreError::InvalidResponse(message) => EidError::Internal {
                detail: format!("invalid server response: {message}"),
            },
            CoreError::TextRefused(_) => EidError::TextRefused,
            CoreError::SwipeRequired => EidError::SwipeRequired,
            CoreError::BindingCodeRequired => EidError::BindingCodeRequired,
            CoreError::WrongBindingCode => EidError::WrongBindingCode,
            CoreError::TooFast { wait_ms } => EidError::TooFast { wait_ms },
            CoreError::StartedMyselfRequired => EidError::StartedMyselfRequired,
            CoreError::UnlockInvalid => EidError::UnlockInvalid,
            CoreError::AlreadyDecided => EidError::AlreadyDecided,
            CoreError::Config(detail) => EidError::Config { detail },
            CoreError::NoPendingActivation => EidError::NoPendingActivation,
            CoreError::NoPendingEnrolment => EidError::NoPendingEnrolment,
            CoreError::EnrolmentRefused => EidError::EnrolmentRefused,
            CoreError::Storage(cause) | CoreError::Internal(cause) => EidError::Internal {
                detail: cause.to_string(),
            },
            CoreError::KeyStore(k) => EidError::KeyStore {
                detail: k.to_string(),
            },
            other => EidError::Internal {
                detail: other.to_string(),
            },
        }
    }
}

/// Why a foreign keystore call failed (what the Kotlin/Swift implementation throws).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
#[non_exhaustive]
pub enum KeyStoreError {
    /// No key under this alias.
    #[error("no key under this alias")]
    NotFound,
    /// The keystore is unavailable or failed.
    #[error("keystore failure: {detail}")]
    Failure {
        /// What failed (no secrets).
        detail: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for KeyStoreError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        KeyStoreError::Failure { detail: e.reason }
    }
}

impl From<KeyStoreError> for eid_core::KeyStoreError {
    fn from(e: KeyStoreError) -> Self {
        match e {
            KeyStoreError::NotFound => eid_core::KeyStoreError::NotFound,
            KeyStoreError::Failure { detail } => eid_core::KeyStoreError::Failure(detail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! every_protocol_code {
        ($($(#[$doc:meta])* $name:ident,)*) => {
            [$(ErrorCode::$name,)*]
        };
    }

    #[test]
    fn every_code_of_the_protocol_reaches_the_apps_by_name() {
        let codes = eid_protocol::with_error_codes!(every_protocol_code);
        assert!(
            codes.len() >= 41,
            "the protocol lists {} codes",
            codes.len()
        );
        for code in codes {
            assert_ne!(
                ServerErrorCode::from(code),
                ServerErrorCode::Unknown,
                "{code:?}"
            );
        }
    }

    #[test]
    fn server_codes_keep_their_names() {
        assert_eq!(
            ServerErrorCode::from(ErrorCode::InvalidActivationCode),
            ServerErrorCode::InvalidActivationCode
        );
        assert_eq!(
            ServerErrorCode::from(ErrorCode::Internal),
            ServerErrorCode::Internal
        );
        assert_eq!(
            EidError::from(CoreError::Rejected {
                code: ErrorCode::DeviceLimitReached,
                message: "at most three devices".into(),
            }),
            EidError::Rejected {
                code: ServerErrorCode::DeviceLimitReached
            }
        );
    }

    #[test]
    fn core_errors_map_to_actionable_variants() {
        assert_eq!(
            EidError::from(CoreError::WrongPin {
                attempts_left: 7,
                retry_after_ms: 60_000
            }),
            EidError::WrongPin {
                attempts_left: 7,
                retry_after_ms: 60_000
            }
        );
        assert_eq!(
            EidError::from(CoreError::ReactivationRequired),
            EidError::NotActivated
        );
        assert!(matches!(
            EidError::from(CoreError::PinPolicy(eid_core::PinPolicyError::Date)),
            EidError::PinRefused {
                kind: PinRefusal::Date,
                ..
            }
        ));
    }
}
