//! SQLite backend: WAL, `synchronous=FULL`, one writer thread with group commit,
//! and a small pool of reader connections.
//!
//! Every write runs as a job on the writer thread inside a savepoint of the
//! current batch transaction; the batch commits once (one fsync for many jobs)
//! and only then are the callers answered. So an acknowledged approval or
//! activation-code use is durable, and writes are serialized, which makes every
//! check-and-set (exactly one decision per request) atomic.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use eid_protocol::wire::{RequestStatus, SignedReceipt};
use eid_protocol::{
    AuthenticatorId, IdentityId, Nonce16, Outcome, PublicKey, RequestEnvelopeBody, RequestId,
    ServiceProviderId, Signature,
};
use rusqlite::{Connection, OptionalExtension, Row, params};
use rusqlite_migration::{M, Migrations};
use tokio::sync::oneshot;

use super::*;

/// Self-service changes one identity may start per hour; further starts are
/// answered like an unknown user ID.
const MAX_CHANGE_STARTS_PER_HOUR: i64 = 3;
/// Most jobs in one commit batch.
const MAX_BATCH: usize = 256;
/// Reader connections.
const READERS: usize = 4;

type Reply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> Reply + Send>;

/// The SQLite store.
pub struct SqliteStore {
    writer: tokio::sync::mpsc::Sender<Job>,
    readers: Arc<Mutex<Vec<Connection>>>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(
            r#"
        CREATE TABLE identities (
            id BLOB PRIMARY KEY NOT NULL,
            user_id TEXT NOT NULL,
            user_id_folded TEXT NOT NULL UNIQUE,
            display_name TEXT,
            blocked INTEGER NOT NULL DEFAULT 0,
            created_at_ms INTEGER NOT NULL
        );
        CREATE TABLE activation_codes (
            identity_id BLOB PRIMARY KEY NOT NULL REFERENCES identities(id),
            code_sha256 BLOB NOT NULL,
            created_at_ms INTEGER NOT NULL,
            expires_at_ms INTEGER NOT NULL,
            tries INTEGER NOT NULL DEFAULT 0,
            used INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE authenticators (
            id BLOB PRIMARY KEY NOT NULL,
            identity_id BLOB NOT NULL REFERENCES identities(id),
            device_public_key BLOB NOT NULL,
            pin_public_key BLOB NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('active', 'locked')),
            failed_pin_count INTEGER NOT NULL DEFAULT 0,
            last_counter INTEGER NOT NULL DEFAULT 0,
            activated_at_ms INTEGER NOT NULL
        );
        CREATE INDEX authenticators_by_identity ON authenticators(identity_id);
        CREATE TABLE service_providers (
            id BLOB PRIMARY KEY NOT NULL,
            name TEXT NOT NULL,
            api_key_sha256 BLOB NOT NULL UNIQUE,
            created_at_ms INTEGER NOT NULL
        );
        CREATE TABLE requests (
            id BLOB PRIMARY KEY NOT NULL,
            identity_id BLOB NOT NULL REFERENCES identities(id),
            service_provider_id BLOB NOT NULL REFERENCES service_providers(id),
            envelope TEXT NOT NULL,
            envelope_signature BLOB NOT NULL,
            binding_code TEXT,
            status TEXT NOT NULL CHECK (status IN
                ('pending', 'approved', 'denied', 'fraud_reported', 'cancelled')),
            created_at_ms INTEGER NOT NULL,
            expires_at_ms INTEGER NOT NULL
        );
        CREATE INDEX requests_pending ON requests(identity_id, expires_at_ms)
            WHERE status = 'pending';
        CREATE TABLE decisions (
            request_id BLOB PRIMARY KEY NOT NULL REFERENCES requests(id),
            authenticator_id BLOB NOT NULL REFERENCES authenticators(id),
            outcome TEXT NOT NULL,
            counter INTEGER NOT NULL,
            decision_sha256 BLOB NOT NULL,
            receipt TEXT NOT NULL,
            decided_at_ms INTEGER NOT NULL
        );
        CREATE TABLE nonces (
            nonce BLOB PRIMARY KEY NOT NULL,
            keep_until_ms INTEGER NOT NULL
        ) WITHOUT ROWID;
        "#,
        ),
        // v2: wrong login-screen codes per request (cancelled after a few).
        M::up("ALTER TABLE requests ADD COLUMN binding_failures INTEGER NOT NULL DEFAULT 0;"),
        // v3: contact data, the "notify me on every use" opt-in, the built-in
        // self-service provider, and the security-event outbox: each event row
        // is written in the same transaction as what caused it (so the app's
        // feed, which reads it, never misses one), with one delivery row per
        // out-of-band channel that the dispatcher works off.
        M::up(
            r#"
        ALTER TABLE identities ADD COLUMN phone TEXT;
        ALTER TABLE identities ADD COLUMN email TEXT;
        ALTER TABLE identities ADD COLUMN notify_every_use INTEGER NOT NULL DEFAULT 0;
        INSERT INTO service_providers (id, name, api_key_sha256, created_at_ms)
            VALUES (zeroblob(16), 'eID Selvbetjening', zeroblob(32), 0);
        CREATE TABLE security_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            identity_id BLOB NOT NULL REFERENCES identities(id),
            kind TEXT NOT NULL,
            authenticator_id BLOB,
            detail TEXT,
            occurred_at_ms INTEGER NOT NULL
        );
        CREATE INDEX security_events_by_identity ON security_events(identity_id, id);
        CREATE TABLE event_deliveries (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id INTEGER NOT NULL REFERENCES security_events(id),
            channel TEXT NOT NULL CHECK (channel IN ('sms', 'email')),
            address TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_ms INTEGER NOT NULL,
            delivered_at_ms INTEGER,
            last_error TEXT
        );
        CREATE INDEX event_deliveries_due ON event_deliveries(next_attempt_ms)
            WHERE delivered_at_ms IS NULL;
        "#,
        ),
        // v4: new devices added from an existing device. The id is the
        // authenticator id the new device gets; identity_id is NULL for a
        // decoy (answered like a real enrolment, never approvable).
        M::up(
            r#"
        CREATE TABLE device_enrolments (
            id BLOB PRIMARY KEY NOT NULL,
            identity_id BLOB REFERENCES identities(id),
            request_id BLOB REFERENCES requests(id),
            device_public_key BLOB NOT NULL,
            pin_public_key BLOB NOT NULL,
            code TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN
                ('awaiting_approval', 'waiting', 'activated', 'cancelled')),
            requested_at_ms INTEGER NOT NULL,
            expires_at_ms INTEGER NOT NULL,
            wait_ms INTEGER NOT NULL,
            usable_at_ms INTEGER,
            closed_at_ms INTEGER
        );
        CREATE INDEX device_enrolments_by_identity
            ON device_enrolments(identity_id, requested_at_ms);
        CREATE INDEX device_enrolments_by_request ON device_enrolments(request_id)
            WHERE request_id IS NOT NULL;
        CREATE INDEX device_enrolments_by_key ON device_enrolments(device_public_key);
        "#,
        ),
        // v5: self-service changes (phone, e-mail, user ID). A change moves
        // through its self-service login requests; the decision that approves
        // or refuses one updates the change in the same transaction.
        M::up(
            r#"
        CREATE TABLE self_service_changes (
            id BLOB PRIMARY KEY NOT NULL,
            identity_id BLOB NOT NULL REFERENCES identities(id),
            kind TEXT NOT NULL CHECK (kind IN ('phone', 'email', 'user_id')),
            new_value TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('awaiting_first_login', 'waiting_second_login',
                'awaiting_second_login', 'completed', 'cancelled', 'expired', 'failed')),
            gap_ms INTEGER NOT NULL,
            created_at_ms INTEGER NOT NULL,
            first_request_id BLOB NOT NULL UNIQUE REFERENCES requests(id),
            first_expires_at_ms INTEGER NOT NULL,
            first_login_at_ms INTEGER,
            earliest_second_login_at_ms INTEGER,
            second_request_id BLOB UNIQUE REFERENCES requests(id),
            second_expires_at_ms INTEGER,
            failure_code TEXT,
            failure_message TEXT,
            closed_at_ms INTEGER
        );
        CREATE INDEX self_service_changes_open ON self_service_changes(identity_id)
            WHERE state IN ('awaiting_first_login', 'waiting_second_login', 'awaiting_second_login');
        "#,
        ),
        // v6: flood limits. Sliding-window counts of request creation per
        // identity and per relying party, and the cool-down after a fraud
        // report: one row per (identity, provider), set by the report.
        M::up(
            r#"
        CREATE INDEX requests_by_identity_created ON requests(identity_id, created_at_ms);
        CREATE INDEX requests_by_provider_created ON requests(service_provider_id, created_at_ms);
        CREATE TABLE fraud_holds (
            identity_id BLOB NOT NULL REFERENCES identities(id),
            service_provider_id BLOB NOT NULL REFERENCES service_providers(id),
            reported_at_ms INTEGER NOT NULL,
            notified INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (identity_id, service_provider_id)
        ) WITHOUT ROWID;
        "#,
        ),
        // v7: the identity on each decision, indexed, so a pull reads the
        // identity's newest decisions (device journal) in O(50) instead of
        // joining every request the identity ever had.
        M::up(
            r#"
        ALTER TABLE decisions ADD COLUMN identity_id BLOB;
        UPDATE decisions SET identity_id =
            (SELECT r.identity_id FROM requests r WHERE r.id = decisions.request_id);
        CREATE INDEX decisions_by_identity ON decisions(identity_id);
        "#,
        ),
    ])
}

fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating and migrating) the database file.
    pub fn open(path: &Path) -> StoreResult<Self> {
        let mut writer_conn = open_connection(path)?;
        migrations()
            .to_latest(&mut writer_conn)
            .map_err(|e| StoreError::Backend(format!("migration failed: {e}")))?;
        let readers = (0..READERS)
            .map(|_| {
                let c = open_connection(path)?;
                c.pragma_update(None, "query_only", "ON")?;
                Ok(c)
            })
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Job>(4096);
        std::thread::Builder::new()
            .name("eid-sqlite-writer".into())
            .spawn(move || writer_loop(writer_conn, rx))
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        Ok(Self {
            writer: tx,
            readers: Arc::new(Mutex::new(readers)),
            path: path.to_owned(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in a savepoint of the next commit batch; answers after commit.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (tx, rx) = oneshot::channel::<StoreResult<T>>();
        let job: Job = Box::new(move |conn: &Connection| {
            let result = in_savepoint(conn, f);
            Box::new(move |commit: Result<(), StoreError>| {
                let _ = tx.send(commit.and(result));
            })
        });
        // The channel is bounded: a full queue applies back-pressure.
        self.writer
            .send(job)
            .await
            .map_err(|_| StoreError::Backend("writer stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Backend("writer dropped a job".into()))?
    }

    /// Runs `f` on a reader connection.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        // Reads are short indexed look-ups (tens of microseconds); running them
        // inline on the async worker is cheaper than a blocking-pool hand-off,
        // which measured as the largest non-crypto cost under load.
        let pooled = self
            .readers
            .lock()
            .map_err(|_| StoreError::Backend("pool poisoned".into()))?
            .pop();
        let conn = match pooled {
            Some(c) => c,
            None => open_connection(&self.path)?,
        };
        let result = f(&conn);
        if conn.is_autocommit()
            && let Ok(mut pool) = self.readers.lock()
            && pool.len() < READERS * 4
        {
            pool.push(conn);
        }
        result
    }
}

impl SqliteStore {
    /// Runs a multi-statement read in one read transaction: one consistent
    /// snapshot, and one WAL look-up instead of one per statement.
    async fn read_consistent<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.read(move |c| {
            run(c, "BEGIN DEFERRED")?;
            let result = f(c);
            // A read-only transaction: COMMIT and ROLLBACK are the same. If
            // it cannot end, the connection must not go back to the pool with
            // a frozen snapshot: `read` drops connections that are still in a
            // transaction.
            if run(c, "COMMIT").is_err() {
                let _ = run(c, "ROLLBACK");
            }
            result
        })
        .await
    }
}

/// Runs a transaction-control statement through the statement cache; these
/// run several times per request, and `execute_batch` would parse them anew.
fn run(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    run(conn, "SAVEPOINT job")?;
    match f(conn) {
        Ok(v) => {
            run(conn, "RELEASE job")?;
            Ok(v)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
            Err(e)
        }
    }
}

fn writer_loop(conn: Connection, mut rx: tokio::sync::mpsc::Receiver<Job>) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = run(&conn, "BEGIN IMMEDIATE") {
            // Jobs must not run outside a transaction. Dropping them drops their
            // reply channels, so each caller gets a backend error.
            tracing::error!(error = %e, "could not begin a write transaction");
            drop(batch);
            continue;
        }
        let replies: Vec<Reply> = batch.into_iter().map(|job| job(&conn)).collect();
        let commit = run(&conn, "COMMIT").map_err(StoreError::from);
        if commit.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for reply in replies {
            let c = match &commit {
                Ok(()) => Ok(()),
                Err(e) => Err(StoreError::Backend(e.to_string())),
            };
            reply(c);
        }
    }
}

// ---------------------------------------------------------------- row mapping

fn blob16(row: &Row<'_>, idx: usize) -> rusqlite::Result<[u8; 16]> {
    let v: Vec<u8> = row.get(idx)?;
    v.try_into()
        .map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, 16))
}

fn blob32(row: &Row<'_>, idx: usize) -> rusqlite::Result<[u8; 32]> {
    let v: Vec<u8> = row.get(idx)?;
    v.try_into()
        .map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, 32))
}

fn pubkey(row: &Row<'_>, idx: usize) -> rusqlite::Result<PublicKey> {
    let v: Vec<u8> = row.get(idx)?;
    PublicKey::from_sec1(&v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, 65))
}

fn u64_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let v: i64 = row.get(idx)?;
    u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, v))
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

const IDENTITY_COLUMNS: &str = "id, user_id, user_id_folded, display_name, blocked, created_at_ms, \
     phone, email, notify_every_use";

fn identity_row(row: &Row<'_>) -> rusqlite::Result<Identity> {
    Ok(Identity {
        id: IdentityId(blob16(row, 0)?),
        user_id: row.get(1)?,
        user_id_folded: row.get(2)?,
        display_name: row.get(3)?,
        blocked: row.get(4)?,
        created_at_ms: u64_at(row, 5)?,
        phone: row.get(6)?,
        email: row.get(7)?,
        notify_every_use: row.get(8)?,
    })
}

/// Records a security event in the outbox, inside the caller's transaction:
/// the event row (the app's feed) and one delivery row per out-of-band
/// address: the identity's phone and e-mail as stored now, plus the event's
/// extra recipients (for example the new contact of a change). Returns the
/// event id.
pub(super) fn insert_event(c: &Connection, event: &NewEvent) -> rusqlite::Result<u64> {
    let identity = event.identity_id.as_bytes().as_slice();
    let id: i64 = c
        .prepare_cached(
            "INSERT INTO security_events (identity_id, kind, authenticator_id, detail, occurred_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
        )?
        .query_row(
            params![
                identity,
                event.kind.as_str(),
                event.authenticator_id.as_ref().map(|a| a.as_bytes().to_vec()),
                event.detail,
                i64_of(event.occurred_at_ms)
            ],
            |r| r.get(0),
        )?;
    let (phone, email): (Option<String>, Option<String>) = c
        .prepare_cached("SELECT phone, email FROM identities WHERE id = ?1")?
        .query_row(params![identity], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let mut recipients: Vec<Recipient> = Vec::with_capacity(2 + event.extra_recipients.len());
    recipients.extend(phone.map(Recipient::Sms));
    recipients.extend(email.map(Recipient::Email));
    for extra in &event.extra_recipients {
        if !recipients.contains(extra) {
            recipients.push(extra.clone());
        }
    }
    let mut insert = c.prepare_cached(
        "INSERT INTO event_deliveries (event_id, channel, address, next_attempt_ms) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for recipient in recipients {
        let (channel, address) = match recipient {
            Recipient::Sms(a) => ("sms", a),
            Recipient::Email(a) => ("email", a),
        };
        insert.execute(params![id, channel, address, i64_of(event.occurred_at_ms)])?;
    }
    Ok(id as u64)
}

const EVENT_COLUMNS: &str = "id, kind, authenticator_id, detail, occurred_at_ms";

fn event_row(row: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    let kind: String = row.get(1)?;
    Ok(StoredEvent {
        id: u64_at(row, 0)?,
        kind: SecurityEventKind::parse(&kind).unwrap_or(SecurityEventKind::Unknown),
        authenticator_id: row
            .get::<_, Option<Vec<u8>>>(2)?
            .map(|v| {
                <[u8; 16]>::try_from(v)
                    .map(AuthenticatorId)
                    .map_err(|_| rusqlite::Error::IntegralValueOutOfRange(2, 16))
            })
            .transpose()?,
        detail: row.get(3)?,
        occurred_at_ms: u64_at(row, 4)?,
    })
}

const AUTHENTICATOR_COLUMNS: &str = "id, identity_id, device_public_key, pin_public_key, state, \
     failed_pin_count, last_counter, activated_at_ms";

fn authenticator_row(row: &Row<'_>) -> rusqlite::Result<Authenticator> {
    let state: String = row.get(4)?;
    Ok(Authenticator {
        id: AuthenticatorId(blob16(row, 0)?),
        identity_id: IdentityId(blob16(row, 1)?),
        device_public_key: pubkey(row, 2)?,
        pin_public_key: pubkey(row, 3)?,
        state: if state == "active" {
            AuthenticatorState::Active
        } else {
            AuthenticatorState::Locked
        },
        failed_pin_count: row.get(5)?,
        last_counter: u64_at(row, 6)?,
        activated_at_ms: u64_at(row, 7)?,
    })
}

const ENROLMENT_COLUMNS: &str = "id, identity_id, request_id, device_public_key, pin_public_key, \
     code, state, requested_at_ms, expires_at_ms, wait_ms, usable_at_ms";

fn enrolment_state_text(s: EnrolmentStoredState) -> &'static str {
    match s {
        EnrolmentStoredState::AwaitingApproval => "awaiting_approval",
        EnrolmentStoredState::Waiting => "waiting",
        EnrolmentStoredState::Activated => "activated",
        EnrolmentStoredState::Cancelled => "cancelled",
    }
}

fn enrolment_row(row: &Row<'_>) -> rusqlite::Result<Enrolment> {
    let state: String = row.get(6)?;
    Ok(Enrolment {
        id: AuthenticatorId(blob16(row, 0)?),
        identity_id: match row.get::<_, Option<Vec<u8>>>(1)? {
            Some(_) => Some(IdentityId(blob16(row, 1)?)),
            None => None,
        },
        request_id: match row.get::<_, Option<Vec<u8>>>(2)? {
            Some(_) => Some(RequestId(blob16(row, 2)?)),
            None => None,
        },
        device_public_key: pubkey(row, 3)?,
        pin_public_key: pubkey(row, 4)?,
        code: row.get(5)?,
        state: match state.as_str() {
            "awaiting_approval" => EnrolmentStoredState::AwaitingApproval,
            "waiting" => EnrolmentStoredState::Waiting,
            "activated" => EnrolmentStoredState::Activated,
            _ => EnrolmentStoredState::Cancelled,
        },
        requested_at_ms: u64_at(row, 7)?,
        expires_at_ms: u64_at(row, 8)?,
        wait_ms: u64_at(row, 9)?,
        usable_at_ms: match row.get::<_, Option<i64>>(10)? {
            Some(_) => Some(u64_at(row, 10)?),
            None => None,
        },
    })
}

fn load_enrolment(conn: &Connection, id: &AuthenticatorId) -> StoreResult<Option<Enrolment>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ENROLMENT_COLUMNS} FROM device_enrolments WHERE id = ?1"
    ))?;
    Ok(stmt
        .query_row(params![id.as_bytes().as_slice()], enrolment_row)
        .optional()?)
}

/// SQL condition (on `e`, a `device_enrolments` row, and `?now`) of an
/// enrolment that is still live: waiting, or awaiting approval with its
/// request pending and unexpired.
const LIVE_ENROLMENT: &str = "(e.state = 'waiting' OR (e.state = 'awaiting_approval' AND EXISTS \
     (SELECT 1 FROM requests r WHERE r.id = e.request_id AND r.status = 'pending' AND r.expires_at_ms > ?2)))";

fn insert_enrolment(c: &Connection, e: &Enrolment) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO device_enrolments (id, identity_id, request_id, device_public_key, pin_public_key, \
         code, state, requested_at_ms, expires_at_ms, wait_ms, usable_at_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        e.id.as_bytes().as_slice(),
        e.identity_id.as_ref().map(|i| i.as_bytes().to_vec()),
        e.request_id.as_ref().map(|r| r.as_bytes().to_vec()),
        e.device_public_key.as_bytes().as_slice(),
        e.pin_public_key.as_bytes().as_slice(),
        e.code,
        enrolment_state_text(e.state),
        i64_of(e.requested_at_ms),
        i64_of(e.expires_at_ms),
        i64_of(e.wait_ms),
        e.usable_at_ms.map(i64_of)
    ])?;
    Ok(())
}

fn close_enrolment(c: &Connection, id: &AuthenticatorId, now_ms: u64) -> rusqlite::Result<()> {
    c.prepare_cached(
        "UPDATE device_enrolments SET state = 'cancelled', closed_at_ms = ?2 WHERE id = ?1",
    )?
    .execute(params![id.as_bytes().as_slice(), i64_of(now_ms)])?;
    Ok(())
}

fn event(
    identity_id: IdentityId,
    kind: SecurityEventKind,
    authenticator_id: AuthenticatorId,
    now_ms: u64,
) -> NewEvent {
    NewEvent {
        identity_id,
        kind,
        authenticator_id: Some(authenticator_id),
        detail: None,
        occurred_at_ms: now_ms,
        extra_recipients: Vec::new(),
    }
}

fn status_text(s: RequestStatus) -> &'static str {
    match s {
        RequestStatus::Approved => "approved",
        RequestStatus::Denied => "denied",
        RequestStatus::FraudReported => "fraud_reported",
        RequestStatus::Cancelled => "cancelled",
        _ => "pending",
    }
}

fn status_of(text: &str) -> RequestStatus {
    match text {
        "approved" => RequestStatus::Approved,
        "denied" => RequestStatus::Denied,
        "fraud_reported" => RequestStatus::FraudReported,
        "cancelled" => RequestStatus::Cancelled,
        _ => RequestStatus::Pending,
    }
}

fn outcome_text(o: Outcome) -> &'static str {
    match o {
        Outcome::Approve => "approve",
        Outcome::Deny => "deny",
        _ => "report_fraud",
    }
}

fn outcome_of(text: &str) -> Outcome {
    match text {
        "approve" => Outcome::Approve,
        "deny" => Outcome::Deny,
        _ => Outcome::ReportFraud,
    }
}

const REQUEST_SELECT: &str = "SELECT r.envelope, r.envelope_signature, r.binding_code, r.status, \
     d.authenticator_id, d.outcome, d.counter, d.decision_sha256, d.receipt, d.decided_at_ms \
     FROM requests r LEFT JOIN decisions d ON d.request_id = r.id";

fn json_err(idx: usize, e: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
}

fn request_row(row: &Row<'_>) -> rusqlite::Result<StoredRequest> {
    let envelope_json: String = row.get(0)?;
    let envelope: RequestEnvelopeBody =
        serde_json::from_str(&envelope_json).map_err(|e| json_err(0, e))?;
    let sig: Vec<u8> = row.get(1)?;
    let status: String = row.get(3)?;
    let decision = match row.get::<_, Option<Vec<u8>>>(4)? {
        None => None,
        Some(_) => {
            let receipt_json: String = row.get(8)?;
            let receipt: SignedReceipt =
                serde_json::from_str(&receipt_json).map_err(|e| json_err(8, e))?;
            let outcome: String = row.get(5)?;
            Some(DecisionRecord {
                authenticator_id: AuthenticatorId(blob16(row, 4)?),
                outcome: outcome_of(&outcome),
                counter: u64_at(row, 6)?,
                decision_sha256: blob32(row, 7)?,
                receipt,
                decided_at_ms: u64_at(row, 9)?,
            })
        }
    };
    Ok(StoredRequest {
        envelope,
        envelope_signature: Signature(sig),
        binding_code: row.get(2)?,
        status: status_of(&status),
        decision,
    })
}

fn load_request(conn: &Connection, id: &RequestId) -> StoreResult<Option<StoredRequest>> {
    let mut stmt = conn.prepare_cached(&format!("{REQUEST_SELECT} WHERE r.id = ?1"))?;
    Ok(stmt
        .query_row(params![id.as_bytes().as_slice()], request_row)
        .optional()?)
}

fn load_authenticator(
    conn: &Connection,
    id: &AuthenticatorId,
) -> StoreResult<Option<Authenticator>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {AUTHENTICATOR_COLUMNS} FROM authenticators WHERE id = ?1"
    ))?;
    Ok(stmt
        .query_row(params![id.as_bytes().as_slice()], authenticator_row)
        .optional()?)
}

fn load_identity(conn: &Connection, id: &IdentityId) -> StoreResult<Option<Identity>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {IDENTITY_COLUMNS} FROM identities WHERE id = ?1"
    ))?;
    Ok(stmt
        .query_row(params![id.as_bytes().as_slice()], identity_row)
        .optional()?)
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
        || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

/// A decision on a new-device request moves its enrolment, in the decision's
/// transaction: approval starts the waiting period, deny or report-fraud
/// cancels. Other requests have no enrolment (one indexed look-up).
fn decide_enrolment(
    c: &Connection,
    request_id: &RequestId,
    record: &DecisionRecord,
) -> rusqlite::Result<()> {
    let now = record.decided_at_ms;
    let approved = record.outcome == Outcome::Approve;
    let sql = if approved {
        "UPDATE device_enrolments SET state = 'waiting', usable_at_ms = ?2 + wait_ms \
         WHERE request_id = ?1 AND state = 'awaiting_approval' RETURNING id, identity_id"
    } else {
        "UPDATE device_enrolments SET state = 'cancelled', closed_at_ms = ?2 \
         WHERE request_id = ?1 AND state = 'awaiting_approval' RETURNING id, identity_id"
    };
    let moved = c
        .prepare_cached(sql)?
        .query_row(
            params![request_id.as_bytes().as_slice(), i64_of(now)],
            |r| Ok((AuthenticatorId(blob16(r, 0)?), IdentityId(blob16(r, 1)?))),
        )
        .optional()?;
    if let Some((enrolment_id, identity_id)) = moved {
        let kind = if approved {
            SecurityEventKind::NewDeviceApproved
        } else {
            SecurityEventKind::NewDeviceCancelled
        };
        insert_event(c, &event(identity_id, kind, enrolment_id, now))?;
    }
    Ok(())
}

/// Counts the devices of an identity toward the cap: active authenticators
/// plus live enrolments (other than `except`).
fn count_devices(
    c: &Connection,
    identity_id: &IdentityId,
    except: &AuthenticatorId,
    now_ms: u64,
) -> rusqlite::Result<u64> {
    let active: i64 = c
        .prepare_cached(
            "SELECT COUNT(*) FROM authenticators WHERE identity_id = ?1 AND state = 'active'",
        )?
        .query_row(params![identity_id.as_bytes().as_slice()], |r| r.get(0))?;
    let live: i64 = c
        .prepare_cached(&format!(
            "SELECT COUNT(*) FROM device_enrolments e WHERE e.identity_id = ?1 AND {LIVE_ENROLMENT} AND e.id != ?3"
        ))?
        .query_row(
            params![identity_id.as_bytes().as_slice(), i64_of(now_ms), except.as_bytes().as_slice()],
            |r| r.get(0),
        )?;
    Ok(u64::try_from(active + live).unwrap_or(u64::MAX))
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_identity(&self, identity: Identity) -> StoreResult<()> {
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO identities (id, user_id, user_id_folded, display_name, blocked, created_at_ms, \
                 phone, email, notify_every_use) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                identity.id.as_bytes().as_slice(),
                identity.user_id,
                identity.user_id_folded,
                identity.display_name,
                identity.blocked,
                i64_of(identity.created_at_ms),
                identity.phone,
                identity.email,
                identity.notify_every_use
            ])
            .map_err(|e| if is_unique_violation(&e) { StoreError::Conflict("user_id") } else { e.into() })?;
            Ok(())
        })
        .await
    }

    async fn identity(&self, id: IdentityId) -> StoreResult<Option<Identity>> {
        self.read(move |c| load_identity(c, &id)).await
    }

    async fn identity_by_user_id(&self, user_id_folded: &str) -> StoreResult<Option<Identity>> {
        let folded = user_id_folded.to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {IDENTITY_COLUMNS} FROM identities WHERE user_id_folded = ?1"
            ))?;
            Ok(stmt.query_row(params![folded], identity_row).optional()?)
        })
        .await
    }

    async fn set_blocked(
        &self,
        id: IdentityId,
        blocked: bool,
        now_ms: u64,
    ) -> StoreResult<Option<Vec<RequestId>>> {
        self.write(move |c| {
            let Some(was_blocked) = c
                .prepare_cached("SELECT blocked FROM identities WHERE id = ?1")?
                .query_row(params![id.as_bytes().as_slice()], |r| r.get::<_, bool>(0))
                .optional()?
            else {
                return Ok(None);
            };
            if was_blocked != blocked {
                c.prepare_cached("UPDATE identities SET blocked = ?2 WHERE id = ?1")?
                    .execute(params![id.as_bytes().as_slice(), blocked])?;
                insert_event(
                    c,
                    &NewEvent {
                        identity_id: id,
                        kind: if blocked {
                            SecurityEventKind::IdentityBlocked
                        } else {
                            SecurityEventKind::IdentityUnblocked
                        },
                        authenticator_id: None,
                        detail: None,
                        occurred_at_ms: now_ms,
                        extra_recipients: Vec::new(),
                    },
                )?;
            }
            let mut cancelled = Vec::new();
            if blocked {
                let mut stmt = c.prepare_cached(
                    "UPDATE requests SET status = 'cancelled' WHERE identity_id = ?1 AND status = 'pending' RETURNING id",
                )?;
                let rows = stmt.query_map(params![id.as_bytes().as_slice()], |r| blob16(r, 0))?;
                for r in rows {
                    cancelled.push(RequestId(r?));
                }
                // A new device being added must never arrive on a blocked
                // identity, not even after an unblock.
                c.prepare_cached(
                    "UPDATE device_enrolments SET state = 'cancelled' \
                     WHERE identity_id = ?1 AND state IN ('awaiting_approval', 'waiting')",
                )?
                .execute(params![id.as_bytes().as_slice()])?;
                // A block also ends the person's open self-service changes.
                c.prepare_cached(&format!(
                    "UPDATE self_service_changes SET state = 'cancelled' \
                     WHERE identity_id = ?1 AND state IN {OPEN_STATES_SQL}"
                ))?
                .execute(params![id.as_bytes().as_slice()])?;
            }
            Ok(Some(cancelled))
        })
        .await
    }

    async fn set_notify_every_use(&self, id: IdentityId, on: bool) -> StoreResult<bool> {
        self.write(move |c| {
            let n = c
                .prepare_cached("UPDATE identities SET notify_every_use = ?2 WHERE id = ?1")?
                .execute(params![id.as_bytes().as_slice(), on])?;
            Ok(n == 1)
        })
        .await
    }

    async fn claim_deliveries(
        &self,
        channels: Vec<Channel>,
        now_ms: u64,
        limit: u32,
        lease_ms: u64,
        max_attempts: u32,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        if channels.is_empty() {
            return Ok(Vec::new());
        }
        // Most polls find nothing: ask a reader first, so an idle dispatcher
        // never queues behind (or delays) the writer.
        let due = self
            .read(move |c| {
                Ok(c.prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM event_deliveries \
                     WHERE delivered_at_ms IS NULL AND next_attempt_ms <= ?1)",
                )?
                .query_row(params![i64_of(now_ms)], |r| r.get::<_, bool>(0))?)
            })
            .await?;
        if !due {
            return Ok(Vec::new());
        }
        self.write(move |c| {
            // Due rows through the partial index on next_attempt_ms.
            let mut stmt = c.prepare_cached(&format!(
                "SELECT d.id, d.channel, d.address, d.attempts,                  e.id, e.kind, e.authenticator_id, e.detail, e.occurred_at_ms                  FROM event_deliveries d JOIN security_events e ON e.id = d.event_id                  WHERE d.delivered_at_ms IS NULL AND d.next_attempt_ms <= ?1 AND d.attempts < ?2                  AND d.channel IN ({}) ORDER BY d.next_attempt_ms, d.id LIMIT ?3",
                channels
                    .iter()
                    .map(|ch| format!("'{}'", ch.as_str()))
                    .collect::<Vec<_>>()
                    .join(",")
            ))?;
            let rows = stmt.query_map(params![i64_of(now_ms), max_attempts, limit], |r| {
                let channel: String = r.get(1)?;
                let event = StoredEvent {
                    id: u64_at(r, 4)?,
                    kind: SecurityEventKind::parse(&r.get::<_, String>(5)?)
                        .unwrap_or(SecurityEventKind::Unknown),
                    authenticator_id: r
                        .get::<_, Option<Vec<u8>>>(6)?
                        .and_then(|v| <[u8; 16]>::try_from(v).ok())
                        .map(AuthenticatorId),
                    detail: r.get(7)?,
                    occurred_at_ms: u64_at(r, 8)?,
                };
                Ok((u64_at(r, 0)?, channel, r.get::<_, String>(2)?, r.get::<_, u32>(3)?, event))
            })?;
            let mut claimed = Vec::new();
            for row in rows {
                let (id, channel, address, attempts, event) = row?;
                let Some(channel) = Channel::parse(&channel) else { continue };
                claimed.push(ClaimedDelivery { id, channel, address, attempts: attempts + 1, event });
            }
            let mut lease = c.prepare_cached(
                "UPDATE event_deliveries SET attempts = attempts + 1, next_attempt_ms = ?2 WHERE id = ?1",
            )?;
            for d in &claimed {
                lease.execute(params![i64_of(d.id), i64_of(now_ms.saturating_add(lease_ms))])?;
            }
            Ok(claimed)
        })
        .await
    }

    async fn finish_delivery(
        &self,
        id: u64,
        outcome: DeliveryOutcome,
        now_ms: u64,
    ) -> StoreResult<()> {
        self.write(move |c| {
            match outcome {
                DeliveryOutcome::Delivered => {
                    c.prepare_cached(
                        "UPDATE event_deliveries SET delivered_at_ms = ?2, last_error = NULL WHERE id = ?1",
                    )?
                    .execute(params![i64_of(id), i64_of(now_ms)])?;
                }
                DeliveryOutcome::Failed { error, retry_at_ms } => {
                    // Given up: parked at the far end of the due index.
                    let next = retry_at_ms.map_or(i64::MAX, i64_of);
                    c.prepare_cached(
                        "UPDATE event_deliveries SET last_error = ?2, next_attempt_ms = ?3 WHERE id = ?1",
                    )?
                    .execute(params![i64_of(id), error, next])?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn put_activation_code(&self, code: ActivationCode) -> StoreResult<()> {
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO activation_codes (identity_id, code_sha256, created_at_ms, expires_at_ms, tries, used) \
                 VALUES (?1, ?2, ?3, ?4, 0, 0) \
                 ON CONFLICT(identity_id) DO UPDATE SET code_sha256 = excluded.code_sha256, \
                 created_at_ms = excluded.created_at_ms, expires_at_ms = excluded.expires_at_ms, tries = 0, used = 0",
            )?
            .execute(params![
                code.identity_id.as_bytes().as_slice(),
                code.code_sha256.as_slice(),
                i64_of(code.created_at_ms),
                i64_of(code.expires_at_ms)
            ])?;
            Ok(())
        })
        .await
    }

    async fn activate(
        &self,
        user_id_folded: &str,
        code_sha256_for: Box<dyn Fn(IdentityId) -> [u8; 32] + Send>,
        max_tries: u32,
        now_ms: u64,
        authenticator: Authenticator,
    ) -> StoreResult<ActivationResult> {
        let folded = user_id_folded.to_owned();
        self.write(move |c| {
            let identity = c
                .prepare_cached(&format!("SELECT {IDENTITY_COLUMNS} FROM identities WHERE user_id_folded = ?1"))?
                .query_row(params![folded], identity_row)
                .optional()?;
            let Some(identity) = identity else { return Ok(ActivationResult::NoUsableCode) };
            let code = c
                .prepare_cached(
                    "SELECT code_sha256, expires_at_ms, tries, used FROM activation_codes WHERE identity_id = ?1",
                )?
                .query_row(params![identity.id.as_bytes().as_slice()], |r| {
                    Ok((blob32(r, 0)?, u64_at(r, 1)?, r.get::<_, u32>(2)?, r.get::<_, bool>(3)?))
                })
                .optional()?;
            let Some((stored_hash, expires_at_ms, tries, used)) = code else {
                return Ok(ActivationResult::NoUsableCode);
            };
            let presented = code_sha256_for(identity.id);
            if used
                && now_ms < expires_at_ms
                && eid_protocol::crypto::constant_time_eq(&presented, &stored_hash)
            {
                // A retry of an activation whose answer was lost: within the
                // code's lifetime, the same code and the same two keys get the
                // same authenticator back. After that the code is simply spent,
                // so a captured activation body cannot be replayed for ever.
                let existing = c
                    .prepare_cached(&format!(
                        "SELECT {AUTHENTICATOR_COLUMNS} FROM authenticators \
                         WHERE identity_id = ?1 AND device_public_key = ?2 AND pin_public_key = ?3 \
                         ORDER BY activated_at_ms DESC LIMIT 1"
                    ))?
                    .query_row(
                        params![
                            identity.id.as_bytes().as_slice(),
                            authenticator.device_public_key.as_bytes().as_slice(),
                            authenticator.pin_public_key.as_bytes().as_slice()
                        ],
                        authenticator_row,
                    )
                    .optional()?;
                return Ok(match existing {
                    Some(a) if a.state == AuthenticatorState::Active && !identity.blocked => {
                        ActivationResult::AlreadyActivated(a)
                    }
                    _ => ActivationResult::NoUsableCode,
                });
            }
            if used || tries >= max_tries || now_ms >= expires_at_ms {
                return Ok(ActivationResult::NoUsableCode);
            }
            if !eid_protocol::crypto::constant_time_eq(&presented, &stored_hash) {
                c.prepare_cached("UPDATE activation_codes SET tries = tries + 1 WHERE identity_id = ?1")?
                    .execute(params![identity.id.as_bytes().as_slice()])?;
                return Ok(ActivationResult::WrongCode);
            }
            if identity.blocked {
                return Ok(ActivationResult::Blocked);
            }
            c.prepare_cached("UPDATE activation_codes SET used = 1 WHERE identity_id = ?1")?
                .execute(params![identity.id.as_bytes().as_slice()])?;
            let auth = Authenticator { identity_id: identity.id, ..authenticator };
            c.prepare_cached(
                "INSERT INTO authenticators (id, identity_id, device_public_key, pin_public_key, state, \
                 failed_pin_count, last_counter, activated_at_ms) VALUES (?1, ?2, ?3, ?4, 'active', 0, 0, ?5)",
            )?
            .execute(params![
                auth.id.as_bytes().as_slice(),
                auth.identity_id.as_bytes().as_slice(),
                auth.device_public_key.as_bytes().as_slice(),
                auth.pin_public_key.as_bytes().as_slice(),
                i64_of(auth.activated_at_ms)
            ])?;
            insert_event(
                c,
                &NewEvent {
                    identity_id: auth.identity_id,
                    kind: SecurityEventKind::DeviceActivated,
                    authenticator_id: Some(auth.id),
                    detail: None,
                    occurred_at_ms: now_ms,
                    extra_recipients: Vec::new(),
                },
            )?;
            Ok(ActivationResult::Activated(auth))
        })
        .await
    }

    async fn authenticators(
        &self,
        ids: Vec<AuthenticatorId>,
    ) -> StoreResult<Vec<Option<Authenticator>>> {
        self.read_consistent(move |c| ids.iter().map(|id| load_authenticator(c, id)).collect())
            .await
    }

    async fn authenticators_of(&self, identity_id: IdentityId) -> StoreResult<Vec<Authenticator>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {AUTHENTICATOR_COLUMNS} FROM authenticators WHERE identity_id = ?1 ORDER BY activated_at_ms"
            ))?;
            let rows = stmt.query_map(params![identity_id.as_bytes().as_slice()], authenticator_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn pull_snapshot(
        &self,
        authenticator_ids: Vec<AuthenticatorId>,
        feed_after: Vec<u64>,
        decisions_after: Vec<u64>,
        now_ms: u64,
    ) -> StoreResult<PullSnapshot> {
        self.read_consistent(move |c| {
            let authenticators = authenticator_ids
                .iter()
                .map(|id| load_authenticator(c, id))
                .collect::<StoreResult<Vec<_>>>()?;
            let identities = authenticators
                .iter()
                .map(|a| match a {
                    Some(a) => load_identity(c, &a.identity_id),
                    None => Ok(None),
                })
                .collect::<StoreResult<Vec<_>>>()?;
            let mut seen = Vec::new();
            let mut pending = Vec::new();
            let mut stmt = c.prepare_cached(&format!(
                "{REQUEST_SELECT} WHERE r.identity_id = ?1 AND r.status = 'pending' AND r.expires_at_ms > ?2 \
                 ORDER BY r.created_at_ms"
            ))?;
            for identity in identities.iter().flatten().filter(|i| !i.blocked) {
                // Two authenticators of one identity on the same phone share it.
                if seen.contains(&identity.id) {
                    continue;
                }
                seen.push(identity.id);
                let rows = stmt.query_map(
                    params![identity.id.as_bytes().as_slice(), i64_of(now_ms)],
                    request_row,
                )?;
                for r in rows {
                    pending.push(r?);
                }
            }
            let mut enrolments = Vec::new();
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {ENROLMENT_COLUMNS} FROM device_enrolments e WHERE e.identity_id = ?1 AND {LIVE_ENROLMENT} \
                 ORDER BY e.requested_at_ms"
            ))?;
            for identity in &seen {
                let rows = stmt.query_map(
                    params![identity.as_bytes().as_slice(), i64_of(now_ms)],
                    enrolment_row,
                )?;
                for r in rows {
                    enrolments.push(r?);
                }
            }
            // One indexed range read per account (same snapshot as the
            // requests, so the feed never misses an event that committed):
            // the newest events above the cursor, returned oldest first.
            let mut feed = c.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM security_events WHERE identity_id = ?1 AND id > ?2 ORDER BY id DESC LIMIT ?3"
            ))?;
            let mut events = Vec::with_capacity(authenticators.len());
            for (i, auth) in authenticators.iter().enumerate() {
                let Some(auth) = auth else {
                    events.push(Vec::new());
                    continue;
                };
                let after = feed_after.get(i).copied().unwrap_or(0);
                let rows = feed.query_map(
                    params![
                        auth.identity_id.as_bytes().as_slice(),
                        i64_of(after),
                        eid_protocol::wire::MAX_FEED_EVENTS as i64
                    ],
                    event_row,
                )?;
                let mut list = rows.collect::<rusqlite::Result<Vec<_>>>()?;
                list.reverse();
                events.push(list);
            }
            let mut contact_changes = Vec::new();
            for id in &seen {
                contact_changes.extend(
                    open_changes_of(c, id)?
                        .into_iter()
                        .filter(|ch| matches!(ch.kind, ChangeKind::Contact(_)) && ch.state_at(now_ms).is_open()),
                );
            }
            // The identity's newest decisions, same snapshot (device journal).
            let mut recent = c.prepare_cached(
                "SELECT d.request_id, d.authenticator_id, d.outcome, d.counter, d.decision_sha256, \
                 d.decided_at_ms, d.rowid FROM decisions d WHERE d.identity_id = ?1 AND d.rowid > ?3 \
                 ORDER BY d.rowid LIMIT ?2",
            )?;
            let mut decisions = Vec::with_capacity(authenticators.len());
            for (i, auth) in authenticators.iter().enumerate() {
                let Some(auth) = auth else {
                    decisions.push(Vec::new());
                    continue;
                };
                let rows = recent.query_map(
                    params![
                        auth.identity_id.as_bytes().as_slice(),
                        eid_protocol::wire::MAX_PULLED_DECISIONS as i64,
                        i64_of(decisions_after.get(i).copied().unwrap_or(0))
                    ],
                    |row| {
                        Ok((
                            row.get::<_, Vec<u8>>(0)?,
                            row.get::<_, Vec<u8>>(1)?,
                            row.get::<_, String>(2)?,
                            row.get::<_, i64>(3)?,
                            row.get::<_, Vec<u8>>(4)?,
                            row.get::<_, i64>(5)?,
                            row.get::<_, i64>(6)?,
                        ))
                    },
                )?;
                let mut list = Vec::new();
                for r in rows {
                    let (request, authenticator, outcome, counter, sha, at, seq) = r?;
                    let (Ok(request), Ok(authenticator), Ok(sha)) = (
                        <[u8; 16]>::try_from(request.as_slice()),
                        <[u8; 16]>::try_from(authenticator.as_slice()),
                        <[u8; 32]>::try_from(sha.as_slice()),
                    ) else {
                        continue;
                    };
                    list.push(eid_protocol::wire::PulledDecision {
                        request_id: RequestId(request),
                        authenticator_id: AuthenticatorId(authenticator),
                        outcome: outcome_of(&outcome),
                        counter: u64::try_from(counter).unwrap_or(0),
                        decision_sha256: sha,
                        decided_at_ms: u64::try_from(at).unwrap_or(0),
                        seq: u64::try_from(seq).unwrap_or(0),
                    });
                }
                decisions.push(list);
            }
            Ok(PullSnapshot {
                authenticators,
                identities,
                pending,
                enrolments,
                events,
                contact_changes,
                decisions,
            })
        })
        .await
    }

    async fn decision_context(
        &self,
        request_id: RequestId,
        authenticator_id: AuthenticatorId,
    ) -> StoreResult<DecisionContext> {
        self.read_consistent(move |c| {
            let request = load_request(c, &request_id)?;
            let authenticator = load_authenticator(c, &authenticator_id)?;
            let identity = match &request {
                Some(r) => load_identity(c, &r.envelope.identity_id)?,
                None => None,
            };
            Ok(DecisionContext {
                request,
                authenticator,
                identity,
            })
        })
        .await
    }

    async fn use_nonce(&self, nonce: Nonce16, keep_until_ms: u64) -> StoreResult<bool> {
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "INSERT OR IGNORE INTO nonces (nonce, keep_until_ms) VALUES (?1, ?2)",
                )?
                .execute(params![nonce.as_bytes().as_slice(), i64_of(keep_until_ms)])?;
            Ok(n == 1)
        })
        .await
    }

    async fn purge_nonces(&self, now_ms: u64) -> StoreResult<u64> {
        self.write(move |c| {
            let n = c
                .prepare_cached("DELETE FROM nonces WHERE keep_until_ms < ?1")?
                .execute(params![i64_of(now_ms)])?;
            Ok(n as u64)
        })
        .await
    }

    async fn create_service_provider(&self, sp: ServiceProvider) -> StoreResult<()> {
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO service_providers (id, name, api_key_sha256, created_at_ms) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![sp.id.as_bytes().as_slice(), sp.name, sp.api_key_sha256.as_slice(), i64_of(sp.created_at_ms)])
            .map_err(|e| if is_unique_violation(&e) { StoreError::Conflict("api_key") } else { e.into() })?;
            Ok(())
        })
        .await
    }

    async fn register_service_provider(&self, sp: ServiceProvider) -> StoreResult<RegisterResult> {
        self.write(move |c| {
            // Registrations are rare: a scan of the names is cheap, and in
            // the write job it cannot race another registration.
            let names = c
                .prepare_cached("SELECT name FROM service_providers")?
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            let builtin = eid_protocol::SELF_SERVICE_PROVIDER_NAME;
            if let Some(existing) = std::iter::once(builtin)
                .chain(names.iter().map(String::as_str))
                .find(|n| eid_protocol::confusables::names_confusable(n, &sp.name))
            {
                return Ok(RegisterResult::ConfusableWith(existing.to_owned()));
            }
            c.prepare_cached(
                "INSERT INTO service_providers (id, name, api_key_sha256, created_at_ms) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![sp.id.as_bytes().as_slice(), sp.name, sp.api_key_sha256.as_slice(), i64_of(sp.created_at_ms)])
            .map_err(|e| if is_unique_violation(&e) { StoreError::Conflict("api_key") } else { e.into() })?;
            Ok(RegisterResult::Registered)
        })
        .await
    }

    async fn service_provider_by_key(
        &self,
        api_key_sha256: [u8; 32],
    ) -> StoreResult<Option<ServiceProvider>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, name, api_key_sha256, created_at_ms FROM service_providers WHERE api_key_sha256 = ?1",
            )?;
            Ok(stmt
                .query_row(params![api_key_sha256.as_slice()], |r| {
                    Ok(ServiceProvider {
                        id: ServiceProviderId(blob16(r, 0)?),
                        name: r.get(1)?,
                        api_key_sha256: blob32(r, 2)?,
                        created_at_ms: u64_at(r, 3)?,
                    })
                })
                .optional()?)
        })
        .await
    }

    async fn create_request_limited(
        &self,
        request: StoredRequest,
        limits: RequestLimits,
        now_ms: u64,
    ) -> StoreResult<CreateResult> {
        let envelope_json = serde_json::to_string(&request.envelope)
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        self.write(move |c| {
            let e = &request.envelope;
            // Checked in the write transaction, so concurrent creates cannot
            // exceed the limit or slip past a block that lands in between.
            match load_identity(c, &e.identity_id)? {
                None => return Ok(CreateResult::UnknownIdentity),
                Some(i) if i.blocked => return Ok(CreateResult::Blocked),
                Some(_) => {}
            }
            if let Some(held) = fraud_hold(c, e, limits.fraud_hold_ms, now_ms)? {
                return Ok(held);
            }
            if pending_count(c, &e.identity_id, now_ms)? >= limits.max_pending {
                return Ok(CreateResult::TooManyPending);
            }
            if let Some(limited) = rate_limited(c, e, &limits, now_ms)? {
                return Ok(limited);
            }
            insert_request(c, &request, &envelope_json)?;
            Ok(CreateResult::Created)
        })
        .await
    }

    async fn request(&self, id: RequestId) -> StoreResult<Option<StoredRequest>> {
        self.read(move |c| load_request(c, &id)).await
    }

    async fn decide(
        &self,
        request_id: RequestId,
        record: DecisionRecord,
        pin_verified: bool,
        now_ms: u64,
    ) -> StoreResult<DecideResult> {
        let receipt_json = serde_json::to_string(&record.receipt)
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        self.write(move |c| {
            // Only the columns the checks need: this runs on the single writer
            // thread, where parsing the stored JSON would serialize every
            // decision behind it.
            let Some((status, expires_at_ms, decided, provider)) = c
                .prepare_cached(
                    "SELECT r.status, r.expires_at_ms, d.request_id IS NOT NULL, r.service_provider_id \
                     FROM requests r LEFT JOIN decisions d ON d.request_id = r.id WHERE r.id = ?1",
                )?
                .query_row(params![request_id.as_bytes().as_slice()], |r| {
                    Ok((r.get::<_, String>(0)?, u64_at(r, 1)?, r.get::<_, bool>(2)?, blob16(r, 3)?))
                })
                .optional()?
            else {
                return Err(StoreError::Backend("request vanished".into()));
            };
            if decided {
                let existing = load_request(c, &request_id)?.and_then(|r| r.decision);
                return existing
                    .map(DecideResult::AlreadyDecided)
                    .ok_or_else(|| StoreError::Backend("decision vanished".into()));
            }
            match status_of(&status) {
                RequestStatus::Pending if now_ms >= expires_at_ms => {
                    return Ok(DecideResult::Expired);
                }
                RequestStatus::Pending => {}
                _ => return Ok(DecideResult::Cancelled),
            }
            let Some((active, last_counter, blocked, identity_id, notify_every_use)) = c
                .prepare_cached(
                    "SELECT a.state = 'active', a.last_counter, COALESCE(i.blocked, 1), a.identity_id, \
                     COALESCE(i.notify_every_use, 0) \
                     FROM authenticators a LEFT JOIN identities i ON i.id = a.identity_id WHERE a.id = ?1",
                )?
                .query_row(params![record.authenticator_id.as_bytes().as_slice()], |r| {
                    Ok((
                        r.get::<_, bool>(0)?,
                        u64_at(r, 1)?,
                        r.get::<_, bool>(2)?,
                        IdentityId(blob16(r, 3)?),
                        r.get::<_, bool>(4)?,
                    ))
                })
                .optional()?
            else {
                return Ok(DecideResult::NotAllowed);
            };
            if !active || blocked {
                return Ok(DecideResult::NotAllowed);
            }
            if record.counter <= last_counter {
                return Ok(DecideResult::CounterReplay);
            }
            c.prepare_cached(
                "INSERT INTO decisions (request_id, authenticator_id, outcome, counter, decision_sha256, receipt, \
                 decided_at_ms, identity_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                request_id.as_bytes().as_slice(),
                record.authenticator_id.as_bytes().as_slice(),
                outcome_text(record.outcome),
                i64_of(record.counter),
                record.decision_sha256.as_slice(),
                receipt_json,
                i64_of(record.decided_at_ms),
                identity_id.as_bytes().as_slice()
            ])?;
            c.prepare_cached("UPDATE requests SET status = ?2 WHERE id = ?1")?.execute(params![
                request_id.as_bytes().as_slice(),
                status_text(RequestStatus::from_outcome(record.outcome))
            ])?;
            let reset_sql = if pin_verified {
                "UPDATE authenticators SET last_counter = ?2, failed_pin_count = 0 WHERE id = ?1"
            } else {
                "UPDATE authenticators SET last_counter = ?2 WHERE id = ?1"
            };
            c.prepare_cached(reset_sql)?
                .execute(params![record.authenticator_id.as_bytes().as_slice(), i64_of(record.counter)])?;
            decide_enrolment(c, &request_id, &record)?;
            let event_kind = match record.outcome {
                Outcome::ReportFraud => Some(SecurityEventKind::FraudReported),
                Outcome::Approve if notify_every_use => Some(SecurityEventKind::Used),
                _ => None,
            };
            if let Some(kind) = event_kind {
                let provider: Option<String> = c
                    .prepare_cached(
                        "SELECT sp.name FROM requests r JOIN service_providers sp \
                         ON sp.id = r.service_provider_id WHERE r.id = ?1",
                    )?
                    .query_row(params![request_id.as_bytes().as_slice()], |r| r.get(0))
                    .optional()?;
                insert_event(
                    c,
                    &NewEvent {
                        identity_id,
                        kind,
                        authenticator_id: Some(record.authenticator_id),
                        detail: provider,
                        occurred_at_ms: now_ms,
                        extra_recipients: Vec::new(),
                    },
                )?;
            }
            if provider == *eid_protocol::SELF_SERVICE_PROVIDER_ID.as_bytes() {
                on_self_service_decision(c, &request_id, &record, now_ms)?;
            } else if record.outcome == Outcome::ReportFraud {
                // "This wasn't me": this provider's new requests for this
                // person are held from now (a new report restarts the hold).
                c.prepare_cached(
                    "INSERT INTO fraud_holds (identity_id, service_provider_id, reported_at_ms, notified) \
                     VALUES (?1, ?2, ?3, 0) ON CONFLICT (identity_id, service_provider_id) \
                     DO UPDATE SET reported_at_ms = excluded.reported_at_ms, notified = 0",
                )?
                .execute(params![identity_id.as_bytes().as_slice(), provider.as_slice(), i64_of(now_ms)])?;
            }
            Ok(DecideResult::Accepted(record))
        })
        .await
    }

    async fn record_binding_mismatch(
        &self,
        request_id: RequestId,
        cancel_at: u32,
    ) -> StoreResult<u32> {
        self.write(move |c| {
            let count: u32 = c
                .prepare_cached(
                    "UPDATE requests SET binding_failures = binding_failures + 1 WHERE id = ?1 \
                     RETURNING binding_failures",
                )?
                .query_row(params![request_id.as_bytes().as_slice()], |r| r.get(0))?;
            if count >= cancel_at {
                c.prepare_cached(
                    "UPDATE requests SET status = 'cancelled' WHERE id = ?1 AND status = 'pending'",
                )?
                .execute(params![request_id.as_bytes().as_slice()])?;
            }
            Ok(count)
        })
        .await
    }

    async fn record_wrong_pin(
        &self,
        id: AuthenticatorId,
        lock_at: u32,
        now_ms: u64,
    ) -> StoreResult<u32> {
        self.write(move |c| {
            let (count, identity_id, was_active): (u32, IdentityId, bool) = c
                .prepare_cached(
                    "UPDATE authenticators SET failed_pin_count = failed_pin_count + 1 WHERE id = ?1 \
                     RETURNING failed_pin_count, identity_id, state = 'active'",
                )?
                .query_row(params![id.as_bytes().as_slice()], |r| {
                    Ok((r.get(0)?, IdentityId(blob16(r, 1)?), r.get(2)?))
                })?;
            if count >= lock_at {
                c.prepare_cached("UPDATE authenticators SET state = 'locked' WHERE id = ?1")?
                    .execute(params![id.as_bytes().as_slice()])?;
                // Once, when it locks.
                if was_active {
                    insert_event(
                        c,
                        &NewEvent {
                            identity_id,
                            kind: SecurityEventKind::PinLockout,
                            authenticator_id: Some(id),
                            detail: None,
                            occurred_at_ms: now_ms,
                            extra_recipients: Vec::new(),
                        },
                    )?;
                }
            }
            Ok(count)
        })
        .await
    }

    async fn cancel_request(
        &self,
        id: RequestId,
        service_provider_id: ServiceProviderId,
        now_ms: u64,
    ) -> StoreResult<CancelResult> {
        self.write(move |c| {
            let Some(request) = load_request(c, &id)? else {
                return Ok(CancelResult::Unknown);
            };
            if request.envelope.service_provider_id != service_provider_id {
                return Ok(CancelResult::Unknown);
            }
            if request.status_at(now_ms) != RequestStatus::Pending {
                return Ok(CancelResult::NotPending(Box::new(request)));
            }
            c.prepare_cached("UPDATE requests SET status = 'cancelled' WHERE id = ?1")?
                .execute(params![id.as_bytes().as_slice()])?;
            Ok(CancelResult::Cancelled)
        })
        .await
    }

    async fn count_pending(&self, identity_id: IdentityId, now_ms: u64) -> StoreResult<u64> {
        self.read(move |c| {
            let n: i64 = c
                .prepare_cached(
                    "SELECT COUNT(*) FROM requests WHERE identity_id = ?1 AND status = 'pending' AND expires_at_ms > ?2",
                )?
                .query_row(params![identity_id.as_bytes().as_slice(), i64_of(now_ms)], |r| r.get(0))?;
            Ok(n as u64)
        })
        .await
    }

    async fn start_enrolment(
        &self,
        enrolment: Enrolment,
        request: Option<StoredRequest>,
        max_devices: u64,
        max_per_hour: u64,
        now_ms: u64,
    ) -> StoreResult<StartEnrolmentResult> {
        let envelope_json = match &request {
            Some(r) => Some(
                serde_json::to_string(&r.envelope)
                    .map_err(|e| StoreError::Backend(e.to_string()))?,
            ),
            None => None,
        };
        self.write(move |c| {
            // A retry with the same new keys (the answer was lost) gets the
            // same live enrolment back, real or decoy alike, so a retry does
            // not tell them apart either.
            let existing = c
                .prepare_cached(&format!(
                    "SELECT {ENROLMENT_COLUMNS} FROM device_enrolments e \
                     WHERE e.device_public_key = ?1 AND e.pin_public_key = ?3 AND \
                     ((e.identity_id IS NULL AND e.expires_at_ms > ?2) OR \
                     (e.identity_id IS NOT NULL AND {LIVE_ENROLMENT})) LIMIT 1"
                ))?
                .query_row(
                    params![
                        enrolment.device_public_key.as_bytes().as_slice(),
                        i64_of(now_ms),
                        enrolment.pin_public_key.as_bytes().as_slice()
                    ],
                    enrolment_row,
                )
                .optional()?;
            if let Some(existing) = existing {
                return Ok(StartEnrolmentResult::Existing(existing));
            }
            let decoy = Enrolment { identity_id: None, request_id: None, ..enrolment.clone() };
            let (Some(request), Some(envelope_json)) = (request, envelope_json) else {
                insert_enrolment(c, &decoy)?;
                return Ok(StartEnrolmentResult::Started(decoy));
            };
            let e = &request.envelope;
            let identity = e.identity_id;
            let identity_bytes = identity.as_bytes().as_slice();
            match load_identity(c, &identity)? {
                Some(i) if !i.blocked => {}
                _ => {
                    insert_enrolment(c, &decoy)?;
                    return Ok(StartEnrolmentResult::Started(decoy));
                }
            }
            // One new device at a time, and a few per hour: more would only
            // flood the person's phone, SMS and e-mail.
            let (awaiting, last_hour): (i64, i64) = c
                .prepare_cached(&format!(
                    "SELECT COALESCE(SUM(e.state = 'awaiting_approval' AND {LIVE_ENROLMENT}), 0), \
                     COALESCE(SUM(e.requested_at_ms > ?3), 0) FROM device_enrolments e WHERE e.identity_id = ?1"
                ))?
                .query_row(
                    params![identity_bytes, i64_of(now_ms), i64_of(now_ms.saturating_sub(3_600_000))],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
            if awaiting > 0 || u64::try_from(last_hour).unwrap_or(u64::MAX) >= max_per_hour {
                insert_enrolment(c, &decoy)?;
                return Ok(StartEnrolmentResult::Started(decoy));
            }
            if count_devices(c, &identity, &enrolment.id, now_ms)? >= max_devices {
                return Ok(StartEnrolmentResult::DeviceLimitReached);
            }
            c.prepare_cached(
                "INSERT INTO requests (id, identity_id, service_provider_id, envelope, envelope_signature, \
                 binding_code, status, created_at_ms, expires_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?8)",
            )?
            .execute(params![
                e.request_id.as_bytes().as_slice(),
                identity_bytes,
                e.service_provider_id.as_bytes().as_slice(),
                envelope_json,
                request.envelope_signature.0,
                request.binding_code,
                i64_of(e.created_at_ms),
                i64_of(e.expires_at_ms)
            ])?;
            let real = Enrolment {
                identity_id: Some(identity),
                request_id: Some(e.request_id),
                ..enrolment
            };
            insert_enrolment(c, &real)?;
            insert_event(c, &event(identity, SecurityEventKind::NewDeviceRequested, real.id, now_ms))?;
            Ok(StartEnrolmentResult::Started(real))
        })
        .await
    }

    async fn start_change(
        &self,
        change: StoredChange,
        request: StoredRequest,
        max_pending: u64,
        now_ms: u64,
    ) -> StoreResult<StartChangeResult> {
        let envelope_json = serde_json::to_string(&request.envelope)
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        self.write(move |c| {
            match load_identity(c, &change.identity_id)? {
                None => return Ok(StartChangeResult::UnknownIdentity),
                Some(i) if i.blocked => return Ok(StartChangeResult::Blocked),
                Some(_) => {}
            }
            // Starts need no credentials: a few per identity per hour, then
            // they are answered like an unknown user ID (nothing stored or sent).
            let recent: i64 = c
                .prepare_cached(
                    "SELECT COUNT(*) FROM self_service_changes WHERE identity_id = ?1 AND created_at_ms > ?2",
                )?
                .query_row(
                    params![
                        change.identity_id.as_bytes().as_slice(),
                        i64_of(now_ms.saturating_sub(60 * 60 * 1000))
                    ],
                    |r| r.get(0),
                )?;
            if recent >= MAX_CHANGE_STARTS_PER_HOUR {
                return Ok(StartChangeResult::UnknownIdentity);
            }
            let open: Vec<StoredChange> = open_changes_of(c, &change.identity_id)?
                .into_iter()
                .filter(|o| o.kind.same_family(change.kind) && o.state_at(now_ms).is_open())
                .collect();
            if open.iter().any(|o| o.first_login_at_ms.is_some()) {
                return Ok(StartChangeResult::ChangePending);
            }
            // Open but never approved: the new start supersedes it (whoever
            // started it; the person approves only one of them anyway).
            for o in &open {
                set_change_state(c, &o.id, ChangeState::Cancelled, now_ms)?;
                cancel_pending_request(c, &o.first_request_id)?;
            }
            if pending_count(c, &change.identity_id, now_ms)? >= max_pending {
                return Ok(StartChangeResult::TooManyPending);
            }
            insert_request(c, &request, &envelope_json)?;
            c.prepare_cached(
                "INSERT INTO self_service_changes (id, identity_id, kind, new_value, state, gap_ms, created_at_ms, \
                 first_request_id, first_expires_at_ms) VALUES (?1, ?2, ?3, ?4, 'awaiting_first_login', ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                change.id.as_bytes().as_slice(),
                change.identity_id.as_bytes().as_slice(),
                change_kind_text(change.kind),
                change.new_value,
                i64_of(change.gap_ms),
                i64_of(change.created_at_ms),
                change.first_request_id.as_bytes().as_slice(),
                i64_of(change.first_expires_at_ms)
            ])?;
            record_contact_event(c, &change, SecurityEventKind::ContactChangeStarted, None, None, now_ms)?;
            Ok(StartChangeResult::Created)
        })
        .await
    }

    async fn enrolment(&self, id: AuthenticatorId) -> StoreResult<Option<Enrolment>> {
        self.read(move |c| load_enrolment(c, &id)).await
    }

    async fn poll_enrolment(
        &self,
        id: AuthenticatorId,
        max_devices: u64,
        now_ms: u64,
    ) -> StoreResult<EnrolmentPoll> {
        self.write(move |c| {
            let Some(enrolment) = load_enrolment(c, &id)? else {
                return Ok(EnrolmentPoll::Closed);
            };
            let Some(identity_id) = enrolment.identity_id else {
                // A decoy looks like a request nobody answers.
                return Ok(if now_ms < enrolment.expires_at_ms {
                    EnrolmentPoll::AwaitingApproval(enrolment)
                } else {
                    EnrolmentPoll::Closed
                });
            };
            let blocked = load_identity(c, &identity_id)?.is_none_or(|i| i.blocked);
            match enrolment.state {
                EnrolmentStoredState::Cancelled => Ok(EnrolmentPoll::Closed),
                EnrolmentStoredState::Activated => Ok(match load_authenticator(c, &id)? {
                    Some(a) if a.state == AuthenticatorState::Active && !blocked => {
                        EnrolmentPoll::Activated(a)
                    }
                    _ => EnrolmentPoll::Closed,
                }),
                _ if blocked => {
                    close_enrolment(c, &id, now_ms)?;
                    Ok(EnrolmentPoll::Closed)
                }
                EnrolmentStoredState::AwaitingApproval => {
                    let request = match enrolment.request_id {
                        Some(r) => load_request(c, &r)?,
                        None => None,
                    };
                    if request.is_some_and(|r| r.status_at(now_ms) == RequestStatus::Pending) {
                        return Ok(EnrolmentPoll::AwaitingApproval(enrolment));
                    }
                    // Refused, cancelled (wrong codes) or expired undecided.
                    close_enrolment(c, &id, now_ms)?;
                    Ok(EnrolmentPoll::Closed)
                }
                EnrolmentStoredState::Waiting => {
                    let usable_at = enrolment.usable_at_ms.unwrap_or(u64::MAX);
                    if now_ms < usable_at {
                        return Ok(EnrolmentPoll::Waiting(enrolment));
                    }
                    if count_devices(c, &identity_id, &id, now_ms)? >= max_devices {
                        close_enrolment(c, &id, now_ms)?;
                        return Ok(EnrolmentPoll::Closed);
                    }
                    let auth = Authenticator {
                        id,
                        identity_id,
                        device_public_key: enrolment.device_public_key,
                        pin_public_key: enrolment.pin_public_key,
                        state: AuthenticatorState::Active,
                        failed_pin_count: 0,
                        last_counter: 0,
                        activated_at_ms: now_ms,
                    };
                    c.prepare_cached(
                        "INSERT INTO authenticators (id, identity_id, device_public_key, pin_public_key, state, \
                         failed_pin_count, last_counter, activated_at_ms) VALUES (?1, ?2, ?3, ?4, 'active', 0, 0, ?5)",
                    )?
                    .execute(params![
                        auth.id.as_bytes().as_slice(),
                        auth.identity_id.as_bytes().as_slice(),
                        auth.device_public_key.as_bytes().as_slice(),
                        auth.pin_public_key.as_bytes().as_slice(),
                        i64_of(now_ms)
                    ])?;
                    c.prepare_cached(
                        "UPDATE device_enrolments SET state = 'activated', closed_at_ms = ?2 WHERE id = ?1",
                    )?
                    .execute(params![id.as_bytes().as_slice(), i64_of(now_ms)])?;
                    insert_event(c, &event(identity_id, SecurityEventKind::DeviceActivated, id, now_ms))?;
                    Ok(EnrolmentPoll::Activated(auth))
                }
            }
        })
        .await
    }

    async fn change(&self, id: ChangeId) -> StoreResult<Option<(StoredChange, Identity)>> {
        self.read_consistent(move |c| {
            let Some(change) = load_change(c, &id)? else {
                return Ok(None);
            };
            Ok(load_identity(c, &change.identity_id)?.map(|i| (change, i)))
        })
        .await
    }

    async fn confirm_change(
        &self,
        id: ChangeId,
        request: StoredRequest,
        max_pending: u64,
        now_ms: u64,
    ) -> StoreResult<ConfirmChangeResult> {
        let envelope_json = serde_json::to_string(&request.envelope)
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        self.write(move |c| {
            let Some(change) = load_change(c, &id)? else { return Ok(ConfirmChangeResult::Unknown) };
            if !matches!(change.kind, ChangeKind::Contact(_))
                || change.first_login_at_ms.is_none()
                || change.identity_id != request.envelope.identity_id
            {
                return Ok(ConfirmChangeResult::Unknown);
            }
            match load_identity(c, &change.identity_id)? {
                Some(i) if !i.blocked => {}
                _ => return Ok(ConfirmChangeResult::Blocked),
            }
            match change.state_at(now_ms) {
                ChangeState::WaitingSecondLogin => {}
                ChangeState::AwaitingSecondLogin => {
                    let (Some(r), Some(t)) = (change.second_request_id, change.second_expires_at_ms) else {
                        return Err(StoreError::Backend("second request missing".into()));
                    };
                    return Ok(ConfirmChangeResult::Existing(r, t));
                }
                other => return Ok(ConfirmChangeResult::Closed(other)),
            }
            let earliest = change
                .earliest_second_login_at_ms
                .ok_or_else(|| StoreError::Backend("earliest time missing".into()))?;
            if now_ms < earliest {
                // Every attempt is notified, above all one that comes too early.
                record_contact_event(
                    c,
                    &change,
                    SecurityEventKind::ContactChangeStarted,
                    None,
                    Some("Forsøg på at fuldføre før tid"),
                    now_ms,
                )?;
                return Ok(ConfirmChangeResult::TooEarly(earliest));
            }
            if pending_count(c, &change.identity_id, now_ms)? >= max_pending {
                return Ok(ConfirmChangeResult::TooManyPending);
            }
            insert_request(c, &request, &envelope_json)?;
            c.prepare_cached(
                "UPDATE self_service_changes SET state = 'awaiting_second_login', second_request_id = ?2, \
                 second_expires_at_ms = ?3 WHERE id = ?1",
            )?
            .execute(params![
                id.as_bytes().as_slice(),
                request.envelope.request_id.as_bytes().as_slice(),
                i64_of(request.envelope.expires_at_ms)
            ])?;
            Ok(ConfirmChangeResult::Created)
        })
        .await
    }

    async fn cancel_enrolment(
        &self,
        authenticator_id: AuthenticatorId,
        enrolment_id: AuthenticatorId,
        now_ms: u64,
    ) -> StoreResult<CancelEnrolmentResult> {
        self.write(move |c| {
            let Some(auth) = load_authenticator(c, &authenticator_id)? else {
                return Ok(CancelEnrolmentResult::Unknown);
            };
            let Some(enrolment) = load_enrolment(c, &enrolment_id)? else {
                return Ok(CancelEnrolmentResult::Unknown);
            };
            if enrolment.identity_id != Some(auth.identity_id) {
                return Ok(CancelEnrolmentResult::Unknown);
            }
            match enrolment.state {
                EnrolmentStoredState::AwaitingApproval | EnrolmentStoredState::Waiting => {}
                _ => return Ok(CancelEnrolmentResult::Closed),
            }
            close_enrolment(c, &enrolment_id, now_ms)?;
            let mut cancelled_request = None;
            if let Some(request_id) = enrolment.request_id {
                let n = c
                    .prepare_cached(
                        "UPDATE requests SET status = 'cancelled' WHERE id = ?1 AND status = 'pending'",
                    )?
                    .execute(params![request_id.as_bytes().as_slice()])?;
                if n > 0 {
                    cancelled_request = Some(request_id);
                }
            }
            insert_event(
                c,
                &event(auth.identity_id, SecurityEventKind::NewDeviceCancelled, enrolment_id, now_ms),
            )?;
            Ok(CancelEnrolmentResult::Cancelled(cancelled_request))
        })
        .await
    }

    async fn expire_changes(&self, now_ms: u64, limit: u32) -> StoreResult<u64> {
        self.write(move |c| {
            // Expiry needs a first deadline passed or a first login a day ago;
            // the clock check on each row decides.
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {CHANGE_COLUMNS} FROM self_service_changes \
                 WHERE state IN {OPEN_STATES_SQL} \
                 AND (first_expires_at_ms <= ?1 OR first_login_at_ms <= ?2) LIMIT ?3"
            ))?;
            let due = stmt
                .query_map(
                    params![
                        i64_of(now_ms),
                        i64_of(now_ms.saturating_sub(CHANGE_MAX_AGE_MS)),
                        i64::from(limit)
                    ],
                    change_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut n = 0;
            for change in due
                .iter()
                .filter(|ch| ch.state_at(now_ms) == ChangeState::Expired)
            {
                set_change_state(c, &change.id, ChangeState::Expired, now_ms)?;
                record_contact_event(
                    c,
                    change,
                    SecurityEventKind::ContactChangeCancelled,
                    None,
                    Some("Udløbet"),
                    now_ms,
                )?;
                n += 1;
            }
            Ok(n)
        })
        .await
    }

    async fn cancel_change(
        &self,
        id: ChangeId,
        identity_id: IdentityId,
        authenticator_id: AuthenticatorId,
        now_ms: u64,
    ) -> StoreResult<CancelChangeResult> {
        self.write(move |c| {
            let Some(change) = load_change(c, &id)? else {
                return Ok(CancelChangeResult::Unknown);
            };
            if change.identity_id != identity_id {
                return Ok(CancelChangeResult::Unknown);
            }
            let state = change.state_at(now_ms);
            if !state.is_open() {
                return Ok(CancelChangeResult::Closed(state));
            }
            let mut cancelled = None;
            for r in [Some(change.first_request_id), change.second_request_id]
                .into_iter()
                .flatten()
            {
                if cancel_pending_request(c, &r)? {
                    cancelled = Some(r);
                }
            }
            set_change_state(c, &id, ChangeState::Cancelled, now_ms)?;
            record_contact_event(
                c,
                &change,
                SecurityEventKind::ContactChangeCancelled,
                Some(authenticator_id),
                None,
                now_ms,
            )?;
            Ok(CancelChangeResult::Cancelled(cancelled))
        })
        .await
    }
}

// ---------------------------------------------------------------- self-service changes

const CHANGE_COLUMNS: &str = "id, identity_id, kind, new_value, state, gap_ms, created_at_ms, \
     first_request_id, first_expires_at_ms, first_login_at_ms, earliest_second_login_at_ms, \
     second_request_id, second_expires_at_ms, failure_code, failure_message";

/// The stored states that can still move (before the clock is applied).
const OPEN_STATES_SQL: &str =
    "('awaiting_first_login', 'waiting_second_login', 'awaiting_second_login')";

fn change_kind_text(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Contact(ContactChannel::Phone) => "phone",
        ChangeKind::Contact(_) => "email",
        ChangeKind::UserId => "user_id",
    }
}

fn change_kind_of(text: &str) -> ChangeKind {
    match text {
        "phone" => ChangeKind::Contact(ContactChannel::Phone),
        "email" => ChangeKind::Contact(ContactChannel::Email),
        _ => ChangeKind::UserId,
    }
}

fn change_state_text(state: ChangeState) -> &'static str {
    match state {
        ChangeState::AwaitingFirstLogin => "awaiting_first_login",
        ChangeState::WaitingSecondLogin => "waiting_second_login",
        ChangeState::AwaitingSecondLogin => "awaiting_second_login",
        ChangeState::Completed => "completed",
        ChangeState::Expired => "expired",
        ChangeState::Failed => "failed",
        _ => "cancelled",
    }
}

fn change_state_of(text: &str) -> ChangeState {
    match text {
        "awaiting_first_login" => ChangeState::AwaitingFirstLogin,
        "waiting_second_login" => ChangeState::WaitingSecondLogin,
        "awaiting_second_login" => ChangeState::AwaitingSecondLogin,
        "completed" => ChangeState::Completed,
        "expired" => ChangeState::Expired,
        "failed" => ChangeState::Failed,
        _ => ChangeState::Cancelled,
    }
}

fn opt_u64_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<u64>> {
    let v: Option<i64> = row.get(idx)?;
    v.map(|v| u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, v)))
        .transpose()
}

fn change_row(row: &Row<'_>) -> rusqlite::Result<StoredChange> {
    let kind: String = row.get(2)?;
    let state: String = row.get(4)?;
    let second: Option<Vec<u8>> = row.get(11)?;
    let failure_code: Option<String> = row.get(13)?;
    let failure_message: Option<String> = row.get(14)?;
    Ok(StoredChange {
        id: ChangeId(blob16(row, 0)?),
        identity_id: IdentityId(blob16(row, 1)?),
        kind: change_kind_of(&kind),
        new_value: row.get(3)?,
        state: change_state_of(&state),
        gap_ms: u64_at(row, 5)?,
        created_at_ms: u64_at(row, 6)?,
        first_request_id: RequestId(blob16(row, 7)?),
        first_expires_at_ms: u64_at(row, 8)?,
        first_login_at_ms: opt_u64_at(row, 9)?,
        earliest_second_login_at_ms: opt_u64_at(row, 10)?,
        second_request_id: second
            .map(|v| {
                v.try_into()
                    .map(RequestId)
                    .map_err(|_| rusqlite::Error::IntegralValueOutOfRange(11, 16))
            })
            .transpose()?,
        second_expires_at_ms: opt_u64_at(row, 12)?,
        failure: match (failure_code, failure_message) {
            (Some(code), Some(message)) => Some((
                if code == "user_id_taken" {
                    ErrorCode::UserIdTaken
                } else {
                    ErrorCode::InvalidUserId
                },
                message,
            )),
            _ => None,
        },
    })
}

fn load_change(c: &Connection, id: &ChangeId) -> StoreResult<Option<StoredChange>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {CHANGE_COLUMNS} FROM self_service_changes WHERE id = ?1"
    ))?
    .query_row(params![id.as_bytes().as_slice()], change_row)
    .optional()?)
}

fn open_changes_of(c: &Connection, identity_id: &IdentityId) -> StoreResult<Vec<StoredChange>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {CHANGE_COLUMNS} FROM self_service_changes \
         WHERE identity_id = ?1 AND state IN {OPEN_STATES_SQL} ORDER BY created_at_ms"
    ))?;
    let rows = stmt.query_map(params![identity_id.as_bytes().as_slice()], change_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

fn set_change_state(
    c: &Connection,
    id: &ChangeId,
    state: ChangeState,
    now_ms: u64,
) -> rusqlite::Result<()> {
    let closed = (!state.is_open()).then_some(i64_of(now_ms));
    c.prepare_cached(
        "UPDATE self_service_changes SET state = ?2, closed_at_ms = ?3 WHERE id = ?1",
    )?
    .execute(params![
        id.as_bytes().as_slice(),
        change_state_text(state),
        closed
    ])?;
    Ok(())
}

/// Cancels a pending request (a change's login request); returns whether it was pending.
fn cancel_pending_request(c: &Connection, id: &RequestId) -> rusqlite::Result<bool> {
    let n = c
        .prepare_cached(
            "UPDATE requests SET status = 'cancelled' WHERE id = ?1 AND status = 'pending'",
        )?
        .execute(params![id.as_bytes().as_slice()])?;
    Ok(n == 1)
}

/// The masked new value of a contact change, as notices show it.
fn masked_new_value(change: &StoredChange) -> String {
    match change.kind {
        ChangeKind::Contact(ContactChannel::Phone) => crate::contact::mask_phone(&change.new_value),
        _ => crate::contact::mask_email(&change.new_value),
    }
}

/// What a contact change does, in the person's words (Danish, like the
/// reference texts), with the new value masked.
pub(crate) fn contact_change_text(channel: ContactChannel, masked: &str) -> String {
    match channel {
        ContactChannel::Phone => format!("Skift telefonnummer til {masked}"),
        _ => format!("Skift e-mailadresse til {masked}"),
    }
}

/// Records an event about a contact change, notifying the identity's stored
/// contact (the old one) and the change's new contact.
fn record_contact_event(
    c: &Connection,
    change: &StoredChange,
    kind: SecurityEventKind,
    authenticator_id: Option<AuthenticatorId>,
    prefix: Option<&str>,
    now_ms: u64,
) -> rusqlite::Result<u64> {
    let ChangeKind::Contact(channel) = change.kind else {
        return Ok(0);
    };
    let text = contact_change_text(channel, &masked_new_value(change));
    // The new contact is told only once the identity's owner approved the
    // first self-service login: before that anyone who knows a user ID could
    // start a change, and notifying the address they typed would tell them
    // the user ID exists and how the person reacted, and would let them send
    // official eID messages to any number or address.
    let new_contact = match channel {
        _ if change.first_login_at_ms.is_none() => None,
        ContactChannel::Phone => Some(Recipient::Sms(change.new_value.clone())),
        _ => Some(Recipient::Email(change.new_value.clone())),
    };
    insert_event(
        c,
        &NewEvent {
            identity_id: change.identity_id,
            kind,
            authenticator_id,
            detail: Some(match prefix {
                Some(p) => format!("{p}: {text}"),
                None => text,
            }),
            occurred_at_ms: now_ms,
            extra_recipients: new_contact.into_iter().collect(),
        },
    )
}

fn insert_request(
    c: &Connection,
    request: &StoredRequest,
    envelope_json: &str,
) -> rusqlite::Result<()> {
    let e = &request.envelope;
    c.prepare_cached(
        "INSERT INTO requests (id, identity_id, service_provider_id, envelope, envelope_signature, \
         binding_code, status, created_at_ms, expires_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?8)",
    )?
    .execute(params![
        e.request_id.as_bytes().as_slice(),
        e.identity_id.as_bytes().as_slice(),
        e.service_provider_id.as_bytes().as_slice(),
        envelope_json,
        request.envelope_signature.0,
        request.binding_code,
        i64_of(e.created_at_ms),
        i64_of(e.expires_at_ms)
    ])?;
    Ok(())
}

/// The cool-down after a fraud report: `Some(CoolingDown)` while the
/// provider is held for the identity. The first refusal of a hold records a
/// `requests_held` event (so a flood during the hold notifies once).
fn fraud_hold(
    c: &Connection,
    e: &RequestEnvelopeBody,
    hold_ms: u64,
    now_ms: u64,
) -> StoreResult<Option<CreateResult>> {
    if hold_ms == 0 {
        return Ok(None);
    }
    let identity = e.identity_id.as_bytes().as_slice();
    let provider = e.service_provider_id.as_bytes().as_slice();
    let Some((reported_at_ms, notified)) = c
        .prepare_cached(
            "SELECT reported_at_ms, notified FROM fraud_holds \
             WHERE identity_id = ?1 AND service_provider_id = ?2",
        )?
        .query_row(params![identity, provider], |r| {
            Ok((u64_at(r, 0)?, r.get::<_, bool>(1)?))
        })
        .optional()?
    else {
        return Ok(None);
    };
    let until_ms = reported_at_ms.saturating_add(hold_ms);
    if now_ms >= until_ms {
        return Ok(None);
    }
    if !notified {
        c.prepare_cached(
            "UPDATE fraud_holds SET notified = 1 WHERE identity_id = ?1 AND service_provider_id = ?2",
        )?
        .execute(params![identity, provider])?;
        insert_event(
            c,
            &NewEvent {
                identity_id: e.identity_id,
                kind: SecurityEventKind::RequestsHeld,
                authenticator_id: None,
                detail: Some(e.service_provider_name.clone()),
                occurred_at_ms: now_ms,
                extra_recipients: Vec::new(),
            },
        )?;
    }
    Ok(Some(CreateResult::CoolingDown {
        retry_after_ms: until_ms - now_ms,
    }))
}

/// How long until one more request fits `window`, given the creation times
/// matched by `sql` (`?1` the identity or provider, `?2` the window start,
/// `?3` the count to skip): `None` while it fits now.
fn window_wait(
    c: &Connection,
    sql: &str,
    key: &[u8],
    window: Window,
    now_ms: u64,
) -> rusqlite::Result<Option<u64>> {
    if window.limit == 0 {
        return Ok(None);
    }
    let start = now_ms.saturating_sub(window.window_ms);
    let count: i64 = c
        .prepare_cached(&format!("SELECT COUNT(*) {sql}"))?
        .query_row(params![key, i64_of(start)], |r| r.get(0))?;
    let count = u64::try_from(count).unwrap_or(0);
    if count < window.limit {
        return Ok(None);
    }
    // The window frees a slot when the (count - limit + 1)-th oldest request
    // in it leaves it.
    let skip = count - window.limit;
    let oldest: Option<i64> = c
        .prepare_cached(&format!(
            "SELECT created_at_ms {sql} ORDER BY created_at_ms LIMIT 1 OFFSET ?3"
        ))?
        .query_row(params![key, i64_of(start), i64_of(skip)], |r| r.get(0))
        .optional()?;
    let leaves_at = oldest
        .and_then(|t| u64::try_from(t).ok())
        .map_or(now_ms, |t| t.saturating_add(window.window_ms));
    Ok(Some(leaves_at.saturating_sub(now_ms).max(1)))
}

/// The rate limits: `Some(RateLimited)` when a window is full.
fn rate_limited(
    c: &Connection,
    e: &RequestEnvelopeBody,
    limits: &RequestLimits,
    now_ms: u64,
) -> rusqlite::Result<Option<CreateResult>> {
    const BY_IDENTITY: &str = "FROM requests WHERE identity_id = ?1 AND created_at_ms > ?2 \
        AND service_provider_id != zeroblob(16)";
    const BY_PROVIDER: &str = "FROM requests WHERE service_provider_id = ?1 AND created_at_ms > ?2";
    let checks = limits
        .per_identity
        .iter()
        .map(|w| {
            (
                LimitScope::Identity,
                BY_IDENTITY,
                e.identity_id.as_bytes(),
                *w,
            )
        })
        .chain(limits.per_provider.iter().map(|w| {
            (
                LimitScope::Provider,
                BY_PROVIDER,
                e.service_provider_id.as_bytes(),
                *w,
            )
        }));
    let mut worst: Option<(LimitScope, u64)> = None;
    for (scope, sql, key, window) in checks {
        if let Some(wait) = window_wait(c, sql, key.as_slice(), window, now_ms)?
            && worst.is_none_or(|(_, w)| wait > w)
        {
            worst = Some((scope, wait));
        }
    }
    Ok(
        worst.map(|(scope, retry_after_ms)| CreateResult::RateLimited {
            scope,
            retry_after_ms,
        }),
    )
}

fn pending_count(c: &Connection, identity_id: &IdentityId, now_ms: u64) -> rusqlite::Result<u64> {
    let n: i64 = c
        .prepare_cached(
            "SELECT COUNT(*) FROM requests WHERE identity_id = ?1 AND status = 'pending' AND expires_at_ms > ?2",
        )?
        .query_row(params![identity_id.as_bytes().as_slice(), i64_of(now_ms)], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The decision on a self-service login request moves its change, in the
/// decision's transaction: approving the first login of a contact change
/// starts the wait, approving the second completes it, approving a user-ID
/// change applies it; deny and report-fraud cancel.
fn on_self_service_decision(
    c: &Connection,
    request_id: &RequestId,
    record: &DecisionRecord,
    now_ms: u64,
) -> StoreResult<()> {
    let change = c
        .prepare_cached(&format!(
            "SELECT {CHANGE_COLUMNS} FROM self_service_changes \
             WHERE first_request_id = ?1 OR second_request_id = ?1"
        ))?
        .query_row(params![request_id.as_bytes().as_slice()], change_row)
        .optional()?;
    let Some(change) = change else { return Ok(()) };
    let state = change.state_at(now_ms);
    let is_first = change.first_request_id == *request_id;
    let step_matches = match state {
        ChangeState::AwaitingFirstLogin => is_first,
        ChangeState::AwaitingSecondLogin => change.second_request_id == Some(*request_id),
        _ => false,
    };
    if !step_matches {
        // A stale request of a change that moved on (cannot normally happen:
        // moving on cancels the change's pending requests).
        return Ok(());
    }
    let authenticator = Some(record.authenticator_id);
    if record.outcome != Outcome::Approve {
        set_change_state(c, &change.id, ChangeState::Cancelled, now_ms)?;
        record_contact_event(
            c,
            &change,
            SecurityEventKind::ContactChangeCancelled,
            authenticator,
            None,
            now_ms,
        )?;
        return Ok(());
    }
    match (change.kind, is_first) {
        (ChangeKind::Contact(_), true) => {
            c.prepare_cached(
                "UPDATE self_service_changes SET state = 'waiting_second_login', first_login_at_ms = ?2, \
                 earliest_second_login_at_ms = ?3 WHERE id = ?1",
            )?
            .execute(params![
                change.id.as_bytes().as_slice(),
                i64_of(now_ms),
                i64_of(now_ms.saturating_add(change.gap_ms))
            ])?;
            // Both contacts learn that the first login was approved and when
            // the change can complete: the hour in which to cancel starts now.
            let approved = StoredChange {
                first_login_at_ms: Some(now_ms),
                earliest_second_login_at_ms: Some(now_ms.saturating_add(change.gap_ms)),
                ..change.clone()
            };
            record_contact_event(
                c,
                &approved,
                SecurityEventKind::ContactChangeStarted,
                Some(record.authenticator_id),
                Some("Første login godkendt / first login approved"),
                now_ms,
            )?;
        }
        (ChangeKind::Contact(channel), false) => {
            if change
                .earliest_second_login_at_ms
                .is_none_or(|t| now_ms < t)
            {
                // Never: the second request is only created after the earliest time.
                return Err(StoreError::Backend("second login before the gap".into()));
            }
            // The event first: it notifies the contact stored now (the old one)
            // and the new one.
            record_contact_event(
                c,
                &change,
                SecurityEventKind::ContactChangeCompleted,
                authenticator,
                None,
                now_ms,
            )?;
            let sql = match channel {
                ContactChannel::Phone => "UPDATE identities SET phone = ?2 WHERE id = ?1",
                _ => "UPDATE identities SET email = ?2 WHERE id = ?1",
            };
            c.prepare_cached(sql)?.execute(params![
                change.identity_id.as_bytes().as_slice(),
                change.new_value
            ])?;
            set_change_state(c, &change.id, ChangeState::Completed, now_ms)?;
        }
        (ChangeKind::UserId, _) => {
            apply_user_id_change(c, &change, record.authenticator_id, now_ms)?
        }
    }
    Ok(())
}

/// Applies an approved user-ID change: the rules against the person's data
/// and the case-insensitive uniqueness are checked here, in the write (only
/// the person-independent rules are checked before the login, so the public
/// portal is no oracle for user IDs or personal data).
fn apply_user_id_change(
    c: &Connection,
    change: &StoredChange,
    authenticator_id: AuthenticatorId,
    now_ms: u64,
) -> StoreResult<()> {
    let first_login = "UPDATE self_service_changes SET first_login_at_ms = ?2 WHERE id = ?1";
    c.prepare_cached(first_login)?
        .execute(params![change.id.as_bytes().as_slice(), i64_of(now_ms)])?;
    let fail = |code: &str, message: String| -> StoreResult<()> {
        c.prepare_cached(
            "UPDATE self_service_changes SET state = 'failed', failure_code = ?2, failure_message = ?3, \
             closed_at_ms = ?4 WHERE id = ?1",
        )?
        .execute(params![change.id.as_bytes().as_slice(), code, message, i64_of(now_ms)])?;
        Ok(())
    };
    let identity = load_identity(c, &change.identity_id)?
        .ok_or_else(|| StoreError::Backend("identity vanished".into()))?;
    let person = crate::userid::PersonalData {
        name: identity.display_name.as_deref(),
        phone: identity.phone.as_deref(),
        email: identity.email.as_deref(),
    };
    let new_user_id = match crate::userid::check(&change.new_value, person) {
        Ok(v) => v,
        Err(e) => return fail("invalid_user_id", e.to_string()),
    };
    let folded = crate::userid::fold(&new_user_id);
    let taken: bool = c
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM identities WHERE user_id_folded = ?1 AND id != ?2)",
        )?
        .query_row(params![folded, identity.id.as_bytes().as_slice()], |r| {
            r.get(0)
        })?;
    if taken {
        return fail(
            "user_id_taken",
            "this user ID was taken meanwhile; choose another".into(),
        );
    }
    c.prepare_cached("UPDATE identities SET user_id = ?2, user_id_folded = ?3 WHERE id = ?1")?
        .execute(params![
            identity.id.as_bytes().as_slice(),
            new_user_id,
            folded
        ])?;
    insert_event(
        c,
        &NewEvent {
            identity_id: identity.id,
            kind: SecurityEventKind::UserIdChanged,
            authenticator_id: Some(authenticator_id),
            detail: None,
            occurred_at_ms: now_ms,
            extra_recipients: Vec::new(),
        },
    )?;
    set_change_state(c, &change.id, ChangeState::Completed, now_ms)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: u64 = 300_000;

    async fn store_with_blocked_identity() -> (tempfile::TempDir, SqliteStore, IdentityId) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.sqlite3")).unwrap();
        let id = IdentityId::random();
        store
            .create_identity(Identity {
                id,
                user_id: "anna#2024x".into(),
                user_id_folded: "anna#2024x".into(),
                display_name: None,
                blocked: false,
                created_at_ms: 0,
                phone: Some("+4520304050".into()),
                email: Some("anna@example.dk".into()),
                notify_every_use: false,
            })
            .await
            .unwrap();
        store.set_blocked(id, true, 1_000).await.unwrap().unwrap();
        (dir, store, id)
    }

    #[tokio::test]
    async fn a_claimed_delivery_is_claimed_again_only_after_its_lease() {
        let (_dir, store, _) = store_with_blocked_identity().await;
        let claim = |now: u64| store.claim_deliveries(vec![Channel::Sms], now, 10, LEASE, 5);
        let first = claim(1_000).await.unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].attempts, 1);
        assert_eq!(first[0].address, "+4520304050");
        assert_eq!(first[0].event.kind, SecurityEventKind::IdentityBlocked);
        assert_eq!(first[0].event.occurred_at_ms, 1_000);
        // Leased: a second dispatcher (or loop) does not get it...
        assert!(claim(1_000).await.unwrap().is_empty());
        assert!(claim(1_000 + LEASE - 1).await.unwrap().is_empty());
        // ...but if the first died mid-delivery, it comes back (at least once).
        let again = claim(1_000 + LEASE).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!((again[0].id, again[0].attempts), (first[0].id, 2));
        store
            .finish_delivery(again[0].id, DeliveryOutcome::Delivered, 1_000 + LEASE)
            .await
            .unwrap();
        assert!(
            claim(u64::MAX / 4).await.unwrap().is_empty(),
            "delivered once"
        );
        // The e-mail row is untouched by SMS claims.
        let email = store
            .claim_deliveries(vec![Channel::Email], 1_000, 10, LEASE, 5)
            .await
            .unwrap();
        assert_eq!(email.len(), 1);
        assert_eq!(email[0].address, "anna@example.dk");
    }

    #[tokio::test]
    async fn failures_wait_their_retry_time_and_attempts_are_bounded() {
        let (_dir, store, _) = store_with_blocked_identity().await;
        let claim = |now: u64| store.claim_deliveries(vec![Channel::Email], now, 10, LEASE, 2);
        let d = claim(1_000).await.unwrap().remove(0);
        let failed = |retry| DeliveryOutcome::Failed {
            error: "transient: SMTP 421".into(),
            retry_at_ms: retry,
        };
        store
            .finish_delivery(d.id, failed(Some(31_000)), 1_000)
            .await
            .unwrap();
        assert!(claim(30_999).await.unwrap().is_empty());
        let d = claim(31_000).await.unwrap().remove(0);
        assert_eq!(d.attempts, 2);
        store
            .finish_delivery(d.id, failed(Some(91_000)), 31_000)
            .await
            .unwrap();
        // Two attempts were the maximum.
        assert!(claim(u64::MAX / 4).await.unwrap().is_empty());
        // Given up rows are parked even for a dispatcher allowing more.
        store
            .finish_delivery(d.id, failed(None), 31_000)
            .await
            .unwrap();
        assert!(
            store
                .claim_deliveries(vec![Channel::Email], u64::MAX / 4, 10, LEASE, 100)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .claim_deliveries(Vec::new(), 1_000, 10, LEASE, 5)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn only_a_change_of_block_state_is_an_event() {
        let (_dir, store, id) = store_with_blocked_identity().await;
        store.set_blocked(id, true, 2_000).await.unwrap().unwrap();
        store.set_blocked(id, false, 3_000).await.unwrap().unwrap();
        assert!(
            store
                .set_blocked(IdentityId::random(), true, 4_000)
                .await
                .unwrap()
                .is_none()
        );
        let all = store
            .claim_deliveries(vec![Channel::Sms], 10_000, 10, LEASE, 5)
            .await
            .unwrap();
        let kinds: Vec<_> = all
            .iter()
            .map(|d| (d.event.kind, d.event.occurred_at_ms))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (SecurityEventKind::IdentityBlocked, 1_000),
                (SecurityEventKind::IdentityUnblocked, 3_000)
            ]
        );
        assert!(
            !store
                .set_notify_every_use(IdentityId::random(), true)
                .await
                .unwrap()
        );
        assert!(store.set_notify_every_use(id, true).await.unwrap());
        assert!(store.identity(id).await.unwrap().unwrap().notify_every_use);
    }
}
