//! SIGKILL `tempest serve` with messages in flight: after a restart every accepted message is
//! delivered (at least once) and every acknowledged state write is still there.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use tempest_tests::app::Reply;
use tempest_tests::{Tempest, TestApp, component, eventually, free_port, write_resources};

const MESSAGES: usize = 40;

#[tokio::test]
async fn accepted_messages_and_acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Embedded durable defaults, with a short redelivery interval so the test is quick.
    let res = write_resources(
        dir.path(),
        &[
            component("statestore", "state.sqlite", &[]),
            component("pubsub", "pubsub.sqlite", &[("redeliverInterval", "1s")]),
        ],
    );
    let app_port = free_port();
    let app_spec = format!("orders=http://127.0.0.1:{app_port}");
    let mut t = Tempest::start(
        dir.path(),
        &["--resources-path", &res, "--app", &app_spec],
        &[],
    )
    .await;
    let http = reqwest::Client::new();

    // The app is up and slow: some messages are being delivered when the process dies, the
    // rest are still queued.
    let app = TestApp::start_on(app_port).await;
    app.subscriptions(json!([{"pubsubname": "pubsub", "topic": "orders", "route": "/orders"}]));
    let mut slow = Reply::new(200, "");
    slow.delay = Duration::from_millis(40);
    app.reply("/orders", vec![slow]);

    let writes = tokio::spawn({
        let url = t.at("/v1.0/state/statestore");
        let http = http.clone();
        async move {
            let mut acked = Vec::new();
            for i in 0..200 {
                let ok = http
                    .post(&url)
                    .json(&json!([{"key": format!("w-{i}"), "value": i}]))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 204);
                if !ok {
                    break;
                }
                acked.push(i);
            }
            acked
        }
    });
    for i in 0..MESSAGES {
        let resp = http
            .post(t.at("/v1.0/publish/pubsub/orders"))
            .json(&json!({"n": i}))
            .send()
            .await
            .expect("publish");
        assert_eq!(resp.status(), 204);
    }
    eventually(15, "first deliveries", || async {
        (app.received("/orders").len() >= 3).then_some(())
    })
    .await;
    t.kill();
    let acked = writes.await.expect("join");
    let before_kill = app.received("/orders").len();
    assert!(
        before_kill < MESSAGES,
        "the kill must happen with messages in flight ({before_kill} delivered)"
    );

    t.restart().await;
    let delivered = eventually(30, "every accepted message after restart", || async {
        let got: BTreeSet<i64> = app
            .received("/orders")
            .iter()
            .filter_map(|r| r.json()["data"]["n"].as_i64())
            .collect();
        (got.len() == MESSAGES).then_some(got)
    })
    .await;
    assert_eq!(delivered, (0..MESSAGES as i64).collect::<BTreeSet<_>>());

    // Every write that was acknowledged with 204 is readable.
    assert!(!acked.is_empty());
    let keys: Vec<String> = acked.iter().map(|i| format!("w-{i}")).collect();
    let items: Vec<Value> = http
        .post(t.at("/v1.0/state/statestore/bulk"))
        .json(&json!({"keys": keys}))
        .send()
        .await
        .expect("bulk")
        .json()
        .await
        .expect("json");
    for (item, i) in items.iter().zip(&acked) {
        assert_eq!(item["data"], json!(i), "acknowledged write w-{i} survived");
    }
}
