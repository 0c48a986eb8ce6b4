//! The `deliver` function: takes one message from a broker, routes it, delivers it with the
//! subscription's retry policy, and decides whether the broker may forget it. The local host
//! runs `run_subscription` as a background loop; serverless hosts call `process` per message.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Map, Value};
use tracing::Instrument;

use super::delivery::{Delivery, Outcome, deliver};
use super::{OutgoingMessage, ReceivedMessage, Subscription, routing};
use crate::Runtime;
use crate::runtime::PubSubComponent;

/// What the broker should do with a processed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Delivered, dropped or dead-lettered: acknowledge it.
    Done,
    /// Not delivered: leave it for the broker to hand out again.
    Redeliver,
}

/// Batch size for one broker read.
const FETCH_BATCH: usize = 16;
/// How long one read waits for new messages.
const FETCH_WAIT: Duration = Duration::from_millis(500);

fn event_of(sub: &Subscription, data: &Bytes) -> Map<String, Value> {
    if !sub.raw_payload
        && let Ok(Value::Object(ce)) = serde_json::from_slice::<Value>(data)
    {
        return ce;
    }
    // Raw subscriptions, and raw payloads reaching a CloudEvent subscription, are wrapped the
    // way Dapr wraps raw payloads rather than being lost.
    tempest_core::cloudevents::from_raw_payload(data, &sub.topic, &sub.pubsub_name)
}

/// Processes one message for one subscription: expiry, routing, delivery with retries, DLQ.
pub async fn process(
    rt: &Runtime,
    component: &PubSubComponent,
    sub: &Subscription,
    msg: &ReceivedMessage,
) -> Disposition {
    let event = event_of(sub, &msg.data);
    if tempest_core::cloudevents::is_expired(&event) {
        tracing::info!(topic = %sub.topic, app = %sub.app_id, "dropping expired message");
        return Disposition::Done;
    }
    let Some(base_url) = rt.apps.get(&sub.app_id) else {
        tracing::warn!(app = %sub.app_id, "subscriber app is not declared; message kept");
        return Disposition::Redeliver;
    };
    let Some(path) = routing::route(sub, &Value::Object(event.clone())) else {
        tracing::info!(topic = %sub.topic, app = %sub.app_id, "no route matches the event; dropped");
        return Disposition::Done;
    };
    let mut metadata = msg.metadata.clone();
    metadata.insert("pubsubname".into(), sub.pubsub_name.clone());
    let span = tracing::info_span!("pubsub", otel.name = format!("pubsub/{}", sub.topic),
        messaging.system = "pubsub", messaging.destination.name = %sub.topic, app = %sub.app_id);
    deliver_with_retries(rt, component, sub, msg, base_url, path, &event, &metadata)
        .instrument(span)
        .await
}

#[allow(clippy::too_many_arguments)]
async fn deliver_with_retries(
    rt: &Runtime,
    component: &PubSubComponent,
    sub: &Subscription,
    msg: &ReceivedMessage,
    base_url: &str,
    path: &str,
    event: &Map<String, Value>,
    metadata: &std::collections::BTreeMap<String, String>,
) -> Disposition {
    let mut retry = 0u32;
    let reason = loop {
        let outcome = deliver(Delivery {
            http: rt.http.as_ref(),
            base_url,
            path,
            event,
            metadata,
            app_api_token: rt.app_api_token.as_deref(),
        })
        .await;
        match outcome {
            Outcome::Success => return Disposition::Done,
            Outcome::Drop(reason) => {
                tracing::warn!(%reason, "message dropped by app");
                return dead_letter(component, sub, msg, Disposition::Done).await;
            }
            Outcome::Retry(reason) => {
                retry += 1;
                match &component.delivery_retry {
                    Some(policy) if policy.allows(retry) => {
                        tracing::debug!(%reason, retry, "retrying delivery");
                        tokio::time::sleep(policy.backoff(retry)).await;
                    }
                    _ => break reason,
                }
            }
        }
    };
    tracing::warn!(%reason, deliveries = msg.deliveries, "delivery failed");
    // With a dead-letter topic the message goes there; without one the broker redelivers it.
    dead_letter(component, sub, msg, Disposition::Redeliver).await
}

async fn dead_letter(
    component: &PubSubComponent,
    sub: &Subscription,
    msg: &ReceivedMessage,
    without_dlq: Disposition,
) -> Disposition {
    let Some(dlq) = &sub.dead_letter_topic else {
        return without_dlq;
    };
    let out = OutgoingMessage {
        data: msg.data.clone(),
        metadata: msg.metadata.clone(),
    };
    match component.broker.publish(dlq, out).await {
        Ok(()) => Disposition::Done,
        Err(e) => {
            // Keep the message rather than lose it when the dead-letter topic is unreachable.
            tracing::error!(topic = %dlq, "dead-letter publish failed: {e}");
            Disposition::Redeliver
        }
    }
}

/// Processes a batch for a `bulkSubscribe` subscription: one bulk delivery per app route
/// (`com.dapr.event.sent.bulk`), then a disposition per message from its entry's status.
pub async fn process_bulk(
    rt: &Runtime,
    component: &PubSubComponent,
    sub: &Subscription,
    msgs: &[ReceivedMessage],
) -> Vec<Disposition> {
    use base64::Engine as _;
    let mut out = vec![Disposition::Redeliver; msgs.len()];
    let Some(base_url) = rt.apps.get(&sub.app_id) else {
        tracing::warn!(app = %sub.app_id, "subscriber app is not declared; messages kept");
        return out;
    };
    // Route every message; group the entries by route.
    // (route, [(message index, entry id, entry)])
    type Entries = Vec<(usize, String, Value)>;
    let mut groups: Vec<(String, Entries)> = Vec::new();
    for (i, msg) in msgs.iter().enumerate() {
        let event = event_of(sub, &msg.data);
        if tempest_core::cloudevents::is_expired(&event) {
            out[i] = Disposition::Done;
            continue;
        }
        let Some(path) = routing::route(sub, &Value::Object(event.clone())).map(str::to_owned)
        else {
            out[i] = Disposition::Done;
            continue;
        };
        let entry_id = uuid::Uuid::new_v4().to_string();
        let entry = if sub.raw_payload {
            serde_json::json!({"entryId": entry_id, "event": base64::engine::general_purpose::STANDARD.encode(&msg.data), "metadata": {}, "contentType": "application/octet-stream"})
        } else {
            serde_json::json!({"entryId": entry_id, "event": event, "metadata": {}, "contentType": tempest_core::cloudevents::CLOUDEVENT_CONTENT_TYPE})
        };
        match groups.iter_mut().find(|(p, _)| *p == path) {
            Some((_, entries)) => entries.push((i, entry_id, entry)),
            None => groups.push((path, vec![(i, entry_id, entry)])),
        }
    }
    for (path, entries) in groups {
        let url = format!("{}/{}", base_url, path.trim_start_matches('/'));
        let ids: Vec<String> = entries.iter().map(|(_, id, _)| id.clone()).collect();
        let body = serde_json::json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "type": "com.dapr.event.sent.bulk",
            "topic": sub.topic,
            "pubsubname": sub.pubsub_name,
            "metadata": {},
            "entries": entries.iter().map(|(_, _, e)| e.clone()).collect::<Vec<_>>(),
        });
        let outcomes = super::delivery::deliver_bulk(
            rt.http.as_ref(),
            &url,
            &body,
            &ids,
            rt.app_api_token.as_deref(),
        )
        .await;
        for ((i, _, _), outcome) in entries.iter().zip(outcomes) {
            out[*i] = match outcome {
                Outcome::Success => Disposition::Done,
                Outcome::Drop(_) => dead_letter(component, sub, &msgs[*i], Disposition::Done).await,
                Outcome::Retry(_) => {
                    dead_letter(component, sub, &msgs[*i], Disposition::Redeliver).await
                }
            };
        }
    }
    out
}

/// Runs one subscription until the task is cancelled: read, process, acknowledge.
pub async fn run_subscription(rt: Arc<Runtime>, sub: Subscription) {
    let Some(component) = rt.pubsub.get(&sub.pubsub_name).cloned() else {
        tracing::warn!(pubsub = %sub.pubsub_name, topic = %sub.topic, "subscription names an unknown pubsub; ignored");
        return;
    };
    let broker = component.broker.clone();
    let mut pause = Duration::from_millis(100);
    while let Err(e) = broker.ensure_group(&sub.topic, &sub.app_id).await {
        tracing::warn!(topic = %sub.topic, "cannot create consumer group yet: {e}");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
    tracing::info!(app = %sub.app_id, pubsub = %sub.pubsub_name, topic = %sub.topic, "subscription active");
    loop {
        let (max, wait) = match sub.bulk {
            Some(b) => (
                b.max_messages_count,
                Duration::from_millis(b.max_await_duration_ms),
            ),
            None => (FETCH_BATCH, FETCH_WAIT),
        };
        let batch = match broker.fetch(&sub.topic, &sub.app_id, max, wait).await {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(topic = %sub.topic, "broker read failed: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let dispositions = if sub.bulk.is_some() {
            process_bulk(&rt, &component, &sub, &batch).await
        } else {
            let mut d = Vec::with_capacity(batch.len());
            for msg in &batch {
                d.push(process(&rt, &component, &sub, msg).await);
            }
            d
        };
        for (msg, disposition) in batch.iter().zip(dispositions) {
            if disposition == Disposition::Done
                && let Err(e) = broker.ack(&sub.topic, &sub.app_id, &msg.ack_id).await
            {
                tracing::warn!(topic = %sub.topic, "ack failed, message may be redelivered: {e}");
            }
        }
    }
}
