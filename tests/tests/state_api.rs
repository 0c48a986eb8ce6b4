//! The Dapr state API through the real binary, on the embedded store and on Redis and
//! PostgreSQL via component YAML.

use serde_json::{Value, json};
use tempest_tests::{Tempest, component, write_resources};

async fn status_of(req: reqwest::RequestBuilder) -> (u16, String, reqwest::header::HeaderMap) {
    let resp = req.send().await.expect("send");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, resp.text().await.expect("body"), headers)
}

/// The same HTTP scenario against every store: CRUD, ETags, first-write, bulk, transactions, TTL.
async fn scenario(t: &Tempest, store: &str, supports_query: bool) {
    let http = reqwest::Client::new();
    let base = t.at(&format!("/v1.0/state/{store}"));
    let key = |k: &str| format!("{base}/{k}");
    // Save: several items, different value types; query metadata reaches each item.
    let (s, body, _) = status_of(http.post(&base).json(&json!([
        {"key": "s-1", "value": "hello"},
        {"key": "s-2", "value": {"n": 1, "tags": ["a"]}},
        {"key": "s-3", "value": 42, "metadata": {"ttlInSeconds": "3600"}},
    ])))
    .await;
    assert_eq!((s, body.as_str()), (204, ""));
    let (s, body, h) = status_of(http.get(key("s-1"))).await;
    assert_eq!(
        (s, body.as_str()),
        (200, "\"hello\""),
        "strings come back with their quotes"
    );
    let etag1 = h["etag"].to_str().expect("etag").to_owned();
    assert!(!etag1.is_empty());
    let (_, body, h) = status_of(http.get(key("s-3"))).await;
    assert_eq!(body, "42");
    assert!(
        h.contains_key("metadata.ttlexpiretime"),
        "TTL expiry header"
    );
    let (_, body, _) = status_of(http.get(key("s-2"))).await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("json"),
        json!({"n": 1, "tags": ["a"]})
    );
    // Missing key: 204, empty body.
    assert_eq!(status_of(http.get(key("nope"))).await.0, 204);
    // ETags: stale/wrong → 409, right → 204 and a new ETag.
    let (s, body, _) = status_of(
        http.post(&base)
            .json(&json!([{"key": "s-1", "value": "x", "etag": "4000000000"}])),
    )
    .await;
    assert_eq!(s, 409, "wrong ETag rejected: {body}");
    let (s, _, _) = status_of(
        http.post(&base)
            .json(&json!([{"key": "s-1", "value": "v2", "etag": etag1}])),
    )
    .await;
    assert_eq!(s, 204);
    let (_, body, h) = status_of(http.get(key("s-1"))).await;
    assert_eq!(body, "\"v2\"");
    let etag2 = h["etag"].to_str().expect("etag").to_owned();
    assert_ne!(etag1, etag2);
    let (s, body, _) = status_of(
        http.post(&base)
            .json(&json!([{"key": "s-1", "value": "v3", "etag": etag1}])),
    )
    .await;
    assert_eq!(s, 409, "stale ETag: {body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("json")["errorCode"],
        "ERR_STATE_SAVE"
    );
    // First-write on an existing key without ETag → 409.
    let (s, _, _) =
        status_of(http.post(&base).json(
            &json!([{"key": "s-1", "value": "fw", "options": {"concurrency": "first-write"}}]),
        ))
        .await;
    assert_eq!(s, 409);
    // Delete with a stale If-Match → 409; with the right one → 204.
    let (s, _, _) = status_of(http.delete(key("s-1")).header("if-match", &etag1)).await;
    assert_eq!(s, 409);
    let (s, _, _) = status_of(http.delete(key("s-1")).header("if-match", &etag2)).await;
    assert_eq!(s, 204);
    assert_eq!(status_of(http.get(key("s-1"))).await.0, 204);
    // Bulk get: `data` field, missing keys as {"key"} only.
    let (s, body, _) = status_of(
        http.post(format!("{base}/bulk"))
            .json(&json!({"keys": ["s-2", "s-3", "gone"], "parallelism": 10})),
    )
    .await;
    assert_eq!(s, 200);
    let items: Vec<Value> = serde_json::from_str(&body).expect("json");
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["data"], json!({"n": 1, "tags": ["a"]}));
    assert!(items[0]["etag"].is_string());
    assert_eq!(items[1]["data"], 42);
    assert!(items[1]["metadata"]["ttlExpireTime"].is_string());
    assert_eq!(items[2], json!({"key": "gone"}));
    // Transaction: atomic, `"metadata": null` accepted as the JS SDK sends it.
    let (s, body, _) = status_of(http.post(format!("{base}/transaction")).json(&json!({
        "operations": [
            {"operation": "upsert", "request": {"key": "t-1", "value": 1}},
            {"operation": "upsert", "request": {"key": "t-2", "value": 2}},
            {"operation": "delete", "request": {"key": "s-2"}},
        ],
        "metadata": null,
    })))
    .await;
    assert_eq!(s, 204, "{body}");
    assert_eq!(status_of(http.get(key("t-2"))).await.1, "2");
    assert_eq!(status_of(http.get(key("s-2"))).await.0, 204);
    let (s, body, _) = status_of(http.post(format!("{base}/transaction")).json(&json!({
        "operations": [
            {"operation": "upsert", "request": {"key": "t-3", "value": 3}},
            {"operation": "upsert", "request": {"key": "t-1", "value": 11, "etag": "4000000000"}},
        ],
    })))
    .await;
    assert_eq!(s, 500, "failed transaction is 500 as in Dapr: {body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("json")["errorCode"],
        "ERR_STATE_TRANSACTION"
    );
    assert_eq!(
        status_of(http.get(key("t-3"))).await.0,
        204,
        "nothing of a failed transaction applied"
    );
    assert_eq!(status_of(http.get(key("t-1"))).await.1, "1");
    let (s, body, _) = status_of(
        http.post(format!("{base}/transaction"))
            .json(&json!({"operations": [{"operation": "merge", "request": {"key": "a"}}]})),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("json")["errorCode"],
        "ERR_NOT_SUPPORTED_STATE_OPERATION"
    );
    // TTL expiry through the API.
    let (s, _, _) = status_of(
        http.post(format!("{base}?metadata.ttlInSeconds=1"))
            .json(&json!([{"key": "ttl", "value": "soon gone"}])),
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(status_of(http.get(key("ttl"))).await.0, 200);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(
        status_of(http.get(key("ttl"))).await.0,
        204,
        "expired key reads as missing"
    );
    // Query API.
    let q = http
        .post(t.at(&format!("/v1.0-alpha1/state/{store}/query")))
        .json(&json!({"filter": {"EQ": {"kind": "q"}}, "sort": [{"key": "n", "order": "DESC"}]}));
    if supports_query {
        for n in 1..=3 {
            http.post(&base)
                .json(&json!([{"key": format!("q-{n}"), "value": {"kind": "q", "n": n}}]))
                .send()
                .await
                .expect("save");
        }
        let (s, body, _) = status_of(q).await;
        assert_eq!(s, 200, "{body}");
        let v: Value = serde_json::from_str(&body).expect("json");
        let keys: Vec<&str> = v["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|r| r["key"].as_str().expect("key"))
            .collect();
        assert_eq!(keys, ["q-3", "q-2", "q-1"]);
    } else {
        let (s, body, _) = status_of(q).await;
        assert_eq!(s, 500);
        assert_eq!(
            serde_json::from_str::<Value>(&body).expect("json")["errorCode"],
            "ERR_STATE_STORE_NOT_SUPPORTED"
        );
    }
}

#[tokio::test]
async fn embedded_default_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = Tempest::start(dir.path(), &[], &[]).await;
    scenario(&t, "statestore", true).await;
}

#[tokio::test]
async fn redis_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = std::env::var("TEMPEST_TEST_REDIS").unwrap_or_else(|_| "127.0.0.1:6379".into());
    let prefix = format!("it-{}", std::process::id());
    let res = write_resources(
        dir.path(),
        &[component(
            "redisstore",
            "state.redis",
            &[("redisHost", &host), ("keyPrefix", &prefix)],
        )],
    );
    let t = Tempest::start(dir.path(), &["--resources-path", &res], &[]).await;
    scenario(&t, "redisstore", false).await;
}

#[tokio::test]
async fn postgresql_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = std::env::var("TEMPEST_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into());
    let table = format!("it_state_{}", std::process::id());
    let res = write_resources(
        dir.path(),
        &[component(
            "pgstore",
            "state.postgresql",
            &[("connectionString", &conn), ("tableName", &table)],
        )],
    );
    let t = Tempest::start(dir.path(), &["--resources-path", &res], &[]).await;
    scenario(&t, "pgstore", true).await;
}

#[tokio::test]
async fn key_prefix_keeps_stores_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let res = write_resources(
        dir.path(),
        &[component("a", "state.in-memory", &[("keyPrefix", "name")])],
    );
    let t = Tempest::start(dir.path(), &["--resources-path", &res], &[]).await;
    let http = reqwest::Client::new();
    http.post(t.at("/v1.0/state/a"))
        .json(&json!([{"key": "k", "value": 1}]))
        .send()
        .await
        .expect("save");
    let (s, body, _) = status_of(http.get(t.at("/v1.0/state/a/k"))).await;
    assert_eq!((s, body.as_str()), (200, "1"));
    // Keys named like the sub-routes are still plain keys on GET and DELETE.
    http.post(t.at("/v1.0/state/a"))
        .json(&json!([{"key": "bulk", "value": "b"}]))
        .send()
        .await
        .expect("save");
    assert_eq!(
        status_of(http.get(t.at("/v1.0/state/a/bulk"))).await.1,
        "\"b\""
    );
    assert_eq!(
        status_of(http.delete(t.at("/v1.0/state/a/bulk"))).await.0,
        204
    );
    assert_eq!(status_of(http.get(t.at("/v1.0/state/a/bulk"))).await.0, 204);
}
