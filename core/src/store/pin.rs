//! The `pin_keys` and `pin_attempts` tables: each authenticator's sealed PIN key
//! and its PIN attempt counter ([`crate::lockout`]), committed durably
//! before every attempt.

use eid_protocol::AuthenticatorId;
use rusqlite::{Connection, OptionalExtension, params};

use super::{AuthenticatorState, Store, bad, fixed, to_i64, to_u64};
use crate::error::{InternalError, Result};
use crate::lockout::LockoutState;
use crate::pin::WrappedPinKey;

impl Store {
    pub(super) fn put_pin_key(
        conn: &Connection,
        id: &AuthenticatorId,
        w: &WrappedPinKey,
    ) -> Result<()> {
        conn.execute(
            "INSERT OR REPLACE INTO pin_keys VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                id.to_string(),
                w.ciphertext,
                w.salt.as_slice(),
                w.nonce.as_slice(),
                i64::from(w.iterations)
            ],
        )?;
        Ok(())
    }

    /// Replaces the sealed PIN key (PIN change) and resets the attempt counter.
    pub(crate) fn replace_pin_key(
        &mut self,
        id: &AuthenticatorId,
        w: &WrappedPinKey,
        attempts: &LockoutState,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        Self::put_pin_key(&tx, id, w)?;
        Self::put_attempts(&tx, id, attempts)?;
        tx.commit()?;
        Ok(())
    }

    pub(crate) fn pin_key(&self, id: &AuthenticatorId) -> Result<Option<WrappedPinKey>> {
        let row = self
            .conn
            .query_row(
                "SELECT wrapped, salt, nonce, iterations FROM pin_keys WHERE authenticator_id = ?1",
                [id.to_string()],
                |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(ciphertext, salt, nonce, iterations)| {
            Ok(WrappedPinKey {
                salt: fixed(salt)?,
                nonce: fixed(nonce)?,
                ciphertext,
                iterations: u32::try_from(iterations).map_err(|_| bad("iterations"))?,
            })
        })
        .transpose()
    }

    /// Destroys the sealed PIN key and marks the authenticator for re-activation.
    pub(crate) fn destroy_pin_key(&mut self, id: &AuthenticatorId) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "DELETE FROM pin_keys WHERE authenticator_id = ?1",
            [id.to_string()],
        )?;
        tx.execute(
            "DELETE FROM pending_requests WHERE authenticator_id = ?1",
            [id.to_string()],
        )?;
        tx.execute(
            "UPDATE accounts SET state = ?2 WHERE authenticator_id = ?1",
            params![
                id.to_string(),
                AuthenticatorState::NeedsReactivation.as_str()
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub(crate) fn attempts(&self, id: &AuthenticatorId) -> Result<LockoutState> {
        let row = self
            .conn
            .query_row(
                "SELECT failures, locked_until_ms, last_seen_ms FROM pin_attempts WHERE authenticator_id = ?1",
                [id.to_string()],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)),
            )
            .optional()?;
        Ok(row
            .map(|(f, l, s)| LockoutState {
                failures: u32::try_from(f).unwrap_or(u32::MAX),
                locked_until_ms: to_u64(l),
                last_seen_ms: to_u64(s),
            })
            .unwrap_or_default())
    }

    fn put_attempts(conn: &Connection, id: &AuthenticatorId, s: &LockoutState) -> Result<()> {
        conn.execute(
            "INSERT OR REPLACE INTO pin_attempts VALUES (?1, ?2, ?3, ?4)",
            params![
                id.to_string(),
                i64::from(s.failures),
                to_i64(s.locked_until_ms),
                to_i64(s.last_seen_ms)
            ],
        )?;
        Ok(())
    }

    /// Commits the attempt state (durable on return: WAL + synchronous=FULL).
    /// Refuses, rather than counting an attempt non-durably, if the connection
    /// is not in autocommit mode with `synchronous=FULL` (only possible after
    /// a failed restore in [`Store::without_fsync`]).
    pub(crate) fn set_attempts(&self, id: &AuthenticatorId, s: &LockoutState) -> Result<()> {
        let synchronous: i64 = self
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))?;
        if synchronous != 2 || !self.conn.is_autocommit() {
            return Err(InternalError::NotDurable.into());
        }
        Self::put_attempts(&self.conn, id, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::{sample_authenticator, sample_wrapped};

    #[test]
    fn attempts_and_counter_survive_reopen_and_destroy_works() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("core.db");
        let a = sample_authenticator();
        {
            let mut s = Store::open(&path).unwrap();
            s.insert_authenticator(&a, &sample_wrapped()).unwrap();
            let st = LockoutState {
                failures: 4,
                locked_until_ms: 99,
                last_seen_ms: 50,
            };
            s.set_attempts(&a.authenticator_id, &st).unwrap();
            assert_eq!(s.next_counter(&a.authenticator_id).unwrap(), 1);
            s.conn
                .execute("UPDATE accounts SET decision_counter = 2", [])
                .unwrap();
        }
        let mut s = Store::open(&path).unwrap();
        let mode: String = s
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(s.attempts(&a.authenticator_id).unwrap().failures, 4);
        assert_eq!(
            s.authenticator(&a.authenticator_id)
                .unwrap()
                .decision_counter,
            2
        );
        assert_eq!(
            s.pin_key(&a.authenticator_id).unwrap(),
            Some(sample_wrapped())
        );
        s.destroy_pin_key(&a.authenticator_id).unwrap();
        assert_eq!(s.pin_key(&a.authenticator_id).unwrap(), None);
        assert_eq!(
            s.authenticator(&a.authenticator_id).unwrap().state,
            AuthenticatorState::NeedsReactivation
        );
        s.delete_authenticator(&a.authenticator_id).unwrap();
        assert!(s.authenticators().unwrap().is_empty());
        assert_eq!(s.attempts(&a.authenticator_id).unwrap().failures, 0);
    }

    #[test]
    fn pin_attempts_are_never_counted_without_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("core.db")).unwrap();
        let a = sample_authenticator();
        s.insert_authenticator(&a, &sample_wrapped()).unwrap();
        let st = LockoutState {
            failures: 1,
            locked_until_ms: 0,
            last_seen_ms: 5,
        };
        s.conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
        assert!(s.set_attempts(&a.authenticator_id, &st).is_err());
        assert_eq!(s.attempts(&a.authenticator_id).unwrap().failures, 0);
        s.conn.pragma_update(None, "synchronous", "FULL").unwrap();
        s.set_attempts(&a.authenticator_id, &st).unwrap();
        assert_eq!(s.attempts(&a.authenticator_id).unwrap().failures, 1);
    }
}
