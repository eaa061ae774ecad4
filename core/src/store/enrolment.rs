//! The `pending_enrolment` and `device_enrolments` tables: on a new phone,
//! its device enrolment (keys, proof, then the server's answer); on an
//! existing phone, the new devices being added to each authenticator's identity
//! as the last pull showed them.

use eid_protocol::AuthenticatorId;
use rusqlite::params;

use super::{PendingActivationRow, Store, parse_id, to_i64, to_u64};
use crate::error::Result;

/// The server's answer to a device enrolment, kept with its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnrolmentAnswer {
    pub(crate) enrolment_id: AuthenticatorId,
    pub(crate) code: String,
    pub(crate) expires_at_ms: u64,
    pub(crate) usable_at_ms: Option<u64>,
}

/// A device enrolment of this phone (the new device): keys made and proof
/// signed, then the server's answer once it came.
#[derive(Debug, Clone)]
pub(crate) struct PendingEnrolmentRow {
    pub(crate) keys: PendingActivationRow,
    pub(crate) answer: Option<EnrolmentAnswer>,
}

/// A new device being added to an authenticator's identity, as last pulled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeviceEnrolmentRow {
    pub(crate) enrolment_id: AuthenticatorId,
    pub(crate) waiting: bool,
    pub(crate) requested_at_ms: u64,
    pub(crate) usable_at_ms: Option<u64>,
}

impl Store {
    /// Stores a new device enrolment's keys and proof (no answer yet),
    /// replacing any other.
    pub(crate) fn put_pending_enrolment(&self, p: &PendingActivationRow) -> Result<()> {
        self.put_pending_keys("pending_enrolment", p)
    }

    /// Records the server's answer to the pending enrolment.
    pub(crate) fn set_enrolment_answer(&self, a: &EnrolmentAnswer) -> Result<()> {
        self.conn.execute(
            "UPDATE pending_enrolment SET enrolment_id = ?1, code = ?2, expires_at_ms = ?3, usable_at_ms = ?4 \
             WHERE id = 1",
            params![
                a.enrolment_id.to_string(),
                a.code,
                to_i64(a.expires_at_ms),
                a.usable_at_ms.map(to_i64)
            ],
        )?;
        Ok(())
    }

    pub(crate) fn pending_enrolment(&self) -> Result<Option<PendingEnrolmentRow>> {
        let Some(keys) = self.pending_keys("pending_enrolment")? else {
            return Ok(None);
        };
        let (id, code, expires, usable) = self.conn.query_row(
            "SELECT enrolment_id, code, expires_at_ms, usable_at_ms FROM pending_enrolment WHERE id = 1",
            [],
            |r| {
                Ok((
                    r.get::<_, Option<String>>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                ))
            },
        )?;
        let answer = match (id, code, expires) {
            (Some(id), Some(code), Some(expires)) => Some(EnrolmentAnswer {
                enrolment_id: parse_id(&id)?,
                code,
                expires_at_ms: to_u64(expires),
                usable_at_ms: usable.map(to_u64),
            }),
            _ => None,
        };
        Ok(Some(PendingEnrolmentRow { keys, answer }))
    }

    pub(crate) fn clear_pending_enrolment(&self) -> Result<()> {
        self.conn.execute("DELETE FROM pending_enrolment", [])?;
        Ok(())
    }

    /// Replaces the new devices shown for each authenticator pulled.
    pub(crate) fn replace_device_enrolments(
        &mut self,
        pulled: &[(AuthenticatorId, Vec<DeviceEnrolmentRow>)],
    ) -> Result<()> {
        // A savepoint: part of the pull's transaction.
        crate::store::in_savepoint(&self.conn, |tx| {
            for (authenticator, rows) in pulled {
                tx.prepare_cached("DELETE FROM device_enrolments WHERE authenticator_id = ?1")?
                    .execute([authenticator.to_string()])?;
                for r in rows {
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO device_enrolments VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![
                        authenticator.to_string(),
                        r.enrolment_id.to_string(),
                        if r.waiting {
                            "waiting"
                        } else {
                            "awaiting_approval"
                        },
                        to_i64(r.requested_at_ms),
                        r.usable_at_ms.map(to_i64)
                    ])?;
                }
            }
            Ok(())
        })
    }

    /// The new devices being added to an authenticator's identity, oldest first.
    pub(crate) fn device_enrolments(
        &self,
        authenticator: &AuthenticatorId,
    ) -> Result<Vec<DeviceEnrolmentRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT enrolment_id, state, requested_at_ms, usable_at_ms FROM device_enrolments
             WHERE authenticator_id = ?1 ORDER BY requested_at_ms, enrolment_id",
        )?;
        let rows = stmt.query_map([authenticator.to_string()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<i64>>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, state, requested, usable) = row?;
            out.push(DeviceEnrolmentRow {
                enrolment_id: parse_id(&id)?,
                waiting: state == "waiting",
                requested_at_ms: to_u64(requested),
                usable_at_ms: usable.map(to_u64),
            });
        }
        Ok(out)
    }

    /// Forgets one shown new device (after this phone cancelled it).
    pub(crate) fn delete_device_enrolment(
        &self,
        authenticator: &AuthenticatorId,
        enrolment: &AuthenticatorId,
    ) -> Result<()> {
        self.conn.execute(
            "DELETE FROM device_enrolments WHERE authenticator_id = ?1 AND enrolment_id = ?2",
            params![authenticator.to_string(), enrolment.to_string()],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::{sample_authenticator, sample_wrapped};

    #[test]
    fn pending_enrolment_is_kept_apart_from_activation_and_cleared_by_its_authenticator() {
        let mut s = Store::open_in_memory().unwrap();
        let a = sample_authenticator();
        let keys = PendingActivationRow {
            user_id: "Anna#2024".into(),
            device_key_alias: a.device_key_alias.clone(),
            pin_wrap_alias: a.pin_wrap_alias.clone(),
            device_public_key: a.server_public_key.clone(),
            pin_public_key: a.pin_public_key.clone(),
            wrapped: sample_wrapped(),
            device_signature: vec![1, 2],
            pin_signature: vec![3, 4],
            created_at_ms: 5,
        };
        s.put_pending_activation(&keys).unwrap();
        s.put_pending_enrolment(&keys).unwrap();
        assert_eq!(s.pending_enrolment().unwrap().unwrap().answer, None);
        let answer = EnrolmentAnswer {
            enrolment_id: a.authenticator_id,
            code: "12345678".into(),
            expires_at_ms: 9,
            usable_at_ms: Some(10),
        };
        s.set_enrolment_answer(&answer).unwrap();
        let p = s.pending_enrolment().unwrap().unwrap();
        assert_eq!(p.answer, Some(answer));
        assert_eq!(p.keys.pin_signature, vec![3, 4]);
        // Activating from the enrolment clears it, not the pending activation.
        s.insert_enrolled_authenticator(&a, &sample_wrapped())
            .unwrap();
        assert!(s.pending_enrolment().unwrap().is_none());
        assert!(s.pending_activation().unwrap().is_some());

        let row = DeviceEnrolmentRow {
            enrolment_id: AuthenticatorId::random(),
            waiting: true,
            requested_at_ms: 1,
            usable_at_ms: Some(2),
        };
        let id = a.authenticator_id;
        s.replace_device_enrolments(&[(id, vec![row.clone()])])
            .unwrap();
        assert_eq!(s.device_enrolments(&id).unwrap(), vec![row.clone()]);
        s.delete_device_enrolment(&id, &row.enrolment_id).unwrap();
        assert!(s.device_enrolments(&id).unwrap().is_empty());
        s.replace_device_enrolments(&[(id, vec![row])]).unwrap();
        s.delete_authenticator(&id).unwrap();
        assert!(s.device_enrolments(&id).unwrap().is_empty());
    }
}
