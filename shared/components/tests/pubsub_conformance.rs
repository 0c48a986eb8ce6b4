//! The pub/sub conformance suite against every broker.

use std::sync::Arc;
use std::time::Duration;

use tempest_building_blocks::conformance::pubsub::{PubSubCase, run};
use tempest_components::pubsub::sqlite::SqliteBroker;
use tempest_components::sqlite::Db;

const REDELIVER: Duration = Duration::from_millis(700);

fn prefix() -> String {
    format!("conf-{}-", uuid::Uuid::new_v4())
}

#[tokio::test]
async fn sqlite_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Arc::new(
        SqliteBroker::new(
            Db::open(&dir.path().join("pubsub.db")).expect("open"),
            REDELIVER,
        )
        .expect("broker"),
    );
    run(&PubSubCase {
        broker,
        prefix: prefix(),
        redeliver_after: REDELIVER,
        ordered: true,
    })
    .await;
}

#[tokio::test]
async fn in_memory() {
    let broker =
        Arc::new(SqliteBroker::new(Db::in_memory().expect("db"), REDELIVER).expect("broker"));
    run(&PubSubCase {
        broker,
        prefix: prefix(),
        redeliver_after: REDELIVER,
        ordered: true,
    })
    .await;
}

#[tokio::test]
async fn sqlite_keeps_unacked_messages_across_reopen() {
    use tempest_building_blocks::pubsub::{Broker, OutgoingMessage};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pubsub.db");
    {
        let broker = SqliteBroker::new(Db::open(&path).expect("open"), REDELIVER).expect("broker");
        broker.ensure_group("t", "g").await.expect("group");
        for i in 0..3 {
            broker
                .publish(
                    "t",
                    OutgoingMessage {
                        data: format!("m{i}").into(),
                        metadata: Default::default(),
                    },
                )
                .await
                .expect("publish");
        }
        // Handed out but never acknowledged: must come back after a restart.
        let got = broker
            .fetch("t", "g", 1, Duration::from_millis(100))
            .await
            .expect("fetch");
        assert_eq!(got.len(), 1);
    }
    let broker = SqliteBroker::new(Db::open(&path).expect("open"), REDELIVER).expect("broker");
    tokio::time::sleep(REDELIVER).await;
    let mut seen = Vec::new();
    for _ in 0..10 {
        for m in broker
            .fetch("t", "g", 10, Duration::from_millis(100))
            .await
            .expect("fetch")
        {
            broker.ack("t", "g", &m.ack_id).await.expect("ack");
            seen.push(String::from_utf8_lossy(&m.data).into_owned());
        }
        if seen.len() == 3 {
            break;
        }
    }
    seen.sort();
    assert_eq!(seen, ["m0", "m1", "m2"]);
}

#[tokio::test]
async fn redis_streams() {
    let host = std::env::var("TEMPEST_TEST_REDIS").unwrap_or_else(|_| "127.0.0.1:6379".into());
    let md = tempest_components::metadata::Metadata {
        component: "pubsub".into(),
        values: [
            ("redisHost".to_string(), host),
            ("redeliverInterval".to_string(), "700ms".to_string()),
        ]
        .into_iter()
        .collect(),
    };
    let broker = tempest_components::pubsub::redis::RedisBroker::connect(&md)
        .await
        .expect("Redis must be running for this test (scripts/test starts it)");
    // Redis Streams keep publish order within a stream.
    run(&PubSubCase {
        broker: Arc::new(broker),
        prefix: prefix(),
        redeliver_after: REDELIVER,
        ordered: true,
    })
    .await;
}
