//! The store conformance suite on PostgreSQL, each check on a scratch
//! database of its own; and the checks only this backend needs.

use super::testing::{ScratchDatabase, test_database_url};
use crate::store::conformance::FreshStore;

async fn fresh() -> FreshStore {
    let Some(url) = test_database_url() else {
        return FreshStore::skipped();
    };
    let db = ScratchDatabase::create(&url).await;
    let store = db.store().await;
    FreshStore::keeping(store, db)
}

crate::store_conformance_suite!(fresh());

#[test]
fn the_postgres_migrations_have_the_same_numbers_and_names_as_the_sqlite_ones() {
    let dir = |d: &str| -> Vec<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(d);
        let mut names: Vec<String> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .map(|n| n.trim_end_matches(".sql").to_owned())
            .collect();
        names.sort();
        names
    };
    let sqlite = dir("sqlite");
    let postgres = dir("postgres");
    assert_eq!(
        sqlite, postgres,
        "every SQLite migration has its PostgreSQL twin"
    );
    // And the store applies them all, in order.
    assert_eq!(super::migration_names(), postgres);
}

#[tokio::test]
async fn an_unreachable_database_answers_unavailable_as_a_503_and_shows_no_password() {
    use eid_protocol::IdentityId;

    use crate::error::ApiError;
    use crate::store::Store;

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://eid:hunter2-secret@127.0.0.1:{port}/eiddb");
    let config = super::parse_database_url(&url).unwrap();
    // A store whose database went away after it started.
    let store = super::PostgresStore {
        pool: super::connection::pool(config.clone(), None, 2).unwrap(),
        target: super::DatabaseTarget::of(&config),
        config,
        tls: None,
    };
    assert_eq!(
        store.target().to_string(),
        format!("127.0.0.1:{port}/eiddb")
    );
    let err = store.identity(IdentityId::random()).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    let shown = format!("{err} {err:?} {store:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    let api = ApiError::from(err);
    assert_eq!(api.status(), axum::http::StatusCode::SERVICE_UNAVAILABLE);
    // A statement error is no outage: it stays a 500.
    let other = crate::store::StoreError::Inconsistent("test");
    assert!(!other.is_unavailable());
    // The configured URL is shown without its password.
    let configured = crate::config::DatabaseUrl::new(url);
    assert!(!format!("{configured:?}").contains("hunter2"));
    assert!(
        configured
            .redacted()
            .contains(&format!("127.0.0.1:{port}/eiddb"))
    );
}
