//! The platform's view of calls and screen sharing as a foreign trait (like
//! the keystore): the Android shell reads `AudioManager` and
//! `AccessibilityManager`, the iOS shell `CXCallObserver` and
//! `UIScreen.isCaptured`, tests a fake. What each platform can tell:
//! docs/integration.md, "Calls and screen sharing".
//!
//! A provider that fails (throws, in Kotlin or Swift) reports nothing: every
//! signal is unknown, never off. Its method returns a `Result` for that
//! reason: without one, uniffi turns a thrown exception into a Rust panic,
//! which aborts the phone library (it is built with `panic = "abort"`) each
//! time the request list is built, so the person could not even deny.

use std::sync::Arc;

use eid_core::CallSignals;

/// A provider's failure to read the platform. Any exception the foreign
/// code throws arrives as this too; the core reads it as all unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum ContextError {
    /// The platform could not be read.
    #[error("the platform's call state could not be read: {detail}")]
    Unreadable {
        /// What failed (no personal data; for logs).
        detail: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for ContextError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        ContextError::Unreadable { detail: e.reason }
    }
}

/// What the app's platform sees now about calls, screen sharing and remote
/// control. Called from background threads, often: keep it cheap, never
/// prompt for a permission from it, and answer `Signal.Unknown` for
/// anything the platform cannot tell (never `Off`). A thrown error makes
/// every signal unknown.
#[uniffi::export(with_foreign)]
pub trait ContextProvider: Send + Sync {
    /// The signals now.
    fn signals(&self) -> Result<CallSignals, ContextError>;
}

/// Adapts the foreign provider to the core's trait.
pub(crate) struct ForeignContext(pub(crate) Arc<dyn ContextProvider>);

impl eid_core::ContextProvider for ForeignContext {
    fn signals(&self) -> CallSignals {
        // A failing provider saw nothing: unknown, not off (and no error,
        // so a denial is never held back by it).
        self.0.signals().unwrap_or(CallSignals::UNKNOWN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eid_core::{ContextProvider as _, Signal};

    struct Failing;

    impl ContextProvider for Failing {
        fn signals(&self) -> Result<CallSignals, ContextError> {
            // What uniffi hands over when the Kotlin or Swift code throws.
            Err(uniffi::UnexpectedUniFFICallbackError::new("IllegalStateException").into())
        }
    }

    struct OnCall;

    impl ContextProvider for OnCall {
        fn signals(&self) -> Result<CallSignals, ContextError> {
            Ok(CallSignals {
                call: Signal::On,
                ..CallSignals::UNKNOWN
            })
        }
    }

    #[test]
    fn a_provider_that_throws_reports_every_signal_unknown_not_off() {
        assert_eq!(
            ForeignContext(Arc::new(Failing)).signals(),
            CallSignals::UNKNOWN
        );
        assert!(ForeignContext(Arc::new(OnCall)).signals().call.is_on());
    }
}
