//! The platform's view of calls and screen sharing as a foreign trait (like
//! the keystore): the Android shell reads `AudioManager` and
//! `AccessibilityManager`, the iOS shell `CXCallObserver` and
//! `UIScreen.isCaptured`, tests a fake. What each platform can tell:
//! docs/integration.md, "Calls and screen sharing".

use std::sync::Arc;

use eid_core::CallSignals;

/// What the app's platform sees now about calls, screen sharing and remote
/// control. Called from background threads, often: keep it cheap, never
/// prompt for a permission from it, never throw, and answer `Signal.Unknown`
/// for anything the platform cannot tell (never `Off`).
#[uniffi::export(with_foreign)]
pub trait ContextProvider: Send + Sync {
    /// The signals now.
    fn signals(&self) -> CallSignals;
}

/// Adapts the foreign provider to the core's trait.
pub(crate) struct ForeignContext(pub(crate) Arc<dyn ContextProvider>);

impl eid_core::ContextProvider for ForeignContext {
    fn signals(&self) -> CallSignals {
        self.0.signals()
    }
}
