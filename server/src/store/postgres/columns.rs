//! How values map to PostgreSQL columns: ids and hashes as `BYTEA`, times
//! and counts as `BIGINT`, flags as `BOOLEAN`, enums as their stored names
//! (`TEXT`), the same names the SQLite backend stores.
//!
//! Every value is read back through a [`FromSql`] impl that refuses what this
//! build does not know (an unknown name, an id of the wrong length): a
//! corrupt or newer database is an error, never silently a harmless-looking
//! state. The protocol's ids and enums are foreign types, so they map through
//! the [`Col`] wrapper (the orphan rule forbids impls on them here, and the
//! phone library must not depend on a database driver).

use std::error::Error;

use bytes::BytesMut;
use eid_protocol::wire::{AgentRole, ChangeState, ContactChannel, RequestStatus};
use eid_protocol::{
    AuthenticatorId, CallVerdict, ChangeId, IdentityId, Outcome, PublicKey, RequestId,
    ServiceProviderId,
};
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

use crate::store::{
    AuthenticatorState, ChangeKind, Channel, EnrolmentStoredState, LoginMethod, StoreResult,
};

/// A value as a column (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Col<T>(pub(super) T);

/// Reads column `idx` through its [`Col`] mapping.
pub(super) fn col<T>(row: &Row, idx: usize) -> StoreResult<T>
where
    for<'a> Col<T>: FromSql<'a>,
{
    Ok(row.try_get::<_, Col<T>>(idx)?.0)
}

/// Reads an optional column `idx` through its [`Col`] mapping.
pub(super) fn opt_col<T>(row: &Row, idx: usize) -> StoreResult<Option<T>>
where
    for<'a> Col<T>: FromSql<'a>,
{
    Ok(row.try_get::<_, Option<Col<T>>>(idx)?.map(|c| c.0))
}

/// Reads a plain column (text, flag, bytes) as its Rust type.
pub(super) fn get<'a, T: FromSql<'a>>(row: &'a Row, idx: usize) -> StoreResult<T> {
    Ok(row.try_get(idx)?)
}

/// Where a read's columns are in a row: from a first column on (a joined
/// read), or at the places a map gives (a read sharing its row's columns
/// with others of other shapes, as a pull's one statement).
#[derive(Clone, Copy, Debug)]
pub(super) enum At<'a> {
    From(usize),
    Map(&'a [usize]),
}

impl<'a> At<'a> {
    /// The row's column of the read's column `i`.
    pub(super) fn of(self, i: usize) -> usize {
        match self {
            At::From(base) => base + i,
            At::Map(map) => map[i],
        }
    }

    /// The read's columns from its column `n` on.
    pub(super) fn skip(self, n: usize) -> At<'a> {
        match self {
            At::From(base) => At::From(base + n),
            At::Map(map) => At::Map(&map[n..]),
        }
    }
}

/// A stored value this build cannot read back.
#[derive(Debug, thiserror::Error)]
#[error("unreadable stored {what} {detail}")]
pub(super) struct Unreadable {
    what: &'static str,
    detail: String,
}

fn unreadable(what: &'static str, detail: impl Into<String>) -> Box<dyn Error + Sync + Send> {
    Box::new(Unreadable {
        what,
        detail: detail.into(),
    })
}

/// A time or count as PostgreSQL's signed `BIGINT` (saturating: no stored
/// value comes near `i64::MAX`, and "never" is parked there).
pub(super) fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Maps a `Copy` enum to and from its stored names.
macro_rules! named_column {
    ($ty:ty, $what:literal, { $($variant:pat => $name:literal => $value:expr),+ $(,)? }) => {
        impl ToSql for Col<$ty> {
            fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
                #[allow(unreachable_patterns)]
                let name = match self.0 {
                    $($variant => $name,)+
                    _ => return Err(unreadable($what, "(unnamed variant)")),
                };
                <&str as ToSql>::to_sql(&name, ty, out)
            }
            fn accepts(ty: &Type) -> bool {
                <&str as ToSql>::accepts(ty)
            }
            to_sql_checked!();
        }
        impl<'a> FromSql<'a> for Col<$ty> {
            fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
                let name = <&str as FromSql>::from_sql(ty, raw)?;
                let v: $ty = match name {
                    $($name => $value,)+
                    other => return Err(unreadable($what, format!("{other:?}"))),
                };
                Ok(Col(v))
            }
            fn accepts(ty: &Type) -> bool {
                <&str as FromSql>::accepts(ty)
            }
        }
    };
}

named_column!(RequestStatus, "request status", {
    RequestStatus::Pending => "pending" => RequestStatus::Pending,
    RequestStatus::Approved => "approved" => RequestStatus::Approved,
    RequestStatus::Denied => "denied" => RequestStatus::Denied,
    RequestStatus::FraudReported => "fraud_reported" => RequestStatus::FraudReported,
    RequestStatus::Cancelled => "cancelled" => RequestStatus::Cancelled,
});

named_column!(Outcome, "decision outcome", {
    Outcome::Approve => "approve" => Outcome::Approve,
    Outcome::Deny => "deny" => Outcome::Deny,
    Outcome::ReportFraud => "report_fraud" => Outcome::ReportFraud,
});

named_column!(CallVerdict, "call verdict", {
    CallVerdict::Clear => "clear" => CallVerdict::Clear,
    CallVerdict::Allowed => "allowed" => CallVerdict::Allowed,
    CallVerdict::Flagged => "flagged" => CallVerdict::Flagged,
    CallVerdict::Stopped => "stopped" => CallVerdict::Stopped,
});

named_column!(LoginMethod, "login method", {
    LoginMethod::App => "app" => LoginMethod::App,
    LoginMethod::CodeDisplay => "code_display" => LoginMethod::CodeDisplay,
    LoginMethod::CodeReader => "code_reader" => LoginMethod::CodeReader,
    LoginMethod::Chip => "chip" => LoginMethod::Chip,
    LoginMethod::AppAndChip => "app_chip" => LoginMethod::AppAndChip,
});

named_column!(ChangeState, "change state", {
    ChangeState::AwaitingFirstLogin => "awaiting_first_login" => ChangeState::AwaitingFirstLogin,
    ChangeState::WaitingSecondLogin => "waiting_second_login" => ChangeState::WaitingSecondLogin,
    ChangeState::AwaitingSecondLogin => "awaiting_second_login" => ChangeState::AwaitingSecondLogin,
    ChangeState::Completed => "completed" => ChangeState::Completed,
    ChangeState::Cancelled => "cancelled" => ChangeState::Cancelled,
    ChangeState::Expired => "expired" => ChangeState::Expired,
    ChangeState::Failed => "failed" => ChangeState::Failed,
});

named_column!(AgentRole, "agent role", {
    AgentRole::Support => "support" => AgentRole::Support,
    AgentRole::Administrator => "administrator" => AgentRole::Administrator,
});

named_column!(ChangeKind, "change kind", {
    ChangeKind::Contact(ContactChannel::Phone) => "phone" => ChangeKind::Contact(ContactChannel::Phone),
    ChangeKind::Contact(ContactChannel::Email) => "email" => ChangeKind::Contact(ContactChannel::Email),
    ChangeKind::UserId => "user_id" => ChangeKind::UserId,
});

named_column!(AuthenticatorState, "authenticator state", {
    AuthenticatorState::Active => "active" => AuthenticatorState::Active,
    AuthenticatorState::Locked => "locked" => AuthenticatorState::Locked,
});

named_column!(EnrolmentStoredState, "enrolment state", {
    EnrolmentStoredState::AwaitingApproval => "awaiting_approval" => EnrolmentStoredState::AwaitingApproval,
    EnrolmentStoredState::Waiting => "waiting" => EnrolmentStoredState::Waiting,
    EnrolmentStoredState::Activated => "activated" => EnrolmentStoredState::Activated,
    EnrolmentStoredState::Cancelled => "cancelled" => EnrolmentStoredState::Cancelled,
});

named_column!(Channel, "delivery channel", {
    Channel::Sms => "sms" => Channel::Sms,
    Channel::Email => "email" => Channel::Email,
});

/// Fixed-length byte strings: a `BYTEA` of another length is an error.
fn fixed<const N: usize>(
    what: &'static str,
    ty: &Type,
    raw: &[u8],
) -> Result<[u8; N], Box<dyn Error + Sync + Send>> {
    let bytes = <&[u8] as FromSql>::from_sql(ty, raw)?;
    <[u8; N]>::try_from(bytes)
        .map_err(|_| unreadable(what, format!("of {} bytes, not {N}", bytes.len())))
}

/// Maps the protocol's 16-byte ids to `BYTEA`.
macro_rules! id_column {
    ($($ty:ident),+) => {$(
        impl ToSql for Col<$ty> {
            fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
                <&[u8] as ToSql>::to_sql(&self.0.as_bytes().as_slice(), ty, out)
            }
            fn accepts(ty: &Type) -> bool {
                <&[u8] as ToSql>::accepts(ty)
            }
            to_sql_checked!();
        }
        impl ToSql for Col<&$ty> {
            fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
                <&[u8] as ToSql>::to_sql(&self.0.as_bytes().as_slice(), ty, out)
            }
            fn accepts(ty: &Type) -> bool {
                <&[u8] as ToSql>::accepts(ty)
            }
            to_sql_checked!();
        }
        impl<'a> FromSql<'a> for Col<$ty> {
            fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
                Ok(Col($ty(fixed::<16>("id", ty, raw)?)))
            }
            fn accepts(ty: &Type) -> bool {
                <&[u8] as FromSql>::accepts(ty)
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

impl<'a, const N: usize> FromSql<'a> for Col<[u8; N]> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(Col(fixed::<N>("hash", ty, raw)?))
    }
    fn accepts(ty: &Type) -> bool {
        <&[u8] as FromSql>::accepts(ty)
    }
}

impl<'a> FromSql<'a> for Col<PublicKey> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        let bytes = <&[u8] as FromSql>::from_sql(ty, raw)?;
        PublicKey::from_sec1(bytes)
            .map(Col)
            .map_err(|_| unreadable("public key", "not a SEC1 point"))
    }
    fn accepts(ty: &Type) -> bool {
        <&[u8] as FromSql>::accepts(ty)
    }
}

/// Times and counts: a negative `BIGINT` is an error, never a wrapped-around
/// huge number.
impl<'a> FromSql<'a> for Col<u64> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        let v = <i64 as FromSql>::from_sql(ty, raw)?;
        u64::try_from(v)
            .map(Col)
            .map_err(|_| unreadable("count", v.to_string()))
    }
    fn accepts(ty: &Type) -> bool {
        <i64 as FromSql>::accepts(ty)
    }
}

impl<'a> FromSql<'a> for Col<u32> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        let v = <i64 as FromSql>::from_sql(ty, raw)?;
        u32::try_from(v)
            .map(Col)
            .map_err(|_| unreadable("count", v.to_string()))
    }
    fn accepts(ty: &Type) -> bool {
        <i64 as FromSql>::accepts(ty)
    }
}

/// Whether a statement failed on a unique or primary-key constraint.
pub(super) fn is_unique_violation(e: &crate::store::StoreError) -> bool {
    matches!(e, crate::store::StoreError::Postgres(e)
        if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION))
}
