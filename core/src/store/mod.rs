//! The local database: one SQLite file in WAL mode with `synchronous=FULL`, so a
//! committed write (above all the PIN attempt counter) survives a crash or
//! `kill -9`. Schema changes go through `rusqlite_migration`.
//!
//! This file holds the connection, the migrations and the durability switch;
//! each table group has a file of its own adding an `impl Store` block:
//! `authenticators`, `pin` (sealed PIN keys and attempt counters), `requests`,
//! `decisions`, `activation`, `enrolment`, `events` (the security feed and
//! its settings) and `contact_changes`. The device journal's tables are kept
//! by [`crate::journal`].

use std::path::Path;

use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};

use crate::error::{Error, InternalError, Result};

mod activation;
mod authenticators;
mod contact_changes;
mod decisions;
mod enrolment;
mod events;
mod pin;
mod requests;

pub(crate) use activation::PendingActivationRow;
pub(crate) use authenticators::AuthenticatorRow;
pub use authenticators::AuthenticatorState;
pub(crate) use decisions::DecisionStatus;
pub(crate) use enrolment::{DeviceEnrolmentRow, EnrolmentAnswer, PendingEnrolmentRow};
pub(crate) use requests::{PendingRow, PulledRows, decode_envelope, envelope_row};

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
    // 3: the security feed per authenticator (events pulled after a cursor) and the
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
    // 4: the open phone/e-mail changes of each authenticator's identity, as the
    // last pull showed them (the app shows them and offers to cancel).
    r#"
CREATE TABLE contact_changes (
    authenticator_id TEXT NOT NULL REFERENCES accounts ON DELETE CASCADE,
    change_id        TEXT NOT NULL,
    change_json      TEXT NOT NULL,
    PRIMARY KEY (authenticator_id, change_id)
) STRICT;
"#,
    // 5: the device journal (docs/protocol.md, "Device journal"): a hash chain of every decision
    // this phone signed (all authenticators, kept when an authenticator is removed), and
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

/// The schema version (`user_version`) from which the device journal exists.
const JOURNAL_SCHEMA_VERSION: i64 = 5;

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

/// Makes the database its owner's alone before SQLite opens it, whatever the
/// process umask: missing parent folders are created 0700 (a folder that
/// exists is the app's and is left as it is), the database file is created
/// 0600 or narrowed to 0600 if an earlier version left it wider, and so are
/// `-wal` and `-shm` files left by a crash. SQLite gives the `-wal` and
/// `-shm` it creates the main file's mode. The database holds the person's
/// requests, decisions and contact data.
fn make_private(path: &Path) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let mut folder = std::fs::DirBuilder::new();
        folder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            folder.mode(0o700);
        }
        // The app's folder is there on every open but the first: one stat
        // instead of a refused mkdir and a stat.
        if !parent.is_dir() {
            folder.create(parent)?;
        }
    }
    let mut file = std::fs::OpenOptions::new();
    file.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        file.mode(0o600);
    }
    let file = file.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Changed only where not yet 0600: a stat is cheaper than a chmod,
        // which writes the inode (its change time) even when the mode stays.
        let private = std::fs::Permissions::from_mode(0o600);
        let wider = |m: &std::fs::Metadata| m.permissions().mode() & 0o7777 != 0o600;
        if wider(&file.metadata()?) {
            file.set_permissions(private.clone())?;
        }
        for suffix in ["-wal", "-shm"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            match std::fs::metadata(&side) {
                Ok(m) if wider(&m) => std::fs::set_permissions(&side, private.clone())?,
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    drop(file);
    Ok(())
}

/// Runs `f` in a savepoint: a transaction of its own outside one, a step
/// of the caller's inside one (the pull stores everything in one, see
/// [`Store::in_transaction`]). Released if `f` returns `Ok`; otherwise, or
/// if the release fails, or if `f` panics, rolled back to where it began
/// and released, as rusqlite's `Savepoint` does when dropped.
///
/// Unlike `Connection::savepoint`, which prepares its `SAVEPOINT` and
/// `RELEASE` statements again on every use, both statements are cached: the
/// pull runs three or more such steps on every refresh.
pub(crate) fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T>,
) -> Result<T> {
    conn.prepare_cached("SAVEPOINT step")?.execute([])?;
    let mut step = Step {
        conn,
        released: false,
    };
    let out = f(conn)?;
    conn.prepare_cached("RELEASE step")?.execute([])?;
    step.released = true;
    Ok(out)
}

/// An open savepoint of [`in_savepoint`]: unless released, rolled back and
/// released when dropped (an error or a panic in its step), so that no
/// transaction is left open on the connection.
struct Step<'c> {
    conn: &'c Connection,
    released: bool,
}

impl Drop for Step<'_> {
    fn drop(&mut self) {
        if !self.released {
            let _ = self.conn.execute_batch("ROLLBACK TO step; RELEASE step");
        }
    }
}

/// A transaction of [`Store::in_transaction`]: rolled back when dropped if
/// it did not commit (an error, a failed commit, or a panic in its work), so
/// that no transaction, and no write lock, is left open on the connection.
struct Open<'s>(&'s mut Store);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        if !self.0.conn.is_autocommit() {
            let _ = self.0.conn.execute_batch("ROLLBACK");
        }
    }
}

impl Store {
    /// Opens (creating and migrating) the database at `path`, after making
    /// it private (see [`make_private`]).
    pub(crate) fn open(path: &Path) -> Result<Self> {
        make_private(path).map_err(InternalError::DatabaseFile)?;
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
        // WAL is kept in the database file: set only where it is not yet
        // (a new file, or one from before WAL). Reading it costs what the
        // setting did (the first statement reads the schema); setting it
        // again on a WAL file changed nothing.
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            conn.pragma_update(None, "journal_mode", "WAL")?;
        }
        // Per connection, so on every open.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // A pull alone runs about 15 distinct statements: room for those of
        // the other calls too, so none is parsed again on every call.
        conn.set_prepared_statement_cache_capacity(64);
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        // Up to date (every open but the first after an update): nothing to
        // migrate, and `to_latest` would only read the version again.
        // Anything else (older, or newer than this build) goes through it.
        if version != i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX) {
            let migrations: Migrations<'_> = MIGRATIONS.iter().map(|sql| M::up(sql)).collect();
            migrations.to_latest(conn)?;
        }
        // Decisions without a journal entry exist only in a database from
        // before the journal (migration 5): every later decision is journaled
        // in its own commit. Looking for them on every open cost a scan of
        // the journal per stored decision.
        if version < JOURNAL_SCHEMA_VERSION {
            crate::journal::backfill(conn)?;
        }
        Ok(())
    }

    /// Runs `f` in one transaction, committed if it returns `Ok` and rolled
    /// back otherwise (also if `f` panics). The pull stores what it brought
    /// this way: its writes (each in a savepoint) share one write lock and
    /// one commit instead of one each; a decision and its receipt are
    /// stored this way too, with `BEGIN` and `COMMIT` from the statement
    /// cache.
    pub(crate) fn in_transaction<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T>,
    ) -> Result<T> {
        self.conn.prepare_cached("BEGIN")?.execute([])?;
        let open = Open(self);
        let result = f(open.0);
        let ended = match &result {
            Ok(_) => (|| open.0.conn.prepare_cached("COMMIT")?.execute([]).map(drop))(),
            Err(_) => Ok(()),
        };
        // `f` failed, or the commit did: nothing of `f` is kept (`Open`'s drop).
        drop(open);
        ended?;
        result
    }

    /// Runs `f` with `synchronous=NORMAL` (commits not flushed at once), and
    /// restores `FULL` afterwards whatever `f` returned.
    fn without_fsync<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.conn
            .prepare_cached("PRAGMA synchronous = NORMAL")?
            .execute([])?;
        let result = f(self);
        if !self.conn.is_autocommit() {
            // A failed commit left a transaction open; the level can only
            // change outside one.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        // If this fails, PIN attempts refuse to be counted (see set_attempts).
        self.conn
            .prepare_cached("PRAGMA synchronous = FULL")?
            .execute([])?;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pin::WrappedPinKey;
    use eid_protocol::crypto::SoftwareSigningKey;
    use eid_protocol::{AuthenticatorId, IdentityId};

    pub(super) fn sample_authenticator() -> AuthenticatorRow {
        AuthenticatorRow {
            authenticator_id: AuthenticatorId::random(),
            identity_id: IdentityId::random(),
            user_id: "Anna#2024".into(),
            server_public_key: SoftwareSigningKey::generate().public_key().clone(),
            device_key_alias: "d".into(),
            pin_wrap_alias: "w".into(),
            pin_public_key: SoftwareSigningKey::generate().public_key().clone(),
            decision_counter: 0,
            state: AuthenticatorState::Active,
            created_at_ms: 1,
        }
    }

    pub(super) fn sample_wrapped() -> WrappedPinKey {
        WrappedPinKey {
            salt: [1; 32],
            nonce: [2; 12],
            ciphertext: vec![3; 40],
            iterations: 7,
        }
    }

    #[test]
    fn a_savepoint_step_keeps_all_or_nothing_and_ends_its_own_transaction() {
        let s = Store::open_in_memory().unwrap();
        let failed: Result<()> = in_savepoint(&s.conn, |c| {
            c.execute("CREATE TABLE t (x INTEGER)", [])?;
            c.execute("INSERT INTO t VALUES (1)", [])?;
            Err(bad("test"))
        });
        assert!(failed.is_err());
        assert!(s.conn.is_autocommit());
        let tables: i64 = s
            .conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_schema WHERE name = 't'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0);
        // A step that panics is rolled back too, and leaves no transaction.
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _: Result<()> = in_savepoint(&s.conn, |c| {
                c.execute("CREATE TABLE t (x INTEGER)", [])?;
                panic!("a bug in a step");
            });
        }));
        assert!(panicked.is_err());
        assert!(s.conn.is_autocommit());
        for _ in 0..2 {
            in_savepoint(&s.conn, |c| {
                c.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)", [])?;
                c.execute("INSERT INTO t VALUES (1)", [])?;
                Ok(())
            })
            .unwrap();
            assert!(s.conn.is_autocommit());
        }
        let rows: i64 = s
            .conn
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 2);
    }

    #[test]
    fn in_memory_opens() {
        let s = Store::open_in_memory().unwrap();
        assert!(s.pending().unwrap().is_empty());
        assert!(s.pending_activation().unwrap().is_none());
    }

    #[test]
    fn a_database_from_before_the_journal_gets_its_decisions_journaled_when_opened() {
        use eid_protocol::wire::SubmitDecisionRequest;
        use eid_protocol::{
            Decision, Outcome, RequestEnvelopeBody, RequestId, RequestKind, ServiceProviderId,
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("core.db");
        let a = sample_authenticator();
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
        let decision =
            Decision::for_envelope(&envelope, a.authenticator_id, Outcome::Deny, None, 1);
        let submit = SubmitDecisionRequest {
            device_signature: SoftwareSigningKey::generate().sign(&decision.signing_bytes()),
            decision,
            pin_signature: None,
        };
        {
            // Schema version 4, before the journal, with one decision.
            let mut c = Connection::open(&path).unwrap();
            let before: Migrations<'_> = MIGRATIONS[..4].iter().map(|sql| M::up(sql)).collect();
            before.to_latest(&mut c).unwrap();
            // A decision without its authenticator row: the journal needs none.
            c.pragma_update(None, "foreign_keys", "OFF").unwrap();
            c.execute(
                "INSERT INTO decisions (authenticator_id, request_id, counter, submit_json, status, created_at_ms)
                 VALUES (?1, ?2, 1, ?3, 'signed', 5)",
                rusqlite::params![
                    a.authenticator_id.to_string(),
                    envelope.request_id.to_string(),
                    serde_json::to_string(&submit).unwrap()
                ],
            )
            .unwrap();
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(crate::journal::verify(&s.conn).unwrap().entries, 1);
        drop(s);
        // Opened again (now at the latest version): journaled once.
        let s = Store::open(&path).unwrap();
        assert_eq!(crate::journal::verify(&s.conn).unwrap().entries, 1);
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
        let failed: Result<()> = s.without_fsync(|_| Err(Error::UnknownAuthenticator));
        assert!(failed.is_err());
        assert_eq!(sync(&s), 2);
    }

    #[test]
    fn a_failed_or_panicking_transaction_keeps_none_of_it() {
        let mut s = Store::open_in_memory().unwrap();
        s.insert_authenticator(&sample_authenticator(), &sample_wrapped())
            .unwrap();
        let counter = |s: &Store| -> i64 {
            s.conn
                .query_row("SELECT decision_counter FROM accounts", [], |r| r.get(0))
                .unwrap()
        };
        let bump = |s: &mut Store| -> Result<()> {
            s.conn.execute(
                "UPDATE accounts SET decision_counter = decision_counter + 1",
                [],
            )?;
            Ok(())
        };
        let failed: Result<()> = s.in_transaction(|s| {
            bump(s)?;
            Err(Error::UnknownAuthenticator)
        });
        assert!(failed.is_err());
        assert!(s.conn.is_autocommit());
        assert_eq!(counter(&s), 0);
        s.in_transaction(|s| bump(s)).unwrap();
        assert!(s.conn.is_autocommit());
        assert_eq!(counter(&s), 1);
        // A panic in the work rolls it back too: no transaction (and no
        // write lock) is left open for the next caller.
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _: Result<()> = s.in_transaction(|s| {
                bump(s)?;
                panic!("in the transaction's work");
            });
        }));
        assert!(panicked.is_err());
        assert!(s.conn.is_autocommit());
        assert_eq!(counter(&s), 1);
    }

    /// The permission bits in octal, as `ls -l` readers think of them.
    #[cfg(unix)]
    fn mode(path: &Path) -> String {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).unwrap().permissions().mode();
        format!("{:o}", mode & 0o777)
    }

    #[cfg(unix)]
    #[test]
    fn database_files_and_the_folders_the_core_creates_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app").join("data");
        let path = app.join("core.sqlite3");
        let mut s = Store::open(&path).unwrap();
        s.insert_authenticator(&sample_authenticator(), &sample_wrapped())
            .unwrap();
        let mut open = Vec::new();
        for (name, want) in [
            ("app", "700"),
            ("app/data", "700"),
            ("app/data/core.sqlite3", "600"),
            ("app/data/core.sqlite3-wal", "600"),
            ("app/data/core.sqlite3-shm", "600"),
        ] {
            let got = mode(&dir.path().join(name));
            if got != want {
                open.push(format!("{name} {got}"));
            }
        }
        assert_eq!(open, Vec::<String>::new());
    }

    #[cfg(unix)]
    #[test]
    fn a_database_left_readable_by_others_is_narrowed_and_its_folder_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // The app's own folder: the core does not change it.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o751)).unwrap();
        let path = dir.path().join("core.sqlite3");
        drop(Store::open(&path).unwrap());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut s = Store::open(&path).unwrap();
        s.insert_authenticator(&sample_authenticator(), &sample_wrapped())
            .unwrap();
        assert_eq!(mode(&path), "600");
        assert_eq!(mode(&dir.path().join("core.sqlite3-wal")), "600");
        assert_eq!(mode(dir.path()), "751");
    }
}
