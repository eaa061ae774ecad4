//! eID authenticator core.
#![forbid(unsafe_code)]

pub mod client;
pub mod clock;
pub mod error;
pub mod keystore;
pub mod lockout;
pub mod pin;
mod store;

pub use error::{Error, Result};
