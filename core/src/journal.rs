//! The device journal (issue 6 §7): every decision this phone signs is
//! appended to a hash chain ([`eid_protocol::journal`]) in the same
//! transaction that stores the signed decision. On each pull the server lists
//! the identity's newest decisions; one by an account on this phone that the
//! journal does not hold (by `decision_sha256`) was signed with this
//! account's device key somewhere else (a copied key, a cloned phone) or
//! invented by the server: it raises a stored alarm. Decisions by the
//! person's other devices are not alarms.
//!
//! The chain covers all accounts of the phone (one sequence); removing an
//! account keeps its entries (the history stays verifiable).

use eid_protocol::journal::{JOURNAL_GENESIS, JournalEntry, verify_chain};
use eid_protocol::wire::PulledDecision;
use eid_protocol::{AuthenticatorId, Decision, Outcome, RequestId};
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Error, Result};

/// A decision the server holds for an account on this phone that this phone
/// never signed. Stored until the account is removed.
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
    Error::Storage("corrupt journal row".into())
}

/// Appends a signed decision to the chain (call inside the transaction that
/// stores the decision).
pub(crate) fn append(conn: &Connection, decision: &Decision, now_ms: u64) -> Result<()> {
    let prev: Option<Vec<u8>> = conn
        .query_row(
            "SELECT link FROM journal ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
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
    conn.execute(
        "INSERT INTO journal (authenticator_id, request_id, outcome, counter, decision_sha256, link, created_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
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
/// decision by one of `accounts` the journal does not hold. Returns how many
/// alarms are new.
pub(crate) fn reconcile(
    conn: &mut Connection,
    pulled: &[(AuthenticatorId, &[PulledDecision])],
    now_ms: u64,
) -> Result<usize> {
    let tx = conn.transaction()?;
    let mut raised = 0;
    for (account, decisions) in pulled {
        for d in decisions.iter().filter(|d| d.authenticator_id == *account) {
            let known: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM journal WHERE authenticator_id = ?1 AND decision_sha256 = ?2)",
                params![account.to_string(), d.decision_sha256.as_slice()],
                |r| r.get(0),
            )?;
            if known {
                continue;
            }
            raised += tx.execute(
                "INSERT OR IGNORE INTO journal_alarms (authenticator_id, request_id, outcome, counter,
                     decision_sha256, decided_at_ms, raised_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    account.to_string(),
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
    tx.commit()?;
    Ok(raised)
}

/// The stored alarms of one account, oldest first.
pub(crate) fn alarms(conn: &Connection, account: &AuthenticatorId) -> Result<Vec<JournalAlarm>> {
    let mut stmt = conn.prepare(
        "SELECT request_id, outcome, counter, decision_sha256, decided_at_ms, raised_at_ms
         FROM journal_alarms WHERE authenticator_id = ?1 ORDER BY raised_at_ms, counter",
    )?;
    let rows = stmt
        .query_map([account.to_string()], |r| {
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
