//! The SQLite connections: WAL, `synchronous=FULL`, one writer connection
//! with group commit, and a small pool of reader connections.
//!
//! Every write runs as a job on the writer connection inside a savepoint of
//! a batch transaction; the batch commits once (one fsync for many jobs) and
//! only then are the callers answered. So an acknowledged approval or
//! activation-code use is durable, and writes are serialized (one lock holds
//! the connection for a whole batch), which makes every check-and-set
//! (exactly one decision per request) atomic. Under load the batches run on
//! a writer thread of their own, which takes every job queued meanwhile; a
//! write that finds nothing queued and no batch running is a batch of its
//! own on the caller's thread, which spares it the hand-off to the writer
//! thread and back ([`SqliteStore::queue`]). A job never awaits anything:
//! it may run on an async worker, which it holds until its commit.
//!
//! The one exception is [`SqliteStore::write_unsynced`] (a pull's replay
//! nonce): a batch of nothing else commits without an fsync, so its
//! answer waits for the WAL write only.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
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
/// Bytes of the database file the writer maps for reading the pages that are
/// not in its page cache or the WAL, without a `pread` copy each. Reads
/// only: writes still go through the WAL and its fsync. The readers map
/// nothing (see [`open_reader`]).
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

/// The schema's files, in order. Each is one released migration: never
/// edit or renumber one (the database's `user_version` counts the applied
/// ones); add a new file at the end.
const MIGRATIONS: [&str; 16] = [
    include_str!("../../../migrations/sqlite/0001_initial.sql"),
    include_str!("../../../migrations/sqlite/0002_binding_failures.sql"),
    include_str!("../../../migrations/sqlite/0003_contact_and_outbox.sql"),
    include_str!("../../../migrations/sqlite/0004_device_enrolments.sql"),
    include_str!("../../../migrations/sqlite/0005_self_service_changes.sql"),
    include_str!("../../../migrations/sqlite/0006_flood_limits.sql"),
    include_str!("../../../migrations/sqlite/0007_decisions_by_identity.sql"),
    include_str!("../../../migrations/sqlite/0008_agents_audit.sql"),
    include_str!("../../../migrations/sqlite/0009_oidc_clients.sql"),
    include_str!("../../../migrations/sqlite/0010_oidc_logins.sql"),
    include_str!("../../../migrations/sqlite/0011_api_keys_and_webhooks.sql"),
    include_str!("../../../migrations/sqlite/0012_code_devices.sql"),
    include_str!("../../../migrations/sqlite/0013_chips.sql"),
    include_str!("../../../migrations/sqlite/0014_call_context.sql"),
    include_str!("../../../migrations/sqlite/0015_decide_function.sql"),
    include_str!("../../../migrations/sqlite/0016_checks_without_temporary_tables.sql"),
];

/// The schema, in order, each migration [`checked`].
fn migrations() -> Migrations<'static> {
    Migrations::new(MIGRATIONS.iter().map(|sql| checked(sql)).collect())
}

/// One migration, its foreign keys checked before it commits: the
/// migrations run with the keys off ([`migrate`]), so a migration that
/// deleted or changed a parent row, or rebuilt a table (0016), would
/// otherwise leave orphans behind it unseen. A violation fails the
/// migration and rolls it back.
fn checked(sql: &'static str) -> M<'static> {
    M::up(sql).foreign_key_check()
}

/// Brings the database to the latest schema. Foreign keys are off while the
/// migrations run: a migration that rebuilds a table (0016) drops the old
/// one, which with foreign keys on would delete its rows' children or fail,
/// and the setting cannot change inside a migration's transaction. A
/// migration checks the keys before it commits ([`checked`]); the keys
/// are on again before anything else runs.
fn migrate(conn: &mut Connection) -> StoreResult<()> {
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let migrated = migrations().to_latest(conn);
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(migrated?)
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
/// through the one writer only, and without a mapped file. In WAL mode a
/// connection empties its page cache, and drops its whole mapping, whenever
/// another connection has committed since its last transaction, which under
/// load is nearly every read: each read then paid an `munmap` (with a TLB
/// flush on every core the process ran on), an `mmap` and a page fault per
/// page, where a `pread` of the few pages it reads costs less
/// (docs/benchmarks.md, "Eighth pass").
fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let c = open_connection(path)?;
    c.pragma_update(None, "query_only", "ON")?;
    c.pragma_update(None, "mmap_size", 0)?;
    Ok(c)
}

impl SqliteStore {
    /// Opens (creating and migrating) the database file.
    pub fn open(path: &Path) -> StoreResult<Self> {
        let mut writer_conn = open_connection(path)?;
        // Only the writer commits, so only its setting starts checkpoints.
        writer_conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
        migrate(&mut writer_conn)?;
        let readers = (0..READERS)
            .map(|_| open_reader(path))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Queued>(4096);
        let writer = Writer {
            queue: tx,
            held: Arc::new(Mutex::new(Held {
                conn: writer_conn,
                stopped: false,
            })),
            busy: Arc::new(AtomicBool::new(false)),
        };
        let thread = WriterThread {
            held: Arc::clone(&writer.held),
            busy: Arc::clone(&writer.busy),
        };
        std::thread::Builder::new()
            .name("eid-sqlite-writer".into())
            .spawn(move || thread.run(rx))
            .map_err(StoreError::WriterThread)?;
        Ok(Self {
            writer,
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
        self.queue(f, true).await
    }

    /// Runs `f` in a savepoint of the next commit batch like
    /// [`SqliteStore::write`], and answers after the batch commits too, but a
    /// batch of only such jobs commits with `synchronous=NORMAL`: its pages
    /// reach the WAL file (so a process that dies afterwards keeps it) but
    /// are not fsynced (the next durable commit's fsync takes them to the
    /// disk). Every later write sees it at once (one writer), so a
    /// check-and-set stays atomic; only an OS crash or power cut before the
    /// next durable commit may lose it. Only for writes whose loss is
    /// harmless (today: pull nonces, and nothing else). A read in such a job
    /// (a pull's snapshot) relies on it: a batch without a durable job holds
    /// only such writes, so what the read shows from its own batch is either
    /// fsynced with it or a nonce it never shows.
    pub(super) async fn write_unsynced<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.queue(f, false).await
    }

    /// Runs `f` in a batch of the writer's connection; `durable` asks for a
    /// batch that commits with its fsync. The caller is answered after the
    /// commit.
    ///
    /// When nothing is queued and no batch is running, the calling task
    /// runs its job as a batch of its own, on its own thread
    /// ([`Held::run_here`]): handing one job to the writer thread and its
    /// answer back costs two thread wake-ups (docs/benchmarks.md, "Eleventh
    /// pass"). Anything queued, or a batch running, sends the job to the
    /// writer thread's next batch, so group commit is as before under load.
    /// The job and its commit (with its fsync, and a checkpoint when the WAL
    /// is due one) then hold the calling async worker, as the readers' short
    /// reads do.
    async fn queue<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
        durable: bool,
    ) -> StoreResult<T> {
        // Only when nothing is queued and the writer thread has no jobs in
        // hand: otherwise this job joins their batch (one fsync for all).
        // A caller that passed these checks just before the thread took
        // its jobs may still run first: the thread then waits for that one
        // batch, and the lock keeps every write serialized either way.
        if self.writer.queue.capacity() == self.writer.queue.max_capacity()
            && !self.writer.busy.load(Ordering::Acquire)
            && let Ok(mut held) = self.writer.held.try_lock()
        {
            return held.run_here(f, durable);
        }
        self.queue_on_thread(f, durable).await
    }

    /// Queues `f` for the writer thread's next batch.
    async fn queue_on_thread<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
        durable: bool,
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
            .queue
            .send((job, durable))
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
        Ok(v) => match run(conn, "RELEASE job") {
            Ok(()) => Ok(v),
            Err(e) => {
                // A caller told of an error must not have its writes commit
                // with the batch (nor shown to a later pull in it).
                undo(conn);
                Err(e.into())
            }
        },
        Err(e) => {
            undo(conn);
            Err(e)
        }
    }
}

/// Undoes a failed job's writes. If its savepoint cannot be rolled back,
/// the whole transaction is: the job's writes must not commit with the
/// batch, and the batch's commit then fails for every job in it.
fn undo(conn: &Connection) {
    if conn.execute_batch("ROLLBACK TO job; RELEASE job").is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
}

/// The one connection that writes, and the writer thread's queue.
pub(super) struct Writer {
    /// Jobs for the writer thread's next batch.
    queue: tokio::sync::mpsc::Sender<Queued>,
    /// Held by whoever runs a batch: the writer thread, or a caller running
    /// its own job while the writer is idle ([`SqliteStore::queue`]).
    held: Arc<Mutex<Held>>,
    /// Set while the writer thread has taken jobs off the queue and not yet
    /// committed them: callers then queue behind them instead of running
    /// their own batch first.
    busy: Arc<AtomicBool>,
}

/// The writer's connection, and whether it may still write: one lock holds
/// both, so no batch starts once another has found that the writer must
/// stop.
pub(super) struct Held {
    conn: Connection,
    /// Set when `synchronous=FULL` could not be put back: every later
    /// commit would then be unsynced, so every later write is refused
    /// ([`StoreError::WriterStopped`]).
    stopped: bool,
}

impl Held {
    /// Runs one job as a batch of its own on the calling thread
    /// ([`SqliteStore::queue`]): the same savepoint, transaction and commit
    /// as on the writer thread.
    fn run_here<T>(
        &mut self,
        f: impl FnOnce(&Connection) -> StoreResult<T>,
        durable: bool,
    ) -> StoreResult<T> {
        match self.batch(durable, |c| in_savepoint(c, f)) {
            None => Err(StoreError::WriterStopped),
            Some(Ok((result, commit))) => commit
                .map_err(|e| StoreError::Commit(Arc::new(e)))
                .and(result),
            Some(Err(begin)) => Err(begin.into()),
        }
    }

    /// One batch: `jobs` in one transaction, committed once. A batch with
    /// no durable job commits with `synchronous=NORMAL`, set outside the
    /// transaction and put back after it. Returns what the jobs returned
    /// and the commit's outcome, or the `BEGIN`'s error when nothing ran,
    /// or nothing once the writer has stopped.
    fn batch<R>(
        &mut self,
        durable: bool,
        jobs: impl FnOnce(&Connection) -> R,
    ) -> Option<rusqlite::Result<(R, rusqlite::Result<()>)>> {
        if self.stopped {
            return None;
        }
        let conn = &self.conn;
        let relaxed = !durable && run(conn, "PRAGMA synchronous = NORMAL").is_ok();
        let ran = run(conn, "BEGIN IMMEDIATE").map(|()| {
            let ran = jobs(conn);
            // One commit answers every job: its error is shared by all of
            // them.
            let commit = run(conn, "COMMIT");
            if commit.is_err() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            (ran, commit)
        });
        if relaxed {
            self.restore();
        }
        Some(ran)
    }

    /// Puts `synchronous=FULL` back, or stops the writer.
    fn restore(&mut self) {
        if run(&self.conn, "PRAGMA synchronous = FULL").is_err() {
            tracing::error!("could not restore synchronous=FULL; the writer stops");
            self.stopped = true;
        }
    }
}

/// The writer thread's share of the [`Writer`].
struct WriterThread {
    held: Arc<Mutex<Held>>,
    busy: Arc<AtomicBool>,
}

impl WriterThread {
    /// Takes the queued jobs (up to [`MAX_BATCH`]), runs them in one
    /// transaction, commits once and then answers every caller with the
    /// commit's outcome (group commit: one fsync for many writes). Ends
    /// once the writer has stopped: dropping a job drops its reply channel,
    /// so its caller, and every later one, is told the writer stopped.
    fn run(self, mut rx: tokio::sync::mpsc::Receiver<Queued>) {
        // Both lists are kept between batches (empty), so a batch allocates
        // neither.
        let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
        let mut replies: Vec<Reply> = Vec::with_capacity(MAX_BATCH);
        while let Some((first, durable)) = rx.blocking_recv() {
            self.busy.store(true, Ordering::Release);
            batch.push(first);
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
            let mut held = self.lock();
            let ran = held.batch(durable, |c| {
                for job in batch.drain(..) {
                    // A job whose savepoint could not be rolled back ended
                    // the transaction (`in_savepoint`): the jobs after it
                    // must not run outside one, and the commit then fails.
                    if c.is_autocommit() {
                        break;
                    }
                    replies.push(job(c));
                }
            });
            let stopped = held.stopped;
            drop(held);
            self.busy.store(false, Ordering::Release);
            match ran {
                Some(Ok(((), commit))) => {
                    let commit = commit.map_err(Arc::new);
                    for reply in replies.drain(..) {
                        reply(match &commit {
                            Ok(()) => Ok(()),
                            Err(e) => Err(StoreError::Commit(Arc::clone(e))),
                        });
                    }
                }
                Some(Err(e)) => {
                    // Jobs must not run outside a transaction. Dropping them
                    // drops their reply channels, so each caller gets an
                    // error.
                    tracing::error!(error = %e, "could not begin a write transaction");
                }
                None => {}
            }
            batch.clear();
            if stopped {
                return;
            }
        }
    }

    /// The connection, for one batch. A job's panic is caught in its
    /// savepoint, so a poisoned lock means a panic elsewhere in a batch,
    /// which may have left its transaction open (every later `BEGIN` would
    /// fail) and `synchronous=NORMAL` in force (every later commit would be
    /// unsynced): both are put back, or the writer stops.
    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|poisoned| {
            self.held.clear_poison();
            let mut held = poisoned.into_inner();
            if !held.conn.is_autocommit() {
                let _ = held.conn.execute_batch("ROLLBACK");
            }
            held.restore();
            held
        })
    }
}

/// A writer job held open by the test that queued it.
#[cfg(test)]
pub(super) struct HeldWrite {
    open: std::sync::mpsc::Sender<()>,
    running: oneshot::Receiver<()>,
    answer: tokio::task::JoinHandle<StoreResult<()>>,
}

#[cfg(test)]
impl HeldWrite {
    /// Queues a durable job that waits until [`HeldWrite::finish`]: while it
    /// runs, the jobs queued after it wait for the next batch, and the jobs
    /// queued before it in its own batch wait for its commit.
    pub(super) fn queue(store: &Arc<SqliteStore>) -> Self {
        let (open, gate) = std::sync::mpsc::channel::<()>();
        let (started, running) = oneshot::channel::<()>();
        let store = Arc::clone(store);
        let answer = tokio::spawn(async move {
            store
                .queue_on_thread(
                    move |_| {
                        let _ = started.send(());
                        gate.recv().unwrap();
                        Ok(())
                    },
                    true,
                )
                .await
        });
        Self {
            open,
            running,
            answer,
        }
    }

    /// Waits until the job has started: what was queued before it has run.
    pub(super) async fn started(&mut self) {
        (&mut self.running).await.unwrap();
    }

    /// Lets the job end, and waits for its answer (after its batch's commit).
    pub(super) async fn finish(self) {
        self.open.send(()).unwrap();
        self.answer.await.unwrap().unwrap();
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
        assert_eq!(version, 16, "existing databases must find their version");
        // Opening again applies nothing and keeps the version.
        drop(SqliteStore::open(&path).unwrap());
        let again: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(again, 16);
        migrations().validate().unwrap();
    }

    /// Rows of a database at version 15 (before the tables' rebuild).
    const V15_ROWS: &str = "
        INSERT INTO identities (id, user_id, user_id_folded, created_at_ms)
            VALUES (x'01', 'alice', 'alice', 1);
        INSERT INTO service_providers (id, name, api_key_sha256, created_at_ms)
            VALUES (x'02', 'shop', x'aa', 1);
        INSERT INTO authenticators (id, identity_id, device_public_key, pin_public_key, state,
                last_counter, activated_at_ms)
            VALUES (x'03', x'01', x'd0', x'e0', 'active', 9, 1);
        INSERT INTO requests (rowid, id, identity_id, service_provider_id, envelope,
                envelope_signature, binding_code, status, created_at_ms, expires_at_ms,
                binding_failures)
            VALUES (40, x'10', x'01', x'02', '{\"e\":1}', x'51', '42', 'approved', 5, 6, 2),
                   (41, x'11', x'01', x'02', '{\"e\":2}', x'52', NULL, 'pending', 7, 8, 0),
                   (45, x'12', x'01', x'02', '{\"e\":3}', x'53', NULL, 'cancelled', 9, 10, 0);
        INSERT INTO decisions (rowid, request_id, authenticator_id, outcome, counter,
                decision_sha256, receipt, decided_at_ms, identity_id, call_verdict)
            VALUES (77, x'10', x'03', 'approve', 9, x'd5', '{\"r\":1}', 6, x'01', 'allowed');
        INSERT INTO call_stops (request_id, authenticator_id, call_context, stopped_at_ms)
            VALUES (x'12', x'03', '{}', 9);
        INSERT INTO device_enrolments (id, identity_id, request_id, device_public_key,
                pin_public_key, code, state, requested_at_ms, expires_at_ms, wait_ms)
            VALUES (x'20', x'01', x'11', x'd1', x'e1', 'c', 'awaiting_approval', 7, 8, 0);
    ";

    /// Every row of both rebuilt tables, with its rowid, in rowid order.
    fn requests_and_decisions(c: &Connection) -> Vec<String> {
        let mut out = Vec::new();
        for sql in [
            "SELECT rowid, quote(id), quote(identity_id), quote(service_provider_id), envelope, \
             quote(envelope_signature), quote(binding_code), status, created_at_ms, \
             expires_at_ms, binding_failures FROM requests ORDER BY rowid",
            "SELECT rowid, quote(request_id), quote(authenticator_id), outcome, counter, \
             quote(decision_sha256), receipt, decided_at_ms, quote(identity_id), call_verdict \
             FROM decisions ORDER BY rowid",
        ] {
            let mut stmt = c.prepare(sql).unwrap();
            let n = stmt.column_count();
            let mut rows = stmt.query([]).unwrap();
            while let Some(row) = rows.next().unwrap() {
                let fields: Vec<String> = (0..n)
                    .map(|i| match row.get_ref(i).unwrap() {
                        rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                        v => v.as_str().unwrap().to_owned(),
                    })
                    .collect();
                out.push(fields.join("|"));
            }
        }
        out
    }

    /// The migrations run with foreign keys off, so each checks them before
    /// it commits: a future migration that deleted a parent row with
    /// children fails and leaves the database as it was.
    #[test]
    fn a_migration_that_would_leave_orphans_fails_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite3");
        let mut c = open_connection(&path).unwrap();
        migrate(&mut c).unwrap();
        c.execute_batch(V15_ROWS).unwrap();
        let before = requests_and_decisions(&c);
        let mut next: Vec<M<'static>> = MIGRATIONS.iter().map(|sql| checked(sql)).collect();
        next.push(checked("DELETE FROM identities WHERE id = x'01';"));
        c.pragma_update(None, "foreign_keys", "OFF").unwrap();
        let migrated = Migrations::new(next).to_latest(&mut c);
        c.pragma_update(None, "foreign_keys", "ON").unwrap();
        assert!(
            matches!(
                migrated,
                Err(rusqlite_migration::Error::ForeignKeyCheck(ref v)) if !v.is_empty()
            ),
            "{migrated:?}"
        );
        let version: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        let people: i64 = c
            .query_row("SELECT COUNT(*) FROM identities", [], |r| r.get(0))
            .unwrap();
        assert_eq!(people, 1);
        assert_eq!(requests_and_decisions(&c), before);
    }

    /// Migration 0016 rebuilds the requests and decisions tables: a database
    /// with rows at version 15 keeps every row, its rowid (the journal's
    /// cursor) and its children, the indexes are made again, and the foreign
    /// keys hold and are on again afterwards.
    #[tokio::test]
    async fn the_rebuild_of_version_16_keeps_every_row_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite3");
        let before = {
            let mut c = open_connection(&path).unwrap();
            c.pragma_update(None, "foreign_keys", "OFF").unwrap();
            migrations().to_version(&mut c, 15).unwrap();
            c.pragma_update(None, "foreign_keys", "ON").unwrap();
            c.execute_batch(V15_ROWS).unwrap();
            requests_and_decisions(&c)
        };
        assert_eq!(before.len(), 4);
        assert!(before[0].starts_with("40|X'10'|"), "{before:?}");
        assert!(before[3].starts_with("77|X'10'|"), "{before:?}");
        let store = SqliteStore::open(&path).unwrap();
        let c = open_connection(&path).unwrap();
        let version: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 16);
        assert_eq!(requests_and_decisions(&c), before);
        let indexes: Vec<String> = c
            .prepare(
                "SELECT name FROM sqlite_schema WHERE type = 'index' \
                 AND tbl_name IN ('requests', 'decisions') ORDER BY name",
            )
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            indexes,
            [
                "decisions_by_identity",
                "requests_by_identity_created",
                "requests_by_provider_created",
                "requests_pending",
                "sqlite_autoindex_decisions_1",
                "sqlite_autoindex_requests_1",
            ]
        );
        let children: i64 = c
            .query_row(
                "SELECT (SELECT count(*) FROM call_stops s JOIN requests r ON r.id = s.request_id) \
                 + (SELECT count(*) FROM device_enrolments e JOIN requests r ON r.id = e.request_id)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(children, 2);
        let violations: i64 = c
            .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(violations, 0);
        // The other tables still point at the rebuilt ones by name.
        let sql: String = c
            .query_row(
                "SELECT sql FROM sqlite_schema WHERE name = 'call_stops'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(sql.contains("REFERENCES requests(id)"), "{sql}");
        // The store's own connections have their foreign keys on again, and a
        // request for a missing identity is refused.
        let on: i64 = store
            .write(|c| Ok(c.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(on, 1);
        let refused = store
            .write(|c| {
                Ok(c.execute(
                    "INSERT INTO requests (id, identity_id, service_provider_id, envelope, \
                     envelope_signature, status, created_at_ms, expires_at_ms) \
                     VALUES (x'13', x'99', x'02', '{}', x'00', 'pending', 1, 2)",
                    [],
                )?)
            })
            .await;
        assert!(refused.is_err(), "{refused:?}");
    }

    /// The constraints of 0016 take exactly the values of the `IN` lists they
    /// replace, and refuse any other, on a database made new and on one
    /// migrated from version 15.
    #[test]
    fn the_rewritten_checks_refuse_what_the_lists_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite3");
        {
            let mut c = open_connection(&path).unwrap();
            c.pragma_update(None, "foreign_keys", "OFF").unwrap();
            migrations().to_version(&mut c, 15).unwrap();
            c.pragma_update(None, "foreign_keys", "ON").unwrap();
            c.execute_batch(V15_ROWS).unwrap();
        }
        drop(SqliteStore::open(&path).unwrap());
        let c = open_connection(&path).unwrap();
        let set_status =
            |s: &str| c.execute("UPDATE requests SET status = ?1 WHERE id = x'11'", [s]);
        for good in [
            "pending",
            "approved",
            "denied",
            "fraud_reported",
            "cancelled",
        ] {
            set_status(good).unwrap();
        }
        for bad in ["", "Pending", "pending ", "expired", "approve"] {
            let e = set_status(bad).unwrap_err();
            assert!(
                e.to_string().contains("CHECK constraint failed"),
                "{bad}: {e}"
            );
        }
        let null = c.execute("UPDATE requests SET status = NULL WHERE id = x'11'", []);
        assert!(null.is_err());
        let set_verdict = |v: &str| {
            c.execute(
                "UPDATE decisions SET call_verdict = ?1 WHERE request_id = x'10'",
                [v],
            )
        };
        for good in ["clear", "allowed", "flagged"] {
            set_verdict(good).unwrap();
        }
        for bad in ["", "Clear", "blocked"] {
            let e = set_verdict(bad).unwrap_err();
            assert!(
                e.to_string().contains("CHECK constraint failed"),
                "{bad}: {e}"
            );
        }
        // An integer is not the text '1': the column's TEXT affinity makes it
        // text, which no name equals.
        assert!(set_verdict("1").is_err());
        let status: String = c
            .query_row("SELECT status FROM requests WHERE id = x'11'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(status, "cancelled", "the refused updates changed nothing");
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

    /// A pull's nonce is answered only once its batch has committed, like
    /// every other write: answered while its batch was still open, a process
    /// that died before the commit forgot a nonce the caller was told was
    /// used, and a captured pull could be replayed. The batch is held open by
    /// a durable job queued after the nonce's.
    #[tokio::test]
    async fn an_unsynced_write_is_answered_only_after_its_batch_commits() {
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("s.sqlite3")).unwrap());
        // Hold the writer so that the next two jobs queue into one batch.
        let first = HeldWrite::queue(&store);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut nonce = tokio::spawn({
            let store = Arc::clone(&store);
            async move {
                store
                    .write_unsynced(|c| {
                        Ok(c.execute(
                            "INSERT INTO nonces (nonce, keep_until_ms) VALUES (x'01', 1)",
                            [],
                        )?)
                    })
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut last = HeldWrite::queue(&store);
        tokio::time::sleep(Duration::from_millis(100)).await;
        first.finish().await;
        // The nonce's job has run (it was queued before the last one, which
        // now runs in the same batch), but the batch has not committed.
        last.started().await;
        let early = tokio::time::timeout(Duration::from_millis(200), &mut nonce).await;
        assert!(early.is_err(), "answered before its batch committed");
        last.finish().await;
        assert_eq!(nonce.await.unwrap().unwrap(), 1);
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
        let holder = HeldWrite::queue(&store);
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
        holder.finish().await;
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

    /// Counts the nonces in the database file, on a connection of its own.
    fn nonces_in(path: &Path) -> i64 {
        Connection::open(path)
            .unwrap()
            .query_row("SELECT count(*) FROM nonces", [], |r| r.get(0))
            .unwrap()
    }

    /// With nothing queued and no batch running, a write is a batch of its
    /// own on the caller's thread (no hand-off to the writer thread and
    /// back), committed before it is answered; a failing one changes
    /// nothing, and the next write goes on.
    #[tokio::test]
    async fn a_write_while_the_writer_is_idle_runs_on_the_caller_s_thread_and_commits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite3");
        let store = SqliteStore::open(&path).unwrap();
        let insert = |c: &Connection, nonce: u8| {
            c.execute(
                "INSERT INTO nonces (nonce, keep_until_ms) VALUES (?1, 1)",
                [vec![nonce]],
            )
        };
        let ran_on = store
            .write(move |c| {
                insert(c, 1)?;
                Ok(std::thread::current().id())
            })
            .await
            .unwrap();
        assert_eq!(ran_on, std::thread::current().id());
        assert_eq!(nonces_in(&path), 1, "committed before the answer");
        let failed = store
            .write(move |c| -> StoreResult<()> {
                insert(c, 2)?;
                Err(StoreError::Inconsistent("this job fails"))
            })
            .await;
        assert!(
            matches!(failed, Err(StoreError::Inconsistent(_))),
            "{failed:?}"
        );
        assert_eq!(nonces_in(&path), 1, "the failed job's write is undone");
        store.write(move |c| Ok(insert(c, 3)?)).await.unwrap();
        assert_eq!(nonces_in(&path), 2);
    }

    /// A write that arrives while a batch runs is not run beside it: it
    /// waits for the writer thread's next batch, and is answered after that
    /// batch's commit.
    #[tokio::test]
    async fn a_write_while_a_batch_runs_joins_the_writer_thread_s_next_batch() {
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("s.sqlite3")).unwrap());
        let mut held = HeldWrite::queue(&store);
        held.started().await;
        let mut queued = tokio::spawn({
            let store = Arc::clone(&store);
            async move {
                store
                    .write(|_| Ok(std::thread::current().name().map(str::to_owned)))
                    .await
            }
        });
        let early = tokio::time::timeout(Duration::from_millis(200), &mut queued).await;
        assert!(
            early.is_err(),
            "ran while the writer's batch held the connection"
        );
        held.finish().await;
        let ran_on = queued.await.unwrap().unwrap();
        assert_eq!(ran_on.as_deref(), Some("eid-sqlite-writer"));
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
