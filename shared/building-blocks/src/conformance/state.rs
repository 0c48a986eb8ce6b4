//! State store conformance (after components-contrib `tests/conformance/state`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::state::{
    Concurrency, DeleteRequest, Feature, SetRequest, StateError, StateStore, TransactionOp,
};

/// What the suite needs to know about the store under test.
pub struct StateCase {
    /// The store.
    pub store: Arc<dyn StateStore>,
    /// An ETag of this store's form that no key has (Dapr's `badEtag`).
    pub bad_etag: String,
    /// Unique key prefix so runs against shared servers do not collide.
    pub prefix: String,
    /// False for stores that normalise JSON (PostgreSQL's jsonb): values then compare as JSON.
    pub exact_bytes: bool,
}

impl StateCase {
    fn key(&self, k: &str) -> String {
        format!("{}{k}", self.prefix)
    }

    fn set(&self, k: &str, v: &str) -> SetRequest {
        SetRequest {
            key: self.key(k),
            value: Bytes::from(v.to_owned()),
            etag: None,
            concurrency: Concurrency::LastWrite,
            ttl_seconds: None,
        }
    }

    fn del(&self, k: &str) -> DeleteRequest {
        DeleteRequest {
            key: self.key(k),
            etag: None,
            concurrency: Concurrency::LastWrite,
        }
    }

    async fn value(&self, k: &str) -> Option<String> {
        self.store
            .get(&self.key(k))
            .await
            .expect("get")
            .map(|e| String::from_utf8(e.value.to_vec()).expect("utf8"))
    }

    async fn etag(&self, k: &str) -> String {
        self.store
            .get(&self.key(k))
            .await
            .expect("get")
            .expect("present")
            .etag
    }
}

/// Runs every applicable scenario; panics (failing the calling test) on the first violation.
pub async fn run(case: &StateCase) {
    let features = case.store.features();
    set_get_round_trips(case).await;
    delete_removes(case).await;
    etags(case).await;
    first_write(case).await;
    etag_race(case).await;
    if features.contains(&Feature::Transactional) {
        transactions(case).await;
    }
    if features.contains(&Feature::Ttl) {
        ttl(case).await;
    }
    if features.contains(&Feature::QueryApi) {
        scan(case).await;
    }
}

async fn set_get_round_trips(case: &StateCase) {
    let values = [
        "123",
        "true",
        "\"hello world\"",
        "\"\"",
        r#""{\"a\":\"b\"}""#,
        r#"{"a":"b","n":{"x":[1,2.5,null]}}"#,
        "[1,\"two\"]",
        "null",
        r#"{"z":1,"a":2}"#,
    ];
    for (i, v) in values.iter().enumerate() {
        let k = format!("roundtrip-{i}");
        case.store.set(case.set(&k, v)).await.expect("set");
        let got = case.value(&k).await.expect("value present");
        if case.exact_bytes {
            assert_eq!(got, *v, "value {v} must come back byte for byte");
        } else {
            let parse = |s: &str| serde_json::from_str::<serde_json::Value>(s).expect("JSON");
            assert_eq!(
                parse(&got),
                parse(v),
                "value {v} must come back as the same JSON"
            );
        }
        let entry = case
            .store
            .get(&case.key(&k))
            .await
            .expect("get")
            .expect("present");
        assert!(!entry.etag.is_empty(), "every store returns an ETag");
        assert!(entry.expires_at.is_none());
    }
    assert_eq!(case.value("never-written").await, None);
}

async fn delete_removes(case: &StateCase) {
    case.store.set(case.set("del", "1")).await.expect("set");
    case.store.delete(case.del("del")).await.expect("delete");
    assert_eq!(case.value("del").await, None);
    // Deleting an absent key without an ETag succeeds.
    case.store
        .delete(case.del("del"))
        .await
        .expect("delete absent");
}

async fn etags(case: &StateCase) {
    case.store.set(case.set("etag", "1")).await.expect("set");
    let e1 = case.etag("etag").await;
    let mut bad = case.set("etag", "2");
    bad.etag = Some(case.bad_etag.clone());
    assert!(
        matches!(case.store.set(bad).await, Err(StateError::EtagMismatch(_))),
        "bad ETag must be a mismatch"
    );
    assert_eq!(
        case.value("etag").await.as_deref(),
        Some("1"),
        "a failed write changes nothing"
    );
    let mut good = case.set("etag", "3");
    good.etag = Some(e1.clone());
    case.store.set(good).await.expect("set with current ETag");
    let e2 = case.etag("etag").await;
    assert_ne!(e1, e2, "ETag changes on every write");
    assert_eq!(case.value("etag").await.as_deref(), Some("3"));
    let mut stale = case.set("etag", "4");
    stale.etag = Some(e1.clone());
    assert!(
        matches!(
            case.store.set(stale).await,
            Err(StateError::EtagMismatch(_))
        ),
        "stale ETag must be a mismatch"
    );
    let mut del = case.del("etag");
    del.etag = Some(case.bad_etag.clone());
    assert!(matches!(
        case.store.delete(del).await,
        Err(StateError::EtagMismatch(_))
    ));
    assert_eq!(case.value("etag").await.as_deref(), Some("3"));
    let mut del = case.del("etag");
    del.etag = Some(e2);
    case.store
        .delete(del)
        .await
        .expect("delete with current ETag");
    assert_eq!(case.value("etag").await, None);
}

async fn first_write(case: &StateCase) {
    let mut fw = case.set("fw", "1");
    fw.concurrency = Concurrency::FirstWrite;
    case.store
        .set(fw.clone())
        .await
        .expect("first write on absent key");
    fw.value = Bytes::from_static(b"2");
    assert!(
        matches!(
            case.store.set(fw.clone()).await,
            Err(StateError::EtagMismatch(_))
        ),
        "second first-write must fail"
    );
    assert_eq!(case.value("fw").await.as_deref(), Some("1"));
    let e1 = case.etag("fw").await;
    fw.etag = Some(e1.clone());
    case.store
        .set(fw.clone())
        .await
        .expect("first-write with current ETag");
    assert_ne!(case.etag("fw").await, e1);
    fw.etag = Some(e1);
    assert!(
        matches!(case.store.set(fw).await, Err(StateError::EtagMismatch(_))),
        "reused ETag must fail"
    );
}

/// Many writers race with the same ETag: exactly one wins.
async fn etag_race(case: &StateCase) {
    case.store.set(case.set("race", "0")).await.expect("set");
    let etag = case.etag("race").await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = case.store.clone();
        let mut req = case.set("race", &format!("{}", i + 1));
        req.etag = Some(etag.clone());
        tasks.push(tokio::spawn(async move { store.set(req).await }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.expect("join") {
            Ok(()) => wins += 1,
            Err(StateError::EtagMismatch(_)) => {}
            Err(e) => panic!("unexpected error in ETag race: {e}"),
        }
    }
    assert_eq!(wins, 1, "exactly one writer with the same ETag wins");
}

async fn transactions(case: &StateCase) {
    let ops = vec![
        TransactionOp::Upsert(case.set("tx1", "1")),
        TransactionOp::Upsert(case.set("tx2", "2")),
        TransactionOp::Delete(case.del("tx-never")),
    ];
    case.store.transact(ops).await.expect("transaction");
    assert_eq!(case.value("tx1").await.as_deref(), Some("1"));
    assert_eq!(case.value("tx2").await.as_deref(), Some("2"));
    // Order is respected: delete existing, upsert new, delete it again, upsert again.
    let ops = vec![
        TransactionOp::Delete(case.del("tx1")),
        TransactionOp::Upsert(case.set("tx3", "3")),
        TransactionOp::Delete(case.del("tx3")),
        TransactionOp::Upsert(case.set("tx3", "33")),
    ];
    case.store.transact(ops).await.expect("ordered transaction");
    assert_eq!(case.value("tx1").await, None);
    assert_eq!(case.value("tx3").await.as_deref(), Some("33"));
    // All or nothing: one bad ETag rolls back every operation.
    let mut bad = case.set("tx2", "22");
    bad.etag = Some(case.bad_etag.clone());
    let ops = vec![
        TransactionOp::Upsert(case.set("tx4", "4")),
        TransactionOp::Delete(case.del("tx3")),
        TransactionOp::Upsert(bad),
    ];
    assert!(
        case.store.transact(ops).await.is_err(),
        "transaction with a bad ETag fails"
    );
    assert_eq!(
        case.value("tx4").await,
        None,
        "nothing of a failed transaction is applied"
    );
    assert_eq!(case.value("tx3").await.as_deref(), Some("33"));
    assert_eq!(case.value("tx2").await.as_deref(), Some("2"));
    // ETags inside transactions work when they match.
    let mut good = case.set("tx2", "222");
    good.etag = Some(case.etag("tx2").await);
    case.store
        .transact(vec![TransactionOp::Upsert(good)])
        .await
        .expect("transaction with current ETag");
    assert_eq!(case.value("tx2").await.as_deref(), Some("222"));
}

async fn ttl(case: &StateCase) {
    let mut short = case.set("ttl-short", "1");
    short.ttl_seconds = Some(1);
    case.store.set(short).await.expect("set ttl");
    let entry = case
        .store
        .get(&case.key("ttl-short"))
        .await
        .expect("get")
        .expect("visible before expiry");
    assert!(entry.expires_at.is_some());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(case.value("ttl-short").await, None, "expired value is gone");

    let mut long = case.set("ttl-long", "1");
    long.ttl_seconds = Some(3600);
    case.store.set(long).await.expect("set ttl");
    let at = case
        .store
        .get(&case.key("ttl-long"))
        .await
        .expect("get")
        .expect("present")
        .expires_at
        .expect("expiry");
    let delta = (at - chrono::Utc::now()).num_seconds();
    assert!(
        (3590..=3601).contains(&delta),
        "expiry about an hour away, got {delta}s"
    );
    // Re-setting without a TTL removes it.
    case.store
        .set(case.set("ttl-long", "2"))
        .await
        .expect("set");
    let entry = case
        .store
        .get(&case.key("ttl-long"))
        .await
        .expect("get")
        .expect("present");
    assert!(entry.expires_at.is_none(), "saving without TTL clears it");
}

async fn scan(case: &StateCase) {
    case.store
        .set(case.set("scan/a", r#"{"n":1}"#))
        .await
        .expect("set");
    case.store
        .set(case.set("scan/b", r#"{"n":2}"#))
        .await
        .expect("set");
    let mut got: Vec<String> = case
        .store
        .scan(&case.key("scan/"))
        .await
        .expect("scan")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    got.sort();
    assert_eq!(got, vec![case.key("scan/a"), case.key("scan/b")]);
}
