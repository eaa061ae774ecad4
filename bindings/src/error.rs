//! The one public error of the facade, with actionable variants.

use eid_core::Error as CoreError;

/// What went wrong, in terms the app can act on. Texts carry no secrets and
/// no personal data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
///
/// Fields are never called `message`: in Kotlin every error is a `Throwable`,
/// whose `message` such a field would clash with (uniffi-rs issue 1434), and the
/// generated Kotlin would not compile.
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
    /// The account must be activated again (PIN key destroyed or the server
    /// locked the authenticator).
    #[error("this account must be activated again")]
    NotActivated,
    /// The chosen PIN breaks the policy; `reason` says why (English, for logs;
    /// the app shows its own wording for `kind`).
    #[error("PIN refused: {reason}")]
    PinRefused {
        /// Stable reason code: wrong_length, not_digits, all_same, sequence,
        /// repeated_pattern, date, common.
        kind: String,
        /// Developer text.
        reason: String,
    },
    /// The request expired.
    #[error("the request has expired")]
    Expired,
    /// The server could not be reached; try again later. Nothing was lost.
    #[error("network error: {detail}")]
    Network {
        /// The failure class (no personal data).
        detail: String,
    },
    /// The identity is blocked.
    #[error("the identity is blocked")]
    Blocked,
    /// The server refused the call; `code` is its stable error code.
    #[error("the server refused the call: {code}")]
    Rejected {
        /// The server's error code, e.g. `invalid_activation_code`.
        code: String,
    },
    /// No such account or request on this phone (refresh and try again).
    #[error("no such account or request on this phone")]
    UnknownRequest,
    /// The server's signature did not verify: the answer was tampered with.
    #[error("invalid server signature")]
    InvalidServerSignature,
    /// The request's text broke the display rules: it can only be denied.
    #[error("the request's text was refused")]
    TextRefused,
    /// Approve needs the completed swipe.
    #[error("the swipe was not confirmed")]
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
    /// The PIN unlock expired or was used: enter the PIN again.
    #[error("the PIN unlock is no longer valid")]
    UnlockInvalid,
    /// This phone already made another decision on the request.
    #[error("a different decision was already made")]
    AlreadyDecided,
    /// No interrupted activation to resume.
    #[error("no activation to resume")]
    NoPendingActivation,
    /// No device enrolment (new device from an existing one) on this phone.
    #[error("no device enrolment on this phone")]
    NoPendingEnrolment,
    /// The device enrolment was refused, cancelled on the existing phone,
    /// expired, or the identity was blocked; its keys are deleted. Start again.
    #[error("the device enrolment was refused, cancelled or expired")]
    EnrolmentRefused,
    /// Invalid configuration (server URL, pin, ids).
    #[error("invalid configuration: {detail}")]
    Config {
        /// What is wrong.
        detail: String,
    },
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

fn pin_policy_kind(e: &eid_core::PinPolicyError) -> &'static str {
    use eid_core::PinPolicyError as P;
    match e {
        P::WrongLength { .. } => "wrong_length",
        P::NotDigits => "not_digits",
        P::AllSame => "all_same",
        P::Sequence => "sequence",
        P::RepeatedPattern => "repeated_pattern",
        P::Date => "date",
        P::Common => "common",
        _ => "other",
    }
}

/// The server's snake_case code, exactly as on the wire.
fn error_code_text(code: eid_protocol::wire::ErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

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
                kind: pin_policy_kind(&p).to_owned(),
                reason: p.to_string(),
            },
            CoreError::Expired => EidError::Expired,
            CoreError::Network(detail) => EidError::Network { detail },
            CoreError::UnknownAccount | CoreError::UnknownRequest => EidError::UnknownRequest,
            CoreError::Blocked => EidError::Blocked,
            CoreError::Rejected { code } => EidError::Rejected {
                code: error_code_text(code),
            },
            CoreError::InvalidServerSignature => EidError::InvalidServerSignature,
            CoreError::InvalidResponse(message) => EidError::Internal {
                detail: format!("invalid server response: {message}"),
            },
            CoreError::TextRefused(_) => EidError::TextRefused,
            CoreError::SwipeRequired => EidError::SwipeRequired,
            CoreError::BindingCodeRequired => EidError::BindingCodeRequired,
            CoreError::WrongBindingCode => EidError::WrongBindingCode,
            CoreError::TooFast { wait_ms } => EidError::TooFast { wait_ms },
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
    use eid_protocol::wire::ErrorCode;

    #[test]
    fn server_codes_keep_their_wire_spelling() {
        assert_eq!(
            error_code_text(ErrorCode::InvalidActivationCode),
            "invalid_activation_code"
        );
        assert_eq!(error_code_text(ErrorCode::Internal), "internal");
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
            EidError::PinRefused { kind, .. } if kind == "date"
        ));
    }
}
