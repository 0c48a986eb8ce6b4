//! The state conformance suite against every state backend.

use std::sync::Arc;

use tempest_building_blocks::conformance::state::{StateCase, run};
use tempest_components::sqlite::Db;
use tempest_components::state::sqlite::SqliteStateStore;

fn prefix() -> String {
    format!("conf-{}||", uuid::Uuid::new_v4())
}

#[tokio::test]
async fn sqlite_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(&dir.path().join("state.db")).expect("open");
    let store = Arc::new(SqliteStateStore::new(db, "state").expect("store"));
    run(&StateCase {
        store,
        bad_etag: "not-an-etag".into(),
        prefix: prefix(),
        exact_bytes: true,
    })
    .await;
}

#[tokio::test]
async fn in_memory() {
    let store =
        Arc::new(SqliteStateStore::new(Db::in_memory().expect("db"), "state").expect("store"));
    run(&StateCase {
        store,
        bad_etag: "9999999".into(),
        prefix: prefix(),
        exact_bytes: true,
    })
    .await;
}

#[tokio::test]
async fn sqlite_survives_reopen() {
    use tempest_building_blocks::state::{Concurrency, SetRequest, StateStore};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    {
        let store = SqliteStateStore::new(Db::open(&path).expect("open"), "state").expect("store");
        let req = SetRequest {
            key: "k".into(),
            value: "\"v\"".into(),
            etag: None,
            concurrency: Concurrency::LastWrite,
            ttl_seconds: None,
        };
        store.set(req).await.expect("set");
    }
    let store = SqliteStateStore::new(Db::open(&path).expect("open"), "state").expect("store");
    let entry = store
        .get("k")
        .await
        .expect("get")
        .expect("present after reopen");
    assert_eq!(&entry.value[..], b"\"v\"");
}

fn md(component: &str, pairs: &[(&str, String)]) -> tempest_components::metadata::Metadata {
    tempest_components::metadata::Metadata {
        component: component.into(),
        values: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    }
}

/// Redis at `TEMPEST_TEST_REDIS` (default 127.0.0.1:6379); the test fails if it is not running.
pub fn redis_host() -> String {
    std::env::var("TEMPEST_TEST_REDIS").unwrap_or_else(|_| "127.0.0.1:6379".into())
}

#[tokio::test]
async fn redis() {
    let store = tempest_components::state::redis::RedisStateStore::connect(&md(
        "statestore",
        &[("redisHost", redis_host())],
    ))
    .await
    .expect("Redis must be running for this test (scripts/test starts it)");
    run(&StateCase {
        store: Arc::new(store),
        bad_etag: "9999999".into(),
        prefix: prefix(),
        exact_bytes: true,
    })
    .await;
}

#[tokio::test]
async fn postgresql() {
    let conn = std::env::var("TEMPEST_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into());
    let store = tempest_components::state::postgres::PostgresStateStore::connect(&md(
        "statestore",
        &[
            ("connectionString", conn),
            ("tableName", "tempest_conformance".into()),
        ],
    ))
    .await
    .expect("PostgreSQL must be running for this test (scripts/test starts it)");
    run(&StateCase {
        store: Arc::new(store),
        bad_etag: "1".into(),
        prefix: prefix(),
        exact_bytes: false,
    })
    .await;
}
