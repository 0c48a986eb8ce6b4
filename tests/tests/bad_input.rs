//! Every bad input we can think of gets a clear 4xx in Dapr's error format, and nothing that
//! was accepted before is lost or changed.

use serde_json::{Value, json};
use tempest_tests::{Tempest, component, embedded_components, write_resources};

struct Case {
    what: &'static str,
    method: &'static str,
    path: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
}

fn case(
    what: &'static str,
    method: &'static str,
    path: &'static str,
    body: &str,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        what,
        method,
        path,
        content_type: "application/json",
        body: body.as_bytes().to_vec(),
        status,
        code,
    }
}

#[tokio::test]
async fn bad_inputs_are_rejected_and_lose_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secrets = dir.path().join("secrets.json");
    std::fs::write(&secrets, r#"{"token":"t0k3n"}"#).expect("write");
    let secrets = secrets.to_string_lossy();
    let mut docs = embedded_components();
    docs.push(component(
        "files",
        "secretstores.local.file",
        &[("secretsFile", &secrets)],
    ));
    let res = write_resources(dir.path(), &docs);
    let t = Tempest::start(
        dir.path(),
        &["--resources-path", &res],
        &[("TEMPEST_MAX_BODY_SIZE", "65536")],
    )
    .await;
    let http = reqwest::Client::new();

    // What was accepted before the bad inputs.
    let saved = json!([{"key": "keep-1", "value": {"a": 1}}, {"key": "keep-2", "value": "two"}]);
    assert_eq!(
        http.post(t.at("/v1.0/state/statestore"))
            .json(&saved)
            .send()
            .await
            .expect("save")
            .status(),
        204
    );
    let etag = http
        .get(t.at("/v1.0/state/statestore/keep-1"))
        .send()
        .await
        .expect("get")
        .headers()["etag"]
        .to_str()
        .expect("etag")
        .to_owned();

    let big = vec![b'x'; 70_000];
    let mut cases = vec![
        case(
            "malformed JSON",
            "POST",
            "/v1.0/state/statestore",
            "[{\"key\":",
            400,
            "ERR_MALFORMED_REQUEST",
        ),
        case(
            "object instead of array",
            "POST",
            "/v1.0/state/statestore",
            r#"{"key":"keep-1","value":0}"#,
            400,
            "ERR_MALFORMED_REQUEST",
        ),
        case(
            "key of wrong type",
            "POST",
            "/v1.0/state/statestore",
            r#"[{"key":5,"value":0}]"#,
            400,
            "ERR_MALFORMED_REQUEST",
        ),
        case(
            "missing key",
            "POST",
            "/v1.0/state/statestore",
            r#"[{"value":0}]"#,
            400,
            "ERR_MALFORMED_REQUEST",
        ),
        case(
            "empty key",
            "POST",
            "/v1.0/state/statestore",
            r#"[{"key":"","value":0}]"#,
            400,
            "ERR_MALFORMED_REQUEST",
        ),
        case(
            "etag of wrong type",
            "POST",
            "/v1.0/state/statestore",
            r#"[{"key":"keep-1","value":0,"etag":{"x":1}}]"#,
            400,
            "ERR_MALFORMED_REQUEST",
        ),
        case(
            "unknown concurrency",
            "POST",
            "/v1.0/state/statestore",
            r#"[{"key":"keep-1","value":0,"options":{"concurrency":"sometimes"}}]"#,
            400,
            "ERR_MALFORMED_REQUEST",
        ),
        case(
            "metadata of wrong type",
            "POST",
            "/v1.0/state/statestore",
            r#"[{"key":"keep-1","value":0,"metadata":[1]}]"#,
            400,
            "ERR_MALFORMED_REQUEST",
        ),
        case(
            "non-numeric TTL",
            "POST",
            "/v1.0/state/statestore",
            r#"[{"key":"keep-1","value":0,"metadata":{"ttlInSeconds":"foo"}}]"#,
            400,
            "ERR_STATE_SAVE",
        ),
        case(
            "a bad item after a good one",
            "POST",
            "/v1.0/state/statestore",
            r#"[{"key":"keep-1","value":"overwritten"},{"key":"x||y","value":0}]"#,
            400,
            "ERR_MALFORMED_REQUEST",
        ),
        case(
            "illegal key on save",
            "POST",
            "/v1.0/state/statestore",
            r#"[{"key":"a||b","value":0}]"#,
            400,
            "ERR_MALFORMED_REQUEST",
        ),
        case(
            "illegal key on get",
            "GET",
            "/v1.0/state/statestore/a||b",
            "",
            400,
            "ERR_MALFORMED_REQUEST",
        ),
        case(
            "illegal key on delete",
            "DELETE",
            "/v1.0/state/statestore/a||b",
            "",
            400,
            "ERR_MALFORMED_REQUEST",
        ),
        case(
            "unknown state store",
            "POST",
            "/v1.0/state/nostore",
            r#"[{"key":"keep-1","value":0}]"#,
            400,
            "ERR_STATE_STORE_NOT_FOUND",
        ),
        case(
            "unknown state store on get",
            "GET",
            "/v1.0/state/nostore/keep-1",
            "",
            400,
            "ERR_STATE_STORE_NOT_FOUND",
        ),
        case(
            "stale ETag",
            "POST",
            "/v1.0/state/statestore",
            r#"[{"key":"keep-1","value":0,"etag":"stale"}]"#,
            409,
            "ERR_STATE_SAVE",
        ),
        case(
            "first-write on existing key",
            "POST",
            "/v1.0/state/statestore",
            r#"[{"key":"keep-1","value":0,"options":{"concurrency":"first-write"}}]"#,
            409,
            "ERR_STATE_SAVE",
        ),
        case(
            "bulk get malformed",
            "POST",
            "/v1.0/state/statestore/bulk",
            r#"{"keys":"keep-1"}"#,
            400,
            "ERR_MALFORMED_REQUEST",
        ),
        case(
            "transaction malformed",
            "POST",
            "/v1.0/state/statestore/transaction",
            r#"{"operations":{}}"#,
            400,
            "ERR_MALFORMED_REQUEST",
        ),
        case(
            "transaction without request",
            "POST",
            "/v1.0/state/statestore/transaction",
            r#"{"operations":[{"operation":"upsert"}]}"#,
            400,
            "ERR_MALFORMED_REQUEST",
        ),
        case(
            "transaction with bad op after good",
            "POST",
            "/v1.0/state/statestore/transaction",
            r#"{"operations":[{"operation":"delete","request":{"key":"keep-1"}},{"operation":"nope","request":{"key":"k"}}]}"#,
            400,
            "ERR_NOT_SUPPORTED_STATE_OPERATION",
        ),
        case(
            "query malformed",
            "POST",
            "/v1.0-alpha1/state/statestore/query",
            r#"{"filter":{"LIKE":{"a":1}}}"#,
            400,
            "ERR_STATE_QUERY",
        ),
        case(
            "unknown pubsub",
            "POST",
            "/v1.0/publish/nopubsub/orders",
            "{}",
            404,
            "ERR_PUBSUB_NOT_FOUND",
        ),
        case(
            "publish malformed JSON",
            "POST",
            "/v1.0/publish/pubsub/orders",
            "{nope",
            400,
            "ERR_PUBSUB_CLOUD_EVENTS_SER",
        ),
        case(
            "rawPayload not a boolean",
            "POST",
            "/v1.0/publish/pubsub/orders?metadata.rawPayload=abc",
            "{}",
            400,
            "ERR_PUBSUB_REQUEST_METADATA",
        ),
        case(
            "bulk publish not an array",
            "POST",
            "/v1.0-alpha1/publish/bulk/pubsub/orders",
            r#"{"entryId":"1"}"#,
            400,
            "ERR_PUBSUB_EVENTS_SER",
        ),
        case(
            "bulk publish without entryId",
            "POST",
            "/v1.0-alpha1/publish/bulk/pubsub/orders",
            r#"[{"event":{"a":1},"contentType":"application/json"}]"#,
            400,
            "ERR_PUBSUB_EVENTS_SER",
        ),
        case(
            "bulk publish duplicate entryId",
            "POST",
            "/v1.0-alpha1/publish/bulk/pubsub/orders",
            r#"[{"entryId":"1","event":1},{"entryId":"1","event":2}]"#,
            400,
            "ERR_PUBSUB_EVENTS_SER",
        ),
        case(
            "bulk publish binary not base64",
            "POST",
            "/v1.0-alpha1/publish/bulk/pubsub/orders",
            r#"[{"entryId":"1","event":"!!","contentType":"application/octet-stream"}]"#,
            400,
            "ERR_PUBSUB_EVENTS_SER",
        ),
        case(
            "unknown secret store",
            "GET",
            "/v1.0/secrets/nostore/token",
            "",
            401,
            "ERR_SECRET_STORE_NOT_FOUND",
        ),
        case(
            "missing app id",
            "GET",
            "/v1.0/invoke//method/x",
            "",
            404,
            "ERR_DIRECT_INVOKE",
        ),
        case(
            "undeclared app id",
            "POST",
            "/v1.0/invoke/ghost/method/x",
            "{}",
            404,
            "ERR_DIRECT_INVOKE",
        ),
    ];
    let mut ce = case(
        "CloudEvent that is not an object",
        "POST",
        "/v1.0/publish/pubsub/orders",
        "[1,2]",
        400,
        "ERR_PUBSUB_CLOUD_EVENTS_SER",
    );
    ce.content_type = "application/cloudevents+json";
    cases.push(ce);
    for path in [
        "/v1.0/state/statestore",
        "/v1.0/publish/pubsub/orders",
        "/v1.0/invoke/ghost/method/x",
    ] {
        cases.push(Case {
            what: "oversize body",
            method: "POST",
            path,
            content_type: "application/json",
            body: big.clone(),
            status: 413,
            code: "ERR_BODY_READ",
        });
    }

    for c in &cases {
        let method = reqwest::Method::from_bytes(c.method.as_bytes()).expect("method");
        let resp = http
            .request(method, t.at(c.path))
            .header("content-type", c.content_type)
            .body(c.body.clone())
            .send()
            .await
            .expect("send");
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = resp.text().await.expect("body");
        assert_eq!(status, c.status, "{}: {body}", c.what);
        assert!(
            ct.starts_with("application/json"),
            "{}: Dapr error bodies are JSON, got {ct:?}",
            c.what
        );
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{}: body is not JSON ({e}): {body}", c.what));
        assert_eq!(v["errorCode"], c.code, "{}: {body}", c.what);
        assert!(
            v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}: message explains the error",
            c.what
        );

        // Nothing accepted before is lost or changed.
        let items: Vec<Value> = http
            .post(t.at("/v1.0/state/statestore/bulk"))
            .json(&json!({"keys": ["keep-1", "keep-2"]}))
            .send()
            .await
            .expect("bulk")
            .json()
            .await
            .expect("json");
        assert_eq!(items[0]["data"], json!({"a": 1}), "after {}", c.what);
        assert_eq!(
            items[0]["etag"],
            etag.as_str(),
            "after {}: not rewritten",
            c.what
        );
        assert_eq!(items[1]["data"], "two", "after {}", c.what);
    }
    // Nothing reached the broker from the rejected publishes, and the server is still healthy.
    assert_eq!(
        http.get(t.at("/v1.0/healthz"))
            .send()
            .await
            .expect("health")
            .status(),
        204
    );
    assert_eq!(
        http.get(t.at("/v1.0/secrets/files/token"))
            .send()
            .await
            .expect("secret")
            .json::<Value>()
            .await
            .expect("json"),
        json!({"token": "t0k3n"})
    );
    assert!(
        !t.log_text().contains("panicked"),
        "no panic in the server log"
    );
}
