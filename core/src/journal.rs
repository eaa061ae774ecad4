//! The device journal (`docs/protocol.md`, "Device journal"): every decision this phone signs is
//! appended to a hash chain ([`eid_protocol::journal`]) in the same
//! transaction that stores the signed decision. On each pull the server lists
//! the identity's newest decisions; one by an authenticator on this phone that the
//! journal does not hold (by `decision_sha256`) was signed with this
//! authenticator's device key somewhere else (a copied key, a cloned phone) or
//! invented by the server: it raises a stored alarm. Decisions by the
//! person's other devices are not alarms.
//!
//! The chain covers all authenticators of the phone (one sequence); removing an
//! authenticator keeps its entries (the history stays verifiable).

use eid_protocol::journal::{JOURNAL_GENESIS, JournalEntry, verify_chain};
use eid_protocol::wire::PulledDecision;
use eid_protocol::{AuthenticatorId, Decision, Outcome, RequestId};
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Error, InternalError, Result};
use crate::{App, lock};

/// A decision the server holds for an authenticator on this phone that this phone
/// never signed. Stored until the authenticator is removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalAlarm {
    /// The request decided.
    pub request_id: RequestId,
    /// The outcome the server recorded.
    pub outcome: Outcome,
    /// The decision's counter.
    pub counter: u64,
    /// SHA-256 of the decision's canonical bytes, as the server listed it.
    pub decision_sha256: [u8; 32],
    /// When the server accepted it (server clock, Unix ms).
    pub decided_at_ms: u64,
    /// When this phone noticed (wall clock, Unix ms).
    pub raised_at_ms: u64,
}

/// The state of an intact journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalHead {
    /// Entries in the chain.
    pub entries: u64,
    /// The last link (32 zero bytes when empty).
    pub head_sha256: [u8; 32],
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn corrupt() -> Error {
    InternalError::Corrupt("journal row").into()
}

/// Appends a signed decision to the chain (call inside the transaction that
/// stores the decision).
pub(crate) fn append(conn: &Connection, decision: &Decision, now_ms: u64) -> Result<()> {
    let prev: Option<Vec<u8>> = conn
        .prepare_cached("SELECT link FROM journal ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| r.get(0))
        .optional()?;
    let prev: [u8; 32] = match prev {
        Some(v) => v.try_into().map_err(|_| corrupt())?,
        None => JOURNAL_GENESIS,
    };
    let entry = JournalEntry {
        authenticator_id: decision.authenticator_id,
        request_id: decision.request_id,
        outcome: decision.outcome,
        counter: decision.counter,
        decision_sha256: eid_protocol::sha256(&decision.signing_bytes()),
    };
    conn.prepare_cached("INSERT INTO journal (authenticator_id, request_id, outcome, counter, decision_sha256, link, created_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?.execute(
        params![
            entry.authenticator_id.to_string(),
            entry.request_id.to_string(),
            i64::from(entry.outcome.code()),
            to_i64(entry.counter),
            entry.decision_sha256.as_slice(),
            entry.link(&prev).as_slice(),
            to_i64(now_ms)
        ],
    )?;
    Ok(())
}

/// Journals decisions signed before the journal existed (a database from an
/// older version), oldest first, once.
pub(crate) fn backfill(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction()?;
    let missing: Vec<(String, i64)> = {
        let mut stmt = tx.prepare(
            "SELECT d.submit_json, d.created_at_ms FROM decisions d
             WHERE NOT EXISTS (SELECT 1 FROM journal j
                 WHERE j.authenticator_id = d.authenticator_id AND j.request_id = d.request_id)
             ORDER BY d.created_at_ms, d.counter",
        )?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?
    };
    for (json, at) in missing {
        let submit: eid_protocol::wire::SubmitDecisionRequest =
            serde_json::from_str(&json).map_err(|_| corrupt())?;
        append(&tx, &submit.decision, to_u64(at))?;
    }
    tx.commit()?;
    Ok(())
}

/// Recomputes the whole chain.
pub(crate) fn verify(conn: &Connection) -> Result<JournalHead> {
    let mut stmt = conn.prepare(
        "SELECT authenticator_id, request_id, outcome, counter, decision_sha256, link
         FROM journal ORDER BY seq",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Vec<u8>>(4)?,
                r.get::<_, Vec<u8>>(5)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut entries = Vec::with_capacity(rows.len());
    for (i, (auth, req, outcome, counter, sha, link)) in rows.into_iter().enumerate() {
        let broken = || Error::JournalBroken { entry: i as u64 };
        let entry = JournalEntry {
            authenticator_id: auth.parse().map_err(|_| broken())?,
            request_id: req.parse().map_err(|_| broken())?,
            outcome: u8::try_from(outcome)
                .ok()
                .and_then(Outcome::from_code)
                .ok_or_else(broken)?,
            counter: u64::try_from(counter).map_err(|_| broken())?,
            decision_sha256: sha.try_into().map_err(|_| broken())?,
        };
        let link: [u8; 32] = link.try_into().map_err(|_| broken())?;
        entries.push((entry, link));
    }
    let head = verify_chain(entries.iter().map(|(e, l)| (e, l)))
        .map_err(|i| Error::JournalBroken { entry: i as u64 })?;
    Ok(JournalHead {
        entries: entries.len() as u64,
        head_sha256: head,
    })
}

/// Compares the server's list with the journal; stores an alarm for each
/// decision by one of `authenticators` the journal does not hold. Returns how many
/// alarms are new.
pub(crate) fn reconcile(
    conn: &mut Connection,
    pulled: &[(AuthenticatorId, &[PulledDecision])],
    now_ms: u64,
) -> Result<usize> {
    if pulled.iter().all(|(_, d)| d.is_empty()) {
        return Ok(0);
    }
    // A savepoint: part of the pull's transaction.
    crate::store::in_savepoint(conn, |tx| {
        let mut raised = 0;
        for (authenticator, decisions) in pulled {
            // The next pull goes on after the highest decision compared now.
            if let Some(seq) = decisions.iter().map(|d| d.seq).max() {
                tx.prepare_cached(
                    "INSERT INTO account_feed (authenticator_id, decisions_cursor) VALUES (?1, ?2)
                     ON CONFLICT(authenticator_id) DO UPDATE
                     SET decisions_cursor = MAX(decisions_cursor, excluded.decisions_cursor)",
                )?
                .execute(params![authenticator.to_string(), to_i64(seq)])?;
            }
            for d in decisions
                .iter()
                .filter(|d| d.authenticator_id == *authenticator)
            {
                let known: bool = tx.prepare_cached("SELECT EXISTS (SELECT 1 FROM journal WHERE authenticator_id = ?1 AND decision_sha256 = ?2)")?.query_row(
                    params![authenticator.to_string(), d.decision_sha256.as_slice()],
                    |r| r.get(0),
                )?;
                if known {
                    continue;
                }
                raised += tx.prepare_cached("INSERT OR IGNORE INTO journal_alarms (authenticator_id, request_id, outcome, counter,
                         decision_sha256, decided_at_ms, raised_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?.execute(
                    params![
                        authenticator.to_string(),
                        d.request_id.to_string(),
                        i64::from(d.outcome.code()),
                        to_i64(d.counter),
                        d.decision_sha256.as_slice(),
                        to_i64(d.decided_at_ms),
                        to_i64(now_ms)
                    ],
                )?;
            }
        }
        Ok(raised)
    })
}

/// The stored alarms of one authenticator, oldest first.
pub(crate) fn alarms(
    conn: &Connection,
    authenticator: &AuthenticatorId,
) -> Result<Vec<JournalAlarm>> {
    let mut stmt = conn.prepare(
        "SELECT request_id, outcome, counter, decision_sha256, decided_at_ms, raised_at_ms
         FROM journal_alarms WHERE authenticator_id = ?1 ORDER BY raised_at_ms, counter",
    )?;
    let rows = stmt
        .query_map([authenticator.to_string()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Vec<u8>>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(req, outcome, counter, sha, decided, raised)| {
            Ok(JournalAlarm {
                request_id: req.parse().map_err(|_| corrupt())?,
                outcome: u8::try_from(outcome)
                    .ok()
                    .and_then(Outcome::from_code)
                    .ok_or_else(corrupt)?,
                counter: to_u64(counter),
                decision_sha256: sha.try_into().map_err(|_| corrupt())?,
                decided_at_ms: to_u64(decided),
                raised_at_ms: to_u64(raised),
            })
        })
        .collect()
}

impl App {
    /// Decisions the server holds for this authenticator that this phone never
    /// signed (device journal reconciliation on each pull), oldest first.
    /// Any entry means the authenticator's device key signed somewhere else (or the
    /// server invented it): the app should urge blocking the identity. No
    /// network.
    pub fn journal_alarms(&self, authenticator: &AuthenticatorId) -> Result<Vec<JournalAlarm>> {
        let store = lock(&self.inner.store)?;
        store.authenticator(authenticator)?;
        alarms(&store.conn, authenticator)
    }

    /// Recomputes the device journal's hash chain: its length and head, or
    /// [`Error::JournalBroken`] if an entry was edited, removed or reordered.
    /// No network.
    pub fn journal_verify(&self) -> Result<JournalHead> {
        verify(&lock(&self.inner.store)?.conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use eid_protocol::{IdentityId, RequestEnvelopeBody, RequestKind, ServiceProviderId};

    fn decision(authenticator: AuthenticatorId, counter: u64, outcome: Outcome) -> Decision {
        let envelope = RequestEnvelopeBody {
            request_id: RequestId::random(),
            identity_id: IdentityId([2; 16]),
            kind: RequestKind::Login,
            service_provider_id: ServiceProviderId([3; 16]),
            service_provider_name: "Nordisk Bank A/S".into(),
            reference_text: "Log på".into(),
            created_at_ms: 1,
            expires_at_ms: 2,
            server_nonce: [4; 32],
            binding_required: false,
        };
        Decision::for_envelope(&envelope, authenticator, outcome, None, counter)
    }

    fn pulled(d: &Decision) -> PulledDecision {
        PulledDecision {
            request_id: d.request_id,
            authenticator_id: d.authenticator_id,
            outcome: d.outcome,
            counter: d.counter,
            decision_sha256: eid_protocol::sha256(&d.signing_bytes()),
            decided_at_ms: 5,
            seq: d.counter,
        }
    }

    fn store() -> Store {
        let store = Store::open_in_memory().unwrap();
        // Decisions without authenticator rows (the chain does not need them).
        store
            .conn
            .pragma_update(None, "foreign_keys", "OFF")
            .unwrap();
        store
    }

    #[test]
    fn reconcile_alarms_only_for_own_unknown_decisions_once() {
        let mut s = store();
        let me = AuthenticatorId([7; 16]);
        let other_device = AuthenticatorId([8; 16]);
        let mine = decision(me, 1, Outcome::Approve);
        append(&s.conn, &mine, 10).unwrap();
        let theirs = decision(other_device, 1, Outcome::Deny);
        let forged = decision(me, 2, Outcome::Approve);
        let list = [pulled(&forged), pulled(&theirs), pulled(&mine)];
        assert_eq!(reconcile(&mut s.conn, &[(me, &list)], 20).unwrap(), 1);
        assert_eq!(reconcile(&mut s.conn, &[(me, &list)], 30).unwrap(), 0);
        let raised = alarms(&s.conn, &me).unwrap();
        assert_eq!(raised.len(), 1);
        assert_eq!(raised[0].request_id, forged.request_id);
        assert_eq!(raised[0].counter, 2);
        assert_eq!(raised[0].raised_at_ms, 20);
        // Same request and counter but other signed bytes (e.g. another
        // outcome) is not the phone's decision either.
        let mut altered = pulled(&mine);
        altered.decision_sha256[0] ^= 1;
        assert_eq!(reconcile(&mut s.conn, &[(me, &[altered])], 40).unwrap(), 1);
        assert!(alarms(&s.conn, &other_device).unwrap().is_empty());
    }

    #[test]
    fn backfill_journals_older_decisions_once_in_order() {
        let mut s = store();
        let me = AuthenticatorId([7; 16]);
        let ds = [
            decision(me, 1, Outcome::Deny),
            decision(me, 2, Outcome::Approve),
        ];
        for (i, d) in ds.iter().enumerate() {
            let submit = eid_protocol::wire::SubmitDecisionRequest {
                decision: d.clone(),
                device_signature: eid_protocol::crypto::SoftwareSigningKey::generate()
                    .sign(&d.signing_bytes()),
                pin_signature: None,
            };
            s.conn
                .execute(
                    "INSERT INTO decisions (authenticator_id, request_id, counter, submit_json, status, created_at_ms)
                     VALUES (?1, ?2, ?3, ?4, 'signed', ?5)",
                    params![
                        me.to_string(),
                        d.request_id.to_string(),
                        to_i64(d.counter),
                        serde_json::to_string(&submit).unwrap(),
                        i as i64
                    ],
                )
                .unwrap();
        }
        assert_eq!(verify(&s.conn).unwrap().entries, 0);
        backfill(&mut s.conn).unwrap();
        backfill(&mut s.conn).unwrap();
        let head = verify(&s.conn).unwrap();
        assert_eq!(head.entries, 2);
        let first = JournalEntry {
            authenticator_id: me,
            request_id: ds[0].request_id,
            outcome: Outcome::Deny,
            counter: 1,
            decision_sha256: eid_protocol::sha256(&ds[0].signing_bytes()),
        };
        let second = JournalEntry {
            authenticator_id: me,
            request_id: ds[1].request_id,
            outcome: Outcome::Approve,
            counter: 2,
            decision_sha256: eid_protocol::sha256(&ds[1].signing_bytes()),
        };
        assert_eq!(head.head_sha256, second.link(&first.link(&JOURNAL_GENESIS)));
        // Journalled decisions raise no alarm.
        let list = [pulled(&ds[0]), pulled(&ds[1])];
        assert_eq!(reconcile(&mut s.conn, &[(me, &list)], 1).unwrap(), 0);
    }
}
