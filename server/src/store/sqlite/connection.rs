//! The SQLite connections: WAL, `synchronous=FULL`, one writer thread with
//! group commit, and a small pool of reader connections.
//!
//! Every write runs as a job on the writer thread inside a savepoint of the
//! current batch transaction; the batch commits once (one fsync for many jobs)
//! and only then are the callers answered. So an acknowledged approval or
//! activation-code use is durable, and writes are serialized, which makes every
//! check-and-set (exactly one decision per request) atomic.
//!
//! The one exception is [`SqliteStore::write_unsynced`] (a pull's replay
//! nonce): answered as soon as it ran, and a batch of nothing else commits
//! without an fsync.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};
use tokio::sync::oneshot;

use super::SqliteStore;
use crate::store::{StoreError, StoreResult};

/// Most jobs in one commit batch.
const MAX_BATCH: usize = 256;
/// Reader connections.
pub(super) const READERS: usize = 4;
/// Bytes of the database file each connection maps for reading. In WAL mode
/// a connection empties its page cache whenever another connection has
/// committed since its last transaction, which under load is every read; a
/// mapped file serves the pages that are not in the WAL without a `pread`
/// copy each. Reads only: writes still go through the WAL and its fsync.
const MMAP_BYTES: i64 = 256 * 1024 * 1024;
/// WAL pages after which a commit checkpoints (SQLite's default is 1,000).
/// A checkpoint copies every page in the WAL into the database file once,
/// however often it was written since the last one; the hot pages of a login
/// (the random-key indexes' leaves, the tables' last leaves) are written
/// again by nearly every batch, so a longer interval copies each of them
/// less often per login. The cost is a WAL of up to this many pages (16 MiB)
/// on disk and to replay after a crash; durability is unchanged (every
/// commit is in the WAL and fsynced before its callers are answered).
const WAL_AUTOCHECKPOINT_PAGES: i64 = 4000;

type Reply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// A write job: runs on the writer thread, returns how to answer its caller
/// once the batch's commit is known.
pub(super) type Job = Box<dyn FnOnce(&Connection) -> Reply + Send>;
/// A queued job and whether its caller waits for a durable commit.
pub(super) type Queued = (Job, bool);

/// The schema, in order. Each file is one released migration: never edit or
/// renumber one (the database's `user_version` counts the applied ones);
/// add a new file at the end.
fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("../../../migrations/sqlite/0001_initial.sql")),
        M::up(include_str!(
            "../../../migrations/sqlite/0002_binding_failures.sql"
        )),
        M::up(include_str!(
            "../../../migrations/sqlite/0003_contact_and_outbox.sql"
        )),
        M::up(include_str!(
            "../../../migrations/sqlite/0004_device_enrolments.sql"
        )),
        M::up(include_str!(
            "../../../migrations/sqlite/0005_self_service_changes.sql"
        )),
        M::up(include_str!(
            "../../../migrations/sqlite/0006_flood_limits.sql"
        )),
        M::up(include_str!(
            "../../../migrations/sqlite/0007_decisions_by_identity.sql"
        )),
        M::up(include_str!(
            "../../../migrations/sqlite/0008_agents_audit.sql"
        )),
        M::up(include_str!(
            "../../../migrations/sqlite/0009_oidc_clients.sql"
        )),
        M::up(include_str!(
            "../../../migrations/sqlite/0010_oidc_logins.sql"
        )),
        M::up(include_str!(
            "../../../migrations/sqlite/0011_api_keys_and_webhooks.sql"
        )),
        M::up(include_str!(
            "../../../migrations/sqlite/0012_code_devices.sql"
        )),
        M::up(include_str!("../../../migrations/sqlite/0013_chips.sql")),
        M::up(include_str!(
            "../../../migrations/sqlite/0014_call_context.sql"
        )),
        M::up(include_str!(
            "../../../migrations/sqlite/0015_decide_function.sql"
        )),
    ])
}

/// Opens one connection with the durability settings every connection
/// shares (WAL, `synchronous=FULL`, foreign keys on).
pub(super) fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "mmap_size", MMAP_BYTES)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Opens a reader connection: read-only (`query_only`), so that writes go
/// through the one writer only.
fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let c = open_connection(path)?;
    c.pragma_update(None, "query_only", "ON")?;
    Ok(c)
}

impl SqliteStore {
    /// Opens (creating and migrating) the database file.
    pub fn open(path: &Path) -> StoreResult<Self> {
        let mut writer_conn = open_connection(path)?;
        // Only the writer commits, so only its setting starts checkpoints.
        writer_conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
        migrations().to_latest(&mut writer_conn)?;
        let readers = (0..READERS)
            .map(|_| open_reader(path))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Queued>(4096);
        std::thread::Builder::new()
            .name("eid-sqlite-writer".into())
            .spawn(move || writer_loop(writer_conn, rx))
            .map_err(StoreError::WriterThread)?;
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
    pub(super) async fn write<T: Send + 'static>(
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
            .send((job, true))
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        rx.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// Runs `f` in a savepoint of the next commit batch like
    /// [`SqliteStore::write`], but answers as soon as `f` ran, before the
    /// batch commits, and a batch of only such jobs commits with
    /// `synchronous=NORMAL` (no fsync; the next durable commit's fsync takes
    /// it to the disk too). Every later write sees it at once (one writer),
    /// so a check-and-set stays atomic; an OS crash or power cut, the
    /// process ending before the batch commits, or a failed commit, may lose
    /// it. Only for writes whose loss is harmless.
    pub(super) async fn write_unsynced<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (tx, rx) = oneshot::channel::<StoreResult<T>>();
        let job: Job = Box::new(move |conn: &Connection| {
            let _ = tx.send(in_savepoint(conn, f));
            Box::new(|_| {})
        });
        self.writer
            .send((job, false))
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        rx.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// Runs `f` on a reader connection.
    pub(super) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        // Reads are short indexed look-ups (tens of microseconds); running them
        // inline on the async worker is cheaper than a blocking-pool hand-off,
        // which measured as the largest non-crypto cost under load.
        let pooled = self
            .readers
            .lock()
            .map_err(|_| StoreError::PoolPoisoned)?
            .pop();
        let conn = match pooled {
            Some(c) => c,
            None => open_reader(&self.path)?,
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
    /// Runs a multi-statement read in one read transaction: one consistent
    /// snapshot, and one WAL look-up instead of one per statement.
    pub(super) async fn read_consistent<T: Send + 'static>(
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

/// Runs one job in its own savepoint, so a failed job rolls back only its
/// own writes and the rest of the batch still commits. A job that panics
/// fails the same way ([`StoreError::JobPanicked`]): unwinding through the
/// writer thread would end it, rolling back a batch whose pull nonces were
/// already answered and leaving every later write "writer stopped".
fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    run(conn, "SAVEPOINT job")?;
    // The connection is left as SQLite leaves it after any failed statement
    // (a statement dropped mid-way is reset), and the rollback below undoes
    // whatever the job wrote.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)))
        .unwrap_or_else(|_| {
            tracing::error!("a write job panicked; its writes are rolled back");
            Err(StoreError::JobPanicked)
        });
    match outcome {
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

/// The writer thread: takes the queued jobs (up to [`MAX_BATCH`]), runs them
/// in one transaction, commits once and then answers every caller with the
/// commit's outcome (group commit: one fsync for many writes).
fn writer_loop(conn: Connection, mut rx: tokio::sync::mpsc::Receiver<Queued>) {
    while let Some((first, durable)) = rx.blocking_recv() {
        let mut batch = vec![first];
        let mut durable = durable;
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok((job, d)) => {
                    batch.push(job);
                    durable |= d;
                }
                Err(_) => break,
            }
        }
        // Only unsynced jobs: this commit need not reach the disk now. The
        // level is set outside the transaction and put back after it.
        let relaxed = !durable && run(&conn, "PRAGMA synchronous = NORMAL").is_ok();
        if let Err(e) = run(&conn, "BEGIN IMMEDIATE") {
            // Jobs must not run outside a transaction. Dropping them drops their
            // reply channels, so each caller gets a backend error.
            tracing::error!(error = %e, "could not begin a write transaction");
            drop(batch);
            if relaxed && run(&conn, "PRAGMA synchronous = FULL").is_err() {
                tracing::error!("could not restore synchronous=FULL; the writer stops");
                return;
            }
            continue;
        }
        let replies: Vec<Reply> = batch.into_iter().map(|job| job(&conn)).collect();
        // One commit answers many jobs: its error is shared by all of them.
        let commit = run(&conn, "COMMIT").map_err(Arc::new);
        if commit.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        // Every later commit would be unsynced if the level stayed NORMAL:
        // then the writer stops, and every later write gets `WriterStopped`
        // (a relaxed batch's callers were answered already).
        let restored = !relaxed || run(&conn, "PRAGMA synchronous = FULL").is_ok();
        for reply in replies {
            let c = match &commit {
                Ok(()) => Ok(()),
                Err(e) => Err(StoreError::Commit(Arc::clone(e))),
            };
            reply(c);
        }
        if !restored {
            tracing::error!("could not restore synchronous=FULL; the writer stops");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_version_counts_the_released_migrations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite3");
        drop(SqliteStore::open(&path).unwrap());
        let c = Connection::open(&path).unwrap();
        let version: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 15, "existing databases must find their version");
        // Opening again applies nothing and keeps the version.
        drop(SqliteStore::open(&path).unwrap());
        let again: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(again, 15);
        migrations().validate().unwrap();
    }

    #[tokio::test]
    async fn an_unsynced_write_is_seen_at_once_and_later_commits_stay_durable() {
        use crate::store::Store;
        use eid_protocol::Nonce16;
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.sqlite3")).unwrap();
        let nonce = Nonce16::random();
        assert!(store.use_pull_nonce(nonce, 1).await.unwrap());
        assert!(!store.use_pull_nonce(nonce, 1).await.unwrap());
        assert!(!store.use_nonce(nonce, 1).await.unwrap());
        assert!(store.nonce_seen(nonce).await.unwrap());
        let level: i64 = store
            .write(|c| Ok(c.query_row("PRAGMA synchronous", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(level, 2, "FULL again after an unsynced batch");
    }

    /// A reader opened because the pool was empty is as read-only as the
    /// pooled ones: a write through `read` would bypass the single writer
    /// (its serialized check-and-set and its group commit) and, since such
    /// a connection goes back to the pool, stay possible afterwards.
    #[tokio::test]
    async fn a_reader_opened_when_the_pool_is_empty_is_read_only_too() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.sqlite3")).unwrap();
        store.readers.lock().unwrap().clear();
        let written = store
            .read(|c| {
                Ok(c.execute(
                    "INSERT INTO nonces (nonce, keep_until_ms) VALUES (x'00', 1)",
                    [],
                )?)
            })
            .await;
        assert!(written.is_err(), "{written:?}");
        // The reader went back to the pool, and stays read-only there.
        assert_eq!(store.readers.lock().unwrap().len(), 1);
        let again = store
            .read(|c| Ok(c.execute("DELETE FROM nonces", [])?))
            .await;
        assert!(again.is_err(), "{again:?}");
    }

    /// A write job that panics (a bug in one store method) fails alone: the
    /// other jobs of its batch commit, its own writes are undone, its caller
    /// gets an error, and the writer goes on. Before, the panic ended the
    /// writer thread: the batch was rolled back after its pull nonces had
    /// been answered (a replay of those pulls then passed), and every later
    /// write of the process answered "writer stopped".
    #[tokio::test]
    async fn a_panicking_write_job_fails_alone_and_the_writer_goes_on() {
        use crate::store::Store;
        use eid_protocol::Nonce16;
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("s.sqlite3")).unwrap());
        // The writer is held by a first job, so the next three share a batch.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let holder = {
            let s = Arc::clone(&store);
            tokio::spawn(async move {
                s.write(move |_| {
                    let _ = held.recv();
                    Ok(())
                })
                .await
            })
        };
        let pause = || tokio::time::sleep(std::time::Duration::from_millis(50));
        pause().await;
        let (pulled, kept) = (Nonce16::random(), Nonce16::random());
        let pull = {
            let s = Arc::clone(&store);
            tokio::spawn(async move { s.use_pull_nonce(pulled, u64::MAX >> 2).await })
        };
        pause().await;
        let panicking = {
            let s = Arc::clone(&store);
            tokio::spawn(async move {
                s.write(|c| -> StoreResult<()> {
                    c.execute_batch("CREATE TABLE doomed (x)")?;
                    panic!("a bug in one write job");
                })
                .await
            })
        };
        pause().await;
        let durable = {
            let s = Arc::clone(&store);
            tokio::spawn(async move { s.use_nonce(kept, u64::MAX >> 2).await })
        };
        pause().await;
        release.send(()).unwrap();
        holder.await.unwrap().unwrap();
        assert!(pull.await.unwrap().unwrap(), "the pull's nonce was fresh");
        assert!(
            panicking.await.unwrap().is_err(),
            "the panicking job's caller gets an error"
        );
        assert!(
            durable.await.unwrap().unwrap(),
            "the batch's other write committed"
        );
        // The pull answered before the commit is not forgotten: its replay
        // is refused.
        assert!(!store.use_pull_nonce(pulled, u64::MAX >> 2).await.unwrap());
        assert!(store.nonce_seen(kept).await.unwrap());
        let doomed: bool = store
            .read(|c| {
                Ok(c.query_row(
                    "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'doomed')",
                    [],
                    |r| r.get(0),
                )?)
            })
            .await
            .unwrap();
        assert!(!doomed, "the panicking job's own writes are undone");
        // The writer goes on.
        assert!(store.use_nonce(Nonce16::random(), 1).await.unwrap());
    }

    #[tokio::test]
    async fn the_writer_checkpoints_at_its_own_interval_and_stays_durable() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.sqlite3")).unwrap();
        let (pages, journal, level): (i64, String, i64) = store
            .write(|c| {
                Ok((
                    c.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))?,
                    c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?,
                    c.query_row("PRAGMA synchronous", [], |r| r.get(0))?,
                ))
            })
            .await
            .unwrap();
        assert_eq!(pages, WAL_AUTOCHECKPOINT_PAGES);
        assert_eq!(journal, "wal");
        assert_eq!(level, 2, "synchronous=FULL");
    }
}
