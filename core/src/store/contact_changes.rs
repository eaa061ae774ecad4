//! The `contact_changes` table and the identity's current user ID: what a
//! pull says about each authenticator besides its requests (self-service).

use eid_protocol::wire::PulledContactChange;
use eid_protocol::{AuthenticatorId, ChangeId};
use rusqlite::params;

use super::{Store, bad};
use crate::error::Result;

impl Store {
    /// Stores what a pull says about each authenticator besides its requests: the
    /// identity's current user ID (it can change through self-service) and
    /// its open contact changes. One transaction; nothing is written when
    /// nothing changed.
    pub(crate) fn apply_authenticator_details(
        &mut self,
        pulled: &[(AuthenticatorId, Option<&str>, &[PulledContactChange])],
    ) -> Result<()> {
        // A savepoint: part of the pull's transaction.
        crate::store::in_savepoint(&self.conn, |tx| {
            for (id, user_id, changes) in pulled {
                let id = id.to_string();
                if let Some(user_id) = user_id {
                    tx.prepare_cached(
                        "UPDATE accounts SET user_id = ?2 WHERE authenticator_id = ?1 AND user_id != ?2",
                    )?
                    .execute(params![id, user_id])?;
                }
                let mut fresh = Vec::with_capacity(changes.len());
                for c in *changes {
                    let json = serde_json::to_string(c)?;
                    fresh.push((c.change_id.to_string(), json));
                }
                fresh.sort();
                let mut stored = {
                    let mut stmt = tx.prepare_cached(
                        "SELECT change_id, change_json FROM contact_changes WHERE authenticator_id = ?1",
                    )?;
                    let rows = stmt.query_map([&id], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                    })?;
                    rows.collect::<rusqlite::Result<Vec<(String, String)>>>()?
                };
                stored.sort();
                if stored == fresh {
                    continue;
                }
                tx.execute(
                    "DELETE FROM contact_changes WHERE authenticator_id = ?1",
                    [&id],
                )?;
                for (change_id, json) in &fresh {
                    tx.execute(
                        "INSERT INTO contact_changes VALUES (?1, ?2, ?3)",
                        params![id, change_id, json],
                    )?;
                }
            }
            Ok(())
        })
    }

    /// The open contact changes stored for an authenticator, oldest first.
    pub(crate) fn contact_changes(&self, id: &AuthenticatorId) -> Result<Vec<PulledContactChange>> {
        let mut stmt = self
            .conn
            .prepare("SELECT change_json FROM contact_changes WHERE authenticator_id = ?1")?;
        let rows = stmt.query_map([id.to_string()], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for json in rows {
            let change: PulledContactChange =
                serde_json::from_str(&json?).map_err(|_| bad("contact change"))?;
            out.push(change);
        }
        out.sort_by_key(|c| (c.created_at_ms, c.change_id));
        Ok(out)
    }

    /// Forgets a contact change of an authenticator (cancelled from this phone).
    pub(crate) fn delete_contact_change(
        &self,
        id: &AuthenticatorId,
        change_id: &ChangeId,
    ) -> Result<()> {
        self.conn.execute(
            "DELETE FROM contact_changes WHERE authenticator_id = ?1 AND change_id = ?2",
            params![id.to_string(), change_id.to_string()],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::{sample_authenticator, sample_wrapped};

    #[test]
    fn authenticator_details_follow_the_pull_and_vanish_with_the_authenticator() {
        use eid_protocol::wire::{ChangeState, ContactChannel};
        let mut s = Store::open_in_memory().unwrap();
        let a = sample_authenticator();
        s.insert_authenticator(&a, &sample_wrapped()).unwrap();
        let change = PulledContactChange {
            change_id: ChangeId([5; 16]),
            channel: ContactChannel::Phone,
            new_value_masked: "+45••••••78".into(),
            state: ChangeState::WaitingSecondLogin,
            earliest_completion_at_ms: Some(7_200_000),
            created_at_ms: 3_600_000,
        };
        let id = a.authenticator_id;
        s.apply_authenticator_details(&[(id, Some("Ny#Bruger1"), std::slice::from_ref(&change))])
            .unwrap();
        assert_eq!(s.authenticator(&id).unwrap().user_id, "Ny#Bruger1");
        assert_eq!(s.contact_changes(&id).unwrap(), vec![change.clone()]);
        // An older server sends no user ID: the stored one stays.
        s.apply_authenticator_details(&[(id, None, &[])]).unwrap();
        assert_eq!(s.authenticator(&id).unwrap().user_id, "Ny#Bruger1");
        assert!(s.contact_changes(&id).unwrap().is_empty());
        s.apply_authenticator_details(&[(id, None, std::slice::from_ref(&change))])
            .unwrap();
        s.delete_contact_change(&id, &change.change_id).unwrap();
        assert!(s.contact_changes(&id).unwrap().is_empty());
        s.apply_authenticator_details(&[(id, None, std::slice::from_ref(&change))])
            .unwrap();
        s.delete_authenticator(&id).unwrap();
        assert_eq!(s.contact_changes(&id).unwrap(), vec![]);
    }
}
