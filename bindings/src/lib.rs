//! The FFI facade over `eid-core` for the Kotlin and Swift shells (uniffi,
//! proc-macros only, no UDL; the foreign package and module names are in
//! `uniffi.toml`).
//!
//! This crate is a translation layer, not the API: the behaviour lives in
//! `eid-core`. Here, ids become typed custom types over lowercase hex strings
//! (`ids.rs`), times are `u64` milliseconds, the core's error is mapped to
//! one small [`EidError`] (`error.rs`), and the platform keystore comes in as
//! the foreign trait [`KeyStore`]; calls and screen sharing come in as the
//! foreign trait [`ContextProvider`] (`context.rs`). One bridge file per subject: requests,
//! decisions and authenticators in `authenticator.rs` and `model.rs`, the security
//! feed in `events.rs`, journal alarms in `journal.rs`, device enrolment in
//! `enrolment.rs`, contact changes in `changes.rs`. Panics are caught by
//! uniffi at the boundary and surface as an internal error in the foreign
//! language, never as undefined behaviour.

mod app;
mod changes;
mod context;
mod enrolment;
mod error;
mod events;
mod hardware;
mod ids;
mod journal;
mod keystore;
mod model;

pub use app::{App, AppConfig, UnlockToken};
pub use changes::{ContactChangeState, PendingContactChange};
pub use context::{ContextError, ContextProvider};
pub use enrolment::EnrolmentStatus;
pub use error::{EidError, KeyStoreError, PinRefusal, ServerErrorCode};
pub use ids::IdKind;
pub use journal::JournalAlarm;
pub use keystore::{KeyProtection, KeyStore, SOFTWARE_KEYSTORE_OPT_IN};
pub use model::{
    AuthenticatorInfo, Outcome, PendingActivation, PersonSummary, Receipt, RequestKind, RequestView,
};

uniffi::setup_scaffolding!();
