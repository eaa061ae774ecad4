//! Scratch databases for the PostgreSQL tests (this crate's and the
//! integration tests'): each test gets a database of its own on the server
//! `EID_TEST_DATABASE_URL` names, so tests run in parallel, and the
//! database is dropped when its guard is.
//!
//! Without `EID_TEST_DATABASE_URL` the tests are skipped with a loud
//! message, except in CI (`CI=true`), where that is a failure: a missing
//! database must never turn into a green run. `scripts/with-postgres.sh`
//! starts a throw-away server and sets the variable.

use std::sync::Once;

use super::{PostgresStore, parse_database_url};

/// The pool of a test's store: small, as many tests run at once.
const TEST_POOL_SIZE: usize = 8;

/// The variable naming the test server (a `postgres://` URL; it may hold a
/// password, so it lives in the environment, never on a command line).
pub const TEST_DATABASE_URL: &str = "EID_TEST_DATABASE_URL";

/// The test server's URL, or `None` (after a loud message) when there is
/// none. Panics in CI without one.
pub fn test_database_url() -> Option<String> {
    match std::env::var(TEST_DATABASE_URL) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "{TEST_DATABASE_URL} is not set, and CI must run the PostgreSQL tests: \
                     run them under scripts/with-postgres.sh"
                );
            }
            static WARN: Once = Once::new();
            WARN.call_once(|| {
                // Straight to stderr: the test harness captures `eprintln!`.
                use std::io::Write;
                let _ = write!(
                    std::io::stderr(),
                    "\n*** PostgreSQL tests SKIPPED: {TEST_DATABASE_URL} is not set. ***\n\
                     *** Run them with scripts/with-postgres.sh cargo test ...        ***\n\n"
                );
            });
            None
        }
    }
}

/// A scratch database on the test server, or `None` (the test is
/// skipped, see [`test_database_url`]) when there is none.
pub async fn scratch() -> Option<ScratchDatabase> {
    Some(ScratchDatabase::create(&test_database_url()?).await)
}

/// A new, empty database on the test server; dropped (with any connection
/// still open to it) when the guard is.
pub struct ScratchDatabase {
    admin: tokio_postgres::Config,
    name: String,
    config: tokio_postgres::Config,
}

impl std::fmt::Debug for ScratchDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScratchDatabase")
            .field("name", &self.name)
            .finish()
    }
}

impl ScratchDatabase {
    /// Creates one on the server at `url`.
    pub async fn create(url: &str) -> Self {
        let admin = parse_database_url(url).expect("a valid test database URL");
        let name = format!(
            "eid_test_{}",
            hex::encode(eid_protocol::crypto::random_array::<8>())
        );
        let (client, connection) = admin
            .connect(tokio_postgres::NoTls)
            .await
            .expect("the test database server answers");
        let task = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("a scratch database");
        drop(client);
        let _ = task.await;
        let mut config = admin.clone();
        config.dbname(&name);
        Self {
            admin,
            name,
            config,
        }
    }

    /// Its connection configuration.
    pub fn config(&self) -> tokio_postgres::Config {
        self.config.clone()
    }

    /// A `postgres://` URL of it, for a server started with a URL.
    pub fn url(&self, base: &str) -> String {
        let mut url = url::Url::parse(base).expect("a postgres:// test URL");
        url.set_path(&self.name);
        url.to_string()
    }

    /// A store on it (migrated), with a small pool.
    pub async fn store(&self) -> PostgresStore {
        PostgresStore::connect_with(self.config(), TEST_POOL_SIZE)
            .await
            .expect("a store on the scratch database")
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        // A thread of its own: this may run inside (or outside) a runtime.
        let admin = self.admin.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok((client, connection)) = admin.connect(tokio_postgres::NoTls).await {
                    tokio::spawn(connection);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}
