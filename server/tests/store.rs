//! The store conformance suite run from outside the crate, as another
//! backend's tests would run it: here on SQLite, each check on a new
//! database file in a temporary directory. Needs `--features conformance`
//! (the crate's own unit tests run the same suite without it).
#![cfg(feature = "conformance")]

use eid_server::store::SqliteStore;
use eid_server::store::conformance::FreshStore;

async fn fresh_sqlite() -> FreshStore {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("conformance.sqlite3")).unwrap();
    FreshStore::keeping(store, dir)
}

eid_server::store_conformance_suite!(fresh_sqlite());
