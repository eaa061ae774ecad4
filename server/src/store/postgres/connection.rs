//! The PostgreSQL connections: a deadpool pool of tokio-postgres clients,
//! the numbered migrations, and the transaction runners every trait method
//! goes through.
//!
//! Writes run in `SERIALIZABLE` transactions ([`PostgresStore::write`])
//! unless a cheaper runner is enough and says why: PostgreSQL then
//! guarantees that concurrent transactions, on this replica or any other,
//! have the effect of some serial order, which is exactly what the SQLite
//! backend's single writer gives. So the same check-then-write logic stays
//! correct with several replicas on one database. A transaction PostgreSQL
//! aborts for a serialization conflict or deadlock is run again from the
//! start (bounded). The hot writes whose checks rest on rows they lock
//! (a decision, a request's creation, a code redemption) run at `READ
//! COMMITTED` instead ([`PostgresStore::write_locked`]), and a write of one
//! statement whose constraint or `WHERE` decides alone runs by itself
//! ([`PostgresStore::write_one`]); each says in a comment why its
//! isolation is enough. Reads run in one `REPEATABLE READ` snapshot, or
//! alone when they are one statement. [`Tx`] saves round trips: its
//! `BEGIN` rides with the first statement and its statements can be
//! pipelined. `synchronous_commit` is forced on for every connection: a
//! commit is acknowledged only once it is durable.

use std::future::Future;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures_util::future::BoxFuture;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};

use super::PostgresStore;
use crate::store::{StoreError, StoreResult};

/// A transaction of a pooled connection (with its statement cache): see
/// [`Tx`] below.
/// One statement parameter.
pub(super) type P<'a> = &'a (dyn ToSql + Sync);

/// The schema, in order: the same numbers and names as the SQLite files
/// (a test checks that both directories list the same ones). Never edit or
/// renumber a released migration; add a new file at the end.
pub(super) const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_initial",
        include_str!("../../../migrations/postgres/0001_initial.sql"),
    ),
    (
        "0002_binding_failures",
        include_str!("../../../migrations/postgres/0002_binding_failures.sql"),
    ),
    (
        "0003_contact_and_outbox",
        include_str!("../../../migrations/postgres/0003_contact_and_outbox.sql"),
    ),
    (
        "0004_device_enrolments",
        include_str!("../../../migrations/postgres/0004_device_enrolments.sql"),
    ),
    (
        "0005_self_service_changes",
        include_str!("../../../migrations/postgres/0005_self_service_changes.sql"),
    ),
    (
        "0006_flood_limits",
        include_str!("../../../migrations/postgres/0006_flood_limits.sql"),
    ),
    (
        "0007_decisions_by_identity",
        include_str!("../../../migrations/postgres/0007_decisions_by_identity.sql"),
    ),
    (
        "0008_agents_audit",
        include_str!("../../../migrations/postgres/0008_agents_audit.sql"),
    ),
    (
        "0009_oidc_clients",
        include_str!("../../../migrations/postgres/0009_oidc_clients.sql"),
    ),
    (
        "0010_oidc_logins",
        include_str!("../../../migrations/postgres/0010_oidc_logins.sql"),
    ),
    (
        "0011_api_keys_and_webhooks",
        include_str!("../../../migrations/postgres/0011_api_keys_and_webhooks.sql"),
    ),
    (
        "0012_code_devices",
        include_str!("../../../migrations/postgres/0012_code_devices.sql"),
    ),
    (
        "0013_chips",
        include_str!("../../../migrations/postgres/0013_chips.sql"),
    ),
    (
        "0014_call_context",
        include_str!("../../../migrations/postgres/0014_call_context.sql"),
    ),
    (
        "0015_decide_function",
        include_str!("../../../migrations/postgres/0015_decide_function.sql"),
    ),
    (
        "0016_checks_without_temporary_tables",
        include_str!("../../../migrations/postgres/0016_checks_without_temporary_tables.sql"),
    ),
];

/// The advisory lock replicas take while migrating, so several starting at
/// once apply each migration once ("eidmigr" in ASCII).
const MIGRATION_LOCK: i64 = 0x0065_6964_6d69_6772;

/// How often a transaction aborted by a serialization conflict is run again
/// before the caller gets the error.
const MAX_ATTEMPTS: u32 = 64;

/// How long a caller waits for a pooled connection before its request is
/// answered "unavailable" (503).
pub(super) const POOL_WAIT: Duration = Duration::from_secs(5);

/// Builds the pool (no connection is made yet).
pub(super) fn pool(
    mut config: tokio_postgres::Config,
    tls: Option<rustls::ClientConfig>,
    max_size: usize,
) -> StoreResult<Pool> {
    // Durable acknowledgements whatever the server's default says.
    config.options("-c synchronous_commit=on");
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match tls {
        None => Manager::from_config(config, tokio_postgres::NoTls, manager_config),
        Some(tls) => Manager::from_config(
            config,
            tokio_postgres_rustls::MakeRustlsConnect::new(tls),
            manager_config,
        ),
    };
    Pool::builder(manager)
        .max_size(max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(POOL_WAIT))
        .recycle_timeout(Some(POOL_WAIT))
        .build()
        .map_err(|e| StoreError::PoolSetup(e.to_string()))
}

/// Applies the migrations not yet applied, each in its own transaction,
/// under an advisory lock (one replica migrates, the others wait and then
/// find nothing to do).
pub(super) async fn migrate(pool: &Pool) -> StoreResult<()> {
    let mut client = pool.get().await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let result = async {
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS eid_schema_migrations (\
                 version BIGINT PRIMARY KEY, name TEXT NOT NULL, \
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            )
            .await?;
        let applied: Vec<i64> = client
            .query("SELECT version FROM eid_schema_migrations", &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for (i, (name, sql)) in MIGRATIONS.iter().enumerate() {
            let version = i64::try_from(i + 1).unwrap_or(i64::MAX);
            if applied.contains(&version) {
                continue;
            }
            let tx = client.transaction().await?;
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO eid_schema_migrations (version, name) VALUES ($1, $2)",
                &[&version, name],
            )
            .await?;
            tx.commit().await?;
            tracing::info!(migration = *name, "database migrated");
        }
        Ok::<(), StoreError>(())
    }
    .await;
    // Released on any outcome; a lost connection releases it too.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    result
}

/// Whether PostgreSQL aborted a transaction that may simply be run again.
fn retryable(e: &StoreError) -> bool {
    match e {
        StoreError::Postgres(e) => matches!(
            e.code(),
            Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
        ),
        _ => false,
    }
}

impl PostgresStore {
    /// Runs `f` in a `SERIALIZABLE` transaction and commits; runs it again
    /// from the start when PostgreSQL aborts it for a conflict. `f` must
    /// therefore be repeatable: it gets its inputs anew (cloned) each time.
    pub(super) async fn write<T: Send>(
        &self,
        f: impl for<'a> FnMut(&'a Tx<'a>) -> BoxFuture<'a, StoreResult<T>> + Send,
    ) -> StoreResult<T> {
        self.run(Mode::Serializable, f).await
    }

    /// Runs a read in one `REPEATABLE READ`, read-only transaction: one
    /// consistent snapshot for every statement of it.
    pub(super) async fn read<T: Send>(
        &self,
        f: impl for<'a> FnMut(&'a Tx<'a>) -> BoxFuture<'a, StoreResult<T>> + Send,
    ) -> StoreResult<T> {
        self.run(Mode::Snapshot, f).await
    }

    /// Runs a read in one `REPEATABLE READ` snapshot that also makes one
    /// write whose outcome it does not judge by (a pull's replay nonce, its
    /// first statement, so the snapshot is taken with it): a read-write
    /// transaction whose `COMMIT` is waited for (the durable
    /// acknowledgement of the write). Run again on a serialization failure
    /// (at this level, a concurrent insert of the same key: run again, the
    /// insert then finds it).
    pub(super) async fn read_writing<T: Send>(
        &self,
        f: impl for<'a> FnMut(&'a Tx<'a>) -> BoxFuture<'a, StoreResult<T>> + Send,
    ) -> StoreResult<T> {
        self.run(Mode::SnapshotWrite, f).await
    }

    /// Runs a read of exactly one statement without an explicit
    /// transaction: a single statement already sees one snapshot, so
    /// `BEGIN` and `COMMIT` would only add work (debug builds check that
    /// `f` runs one statement at most).
    pub(super) async fn read_one<T: Send>(
        &self,
        f: impl for<'a> FnMut(&'a Tx<'a>) -> BoxFuture<'a, StoreResult<T>> + Send,
    ) -> StoreResult<T> {
        self.run(Mode::Single, f).await
    }

    /// Runs a write of exactly one statement in its own implicit
    /// transaction (no `BEGIN`, no `COMMIT`: the answer comes after the
    /// commit, so it is as durable as any), for the writes whose one
    /// statement decides alone: an insert whose uniqueness the constraint
    /// enforces (`ON CONFLICT DO NOTHING`), or an `UPDATE ... WHERE` on the
    /// state it checks, which PostgreSQL re-evaluates on the newest version
    /// of a row a concurrent writer changed: of two such updates, one
    /// changes the row and the other finds it no longer matching. Run again
    /// on a serialization failure (a database whose default isolation is
    /// stricter). Debug builds check the single statement.
    pub(super) async fn write_one<T: Send>(
        &self,
        f: impl for<'a> FnMut(&'a Tx<'a>) -> BoxFuture<'a, StoreResult<T>> + Send,
    ) -> StoreResult<T> {
        self.run(Mode::Single, f).await
    }

    /// Runs a write at `READ COMMITTED`, for the writes that only check and
    /// change rows they lock (`FOR UPDATE`, or an `UPDATE ... WHERE` on the
    /// state it checks): the lock makes a concurrent writer of the same row
    /// wait and then see the committed row, which is all they need. Each
    /// caller says why in a comment. Run again on a deadlock (the only
    /// retryable abort at this level).
    pub(super) async fn write_locked<T: Send>(
        &self,
        f: impl for<'a> FnMut(&'a Tx<'a>) -> BoxFuture<'a, StoreResult<T>> + Send,
    ) -> StoreResult<T> {
        self.run(Mode::ReadCommitted, f).await
    }

    async fn run<T: Send>(
        &self,
        mode: Mode,
        mut f: impl for<'a> FnMut(&'a Tx<'a>) -> BoxFuture<'a, StoreResult<T>> + Send,
    ) -> StoreResult<T> {
        let client = self.connection().await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = async {
                let tx = Tx::new(&client, mode);
                let value = f(&tx).await?;
                tx.finish().await?;
                Ok::<T, StoreError>(value)
            }
            .await;
            match outcome {
                Err(e) if attempt < MAX_ATTEMPTS && retryable(&e) => {
                    // A short, growing, jittered pause so the conflicting
                    // transactions do not meet again in lock step.
                    let jitter = u64::from(eid_protocol::crypto::random_array::<1>()[0]);
                    let pause = Duration::from_micros(
                        (200 * u64::from(attempt.min(20))).saturating_add(jitter * 8),
                    );
                    tokio::time::sleep(pause).await;
                }
                other => return other,
            }
        }
    }
}

/// How a [`Tx`] runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Serializable,
    Snapshot,
    /// A snapshot that writes too ([`PostgresStore::read_writing`]).
    SnapshotWrite,
    ReadCommitted,
    /// One statement, no explicit transaction.
    Single,
}

impl Mode {
    fn begin(self) -> Option<&'static str> {
        match self {
            Mode::Serializable => Some("START TRANSACTION ISOLATION LEVEL SERIALIZABLE"),
            Mode::Snapshot => Some("START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"),
            Mode::SnapshotWrite => Some("START TRANSACTION ISOLATION LEVEL REPEATABLE READ"),
            Mode::ReadCommitted => Some("START TRANSACTION ISOLATION LEVEL READ COMMITTED"),
            Mode::Single => None,
        }
    }
}

/// Where a [`Tx`]'s `BEGIN` is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Begun {
    /// Not sent yet: it goes out with the first statement.
    No,
    /// Sent: the transaction must be ended (committed or rolled back).
    Yes,
    /// Ended, or never to be begun (a single-statement read).
    Done,
    /// Its `COMMIT` is sent ([`Tx::commit_in_flight`]), or its `ROLLBACK`
    /// ([`Tx::rollback`]): a statement now would run outside the
    /// transaction, in autocommit, so it is refused.
    Committed,
}

/// A transaction on a pooled connection, cheaper in round trips than
/// tokio-postgres's own: its `BEGIN` is not waited for but sent in the
/// same flight as the first statement (the connection pipelines them; a
/// `BEGIN` on an idle session only fails when the connection does, and
/// then the statement after it fails too), a read-only transaction's
/// `COMMIT` is sent without waiting for its answer (the next user of the
/// connection queues behind it; a read has nothing to make durable), and
/// one dropped before its end (an error, or the caller gone) sends
/// `ROLLBACK` the same way, as tokio-postgres's transaction does. A write's
/// `COMMIT` is always waited for: its answer is the durable
/// acknowledgement. Statements may be run concurrently (joined futures) to
/// pipeline them; they reach the database in the order they are first
/// polled.
pub(super) struct Tx<'a> {
    client: &'a deadpool_postgres::ClientWrapper,
    mode: Mode,
    state: std::sync::Mutex<(Begun, u32)>,
}

impl<'a> Tx<'a> {
    fn new(client: &'a deadpool_postgres::ClientWrapper, mode: Mode) -> Self {
        let begun = if mode == Mode::Single {
            Begun::Done
        } else {
            Begun::No
        };
        Self {
            client,
            mode,
            state: std::sync::Mutex::new((begun, 0)),
        }
    }

    /// The `BEGIN` to send before the next statement, if it is the first;
    /// an error after the transaction's in-flight `COMMIT`.
    fn take_begin(&self) -> StoreResult<Option<&'static str>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.1 += 1;
        debug_assert!(
            self.mode != Mode::Single || state.1 == 1,
            "a single-statement read ran a second statement"
        );
        match state.0 {
            Begun::No => {
                state.0 = Begun::Yes;
                Ok(self.mode.begin())
            }
            Begun::Committed => Err(StoreError::Inconsistent(
                "a statement after the transaction's COMMIT",
            )),
            Begun::Yes | Begun::Done => Ok(None),
        }
    }

    /// Runs one statement's future, preceded (in the same flight) by the
    /// transaction's `BEGIN` when it is the first. The future is not polled
    /// (nothing is sent) when the transaction is already committed.
    async fn statement<T>(
        &self,
        run: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> StoreResult<T> {
        match self.take_begin()? {
            Some(begin) => {
                let (begun, value) =
                    futures_util::future::join(self.client.batch_execute(begin), run).await;
                begun?;
                Ok(value?)
            }
            None => Ok(run.await?),
        }
    }

    /// Ends the transaction: a write's `COMMIT` is waited for, a read's is
    /// only sent.
    async fn finish(self) -> Result<(), tokio_postgres::Error> {
        let begun = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::replace(&mut state.0, Begun::Done)
        };
        if begun != Begun::Yes {
            return Ok(());
        }
        if self.mode == Mode::Snapshot {
            send_only(self.client, "COMMIT");
            Ok(())
        } else {
            self.client.batch_execute("COMMIT").await
        }
    }

    /// The transaction's `COMMIT`, to be joined after its last statements
    /// (prepared, so each goes out on its future's first poll) and so sent
    /// in their flight instead of one more round trip after their answers:
    /// the commit's answer is still waited for (the durable
    /// acknowledgement). Should a statement before it fail, the
    /// transaction is aborted and this `COMMIT` ends it as a rollback,
    /// while the caller gets that statement's error. Nothing may run in
    /// the transaction after it; [`Tx::finish`] then has nothing left to do.
    pub(super) async fn commit_in_flight(&self) -> Result<(), tokio_postgres::Error> {
        let begun = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::replace(&mut state.0, Begun::Committed)
        };
        // No statement ran (nothing was begun): nothing to end.
        if begun != Begun::Yes {
            return Ok(());
        }
        self.client.batch_execute("COMMIT").await
    }

    /// Ends the transaction with `ROLLBACK`, sent without waiting for its
    /// answer (as a read's `COMMIT`), for a write that turned out to have
    /// nothing to keep: a refusal that locked a row to judge under the lock.
    /// The lock gave the transaction an id, so its `COMMIT` would wait for a
    /// WAL flush (milliseconds); an abort waits for none. Nothing may run
    /// in the transaction after it.
    pub(super) fn rollback(&self) {
        let begun = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::replace(&mut state.0, Begun::Committed)
        };
        if begun == Begun::Yes {
            send_only(self.client, "ROLLBACK");
        }
    }

    /// A statement prepared once per connection (deadpool's cache).
    pub(super) async fn prepare_cached(
        &self,
        sql: &str,
    ) -> Result<Statement, tokio_postgres::Error> {
        self.client.prepare_cached(sql).await
    }

    pub(super) async fn query_one(&self, st: &Statement, params: &[P<'_>]) -> StoreResult<Row> {
        self.statement(self.client.query_one(st, params)).await
    }

    pub(super) async fn query_opt(
        &self,
        st: &Statement,
        params: &[P<'_>],
    ) -> StoreResult<Option<Row>> {
        self.statement(self.client.query_opt(st, params)).await
    }

    pub(super) async fn query(&self, st: &Statement, params: &[P<'_>]) -> StoreResult<Vec<Row>> {
        self.statement(self.client.query(st, params)).await
    }

    pub(super) async fn execute(&self, st: &Statement, params: &[P<'_>]) -> StoreResult<u64> {
        self.statement(self.client.execute(st, params)).await
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        let begun = self.state.get_mut().map(|s| s.0).unwrap_or(Begun::Yes);
        if begun == Begun::Yes {
            send_only(self.client, "ROLLBACK");
        }
    }
}

/// Sends a simple statement without waiting for its answer (which the
/// connection then discards): polling the driver's future once puts the
/// message on the connection's queue, ahead of anything sent after it.
fn send_only(client: &tokio_postgres::Client, sql: &str) {
    use futures_util::FutureExt;
    let _ = client.batch_execute(sql).now_or_never();
}

impl PostgresStore {
    /// A pooled connection; while the database is unreachable, tried a few
    /// times over about a second (logged), then the caller gets
    /// [`StoreError::Unavailable`] (a 503: nothing was written).
    async fn connection(&self) -> StoreResult<deadpool_postgres::Object> {
        let mut pause = Duration::from_millis(100);
        for attempt in 1.. {
            match self.pool.get().await {
                Ok(client) => return Ok(client),
                // Every connection busy for the whole wait: no retry, the
                // replica is overloaded and must shed the request.
                Err(e @ deadpool_postgres::PoolError::Timeout(_)) => return Err(e.into()),
                Err(e) if attempt < CONNECT_ATTEMPTS => {
                    tracing::warn!(database = %self.target, attempt, error = %e,
                        "database unreachable; trying again");
                    tokio::time::sleep(pause).await;
                    pause *= 3;
                }
                Err(e) => {
                    tracing::error!(database = %self.target, error = %e,
                        "database unreachable; answering unavailable");
                    return Err(e.into());
                }
            }
        }
        unreachable!("the loop returns")
    }
}

/// Tries at getting a connection while the database is unreachable.
const CONNECT_ATTEMPTS: u32 = 3;

/// Prepares (cached per connection) and runs a statement returning one row.
pub(super) async fn one(t: &Tx<'_>, sql: &str, params: &[P<'_>]) -> StoreResult<Row> {
    let st = t.prepare_cached(sql).await?;
    t.query_one(&st, params).await
}

/// Like [`one`], for at most one row.
pub(super) async fn opt(t: &Tx<'_>, sql: &str, params: &[P<'_>]) -> StoreResult<Option<Row>> {
    let st = t.prepare_cached(sql).await?;
    t.query_opt(&st, params).await
}

/// Like [`one`], for any number of rows.
pub(super) async fn all(t: &Tx<'_>, sql: &str, params: &[P<'_>]) -> StoreResult<Vec<Row>> {
    let st = t.prepare_cached(sql).await?;
    t.query(&st, params).await
}

/// Like [`one`], for a statement without rows; returns the rows changed.
pub(super) async fn exec(t: &Tx<'_>, sql: &str, params: &[P<'_>]) -> StoreResult<u64> {
    let st = t.prepare_cached(sql).await?;
    t.execute(&st, params).await
}

impl PostgresStore {
    /// Runs a claim of leased outbox rows at `READ COMMITTED`: its
    /// `FOR UPDATE SKIP LOCKED` already keeps two dispatchers apart, and a
    /// serializable claim would abort one of two concurrent claimers for
    /// reading the same index range.
    pub(super) async fn claim<T: Send>(
        &self,
        f: impl for<'a> FnMut(&'a Tx<'a>) -> BoxFuture<'a, StoreResult<T>> + Send,
    ) -> StoreResult<T> {
        self.run(Mode::ReadCommitted, f).await
    }
}
