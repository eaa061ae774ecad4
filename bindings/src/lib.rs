//! The FFI facade over `eid-core` for the Kotlin and Swift shells (uniffi,
//! proc-macros only, no UDL).
//!
//! This crate is a translation layer, not the API: the behaviour lives in
//! `eid-core`. Here, ids become lowercase hex strings, times are `u64`
//! milliseconds, the core's error is mapped to one small [`EidError`], and the
//! platform keystore comes in as the foreign trait [`KeyStore`]. Panics are
//! caught by uniffi at the boundary and surface as an internal error in the
//! foreign language, never as undefined behaviour.

mod authenticator;
mod error;
mod keystore;
mod model;
mod protections;

pub use authenticator::{Authenticator, AuthenticatorConfig, UnlockToken};
pub use error::{EidError, KeyStoreError};
pub use keystore::KeyStore;
pub use model::{
    AccountInfo, AccountState, Action, Language, Outcome, PendingActivation, PersonSummary,
    Receipt, RequestKind, RequestView, Warning, WarningKind,
};
pub use protections::{
    ContactChangeState, ContactChannel, DeviceEnrolment, EnrolmentStatus, EventView, JournalAlarm,
    PendingContactChange, PendingDevice, PendingDeviceState, SecurityEventKind,
};

uniffi::setup_scaffolding!();
