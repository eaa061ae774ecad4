//! The local database: one SQLite file in WAL mode with `synchronous=FULL`, so a
//! committed write (above all the PIN attempt counter) survives a crash or
//! `kill -9`. Schema changes go through `rusqlite_migration`.

use std::path::Path;

use eid_protocol::events::SecurityEventKind;
use eid_protocol::wire::{
    FeedEvent, PulledContactChange, SignedEnvelope, SignedReceipt, SubmitDecisionRequest,
};
use eid_protocol::{AuthenticatorId, ChangeId, IdentityId, PublicKey, RequestId};
use rusqlite::{Connection, OptionalExtension, params};
use rusqlite_migration::{M, Migrations};

use crate::error::{Error, InternalError, Result};
use crate::events::StoredFeedEvent;
use crate::lockout::LockoutState;
use crate::pin::WrappedPinKey;

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE accounts (
    authenticator_id  TEXT PRIMARY KEY NOT NULL,
    identity_id       TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    server_public_key BLOB NOT NULL,
    device_key_alias  TEXT NOT NULL,
    pin_wrap_alias    TEXT NOT NULL,
    pin_public_key    BLOB NOT NULL,
    decision_counter  INTEGER NOT NULL DEFAULT 0,
    state             TEXT NOT NULL,
    created_at_ms     INTEGER NOT NULL
) STRICT;
CREATE TABLE pin_keys (
    authenticator_id TEXT PRIMARY KEY NOT NULL REFERENCES accounts ON DELETE CASCADE,
    wrapped          BLOB NOT NULL,
    salt             BLOB NOT NULL,
    nonce            BLOB NOT NULL,
    iterations       INTEGER NOT NULL
) STRICT;
CREATE TABLE pin_attempts (
    authenticator_id TEXT PRIMARY KEY NOT NULL REFERENCES accounts ON DELETE CASCADE,
    failures         INTEGER NOT NULL,
    locked_until_ms  INTEGER NOT NULL,
    last_seen_ms     INTEGER NOT NULL
) STRICT;
CREATE TABLE pending_requests (
    authenticator_id TEXT NOT NULL REFERENCES accounts ON DELETE CASCADE,
    request_id       TEXT NOT NULL,
    envelope_json    TEXT NOT NULL,
    server_time_ms   INTEGER NOT NULL,
    received_wall_ms INTEGER NOT NULL,
    PRIMARY KEY (authenticator_id, request_id)
) STRICT;
CREATE TABLE decisions (
    authenticator_id TEXT NOT NULL REFERENCES accounts ON DELETE CASCADE,
    request_id       TEXT NOT NULL,
    counter          INTEGER NOT NULL,
    submit_json      TEXT NOT NULL,
    status           TEXT NOT NULL,
    receipt_json     TEXT,
    error_code       TEXT,
    created_at_ms    INTEGER NOT NULL,
    PRIMARY KEY (authenticator_id, request_id)
) STRICT;
CREATE TABLE pending_activation (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    user_id          TEXT NOT NULL,
    device_key_alias TEXT NOT NULL,
    pin_wrap_alias   TEXT NOT NULL,
    device_public_key BLOB NOT NULL,
    pin_public_key   BLOB NOT NULL,
    wrapped          BLOB NOT NULL,
    salt             BLOB NOT NULL,
    nonce            BLOB NOT NULL,
    iterations       INTEGER NOT NULL,
    device_signature BLOB NOT NULL,
    pin_signature    BLOB NOT NULL,
    created_at_ms    INTEGER NOT NULL
) STRICT;
"#,
    // A new device added from an existing one: the keys and proof as for an
    // activation, then the server's enrolment id and code; and, on existing
    // devices, the new devices being added to their identity (from the pull).
    r#"
CREATE TABLE pending_enrolment (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    user_id          TEXT NOT NULL,
    device_key_alias TEXT NOT NULL,
    pin_wrap_alias   TEXT NOT NULL,
    device_public_key BLOB NOT NULL,
    pin_public_key   BLOB NOT NULL,
    wrapped          BLOB NOT NULL,
    salt             BLOB NOT NULL,
    nonce            BLOB NOT NULL,
    iterations       INTEGER NOT NULL,
    device_signature BLOB NOT NULL,
    pin_signature    BLOB NOT NULL,
    created_at_ms    INTEGER NOT NULL,
    enrolment_id     TEXT,
    code             TEXT,
    expires_at_ms    INTEGER,
    usable_at_ms     INTEGER
) STRICT;
CREATE TABLE device_enrolments (
    authenticator_id TEXT NOT NULL REFERENCES accounts ON DELETE CASCADE,
    enrolment_id     TEXT NOT NULL,
    state            TEXT NOT NULL,
    requested_at_ms  INTEGER NOT NULL,
    usable_at_ms     INTEGER,
    PRIMARY KEY (authenticator_id, enrolment_id)
) STRICT;
"#,
    // 3: the security feed per account (events pulled after a cursor) and the
    // "notify me on every use" setting as the server last reported it.
    r#"
CREATE TABLE feed_events (
    authenticator_id       TEXT NOT NULL REFERENCES accounts ON DELETE CASCADE,
    event_id               INTEGER NOT NULL,
    kind                   TEXT NOT NULL,
    occurred_at_ms         INTEGER NOT NULL,
    event_authenticator_id TEXT,
    detail                 TEXT,
    PRIMARY KEY (authenticator_id, event_id)
) STRICT;
CREATE TABLE account_feed (
    authenticator_id TEXT PRIMARY KEY NOT NULL REFERENCES accounts ON DELETE CASCADE,
    cursor           INTEGER NOT NULL DEFAULT 0,
    notify_every_use INTEGER NOT NULL DEFAULT 0
) STRICT;
"#,
    // 4: the open phone/e-mail changes of each account's identity, as the
    // last pull showed them (the app shows them and offers to cancel).
    r#"
CREATE TABLE contact_changes (
    authenticator_id TEXT NOT NULL REFERENCES accounts ON DELETE CASCADE,
    change_id        TEXT NOT NULL,
    change_json      TEXT NOT NULL,
    PRIMARY KEY (authenticator_id, change_id)
) STRICT;
"#,
    // 5: the device journal (issue 6 §7): a hash chain of every decision
    // this phone signed (all accounts, kept when an account is removed), and
    // the alarms for decisions the server holds that the chain does not.
    r#"
CREATE TABLE journal (
    seq              INTEGER PRIMARY KEY,
    authenticator_id TEXT NOT NULL,
    request_id       TEXT NOT NULL,
    outcome          INTEGER NOT NULL,
    counter          INTEGER NOT NULL,
    decision_sha256  BLOB NOT NULL,
    link             BLOB NOT NULL,
    created_at_ms    INTEGER NOT NULL
) STRICT;
CREATE INDEX journal_by_decision ON journal (authenticator_id, decision_sha256);
CREATE TABLE journal_alarms (
    authenticator_id TEXT NOT NULL REFERENCES accounts ON DELETE CASCADE,
    request_id       TEXT NOT NULL,
    outcome          INTEGER NOT NULL,
    counter          INTEGER NOT NULL,
    decision_sha256  BLOB NOT NULL,
    decided_at_ms    INTEGER NOT NULL,
    raised_at_ms     INTEGER NOT NULL,
    PRIMARY KEY (authenticator_id, decision_sha256)
) STRICT;
"#,
    // 6: the device journal's cursor into the server's decision list.
    r#"
ALTER TABLE account_feed ADD COLUMN decisions_cursor INTEGER NOT NULL DEFAULT 0;
"#,
];

/// Most feed events kept per account (the oldest go first).
const MAX_STORED_FEED_EVENTS: i64 = 200;

/// Local state of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AccountState {
    /// Usable.
    Active,
    /// The identity is blocked (server says so); no approvals.
    Blocked,
    /// The PIN key was destroyed or the server locked the authenticator:
    /// the account must be activated again.
    NeedsReactivation,
}

impl AccountState {
    fn as_str(self) -> &'static str {
        match self {
            AccountState::Active => "active",
            AccountState::Blocked => "blocked",
            AccountState::NeedsReactivation => "needs_reactivation",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "active" => AccountState::Active,
            "blocked" => AccountState::Blocked,
            "needs_reactivation" => AccountState::NeedsReactivation,
            _ => return Err(bad("account state")),
        })
    }
}

/// A stored account (no secrets: the PIN key is in `pin_keys`, sealed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AccountRow {
    pub(crate) authenticator_id: AuthenticatorId,
    pub(crate) identity_id: IdentityId,
    pub(crate) user_id: String,
    pub(crate) server_public_key: PublicKey,
    pub(crate) device_key_alias: String,
    pub(crate) pin_wrap_alias: String,
    pub(crate) pin_public_key: PublicKey,
    pub(crate) decision_counter: u64,
    pub(crate) state: AccountState,
    pub(crate) created_at_ms: u64,
}

/// A stored pending request.
#[derive(Debug, Clone)]
pub(crate) struct PendingRow {
    pub(crate) authenticator_id: AuthenticatorId,
    pub(crate) envelope: SignedEnvelope,
    pub(crate) server_time_ms: u64,
    pub(crate) received_wall_ms: u64,
}

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

/// An interrupted activation: keys made and proof signed, answer not received.
#[derive(Debug, Clone)]
pub(crate) struct PendingActivationRow {
    pub(crate) user_id: String,
    pub(crate) device_key_alias: String,
    pub(crate) pin_wrap_alias: String,
    pub(crate) device_public_key: PublicKey,
    pub(crate) pin_public_key: PublicKey,
    pub(crate) wrapped: WrappedPinKey,
    pub(crate) device_signature: Vec<u8>,
    pub(crate) pin_signature: Vec<u8>,
    pub(crate) created_at_ms: u64,
}

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

/// A new device being added to an account's identity, as last pulled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeviceEnrolmentRow {
    pub(crate) enrolment_id: AuthenticatorId,
    pub(crate) waiting: bool,
    pub(crate) requested_at_ms: u64,
    pub(crate) usable_at_ms: Option<u64>,
}

/// The database handle.
#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) conn: Connection,
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A stored value that does not decode.
fn bad(what: &'static str) -> Error {
    InternalError::Corrupt(what).into()
}

fn parse_id<T: std::str::FromStr>(s: &str) -> Result<T> {
    s.parse().map_err(|_| bad("id"))
}

fn fixed<const N: usize>(v: Vec<u8>) -> Result<[u8; N]> {
    v.try_into().map_err(|_| bad("fixed field"))
}

impl Store {
    /// Opens (creating and migrating) the database at `path`.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let mut conn = Connection::open(path)?;
        Self::configure(&mut conn)?;
        Ok(Self { conn })
    }

    /// An in-memory database (tests).
    #[cfg(test)]
    pub(crate) fn open_in_memory() -> Result<Self> {
        let mut conn = Connection::open_in_memory()?;
        Self::configure(&mut conn)?;
        Ok(Self { conn })
    }

    fn configure(conn: &mut Connection) -> Result<()> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let migrations: Migrations<'_> = MIGRATIONS.iter().map(|sql| M::up(sql)).collect();
        migrations.to_latest(conn)?;
        crate::journal::backfill(conn)?;
        Ok(())
    }

    // ------------------------------------------------------------ accounts

    pub(crate) fn accounts(&self) -> Result<Vec<AccountRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT authenticator_id, identity_id, user_id, server_public_key, device_key_alias,
                    pin_wrap_alias, pin_public_key, decision_counter, state, created_at_ms
             FROM accounts ORDER BY created_at_ms, rowid",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Vec<u8>>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, Vec<u8>>(6)?,
                r.get::<_, i64>(7)?,
                r.get::<_, String>(8)?,
                r.get::<_, i64>(9)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (a, i, u, spk, dka, pwa, ppk, counter, state, created) = row?;
            out.push(AccountRow {
                authenticator_id: parse_id(&a)?,
                identity_id: parse_id(&i)?,
                user_id: u,
                server_public_key: PublicKey::from_sec1(&spk).map_err(|_| bad("key"))?,
                device_key_alias: dka,
                pin_wrap_alias: pwa,
                pin_public_key: PublicKey::from_sec1(&ppk).map_err(|_| bad("key"))?,
                decision_counter: to_u64(counter),
                state: AccountState::parse(&state)?,
                created_at_ms: to_u64(created),
            });
        }
        Ok(out)
    }

    pub(crate) fn account(&self, id: &AuthenticatorId) -> Result<AccountRow> {
        self.accounts()?
            .into_iter()
            .find(|a| a.authenticator_id == *id)
            .ok_or(Error::UnknownAccount)
    }

    /// Inserts a newly activated account with its sealed PIN key, and clears the
    /// pending activation, in one transaction.
    pub(crate) fn insert_account(&mut self, a: &AccountRow, w: &WrappedPinKey) -> Result<()> {
        self.insert_account_clearing(a, w, "pending_activation")
    }

    /// Inserts an account activated from a device enrolment and clears the
    /// pending enrolment, in one transaction.
    pub(crate) fn insert_enrolled_account(
        &mut self,
        a: &AccountRow,
        w: &WrappedPinKey,
    ) -> Result<()> {
        self.insert_account_clearing(a, w, "pending_enrolment")
    }

    fn insert_account_clearing(
        &mut self,
        a: &AccountRow,
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

    fn put_pin_key(conn: &Connection, id: &AuthenticatorId, w: &WrappedPinKey) -> Result<()> {
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

    /// Destroys the sealed PIN key and marks the account for re-activation.
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
            params![id.to_string(), AccountState::NeedsReactivation.as_str()],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub(crate) fn set_state(&self, id: &AuthenticatorId, state: AccountState) -> Result<()> {
        self.conn.execute(
            "UPDATE accounts SET state = ?2 WHERE authenticator_id = ?1",
            params![id.to_string(), state.as_str()],
        )?;
        Ok(())
    }

    pub(crate) fn delete_account(&mut self, id: &AuthenticatorId) -> Result<()> {
        self.conn.execute(
            "DELETE FROM accounts WHERE authenticator_id = ?1",
            [id.to_string()],
        )?;
        Ok(())
    }

    /// Increments and commits the decision counter; returns the new value.
    /// The counter the next decision of this account will use. It becomes
    /// used only when [`Store::insert_decision`] commits it together with the
    /// signed decision (the caller holds the store lock in between).
    pub(crate) fn next_counter(&self, id: &AuthenticatorId) -> Result<u64> {
        let v: i64 = self.conn.query_row(
            "SELECT decision_counter FROM accounts WHERE authenticator_id = ?1",
            [id.to_string()],
            |r| r.get(0),
        )?;
        Ok(to_u64(v) + 1)
    }

    // ------------------------------------------------------------ PIN attempts

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

    // ------------------------------------------------------------ pending requests

    /// Replaces an account's pending requests (tests; pulls use [`Store::apply_pull`]).
    #[cfg(test)]
    pub(crate) fn replace_pending(
        &mut self,
        id: &AuthenticatorId,
        envelopes: &[SignedEnvelope],
        server_time_ms: u64,
        received_wall_ms: u64,
    ) -> Result<()> {
        let state = self.account(id)?.state;
        self.apply_pull(&[(*id, state, envelopes)], server_time_ms, received_wall_ms)
    }

    /// Stores a pull in one transaction (one fsync): each account's state
    /// and its unexpired requests. A state or request set equal to the stored
    /// one is not rewritten, so a pull that brings nothing new writes nothing
    /// (and the stored pull times of unchanged requests are kept).
    pub(crate) fn apply_pull(
        &mut self,
        pulled: &[(AuthenticatorId, AccountState, &[SignedEnvelope])],
        server_time_ms: u64,
        received_wall_ms: u64,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        for (id, state, envelopes) in pulled {
            let id = id.to_string();
            tx.execute(
                "UPDATE accounts SET state = ?2 WHERE authenticator_id = ?1 AND state != ?2",
                params![id, state.as_str()],
            )?;
            let mut fresh = Vec::with_capacity(envelopes.len());
            for e in *envelopes {
                let json = serde_json::to_string(e)?;
                fresh.push((e.envelope.request_id.to_string(), json));
            }
            fresh.sort();
            let mut stored = {
                let mut stmt = tx.prepare_cached(
                    "SELECT request_id, envelope_json FROM pending_requests WHERE authenticator_id = ?1",
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
                "DELETE FROM pending_requests WHERE authenticator_id = ?1",
                [&id],
            )?;
            for (request_id, json) in &fresh {
                tx.execute(
                    "INSERT OR REPLACE INTO pending_requests VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        id,
                        request_id,
                        json,
                        to_i64(server_time_ms),
                        to_i64(received_wall_ms)
                    ],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The feed cursor of each account (0 when none yet).
    pub(crate) fn feed_cursors(&self, ids: &[AuthenticatorId]) -> Result<Vec<u64>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT cursor FROM account_feed WHERE authenticator_id = ?1")?;
        ids.iter()
            .map(|id| {
                Ok(stmt
                    .query_row([id.to_string()], |r| r.get::<_, i64>(0))
                    .optional()?
                    .map_or(0, to_u64))
            })
            .collect()
    }

    /// Per account, the highest server decision `seq` already reconciled
    /// with the journal (0 when none).
    pub(crate) fn decision_cursors(&self, ids: &[AuthenticatorId]) -> Result<Vec<u64>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT decisions_cursor FROM account_feed WHERE authenticator_id = ?1",
        )?;
        ids.iter()
            .map(|id| {
                Ok(stmt
                    .query_row([id.to_string()], |r| r.get::<_, i64>(0))
                    .optional()?
                    .map_or(0, to_u64))
            })
            .collect()
    }

    /// Stores pulled feed events and settings in one transaction, advancing
    /// each account's cursor to its newest event. Writes nothing when nothing
    /// changed (no new events, same setting).
    pub(crate) fn apply_feed(
        &mut self,
        pulled: &[(AuthenticatorId, &[FeedEvent], bool)],
    ) -> Result<()> {
        let mut changed = Vec::new();
        for (id, events, notify) in pulled {
            let stored: Option<(i64, bool)> = self
                .conn
                .prepare_cached(
                    "SELECT cursor, notify_every_use FROM account_feed WHERE authenticator_id = ?1",
                )?
                .query_row([id.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let (cursor, stored_notify) = stored.map_or((0, false), |(c, n)| (to_u64(c), n));
            let fresh: Vec<&FeedEvent> = events.iter().filter(|e| e.event_id > cursor).collect();
            if fresh.is_empty() && stored.is_some() && stored_notify == *notify {
                continue;
            }
            changed.push((id, fresh, *notify, cursor));
        }
        if changed.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        for (id, fresh, notify, cursor) in changed {
            let id = id.to_string();
            for e in &fresh {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO feed_events (authenticator_id, event_id, kind, occurred_at_ms, \
                     event_authenticator_id, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    id,
                    to_i64(e.event_id),
                    e.kind.as_str(),
                    to_i64(e.occurred_at_ms),
                    e.authenticator_id.map(|a| a.to_string()),
                    e.detail
                ])?;
            }
            let newest = fresh
                .iter()
                .map(|e| e.event_id)
                .max()
                .unwrap_or(0)
                .max(cursor);
            tx.prepare_cached(
                "INSERT INTO account_feed (authenticator_id, cursor, notify_every_use) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (authenticator_id) DO UPDATE SET cursor = ?2, notify_every_use = ?3",
            )?
            .execute(params![id, to_i64(newest), notify])?;
            tx.prepare_cached(
                "DELETE FROM feed_events WHERE authenticator_id = ?1 AND event_id NOT IN \
                 (SELECT event_id FROM feed_events WHERE authenticator_id = ?1 \
                  ORDER BY event_id DESC LIMIT ?2)",
            )?
            .execute(params![id, MAX_STORED_FEED_EVENTS])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The account's stored feed, newest first.
    pub(crate) fn feed(&self, id: &AuthenticatorId) -> Result<Vec<StoredFeedEvent>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT event_id, kind, occurred_at_ms, event_authenticator_id, detail FROM feed_events \
             WHERE authenticator_id = ?1 ORDER BY event_id DESC",
        )?;
        let rows = stmt.query_map([id.to_string()], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (event_id, kind, at, auth, detail) = row?;
            out.push(StoredFeedEvent {
                event_id: to_u64(event_id),
                kind: SecurityEventKind::parse(&kind).unwrap_or(SecurityEventKind::Unknown),
                occurred_at_ms: to_u64(at),
                authenticator_id: auth.map(|a| parse_id(&a)).transpose()?,
                detail,
            });
        }
        Ok(out)
    }

    /// The "notify me on every use" setting as last known.
    pub(crate) fn notify_every_use(&self, id: &AuthenticatorId) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT notify_every_use FROM account_feed WHERE authenticator_id = ?1",
            )?
            .query_row([id.to_string()], |r| r.get::<_, bool>(0))
            .optional()?
            .unwrap_or(false))
    }

    /// Records the setting the server confirmed.
    pub(crate) fn set_notify_every_use(&self, id: &AuthenticatorId, on: bool) -> Result<()> {
        self.conn.execute(
            "INSERT INTO account_feed (authenticator_id, cursor, notify_every_use) VALUES (?1, 0, ?2) \
             ON CONFLICT (authenticator_id) DO UPDATE SET notify_every_use = ?2",
            params![id.to_string(), on],
        )?;
        Ok(())
    }

    pub(crate) fn pending(&self) -> Result<Vec<PendingRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT authenticator_id, envelope_json, server_time_ms, received_wall_ms
             FROM pending_requests ORDER BY server_time_ms, request_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (a, json, st, rw) = row?;
            out.push(PendingRow {
                authenticator_id: parse_id(&a)?,
                envelope: serde_json::from_str(&json).map_err(|_| bad("envelope"))?,
                server_time_ms: to_u64(st),
                received_wall_ms: to_u64(rw),
            });
        }
        Ok(out)
    }

    // ------------------------------------------------------------ decisions

    /// Stores a signed decision and advances the account's counter to its
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
        let tx = self.conn.transaction()?;
        let advanced = tx.execute(
            "UPDATE accounts SET decision_counter = ?2
             WHERE authenticator_id = ?1 AND decision_counter = ?2 - 1",
            params![d.authenticator_id.to_string(), to_i64(d.counter)],
        )?;
        if advanced != 1 {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO decisions (authenticator_id, request_id, counter, submit_json, status, created_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                d.authenticator_id.to_string(),
                d.request_id.to_string(),
                to_i64(d.counter),
                json,
                DecisionStatus::Signed.as_str(),
                to_i64(now)
            ],
        )?;
        crate::journal::append(&tx, d, now)?;
        tx.commit()?;
        Ok(true)
    }

    pub(crate) fn decision(
        &self,
        id: &AuthenticatorId,
        request: &RequestId,
    ) -> Result<Option<DecisionRow>> {
        let row = self
            .conn
            .query_row(
                "SELECT submit_json, status, receipt_json FROM decisions
                 WHERE authenticator_id = ?1 AND request_id = ?2",
                params![id.to_string(), request.to_string()],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                    ))
                },
            )
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

    /// Runs `f` with `synchronous=NORMAL` (commits not flushed at once), and
    /// restores `FULL` afterwards whatever `f` returned.
    fn without_fsync<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        let result = f(self);
        if !self.conn.is_autocommit() {
            // A failed commit left a transaction open; the level can only
            // change outside one.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        // If this fails, PIN attempts refuse to be counted (see set_attempts).
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        result
    }

    fn write_receipt(
        &mut self,
        id: &AuthenticatorId,
        request: &RequestId,
        json: &str,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE decisions SET status = ?3, receipt_json = ?4
             WHERE authenticator_id = ?1 AND request_id = ?2",
            params![
                id.to_string(),
                request.to_string(),
                DecisionStatus::ReceiptVerified.as_str(),
                json
            ],
        )?;
        tx.execute(
            "DELETE FROM pending_requests WHERE authenticator_id = ?1 AND request_id = ?2",
            params![id.to_string(), request.to_string()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Forgets a signed decision the server refused without recording
    /// anything (the request stays open, e.g. after a mistyped binding code).
    pub(crate) fn delete_unsent_decision(
        &mut self,
        id: &AuthenticatorId,
        request: &RequestId,
    ) -> Result<()> {
        self.conn.execute(
            "DELETE FROM decisions WHERE authenticator_id = ?1 AND request_id = ?2 AND status = ?3",
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
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE decisions SET status = ?3, error_code = ?4
             WHERE authenticator_id = ?1 AND request_id = ?2",
            params![
                id.to_string(),
                request.to_string(),
                DecisionStatus::Rejected.as_str(),
                code
            ],
        )?;
        tx.execute(
            "DELETE FROM pending_requests WHERE authenticator_id = ?1 AND request_id = ?2",
            params![id.to_string(), request.to_string()],
        )?;
        tx.commit()?;
        Ok(())
    }

    // ------------------------------------------------------------ pending activation

    pub(crate) fn put_pending_activation(&self, p: &PendingActivationRow) -> Result<()> {
        self.put_pending_keys("pending_activation", p)
    }

    fn put_pending_keys(&self, table: &str, p: &PendingActivationRow) -> Result<()> {
        self.conn.execute(
            &format!(
                "INSERT OR REPLACE INTO {table} (id, user_id, device_key_alias, pin_wrap_alias, \
                 device_public_key, pin_public_key, wrapped, salt, nonce, iterations, device_signature, \
                 pin_signature, created_at_ms) VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
            ),
            params![
                p.user_id,
                p.device_key_alias,
                p.pin_wrap_alias,
                p.device_public_key.as_bytes().as_slice(),
                p.pin_public_key.as_bytes().as_slice(),
                p.wrapped.ciphertext,
                p.wrapped.salt.as_slice(),
                p.wrapped.nonce.as_slice(),
                i64::from(p.wrapped.iterations),
                p.device_signature,
                p.pin_signature,
                to_i64(p.created_at_ms),
            ],
        )?;
        Ok(())
    }

    pub(crate) fn pending_activation(&self) -> Result<Option<PendingActivationRow>> {
        self.pending_keys("pending_activation")
    }

    fn pending_keys(&self, table: &str) -> Result<Option<PendingActivationRow>> {
        let row = self
            .conn
            .query_row(
                &format!(
                    "SELECT user_id, device_key_alias, pin_wrap_alias, device_public_key, pin_public_key,
                        wrapped, salt, nonce, iterations, device_signature, pin_signature, created_at_ms
                 FROM {table} WHERE id = 1"
                ),
                [],
                |r| {
                    Ok((
                        (
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, Vec<u8>>(3)?,
                            r.get::<_, Vec<u8>>(4)?,
                            r.get::<_, Vec<u8>>(5)?,
                        ),
                        (
                            r.get::<_, Vec<u8>>(6)?,
                            r.get::<_, Vec<u8>>(7)?,
                            r.get::<_, i64>(8)?,
                            r.get::<_, Vec<u8>>(9)?,
                            r.get::<_, Vec<u8>>(10)?,
                            r.get::<_, i64>(11)?,
                        ),
                    ))
                },
            )
            .optional()?;
        let Some(((user_id, dka, pwa, dpk, ppk, wrapped), (salt, nonce, it, ds, ps, created))) =
            row
        else {
            return Ok(None);
        };
        Ok(Some(PendingActivationRow {
            user_id,
            device_key_alias: dka,
            pin_wrap_alias: pwa,
            device_public_key: PublicKey::from_sec1(&dpk).map_err(|_| bad("key"))?,
            pin_public_key: PublicKey::from_sec1(&ppk).map_err(|_| bad("key"))?,
            wrapped: WrappedPinKey {
                salt: fixed(salt)?,
                nonce: fixed(nonce)?,
                ciphertext: wrapped,
                iterations: u32::try_from(it).map_err(|_| bad("iterations"))?,
            },
            device_signature: ds,
            pin_signature: ps,
            created_at_ms: to_u64(created),
        }))
    }

    pub(crate) fn clear_pending_activation(&self) -> Result<()> {
        self.conn.execute("DELETE FROM pending_activation", [])?;
        Ok(())
    }

    // ------------------------------------------------------------ device enrolment

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

    /// Replaces the new devices shown for each account pulled.
    pub(crate) fn replace_device_enrolments(
        &mut self,
        pulled: &[(AuthenticatorId, Vec<DeviceEnrolmentRow>)],
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        for (account, rows) in pulled {
            tx.execute(
                "DELETE FROM device_enrolments WHERE authenticator_id = ?1",
                [account.to_string()],
            )?;
            for r in rows {
                tx.execute(
                    "INSERT OR REPLACE INTO device_enrolments VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        account.to_string(),
                        r.enrolment_id.to_string(),
                        if r.waiting {
                            "waiting"
                        } else {
                            "awaiting_approval"
                        },
                        to_i64(r.requested_at_ms),
                        r.usable_at_ms.map(to_i64)
                    ],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The new devices being added to an account's identity, oldest first.
    pub(crate) fn device_enrolments(
        &self,
        account: &AuthenticatorId,
    ) -> Result<Vec<DeviceEnrolmentRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT enrolment_id, state, requested_at_ms, usable_at_ms FROM device_enrolments
             WHERE authenticator_id = ?1 ORDER BY requested_at_ms, enrolment_id",
        )?;
        let rows = stmt.query_map([account.to_string()], |r| {
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
        account: &AuthenticatorId,
        enrolment: &AuthenticatorId,
    ) -> Result<()> {
        self.conn.execute(
            "DELETE FROM device_enrolments WHERE authenticator_id = ?1 AND enrolment_id = ?2",
            params![account.to_string(), enrolment.to_string()],
        )?;
        Ok(())
    }
}

impl Store {
    /// Stores what a pull says about each account besides its requests: the
    /// identity's current user ID (it can change through self-service) and
    /// its open contact changes. One transaction; nothing is written when
    /// nothing changed.
    pub(crate) fn apply_account_details(
        &mut self,
        pulled: &[(AuthenticatorId, Option<&str>, &[PulledContactChange])],
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        for (id, user_id, changes) in pulled {
            let id = id.to_string();
            if let Some(user_id) = user_id {
                tx.execute(
                    "UPDATE accounts SET user_id = ?2 WHERE authenticator_id = ?1 AND user_id != ?2",
                    params![id, user_id],
                )?;
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
        tx.commit()?;
        Ok(())
    }

    /// The open contact changes stored for an account, oldest first.
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

    /// Forgets a contact change of an account (cancelled from this phone).
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
    use eid_protocol::crypto::SoftwareSigningKey;

    pub(crate) fn sample_account() -> AccountRow {
        AccountRow {
            authenticator_id: AuthenticatorId::random(),
            identity_id: IdentityId::random(),
            user_id: "Anna#2024".into(),
            server_public_key: SoftwareSigningKey::generate().public_key().clone(),
            device_key_alias: "d".into(),
            pin_wrap_alias: "w".into(),
            pin_public_key: SoftwareSigningKey::generate().public_key().clone(),
            decision_counter: 0,
            state: AccountState::Active,
            created_at_ms: 1,
        }
    }

    fn sample_wrapped() -> WrappedPinKey {
        WrappedPinKey {
            salt: [1; 32],
            nonce: [2; 12],
            ciphertext: vec![3; 40],
            iterations: 7,
        }
    }

    #[test]
    fn attempts_and_counter_survive_reopen_and_destroy_works() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("core.db");
        let a = sample_account();
        {
            let mut s = Store::open(&path).unwrap();
            s.insert_account(&a, &sample_wrapped()).unwrap();
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
        assert_eq!(s.account(&a.authenticator_id).unwrap().decision_counter, 2);
        assert_eq!(
            s.pin_key(&a.authenticator_id).unwrap(),
            Some(sample_wrapped())
        );
        s.destroy_pin_key(&a.authenticator_id).unwrap();
        assert_eq!(s.pin_key(&a.authenticator_id).unwrap(), None);
        assert_eq!(
            s.account(&a.authenticator_id).unwrap().state,
            AccountState::NeedsReactivation
        );
        s.delete_account(&a.authenticator_id).unwrap();
        assert!(s.accounts().unwrap().is_empty());
        assert_eq!(s.attempts(&a.authenticator_id).unwrap().failures, 0);
    }

    #[test]
    fn apply_pull_rewrites_only_changes() {
        use eid_protocol::{RequestEnvelopeBody, RequestId, RequestKind, ServiceProviderId};
        let mut s = Store::open_in_memory().unwrap();
        let a = sample_account();
        s.insert_account(&a, &sample_wrapped()).unwrap();
        let key = SoftwareSigningKey::generate();
        let envelope = RequestEnvelopeBody {
            request_id: RequestId::random(),
            identity_id: a.identity_id,
            kind: RequestKind::Login,
            service_provider_id: ServiceProviderId([3; 16]),
            service_provider_name: "Nordisk Bank A/S".into(),
            reference_text: "Log på".into(),
            created_at_ms: 1,
            expires_at_ms: 1_000,
            server_nonce: [4; 32],
            binding_required: false,
        };
        let signed = vec![SignedEnvelope {
            signature: key.sign(&envelope.signing_bytes()),
            envelope,
        }];
        let id = a.authenticator_id;
        s.apply_pull(&[(id, AccountState::Active, &signed)], 10, 20)
            .unwrap();
        let changes = s.conn.total_changes();
        // The same pull again writes nothing and keeps the first pull's times.
        s.apply_pull(&[(id, AccountState::Active, &signed)], 30, 40)
            .unwrap();
        assert_eq!(s.conn.total_changes(), changes);
        let rows = s.pending().unwrap();
        assert_eq!((rows.len(), rows[0].received_wall_ms), (1, 20));
        assert_eq!(rows[0].envelope, signed[0]);
        s.apply_pull(&[(id, AccountState::Blocked, &[])], 50, 60)
            .unwrap();
        assert!(s.pending().unwrap().is_empty());
        assert_eq!(s.account(&id).unwrap().state, AccountState::Blocked);
    }

    #[test]
    fn pending_enrolment_is_kept_apart_from_activation_and_cleared_by_its_account() {
        let mut s = Store::open_in_memory().unwrap();
        let a = sample_account();
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
        s.insert_enrolled_account(&a, &sample_wrapped()).unwrap();
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
        s.delete_account(&id).unwrap();
        assert!(s.device_enrolments(&id).unwrap().is_empty());
    }

    #[test]
    fn the_feed_advances_its_cursor_and_writes_nothing_when_nothing_is_new() {
        let mut store = Store::open_in_memory().unwrap();
        let a = sample_account();
        store.insert_account(&a, &sample_wrapped()).unwrap();
        let id = a.authenticator_id;
        assert_eq!(store.feed_cursors(&[id]).unwrap(), vec![0]);
        let event = |event_id, kind| FeedEvent {
            event_id,
            kind,
            occurred_at_ms: event_id * 10,
            authenticator_id: Some(id),
            detail: Some("Nordisk Bank A/S".into()),
        };
        let first = [
            event(3, SecurityEventKind::DeviceActivated),
            event(5, SecurityEventKind::Unknown),
        ];
        store.apply_feed(&[(id, &first, false)]).unwrap();
        assert_eq!(store.feed_cursors(&[id]).unwrap(), vec![5]);
        let feed = store.feed(&id).unwrap();
        assert_eq!(
            feed.iter().map(|e| e.event_id).collect::<Vec<_>>(),
            vec![5, 3]
        );
        assert_eq!(feed[0].kind, SecurityEventKind::Unknown);
        assert_eq!(feed[1].authenticator_id, Some(id));
        // A repeat of old events (an old server ignoring the cursor) is ignored.
        let changes = store.conn.total_changes();
        store.apply_feed(&[(id, &first, false)]).unwrap();
        assert_eq!(
            store.conn.total_changes(),
            changes,
            "nothing new, nothing written"
        );
        // The setting alone is a change.
        store.apply_feed(&[(id, &[], true)]).unwrap();
        assert!(store.notify_every_use(&id).unwrap());
        assert_eq!(store.feed_cursors(&[id]).unwrap(), vec![5]);
        // The oldest go beyond the cap.
        let many: Vec<FeedEvent> = (6..(6 + MAX_STORED_FEED_EVENTS as u64 + 10))
            .map(|i| event(i, SecurityEventKind::Used))
            .collect();
        store.apply_feed(&[(id, &many, true)]).unwrap();
        let feed = store.feed(&id).unwrap();
        assert_eq!(feed.len() as i64, MAX_STORED_FEED_EVENTS);
        assert_eq!(feed[0].event_id, 5 + MAX_STORED_FEED_EVENTS as u64 + 10);
        // Removing the account removes its feed.
        store.delete_account(&id).unwrap();
        assert!(store.feed(&id).unwrap().is_empty());
    }

    #[test]
    fn account_details_follow_the_pull_and_vanish_with_the_account() {
        use eid_protocol::wire::{ChangeState, ContactChannel};
        let mut s = Store::open_in_memory().unwrap();
        let a = sample_account();
        s.insert_account(&a, &sample_wrapped()).unwrap();
        let change = PulledContactChange {
            change_id: ChangeId([5; 16]),
            channel: ContactChannel::Phone,
            new_value_masked: "+45••••••78".into(),
            state: ChangeState::WaitingSecondLogin,
            earliest_completion_at_ms: Some(7_200_000),
            created_at_ms: 3_600_000,
        };
        let id = a.authenticator_id;
        s.apply_account_details(&[(id, Some("Ny#Bruger1"), std::slice::from_ref(&change))])
            .unwrap();
        assert_eq!(s.account(&id).unwrap().user_id, "Ny#Bruger1");
        assert_eq!(s.contact_changes(&id).unwrap(), vec![change.clone()]);
        // An older server sends no user ID: the stored one stays.
        s.apply_account_details(&[(id, None, &[])]).unwrap();
        assert_eq!(s.account(&id).unwrap().user_id, "Ny#Bruger1");
        assert!(s.contact_changes(&id).unwrap().is_empty());
        s.apply_account_details(&[(id, None, std::slice::from_ref(&change))])
            .unwrap();
        s.delete_contact_change(&id, &change.change_id).unwrap();
        assert!(s.contact_changes(&id).unwrap().is_empty());
        s.apply_account_details(&[(id, None, std::slice::from_ref(&change))])
            .unwrap();
        s.delete_account(&id).unwrap();
        assert_eq!(s.contact_changes(&id).unwrap(), vec![]);
    }

    #[test]
    fn in_memory_opens() {
        let s = Store::open_in_memory().unwrap();
        assert!(s.pending().unwrap().is_empty());
        assert!(s.pending_activation().unwrap().is_none());
    }

    #[test]
    fn relaxed_commits_restore_full_durability() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("core.db")).unwrap();
        let sync = |s: &Store| -> i64 {
            s.conn
                .query_row("PRAGMA synchronous", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(sync(&s), 2);
        s.without_fsync(|s| {
            assert_eq!(sync(s), 1);
            Ok(())
        })
        .unwrap();
        assert_eq!(sync(&s), 2);
        let failed: Result<()> = s.without_fsync(|_| Err(Error::UnknownAccount));
        assert!(failed.is_err());
        assert_eq!(sync(&s), 2);
    }

    #[test]
    fn pin_attempts_are_never_counted_without_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("core.db")).unwrap();
        let a = sample_account();
        s.insert_account(&a, &sample_wrapped()).unwrap();
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

    fn sample_submit(a: &AccountRow, request_id: RequestId, counter: u64) -> SubmitDecisionRequest {
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
            },
            device_signature: eid_protocol::Signature(vec![0x30, 0x00]),
            pin_signature: None,
        }
    }

    #[test]
    fn a_decision_is_stored_only_with_the_counter_it_was_signed_with() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("core.db")).unwrap();
        let a = sample_account();
        s.insert_account(&a, &sample_wrapped()).unwrap();
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
        assert_eq!(s.account(id).unwrap().decision_counter, counter);
    }
}
