//! `pubsub.azure.storagequeues` (Tempest's; Dapr has Storage Queues only as a binding): Azure
//! Storage Queues have no topics, so each subscribing app gets a queue per topic, named so a
//! publisher finds every subscriber of a topic by listing one name prefix, and a publish puts
//! the message in each. A message not deleted within the visibility timeout is handed out
//! again; past `maxDequeueCount` deliveries it is moved to `<queue>-poison`, as the Azure
//! Functions queue trigger does. Payloads travel as base64 message text, which is also what
//! the Functions host's queue trigger decodes; metadata does not travel (queues carry none).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use http::{Method, StatusCode};
use tempest_building_blocks::pubsub::{Broker, OutgoingMessage, PubSubError, ReceivedMessage};

use crate::ComponentError;
use crate::azure::{Credential, Service, describe, request, service_url, short_hash};
use crate::metadata::Metadata;

/// Hex digits of the topic hash in queue names.
const TOPIC_HASH: usize = 10;
/// Longest queue name the service takes.
const MAX_NAME: usize = 63;
/// Suffix of the queue that holds messages delivered too often.
const POISON: &str = "-poison";
/// Largest message the service takes, as base64 text.
const MAX_MESSAGE_TEXT: usize = 64 * 1024;

/// Azure Storage Queues as a broker.
pub struct StorageQueueBroker {
    credential: Credential,
    service: String,
    prefix: String,
    visibility: Duration,
    max_dequeue: u32,
}

/// The queue of subscribing `app` (a consumer group) for `topic`:
/// `<prefix><hash of topic>-<app>`, where the app part is kept when it is already a valid
/// queue name part and short enough, and otherwise cleaned, cut and given a hash of its own.
/// Terraform computes the same names for clean app ids
/// (`"${prefix}${substr(sha256(topic), 0, 10)}-${app}"`).
pub fn queue_name(prefix: &str, topic: &str, app: &str) -> String {
    let head = topic_prefix(prefix, topic);
    let room = MAX_NAME.saturating_sub(head.len() + POISON.len());
    format!("{head}{}", label(app, room))
}

/// The name prefix every subscriber queue of `topic` shares.
fn topic_prefix(prefix: &str, topic: &str) -> String {
    format!("{prefix}{}-", short_hash(topic, TOPIC_HASH))
}

/// Whether `s` is lowercase letters and digits in hyphen-separated runs.
fn is_clean(s: &str) -> bool {
    !s.is_empty()
        && s.split('-').all(|run| {
            !run.is_empty()
                && run
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

fn label(s: &str, room: usize) -> String {
    if is_clean(s) && s.len() <= room {
        return s.to_owned();
    }
    let mut clean = String::new();
    for c in s.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            clean.push(c);
        } else if !clean.is_empty() && !clean.ends_with('-') {
            clean.push('-');
        }
    }
    let hash = short_hash(s, 6);
    clean.truncate(room.saturating_sub(hash.len() + 1));
    let clean = clean.trim_end_matches('-');
    if clean.is_empty() {
        hash
    } else {
        format!("{clean}-{hash}")
    }
}

/// The text of every `<tag>` element in `xml`, unescaped (the service's list answers are flat).
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(
            after[..end]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        );
        rest = &after[end + close.len()..];
    }
    out
}

/// One received message: what deleting it takes.
struct Receipt {
    id: String,
    pop: String,
}

impl Receipt {
    fn ack_id(&self) -> String {
        format!("{}\n{}", self.id, self.pop)
    }

    fn parse(ack_id: &str) -> Result<Self, PubSubError> {
        let (id, pop) = ack_id
            .split_once('\n')
            .ok_or_else(|| PubSubError::Backend(format!("not a queue receipt: {ack_id:?}")))?;
        Ok(Receipt {
            id: id.into(),
            pop: pop.into(),
        })
    }
}

impl StorageQueueBroker {
    /// Connects from the metadata: `accountName`, `accountKey` or Entra ID fields,
    /// `serviceURL` (an emulator), `entityPrefix` (lowercase, put before every queue name),
    /// `visibilityTimeout` (seconds, default 30) and `maxDequeueCount` (default 5).
    pub async fn connect(md: &Metadata) -> Result<Self, ComponentError> {
        let account = md.required("accountName")?;
        let prefix = md.get("entityPrefix").unwrap_or_default().to_owned();
        let prefix_ok = prefix.is_empty()
            || (prefix.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && is_clean(prefix.trim_end_matches('-'))
                && prefix.len() <= 24);
        if !prefix_ok {
            return Err(ComponentError::Invalid {
                component: md.component.clone(),
                message: format!(
                    "entityPrefix {prefix:?} must be at most 24 lowercase letters, digits and single hyphens"
                ),
            });
        }
        Ok(StorageQueueBroker {
            credential: Credential::from_metadata(md, Some(account), Service::Queue)?,
            service: service_url(md, account, "queue"),
            prefix,
            visibility: Duration::from_secs(md.number("visibilityTimeout", 30u64)?),
            max_dequeue: md.number("maxDequeueCount", 5u32)?,
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        headers: &[(&str, String)],
        body: Option<String>,
    ) -> Result<tempest_http::Response, PubSubError> {
        let url =
            tempest_http::with_query(&format!("{}/{path}", self.service), query.iter().copied());
        let mut headers: Vec<(&str, &str)> =
            headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if body.is_some() {
            headers.push(("Content-Type", "application/xml"));
        }
        let req = request(method, &url, &headers, body.unwrap_or_default())
            .map_err(PubSubError::Backend)?;
        self.credential
            .send(req)
            .await
            .map_err(PubSubError::Backend)
    }

    fn expect(
        resp: tempest_http::Response,
        what: &str,
    ) -> Result<tempest_http::Response, PubSubError> {
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(PubSubError::Backend(format!("{what}: {}", describe(&resp))))
        }
    }

    /// Every queue whose name starts with `prefix`, following the listing's pages.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, PubSubError> {
        let (mut names, mut marker) = (Vec::new(), String::new());
        loop {
            let mut query = vec![("comp", "list"), ("prefix", prefix)];
            if !marker.is_empty() {
                query.push(("marker", marker.as_str()));
            }
            let resp = self.send(Method::GET, "", &query, &[], None).await?;
            let text = tempest_http::text(&Self::expect(resp, "list queues")?);
            names.extend(xml_values(&text, "Name"));
            marker = xml_values(&text, "NextMarker").pop().unwrap_or_default();
            if marker.is_empty() {
                return Ok(names);
            }
        }
    }

    async fn create(&self, queue: &str, topic: &str, app: &str) -> Result<(), PubSubError> {
        // Names are hashed; metadata says whose queue it is (when it fits in a header).
        let mut headers = Vec::new();
        for (name, value) in [("x-ms-meta-topic", topic), ("x-ms-meta-app", app)] {
            if value.chars().all(|c| c.is_ascii_graphic()) {
                headers.push((name, value.to_owned()));
            }
        }
        let resp = self.send(Method::PUT, queue, &[], &headers, None).await?;
        // 409: it exists with other metadata, which is as good.
        if resp.status() == StatusCode::CONFLICT {
            return Ok(());
        }
        Self::expect(resp, &format!("create queue {queue}")).map(|_| ())
    }

    async fn put(&self, queue: &str, data: &[u8]) -> Result<(), PubSubError> {
        let text = base64::engine::general_purpose::STANDARD.encode(data);
        if text.len() > MAX_MESSAGE_TEXT {
            return Err(PubSubError::Backend(format!(
                "a message of {} bytes is over what Storage Queues take (48 KiB before base64)",
                data.len()
            )));
        }
        let body = format!("<QueueMessage><MessageText>{text}</MessageText></QueueMessage>");
        let resp = self
            .send(
                Method::POST,
                &format!("{queue}/messages"),
                &[],
                &[],
                Some(body),
            )
            .await?;
        Self::expect(resp, &format!("put message on {queue}")).map(|_| ())
    }

    async fn delete(&self, queue: &str, receipt: &Receipt) -> Result<(), PubSubError> {
        let resp = self
            .send(
                Method::DELETE,
                &format!("{queue}/messages/{}", receipt.id),
                &[("popreceipt", receipt.pop.as_str())],
                &[],
                None,
            )
            .await?;
        // Gone already (deleted, or moved on): nothing left to acknowledge.
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(());
        }
        Self::expect(resp, &format!("delete message from {queue}")).map(|_| ())
    }

    /// Messages visible now on `queue`, made invisible for the visibility timeout.
    async fn receive(
        &self,
        queue: &str,
        max: usize,
    ) -> Result<Vec<(Receipt, u32, Bytes)>, PubSubError> {
        let n = max.clamp(1, 32).to_string();
        let vis = self.visibility.as_secs().max(1).to_string();
        let resp = self
            .send(
                Method::GET,
                &format!("{queue}/messages"),
                &[
                    ("numofmessages", n.as_str()),
                    ("visibilitytimeout", vis.as_str()),
                ],
                &[],
                None,
            )
            .await?;
        let text = tempest_http::text(&Self::expect(resp, &format!("get messages from {queue}"))?);
        let mut out = Vec::new();
        for message in xml_values(&text, "QueueMessage") {
            let field = |tag| xml_values(&message, tag).pop().unwrap_or_default();
            let receipt = Receipt {
                id: field("MessageId"),
                pop: field("PopReceipt"),
            };
            let dequeued = field("DequeueCount").parse().unwrap_or(1);
            let body = field("MessageText");
            // Text put there by another writer is taken as it is.
            let data = base64::engine::general_purpose::STANDARD
                .decode(body.trim())
                .map(Bytes::from)
                .unwrap_or_else(|_| Bytes::from(body));
            out.push((receipt, dequeued, data));
        }
        Ok(out)
    }
}

#[async_trait]
impl Broker for StorageQueueBroker {
    async fn publish(&self, topic: &str, msg: OutgoingMessage) -> Result<(), PubSubError> {
        let head = topic_prefix(&self.prefix, topic);
        for queue in self.list(&head).await? {
            if !queue.ends_with(POISON) {
                self.put(&queue, &msg.data).await?;
            }
        }
        Ok(())
    }

    async fn ensure_group(&self, topic: &str, group: &str) -> Result<(), PubSubError> {
        let queue = queue_name(&self.prefix, topic, group);
        self.create(&queue, topic, group).await?;
        self.create(&format!("{queue}{POISON}"), topic, group).await
    }

    async fn fetch(
        &self,
        topic: &str,
        group: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, PubSubError> {
        let queue = queue_name(&self.prefix, topic, group);
        let until = Instant::now() + wait;
        loop {
            let mut out = Vec::new();
            for (receipt, deliveries, data) in self.receive(&queue, max).await? {
                if deliveries > self.max_dequeue {
                    // Delivered too often: kept aside, as the Functions host does.
                    self.put(&format!("{queue}{POISON}"), &data).await?;
                    self.delete(&queue, &receipt).await?;
                    continue;
                }
                out.push(ReceivedMessage {
                    ack_id: receipt.ack_id(),
                    data,
                    metadata: BTreeMap::new(),
                    deliveries,
                });
            }
            // Queues have no long poll: look again while the caller is willing to wait.
            if !out.is_empty() || Instant::now() >= until {
                return Ok(out);
            }
            tokio::time::sleep(Duration::from_millis(250).min(until - Instant::now())).await;
        }
    }

    async fn ack(&self, topic: &str, group: &str, ack_id: &str) -> Result<(), PubSubError> {
        let queue = queue_name(&self.prefix, topic, group);
        self.delete(&queue, &Receipt::parse(ack_id)?).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_are_valid_and_keep_subscribers_apart() {
        let valid = |n: &str| n.len() >= 3 && n.len() + POISON.len() <= MAX_NAME && is_clean(n);
        let a = queue_name("dev-", "orders", "checkout");
        assert_eq!(a, format!("dev-{}-checkout", short_hash("orders", 10)));
        for (topic, app) in [
            ("orders", "Checkout"),
            ("a/b c", "app_with_underscores"),
            ("orders", &"x".repeat(100)),
            ("t", "--"),
        ] {
            let n = queue_name("dev-", topic, app);
            assert!(valid(&n), "{n}");
            assert!(n.starts_with(&topic_prefix("dev-", topic)));
        }
        assert_ne!(
            queue_name("", "orders", "Checkout"),
            queue_name("", "orders", "checkout")
        );
        assert_ne!(topic_prefix("", "orders"), topic_prefix("", "orders2"));
    }

    #[test]
    fn xml_values_are_unescaped_in_order() {
        let xml = "<a><Name>x&amp;y</Name><Name>z</Name><NextMarker/></a>";
        assert_eq!(xml_values(xml, "Name"), ["x&y", "z"]);
        assert!(xml_values(xml, "NextMarker").is_empty());
    }
}
