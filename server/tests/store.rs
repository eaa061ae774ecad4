//! The store conformance suite run from outside the crate, as another
//! backend's tests would run it: on SQLite, each check on a new database
//! file in a temporary directory, and on PostgreSQL, each check on a
//! scratch database of the server `EID_TEST_DATABASE_URL` names (skipped
//! loudly without one, a failure in CI; scripts/with-postgres.sh starts
//! one). Needs `--features conformance` (the crate's own unit tests run the
//! same suite on both backends without it).
#![cfg(feature = "conformance")]

mod sqlite {
    use eid_server::store::SqliteStore;
    use eid_server::store::conformance::FreshStore;

    async fn fresh() -> FreshStore {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("conformance.sqlite3")).unwrap();
        FreshStore::keeping(store, dir)
    }

    eid_server::store_conformance_suite!(fresh());
}

mod postgres {
    use eid_server::store::conformance::FreshStore;
    use eid_server::store::postgres::testing::{ScratchDatabase, test_database_url};

    async fn fresh() -> FreshStore {
        let Some(url) = test_database_url() else {
            return FreshStore::skipped();
        };
        let db = ScratchDatabase::create(&url).await;
        let store = db.store().await;
        FreshStore::keeping(store, db)
    }

    eid_server::store_conformance_suite!(fresh());
}
