//! `deliver` where the broker pushes: a serverless host is handed messages (an SQS batch, a
//! Storage Queue message) instead of pulling them, so it cannot keep a consumer loop. Each
//! message is matched to the subscriptions of its topic and processed exactly as the pulling
//! loop does; what the broker should do with it comes back per message.

use std::sync::Arc;

use futures::future::join_all;
use serde_json::Value;
use tokio::sync::Mutex;

use super::worker::{Disposition, process, process_bulk};
use super::{ReceivedMessage, Subscription, routing, subscription};
use crate::Runtime;

/// One pushed message: its topic, as the host worked it out, and the message.
#[derive(Debug, Clone)]
pub struct PushedMessage {
    /// Topic the message was published to.
    pub topic: String,
    /// The message as the broker holds it.
    pub msg: ReceivedMessage,
}

impl PushedMessage {
    /// A message as a queue hands it over: its topic is the one the CloudEvent names (`topic`,
    /// set on every event Dapr and Tempest publish), else the one the broker's envelope names
    /// (`sent_to`: an SNS topic), else the queue's own (`queue_topic`: a queue per topic).
    /// A message with none of these cannot be routed: the error says so, and the host leaves
    /// the message to the queue's dead-lettering rather than lose it.
    pub fn from_queue(
        ack_id: String,
        data: bytes::Bytes,
        sent_to: Option<String>,
        queue_topic: Option<&str>,
        metadata: std::collections::BTreeMap<String, String>,
        deliveries: u32,
    ) -> Result<Self, String> {
        let topic = topic_of(&data)
            .or(sent_to)
            .or_else(|| queue_topic.map(str::to_owned))
            .ok_or("the message names no topic, and the queue has none (TEMPEST_DELIVER_TOPIC)")?;
        Ok(PushedMessage {
            topic,
            msg: ReceivedMessage {
                ack_id,
                data,
                metadata,
                deliveries,
            },
        })
    }
}

/// The topic a CloudEvent names, if `data` is one.
fn topic_of(data: &[u8]) -> Option<String> {
    match serde_json::from_slice::<Value>(data) {
        Ok(Value::Object(ce)) => ce
            .get("topic")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_owned),
        _ => None,
    }
}

/// Delivers pushed messages of one pub/sub component to the subscriptions of one app (a queue
/// per subscribing app, as Dapr's SNS/SQS component lays it out) or of every declared app.
/// Built once per function instance: apps' programmatic subscriptions are asked for on the
/// first batch and kept, like daprd asks once at start.
pub struct PushedDelivery {
    rt: Arc<Runtime>,
    pubsub: String,
    app: Option<String>,
    /// Whether every app's `/dapr/subscribe` has answered once.
    discovered: Mutex<bool>,
}

impl PushedDelivery {
    /// Delivery for component `pubsub`, to `app` only or (with `None`) to every declared app.
    pub fn new(rt: Arc<Runtime>, pubsub: &str, app: Option<&str>) -> Self {
        PushedDelivery {
            rt,
            pubsub: pubsub.to_owned(),
            app: app.map(str::to_owned),
            discovered: Mutex::new(false),
        }
    }

    /// The topic a broker-side entity name stands for (an SNS topic named with the
    /// component's prefix, say), for messages that carry only that name.
    pub fn topic_of_entity(&self, entity: &str) -> String {
        match self.rt.pubsub.get(&self.pubsub) {
            Some(component) => component.broker.topic_of_entity(entity),
            None => entity.to_owned(),
        }
    }

    /// Asks each app that has not answered yet for its subscriptions. An app that cannot be
    /// reached is an error: its messages must wait for it rather than be dropped for want of
    /// a route.
    async fn discover(&self) -> Result<(), String> {
        let mut discovered = self.discovered.lock().await;
        if *discovered {
            return Ok(());
        }
        for (app_id, url) in &self.rt.apps {
            if self.app.as_ref().is_some_and(|a| a != app_id) {
                continue;
            }
            let subs = subscription::fetch_programmatic(
                self.rt.http.as_ref(),
                app_id,
                url,
                self.rt.app_api_token.as_deref(),
            )
            .await?
            .ok_or_else(|| format!("app {app_id} at {url} is not reachable"))?;
            let valid = subs
                .into_iter()
                .filter(|sub| match routing::validate(sub) {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(app = %app_id, "ignoring subscription: {e}");
                        false
                    }
                })
                .collect();
            self.rt.add_subscriptions(valid);
        }
        *discovered = true;
        Ok(())
    }

    /// The subscriptions that receive messages of `topic`.
    fn subscriptions_of(&self, topic: &str) -> Vec<Subscription> {
        self.rt
            .subscriptions()
            .into_iter()
            .filter(|s| s.pubsub_name == self.pubsub && s.topic == topic)
            .filter(|s| self.app.as_ref().is_none_or(|a| *a == s.app_id))
            .collect()
    }

    /// Processes a batch; one disposition per message, in order. A message is `Done` only
    /// when every subscription of its topic is done with it (redelivery then reaches the
    /// subscriptions that were already served again: at-least-once, as Dapr promises).
    pub async fn process(&self, batch: &[PushedMessage]) -> Vec<Disposition> {
        let Some(component) = self.rt.pubsub.get(&self.pubsub).cloned() else {
            tracing::error!(pubsub = %self.pubsub, "no such pub/sub component; messages kept");
            return vec![Disposition::Redeliver; batch.len()];
        };
        if let Err(e) = self.discover().await {
            tracing::warn!("cannot read subscriptions yet, messages kept: {e}");
            return vec![Disposition::Redeliver; batch.len()];
        }
        let mut out = vec![Disposition::Done; batch.len()];
        let mut topics: Vec<&str> = batch.iter().map(|m| m.topic.as_str()).collect();
        topics.sort_unstable();
        topics.dedup();
        for topic in topics {
            let idx: Vec<usize> = (0..batch.len())
                .filter(|&i| batch[i].topic == topic)
                .collect();
            let subs = self.subscriptions_of(topic);
            if subs.is_empty() {
                tracing::info!(%topic, pubsub = %self.pubsub, "no subscription for the topic; messages dropped");
            }
            for sub in subs {
                let dispositions = if sub.bulk.is_some() {
                    let msgs: Vec<ReceivedMessage> =
                        idx.iter().map(|&i| batch[i].msg.clone()).collect();
                    process_bulk(&self.rt, &component, &sub, &msgs).await
                } else {
                    join_all(
                        idx.iter()
                            .map(|&i| process(&self.rt, &component, &sub, &batch[i].msg)),
                    )
                    .await
                };
                for (&i, d) in idx.iter().zip(dispositions) {
                    if d == Disposition::Redeliver {
                        out[i] = Disposition::Redeliver;
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_message_takes_the_first_topic_it_can_find() {
        let from = |data: &'static [u8], sent_to: Option<&str>, queue: Option<&str>| {
            PushedMessage::from_queue(
                "m".into(),
                bytes::Bytes::from_static(data),
                sent_to.map(str::to_owned),
                queue,
                Default::default(),
                1,
            )
            .map(|m| m.topic)
        };
        let ce: &[u8] = br#"{"topic":"orders"}"#;
        assert_eq!(from(ce, Some("sns"), Some("q")).as_deref(), Ok("orders"));
        assert_eq!(from(b"text", Some("sns"), Some("q")).as_deref(), Ok("sns"));
        assert_eq!(from(b"text", None, Some("q")).as_deref(), Ok("q"));
        assert!(from(b"text", None, None).is_err());
    }

    #[test]
    fn topics_come_from_the_cloudevent() {
        assert_eq!(
            topic_of(br#"{"specversion":"1.0","topic":"orders","data":{}}"#).as_deref(),
            Some("orders")
        );
        assert_eq!(topic_of(br#"{"specversion":"1.0","topic":""}"#), None);
        assert_eq!(topic_of(b"not json"), None);
        assert_eq!(topic_of(b"[1,2]"), None);
    }
}
