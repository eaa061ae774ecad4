//! The table "accounts" (its name from before the word "authenticator";
//! kept, see docs/glossary.md): one row per authenticator on this phone (no
//! secrets: its PIN key is sealed in `pin_keys`).

use eid_protocol::{AuthenticatorId, IdentityId, PublicKey};
use rusqlite::params;

use super::{Store, bad, parse_id, to_i64, to_u64};
use crate::error::{Error, Result};
use crate::pin::WrappedPinKey;

/// Local state of an authenticator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthenticatorState {
    /// Usable.
    Active,
    /// The identity is blocked (server says so); no approvals.
    Blocked,
    /// The PIN key was destroyed or the server locked the authenticator:
    /// the authenticator must be activated again.
    NeedsReactivation,
}

impl AuthenticatorState {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            AuthenticatorState::Active => "active",
            AuthenticatorState::Blocked => "blocked",
            AuthenticatorState::NeedsReactivation => "needs_reactivation",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "active" => AuthenticatorState::Active,
            "blocked" => AuthenticatorState::Blocked,
            "needs_reactivation" => AuthenticatorState::NeedsReactivation,
            _ => return Err(bad("account state")),
        })
    }
}

/// A stored authenticator (no secrets: the PIN key is in `pin_keys`, sealed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuthenticatorRow {
    pub(crate) authenticator_id: AuthenticatorId,
    pub(crate) identity_id: IdentityId,
    pub(crate) user_id: String,
    pub(crate) server_public_key: PublicKey,
    pub(crate) device_key_alias: String,
    pub(crate) pin_wrap_alias: String,
    pub(crate) pin_public_key: PublicKey,
    pub(crate) decision_counter: u64,
    pub(crate) state: AuthenticatorState,
    pub(crate) created_at_ms: u64,
}

/// The columns [`read_row`] reads, in its order (a macro, so that each
/// statement's text is one constant).
macro_rules! columns {
    () => {
        "SELECT authenticator_id, identity_id, user_id, server_public_key, device_key_alias,
                pin_wrap_alias, pin_public_key, decision_counter, state, created_at_ms, rowid
         FROM accounts"
    };
}

/// An accounts row as SQLite holds it, before its ids, keys and state are parsed.
struct RawRow {
    authenticator_id: String,
    identity_id: String,
    user_id: String,
    server_public_key: Vec<u8>,
    device_key_alias: String,
    pin_wrap_alias: String,
    pin_public_key: Vec<u8>,
    decision_counter: i64,
    state: String,
    created_at_ms: i64,
}

/// Reads the columns of `columns!` in one row, with its place in the order the
/// accounts were added (created_at_ms, then rowid).
fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<((i64, i64), RawRow)> {
    let created_at_ms = r.get(9)?;
    Ok((
        (created_at_ms, r.get(10)?),
        RawRow {
            authenticator_id: r.get(0)?,
            identity_id: r.get(1)?,
            user_id: r.get(2)?,
            server_public_key: r.get(3)?,
            device_key_alias: r.get(4)?,
            pin_wrap_alias: r.get(5)?,
            pin_public_key: r.get(6)?,
            decision_counter: r.get(7)?,
            state: r.get(8)?,
            created_at_ms,
        },
    ))
}

impl RawRow {
    fn decode(self) -> Result<AuthenticatorRow> {
        Ok(AuthenticatorRow {
            authenticator_id: parse_id(&self.authenticator_id)?,
            identity_id: parse_id(&self.identity_id)?,
            user_id: self.user_id,
            server_public_key: PublicKey::from_sec1(&self.server_public_key)
                .map_err(|_| bad("key"))?,
            device_key_alias: self.device_key_alias,
            pin_wrap_alias: self.pin_wrap_alias,
            pin_public_key: PublicKey::from_sec1(&self.pin_public_key).map_err(|_| bad("key"))?,
            decision_counter: to_u64(self.decision_counter),
            state: AuthenticatorState::parse(&self.state)?,
            created_at_ms: to_u64(self.created_at_ms),
        })
    }
}

impl Store {
    pub(crate) fn authenticators(&self) -> Result<Vec<AuthenticatorRow>> {
        let mut stmt = self.conn.prepare_cached(columns!())?;
        let mut out = Vec::new();
        for row in stmt.query_map([], read_row)? {
            let (order, row) = row?;
            out.push((order, row.decode()?));
        }
        // In the order they were added (created_at_ms, then rowid), sorted
        // here rather than through SQLite's sorter (no index has this order).
        out.sort_unstable_by_key(|(order, _)| *order);
        Ok(out.into_iter().map(|(_, row)| row).collect())
    }

    /// One authenticator, read by its key: a decision reads its own
    /// authenticator several times, and decoding every account's row to
    /// keep one was most of that read's cost.
    pub(crate) fn authenticator(&self, id: &AuthenticatorId) -> Result<AuthenticatorRow> {
        let mut stmt = self
            .conn
            .prepare_cached(concat!(columns!(), " WHERE authenticator_id = ?1"))?;
        let mut rows = stmt.query_map([id.to_string()], read_row)?;
        // The key is the id's text (`Display`, the only form stored): a
        // row found is the one asked for.
        let (_, row) = rows.next().ok_or(Error::UnknownAuthenticator)??;
        row.decode()
    }

    /// Inserts a newly activated authenticator with its sealed PIN key, and clears the
    /// pending activation, in one transaction.
    pub(crate) fn insert_authenticator(
        &mut self,
        a: &AuthenticatorRow,
        w: &WrappedPinKey,
    ) -> Result<()> {
        self.insert_authenticator_clearing(a, w, "pending_activation")
    }

    /// Inserts an authenticator activated from a device enrolment and clears the
    /// pending enrolment, in one transaction.
    pub(crate) fn insert_enrolled_authenticator(
        &mut self,
        a: &AuthenticatorRow,
        w: &WrappedPinKey,
    ) -> Result<()> {
        self.insert_authenticator_clearing(a, w, "pending_enrolment")
    }

    fn insert_authenticator_clearing(
        &mut self,
        a: &AuthenticatorRow,
        w: &WrappedPinKey,
        pending_table: &str,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO accounts (authenticator_id, identity_id, user_id, server_public_key,
                device_key_alias, pin_wrap_alias, pin_public_key, decision_counter, state, created_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                a.authenticator_id.to_string(),
                a.identity_id.to_string(),
                a.user_id,
                a.server_public_key.as_bytes().as_slice(),
                a.device_key_alias,
                a.pin_wrap_alias,
                a.pin_public_key.as_bytes().as_slice(),
                to_i64(a.decision_counter),
                a.state.as_str(),
                to_i64(a.created_at_ms),
            ],
        )?;
        Self::put_pin_key(&tx, &a.authenticator_id, w)?;
        tx.execute(
            "INSERT INTO pin_attempts VALUES (?1, 0, 0, ?2)",
            params![a.authenticator_id.to_string(), to_i64(a.created_at_ms)],
        )?;
        tx.execute(&format!("DELETE FROM {pending_table}"), [])?;
        tx.commit()?;
        Ok(())
    }

    pub(crate) fn set_state(&self, id: &AuthenticatorId, state: AuthenticatorState) -> Result<()> {
        self.conn.execute(
            "UPDATE accounts SET state = ?2 WHERE authenticator_id = ?1",
            params![id.to_string(), state.as_str()],
        )?;
        Ok(())
    }

    pub(crate) fn delete_authenticator(&mut self, id: &AuthenticatorId) -> Result<()> {
        self.conn.execute(
            "DELETE FROM accounts WHERE authenticator_id = ?1",
            [id.to_string()],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::{sample_authenticator, sample_wrapped};

    #[test]
    fn a_corrupt_stored_id_is_a_storage_error_not_an_unknown_authenticator() {
        let mut s = Store::open_in_memory().unwrap();
        let a = sample_authenticator();
        s.insert_authenticator(&a, &sample_wrapped()).unwrap();
        s.conn
            .execute("UPDATE accounts SET identity_id = 'not hex'", [])
            .unwrap();
        let e = s.authenticator(&a.authenticator_id).unwrap_err();
        assert!(matches!(e, Error::Storage(_)), "{e:?}");
        assert_eq!(e.to_string(), "storage error: corrupt id");
    }

    #[test]
    fn one_authenticator_is_read_by_its_id_among_several_and_an_unknown_id_is_refused() {
        let mut s = Store::open_in_memory().unwrap();
        let rows: Vec<AuthenticatorRow> = (0..3).map(|_| sample_authenticator()).collect();
        for a in &rows {
            s.insert_authenticator(a, &sample_wrapped()).unwrap();
        }
        for a in &rows {
            assert_eq!(&s.authenticator(&a.authenticator_id).unwrap(), a);
        }
        assert_eq!(s.authenticators().unwrap(), rows);
        let e = s.authenticator(&AuthenticatorId::random()).unwrap_err();
        assert!(matches!(e, Error::UnknownAuthenticator), "{e:?}");
    }

    #[test]
    fn a_corrupt_row_of_another_authenticator_does_not_stop_reading_this_one() {
        let mut s = Store::open_in_memory().unwrap();
        let (a, b) = (sample_authenticator(), sample_authenticator());
        s.insert_authenticator(&a, &sample_wrapped()).unwrap();
        s.insert_authenticator(&b, &sample_wrapped()).unwrap();
        s.conn
            .execute(
                "UPDATE accounts SET state = 'unheard of' WHERE authenticator_id = ?1",
                [b.authenticator_id.to_string()],
            )
            .unwrap();
        assert_eq!(s.authenticator(&a.authenticator_id).unwrap(), a);
        assert!(matches!(
            s.authenticator(&b.authenticator_id),
            Err(Error::Storage(_))
        ));
    }
}
