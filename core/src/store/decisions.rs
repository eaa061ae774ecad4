//! The `decisions` table and each authenticator's decision counter: a signed
//! decision is stored with its counter before it is sent, then marked with
//! its verified receipt or the server's final refusal.

use eid_protocol::wire::{SignedReceipt, SubmitDecisionRequest};
use eid_protocol::{AuthenticatorId, RequestId};
use rusqlite::{OptionalExtension, params};

use super::{Store, bad, to_i64, to_u64};
use crate::error::Result;

/// Where a stored decision stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecisionStatus {
    /// Signed, not yet known to have reached the server.
    Signed,
    /// The server accepted it and its receipt verified.
    ReceiptVerified,
    /// The server refused it (final).
    Rejected,
}

impl DecisionStatus {
    fn as_str(self) -> &'static str {
        match self {
            DecisionStatus::Signed => "signed",
            DecisionStatus::ReceiptVerified => "receipt_verified",
            DecisionStatus::Rejected => "rejected",
        }
    }
    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "signed" => DecisionStatus::Signed,
            "receipt_verified" => DecisionStatus::ReceiptVerified,
            "rejected" => DecisionStatus::Rejected,
            _ => return Err(bad("decision status")),
        })
    }
}

/// A stored signed decision.
#[derive(Debug, Clone)]
pub(crate) struct DecisionRow {
    pub(crate) submit: SubmitDecisionRequest,
    pub(crate) status: DecisionStatus,
    pub(crate) receipt: Option<SignedReceipt>,
}

impl Store {
    /// Increments and commits the decision counter; returns the new value.
    /// The counter the next decision of this authenticator will use. It becomes
    /// used only when [`Store::insert_decision`] commits it together with the
    /// signed decision (the caller holds the store lock in between).
    pub(crate) fn next_counter(&self, id: &AuthenticatorId) -> Result<u64> {
        let v: i64 = self
            .conn
            .prepare_cached("SELECT decision_counter FROM accounts WHERE authenticator_id = ?1")?
            .query_row([id.to_string()], |r| r.get(0))?;
        Ok(to_u64(v) + 1)
    }

    /// Stores a signed decision and advances the authenticator's counter to its
    /// counter, in one durable commit, before anything is sent: a counter is
    /// never reused, and a sent decision is never forgotten. Returns `false`
    /// (and stores nothing) if the counter was taken by another decision since
    /// [`Store::next_counter`].
    pub(crate) fn insert_decision(
        &mut self,
        submit: &SubmitDecisionRequest,
        now: u64,
    ) -> Result<bool> {
        let json = serde_json::to_string(submit)?;
        let d = &submit.decision;
        // Its BEGIN and COMMIT cached: every decision runs this.
        self.in_transaction(|s| {
            let advanced = s
                .conn
                .prepare_cached(
                    "UPDATE accounts SET decision_counter = ?2
                 WHERE authenticator_id = ?1 AND decision_counter = ?2 - 1",
                )?
                .execute(params![d.authenticator_id.to_string(), to_i64(d.counter)])?;
            if advanced != 1 {
                // Nothing was written: the commit ends an empty transaction.
                return Ok(false);
            }
            s.conn.prepare_cached("INSERT INTO decisions (authenticator_id, request_id, counter, submit_json, status, created_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?.execute(
                params![
                    d.authenticator_id.to_string(),
                    d.request_id.to_string(),
                    to_i64(d.counter),
                    json,
                    DecisionStatus::Signed.as_str(),
                    to_i64(now)
                ],
            )?;
            crate::journal::append(&s.conn, d, now)?;
            Ok(true)
        })
    }

    pub(crate) fn decision(
        &self,
        id: &AuthenticatorId,
        request: &RequestId,
    ) -> Result<Option<DecisionRow>> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT submit_json, status, receipt_json FROM decisions
                 WHERE authenticator_id = ?1 AND request_id = ?2",
            )?
            .query_row(params![id.to_string(), request.to_string()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            })
            .optional()?;
        row.map(|(s, st, rc)| Self::decision_row(&s, &st, rc.as_deref()))
            .transpose()
    }

    fn decision_row(submit: &str, status: &str, receipt: Option<&str>) -> Result<DecisionRow> {
        Ok(DecisionRow {
            submit: serde_json::from_str(submit).map_err(|_| bad("decision"))?,
            status: DecisionStatus::parse(status)?,
            receipt: receipt
                .map(serde_json::from_str)
                .transpose()
                .map_err(|_| bad("receipt"))?,
        })
    }

    /// Decisions signed but not yet confirmed by a verified receipt.
    pub(crate) fn unsent_decisions(&self) -> Result<Vec<DecisionRow>> {
        let mut stmt = self.conn.prepare(
            // Counter order: the server accepts only rising counters per
            // authenticator, and the wall clock may have been set back
            // between two offline approvals.
            "SELECT submit_json, status, receipt_json FROM decisions WHERE status = ?1
             ORDER BY counter, rowid",
        )?;
        let rows = stmt.query_map([DecisionStatus::Signed.as_str()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (s, st, rc) = row?;
            out.push(Self::decision_row(&s, &st, rc.as_deref())?);
        }
        Ok(out)
    }

    pub(crate) fn set_decision_receipt(
        &mut self,
        id: &AuthenticatorId,
        request: &RequestId,
        receipt: &SignedReceipt,
    ) -> Result<()> {
        let json = serde_json::to_string(receipt)?;
        // The one commit that need not be durable at once: if a crash loses
        // it, the decision is still stored as signed and unsent, and resending
        // it returns this very receipt. WAL keeps it ordered after the durable
        // decision; the next FULL commit's fsync makes it durable too.
        self.without_fsync(|s| s.write_receipt(id, request, &json))
    }

    fn write_receipt(
        &mut self,
        id: &AuthenticatorId,
        request: &RequestId,
        json: &str,
    ) -> Result<()> {
        self.close_decision(
            "UPDATE decisions SET status = ?3, receipt_json = ?4
             WHERE authenticator_id = ?1 AND request_id = ?2",
            (id, request),
            DecisionStatus::ReceiptVerified,
            json,
        )
    }

    /// Ends a decision's life on this phone in one transaction: its row
    /// updated by `update` (`?1` authenticator, `?2` request, `?3` status,
    /// `?4` the receipt or the refusal's code) and its request no longer
    /// pending.
    fn close_decision(
        &mut self,
        update: &'static str,
        (id, request): (&AuthenticatorId, &RequestId),
        status: DecisionStatus,
        value: &str,
    ) -> Result<()> {
        let (id, request) = (id.to_string(), request.to_string());
        self.in_transaction(|s| {
            s.conn
                .prepare_cached(update)?
                .execute(params![id, request, status.as_str(), value])?;
            s.conn
                .prepare_cached(
                    "DELETE FROM pending_requests WHERE authenticator_id = ?1 AND request_id = ?2",
                )?
                .execute(params![id, request])?;
            Ok(())
        })
    }

    /// Forgets a signed decision the server refused without recording
    /// anything (the request stays open, e.g. after a mistyped binding code).
    pub(crate) fn delete_unsent_decision(
        &mut self,
        id: &AuthenticatorId,
        request: &RequestId,
    ) -> Result<()> {
        self.conn.prepare_cached("DELETE FROM decisions WHERE authenticator_id = ?1 AND request_id = ?2 AND status = ?3")?.execute(
            params![
                id.to_string(),
                request.to_string(),
                DecisionStatus::Signed.as_str()
            ],
        )?;
        Ok(())
    }

    pub(crate) fn set_decision_rejected(
        &mut self,
        id: &AuthenticatorId,
        request: &RequestId,
        code: &str,
    ) -> Result<()> {
        self.close_decision(
            "UPDATE decisions SET status = ?3, error_code = ?4
             WHERE authenticator_id = ?1 AND request_id = ?2",
            (id, request),
            DecisionStatus::Rejected,
            code,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AuthenticatorRow;
    use crate::store::tests::{sample_authenticator, sample_wrapped};

    fn sample_submit(
        a: &AuthenticatorRow,
        request_id: RequestId,
        counter: u64,
    ) -> SubmitDecisionRequest {
        SubmitDecisionRequest {
            decision: eid_protocol::Decision {
                request_id,
                identity_id: a.identity_id,
                authenticator_id: a.authenticator_id,
                outcome: eid_protocol::Outcome::Deny,
                kind: eid_protocol::RequestKind::Login,
                reference_text_sha256: [1; 32],
                service_provider_id: eid_protocol::ServiceProviderId::random(),
                service_provider_name: "Bank".into(),
                expires_at_ms: 1,
                server_nonce: [2; 32],
                binding_code: None,
                counter,
                call_context: Some(eid_protocol::CallContext::UNKNOWN),
            },
            device_signature: eid_protocol::Signature(vec![0x30, 0x00]),
            pin_signature: None,
        }
    }

    #[test]
    fn a_decision_is_stored_only_with_the_counter_it_was_signed_with() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("core.db")).unwrap();
        let a = sample_authenticator();
        s.insert_authenticator(&a, &sample_wrapped()).unwrap();
        let id = &a.authenticator_id;
        // Two decisions signed with the same next counter: the second loses.
        let counter = s.next_counter(id).unwrap();
        let first = sample_submit(&a, RequestId::random(), counter);
        let second = sample_submit(&a, RequestId::random(), counter);
        assert!(s.insert_decision(&first, 10).unwrap());
        assert!(!s.insert_decision(&second, 10).unwrap());
        assert!(
            s.decision(id, &second.decision.request_id)
                .unwrap()
                .is_none()
        );
        // Re-signed with the next counter, it is stored.
        let counter = s.next_counter(id).unwrap();
        assert_eq!(counter, first.decision.counter + 1);
        let second = sample_submit(&a, second.decision.request_id, counter);
        assert!(s.insert_decision(&second, 10).unwrap());
        assert_eq!(s.authenticator(id).unwrap().decision_counter, counter);
    }
}
