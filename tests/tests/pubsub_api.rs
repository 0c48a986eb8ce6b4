//! Publish and delivery through the real binary: CloudEvents, raw payloads, bulk publish,
//! programmatic and declarative subscriptions, routing rules, the app response contract,
//! retries and dead-lettering — on the embedded broker and on Redis Streams.

use std::time::Duration;

use serde_json::{Value, json};
use tempest_tests::app::Reply;
use tempest_tests::{Tempest, TestApp, component, eventually, write_resources};

/// The pub/sub component under test and a quick delivery retry policy for it.
fn pubsub_resources(kind: &str) -> Vec<String> {
    let host = std::env::var("TEMPEST_TEST_REDIS").unwrap_or_else(|_| "127.0.0.1:6379".into());
    let consumer = format!("c{}", std::process::id());
    let md: Vec<(&str, &str)> = match kind {
        "pubsub.redis" => vec![
            ("redisHost", &host),
            ("redeliverInterval", "1s"),
            ("consumerID", &consumer),
        ],
        _ => vec![("redeliverInterval", "1s")],
    };
    vec![
        component("pubsub", kind, &md),
        "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata: {name: r}\nspec:\n  policies:\n    retries:\n      quick: {policy: constant, duration: 50ms, maxRetries: 2}\n  targets:\n    components:\n      pubsub: {inbound: {retry: quick}}\n".into(),
    ]
}

/// Topics unique per run, so runs against a shared Redis do not see each other's messages.
fn topic(name: &str) -> String {
    format!(
        "{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}

async fn scenario(kind: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = TestApp::start().await;
    let bulk_topic = topic("bulk");
    let (orders, routed, flaky, dropped, dead, raw) = (
        topic("orders"),
        topic("routed"),
        topic("flaky"),
        topic("dropped"),
        topic("dead"),
        topic("raw"),
    );
    app.subscriptions(json!([
        {"pubsubname": "pubsub", "topic": orders, "route": "/orders"},
        {"pubsubname": "pubsub", "topic": routed, "routes": {"rules": [{"match": "event.type == \"widget\"", "path": "/widgets"}, {"match": "event.data.amount > 100", "path": "/big"}], "default": "/other"}},
        {"pubsubname": "pubsub", "topic": flaky, "route": "/flaky"},
        {"pubsubname": "pubsub", "topic": dropped, "route": "/dropped", "deadLetterTopic": dead},
        {"pubsubname": "pubsub", "topic": dead, "route": "/dead"},
        {"pubsubname": "pubsub", "topic": raw, "route": "/raw", "metadata": {"rawPayload": "true"}},
        {"pubsubname": "pubsub", "topic": bulk_topic, "route": "/bulk", "bulkSubscribe": {"enabled": true, "maxMessagesCount": 5, "maxAwaitDurationMs": 200}},
    ]));
    app.reply(
        "/flaky",
        vec![
            Reply::new(500, ""),
            Reply::new(200, r#"{"status":"RETRY"}"#),
            Reply::new(200, r#"{"status":"SUCCESS"}"#),
        ],
    );
    app.reply("/dropped", vec![Reply::new(200, r#"{"status":"DROP"}"#)]);
    app.reply_bulk_success("/bulk");
    // Declarative subscription for a second app.
    let audit = TestApp::start().await;
    let audit_topic = topic("audit");
    let mut docs = pubsub_resources(kind);
    docs.push(format!(
        "apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata: {{name: audit}}\nspec: {{topic: {audit_topic}, pubsubname: pubsub, routes: {{default: /audit}}}}\nscopes: [audit]\n"
    ));
    let res = write_resources(dir.path(), &docs);
    let t = Tempest::start(
        dir.path(),
        &[
            "--resources-path",
            &res,
            "--app",
            &format!("orders={}", app.url),
            "--app",
            &format!("audit={}", audit.url),
        ],
        &[],
    )
    .await;
    let http = reqwest::Client::new();
    let publish = |topic: &str, body: &str, ct: &str, query: &str| {
        http.post(t.at(&format!("/v1.0/publish/pubsub/{topic}{query}")))
            .header("content-type", ct)
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .header("tracestate", "k=v")
            .body(body.to_owned())
            .send()
    };
    // Subscriptions come from the app once it answers /dapr/subscribe.
    t.wait_for_subscriptions(8).await;

    // JSON event, wrapped in a CloudEvent with Dapr's fields.
    assert_eq!(
        publish(&orders, r#"{"orderId":1}"#, "application/json", "")
            .await
            .expect("publish")
            .status(),
        204
    );
    let got = eventually(15, "delivery to /orders", || async {
        app.received("/orders").into_iter().next()
    })
    .await;
    assert_eq!(
        got.header("content-type"),
        Some("application/cloudevents+json")
    );
    let ce = got.json();
    assert_eq!(ce["data"], json!({"orderId": 1}));
    assert_eq!(ce["specversion"], "1.0");
    assert_eq!(ce["type"], "com.dapr.event.sent");
    assert_eq!(ce["source"], "tempest");
    assert_eq!(ce["topic"], orders.as_str());
    assert_eq!(ce["pubsubname"], "pubsub");
    assert_eq!(ce["datacontenttype"], "application/json");
    assert_eq!(ce["tracestate"], "k=v");
    assert!(ce["id"].as_str().is_some_and(|s| s.len() == 36));
    assert!(ce["time"].is_string());
    let tp = ce["traceparent"].as_str().expect("traceparent");
    assert!(
        tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "publish span continues the caller's trace"
    );
    assert_eq!(ce["traceid"], ce["traceparent"]);
    let delivered_tp = got.header("traceparent").expect("delivery traceparent");
    assert!(
        delivered_tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && delivered_tp != tp,
        "delivery is a child span"
    );
    assert_eq!(got.header("pubsubname"), Some("pubsub"));

    // Text, a CloudEvent passed through, and bulk publish.
    publish(&orders, "plain text", "text/plain", "")
        .await
        .expect("publish");
    publish(
        &orders,
        r#"{"specversion":"1.0","id":"mine","source":"me","type":"my.type","data":{"x":1}}"#,
        "application/cloudevents+json",
        "",
    )
    .await
    .expect("publish");
    let bulk = json!([{"entryID": "1", "event": {"b": 1}, "contentType": "application/json"}, {"entryId": "2", "event": "text", "contentType": "text/plain"}]);
    let resp = http
        .post(t.at(&format!("/v1.0-alpha1/publish/bulk/pubsub/{orders}")))
        .json(&bulk)
        .send()
        .await
        .expect("bulk");
    assert_eq!(resp.status(), 204, "{:?}", resp.text().await);
    let all = eventually(15, "five deliveries to /orders", || async {
        let r = app.received("/orders");
        (r.len() >= 5).then_some(r)
    })
    .await;
    let events: Vec<Value> = all.iter().map(|r| r.json()).collect();
    assert!(
        events
            .iter()
            .any(|e| e["data"] == "plain text" && e["datacontenttype"] == "text/plain")
    );
    let mine = events
        .iter()
        .find(|e| e["id"] == "mine")
        .expect("CloudEvent passed through");
    assert_eq!(mine["source"], "me");
    assert_eq!(mine["type"], "my.type");
    assert_eq!(mine["topic"], orders.as_str(), "topic is overwritten");
    assert!(events.iter().any(|e| e["data"] == json!({"b": 1})));
    assert!(events.iter().any(|e| e["data"] == "text"));

    // Routing rules.
    publish(
        &routed,
        r#"{"specversion":"1.0","id":"w","source":"s","type":"widget","data":{}}"#,
        "application/cloudevents+json",
        "",
    )
    .await
    .expect("publish");
    publish(&routed, r#"{"amount":500}"#, "application/json", "")
        .await
        .expect("publish");
    publish(&routed, r#"{"amount":5}"#, "application/json", "")
        .await
        .expect("publish");
    for path in ["/widgets", "/big", "/other"] {
        eventually(15, path, || async {
            (!app.received(path).is_empty()).then_some(())
        })
        .await;
    }

    // RETRY contract: 500, then RETRY, then SUCCESS, within the Resiliency retry policy.
    publish(&flaky, r#"{"n":1}"#, "application/json", "")
        .await
        .expect("publish");
    let tries = eventually(15, "three attempts on /flaky", || async {
        let r = app.received("/flaky");
        (r.len() >= 3).then_some(r)
    })
    .await;
    assert!(tries.iter().all(|r| r.json()["data"] == json!({"n": 1})));

    // DROP goes to the dead-letter topic.
    publish(&dropped, r#"{"poison":true}"#, "application/json", "")
        .await
        .expect("publish");
    let dl = eventually(15, "dead-lettered message", || async {
        app.received("/dead").into_iter().next()
    })
    .await;
    assert_eq!(dl.json()["data"], json!({"poison": true}));

    // Raw payloads, published raw and wrapped for a raw subscription.
    publish(
        &raw,
        "\u{1}\u{2}binary",
        "application/octet-stream",
        "?metadata.rawPayload=true",
    )
    .await
    .expect("publish");
    let r = eventually(15, "raw delivery", || async {
        app.received("/raw").into_iter().next()
    })
    .await;
    let ev = r.json();
    assert_eq!(ev["datacontenttype"], "application/octet-stream");
    assert_eq!(ev["data_base64"], "AQJiaW5hcnk=");

    // Declarative subscription, scoped to the audit app only.
    publish(&audit_topic, r#"{"a":1}"#, "application/json", "")
        .await
        .expect("publish");
    let a = eventually(15, "declarative delivery", || async {
        audit.received("/audit").into_iter().next()
    })
    .await;
    assert_eq!(a.json()["data"], json!({"a": 1}));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        app.received("/audit").is_empty(),
        "scopes limit the subscription to its app"
    );

    // Bulk subscribe: batched deliveries in Dapr's bulk format, each entry acknowledged.
    for n in 0..7 {
        publish(
            &bulk_topic,
            &format!("{{\"n\":{n}}}"),
            "application/json",
            "",
        )
        .await
        .expect("publish");
    }
    let bulk = eventually(15, "seven bulk entries", || async {
        let reqs = app.received("/bulk");
        let entries: usize = reqs
            .iter()
            .map(|r| r.json()["entries"].as_array().map_or(0, Vec::len))
            .sum();
        (entries >= 7).then_some(reqs)
    })
    .await;
    for r in &bulk {
        let v = r.json();
        assert_eq!(v["type"], "com.dapr.event.sent.bulk");
        assert_eq!(v["topic"], bulk_topic.as_str());
        assert_eq!(v["pubsubname"], "pubsub");
        let entries = v["entries"].as_array().expect("entries");
        assert!(entries.len() <= 5, "maxMessagesCount bounds a delivery");
        for e in entries {
            assert_eq!(e["contentType"], "application/cloudevents+json");
            assert!(e["entryId"].is_string());
            assert_eq!(e["event"]["topic"], bulk_topic.as_str());
        }
    }
    let ns: std::collections::BTreeSet<i64> = bulk
        .iter()
        .flat_map(|r| r.json()["entries"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["event"]["data"]["n"].as_i64())
        .collect();
    assert_eq!(ns, (0..7).collect());

    // Exactly-once in the absence of failures: no duplicates after the redelivery interval.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        app.received("/orders").len(),
        5,
        "acknowledged messages are not redelivered"
    );
    assert_eq!(app.received("/dead").len(), 1);
    let after: usize = app
        .received("/bulk")
        .iter()
        .map(|r| r.json()["entries"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(after, 7, "acknowledged bulk entries are not redelivered");
}

#[tokio::test]
async fn embedded_broker() {
    scenario("pubsub.sqlite").await;
}

#[tokio::test]
async fn in_memory_broker() {
    scenario("pubsub.in-memory").await;
}

#[tokio::test]
async fn redis_streams_broker() {
    scenario("pubsub.redis").await;
}
