//! Pub/sub conformance (after components-contrib `tests/conformance/pubsub`), on the `Broker`
//! contract: consumer groups, ordering where promised, redelivery of unacknowledged messages.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::pubsub::{Broker, OutgoingMessage, ReceivedMessage};

/// What the suite needs to know about the broker under test.
pub struct PubSubCase {
    /// The broker.
    pub broker: Arc<dyn Broker>,
    /// Unique topic prefix so runs against shared servers do not collide.
    pub prefix: String,
    /// The broker's redelivery interval for unacknowledged messages.
    pub redeliver_after: Duration,
    /// Whether the broker promises publish order within a topic.
    pub ordered: bool,
}

const COUNT: usize = 20;

fn msg(i: usize) -> OutgoingMessage {
    OutgoingMessage {
        data: Bytes::from(format!("message-{i:03}")),
        metadata: BTreeMap::new(),
    }
}

async fn drain(
    case: &PubSubCase,
    topic: &str,
    group: &str,
    want: usize,
    ack: bool,
) -> Vec<ReceivedMessage> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    while got.len() < want {
        assert!(
            Instant::now() < deadline,
            "only {} of {want} messages arrived on {topic}",
            got.len()
        );
        for m in case
            .broker
            .fetch(topic, group, 7, Duration::from_millis(200))
            .await
            .expect("fetch")
        {
            if ack {
                case.broker.ack(topic, group, &m.ack_id).await.expect("ack");
            }
            got.push(m);
        }
    }
    got
}

fn payloads(msgs: &[ReceivedMessage]) -> Vec<String> {
    msgs.iter()
        .map(|m| String::from_utf8_lossy(&m.data).into_owned())
        .collect()
}

/// Runs every scenario; panics on the first violation.
pub async fn run(case: &PubSubCase) {
    every_group_gets_every_message(case).await;
    topics_are_isolated(case).await;
    unacked_messages_are_redelivered(case).await;
}

async fn every_group_gets_every_message(case: &PubSubCase) {
    let topic = format!("{}groups", case.prefix);
    for g in ["g1", "g2"] {
        case.broker.ensure_group(&topic, g).await.expect("group");
    }
    for i in 0..COUNT {
        case.broker.publish(&topic, msg(i)).await.expect("publish");
    }
    let expected: Vec<String> = (0..COUNT).map(|i| format!("message-{i:03}")).collect();
    for g in ["g1", "g2"] {
        let got = payloads(&drain(case, &topic, g, COUNT, true).await);
        if case.ordered {
            assert_eq!(got, expected, "group {g} sees messages in publish order");
        } else {
            let set: BTreeSet<_> = got.iter().cloned().collect();
            assert_eq!(
                set,
                expected.iter().cloned().collect(),
                "group {g} sees every message"
            );
        }
        // Acknowledged messages are not handed out again, even after the redelivery interval.
        tokio::time::sleep(case.redeliver_after + Duration::from_millis(300)).await;
        let again = case
            .broker
            .fetch(&topic, g, 10, Duration::from_millis(300))
            .await
            .expect("fetch");
        assert!(
            again.is_empty(),
            "acknowledged messages came back: {:?}",
            payloads(&again)
        );
    }
}

async fn topics_are_isolated(case: &PubSubCase) {
    let (a, b) = (
        format!("{}iso-a", case.prefix),
        format!("{}iso-b", case.prefix),
    );
    for t in [&a, &b] {
        case.broker.ensure_group(t, "g").await.expect("group");
    }
    case.broker.publish(&a, msg(1)).await.expect("publish");
    case.broker.publish(&b, msg(2)).await.expect("publish");
    assert_eq!(
        payloads(&drain(case, &a, "g", 1, true).await),
        vec!["message-001"]
    );
    assert_eq!(
        payloads(&drain(case, &b, "g", 1, true).await),
        vec!["message-002"]
    );
}

async fn unacked_messages_are_redelivered(case: &PubSubCase) {
    let topic = format!("{}redeliver", case.prefix);
    case.broker.ensure_group(&topic, "g").await.expect("group");
    case.broker.publish(&topic, msg(7)).await.expect("publish");
    let first = drain(case, &topic, "g", 1, false).await;
    assert_eq!(first[0].deliveries, 1);
    // Not due yet: nothing is handed out again right away.
    let early = case
        .broker
        .fetch(&topic, "g", 10, Duration::from_millis(50))
        .await
        .expect("fetch");
    assert!(early.is_empty(), "message redelivered before its interval");
    tokio::time::sleep(case.redeliver_after + Duration::from_millis(200)).await;
    let second = drain(case, &topic, "g", 1, true).await;
    assert_eq!(payloads(&second), vec!["message-007"]);
    assert!(second[0].deliveries >= 2, "redelivery is counted");
}
