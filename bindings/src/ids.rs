//! The ids that cross the FFI, as typed uniffi custom types.
//!
//! In Kotlin and Swift each is a type alias of `String` holding 32 lowercase
//! hex digits (the wire spelling), so the shells can store and compare them
//! as text, but a signature such as `deny(authenticatorId: AuthenticatorId,
//! requestId: RequestId)` says which id goes where. On the way in each is
//! parsed once, here: a malformed id fails with [`EidError::InvalidId`]
//! naming the kind of id, before any call reaches the core, instead of
//! looking like an unknown authenticator or request.

use std::str::FromStr;

use eid_protocol::{AuthenticatorId, ChangeId, IdentityId, RequestId};

use crate::error::EidError;

/// Which kind of id was malformed (in [`EidError::InvalidId`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum IdKind {
    /// An authenticator (authenticator) id, or a device enrolment's id (the future
    /// authenticator's).
    Authenticator,
    /// A request id.
    Request,
    /// A contact change id.
    Change,
    /// An identity id.
    Identity,
}

/// Parses an id arriving from Kotlin or Swift.
fn lift<T: FromStr>(text: &str, what: IdKind) -> uniffi::Result<T> {
    // The error is downcast back to `EidError` by the scaffolding of every
    // exported function returning `Result<_, EidError>`.
    T::from_str(text).map_err(|_| EidError::InvalidId { what }.into())
}

uniffi::custom_type!(AuthenticatorId, String, {
    remote,
    lower: |id| id.to_string(),
    try_lift: |text| lift(&text, IdKind::Authenticator),
});

uniffi::custom_type!(RequestId, String, {
    remote,
    lower: |id| id.to_string(),
    try_lift: |text| lift(&text, IdKind::Request),
});

uniffi::custom_type!(ChangeId, String, {
    remote,
    lower: |id| id.to_string(),
    try_lift: |text| lift(&text, IdKind::Change),
});

uniffi::custom_type!(IdentityId, String, {
    remote,
    lower: |id| id.to_string(),
    try_lift: |text| lift(&text, IdKind::Identity),
});

#[cfg(test)]
mod tests {
    use uniffi::{Lift, Lower};

    use super::*;
    use crate::UniFfiTag;

    #[test]
    fn an_id_crosses_as_its_lowercase_hex_and_comes_back_unchanged() {
        let id = RequestId([0xab; 16]);
        let lowered = <RequestId as Lower<UniFfiTag>>::lower(id);
        let lifted = <RequestId as Lift<UniFfiTag>>::try_lift(lowered).expect("lifts");
        assert_eq!(lifted, id);
    }

    #[test]
    fn a_malformed_id_is_an_invalid_id_error_naming_its_kind() {
        for text in [
            "",
            "AB".repeat(16).as_str(),
            "ab".repeat(15).as_str(),
            "not hex",
        ] {
            let err = lift::<ChangeId>(text, IdKind::Change).expect_err("refused");
            assert_eq!(
                err.downcast::<EidError>().expect("an EidError"),
                EidError::InvalidId {
                    what: IdKind::Change
                }
            );
        }
    }
}
