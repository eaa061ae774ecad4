//! How values map to SQLite columns: ids as 16-byte blobs, times as
//! integers, enums as their stored names.
//!
//! Every enum is read back through a [`FromSql`] impl that refuses a name
//! this build does not know: a corrupt or newer database is an error, never
//! silently a harmless-looking state (a `pending` request, a `cancelled`
//! change). The protocol's ids and enums are foreign types, so they map
//! through the [`Col`] wrapper (the orphan rule forbids impls on them here, and
//! the phone library must not depend on rusqlite).

use eid_protocol::wire::{AgentRole, ChangeState, ContactChannel, RequestStatus};
use eid_protocol::{
    AuthenticatorId, CallVerdict, ChangeId, IdentityId, Outcome, PublicKey, RequestId,
    ServiceProviderId,
};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Row, ffi};

use crate::store::{AuthenticatorState, ChangeKind, Channel, EnrolmentStoredState, LoginMethod};

/// A protocol value as a column (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Col<T>(pub(super) T);

/// Reads column `idx` through its [`Col`] mapping.
pub(super) fn col<T>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T>
where
    Col<T>: FromSql,
{
    Ok(row.get::<_, Col<T>>(idx)?.0)
}

/// Reads an optional column `idx` through its [`Col`] mapping.
pub(super) fn opt_col<T>(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<T>>
where
    Col<T>: FromSql,
{
    Ok(row.get::<_, Option<Col<T>>>(idx)?.map(|c| c.0))
}

/// A stored name this build does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown stored {what} {name:?}")]
pub(super) struct UnknownName {
    what: &'static str,
    name: String,
}

fn unknown(what: &'static str, name: &str) -> FromSqlError {
    FromSqlError::Other(Box::new(UnknownName {
        what,
        name: name.to_owned(),
    }))
}

/// A value of a newer protocol variant this store has no name for.
fn unnamed(what: &'static str) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(UnknownName {
        what,
        name: "(unnamed variant)".to_owned(),
    }))
}

/// Maps a `Copy` enum to and from its stored names: `$ty` implements the traits
/// itself when it is ours, through [`Col`] when it is the protocol's.
macro_rules! named_column {
    (@impl $target:ty, $ty:ty, $what:literal, $get:expr, $wrap:expr, { $($variant:pat => $name:literal => $value:expr),+ $(,)? }) => {
        impl ToSql for $target {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                let v: $ty = $get(self);
                #[allow(unreachable_patterns)]
                let name = match v {
                    $($variant => $name,)+
                    _ => return Err(unnamed($what)),
                };
                Ok(ToSqlOutput::Borrowed(ValueRef::Text(name.as_bytes())))
            }
        }
        impl FromSql for $target {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let name = value.as_str()?;
                let v: $ty = match name {
                    $($name => $value,)+
                    other => return Err(unknown($what, other)),
                };
                Ok($wrap(v))
            }
        }
    };
    (ours $ty:ty, $what:literal, $map:tt) => {
        named_column!(@impl $ty, $ty, $what, |s: &$ty| -> $ty { *s }, |v| v, $map);
    };
    (protocol $ty:ty, $what:literal, $map:tt) => {
        named_column!(@impl Col<$ty>, $ty, $what, |s: &Col<$ty>| -> $ty { s.0 }, Col, $map);
    };
}

named_column!(protocol RequestStatus, "request status", {
    RequestStatus::Pending => "pending" => RequestStatus::Pending,
    RequestStatus::Approved => "approved" => RequestStatus::Approved,
    RequestStatus::Denied => "denied" => RequestStatus::Denied,
    RequestStatus::FraudReported => "fraud_reported" => RequestStatus::FraudReported,
    RequestStatus::Cancelled => "cancelled" => RequestStatus::Cancelled,
});

named_column!(protocol CallVerdict, "call verdict", {
    CallVerdict::Clear => "clear" => CallVerdict::Clear,
    CallVerdict::Allowed => "allowed" => CallVerdict::Allowed,
    CallVerdict::Flagged => "flagged" => CallVerdict::Flagged,
    CallVerdict::Stopped => "stopped" => CallVerdict::Stopped,
});

named_column!(protocol Outcome, "decision outcome", {
    Outcome::Approve => "approve" => Outcome::Approve,
    Outcome::Deny => "deny" => Outcome::Deny,
    Outcome::ReportFraud => "report_fraud" => Outcome::ReportFraud,
});

named_column!(protocol ChangeState, "change state", {
    ChangeState::AwaitingFirstLogin => "awaiting_first_login" => ChangeState::AwaitingFirstLogin,
    ChangeState::WaitingSecondLogin => "waiting_second_login" => ChangeState::WaitingSecondLogin,
    ChangeState::AwaitingSecondLogin => "awaiting_second_login" => ChangeState::AwaitingSecondLogin,
    ChangeState::Completed => "completed" => ChangeState::Completed,
    ChangeState::Cancelled => "cancelled" => ChangeState::Cancelled,
    ChangeState::Expired => "expired" => ChangeState::Expired,
    ChangeState::Failed => "failed" => ChangeState::Failed,
});

named_column!(protocol AgentRole, "agent role", {
    AgentRole::Support => "support" => AgentRole::Support,
    AgentRole::Administrator => "administrator" => AgentRole::Administrator,
});

named_column!(ours ChangeKind, "change kind", {
    ChangeKind::Contact(ContactChannel::Phone) => "phone" => ChangeKind::Contact(ContactChannel::Phone),
    ChangeKind::Contact(ContactChannel::Email) => "email" => ChangeKind::Contact(ContactChannel::Email),
    ChangeKind::UserId => "user_id" => ChangeKind::UserId,
});

named_column!(ours AuthenticatorState, "authenticator state", {
    AuthenticatorState::Active => "active" => AuthenticatorState::Active,
    AuthenticatorState::Locked => "locked" => AuthenticatorState::Locked,
});

named_column!(ours EnrolmentStoredState, "enrolment state", {
    EnrolmentStoredState::AwaitingApproval => "awaiting_approval" => EnrolmentStoredState::AwaitingApproval,
    EnrolmentStoredState::Waiting => "waiting" => EnrolmentStoredState::Waiting,
    EnrolmentStoredState::Activated => "activated" => EnrolmentStoredState::Activated,
    EnrolmentStoredState::Cancelled => "cancelled" => EnrolmentStoredState::Cancelled,
});

named_column!(ours LoginMethod, "login method", {
    LoginMethod::App => "app" => LoginMethod::App,
    LoginMethod::CodeDisplay => "code_display" => LoginMethod::CodeDisplay,
    LoginMethod::CodeReader => "code_reader" => LoginMethod::CodeReader,
    LoginMethod::Chip => "chip" => LoginMethod::Chip,
    LoginMethod::AppAndChip => "app_chip" => LoginMethod::AppAndChip,
});

named_column!(ours Channel, "delivery channel", {
    Channel::Sms => "sms" => Channel::Sms,
    Channel::Email => "email" => Channel::Email,
});

/// Maps the protocol's 16-byte ids to blobs; a blob of another length is an
/// error.
macro_rules! id_column {
    ($($ty:ident),+) => {$(
        impl ToSql for Col<$ty> {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::Borrowed(ValueRef::Blob(self.0.as_bytes().as_slice())))
            }
        }
        /// A borrowed id binds like an owned one.
        impl ToSql for Col<&$ty> {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::Borrowed(ValueRef::Blob(self.0.as_bytes().as_slice())))
            }
        }
        impl FromSql for Col<$ty> {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let blob = value.as_blob()?;
                let bytes = <[u8; 16]>::try_from(blob).map_err(|_| FromSqlError::InvalidBlobSize {
                    expected_size: 16,
                    blob_size: blob.len(),
                })?;
                Ok(Col($ty(bytes)))
            }
        }
    )+};
}

id_column!(
    IdentityId,
    AuthenticatorId,
    RequestId,
    ChangeId,
    ServiceProviderId
);

/// Column `idx`, a blob, as bytes borrowed from the row (no copy).
pub(super) fn blob_ref<'r>(row: &'r Row<'_>, idx: usize) -> rusqlite::Result<&'r [u8]> {
    let value = row.get_ref(idx)?;
    value
        .as_blob()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, value.data_type(), Box::new(e)))
}

/// Column `idx`, a text, borrowed from the row (no copy): for stored JSON
/// that is parsed at once.
pub(super) fn text_ref<'r>(row: &'r Row<'_>, idx: usize) -> rusqlite::Result<&'r str> {
    let value = row.get_ref(idx)?;
    value
        .as_str()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, value.data_type(), Box::new(e)))
}

pub(super) fn blob16(row: &Row<'_>, idx: usize) -> rusqlite::Result<[u8; 16]> {
    blob_ref(row, idx)?
        .try_into()
        .map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, 16))
}

/// An optional 16-byte blob column.
pub(super) fn opt_blob16(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<[u8; 16]>> {
    if matches!(row.get_ref(idx)?, ValueRef::Null) {
        return Ok(None);
    }
    blob16(row, idx).map(Some)
}

pub(super) fn blob32(row: &Row<'_>, idx: usize) -> rusqlite::Result<[u8; 32]> {
    blob_ref(row, idx)?
        .try_into()
        .map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, 32))
}

pub(super) fn pubkey(row: &Row<'_>, idx: usize) -> rusqlite::Result<PublicKey> {
    PublicKey::from_sec1(blob_ref(row, idx)?)
        .map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, 65))
}

pub(super) fn u64_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let v: i64 = row.get(idx)?;
    u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, v))
}

pub(super) fn opt_u64_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<u64>> {
    let v: Option<i64> = row.get(idx)?;
    v.map(|v| u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, v)))
        .transpose()
}

/// A time or count as SQLite's signed integer (saturating: no stored value
/// comes near `i64::MAX`, and "never" is parked there).
pub(super) fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn json_err(idx: usize, e: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
}

pub(super) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
        || f.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;
    use crate::store::{Identity, SqliteStore, Store, StoreError};

    /// Reads `value` back as a `T` column.
    fn read<T>(value: &str) -> rusqlite::Result<T>
    where
        Col<T>: FromSql,
    {
        let c = Connection::open_in_memory().unwrap();
        c.query_row("SELECT ?1", [value], |r| col::<T>(r, 0))
    }

    fn read_ours<T: FromSql>(value: &str) -> rusqlite::Result<T> {
        let c = Connection::open_in_memory().unwrap();
        c.query_row("SELECT ?1", [value], |r| r.get::<_, T>(0))
    }

    #[test]
    fn every_stored_name_reads_back_as_its_value() {
        let c = Connection::open_in_memory().unwrap();
        let round =
            |v: &dyn ToSql| -> String { c.query_row("SELECT ?1", [v], |r| r.get(0)).unwrap() };
        assert_eq!(round(&Col(RequestStatus::FraudReported)), "fraud_reported");
        assert_eq!(
            read::<RequestStatus>("fraud_reported").unwrap(),
            RequestStatus::FraudReported
        );
        assert_eq!(round(&Col(Outcome::ReportFraud)), "report_fraud");
        assert_eq!(read::<Outcome>("approve").unwrap(), Outcome::Approve);
        assert_eq!(
            round(&Col(ChangeState::AwaitingSecondLogin)),
            "awaiting_second_login"
        );
        assert_eq!(read::<ChangeState>("failed").unwrap(), ChangeState::Failed);
        assert_eq!(round(&ChangeKind::UserId), "user_id");
        assert_eq!(
            read_ours::<ChangeKind>("phone").unwrap(),
            ChangeKind::Contact(ContactChannel::Phone)
        );
        assert_eq!(round(&AuthenticatorState::Locked), "locked");
        assert_eq!(
            read_ours::<EnrolmentStoredState>("waiting").unwrap(),
            EnrolmentStoredState::Waiting
        );
        assert_eq!(read_ours::<Channel>("email").unwrap(), Channel::Email);
        let id = RequestId::random();
        let blob: Vec<u8> = c.query_row("SELECT ?1", [Col(id)], |r| r.get(0)).unwrap();
        assert_eq!(blob, id.as_bytes().to_vec());
    }

    #[test]
    fn an_unknown_stored_name_is_an_error_not_a_default() {
        assert!(read::<RequestStatus>("bogus").is_err(), "never Pending");
        assert!(read::<Outcome>("bogus").is_err(), "never ReportFraud");
        assert!(read::<ChangeState>("bogus").is_err(), "never Cancelled");
        assert!(read_ours::<ChangeKind>("bogus").is_err(), "never UserId");
        assert!(
            read_ours::<AuthenticatorState>("bogus").is_err(),
            "never Locked"
        );
        assert!(
            read_ours::<EnrolmentStoredState>("bogus").is_err(),
            "never Cancelled"
        );
        assert!(read_ours::<Channel>("bogus").is_err());
        let c = Connection::open_in_memory().unwrap();
        let short = c.query_row("SELECT x'0102'", [], |r| col::<IdentityId>(r, 0));
        assert!(short.is_err(), "an id is 16 bytes");
    }

    #[tokio::test]
    async fn a_change_with_a_bogus_stored_state_or_kind_reads_as_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite3");
        let store = SqliteStore::open(&path).unwrap();
        let identity = IdentityId::random();
        store
            .create_identity(Identity {
                id: identity,
                user_id: "anna#2024x".into(),
                user_id_folded: "anna#2024x".into(),
                display_name: None,
                blocked: false,
                created_at_ms: 0,
                phone: None,
                email: None,
                notify_every_use: false,
            })
            .await
            .unwrap();
        // Raw SQL past the schema's CHECK and foreign keys: what a corrupt
        // file or a newer server's database could hold.
        let raw = Connection::open(&path).unwrap();
        raw.execute_batch("PRAGMA ignore_check_constraints = ON; PRAGMA foreign_keys = OFF;")
            .unwrap();
        let insert = |kind: &str, state: &str| {
            let id = ChangeId::random();
            raw.execute(
                "INSERT INTO self_service_changes (id, identity_id, kind, new_value, state, gap_ms, \
                 created_at_ms, first_request_id, first_expires_at_ms) \
                 VALUES (?1, ?2, ?3, '+4520304050', ?4, 0, 0, ?5, 1000)",
                rusqlite::params![Col(id), Col(identity), kind, state, Col(RequestId::random())],
            )
            .unwrap();
            id
        };
        let good = insert("phone", "awaiting_first_login");
        let bogus_state = insert("phone", "bogus");
        let bogus_kind = insert("bogus", "awaiting_first_login");
        assert!(store.change(good).await.unwrap().is_some());
        for id in [bogus_state, bogus_kind] {
            let err = store.change(id).await.unwrap_err();
            assert!(matches!(err, StoreError::Sqlite(_)), "{err:?}");
            assert!(
                std::error::Error::source(&err).is_some(),
                "the cause is kept"
            );
        }
    }

    #[test]
    fn blobs_and_texts_are_read_in_place_and_checked_like_before() {
        let c = Connection::open_in_memory().unwrap();
        let key = eid_protocol::crypto::SoftwareSigningKey::generate();
        let sec1 = key.public_key().as_bytes().to_vec();
        c.query_row(
            "SELECT ?1, ?2, NULL, ?3, ?4, 'text', ?5",
            rusqlite::params![[7u8; 16], [9u8; 32], [1u8; 15], sec1, "{\"a\":1}"],
            |r| {
                assert_eq!(blob16(r, 0)?, [7u8; 16]);
                assert_eq!(opt_blob16(r, 0)?, Some([7u8; 16]));
                assert_eq!(blob32(r, 1)?, [9u8; 32]);
                assert_eq!(opt_blob16(r, 2)?, None);
                // A blob of the wrong length, NULL or a text is refused.
                assert!(blob16(r, 3).is_err());
                assert!(opt_blob16(r, 3).is_err());
                assert!(blob32(r, 0).is_err());
                assert!(blob16(r, 2).is_err());
                assert!(blob16(r, 5).is_err());
                assert_eq!(pubkey(r, 4)?.as_bytes(), sec1.as_slice());
                assert!(pubkey(r, 0).is_err());
                assert_eq!(text_ref(r, 6)?, "{\"a\":1}");
                assert!(text_ref(r, 0).is_err());
                assert!(text_ref(r, 2).is_err());
                Ok(())
            },
        )
        .unwrap();
    }
}
